"""Istio JSON lines read natively (``jsonlog.take_flat``, cut.c's ``logpipe_json_flat``) against the
json.loads path: the same records and rejects for every JSON sample line, hand-picked edges, and
generated objects (escapes, floats, nested values, duplicate keys, ztunnel and noise objects, cuts).
"""
from __future__ import annotations

import json
import random

import pytest
from conftest import SAMPLES, read_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logpipe import jsonlog, native
from logpipe.parse import Parser
from logpipe.values import WholeValues

JSON_SAMPLES = sorted(SAMPLES.glob("*json*.log"))
ISTIO = json.loads(read_lines(SAMPLES / "istio-json-1.24.log")[0])


@pytest.fixture(scope="module")
def parser():
    if native.library() is None:
        pytest.skip(f"cut.c not built: {native.why_not}")
    return Parser()


def both(parser, lines: list[str], monkeypatch) -> tuple:
    """(records, rejects) read natively where it can, then with json.loads only; the native reading
    must have taken ``taken`` lines."""
    monkeypatch.setattr(jsonlog, "FLAT_MIN_ROWS", 0)
    fast = parser.parse_batch(lines)
    with monkeypatch.context() as mp:
        mp.setattr(native, "library", lambda: None)
        slow = parser.parse_batch(lines)
    assert fast.records.schema == slow.records.schema
    assert fast.records.to_pylist() == slow.records.to_pylist()
    assert fast.rejects.to_pylist() == slow.rejects.to_pylist()
    return fast.records.to_pylist(), fast.rejects.to_pylist()


def taken(lines: list[str], monkeypatch) -> int:
    import polars as pl

    monkeypatch.setattr(jsonlog, "FLAT_MIN_ROWS", 0)
    frame = pl.DataFrame({"body": lines, "line_number": range(1, len(lines) + 1), "raw": lines,
                          "pod": [None] * len(lines), "container": [None] * len(lines),
                          "received_at": [None] * len(lines)},
                         schema_overrides={c: pl.String for c in ("pod", "container", "received_at")})
    got, _rest, _nulled = jsonlog.take_flat(frame)
    return 0 if got is None else got.height


@pytest.mark.parametrize("path", JSON_SAMPLES, ids=lambda p: p.name)
def test_json_samples_read_the_same(parser, path, monkeypatch):
    lines = read_lines(path)
    both(parser, lines, monkeypatch)


def test_plain_istio_lines_are_taken_natively(parser, monkeypatch):
    lines = read_lines(SAMPLES / "istio-json-1.24.log") + read_lines(SAMPLES / "istio-json-1.5.log")
    assert taken(lines, monkeypatch) == len(lines)
    assert taken(read_lines(SAMPLES / "ztunnel-json.log"), monkeypatch) == 0


def line(**changes) -> str:
    obj = dict(ISTIO)
    obj.update(changes)
    return json.dumps({k: v for k, v in obj.items() if v is not ...}, separators=(",", ":"), ensure_ascii=False)


EDGES = {
    # taken natively
    "plain": (line(), 1),
    "spaces": (json.dumps(ISTIO, indent=None, separators=(" , ", " : ")), 1),
    "tabs and spaces": ("{ \t\"start_time\" :\t\"2024-12-09T13:40:07.513Z\" , \"response_code\": 200 }\t ", 1),
    "unicode": (line(user_agent="Grüße ✓ 🚀", path="/ü"), 1),
    "DEL is not a control": (line(user_agent="a\x7fb"), 1),
    "true false null": (line(user_agent=True, path=False, authority=None), 1),
    "negative int": (line(duration=-12), 1),
    "zero": (line(bytes_sent=0), 1),
    "18 digits": (line(bytes_sent=10**17), 1),
    "empty string": (line(path=""), 1),
    "unknown keys skipped": (line(x_b3_traceid="abc", extra=12), 1),
    "unknown key twice": ('{"a":1,"a":2,' + line()[1:], 1),
    "method is start_time (1.1)": (line(method="2024-12-09T13:40:07.513Z", istio_policy_status="-"), 1),
    "1.3 keys": (line(istio_policy_status="-"), 1),
    "1.8 keys": (line(response_code_details=...), 1),
    "no start_time": (line(start_time=...), 0),
    # strings are scanned 16 bytes at a time: their end at, before and after a 16-byte boundary
    **{f"a {n}-byte string": (line(path="p" * n), 1) for n in (15, 16, 17, 31, 32, 33)},
    "long unicode": (line(user_agent="Mozilla/5.0 Grüße ✓ 🚀 " * 3), 1),
    # json.loads reads them
    "escaped quote": (line(user_agent='say "hi"'), 0),
    "escaped quote late": (line(user_agent="x" * 21 + 'say "hi"'), 0),
    "control character late": (line()[:-1] + ',"path":"' + "a" * 20 + '\x01b"}', 0),
    "escaped unicode": (json.dumps({**ISTIO, "path": "/é"}), 0),
    "escaped key": ('{"start\\u005ftime":"2024-12-09T13:40:07.513Z","response_code":200}', 0),
    "float": (line(duration=1.5), 0),
    "float integer": (line(duration=2.0), 0),
    "exponent": (line(bytes_sent=1e3), 0),
    "minus zero": (line(duration=...)[:-1] + ',"duration":-0}', 0),
    "leading zero": (line(duration=...)[:-1] + ',"duration":012}', 0),
    "19 digits": (line(bytes_sent=10**18), 0),
    "huge int": (line(bytes_sent=10**30), 0),
    "NaN": (line(duration=...)[:-1] + ',"duration":NaN}', 0),
    "nested value": (line(path={"a": 1}), 0),
    "nested unknown": (line(tags=["a", "b"]), 0),
    "known key twice": (line()[:-1] + ',"path":"/again"}', 0),
    "ztunnel key": (line(scope="access"), 0),
    "control character": (line()[:-1] + ',"path":"a\tb"}', 0),
    "trailing comma": (line()[:-1] + ",}", 0),
    "trailing text": (line() + " x", 0),
    "two objects": (line() + line(), 0),
    "cut short": (line()[:-10], 0),
    "missing colon": ('{"start_time" "x","response_code":200}', 0),
    "empty object": ("{}", 0),
    "array": ("[1,2]", 0),
}


@pytest.mark.parametrize("name", list(EDGES))
def test_edges_read_the_same(parser, name, monkeypatch):
    text, natively = EDGES[name]
    assert taken([text], monkeypatch) == natively
    both(parser, [text, line()], monkeypatch)


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.text(min_size=13, max_size=40),
    st.sampled_from(["-", "", "10.0.0.1:80", "[2001:db8::1]:443", "outbound|80||x.svc", "GET", "200"]),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=2), st.dictionaries(st.text(max_size=3), SCALARS, max_size=2))
KEYS = st.sampled_from([*jsonlog.FLAT_KEYS, *jsonlog.STOP_KEYS, "level", "log", "stream", "x", "time"])


# (25 batches of 8 to 36 objects, ~400 in all: 50 batches of up to 36 gave ~250, hypothesis' lists
# averaging ~5 elements unless their minimum is raised; a parse costs ~25 ms a batch whatever its
# size, twice an example; and larger batches mix more kinds of line)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(objs=st.lists(st.dictionaries(KEYS, VALUES, max_size=8), min_size=8, max_size=36),
       seed=st.integers(0, 2**16))
def test_generated_objects_read_the_same(parser, objs, seed, monkeypatch):
    rng = random.Random(seed)
    lines = []
    for obj in objs:
        if rng.random() < 0.7:  # most lines look like Istio's
            obj = {**{k: ISTIO[k] for k in rng.sample(sorted(ISTIO), 6)}, "start_time": ISTIO["start_time"],
                   "response_code": rng.choice([200, 503, 0, "200"]), **obj}
        text = json.dumps(obj, ensure_ascii=rng.random() < 0.3,
                          separators=rng.choice([(",", ":"), (", ", ": "), (" ,", " :")]))
        r = rng.random()
        if r < 0.05:
            text = text[:rng.randrange(1, len(text))]
        elif r < 0.1:
            text = text[:-1] + ',"path":"dup"}'
        lines.append(text)
    both(parser, lines, monkeypatch)


def test_json_batches_take_the_native_reading_only_when_large(parser, monkeypatch):
    """A stream's micro-batch of a few JSON lines goes to json.loads (as cheap as the native call)."""
    results = []
    real = jsonlog.take_flat
    monkeypatch.setattr(jsonlog, "take_flat", lambda *a: results.append(real(*a)) or results[-1])
    small = parser.parse_batch([line()] * 3)
    large = parser.parse_batch([line()] * jsonlog.FLAT_MIN_ROWS)
    assert results[0][0] is None and results[1][0].height == jsonlog.FLAT_MIN_ROWS
    assert small.records.to_pylist() == large.records.to_pylist()[:3]


FLAT_FORMAT = {"ts": "%START_TIME%", "status": "%RESPONSE_CODE%", "host": "%REQ(:AUTHORITY)%",
               "trace": "%REQ(X-B3-TRACEID)%", "upstream": "%UPSTREAM_HOST%", "cluster": "%UPSTREAM_CLUSTER%",
               "bytes": "%BYTES_SENT%", "constant": "mesh-a"}


@pytest.fixture(scope="module")
def custom_parser(parser):
    from logpipe import layouts

    return layouts.parser_from_options(format_string=json.dumps(FLAT_FORMAT))


def custom_line(rng: random.Random, **changes) -> str:
    obj = {"ts": "2024-12-09T13:40:07.513Z", "status": rng.choice([200, 503, "-"]), "host": rng.choice(["a.io", "-", None]),
           "trace": rng.choice(["abc123", None]), "upstream": "192.0.2.7:443",
           "cluster": rng.choice(["outbound|443||a.io;", "PassthroughCluster"]), "bytes": rng.randrange(10**6),
           "constant": "mesh-a"}
    for k in rng.sample(sorted(obj), rng.randrange(0, 6)):  # fewer than half of the keys: not this format's
        del obj[k]
    obj.update(changes)
    return json.dumps(obj)


def test_a_json_format_reads_the_same(custom_parser, monkeypatch):
    """A custom JSON format's lines (at least half its keys), Istio's among them and the odd ones:
    natively where cut.c can, the same records and rejects as json.loads and json_record."""
    rng = random.Random(7)
    lines = [custom_line(rng) for _ in range(300)]
    lines += read_lines(SAMPLES / "istio-json-1.24.log") + [custom_line(rng, trace='say "hi"'),
                                                            custom_line(rng, ts="x", ts2={"a": 1})]
    rng.shuffle(lines)
    records, _ = both(custom_parser, lines, monkeypatch)
    kinds = {r["log_format"] for r in records}
    assert {"custom_json", "istio_json"} <= kinds


def test_a_json_format_is_taken_natively(custom_parser, monkeypatch):
    rng = random.Random(8)
    lines = [custom_line(rng, ts="2024-12-09T13:40:07.513Z", status=200, host="a.io", trace="t", bytes=1)
             for _ in range(50)]
    results = []
    real = jsonlog.take_flat
    monkeypatch.setattr(jsonlog, "FLAT_MIN_ROWS", 0)
    monkeypatch.setattr(jsonlog, "take_flat", lambda *a: results.append(real(*a)) or results[-1])
    batch = custom_parser.parse_batch(lines)
    assert batch.records.num_rows == 50 and results[0][0].height == 50
    assert set(batch.records.column("log_format").to_pylist()) == {"custom_json"}


def test_a_json_formats_few_keys_with_istios_names_are_its_line_in_any_batch(parser, monkeypatch):
    """A JSON format that names its keys as Istio's encoding does, and Envoy's omit_empty_values: a TCP
    line holds two or more of the format's keys but under half of them. cut.c's reading gave it to
    the Istio reading (start_time and response_code), as istio_json_1_8 with the format's own keys
    (bytes, client) dropped; json.loads, in a small batch, read it as the format's."""
    from logpipe import layouts

    fmt = {"start_time": "%START_TIME%", "response_code": "%RESPONSE_CODE%", "upstream_cluster": "%UPSTREAM_CLUSTER%",
           "bytes": "%BYTES_SENT%", "client": "%DOWNSTREAM_REMOTE_ADDRESS%", "trace": "%REQ(X-B3-TRACEID)%",
           "method": "%REQ(:METHOD)%", "path": "%REQ(:PATH)%", "ua": "%REQ(USER-AGENT)%", "dur": "%DURATION%",
           "up": "%UPSTREAM_HOST%", "flags": "%RESPONSE_FLAGS%"}
    custom = layouts.parser_from_options(format_string=json.dumps(fmt))
    tcp = json.dumps({"start_time": "2025-01-30T10:53:24.085Z", "response_code": 0,
                      "upstream_cluster": "PassthroughCluster", "bytes": 5, "client": "10.0.0.1:1234"})
    records, rejects = both(custom, [tcp] * 3, monkeypatch)
    assert rejects == [] and {(r["log_format"], r["bytes_sent"], r["downstream_remote_address_ip"])
                              for r in records} == {("custom_json", 5, "10.0.0.1")}


def test_a_missing_list_key_is_null_whatever_the_batch(parser, monkeypatch):
    """response_flags: "-" is Envoy's "none", an empty list; an absent key or a JSON null is unknown,
    null, in any batch (it was [] when another line of the batch had the key)."""
    without = line(response_flags=...)
    alone, _ = both(parser, [without, without], monkeypatch)
    mixed, _ = both(parser, [without, line(response_flags="UH,UF")], monkeypatch)
    assert alone[0]["response_flags"] is None and mixed[0]["response_flags"] is None
    assert mixed[1]["response_flags"] == ["UH", "UF"]
    (dash, null), _ = both(parser, [line(response_flags="-"), line(response_flags=None)], monkeypatch)
    assert dash["response_flags"] == [] and null["response_flags"] is None


ADDRESSES = st.one_of(
    st.sampled_from(["10.244.0.18:41548", "[fe80::1]:8080", "fe80::1:443", "envoy://internal_client_address/", "-", "",
                     "envoy://connect_originate/10.0.0.7:80", "unix://@/var/run/sock", "10.0.0.1", ":80", "a:b:c",
                     "240.240.0.2:80", "[::1]:", "[::1]:99999999999", "1.2.3.4:٣", "é:1"]),
    st.text(st.sampled_from("0123456789.:[]abcdef/-é"), max_size=24),
)


# (15 batches of 8 to 40 lines, ~230 in all: 30 of 1 to 40 gave ~170; three parses an example)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(ADDRESSES, ADDRESSES, ADDRESSES, ADDRESSES), min_size=8, max_size=40))
def test_json_addresses_read_from_the_right_as_their_regex_reads_them(parser, monkeypatch, rows):
    """A JSON value's address sub-fields (ip, port) are read as the text layouts read an address
    token (its Tail: split at the last ':', natively, then the head's and port's regexes), not by the
    address regex over every value: the same columns, with cut.c and without."""
    lines = [line(upstream_host=a, upstream_local_address=b, downstream_local_address=c, downstream_remote_address=d)
             for a, b, c, d in rows]
    by_tail, _ = both(parser, lines, monkeypatch)
    with monkeypatch.context() as mp:
        mp.setattr(WholeValues, "_token", lambda self, column: None)  # every value by the address regex
        by_regex = parser.parse_batch(lines)
    assert by_tail == by_regex.records.to_pylist()
