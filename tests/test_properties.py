"""Property tests (hypothesis): lines built from field values round-trip to the same record in every
layout; nothing is lost for arbitrary bytes; JSON key order does not matter; prefixes add only
their own columns."""
from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import re

import pytest
from conftest import SAMPLES, build_line, layout_fields, parse_text, read_lines
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from logpipe.parse import TEXT_LAYOUTS, default_parser
from logpipe.holes import HOLE_MIN
from logpipe.sources import Input, iter_chunks
from logpipe.unpack import detect_compression

UTC = dt.timezone.utc
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.lru_cache(maxsize=None)
def _parsed_alone(line: str) -> tuple[list[dict], list[dict]]:
    records, rejects, _ = parse_text([line])
    return records, rejects


def parsed_alone(line: str) -> tuple[list[dict], list[dict]]:
    """``parse_text([line])``'s records and rejects (copies), parsed once per distinct line: the
    properties below draw their lines from a few samples and compare each changed line's reading
    with the sample's own, which is the same for every example (and ~half their CPU)."""
    return copy.deepcopy(_parsed_alone(line))

# ---- field values: (text in the line, expected typed value, expected derived columns) -------------

FLAGS = ["UH", "UF", "UO", "NR", "URX", "NC", "DT", "DC", "UT", "LR", "UR", "UC", "RL", "UAEX", "DPE", "DF"]
DETAILS = ["via_upstream", "route_not_found", "direct_response", "filter_chain_not_found",
           "upstream_reset_before_response_started{connection_failure}", "http2.remote_reset",
           "rbac_access_denied_matched_policy[ns[foo]-policy[bar]-rule[0]]", "rbac_access_denied_matched_policy[none]"]
HOSTS = ["httpbin.org", "api.example.com", "api.github.com", "reviews.default.svc.cluster.local", "db.partner.example"]
# A value holds no hole: HOLE_MIN NUL bytes in a row are data a file lost, not text (logpipe/holes.py).
def no_hole(t: str) -> bool:
    return "\x00" * HOLE_MIN not in t


NO_NEWLINE = st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",))


def nullable(text: str):
    return None if text in ("-", "") else text


def maybe_dash(strategy):
    return st.one_of(st.just(("-", None)), strategy)


word = st.one_of(
    st.sampled_from(DETAILS + HOSTS + ["default", "allow_any", "block_all", "outbound_.8000_._.httpbin.foo.svc.cluster.local"]),
    st.text(st.characters(blacklist_characters=' "\t\n\r', blacklist_categories=("Cs",)), min_size=1, max_size=20).filter(no_hole),
).map(lambda w: (w, nullable(w)))


FREE_TEXTS = {empty: st.text(NO_NEWLINE, min_size=0 if empty else 1, max_size=30) for empty in (False, True)}


@st.composite
def free_text(draw, allow_empty=True):
    """A quoted field's inside: spaces and quotes allowed, but no '" ' (it would end the field early
    in a way no parser could undo), no trailing quote, and no leading ' "' (quoted, that starts with
    the '" "' between two quoted fields: the line then has two readings, and logpipe takes the one
    that gives the earlier field the text, README "What it reads"), and no hole (no_hole)."""
    t = draw(FREE_TEXTS[allow_empty])
    assume('" ' not in t and not t.endswith('"') and not t.startswith(' "') and no_hole(t))
    return t, nullable(t)


PATH_TEXTS = st.text(st.characters(blacklist_characters='"\n\r', blacklist_categories=("Cs",)), min_size=1, max_size=30)


@st.composite
def path_text(draw):
    t = draw(PATH_TEXTS)
    assume(no_hole(t))
    return t, nullable(t)


DATETIMES = st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2099, 12, 31))


@st.composite
def start_time(draw):
    d = draw(DATETIMES)
    d = d.replace(microsecond=d.microsecond // 1000 * 1000, tzinfo=UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z", d


count = maybe_dash(st.integers(0, 2**40).map(lambda n: (str(n), n)))
flags = maybe_dash(st.lists(st.sampled_from(FLAGS), min_size=1, max_size=3).map(lambda f: (",".join(f), f)))


# (strategies drawn from in the composites below, built once: not again at every draw)
SCHEMES = {s: st.sampled_from(s) for s in (("", "envoy://connect_originate/"), ("tcp://", "envoy://connect_originate/"), ("",))}
ADDRESS_KINDS = st.sampled_from(["v4", "v6", "scheme", "internal", "dash"])
PORTS, OCTETS = st.integers(0, 65535), st.integers(0, 255)
IPV6 = st.sampled_from(["2001:db8::1", "2001:db8:1::7", "fd00:10:244::1b", "2001:2::f0f0:2"])
CLUSTER_KINDS = st.sampled_from(["outbound", "inbound-vip", "inbound", "named", "dash"])
SEMI, CLUSTER_PORTS, HOST_NAMES = st.sampled_from(["", ";"]), st.integers(1, 65535), st.sampled_from(HOSTS)
NAMED_CLUSTERS = st.sampled_from(["PassthroughCluster", "BlackHoleCluster", "InboundPassthroughCluster"])
SUBSETS = st.sampled_from(["", "v1", "http", "tls"])


@st.composite
def address(draw, schemes=("", "envoy://connect_originate/")):
    kind = draw(ADDRESS_KINDS)
    port = draw(PORTS)
    if kind == "dash":
        return "-", None, {}
    if kind == "internal":
        return "envoy://internal_client_address/", "envoy://internal_client_address/", {}
    if kind == "v6":
        ip = draw(IPV6)
        text = f"[{ip}]:{port}"
    else:
        ip = ".".join(str(draw(OCTETS)) for _ in range(4))
        text = f"{ip}:{port}"
    if kind == "scheme":
        text = draw(SCHEMES[schemes] if schemes in SCHEMES else st.sampled_from(schemes)) + text
    return text, text, {"ip": ip, "port": port}


@st.composite
def cluster(draw):
    kind = draw(CLUSTER_KINDS)
    semi = draw(SEMI)
    port = draw(CLUSTER_PORTS)
    host = draw(HOST_NAMES)
    if kind == "dash":
        return "-", None, {}
    if kind == "named":
        name = draw(NAMED_CLUSTERS)
        return name + semi, name, {}
    if kind == "inbound":
        text = f"inbound|{port}||"
        return text + semi, text, {"direction": "inbound", "port": port}
    subset = draw(SUBSETS)
    text = f"{kind}|{port}|{subset}|{host}"
    return text + semi, text, {"direction": kind, "port": port, "subset": subset or None, "host": host}


def _column_strategies(tcp: bool) -> dict:
    """Each column's strategy, built once (a strategy built inside a draw is built and validated
    again at every draw: most of an example's cost)."""
    return {
        "start_time": start_time(),
        "method": st.just(("-", None)) if tcp else st.sampled_from(["GET", "POST", "PUT", "DELETE", "CONNECT"]).map(lambda m: (m, m)),
        "path": st.just(("-", None)) if tcp else path_text(),
        "protocol": st.just(("-", None)) if tcp else st.sampled_from(["HTTP/1.1", "HTTP/2", "HTTP/3"]).map(lambda p: (p, p)),
        "response_code": st.integers(0, 599).map(lambda n: (str(n), n)),
        "response_flags": flags,
        "response_code_details": word, "connection_termination_details": word,
        "requested_server_name": word, "route_name": word,
        "bytes_received": count, "bytes_sent": count, "duration": count, "upstream_service_time": count,
    }


BOOLEANS = st.booleans()
COLUMN_STRATEGIES = {tcp: _column_strategies(tcp) for tcp in (False, True)}
UPSTREAM_HOST, OTHER_ADDRESS = address(("tcp://", "envoy://connect_originate/")), address(("",))
CLUSTER, FREE_TEXT = cluster(), free_text()


@st.composite
def access_record(draw, layout):
    """Column texts for ``layout`` and the record logpipe must make of them."""
    fields = layout_fields(layout)
    gen = COLUMN_STRATEGIES[draw(BOOLEANS)]  # (TCP or HTTP)
    values, expected, derived = {}, {}, {}
    for f in fields:
        if f in gen:
            values[f], expected[f] = draw(gen[f])
        elif f in ("upstream_host", "upstream_local_address", "downstream_local_address", "downstream_remote_address"):
            values[f], expected[f], parts = draw(UPSTREAM_HOST if f == "upstream_host" else OTHER_ADDRESS)
            derived[f"{f}_ip"], derived[f"{f}_port"] = parts.get("ip"), parts.get("port")
        elif f == "upstream_cluster":
            values[f], expected[f], parts = draw(CLUSTER)
            for p in ("direction", "port", "subset", "host"):
                derived[f"upstream_cluster_{p}"] = parts.get(p)
        else:  # quoted free text (failure reason, mixer status, client headers)
            values[f], expected[f] = draw(FREE_TEXT)
    if "response_flags" in expected and expected["response_flags"] is None:
        expected["response_flags"] = []
    expected.pop("mixer_status", None)
    return values, expected, derived


# ---- round trips --------------------------------------------------------------------------------


# (lines are drawn a batch at a time: 15 batches of up to 12 lines, ~60, more than FAST's 40 examples
# of one, at under half the parses' fixed cost, ~25 ms a batch whatever its size)
BATCHES = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BATCH_LINES = 12


@pytest.mark.parametrize("layout", TEXT_LAYOUTS)
def test_lines_built_from_field_values_round_trip(layout):
    @BATCHES
    @given(st.lists(access_record(layout), min_size=1, max_size=BATCH_LINES))
    def check(cases):
        lines = [build_line(layout, values) for values, _expected, _derived in cases]
        records, rejects, _ = parse_text(lines)
        assert not rejects, rejects
        assert len(records) == len(lines)
        for (_values, expected, derived), line, rec in zip(cases, lines, records):
            assert rec["log_format"] == layout
            for k, v in {**expected, **derived}.items():
                assert rec[k] == v, (k, line)

    check()


def test_build_line_reproduces_a_sample_line():
    """The line builder follows the grammar: rebuilding a sample line from its parse gives it back."""
    line = next(x for x in read_lines(SAMPLES / "waypoint-egress-1.23.log") if x.startswith("["))
    (_, fields) = default_parser().access.parse(line, "istio_1_9")
    assert build_line("istio_1_9", fields) == line


# ---- nothing lost -------------------------------------------------------------------------------

raw_lines = st.lists(
    st.one_of(
        st.binary(max_size=80),
        st.sampled_from([b"\x00", b"\xff\xfe\xfd", b"\r", b"", b"   ", b"{", b"{}", b"[", b'[2025-01-01T00:00:00Z] "',
                         b"\xc3\x28 invalid utf-8", b'{"start_time": 1}', b"null"]),
        st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass")),
    ),
    max_size=20,
)


@FAST
@given(raw_lines, st.sampled_from([b"\n", b"\r\n"]))
def test_read_equals_parsed_plus_rejected_plus_blank_for_any_bytes(tmp_path_factory, lines, eol):
    lines = [x.replace(b"\n", b" ") for x in lines]
    data = eol.join(lines) + (eol if lines else b"")
    # Content is sniffed for compression (unpack.detect_compression); a plain file starting with a magic
    # number is read as an archive, so keep the arbitrary bytes off the very start.
    assume(detect_compression(data[:10]) == "plain")
    path = tmp_path_factory.mktemp("raw") / "bytes.log"
    path.write_bytes(data)
    read = parsed = rejected = blank = 0
    numbers = []
    for chunk, _end in iter_chunks(Input(str(path))):
        b = default_parser().parse_batch(chunk, "bytes.log", read + 1)
        read, parsed, rejected, blank = read + b.read, parsed + b.parsed, rejected + b.rejected, blank + b.blank
        numbers += b.records.column("line_number").to_pylist() + b.rejects.column("line_number").to_pylist()
    assert read == len(lines)
    assert read == parsed + rejected + blank
    assert len(set(numbers)) == len(numbers) == parsed + rejected


@pytest.mark.parametrize("line", [
    b"a" * (1 << 20),
    b"[" + b"2" * (1 << 20),
    b'[2025-02-03T09:15:09.901Z] "GET /' + b"x" * (1 << 20) + b' HTTP/1.1" 200 - via_upstream - "-" 0 254 237 236 "-"',
    b"\x00" * (1 << 20),
    b'{"start_time": "' + b"9" * (1 << 20),
], ids=["letters", "bracket", "access-like", "nul", "json"])
def test_one_megabyte_lines_end_as_a_row_or_a_reject(line):
    b = default_parser().parse_batch([line, b"", line + b"\r"])
    hole = not line.strip(b"\x00")  # (NUL bytes only: a hole in a file, no text: logpipe/holes.py)
    assert b.read == 3 and b.blank == (3 if hole else 1)
    assert b.parsed + b.rejected == (0 if hole else 2)
    for r in b.rejects.to_pylist():
        assert len(r["reason"]) < 2000, "a reason should not quote a whole megabyte"


@given(st.lists(st.binary(max_size=60), max_size=30))
@settings(max_examples=60, deadline=None)
@example([b"\x00", b"\xff", b"ok\r", b"\r\n", b"[2025-01-01T00:00:00Z]\x00"])
def test_parse_batch_on_bytes_counts_every_line(lines):
    lines = [x.replace(b"\n", b"") + b"\n" if x.endswith(b"\n") else x.replace(b"\n", b"") for x in lines]
    b = default_parser().parse_batch(lines)
    assert b.read == len(lines) == b.parsed + b.rejected + b.blank
    for r in b.rejects.to_pylist():
        assert "\n" not in r["raw"]


# ---- JSON: key order is irrelevant ----------------------------------------------------------------

JSON_LINES = [x for name in ("istio-json-1.24.log", "istio-json-1.5.log", "istio-json-1.1.log")
              for x in read_lines(SAMPLES / name) if x.startswith("{")]


@BATCHES
@given(st.lists(st.tuples(st.sampled_from(JSON_LINES), st.randoms(use_true_random=False), st.sampled_from([None, 0, 2])),
                min_size=1, max_size=BATCH_LINES))
def test_json_key_order_and_spacing_do_not_matter(cases):
    shuffled = []
    for line, rnd, indent in cases:
        obj = json.loads(line)
        keys = list(obj)
        rnd.shuffle(keys)
        shuffled.append(json.dumps({k: obj[k] for k in keys}, indent=indent).replace("\n", " "))
    got, rejects, _ = parse_text(shuffled)
    assert not rejects and len(got) == len(cases)
    for n, ((line, _rnd, _indent), b) in enumerate(zip(cases, got), 1):
        (a,), _ = parsed_alone(line)
        assert dict(a, line_number=n) == b


# ---- spaces and tabs around a line change nothing but a reject's column ---------------------------

PADDING = st.text(" \t", max_size=4)


def assert_padded_alike(cases, bad_of, reason=None):
    """``cases`` (line, before, after) padded and parsed in one batch read as each line alone does,
    line by line; each line made bad (``bad_of``), padded, is rejected at its own column shifted by
    ``before`` (its reason checked by ``reason(r2)``, or the diagnosis's and Lark's columns
    shifted)."""
    got, rejects, _ = parse_text([before + line + after for line, before, after in cases])
    assert not rejects and len(got) == len(cases)
    for n, ((line, _before, _after), b) in enumerate(zip(cases, got), 1):
        (a,), _ = parsed_alone(line)
        assert dict(a, line_number=n) == b
    bads = [bad_of(line) for line, _before, _after in cases]
    got, rejects, _ = parse_text([before + bad + after for bad, (_line, before, after) in zip(bads, cases)])
    assert not got and [r["line_number"] for r in rejects] == list(range(1, len(cases) + 1))
    for bad, (_line, before, _after), r2 in zip(bads, cases, rejects):
        _, (r1,) = parsed_alone(bad)
        assert r2["column"] == r1["column"] + len(before) and r2["class"] == r1["class"] == "malformed"
        if reason is None:
            shifted = re.sub(r"column (\d+)", lambda m: f"column {int(m[1]) + len(before)}", r1["reason"])
            assert r2["reason"] == shifted  # (the diagnosis's column and Lark's)
        else:
            reason(r2)


@BATCHES
@given(st.lists(st.tuples(st.sampled_from([x for x in read_lines(SAMPLES / "waypoint-egress-1.23.log") if x.startswith("[")][:5]
                                          + [x for x in read_lines(SAMPLES / "istio-1.5.log") if x.startswith("[")][:3]),
                          PADDING, PADDING), min_size=1, max_size=BATCH_LINES))
def test_spaces_around_a_line_change_nothing(cases):
    """A line pasted with spaces or tabs around it (a document's indentation, an editor's trailing
    blanks) reads as without them (parse._trim); a malformed one is rejected at its own column."""
    assert_padded_alike(cases, lambda line: line.replace('" 200 ', '" 2OO ', 1) if '" 200 ' in line
                        else line.replace(" ", " x", 1))


def test_spaces_around_a_line_read_alike_by_the_lark_path():
    from logpipe.parse import Parser

    lines = [x for x in read_lines(SAMPLES / "waypoint-egress-1.23.log") if x.startswith("[")][:2]
    padded = ["  " + lines[0] + "\t", "\t" + lines[1] + "   "]
    want, _, _ = parse_text(lines)
    got, rejects, _ = parse_text(padded, parser=Parser(fast=False))
    assert got == want and not rejects


JSON_LINES = [x for x in read_lines(SAMPLES / "istio-json-1.24.log") if x.startswith("{")][:4]


def test_a_byte_order_mark_inside_an_input_reads_as_without_it():
    """`cat a.log b.log` of files saved with a UTF-8 byte-order mark: the reader takes the input's
    first (unpack.BYTE_ORDER_MARKS), the second starts a line in the middle; it reads as without it,
    on both paths, JSON too; a malformed one is rejected at its column in the line as written."""
    from logpipe.parse import Parser

    lines = [x for x in read_lines(SAMPLES / "waypoint-egress-1.23.log") if x.startswith("[")][:2] + JSON_LINES[:1]
    want, _, _ = parse_text(lines)
    for parser in (None, Parser(fast=False)):
        got, rejects, _ = parse_text(["\ufeff" + x for x in lines], parser=parser)
        assert got == want and not rejects
    bad = lines[0].replace('" 200 ', '" 2OO ', 1)
    _, (r1,), _ = parse_text([bad])
    _, (r2,), _ = parse_text(["\ufeff" + bad])
    assert r2["column"] == r1["column"] + 1 and r2["class"] == "malformed"


def test_another_programs_line_after_a_byte_order_mark_is_the_same_noise():
    """The mark is the file's: Envoy's own log line, istio-agent's, a Go crash dump's after one are
    noise of the same rule as without it (the noise rules looked at the line with the mark: no rule
    matched, and "[2018-… …][16][info]" became a malformed access line)."""
    from logpipe.exact import NOISE_RULES

    lines = ["[2018-06-07 23:03:32.170][16][info][main] external/envoy/source/server/server.cc:253] initializing epoch 0",
             "2023-10-12T08:08:15.270118Z\tinfo\txdsproxy connected to upstream XDS server: istiod.istio-system.svc:15012",
             "[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x1c5b3a4]", "goroutine 1 [running]:",
             "\t/usr/local/go/src/runtime/proc.go:267 +0x1c5"]
    _, want, _ = parse_text(lines)
    _, got, _ = parse_text(["\ufeff" + x for x in lines])
    assert [(r["class"], r["reason"]) for r in got] == [(r["class"], r["reason"]) for r in want]
    assert {r["reason"] for r in want} <= set(NOISE_RULES.values())


@BATCHES
@given(st.lists(st.tuples(st.sampled_from(JSON_LINES), st.text(" ", min_size=1, max_size=4), PADDING),
                min_size=1, max_size=BATCH_LINES))
def test_spaces_around_a_json_line_change_nothing(cases):
    """An Istio JSON line pasted indented reads as without its blanks; a broken one is rejected at its
    own column. (A tab before "{" is the debug exporter's fields line: noise.lark says so first.)"""
    def reason(r2):
        assert r2["reason"].startswith(f"column {r2['column']}: invalid JSON: ")

    assert_padded_alike(cases, lambda line: line[:len(line) // 2], reason)


def test_json_python_will_not_read_is_a_reject_not_a_crash():
    huge = '{"authority": "x", "bytes_sent": ' + "9" * 5000 + "}"
    _, (r,), _ = parse_text([huge])
    assert r["class"] == "malformed" and r["reason"].startswith("invalid JSON: Exceeds the limit")


def test_a_json_reject_s_column_is_the_line_s_after_its_prefix():
    prefix = "2025-01-30T10:54:24.836653621Z stdout F "
    line = prefix + '{"authority": "x", broken'
    _, (r,), _ = parse_text([line])
    assert r["column"] == line.index("broken") + 1
    assert r["reason"] == f"column {r['column']}: invalid JSON: Expecting property name enclosed in double quotes"


# ---- prefixes add their columns and nothing else --------------------------------------------------

k8s_name = st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,20}\Z")
ACCESS = [x for x in read_lines(SAMPLES / "waypoint-egress-1.23.log") if x.startswith("[")][:5]


@FAST
@given(st.sampled_from(ACCESS), k8s_name, k8s_name, start_time(),
       st.sampled_from(["kubectl", "timestamps", "both", "stern", "compose", "stern-color", "compose-color",
                        "stern-namespace", "stern-timestamps", "stern-namespace-timestamps", "bracket",
                        "bracket-timestamps", "cri", "cri-stderr", "otel", "otel-closed", "otel-timestamps", "otel-kubectl", "otel-old",
                        "zap", "zap-caller", "zap-timestamps", "zap-kubectl"]),
       st.sampled_from(["36", "1;32", "38;5;208", ""]))
def test_prefixes_round_trip(line, pod, container, received, kind, color):
    stamp, when = received
    stamp = stamp.replace("Z", "123456Z")  # RFC3339Nano, as kubectl --timestamps writes it
    on, off = f"\x1b[{color}m", "\x1b[0m"  # (stern and docker compose color the names on a terminal)
    prefix = {
        "kubectl": f"[pod/{pod}/{container}] ",
        "timestamps": f"{stamp} ",
        "both": f"[pod/{pod}/{container}] {stamp} ",
        "stern": f"{pod} {container} ",
        "compose": f"{container}  | ",
        "stern-color": f"{on}{pod}{off} {on}{container}{off} ",
        # stern -A (or several namespaces) puts the namespace first; --timestamps the time last
        "stern-namespace": f"{on}istio-egress{off} {on}{pod}{off} {on}{container}{off} ",
        "stern-timestamps": f"{pod} {container} {stamp} ",
        "stern-namespace-timestamps": f"istio-egress {pod} {container} {stamp} ",
        "bracket": f"[{pod} {container}] ",
        "bracket-timestamps": f"[{pod} {container}] {stamp} ",
        "compose-color": f"{on}{container}  | {off}",
        "cri": f"{stamp} stdout F ",  # a node's container log file (containerd, CRI-O)
        "cri-stderr": f"{stamp} stderr F ",
        # the OpenTelemetry Collector's debug exporter: a body that ends with a newline has its ")"
        # on the next line; one that does not, on its own line
        "otel": "Body: Str(",
        "otel-closed": "Body: Str(",
        # (kubectl logs of the collector, --timestamps or --prefix: its pod is not the line's)
        "otel-timestamps": f"{stamp} Body: Str(",
        "otel-kubectl": f"[pod/{pod}/{container}] Body: Str(",
        "otel-old": "Body: ",  # (collectors before v0.59: the text as it is)
        # its default verbosity (normal): the first record of an export after its logger's time and
        # level (and caller); after kubectl's prefix the time is the first prefix's, else zap's
        "zap": f"{stamp}\tinfo\t",
        "zap-caller": f"{stamp}\tinfo\tdebugexporter@v0.117.0/exporter.go:138\t",
        "zap-timestamps": f"{stamp} 2031-01-01T00:00:00.000Z\tinfo\t",
        "zap-kubectl": f"[pod/{pod}/{container}] {stamp}\tinfo\t",
    }[kind]
    suffix = ")" if kind == "otel-closed" else ""
    stamped = kind.startswith(("stern", "bracket")) and kind.endswith("-timestamps")
    kind = ("stern" if kind.startswith(("stern", "bracket"))
            else kind.removesuffix("-color").removesuffix("-stderr").removesuffix("-caller"))
    (bare,), _ = parsed_alone(line)
    records, rejects, _ = parse_text([prefix + line + suffix])
    assert not rejects, rejects
    (rec,) = records
    want = dict(bare)
    if kind in ("kubectl", "both", "stern"):
        want["pod"] = pod
    if kind in ("kubectl", "both", "stern", "compose"):
        want["container"] = container
    if stamped or kind in ("timestamps", "both", "cri", "otel-timestamps", "zap", "zap-timestamps", "zap-kubectl"):
        want["received_at"] = when + dt.timedelta(microseconds=123)  # Arrow keeps microseconds
    assert rec == want


def test_a_debug_exporter_body_closed_on_its_line_among_other_prefixes():
    """The ")" that closes a debug exporter's body on its line is taken off whichever prefixes the
    batch's other lines have (each kind of prefix is read alone when a batch has only that kind)."""
    line = ACCESS[0]
    (bare,), _, _ = parse_text([line])
    for batch in (["Body: Str(" + line + ")"], ["[pod/wp-1/istio-proxy] " + line, "Body: Str(" + line + ")"],
                  ["2025-01-30T10:53:24.326000321Z stdout F " + line, "Body: Str(" + line + ")", "Body: Str(" + line],
                  ["2025-01-30T10:53:24.326000321Z Body: Str(" + line + ")", "[pod/wp-1/istio-proxy] " + line]):
        records, rejects, _ = parse_text(batch)
        assert not rejects and [r["route_name"] for r in records] == [bare["route_name"]] * len(batch)


def test_the_debug_exporters_first_record_is_read_and_ztunnel_lines_stay_whole():
    """At the debug exporter's default verbosity an export's first record follows its logger's
    "<time>\t<level>\t", as every ztunnel line's text does: in one batch, with and without a node
    file's prefix, each ztunnel line reads as it does alone and the access line as its body does."""
    line = ACCESS[0]
    ztunnel = [x for x in read_lines(SAMPLES / "ztunnel.log") if "\taccess\t" in x][:3]
    alone, alone_rejects, _ = parse_text(ztunnel)
    (bare,), _, _ = parse_text([line])
    cri = "2025-01-30T10:53:24.326000321Z stdout F "
    for before in ("", cri):
        batch = [before + x for x in ztunnel] + [before + "2025-01-30T10:53:41.002Z\tinfo\t" + line]
        records, rejects, _ = parse_text(batch)
        assert len(rejects) == len(alone_rejects)
        *tunnel, access = records
        assert [{k: v for k, v in r.items() if k != "received_at"} for r in tunnel] == \
            [{k: v for k, v in r.items() if k != "received_at"} for r in alone]
        go_line = before + "2025-01-30T10:53:41.002Z\tinfo\t[xds] connected to upstream XDS server"
        (said,) = parse_text([go_line])[1]  # (a Go program's own line whose message starts with "[")
        assert said["class"] == "noise" and said["reason"].startswith("istio-agent/Envoy log line"), said
        want = dict(bare, line_number=len(batch), received_at=dt.datetime(2025, 1, 30, 10, 53, 24, 326000, tzinfo=UTC) if before
                    else dt.datetime(2025, 1, 30, 10, 53, 41, 2000, tzinfo=UTC))
        assert access == want


def test_a_containers_indented_line_after_kubectls_prefix_is_its_noise():
    """istio-agent logs its "Effective config" as YAML over several lines at every proxy's start: after
    kubectl's prefix an indented one is the container's line (noise, its reason about the text after
    the prefix: a YAML line, noise.lark's yaml_line), not an access line that breaks at the prefix's
    "["; an access line after the
    prefix and spaces is read; a
    ztunnel line in tracing's style (two spaces after its time) still reads whole after kubectl's
    prefix, whose optional time would otherwise take its time."""
    prefix = "[pod/waypoint-1/istio-proxy] "
    records, rejects, _ = parse_text([prefix + "  zipkin:", prefix + "    address: zipkin.istio-system:9411"])
    assert not records and [r["class"] for r in rejects] == ["noise"] * 2
    assert all(r["reason"].startswith("YAML line (key: value, or - item) of a config dump") for r in rejects), rejects
    (bare,), _, _ = parse_text([ACCESS[0]])
    (rec,), rejects, _ = parse_text([prefix + "   " + ACCESS[0]])
    assert not rejects and rec == dict(bare, pod="waypoint-1", container="istio-proxy")
    tracing = next(x for x in read_lines(SAMPLES / "ztunnel.log") if "Z  INFO access: " in x)
    alone, alone_rejects, _ = parse_text([tracing])
    got, got_rejects, _ = parse_text([prefix + tracing])
    assert [r["class"] for r in got_rejects] == [r["class"] for r in alone_rejects]
    assert [dict(r, pod=None, container=None) for r in got] == alone and got[0]["pod"] == "waypoint-1"


@pytest.mark.parametrize("stamp, want", [
    ("2025-01-30T12:10:15Z", dt.datetime(2025, 1, 30, 12, 10, 15, tzinfo=UTC)),
    ("2025-01-30T12:10:15.123456789Z", dt.datetime(2025, 1, 30, 12, 10, 15, 123456, tzinfo=UTC)),
    ("2025-01-30T12:10:15.123+02:00", dt.datetime(2025, 1, 30, 10, 10, 15, 123000, tzinfo=UTC)),
    ("2025-01-30T12:10:15.123-0530", dt.datetime(2025, 1, 30, 17, 40, 15, 123000, tzinfo=UTC)),
])
def test_start_time_shapes_become_utc(stamp, want):
    line = ACCESS[0]
    records, rejects, _ = parse_text(["[" + stamp + line[line.index("]"):]])
    assert not rejects and records[0]["start_time"] == want
