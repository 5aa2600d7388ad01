"""Custom formats (logpipe/formats.py, layouts.py, formatfile.py): format string -> grammar -> records,
JSON formats, format files, the ambiguity check, and the CLI (grammar, formats, detect, parse --format-*)."""
from __future__ import annotations

import datetime as dt
import functools
import json
import pickle
import re

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SAMPLES, read_lines, sample_files, sample_id, split_part
from logpipe import formatfile, formats, layouts
from logpipe.cli import cli
from logpipe.errors import InputError
from logpipe.parse import Parser, default_parser
from logpipe.runtimes import parts_at_end
from logpipe.schema import COLUMNS

UTC = dt.timezone.utc
TEXT_LAYOUTS = [n for n, (_v, f) in formats.BUILTIN_LAYOUTS.items() if "%START_TIME%" in f]


@functools.lru_cache(maxsize=None)
def custom_layout(fmt: str) -> layouts.CustomLayout:
    """The format's layout, compiled once (~60 ms: its grammar's) for its fast and exact parsers."""
    return layouts.layout_from_format(fmt)


@functools.lru_cache(maxsize=None)
def custom_parser(fmt: str, fast: bool = True) -> Parser:
    return Parser(custom=custom_layout(fmt), fast=fast)


def rows(parser: Parser, lines: list[str], source: str = "t.log"):
    batch = parser.parse_batch(lines, source)
    return batch.records.to_pylist(), batch.rejects.to_pylist()


# ---- the generated grammar parses exactly like the built-in one --------------------------------------


@functools.lru_cache(maxsize=None)
def builtin_reading(path) -> tuple[list[str], list[dict], list[dict]]:
    """A sample's lines, and the built-in grammar's records and rejects of them, the file parsed
    alone (a `tail -f` header of one names no other file's lines): once for the module's tests."""
    lines = path.read_text(encoding="utf-8", errors="backslashreplace").splitlines()
    return (lines, *rows(default_parser(), lines))


@pytest.mark.parametrize("path", sample_files(), ids=sample_id)
def test_istio_default_format_parses_like_builtin(path):
    """`logpipe grammar --from-format` of Istio's 1.23 default format gives the same records as the
    built-in grammar on every sample line; the lines of that layout are taken by the custom one."""
    lines, want, want_rej = builtin_reading(path)
    want = [dict(r) for r in want]  # (popped below: the module's reading stays whole)
    got, got_rej = rows(custom_parser(formats.ISTIO_1_23_FORMAT), lines)
    assert len(got) == len(want)
    for w, g in zip(want, got):
        if g["log_format"] == "custom":
            assert w["log_format"] == "istio_1_9"
        else:
            assert g["log_format"] == w["log_format"]
        w.pop("log_format"), g.pop("log_format")
        assert g == w
    assert [(r["line_number"], r["class"]) for r in got_rej] == [(r["line_number"], r["class"]) for r in want_rej]


@pytest.mark.parametrize("layout", TEXT_LAYOUTS)
def test_builtin_format_strings_compile_to_their_layout(layout):
    """Each built-in layout's format string, compiled, takes that layout's sample lines with the same
    values in every schema column (Istio 1.1-1.7's mixer status becomes an extra column)."""
    lines, records = all_sample_records()
    want = [r for r in records if r["log_format"] == layout]
    assert want, f"no sample line of layout {layout}"
    fmt = formats.BUILTIN_LAYOUTS[layout][1]
    mine = Parser(custom=layouts.layout_from_format(fmt))
    mine.fastpath.layouts = mine.fastpath.layouts[:1]  # only the custom layout
    got, rejects = rows(mine, [lines[w["line_number"] - 1] for w in want])
    assert rejects == [] and {r["log_format"] for r in got} == {"custom"}
    for w, g in zip(want, got):
        # (not a `tail -f` header's pod and container: the lines here are parsed without it)
        same = [k for k in COLUMNS if k not in ("log_format", "line_number")
                and not (k in ("pod", "container") and g["pod"] is None and w["received_at"] is not None)]
        assert {k: g[k] for k in same} == {k: w[k] for k in same}


@functools.lru_cache(maxsize=None)
def all_sample_records():
    """Every sample's lines, numbered one after the other, and their records, each file parsed
    alone (``builtin_reading``)."""
    lines, records = [], []
    for p in sample_files():
        mine, got, _rejects = builtin_reading(p)
        records += [dict(r, line_number=r["line_number"] + len(lines)) for r in got]
        lines += mine
    return lines, [r for r in records if not split_part(lines[r["line_number"] - 1])]


# ---- a dozen realistic custom formats, round-tripped with generated values --------------------------

CUSTOM_FORMATS = [
    formats.ISTIO_1_23_FORMAT,
    formats.ENVOY_DEFAULT_FORMAT,
    # fields reordered, client first
    '[%START_TIME%] %DOWNSTREAM_REMOTE_ADDRESS% "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    '%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER%',
    # the default plus B3 trace headers
    formats.ISTIO_1_23_FORMAT + " %REQ(X-B3-TRACEID)% %REQ(X-B3-SPANID)%",
    # epoch START_TIME
    '%START_TIME(%s.%3f)% %REQ(:METHOD)% "%REQ(:PATH)%" %RESPONSE_CODE% %DURATION% %UPSTREAM_CLUSTER% %UPSTREAM_HOST%',
    # strftime START_TIME with a zone offset
    '[%START_TIME(%Y/%m/%dT%H:%M:%S%z)%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    '%RESPONSE_CODE% %RESPONSE_FLAGS% "%REQ(USER-AGENT)%"',
    # peer identities for egress attribution
    '[%START_TIME%] %DOWNSTREAM_PEER_URI_SAN% %UPSTREAM_PEER_URI_SAN% %REQUESTED_SERVER_NAME% %UPSTREAM_CLUSTER% '
    '%DOWNSTREAM_LOCAL_ADDRESS% %BYTES_SENT%',
    # key=value style
    'start=%START_TIME% method=%REQ(:METHOD)% path="%REQ(:PATH)%" status=%RESPONSE_CODE% flags=%RESPONSE_FLAGS% '
    'upstream=%UPSTREAM_HOST% cluster=%UPSTREAM_CLUSTER% dur=%DURATION%',
    # pipe-delimited
    "%START_TIME%|%REQ(:AUTHORITY)%|%RESPONSE_CODE%|%UPSTREAM_CLUSTER_RAW%|%DOWNSTREAM_REMOTE_ADDRESS%",
    # Envoy's counts of no record column: extra 64-bit int columns
    '[%START_TIME%] %RESPONSE_CODE% %REQUEST_DURATION% %RESPONSE_DURATION% "%REQ(:AUTHORITY)%" '
    '%UPSTREAM_WIRE_BYTES_SENT% %UPSTREAM_REQUEST_ATTEMPT_COUNT% %UPSTREAM_CLUSTER%',
    # bare START_TIME first (looks like a kubectl --timestamps prefix)
    "%START_TIME% %RESPONSE_CODE% %REQ(:AUTHORITY)% %UPSTREAM_HOST% %DURATION%",
    # tab-separated, with operators logpipe has no column for
    "%START_TIME%\t%RESPONSE_FLAGS_LONG%\t%HOSTNAME%\t%ENVIRONMENT(POD_NAME)%\t%RESPONSE_CODE%",
    # metadata and filter state, quoted
    '[%START_TIME%] "%DYNAMIC_METADATA(istio.mixer:status)%" "%FILTER_STATE(io.istio.peer_principal:PLAIN)%" '
    '%RESPONSE_CODE% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%"',
    # Istio 1.23+ with %UPSTREAM_CLUSTER% (prints the ";" of alt_stat_name) and a response header
    formats.ISTIO_1_23_FORMAT.replace("%UPSTREAM_CLUSTER_RAW%", "%UPSTREAM_CLUSTER%") + ' "%RESP(CONTENT-TYPE)%"',
]

BARE = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEF0123456789._:/-", min_size=1, max_size=24)
QUOTED = st.text(alphabet="abcdefABCDEF0123456789 ._:/;,=()[]{}-", max_size=30)
CLUSTERS = ["outbound|443||api.example.com", "inbound-vip|80|http|httpbin.org", "PassthroughCluster",
            "BlackHoleCluster", "inbound|8080||", "outbound|80|v1|reviews.default.svc.cluster.local"]
ADDRESSES = st.one_of(
    st.builds("192.0.2.{}:{}".format, st.integers(0, 255), st.integers(1, 65535)),
    st.builds("[2001:db8::{:x}]:{}".format, st.integers(1, 65535), st.integers(1, 65535)),
    st.just("-"),
)
TIMES = st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2099, 1, 1)).map(
    lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000, tzinfo=UTC))


def value_strategy(op: formats.Operator, quoted: bool):
    """(text printed in the line, expected record value) for one operator."""
    shape = op.shape
    if shape == "time":
        return st.tuples(TIMES, st.integers(-12, 14)).map(lambda x: render_time(op.arg, *x))
    if shape == "method":
        return st.sampled_from(["GET", "POST", "PUT", "-"]).map(lambda v: (v, None if v == "-" else v))
    if shape == "protocol":
        return st.sampled_from(["HTTP/1.1", "HTTP/2", "-"]).map(lambda v: (v, None if v == "-" else v))
    if shape == "int":
        return st.integers(0, 599).map(lambda v: (str(v), v))
    if shape == "count":
        return st.one_of(st.integers(0, 10**12).map(lambda v: (str(v), v)), st.just(("-", None)))
    if shape == "flags":
        return st.sampled_from(["-", "UF", "UF,URX", "NR", "DC,UH"]).map(
            lambda v: (v, [] if v == "-" else v.split(",")))
    if shape == "flags_long":  # (stored as the short codes; an extension's own flag as it is)
        return st.sampled_from([("-", []), ("UpstreamConnectionFailure", ["UF"]), ("NoRouteFound", ["NR"]),
                                ("UpstreamConnectionFailure,UpstreamRetryLimitExceeded", ["UF", "URX"]),
                                ("DnsResolutionFailed,MyOwnFlag", ["DF", "MyOwnFlag"])])
    if shape == "address":
        return ADDRESSES.map(lambda v: (v, None if v == "-" else v))
    if shape == "cluster":
        semi = st.booleans() if op.name == "UPSTREAM_CLUSTER" else st.just(False)
        return st.tuples(st.sampled_from(CLUSTERS), semi).map(lambda x: (x[0] + (";" if x[1] else ""), x[0]))
    if op.column == "path":
        text = st.text(alphabet="abcdef0123456789/?=&.-_ %", min_size=1, max_size=30).map(lambda s: "/" + s)
        return text.map(lambda v: (v, v))
    strategy = QUOTED if quoted else BARE
    return strategy.map(lambda v: (v, None if v in ("", "-") else v))


def render_time(spec, t: dt.datetime, hours: int):
    """START_TIME as Envoy prints it (usage.rst): default ISO-8601 UTC with ms, or the spec."""
    if not spec:
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z", t
    if "%s" in spec:
        return spec.replace("%s", str(int(t.timestamp()))).replace("%3f", f"{t.microsecond // 1000:03d}"), t
    t = t.replace(microsecond=0)
    return t.astimezone(dt.timezone(dt.timedelta(hours=hours))).strftime(spec), t


def line_strategy(fmt: str):
    pieces = formats.parse_format(fmt)
    parts = []
    for i, p in enumerate(pieces):
        if isinstance(p, str):
            parts.append(st.just((p, None, None)))
        else:
            prev, nxt = pieces[i - 1] if i else "", pieces[i + 1] if i + 1 < len(pieces) else ""
            quoted = isinstance(prev, str) and prev.endswith('"') and isinstance(nxt, str) and nxt.startswith('"')
            parts.append(value_strategy(p, quoted).map(lambda x, col=p.column: (x[0], col, x[1])))
    return st.tuples(*parts)


@pytest.mark.parametrize("fmt", CUSTOM_FORMATS, ids=range(len(CUSTOM_FORMATS)))
def test_custom_format_round_trip(fmt):
    """Lines printed from the format string parse back to the values that printed them."""
    fast = custom_parser(fmt)

    # (12 batches of up to 10 lines: about as many lines as 25 batches of up to 4, ~55 of a format,
    # with half the batches' fixed cost of parsing and of hypothesis' own)
    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(line_strategy(fmt), min_size=1, max_size=10))
    def check(generated):
        lines = ["".join(text for text, _c, _v in parts) for parts in generated]
        got, rejects = rows(fast, lines)
        assert rejects == [] and len(got) == len(lines)
        for parts, record in zip(generated, got):
            assert record["log_format"] == "custom"
            for _text, column, value in parts:
                if column is not None:
                    assert record[column] == value, (column, _text)

    check()


@pytest.mark.parametrize("fmt", CUSTOM_FORMATS, ids=range(len(CUSTOM_FORMATS)))
def test_custom_format_fast_and_exact_paths_agree(fmt):
    """The regex generated from the custom grammar and Lark's parse of it give the same records
    (few examples: the Earley path takes ~0.2 s on a long line)."""
    fast, exact = custom_parser(fmt), custom_parser(fmt, fast=False)

    @settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(line_strategy(fmt))
    def check(parts):
        line = "".join(text for text, _c, _v in parts)
        got, rejects = rows(exact, [line])
        assert rejects == [] and got == rows(fast, [line])[0]

    check()


def test_a_trailing_space_of_free_text_that_ends_the_format_is_kept_on_both_paths():
    """A format ending in unquoted free text takes the rest of the line, a header's trailing space too,
    as the line is written (a line no layout takes as it is is tried again without its white space):
    the fast path kept it; Parser(fast=False) read only the line without it ('abc', '"')."""
    fmt = '[%START_TIME%] %RESPONSE_CODE% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %REQ(X-B3-TRACEID)%'
    lines = ['[2025-03-01T10:00:00.123Z] 0 "-" abc ', '[2025-03-01T10:00:00.123Z] 0 "-" " ', '  [2025-03-01T10:00:00.123Z] 0 "-" x']
    for parser in (custom_parser(fmt), custom_parser(fmt, fast=False)):
        got, rejects = rows(parser, lines)
        assert rejects == [] and [r["x_b3_traceid"] for r in got] == ["abc ", '" ', "x"]


SAMPLE_HEAD_LINES = 2  # (of every sample: the exact path costs ~10 ms a line)


@pytest.mark.parametrize("fmt", [
    # Istio's own start, then fewer fields
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% '
    '%BYTES_RECEIVED% %BYTES_SENT% %DURATION% "%REQ(:AUTHORITY)%" %UPSTREAM_CLUSTER%',
    CUSTOM_FORMATS[10],  # bare START_TIME first (a kubectl --timestamps or CRI prefix looks like it)
    CUSTOM_FORMATS[7],  # key=value: starts as no built-in layout does
], ids=["istio-head", "bare-time", "key-value"])
def test_custom_format_fast_and_exact_paths_agree_on_samples(fmt):
    """Under a custom format, the lines of the samples (Istio's own layouts among them, with their
    prefixes) give the same records, or rejects of the same class, on the fast path and with
    ``fast=False``. A line of Istio's layout under a format that starts as it does (``[%START_TIME%] ``)
    follows the format for two fields and then departs: the fast path's built-in regex reads it; the
    exact path read it as the format's malformed line."""
    fast, exact = custom_parser(fmt), custom_parser(fmt, fast=False)
    for path in sample_files():
        if path.name.endswith((".gz", ".zst", ".bz2")):
            continue
        lines = read_lines(path)[:SAMPLE_HEAD_LINES]
        held = parts_at_end(lines)  # (a line a container runtime split: not cut between its parts)
        lines = lines[:len(lines) - held] if held < len(lines) else lines
        if not lines:
            continue
        (f_rec, f_rej), (e_rec, e_rej) = rows(fast, lines, sample_id(path)), rows(exact, lines, sample_id(path))
        f_rec, e_rec = ({r["line_number"]: r for r in x} for x in (f_rec, e_rec))
        for n in sorted(set(f_rec) | set(e_rec)):
            where = f"{sample_id(path)}:{n}: {lines[n - 1][:100]!r}"
            a, b = f_rec.get(n), e_rec.get(n)
            assert a is not None and b is not None, f"{where}: only the {'fast' if a else 'exact'} path parses it"
            assert a == b, f"{where}: {({k: (a[k], b[k]) for k in a if a[k] != b[k]})}"
        assert {r["line_number"]: r["class"] for r in f_rej} == {r["line_number"]: r["class"] for r in e_rej}, \
            sample_id(path)


@pytest.mark.parametrize("op, column", [
    ("%REQ(X-B3-TRACEID)%", "x_b3_traceid"),
    ("%REQ(X-B3-TRACEID):16%", "x_b3_traceid"),
    ("%DOWNSTREAM_PEER_URI_SAN%", "downstream_peer_uri_san"),
    ("%UPSTREAM_PEER_URI_SAN%", "upstream_peer_uri_san"),
    ("%REQ(:SCHEME)%", "scheme"),
    ("%RESP(CONTENT-TYPE)%", "content_type"),
    ("%TRAILER(GRPC-STATUS)%", "grpc_status"),
    ("%DYNAMIC_METADATA(istio.mixer:status)%", "dynamic_metadata_istio_mixer_status"),
    ("%DYNAMIC_METADATA(envoy.filters.http.rbac):25%", "dynamic_metadata_envoy_filters_http_rbac"),
    # a filter state's column is its key's: PLAIN/TYPED is how Envoy serializes it, not a key (usage.rst
    # %FILTER_STATE(KEY:F):Z%); FIELD reads one field of it, which names it too
    ("%FILTER_STATE(istio.peer_principal:PLAIN)%", "filter_state_istio_peer_principal"),
    ("%FILTER_STATE(istio.peer_principal:TYPED):64%", "filter_state_istio_peer_principal"),
    ("%FILTER_STATE(istio.peer_principal)%", "filter_state_istio_peer_principal"),
    ("%UPSTREAM_FILTER_STATE(envoy.upstream.dynamic_host:PLAIN)%", "upstream_filter_state_envoy_upstream_dynamic_host"),
    ("%FILTER_STATE(envoy.filters.listener.original_dst.local_ip:FIELD:ip)%",
     "filter_state_envoy_filters_listener_original_dst_local_ip_ip"),
    ("%ENVIRONMENT(POD_NAME)%", "environment_pod_name"),
    ("%HOSTNAME%", "hostname"),
    ("%UPSTREAM_CLUSTER_RAW%", "upstream_cluster"),
    ("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "path"),
    ("%REQ(HOST)%", "req_host"),  # `host` is the cluster's sub-rule
    ("%REQ(DURATION)%", "req_duration"),  # never lands in a typed column by accident
    # never takes a column the dataset or the views add (the Hive partition, traffic.sql's)
    ("%RESP(DATE)%", "resp_date"),
    ("%REQ(DESTINATION)%", "req_destination"),
    ("%REQ(source-ip)%", "req_source_ip"),
    ("%EGRESS_KIND%", "envoy_egress_kind"),
    # header names in any case, as Envoy matches them; Envoy's long names of REQ/RESP; X?Y by X
    ("%REQ(:authority)%", "authority"),
    ("%REQ(user-agent)%", "user_agent"),
    ("%REQUEST_HEADER(X-REQUEST-ID)%", "request_id"),
    ("%RESPONSE_HEADER(x-envoy-upstream-service-time)%", "upstream_service_time"),
    ("%REQ(X-FORWARDED-FOR?X-REAL-IP)%", "x_forwarded_for"),
    ("%REQ(:PATH?X-ENVOY-ORIGINAL-PATH)%", "path"),
    ("%REQ(x-b3-traceid)%", "x_b3_traceid"),
])
def test_operator_column_names(op, column):
    assert formats.parse_format(f"[%START_TIME%] {op}")[-1].column == column


def test_a_second_operator_of_a_column_gets_a_column_of_its_own():
    """Two operators of one record column (the original and the rewritten path, a cluster's stat name
    and its raw name): the first fills it, the second is an extra column; neither is lost or mixed."""
    fmt = ("[%START_TIME%] %REQ(:METHOD)% orig=%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% rewritten=%REQ(:PATH)% "
           "%RESPONSE_CODE% stat=%UPSTREAM_CLUSTER% raw=%UPSTREAM_CLUSTER_RAW%")
    line = ("[2025-03-01T10:00:00.123Z] GET orig=/api/v1/users rewritten=/users 200 stat=users-stats "
            "raw=outbound|8080||users.prod.svc.cluster.local")
    parser = Parser(custom=layouts.layout_from_format(fmt))
    (r,) = parser.parse_batch([line]).records.to_pylist()
    assert (r["path"], r["req_path"]) == ("/api/v1/users", "/users")
    assert (r["upstream_cluster"], r["upstream_cluster_raw"]) == ("users-stats", "outbound|8080||users.prod.svc.cluster.local")
    assert r["upstream_cluster_host"] is None and r["upstream_cluster_direction"] is None  # (not the second's)


def test_one_filter_state_logged_twice_gets_a_column_each():
    """The same filter state in two serializations names one key: the second is the key's column `_2`.
    (TYPED's JSON string is stored as the string it is: it kept its quotes, test_formats_edges.)"""
    fmt = '[%START_TIME%] "%FILTER_STATE(istio.peer_principal:PLAIN)%" %FILTER_STATE(istio.peer_principal:TYPED)%'
    layout = layouts.layout_from_format(fmt)
    assert layout.extra == ["filter_state_istio_peer_principal", "filter_state_istio_peer_principal_2"]
    line = '[2025-03-01T10:00:00.123Z] "spiffe://cluster.local/ns/a/sa/b" "spiffe://cluster.local/ns/a/sa/b"'
    (r,) = Parser(custom=layout).parse_batch([line]).records.to_pylist()
    assert r["filter_state_istio_peer_principal"] == "spiffe://cluster.local/ns/a/sa/b"
    assert r["filter_state_istio_peer_principal_2"] == "spiffe://cluster.local/ns/a/sa/b"


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("fmt, line, second", [
    ("[%START_TIME%] %RESPONSE_CODE% %START_TIME(%s)%", "[2025-03-01T10:00:00.123Z] 200 1740823200", "1740823200"),
    ("[%START_TIME%] %RESPONSE_CODE% ts=%START_TIME(%s.%3f)%", "[2025-03-01T10:00:00.123Z] 200 ts=1740823200.123",
     "1740823200.123"),
    ("[%START_TIME%] %RESPONSE_CODE% %START_TIME(%Y-%m-%d %H:%M:%S)% %BYTES_SENT%",
     "[2025-03-01T10:00:00.123Z] 200 2025-03-01 10:00:00 17", "2025-03-01 10:00:00"),
])
def test_a_second_start_time_is_an_extra_column(fmt, line, second, fast):
    """A second %START_TIME(…)% (another rendering of the time) is an extra text column, start_time_2,
    with a rule of its own: the first START_TIME is start_time, read with its own spec."""
    grammar = formats.grammar_from_format(fmt)
    assert "start_time: ISO_TIME" in grammar and "\nstart_time_2: " in grammar
    layout = layouts.layout_from_format(fmt)
    assert layout.extra == ["start_time_2"] and layout.time_format is None
    (r,), rejects = rows(Parser(custom=layout, fast=fast), [line])
    assert rejects == []
    assert r["start_time"] == dt.datetime(2025, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert (r["response_code"], r["start_time_2"]) == (200, second)


def test_three_start_times_are_numbered_as_other_duplicates():
    pieces = formats.parse_format("%START_TIME(%s)% %START_TIME% %START_TIME(%s)% %REQ(A)% %REQ(A)%")
    assert [p.column for p in pieces if isinstance(p, formats.Operator)] == [
        "start_time", "start_time_2", "start_time_3", "a", "a_2"]


@pytest.mark.parametrize("fast", [True, False])
def test_an_operator_argument_may_hold_parentheses(fast):
    """Envoy >= 1.31 reads an operator's argument to the ")" that is followed by "%" or ":N%"
    (envoyproxy/envoy PR #34369), so a CEL expression may call functions; operators that touch
    (%REQ(A)%%REQ(B)%) are still two, and an argument with a ")" that closes nothing is left open."""
    fmt = ('[%START_TIME%] %RESPONSE_CODE% "%CEL(request.headers["x-foo"].size())%" '
           '%CEL(size(request.path)):8% %REQ(X-A)%')
    ops = [p for p in formats.parse_format(fmt) if isinstance(p, formats.Operator)]
    assert [(p.name, p.arg, p.column) for p in ops[2:]] == [
        ("CEL", 'request.headers["x-foo"].size()', "cel_request_headers_x_foo_size"),
        ("CEL", "size(request.path)", "cel_size_request_path"), ("REQ", "X-A", "x_a")]
    assert ops[3].text == "%CEL(size(request.path)):8%"
    (r,), rejects = rows(Parser(custom=layouts.layout_from_format(fmt), fast=fast),
                         ['[2025-03-01T10:00:00.123Z] 200 "3" 11 abc'])
    assert rejects == []
    assert (r["cel_request_headers_x_foo_size"], r["cel_size_request_path"], r["x_a"]) == ("3", "11", "abc")
    assert [p.text for p in formats.parse_format("%REQ(A)%%REQ(B)%") if isinstance(p, formats.Operator)] == [
        "%REQ(A)%", "%REQ(B)%"]
    assert formats.json_columns({"n": "%CEL(size(request.path))%", "two": "%REQ(A)% %REQ(B)%"}) == {
        "n": "cel_size_request_path"}
    with pytest.raises(formats.FormatError, match=r"close it: %REQ\(:METHOD\)%"):
        formats.parse_format("[%START_TIME%] %REQ(:METHOD) %RESPONSE_CODE% %REQ(X)%")


def test_envoy_s_current_default_format_reads_like_the_old_one():
    """Envoy's docs write its default format with %REQUEST_HEADER(…)% and %RESPONSE_HEADER(…)% now."""
    new = ('[%START_TIME%] "%REQUEST_HEADER(:METHOD)% %REQUEST_HEADER(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
           '%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
           '%RESPONSE_HEADER(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQUEST_HEADER(X-FORWARDED-FOR)%" '
           '"%REQUEST_HEADER(USER-AGENT)%" "%REQUEST_HEADER(X-REQUEST-ID)%" "%REQUEST_HEADER(:AUTHORITY)%" '
           '"%UPSTREAM_HOST%"')
    old = new.replace("REQUEST_HEADER(", "REQ(").replace("RESPONSE_HEADER(", "RESP(")
    rules = lambda fmt: [x for x in formats.grammar_from_format(fmt).splitlines() if not x.startswith("//")]  # noqa: E731
    assert rules(new) == rules(old)


@pytest.mark.parametrize("spec, text, want", [
    ("%s%3f", "1740823200123", "2025-03-01T10:00:00.123Z"),  # epoch milliseconds, no dot
    ("%Y %b %e %H:%M:%S", "2025 Mar  1 10:00:00", "2025-03-01T10:00:00.000Z"),  # %e: space-padded day
    ("%Y-%j %H:%M:%S", "2025-060 10:00:00", "2025-03-01T10:00:00.000Z"),  # %j: day of the year
    ("%Y-%m-%d %I:%M:%S %p", "2025-03-01 10:00:00 PM", "2025-03-01T22:00:00.000Z"),  # %I: the 12-hour clock of %p
    ("%Y-%m-%d %I:%M:%S %p", "2025-03-01 12:05:00 AM", "2025-03-01T00:05:00.000Z"),
])
def test_start_time_specs(spec, text, want):
    parser = Parser(custom=layouts.layout_from_format(f"%START_TIME({spec})% %RESPONSE_CODE%"))
    (r,) = parser.parse_batch([f"{text} 200"]).records.to_pylist()
    assert r["start_time"].isoformat(timespec="milliseconds").replace("+00:00", "Z") == want


@pytest.mark.parametrize("end", ["\r", "\r\n", "\\n\r\n"])
def test_a_format_saved_with_windows_line_ends_reads_its_lines(end):
    """`--format-string "$(cat fmt.txt)"` of a file saved with CRLF line ends keeps the "\r" (the shell
    strips the "\n" only): it was a literal of the format, and every line a reject ("expected '\r'
    after upstream_cluster"). Envoy would log it before the "\n", where the lines are read without it."""
    fmt = "[%START_TIME%] %RESPONSE_CODE% %UPSTREAM_CLUSTER%"
    assert formats.parse_format(fmt + end) == formats.parse_format(fmt)
    got, rejects = rows(Parser(custom=layouts.layout_from_format(fmt + end)),
                        ["[2025-03-01T10:00:00.123Z] 200 outbound|80||a.example"])
    assert rejects == [] and got[0]["upstream_cluster_host"] == "a.example"


@pytest.mark.parametrize("spec, text", [("%s.%3f", "1740823200.123"), ("%d/%b/%Y:%H:%M:%S %z", "01/Mar/2025:11:00:00 +0100")])
def test_a_grammar_from_a_format_reads_its_times_as_the_format_does(tmp_path, spec, text):
    """`logpipe grammar --from-format` writes the START_TIME spec into the grammar (a comment line it
    reads back), so `--grammar` of it reads the times as `--format-string` does."""
    fmt = f"[%START_TIME({spec})%] %REQ(:METHOD)% %RESPONSE_CODE%"
    (tmp_path / "g.lark").write_text(formats.grammar_from_format(fmt))
    by_grammar = layouts.layout_from_options(grammar_file=str(tmp_path / "g.lark"))
    line = f"[{text}] GET 200"
    got = [Parser(custom=c).parse_batch([line]).records.to_pylist()[0]["start_time"]
           for c in (by_grammar, layouts.layout_from_format(fmt))]
    assert got[0] == got[1] == dt.datetime(2025, 3, 1, 10, 0, 0, 123000 if "3f" in spec else 0, tzinfo=dt.timezone.utc)


def test_typed_tabs_and_texts_with_spaces():
    """A tab typed as \\t on a command line is the tab a YAML "\\t" makes; a certificate's subject
    holds spaces, and is read as text."""
    fmt = "%START_TIME%\\t%REQ(:METHOD)%\\t%RESPONSE_CODE% subject=%DOWNSTREAM_PEER_SUBJECT% host=%HOSTNAME%"
    line = "2025-03-01T10:00:00.123Z\tGET\t200 subject=CN=client,O=Example Inc host=gw"
    (r,) = Parser(custom=layouts.layout_from_format(fmt)).parse_batch([line]).records.to_pylist()
    assert (r["method"], r["downstream_peer_subject"], r["hostname"]) == ("GET", "CN=client,O=Example Inc", "gw")


@pytest.mark.parametrize("fast", [True, False])
def test_a_tab_separated_line_that_breaks_is_diagnosed_with_no_tab_in_free_text(fast):
    """Free text may hold a tab (Envoy logs a header's as it is), and such a line still parses; but a
    line that breaks is diagnosed as read with no tab in free text: the path took the tabs after it,
    and the reason named a later field and column than the response code that broke (column 55:
    response_flags expected FLAGS or '-', got '120\tapi.stripe.com')."""
    from logpipe.exact import LARK_CONTEXT_LINES

    fmt = ("[%START_TIME%]\t%REQ(:METHOD)%\t%REQ(:PATH)%\t%RESPONSE_CODE%\t%RESPONSE_FLAGS%\t%BYTES_SENT%"
           "\t%DURATION%\t%REQ(:AUTHORITY)%\t%REQ(USER-AGENT)%")
    line = "[2025-01-30T10:53:21.085Z]\tGET\t/v1/charges\t{}\t-\t1534\t120\tapi.stripe.com\tcurl/8.5.0"
    tabbed = line.format(200).replace("curl/8.5.0", "Mozilla/5.0\t(X11)")
    got, rejects = rows(custom_parser(fmt, fast), [tabbed])
    assert (rejects, [r["user_agent"] for r in got]) == ([], ["Mozilla/5.0\t(X11)"])
    if fast:  # (Parser(fast=False) gives Lark's reason alone)
        bad = line.format("2OO")
        (early,) = rows(custom_parser(fmt), [bad])[1]  # (with Lark's context; the diagnosis alone past its lines)
        (late,) = rows(custom_parser(fmt), [tabbed] * LARK_CONTEXT_LINES + [bad])[1]
        assert "(Lark: " in early["reason"] and "(Lark: " not in late["reason"]
        for r in (early, late):
            assert r["column"] == 44 and "column 44: response_code expected INT, got '2OO'" in r["reason"], r


@pytest.mark.parametrize("fast", [True, False])
def test_a_doubled_percent_is_one_percent_sign_as_envoy_writes_it(fast):
    """Envoy's parser reads "%%" where an operator could start as an escaped "%" (it logs "100%"); the
    closing "%" of one operator before the next ("%REQ(A)%%REQ(B)%") is no escape."""
    fmt = "[%START_TIME%] %RESPONSE_CODE% cpu=100%% %BYTES_SENT% %%done"
    (r,), rej = rows(custom_parser(fmt, fast), ["[2024-07-18T16:13:58.198Z] 200 cpu=100% 52 %done"])
    assert (r["response_code"], r["bytes_sent"], rej) == (200, 52, [])
    _, (bad,) = rows(custom_parser(fmt, fast), ["[2024-07-18T16:13:58.198Z] 200 cpu=100%% 52 %done"])
    assert bad["class"] == "malformed"
    assert [p for p in formats.parse_format("%REQ(A)% %REQ(B)%%RESPONSE_CODE%") if isinstance(p, str)] == [" "]


def test_a_format_that_ends_in_unquoted_free_text_is_said_to_take_any_line(tmp_path):
    """Such a format reads a line of Istio's own layouts as its own (tried first, its last field
    takes the rest): the CLI says so when it compiles it, and not for a format that quotes it."""
    log = tmp_path / "a.log"
    log.write_text(next(x for x in (SAMPLES / "waypoint-egress-1.23.log").read_text().splitlines() if x.startswith("[")) + "\n")
    greedy = '[%START_TIME%] "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%" %RESPONSE_CODE% %REQ(X-B3-TRACEID)%'
    result = CliRunner().invoke(cli, ["parse", "--format-string", greedy, str(log), "-o", "ndjson"])
    assert "note: the format ends with %REQ(X-B3-TRACEID)% unquoted" in result.stderr
    assert json.loads(result.stdout)["log_format"] == "custom"
    quoted = greedy.replace("%REQ(X-B3-TRACEID)%", '"%REQ(X-B3-TRACEID)%"')
    result = CliRunner().invoke(cli, ["parse", "--format-string", quoted, str(log), "-o", "ndjson"])
    assert "note: the format ends with" not in result.stderr and json.loads(result.stdout)["log_format"] == "istio_1_9"


@pytest.mark.parametrize("fmt, want", [
    ("[%START_TIME%] %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %UPSTREAM_REMOTE_ADDRESS%",
     {"downstream_remote_address_ip": "fd00::5", "upstream_host": "[2001:db8::1]:443", "upstream_host_port": 443}),
    ("[%START_TIME%] %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_REMOTE_ADDRESS%",
     {"downstream_remote_address_ip": "2001:db8::1", "downstream_remote_address": "[2001:db8::1]:443",
      "downstream_remote_address_port": 443, "downstream_remote_address_without_port": "fd00::5"}),
])
def test_addresses_without_their_port_fill_the_ip_column(fmt, want):
    """The reports read a request's source from downstream_remote_address_ip: a format that logs the
    client's IP alone fills it (unless the whole address is there too, whose IP it is)."""
    line = "[2025-03-01T10:00:00.123Z] fd00::5 [2001:db8::1]:443"
    (r,) = Parser(custom=layouts.layout_from_format(fmt)).parse_batch([line]).records.to_pylist()
    assert {k: r[k] for k in want} == want


@pytest.mark.parametrize("fast", [True, False])
def test_an_unbracketed_ipv6_in_an_address_is_the_ip_alone(fast):
    """Envoy brackets an IPv6 with its port (``[2001:db8::10]:443``); one without brackets has no port
    (access.lark's address cites the source): the whole IP, on both paths, not IP 2001:db8: port 10."""
    fmt = "[%START_TIME%] %DOWNSTREAM_REMOTE_ADDRESS% %UPSTREAM_HOST%"
    lines = [f"[2025-03-01T10:00:00.123Z] {a} 10.0.0.1:80" for a in
             ("2001:db8::10", "::ffff:192.0.2.1", "[2001:db8::10]:443", "10.0.0.2:5", "10.0.0.2")]
    batch = Parser(custom=layouts.layout_from_format(fmt), fast=fast).parse_batch(lines)
    got = [(r["downstream_remote_address_ip"], r["downstream_remote_address_port"]) for r in batch.records.to_pylist()]
    assert got == [("2001:db8::10", None), ("::ffff:192.0.2.1", None), ("2001:db8::10", 443), ("10.0.0.2", 5)]
    assert [r["line_number"] for r in batch.rejects.to_pylist()] == [5]  # (an IPv4 is printed with its port)


def test_an_operator_spelt_almost_like_a_known_one_gets_a_note():
    notes = layouts.layout_from_format("[%START_TIME%] %RESPONSE_CODES% %DURATON% %RESPONSE_FLAGS_LONG% "
                                       "%DOWNSTREAM_PEER_URI_SAN% %UPSTREAM_REQUEST_ATTEMPT_COUNT% %UPSTREAM_CLUSTER_RAW%").notes
    assert notes == ["%RESPONSE_CODES% is no operator logpipe knows (read into an extra column, response_codes); "
                     "did you mean %RESPONSE_CODE%?",
                     "%DURATON% is no operator logpipe knows (read into an extra column, duraton); did you mean %DURATION%?"]


def test_view_columns_cover_every_column_the_views_add():
    """formats.VIEW_COLUMNS (names an extra column may not take) holds every column the dataset and
    the views add to the rows: run the views on an empty dataset and compare."""
    from logpipe import db

    con = db.connect(tables={})
    added = set()
    for (view,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall():
        names = [d[0] for d in con.execute(f'SELECT * FROM "{view}" LIMIT 0').description]
        if "start_time" in names:  # (a view of the rows, not of the rejects)
            added |= set(names) - set(COLUMNS)
    assert "destination" in added and "date" in added
    assert added <= formats.VIEW_COLUMNS


def test_extra_columns_named_like_a_view_s_do_not_shadow_it():
    """%RESP(DATE)% and %REQ(DESTINATION)% are extra columns of their own, resp_date and
    req_destination: the partition `date` and the traffic view's `destination` stay what they are."""
    from logpipe import db

    fmt = "[%START_TIME%] %RESPONSE_CODE% %REQ(:AUTHORITY)% %RESP(DATE)% \"%REQ(DESTINATION)%\""
    layout = layouts.layout_from_format(fmt)
    assert layout.extra == ["resp_date", "req_destination"]
    batch = Parser(custom=layout).parse_batch(
        ['[2025-03-01T10:00:00.123Z] 200 api.example.com:443 Sat,01-Mar-2025 "other.example.org"'])
    con = db.connect(tables={"records": batch.records})
    got = con.execute("SELECT date, resp_date, destination, req_destination FROM traffic").fetchall()
    assert got == [("2025-03-01", "Sat,01-Mar-2025", "api.example.com", "other.example.org")]


def test_extra_columns_follow_the_schema():
    layout = layouts.layout_from_format("[%START_TIME%] %REQ(X-B3-TRACEID)% %DOWNSTREAM_PEER_URI_SAN%")
    assert layout.extra == ["x_b3_traceid", "downstream_peer_uri_san"]
    assert layout.schema.names == COLUMNS + layout.extra


def test_extra_counts_are_ints_in_text_json_and_grammar_formats(tmp_path):
    """Envoy's counts of no record column (%REQUEST_DURATION%, %UPSTREAM_WIRE_BYTES_SENT%, …) are 64-bit
    int columns, "-" null, as the record's byte counts are: their rule is INT | DASH, and the column's
    type follows its rule (in a grammar file too). They were text: `sum(request_duration)` failed."""
    import pyarrow as pa

    layout = layouts.layout_from_format('[%START_TIME%] %REQUEST_DURATION% "%REQ(X-B3-TRACEID)%" %UPSTREAM_WIRE_BYTES_SENT%')
    assert [(f.name, f.type) for f in layout.schema][-3:] == [
        ("request_duration", pa.int64()), ("x_b3_traceid", pa.string()), ("upstream_wire_bytes_sent", pa.int64())]
    got, rejects = rows(Parser(custom=layout), ['[2025-03-01T10:00:00.123Z] 12 "t" -',
                                                '[2025-03-01T10:00:00.123Z] 1x "t" 5'])
    assert [(r["request_duration"], r["upstream_wire_bytes_sent"]) for r in got] == [(12, None)]
    assert "request_duration expected INT or '-', got '1x'" in rejects[0]["reason"]
    js = layouts.layout_from_format(json.dumps({"ts": "%START_TIME%", "code": "%RESPONSE_CODE%",
                                                "rd": "%REQUEST_DURATION%", "att": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%"}))
    got, rejects = rows(Parser(custom=js), ['{"ts": "2025-03-01T10:00:00.123Z", "code": 200, "rd": 7, "att": "2"}',
                                            '{"ts": "2025-03-01T10:00:00.123Z", "code": 200, "rd": "-", "att": 1}'])
    assert rejects == [] and [(r["request_duration"], r["upstream_request_attempt_count"]) for r in got] == [(7, 2), (None, 1)]
    grammar = tmp_path / "g.lark"
    grammar.write_text('%import .common (SP, INT, DASH, WORD)\ncustom: attempts SP note SP latency SP build\n'
                       'attempts: INT | DASH\nnote: WORD\nlatency: INT "." INT\nbuild: "v" INT\n')
    book = layouts.layout_from_grammar(grammar.read_text(), source=str(grammar))
    # (a rule with a literal beside INT reads no whole number: text, as it was)
    assert {f.name: f.type for f in book.schema}["attempts"] == pa.int64() and book.counts == {"attempts"}
    got, rejects = rows(Parser(custom=book), ["3 x 1.5 v12"])
    assert rejects == [] and (got[0]["attempts"], got[0]["latency"], got[0]["build"]) == (3, "1.5", "v12")
    # ingested, the dataset's column is an int too: SQL sums it (it was written as text)
    log = tmp_path / "r.log"
    log.write_text("[2025-03-01T10:00:00.123Z] 12\n[2025-03-01T10:00:01.123Z] 30\n[2025-03-01T10:00:02.123Z] -\n")
    fmt = "[%START_TIME%] %REQUEST_DURATION%"
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest", "--format-string", fmt, str(log), "--data", str(tmp_path / "d")]).exit_code == 0
    r = runner.invoke(cli, ["query", "--data", str(tmp_path / "d"), "-o", "csv", "--sql",
                            "SELECT sum(request_duration) AS s, any_value(typeof(request_duration)) AS t FROM access_log"])
    assert r.stdout == "s,t\n42,BIGINT\n", r.output


# ---- ambiguity ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, a, b", [
    ("%REQ(A)%%REQ(B)%", "%REQ(A)%", "%REQ(B)%"),
    ("[%START_TIME%] %BYTES_SENT%%BYTES_RECEIVED%", "%BYTES_SENT%", "%BYTES_RECEIVED%"),
    ('"%REQ(USER-AGENT)%%REQ(X-B3-TRACEID)%" %RESPONSE_CODE%', "%REQ(USER-AGENT)%", "%REQ(X-B3-TRACEID)%"),
    ("%START_TIME% %UPSTREAM_HOST%%DOWNSTREAM_PEER_URI_SAN%", "%UPSTREAM_HOST%", "%DOWNSTREAM_PEER_URI_SAN%"),
])
def test_ambiguous_formats_are_refused(fmt, a, b):
    with pytest.raises(formats.FormatError) as e:
        formats.grammar_from_format(fmt)
    message = str(e.value)
    assert a in message and b in message and "delimiter" in message


@pytest.mark.parametrize("fmt", [f for n, (_v, f) in formats.BUILTIN_LAYOUTS.items() if "%" in f] + CUSTOM_FORMATS)
def test_default_and_realistic_formats_pass_the_ambiguity_check(fmt):
    formats.check_ambiguity(formats.parse_format(fmt))


# ---- JSON formats ------------------------------------------------------------------------------------

JSON_FORMAT = {
    "ts": "%START_TIME%", "status": "%RESPONSE_CODE%", "host": "%REQ(:AUTHORITY)%", "trace": "%REQ(X-B3-TRACEID)%",
    "upstream": "%UPSTREAM_HOST%", "cluster": "%UPSTREAM_CLUSTER%", "bytes": "%BYTES_SENT%",
    "peer": {"san": "%DOWNSTREAM_PEER_URI_SAN%"}, "constant": "mesh-a",
}


def test_json_format_keys_map_to_columns():
    assert formats.json_columns(JSON_FORMAT) == {
        "ts": "start_time", "status": "response_code", "host": "authority", "trace": "x_b3_traceid",
        "upstream": "upstream_host", "cluster": "upstream_cluster", "bytes": "bytes_sent",
        "peer.san": "downstream_peer_uri_san",
    }


@pytest.mark.parametrize("fmt, line, want", [
    ({"@timestamp": "%START_TIME%", "epoch": "%START_TIME(%s)%", "code": "%RESPONSE_CODE%"},
     {"@timestamp": "2025-03-01T10:00:00.123Z", "epoch": "1740823200", "code": 200},
     (dt.datetime(2025, 3, 1, 10, 0, 0, 123000, tzinfo=UTC), "1740823200")),
    ({"epoch": "%START_TIME(%s)%", "@timestamp": "%START_TIME%", "code": "%RESPONSE_CODE%"},
     {"epoch": "1740823200", "@timestamp": "2025-03-01T10:00:00.123Z", "code": 200},
     (dt.datetime(2025, 3, 1, 10, 0, 0, tzinfo=UTC), "2025-03-01T10:00:00.123Z")),
])
def test_json_format_with_two_start_times(fmt, line, want):
    """The first START_TIME key is start_time (read with its own spec), the other an extra column:
    neither key overwrites the other."""
    first, second = [k for k, v in fmt.items() if "START_TIME" in v]
    assert formats.json_columns(fmt) == {first: "start_time", second: "start_time_2", "code": "response_code"}
    parser = layouts.parser_from_options(format_string=json.dumps(fmt))
    (r,), rejects = rows(parser, [json.dumps(line)])
    assert rejects == [] and r["response_code"] == 200
    assert (r["start_time"], r["start_time_2"]) == want


@settings(max_examples=30, deadline=None)
@given(status=st.integers(0, 599), host=QUOTED, trace=st.one_of(st.none(), BARE), sent=st.integers(0, 10**9),
       t=TIMES, cluster=st.sampled_from(CLUSTERS))
def test_json_format_round_trip(status, host, trace, sent, t, cluster):
    parser = json_parser()
    obj = {"ts": render_time(None, t, 0)[0], "status": status, "host": host, "trace": trace,
           "upstream": "192.0.2.7:443", "cluster": cluster + ";", "bytes": sent,
           "peer": {"san": "spiffe://cluster.local/ns/a/sa/b"}, "constant": "mesh-a"}
    (record,), rejects = rows(parser, [json.dumps(obj)])
    assert rejects == []
    assert record["log_format"] == "custom_json"
    assert (record["start_time"], record["response_code"], record["bytes_sent"]) == (t, status, sent)
    dash = lambda v: None if v in ("", "-") else v  # noqa: E731 ("-" is null in every encoding)
    assert record["authority"] == dash(host) and record["x_b3_traceid"] == dash(trace)
    assert record["upstream_cluster"] == cluster and record["upstream_host_port"] == 443
    assert record["downstream_peer_uri_san"] == "spiffe://cluster.local/ns/a/sa/b"


@functools.lru_cache(maxsize=None)
def json_parser():
    return layouts.parser_from_options(format_string=json.dumps(JSON_FORMAT))


def test_builtin_json_still_parses_with_a_custom_json_format(samples_dir):
    lines = (samples_dir / "istio-json-1.24.log").read_text().splitlines()
    got, rejects = rows(json_parser(), lines)
    assert rejects == [] and {r["log_format"] for r in got} == {"istio_json"}


# ---- format files ------------------------------------------------------------------------------------

FMT = '[%START_TIME%] %REQ(:METHOD)% %RESPONSE_CODE% %REQ(X-B3-TRACEID)%'
FORMAT_FILES = {
    "plain.txt": FMT + "\n",
    "meshconfig.yaml": f"accessLogFile: /dev/stdout\naccessLogFormat: '{FMT}\\n'\n",
    "configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system, labels: {app: istiod}}\n"
                      f"data:\n  mesh: |-\n    accessLogFile: /dev/stdout\n    accessLogFormat: \"{FMT}\"\n",
    "istiooperator.yaml": "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec:\n  meshConfig:\n"
                          f"    accessLogFile: /dev/stdout\n    accessLogFormat: |\n      {FMT}\n",
    "telemetry-provider.yaml": "meshConfig:\n  extensionProviders:\n  - name: otel\n    envoyOtelAls: {service: x, port: 4317}\n"
                               f"  - name: text\n    envoyFileAccessLog:\n      path: /dev/stdout\n      logFormat:\n        text: '{FMT}'\n"
                               "---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nspec:\n  accessLogging:\n  - providers: [{name: text}]\n",
    "envoy.yaml": "access_log:\n- name: envoy.access_loggers.file\n  typed_config:\n    path: /dev/stdout\n"
                  f"    log_format:\n      text_format_source:\n        inline_string: \"{FMT}\\n\"\n",
}


@pytest.mark.parametrize("name", FORMAT_FILES)
def test_format_file_text(tmp_path, name):
    path = tmp_path / name
    path.write_text(FORMAT_FILES[name])
    fmt = formatfile.read_format_file(str(path))
    assert formats.parse_format(fmt) == formats.parse_format(FMT)
    got, _ = rows(layouts.parser_from_options(format_file=str(path)),
                  ["[2025-01-30T10:53:24.085Z] GET 200 80f198ee56343ba8"])
    assert got[0]["x_b3_traceid"] == "80f198ee56343ba8" and got[0]["response_code"] == 200


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
@pytest.mark.parametrize("name", ["plain.txt", "meshconfig.yaml"])
def test_format_file_saved_with_a_byte_order_mark(tmp_path, name, encoding):
    """A format file saved by a Windows editor or PowerShell (a byte-order mark, UTF-16 or UTF-32) holds
    the same format: the mark is not part of it."""
    path = tmp_path / name
    path.write_bytes(FORMAT_FILES[name].encode(encoding))
    assert formats.parse_format(formatfile.read_format_file(str(path))) == formats.parse_format(FMT)


def test_format_file_of_one_yaml_line(tmp_path):
    """``accessLogFormat: "…"`` on one line is YAML holding the format, not a format string that
    starts with ``accessLogFormat:``; a one-line format string that is YAML of no format key stays
    the format string."""
    path = tmp_path / "mesh.yaml"
    path.write_text(f'accessLogFormat: "{FMT}\\n"\n')
    assert formats.parse_format(formatfile.read_format_file(str(path))) == formats.parse_format(FMT)
    path.write_text("start: %START_TIME% code: %RESPONSE_CODE%\n")
    assert formatfile.read_format_file(str(path)) == "start: %START_TIME% code: %RESPONSE_CODE%"


def test_format_file_not_utf8_is_a_clear_error(tmp_path):
    path = tmp_path / "fmt.txt"
    path.write_bytes(b"[%START_TIME%] \xe9 %RESPONSE_CODE%\n")
    with pytest.raises(formats.FormatError, match=r"fmt.txt is not UTF-8 text \(byte 16 is b'\\xe9'\); save it as UTF-8"):
        formatfile.read_format_file(str(path))


def test_format_file_telemetry_picks_its_provider(tmp_path):
    """Several providers in MeshConfig: the Telemetry resource in the same file says which one."""
    path = tmp_path / "mesh.yaml"
    path.write_text(
        "meshConfig:\n  extensionProviders:\n"
        "  - name: plain\n    envoyFileAccessLog: {path: /dev/stdout, logFormat: {text: '%START_TIME% %BYTES_SENT%'}}\n"
        f"  - name: traced\n    envoyFileAccessLog: {{path: /dev/stdout, logFormat: {{text: '{FMT}'}}}}\n"
        "---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-default, namespace: istio-system}\n"
        "spec:\n  accessLogging:\n  - providers:\n    - name: traced\n")
    assert formatfile.read_format_file(str(path)) == FMT


@pytest.mark.parametrize("text", [
    "meshConfig:\n  extensionProviders:\n  - name: json\n    envoyFileAccessLog:\n      path: /dev/stdout\n"
    "      logFormat:\n        labels:\n          status: '%RESPONSE_CODE%'\n          trace: '%REQ(X-B3-TRACEID)%'\n",
    json.dumps({"status": "%RESPONSE_CODE%", "trace": "%REQ(X-B3-TRACEID)%"}),
])
def test_format_file_json(tmp_path, text):
    path = tmp_path / "fmt"
    path.write_text(text)
    assert formatfile.read_format_file(str(path)) == {"status": "%RESPONSE_CODE%", "trace": "%REQ(X-B3-TRACEID)%"}


@pytest.mark.parametrize("text, needle", [
    ("accessLogFile: /dev/stdout\naccessLogEncoding: JSON\n", "holds no access-log format"),
    (f"a:\n  accessLogFormat: '{FMT}'\nb:\n  accessLogFormat: '%START_TIME% %BYTES_SENT%'\n", "2 different"),
    ("key: [unclosed\n  x: 1\n", "neither a format string nor valid YAML"),
])
def test_format_file_errors(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(formats.FormatError, match=needle):
        formatfile.read_format_file(str(path))


# ---- the parser: spec, pickling, grammar files -------------------------------------------------------


def test_format_spec_rebuilds_the_parser():
    fmt = CUSTOM_FORMATS[4]
    parser = layouts.parser_from_options(format_string=fmt)
    assert parser.format_spec == f"text:{fmt}"
    again = layouts.parser_from_spec(parser.format_spec)
    line = "1718000000.123 GET \"/x\" 200 5 outbound|443||api.example.com 192.0.2.1:443"
    assert rows(again, [line]) == rows(parser, [line])
    assert rows(pickle.loads(pickle.dumps(parser)), [line]) == rows(parser, [line])
    assert rows(parser, [line])[0][0]["start_time"] == dt.datetime(2024, 6, 10, 6, 13, 20, 123000, tzinfo=UTC)
    assert layouts.parser_from_options().format_spec == ""


def test_grammar_file_with_extra_rule(tmp_path):
    """A hand-written grammar: one start rule; a terminal-only rule that is no column is an extra column."""
    (tmp_path / "mine.lark").write_text(
        '%import .common (SP, INT, ISO_TIME, WORD)\n'
        'custom: start_time SP response_code SP tenant SP downstream_remote_address\n'
        'start_time: ISO_TIME\nresponse_code: INT\ntenant: WORD\n'
        '%import .access (address, ip_port, ip, port)\ndownstream_remote_address: address\n')
    parser = layouts.parser_from_options(grammar_file=str(tmp_path / "mine.lark"))
    (record,), _ = rows(parser, ["2025-01-30T10:53:24.085Z 503 acme 192.0.2.9:5555"])
    assert (record["response_code"], record["tenant"], record["downstream_remote_address_port"]) == (503, "acme", 5555)


# ---- CLI ---------------------------------------------------------------------------------------------


def invoke(*args, input=None):
    # (one process: a command reading stdin, of unknown size, would start a worker process that these
    # inputs of a few lines never use; in a test it is spawned, ~1 s of CPU)
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False, env={"LOGPIPE_WORKERS": "1"})


def test_cli_grammar_from_format():
    result = invoke("grammar", "--from-format", formats.ISTIO_1_23_FORMAT)
    assert result.exit_code == 0
    assert result.stdout == formats.grammar_from_format(formats.ISTIO_1_23_FORMAT)
    assert "\ncustom: \"[\" start_time \"]\" SP DQ method" in result.stdout


@pytest.mark.parametrize("args, code, needle", [
    (["grammar", "--from-format", "%REQ(A)%%REQ(B)%"], 1, "put a delimiter between them"),
    (["grammar"], 2, "--from-format"),
    (["parse", "--format-string", FMT, "--grammar", "x.lark"], 2, "use only one of them"),
    (["parse", "--format-file", "/nonexistent/fmt.txt"], 1, "cannot read format file"),
    (["parse", "--format-string", "just text"], 1, "holds no Envoy command operator"),
    (["parse", "--format-string", "[%START_TIME(%Q)%] %RESPONSE_CODE%"], 1, "%Q is not supported"),
    (["parse", "--format-string", "[%START_TIME(%b %e %T)%] %RESPONSE_CODE%"], 1, "has no year"),
    (["grammar", "--from-format", "[%START_TIME] %RESPONSE_CODE%"], 1, "% at column 2 that starts no command operator"),
    (["grammar", "--from-format", "[%START_TIME%] %REQ(:METHOD) %RESPONSE_CODE%"], 1, "close it: %REQ(:METHOD)%"),
    (["grammar", "--from-format", "[%START_TIME%] %REQ(:AUTHORITY% %RESPONSE_CODE%"], 1, "close it: %REQ(:AUTHORITY)%)"),
    (["grammar", "--from-format", "[%START_TIME%] %REQ(:AUTHORITY %RESPONSE_CODE%"], 1, "close it: %REQ(:AUTHORITY)%)"),
    # (a START_TIME spec's own "%"s are its argument: the fix keeps them)
    (["grammar", "--from-format", "[%START_TIME(%Y-%m-%dT%H:%M:%S] %RESPONSE_CODE%"], 1,
     "close it: %START_TIME(%Y-%m-%dT%H:%M:%S)%)"),
    (["grammar", "--from-format", "%req(:authority% %RESPONSE_CODE%"], 1, "operators are upper case: %REQ(:authority)%)"),
    (["grammar", "--from-format", "%start_time% %RESPONSE_CODE%"], 1, "operators are upper case: %START_TIME%"),
    (["parse", "--format-string", ""], 2, "it is empty (a $(cat FILE) of a missing or empty file?)"),
    (["ingest", "x.log", "--format-file", " "], 2, "'--format-file': it is empty"),
])
def test_cli_format_errors(args, code, needle):
    from logpipe.errors import LogpipeError

    try:
        result = invoke(*args)
        code_got, text = result.exit_code, result.output
    except LogpipeError as e:  # main() turns these into one line and the exit code
        code_got, text = e.exit_code, str(e)
    assert code_got == code and needle in text


def test_cli_parse_with_format_string(tmp_path):
    log = tmp_path / "a.log"
    log.write_text("[2025-01-30T10:53:24.085Z] GET 200 80f198ee56343ba8\nnot a line\n")
    result = CliRunner().invoke(cli, ["parse", "--format-string", FMT, str(log), "-o", "ndjson"])
    assert result.exit_code == 0
    (record,) = [json.loads(x) for x in result.stdout.splitlines()]
    assert record["x_b3_traceid"] == "80f198ee56343ba8" and list(record)[-1] == "x_b3_traceid"
    assert "read 2, parsed 1, rejected 1" in result.stderr


def test_cli_formats_lists_every_builtin_layout():
    result = invoke("formats")
    assert result.exit_code == 0
    for name in formats.BUILTIN_LAYOUTS:
        assert name in result.stdout
    assert formats.ISTIO_1_23_FORMAT in result.stdout


def test_cli_detect_counts_layouts(samples_dir):
    result = invoke("detect", str(samples_dir / "istio-1.8.log"), str(samples_dir / "ztunnel.log"))
    assert result.exit_code == 0
    table = [line.split("\t") for line in result.stdout.splitlines()]
    counts = {(src.rsplit("/", 1)[-1], layout): int(n) for src, layout, n in table}
    assert counts[("istio-1.8.log", "istio_1_8")] == len((samples_dir / "istio-1.8.log").read_text().splitlines())
    assert counts[("ztunnel.log", "ztunnel")] > 0


def test_cli_detect_says_an_empty_input_and_refuses_a_missing_one(samples_dir, tmp_path):
    """An empty file is a line of its own (it printed nothing), and a file that is not there is an
    error, exit 1 (it was left out unsaid, exit 0, when another file was given with it)."""
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    result = invoke("detect", str(empty), str(samples_dir / "istio-1.0.log"))
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [f"{empty}\t(empty)\t0", f"{samples_dir / 'istio-1.0.log'}\tenvoy\t12"]
    missing = tmp_path / "nosuch.log"
    with pytest.raises(InputError, match=f"^{re.escape(str(missing))}: no such file or directory$"):
        invoke("detect", str(missing), str(samples_dir / "istio-1.0.log"))


def test_detect_counts_like_a_parse_without_asking_lark(samples_dir, monkeypatch):
    """detect classifies unmatched lines by their diagnosis alone: the counts a full parse gives,
    without Lark's verdict (ms a line: a file in another format took minutes)."""
    from collections import Counter

    from logpipe import grammar
    from logpipe.pipeline import parse_to_tables

    paths = [str(samples_dir / n) for n in ("malformed.log", "noise-mixed.log", "istio-1.8.log")]
    records, rejects, _ = parse_to_tables(paths)
    expected = Counter(zip(records.column("source").to_pylist(), records.column("log_format").to_pylist()))
    expected.update((s, f"({c})") for s, c in zip(rejects.column("source").to_pylist(),
                                                   rejects.column("class").to_pylist()))

    def no_lark(*_a, **_k):
        raise AssertionError("detect asked Lark")

    monkeypatch.setattr(grammar.Rulebook, "parse", no_lark)
    got = {(src, layout): n for src, layout, n in layouts.detect_layouts(paths) if layout != "(blank)"}
    assert got == dict(expected) and any(k[1] == "(malformed)" for k in got)


def test_json_lines_with_empty_values_omitted_are_the_formats():
    """Envoy's ``omit_empty_values`` leaves a TCP connection's line a few of the format's keys: a line
    of two or more keys, all of them the format's, is its line (it needed half of them: rejected as
    "not an access-log record"). A line with keys the format lacks says which it holds and which not."""
    parser = json_parser()
    tcp = {"ts": "2025-03-01T10:00:03.000Z", "status": 0, "cluster": "PassthroughCluster", "constant": "mesh-a"}
    (record,), rejects = rows(parser, [json.dumps(tcp)])
    assert rejects == [] and (record["response_code"], record["upstream_cluster"]) == (0, "PassthroughCluster")
    got, rejects = rows(parser, [json.dumps({"ts": "2025-03-01T10:00:03.000Z", "status": 0, "foo": 1}),
                                 json.dumps({"ts": "2025-03-01T10:00:03.000Z", "foo": 1})])
    assert got == [] and rejects[0]["reason"].startswith(
        "JSON object holds 2 of the given format's 8 keys (ts, status) and keys it does not have (foo)")
    _, (one,) = rows(parser, [json.dumps({"ts": "2025-03-01T10:00:03.000Z"})])
    assert one["reason"] == ("JSON object holds 1 of the given format's 8 keys (ts); a line of the format holds "
                             "half of its keys, or two or more and only keys of it")
    # many lines (cut.c's reading takes half the keys or more; the rest go to json.loads) read alike
    lines = [json.dumps({**tcp, "bytes": i} if i % 2 else {**tcp, "host": "a.example", "upstream": "192.0.2.7:443",
                                                            "trace": "t", "bytes": i}) for i in range(3000)]
    got, rejects = rows(parser, lines)
    assert rejects == [] and [r["bytes_sent"] for r in got] == list(range(3000))


def test_a_json_formats_object_value_is_its_json_text():
    """Typed JSON renders %DYNAMIC_METADATA(ns)% / %FILTER_STATE(…)% of a struct as an object (Envoy's
    usage.rst): its key's column holds the object as JSON text. It was null: the line's object was
    flattened into keys the format has not (``rbac.shadow_engine_result``), and so, with
    omit_empty_values' few keys, the line was a reject naming keys the format "does not have"."""
    fmt = {"ts": "%START_TIME%", "req": {"status": "%RESPONSE_CODE%"}, "rbac": "%DYNAMIC_METADATA(envoy.filters.http.rbac)%",
           "peer": "%FILTER_STATE(istio.peer_principal:PLAIN)%", "host": "%REQ(:AUTHORITY)%", "up": "%UPSTREAM_HOST%"}
    parser = layouts.parser_from_options(format_string=json.dumps(fmt))
    full = {"ts": "2025-03-01T10:00:00.000Z", "req": {"status": 403}, "rbac": {"shadow_engine_result": "denied"},
            "peer": "spiffe://cluster.local/ns/a/sa/b", "host": "a.example", "up": "192.0.2.7:443"}
    few = {"ts": "2025-03-01T10:00:01.000Z", "rbac": {"shadow_effective_policy_id": "ns[a]-policy[p]-rule[0]"}}
    for n in (1, 100):  # (json.loads' reading, and a batch of jsonlog.FLAT_MIN_ROWS or more: cut.c's, which leaves objects to it)
        got, rejects = rows(parser, [json.dumps(full)] * n + [json.dumps(few)])
        assert rejects == [] and len(got) == n + 1
        assert got[0]["response_code"] == 403 and json.loads(got[0]["dynamic_metadata_envoy_filters_http_rbac"]) == full["rbac"]
        assert json.loads(got[-1]["dynamic_metadata_envoy_filters_http_rbac"]) == few["rbac"]


def test_long_flags_are_stored_as_the_short_codes_the_reports_read():
    """%RESPONSE_FLAGS_LONG% fills response_flags with the short codes (FORMATS.md c), as the reports
    ask for them (UF, UH): it was an extra text column, and a failing destination showed no failure."""
    text = layouts.layout_from_format("[%START_TIME%] %RESPONSE_CODE% %RESPONSE_FLAGS_LONG% %UPSTREAM_CLUSTER%")
    assert "response_flags_long" not in text.schema.names and text.long_flags
    got, rejects = rows(Parser(custom=text), [
        "[2025-03-01T10:00:00.123Z] 503 UpstreamConnectionFailure,UpstreamRetryLimitExceeded outbound|5432||db.example",
        "[2025-03-01T10:00:00.123Z] 200 - outbound|5432||db.example"])
    assert rejects == [] and [r["response_flags"] for r in got] == [["UF", "URX"], []]
    js = layouts.layout_from_format(json.dumps({"ts": "%START_TIME%", "code": "%RESPONSE_CODE%",
                                                "flags": "%RESPONSE_FLAGS_LONG%", "cl": "%UPSTREAM_CLUSTER%"}))
    got, _ = rows(Parser(custom=js), ['{"ts": "2025-03-01T10:00:00.123Z", "code": 503, "flags": "NoHealthyUpstream", '
                                      '"cl": "BlackHoleCluster"}'])
    assert got[0]["response_flags"] == ["UH"]
    assert set(layouts.LONG_FLAGS.values()) >= {"UH", "UF", "UO", "NR", "URX", "DC", "UT", "UC", "LR", "UR", "DF", "UAEX"}


def test_a_json_format_says_what_it_cannot_read():
    """A JSON value of several operators (``"%REQ(:METHOD)% %REQ(:PATH)%"``, ``"%DURATION%.0"``) is not
    read, and a typo'd operator in a JSON format is one: both are said (they passed in silence)."""
    layout = layouts.layout_from_format(json.dumps({"ts": "%START_TIME%", "status": "%RESPONSE_CODES%",
                                                    "req": "%REQ(:METHOD)% %REQ(:PATH)%", "dur": "%DURATION%.0",
                                                    "env": "prod"}))
    assert any("did you mean %RESPONSE_CODE%?" in n for n in layout.notes)
    assert any(n.startswith("the JSON format's key(s) req, dur hold operators with other text") for n in layout.notes)


@pytest.mark.parametrize("select, want", [
    ("---\nkind: Telemetry\nspec:\n  accessLogging:\n  - providers:\n    - name: envoy\n", "mesh"),
    ("", "mesh"),  # (an extension provider nothing selects logs nothing: the mesh's own format is the one)
    ("  defaultProviders:\n    accessLogging: [json]\n", "json"),
])
def test_format_file_the_builtin_envoy_provider_and_default_providers(tmp_path, select, want):
    """The built-in provider ``envoy`` (a Telemetry's, or the default) is meshConfig.accessLogFormat;
    meshConfig.defaultProviders.accessLogging selects as a Telemetry does. Such files were refused as
    holding two formats."""
    mesh_format = "[%START_TIME%] %REQ(:METHOD)% %RESPONSE_CODE%"
    head, _, telemetry = select.partition("---")
    text = ("meshConfig:\n" + (head if not telemetry else "") + f"  accessLogFormat: '{mesh_format}'\n"
            "  extensionProviders:\n  - name: json\n    envoyFileAccessLog:\n      path: /dev/stdout\n"
            "      logFormat:\n        labels:\n          status: '%RESPONSE_CODE%'\n")
    path = tmp_path / "mesh.yaml"
    path.write_text(text + (("---" + telemetry) if telemetry else ""))
    got = formatfile.read_format_file(str(path))
    assert got == (mesh_format if want == "mesh" else {"status": "%RESPONSE_CODE%"})


def test_format_file_of_the_default_envoy_provider_and_a_rendered_configmap(tmp_path):
    """The built-in provider envoy without meshConfig.accessLogFormat is Istio's default format: said,
    not another provider's format taken. The same accessLogFormat in an IstioOperator and its rendered
    ConfigMap (istioctl manifest generate) is one format, not two."""
    fmt = "[%START_TIME%] %REQ(:METHOD)% %RESPONSE_CODE%"
    provider = ("  extensionProviders:\n  - name: otel-file\n    envoyFileAccessLog:\n      path: /dev/stdout\n"
                "      logFormat:\n        labels:\n          status: '%RESPONSE_CODE%'\n")
    path = tmp_path / "a.yaml"
    path.write_text("meshConfig:\n  accessLogFile: /dev/stdout\n  defaultProviders:\n    accessLogging: [envoy]\n" + provider)
    with pytest.raises(formats.FormatError, match="built-in provider envoy and Istio's default format"):
        formatfile.read_format_file(str(path))
    path.write_text(f"kind: IstioOperator\nspec:\n  meshConfig:\n    accessLogFormat: '{fmt}'\n---\n"
                    f"kind: ConfigMap\ndata:\n  mesh: |-\n    accessLogFormat: '{fmt}'\n")
    assert formatfile.read_format_file(str(path)) == fmt


def test_a_json_format_that_is_not_json_is_an_error():
    """A JSON format with a trailing comma was read as a text format: every line rejected, exit 0."""
    with pytest.raises(formats.FormatError, match="a JSON object that does not read as JSON: Expecting property name"):
        layouts.layout_from_format('{"ts": "%START_TIME%", "code": "%RESPONSE_CODE%",}')
    text = layouts.layout_from_format("{%START_TIME%} %RESPONSE_CODE%")  # (a text format may start with "{")
    assert text.json_keys is None
    long = layouts.layout_from_format("[%START_TIME%] %RESPONSE_FLAGS_LONG%")
    got, _ = rows(Parser(custom=long), ["[2025-03-01T10:00:00.123Z] DownstreamRemoteReset,UnconditionalDropOverload"])
    assert got[0]["response_flags"] == ["DR", "UDO"]


def test_names_the_reports_give_their_own_columns_are_not_extra_columns(tmp_path):
    """%REQ(TRANSPORT)% was an extra column `transport`, which the inventory's own `transport` (SELECT *,
    … AS transport) then read: it showed the header. It is req_transport; a grammar file's rule of such a
    name, or of a view's column (destination, date), is refused."""
    layout = layouts.layout_from_format("[%START_TIME%] %RESPONSE_CODE% %REQ(TRANSPORT)% %REQ(IS_FAILED)%")
    assert layout.extra == ["req_transport", "req_is_failed"]
    for name in ("destination", "transport"):
        grammar = f'%import .common (SP, WORD, ISO_TIME)\ncustom: start_time SP {name}\nstart_time: ISO_TIME\n{name}: WORD\n'
        with pytest.raises(formats.FormatError, match=f"rule '{name}' would be an extra column of a name the views"):
            layouts.layout_from_grammar(grammar, source="g.lark")


@pytest.mark.parametrize("spec, text", [("%c", "Sat Mar  1 10:00:00 2025"), ("%e", " 1"), ("%s.%3f", "1740823200.123")])
def test_a_second_start_time_whose_rendering_holds_a_space(spec, text):
    """A second %START_TIME(…)% is free text when its spec prints a space (%c, %e pad with one), not
    only when the spec holds one: `%START_TIME(%c)%`'s lines were all malformed."""
    layout = layouts.layout_from_format(f"[%START_TIME%] [%START_TIME({spec})%] %RESPONSE_CODE%")
    got, rejects = rows(Parser(custom=layout), [f"[2025-03-01T10:00:00.123Z] [{text}] 200"])
    assert rejects == [] and got[0]["start_time_2"] == text and got[0]["response_code"] == 200


def test_detect_starts_no_worker_process(samples_dir, tmp_path, monkeypatch):
    """detect counts in this process, a large file or stdin alike (stdin has no size: it took a
    worker process, ~0.5 s of CPU importing polars and pyarrow, for a few lines)."""
    import io
    import sys

    from logpipe import lanes, pipeline

    def no_pool(*_a, **_k):
        raise AssertionError("detect started a worker pool")

    monkeypatch.setattr(pipeline, "WorkerPool", no_pool)
    monkeypatch.setattr(lanes, "PARALLEL_MIN_BYTES", 1)  # every file is a large one
    monkeypatch.setenv("LOGPIPE_WORKERS", "2")
    log = samples_dir / "istio-1.8.log"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(log.read_bytes())))
    got = layouts.detect_layouts([str(log), "-"])
    lines = len(log.read_text().splitlines())
    assert got == [(str(log), "istio_1_8", lines), ("<stdin>", "istio_1_8", lines)]


SPACED = ('%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% %DURATION% "%REQ(X-B3-TRACEID)%"'
          ' %UPSTREAM_CLUSTER%')


@pytest.mark.parametrize("fmt, line, reason", [
    ('[%START_TIME%] %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %DURATION% "%REQ(X-B3-TRACEID)%" %UPSTREAM_CLUSTER%'
     ' %DOWNSTREAM_REMOTE_ADDRESS%', '[2025-01-30T10:53:24.085Z] GET /x 2OO 12 "abc" outbound|443||x.com 10.0.0.1:443',
     "column 35: response_code expected INT, got '2OO'"),
    (SPACED, 'GET /x HTTP/1.1 2OO - 12 "abc" outbound|443||x.com', "column 17: response_code expected INT, got '2OO'"),
    # The path holds a space: it is the path's (the rest of the line follows the format only so).
    (SPACED, 'GET /a b HTTP/1.1 2OO - 12 "abc" outbound|443||x.com', "column 19: response_code expected INT, got '2OO'"),
    (SPACED, 'GET /a b HTTP/1.1 200 - 1x2 "abc" outbound|443||x.com', "column 25: duration expected INT or '-', got '1x2'"),
])
def test_a_space_separated_line_that_breaks_is_diagnosed_at_the_word_that_broke(fmt, line, reason):
    """Unquoted free text (a path) can hold a space, and the path took the word that broke: the reason
    named the next field a word along ("column 42: duration expected INT or '-', got '\\"abc\\"'"; under
    SPACED "column 26: response_flags …"). It names the field whose word, taken as any, leaves the
    rest of the line following the format; with Lark's context and without it (past its lines)."""
    from logpipe.exact import LARK_CONTEXT_LINES

    good = line.replace("2OO", "200").replace("1x2", "12")
    assert rows(custom_parser(fmt), [good])[1] == []
    (early,) = rows(custom_parser(fmt), [line])[1]
    (late,) = rows(custom_parser(fmt), [good] * LARK_CONTEXT_LINES + [line])[1]
    assert "(Lark: " in early["reason"] and "(Lark: " not in late["reason"]
    for r in (early, late):
        assert reason in r["reason"] and r["column"] == int(reason.split()[1][:-1]), r


def test_a_last_field_that_reads_the_start_of_its_word_is_the_fault():
    """A typed last field that matched the start of its word ('2' of '2OO') was said to leave text
    after it ("unexpected text after response_code, the last field, got 'OO'"): the fault is the field,
    at its start; and Lark, which stopped within that word, read on past no free text. Text after
    the field's whole word is still text after the last field."""
    fmt = "%START_TIME(%s.%3f)% method=%REQ(:METHOD)% code=%RESPONSE_CODE%"
    (r,) = rows(custom_parser(fmt), ["1527590590.123 method=GET code=2OO"])[1]
    assert r["column"] == 32 and "column 32: response_code expected INT, got '2OO'" in r["reason"], r
    assert "free text" not in r["reason"] and "(Lark: column 33: unexpected 'OO')" in r["reason"], r
    (r,) = rows(custom_parser(fmt), ["1527590590.123 method=GET code=200 extra"])[1]
    assert "column 35: unexpected text after response_code, the last field, got ' extra'" in r["reason"], r


@pytest.mark.parametrize("fmt, line, phrases", [
    ("[%START_TIME(%s.%3f)%] %RESPONSE_CODE%", "[1527590590,123] 200",
     ["start_time expected seconds since the epoch, got '1527590590,123]'", "(Lark: column 12: unexpected ',123] 200', expected '.')"]),
    ("[%START_TIME(%Y-%m-%d)%] %RESPONSE_CODE%", "[25-01-30] 200", ["start_time expected a year (4 digits), got '25-01-30]'"]),
    ("[%START_TIME%] %RESPONSE_CODE%", "[2025-01-30T10:53:24.085Z 200", ["expected ']' after start_time", "expected ']')"]),
    ("%RESPONSE_CODE% %UPSTREAM_CLUSTER% %DURATION%", "200 outbound|443 1", ["expected '|')"]),
])
def test_a_reason_names_what_it_expected_as_the_user_reads_it(fmt, line, phrases):
    """Not the grammar's terminal names (DOT, RSQB, VBAR, STRF_EPOCH, STRF_YEAR): a fixed text as
    that text, a time specifier's as what it reads."""
    (r,) = rows(custom_parser(fmt), [line])[1]
    for phrase in phrases:
        assert phrase in r["reason"], r
    assert not re.search(r"\b(DOT|RSQB|VBAR|SP|DQ|STRF_\w+|__ANON_\d+)\b", r["reason"]), r


def test_shown_terminal_names_a_terminal_as_the_user_reads_it():
    from lark.lexer import PatternRE, PatternStr, TerminalDef

    from logpipe.grammar import shown_terminal

    assert shown_terminal("SEMICOLON", TerminalDef("SEMICOLON", PatternStr(";"))) == "';'"
    assert shown_terminal("__ANON_0", TerminalDef("__ANON_0", PatternStr("_."))) == "'_.'"
    assert shown_terminal("__ANON_1", TerminalDef("__ANON_1", PatternRE("[a-z]+"))) == "/[a-z]+/"
    assert shown_terminal("format__STRF_FRAC3", TerminalDef("format__STRF_FRAC3", PatternRE("[0-9]{3}"))) \
        == "a fraction of a second (3 digits)"
    assert shown_terminal("access__CLUSTER_PART", TerminalDef("access__CLUSTER_PART", PatternRE("[^|]+"))) == "CLUSTER_PART"
    assert shown_terminal("INT", None) == "INT"


def test_a_long_line_of_a_format_with_unquoted_free_text_is_diagnosed_without_lark(monkeypatch):
    """A given format's unquoted free text makes Lark's Earley parser cubic in a line's spaces (a
    malformed 6 KB line of 1,200 words took ~17 s among an input's first lines, where Lark adds its
    context): past LARK_CONTEXT_SPACES spaces the line gets the grammar's diagnosis alone, as a
    built-in layout's line past LARK_CONTEXT_CHARS does; a shorter one still gets Lark's context."""
    from logpipe import grammar
    from logpipe.exact import LARK_CONTEXT_SPACES

    fmt = "%REQ(:METHOD)% %REQ(:PATH)% %REQ(USER-AGENT)% %RESPONSE_CODE% %DURATION% %REQ(X-A)% %BYTES_SENT%"
    asked = []
    real = grammar.Rulebook.parse
    monkeypatch.setattr(grammar.Rulebook, "parse", lambda self, text, *a, **k: asked.append(len(text)) or real(self, text, *a, **k))
    words = " ".join(f"w{i}" for i in range(LARK_CONTEXT_SPACES + 1))
    (long,) = rows(custom_parser(fmt), [f"GET /x {words} 2OO 12 abc 1x"])[1]
    assert asked == [] and "(Lark: " not in long["reason"] and "duration expected INT" in long["reason"], long
    (short,) = rows(custom_parser(fmt), ["GET /x a b c 2OO 12 abc 1x"])[1]
    assert asked and "(Lark: " in short["reason"], short


def test_a_free_texts_word_is_looked_for_only_in_fields_it_can_reach():
    """diagnose._one_bad_field tries, for each field a free text before it may have swallowed the word
    of, a regex of the whole line: only fields after a free text that can hold a space with no quote
    between (a quoted field's free text ends at its quote). A built-in layout's truncated line (2%
    of a log cut short) tried ~13 such regexes, ~45 µs a malformed line; its only such field is the
    request line's protocol, after the path. An unquoted path's fields after it are all reachable up
    to a quote."""
    from logpipe import diagnose, steps
    from logpipe.parse import default_parser

    access = default_parser().access
    for layout in ("istio_1_9", "envoy"):
        laid = steps.layout_steps(access, layout)
        fields = [laid[j].field for j in diagnose._reachable(laid, steps.spaced_steps(access, layout))]
        assert fields == ["protocol"], (layout, fields)
    fmt = '%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %DURATION% "%REQ(X-B3-TRACEID)%" %UPSTREAM_CLUSTER%'
    custom = custom_parser(fmt).custom
    laid = steps.layout_steps(custom.rulebook, custom.name)
    fields = [laid[j].field for j in diagnose._reachable(laid, steps.spaced_steps(custom.rulebook, custom.name))]
    assert fields == ["response_code", "duration"], fields
