"""The same request logged in Istio's text layout and in its JSON encoding gives the same record, or
the same verdict: a JSON value the text layouts reject (flags "UF, URX" or "uf", a count of -1, an
address with no port) is a malformed reject naming its key and value, by the JSON reading of cut.c
and by json.loads alike (``values.WholeValues.check``, by access.lark's rules of the fields).
"""
from __future__ import annotations

import json

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logpipe import jsonlog, native, values
from logpipe.parse import Parser

REQUEST = dict(
    start_time="2024-12-09T13:40:07.513Z", method="GET", path="/get", protocol="HTTP/1.1", response_code=200,
    response_flags="-", response_code_details="via_upstream", connection_termination_details=None,
    upstream_transport_failure_reason=None, bytes_received=0, bytes_sent=254, duration=237,
    upstream_service_time="236", x_forwarded_for=None, user_agent="curl/8.11.1",
    request_id="79b5cc4e-e24b-4453-a913-be45f0dd414d", authority="httpbin.org", upstream_host="192.0.2.10:80",
    upstream_cluster="outbound|80||httpbin.org", upstream_local_address="10.244.0.18:59492",
    downstream_local_address="240.240.0.2:80", downstream_remote_address="10.244.0.24:58551",
    requested_server_name=None, route_name="default")
# Istio's default text format (istio_1_9: FORMATS.md a.1), its operators in the JSON encoding's keys
TEXT = ('[{start_time}] "{method} {path} {protocol}" {response_code} {response_flags} {response_code_details} '
        '{connection_termination_details} "{upstream_transport_failure_reason}" {bytes_received} {bytes_sent} '
        '{duration} {upstream_service_time} "{x_forwarded_for}" "{user_agent}" "{request_id}" "{authority}" '
        '"{upstream_host}" {upstream_cluster} {upstream_local_address} {downstream_local_address} '
        '{downstream_remote_address} {requested_server_name} {route_name}')
PROVENANCE = {"raw", "log_format", "line_number", "source"}


@pytest.fixture(scope="module")
def parser():
    return Parser()


def text_line(**changes) -> str:
    return TEXT.format(**{k: "-" if v is None else v for k, v in {**REQUEST, **changes}.items()})


def json_line(**changes) -> str:
    return json.dumps({k: v for k, v in {**REQUEST, **changes}.items() if v is not ...}, separators=(",", ":"))


def read(parser, lines: list[str], monkeypatch) -> tuple[list[dict], list[dict]]:
    """(records, rejects) of ``lines``, the same read natively (where cut.c is built) and by json.loads."""
    got = []
    for lib in ((native.library,) if native.library() is not None else ()) + (lambda: None,):
        with monkeypatch.context() as mp:
            mp.setattr(jsonlog, "FLAT_MIN_ROWS", 0)
            mp.setattr(native, "library", lib)
            batch = parser.parse_batch(lines)
        got.append(([{k: v for k, v in r.items() if k not in PROVENANCE} for r in batch.records.to_pylist()],
                     [(r["line_number"], r["class"], r["reason"]) for r in batch.rejects.to_pylist()]))
    assert all(g == got[0] for g in got)
    return got[0]


BAD = {  # key: (the text line's value, the JSON line's; None: a value text cannot hold, its line not read)
    "flags with a space": ("response_flags", "UF, URX", "UF, URX"),
    "lowercase flag": ("response_flags", "uf", "uf"),
    "negative bytes_received": ("bytes_received", -1, -1),
    "negative bytes_sent": ("bytes_sent", -1, -1),
    "negative duration": ("duration", -1, -1),
    "negative response_code": ("response_code", -1, -1),
    "signed upstream_service_time": ("upstream_service_time", "+5", "+5"),
    "downstream_remote_address without its port": ("downstream_remote_address", "10.0.0.1", "10.0.0.1"),
    "upstream_host without its port": ("upstream_host", "192.0.2.10", "192.0.2.10"),
    "upstream_local_address as a word": ("upstream_local_address", "abc", "abc"),
    "flags as a list": ("response_flags", None, ["UF"]),
    "a count as true": ("bytes_sent", None, True),
    "a count with a space": ("duration", None, " 237"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_a_value_text_rejects_is_a_json_reject_naming_its_key(parser, name, monkeypatch):
    key, as_text, as_json = BAD[name]
    texts = [] if as_text is None else [text_line(**{key: as_text})]
    records, rejects = read(parser, (texts + [json_line(**{key: as_json})]) * 2, monkeypatch)
    assert records == []
    assert [(n, c) for n, c, _ in rejects] == [(n, "malformed") for n in range(1, 2 * len(texts) + 3)]
    shown = json.dumps(as_json, separators=(",", ":")) if not isinstance(as_json, str) else as_json
    why = rejects[len(texts)][2]
    assert why.startswith(f'invalid value: key "{key}" expected ') and why.endswith(f"got {shown!r}")


GOOD = {  # JSON values that are the text line's value: the same record
    "flags": ({"response_flags": "UF,URX"}, {}),
    "IPv6 with no port (the IP alone, as on a text line)": ({"downstream_remote_address": "2001:db8::1"}, {}),
    "counts as strings (Istio 1.1-1.7)": ({}, {"response_code": "200", "bytes_sent": "254", "duration": "237"}),
    "integer floats and exponents": ({}, {"response_code": 200.0, "bytes_sent": 2.54e2}),
    "dash and null": ({"bytes_received": None, "response_flags": "-"}, {"bytes_received": "-"}),
    "TCP": ({"method": None, "path": None, "protocol": None, "response_code": 0, "upstream_service_time": None}, {}),
}


@pytest.mark.parametrize("name", list(GOOD))
def test_a_value_text_reads_is_the_same_record_in_json(parser, name, monkeypatch):
    both, as_json = GOOD[name]
    records, rejects = read(parser, [text_line(**both), json_line(**{**both, **as_json})], monkeypatch)
    assert rejects == [] and len(records) == 2 and records[0] == records[1]


def test_a_json_formats_key_is_checked_by_its_operator(parser, monkeypatch):
    """A JSON format's key has its operator's shape: %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% is the IP
    alone (its _ip column), %UPSTREAM_HOST% an address with its port, an extra count column a count;
    the reason names the format's key and the column it fills."""
    from logpipe import layouts

    fmt = {"ts": "%START_TIME%", "status": "%RESPONSE_CODE%", "flags": "%RESPONSE_FLAGS%", "bytes": "%BYTES_SENT%",
           "client": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "up": "%UPSTREAM_HOST%",
           "wire": "%UPSTREAM_WIRE_BYTES_SENT%"}
    custom = layouts.parser_from_options(format_string=json.dumps(fmt))
    good = {"ts": "2024-12-09T13:40:07.513Z", "status": 200, "flags": "UF,URX", "bytes": 5, "client": "10.0.0.1",
            "up": "192.0.2.10:80", "wire": 7}
    lines = [json.dumps({**good, **change}) for change in
             ({}, {"flags": "UF, URX"}, {"wire": -7}, {"up": "192.0.2.10"}, {"bytes": -5, "up": "192.0.2.10"})]
    records, rejects = read(custom, lines, monkeypatch)
    assert [(r["downstream_remote_address_ip"], r["response_flags"], r["upstream_wire_bytes_sent"]) for r in records] \
        == [("10.0.0.1", ["UF", "URX"], 7)]
    assert [why for _, _, why in rejects] == [
        "invalid value: key \"flags\" (response_flags) expected FLAGS or '-', got 'UF, URX'",
        "invalid value: key \"wire\" (upstream_wire_bytes_sent) expected INT or '-', got '-7'",
        "invalid value: key \"up\" (upstream_host) expected an address with its port (IP:PORT, [IPv6]:PORT), "
        "got '192.0.2.10'",
        "invalid value: key \"bytes\" (bytes_sent) expected INT or '-', got '-5'"]


def test_a_ztunnel_json_line_is_read_as_its_text_line_is(parser, monkeypatch):
    """ztunnel's lines are read from its own fields, text and JSON alike, not checked by Envoy's
    rules: a src.addr with no port is kept in both (no _ip), not a reject of its JSON line alone."""
    from conftest import SAMPLES, read_lines

    text = read_lines(SAMPLES / "ztunnel.log")[2].replace("src.addr=10.244.0.24:41160", "src.addr=10.244.0.24")
    obj = json.loads(read_lines(SAMPLES / "ztunnel-json.log")[1])
    records, rejects = read(parser, [text, json.dumps({**obj, "src.addr": "10.244.0.24"})], monkeypatch)
    assert rejects == [] and [(r["downstream_remote_address"], r["downstream_remote_address_ip"]) for r in records] \
        == [("10.244.0.24", None)] * 2


TEXTS = st.one_of(
    st.sampled_from(["0", "007", "+5", "-1", "-0", "-", "", " 5", "5 ", "٣", "１", "0x1", "1e3", "5.0", "5_0",
                     "18446744073709551615", "18446744073709551616", "10.0.0.1:80", "10.0.0.1", "[fe80::1]:8080",
                     "fe80::1", "envoy://internal_client_address/", "/var/run/a.sock", "UF,URX", "UF, URX", "uf"]),
    st.text(st.sampled_from("0123456789+-.:[]abcdefUFRX,/ "), max_size=16),
)


# (20 batches of up to 30 rows: each a value for every checked column)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(*([TEXTS] * len(values.SHAPED))), min_size=1, max_size=30))
def test_check_rejects_what_the_fields_rules_reject(parser, rows):
    """check's cheap tests (an address with its _ip, a count of digits alone) and its regex on distinct
    values reject exactly the values the field's own rule (access.lark) does not match."""
    frame = pl.DataFrame([dict(zip(values.SHAPED, r)) for r in rows], schema={c: pl.String for c in values.SHAPED})
    frame = frame.with_columns(pl.int_range(1, frame.height + 1).alias("line_number"),
                               pl.lit("x").alias("raw"), pl.lit("istio_json").alias("log_format"))
    rejects: list[dict] = []
    kept = parser.values.check(parser.values.split(frame), rejects)
    rules = {c: parser.access.regex("address_value" if c in values.ADDRESS_COLUMNS else c, c) for c in values.SHAPED}
    bad = [n for n, r in enumerate(rows, 1)
           if any(v not in ("-", "") and not pl.Series([v]).str.contains(rules[c]).item() for c, v in zip(values.SHAPED, r))]
    assert [r["line_number"] for r in rejects] == bad
    assert kept["line_number"].to_list() == [n for n in range(1, len(rows) + 1) if n not in bad]
