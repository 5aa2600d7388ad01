"""Differential test: the generated fast path (regexes compiled from grammars/access.lark, run by
polars, and split plans read from it, cut by cut.c) and the exact Lark path (``Parser(fast=False)``: Lark's Earley parser on the same grammar,
then ``records.type_columns``) give identical records, or both reject, line for line.

The Lark path costs ~10 ms a line (logpipe/follow.py), so it runs in two worker processes (in the
test process itself under pytest-xdist, whose other worker has the other core), over every line of every sample (~4,200; a large one in parts of PART_LINES, several tests, none
long), DIFF_LINES lines of bench/generate.py (default 1,000;
LOGPIPE_DIFF_LINES=20000 runs more) and ~1,500 hypothesis-fuzzed lines: mutations of sample
lines, quotes in free text, lines built from field values of every layout.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor

import pytest
from conftest import build_line, generated_lines, parse_text, read_lines, sample_files, sample_id
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logpipe.diagnose import diagnose_line
from logpipe import fastpath, native, splitplan
from logpipe.exact import MAX_DIAGNOSE_CHARS
from logpipe.runtimes import parts_at_end
from logpipe.parse import TEXT_LAYOUTS, Parser

DIFF_LINES = int(os.environ.get("LOGPIPE_DIFF_LINES", "1000"))
WORKERS = 2


def _lark_batch(args):
    lines, source, first = args
    from logpipe.parse import Parser as _P

    global _SLOW
    try:
        parser = _SLOW
    except NameError:
        parser = _SLOW = _P(fast=False)
    b = parser.parse_batch(lines, source, first)
    return b.records.to_pylist(), b.rejects.to_pylist()


@pytest.fixture(scope="module")
def pool():
    """Worker processes for the Lark path; none under pytest-xdist (`make test`: its other worker
    keeps the second core busy, and each spawned worker's start and the records' pickling are saved)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        yield None
        return
    with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn")) as ex:
        yield ex


@pytest.fixture(scope="module", autouse=True)
def split_plans_for_every_batch():
    """The split plans (cut by cut.c when it is built, logpipe/native.py) for batches of any size, as
    ingest uses them for its large batches: the tests' batches of a sample file are smaller than
    ``fastpath.SPLIT_MIN_ROWS`` lines of a layout, which would leave every line to the capture regex.
    A line whose free text holds a quote still takes the capture regex, so both are compared."""
    if shutil.which(os.environ.get("CC", "cc")):
        assert native.library() is not None, f"cut.c was not built: {native.why_not}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fastpath, "SPLIT_MIN_ROWS", 0)
        yield


@pytest.fixture(scope="module")
def fast():
    """The fast path alone: the generated regexes and split plans, with the Lark fallback replaced by
    a reject (classified as the real parser would), so that a line only Lark parses shows up as a
    difference."""
    parser = Parser()

    def regex_only(df, rejects):
        for ln, raw, body in df.select("line_number", "raw", "body").iter_rows():
            where = None if len(body) > MAX_DIAGNOSE_CHARS else diagnose_line(parser.access, body, TEXT_LAYOUTS)
            cls = "noise" if where is not None and where.column == 1 else "malformed"
            rejects.append({"line_number": ln, "raw": raw, "reason": "no generated regex matched", "class": cls,
                            "column": None})
        return []

    parser._exact_path = regex_only
    return parser


def spans(lines: list[str], parts: int) -> list[tuple[int, int]]:
    """``lines`` cut into ``parts`` runs of about the same length, as (start, end) indexes; the parts
    of a line a container runtime split stay in one run (runtimes.parts_at_end)."""
    size = max(1, -(-len(lines) // parts))
    out, i = [], 0
    while i < len(lines):
        j = min(i + size, len(lines))
        j -= parts_at_end(lines[i:j]) % (j - i) if j < len(lines) else 0
        out.append((i, j))
        i = j
    return out


def lark_path(pool, lines: list[str], source: str, first: int = 1):
    """Parse with Parser(fast=False), split over the workers; returns records and rejects (the
    lines numbered from ``first``)."""
    jobs = [(lines[i:j], source, first + i) for i, j in spans(lines, WORKERS * 2)]
    records, rejects = [], []
    for recs, rejs in (pool.map if pool is not None else map)(_lark_batch, jobs):
        records += recs
        rejects += rejs
    return records, rejects


def assert_same(fast, pool, lines: list[str], source: str = "-", part: tuple[int, int] = (0, 1)):
    """The fast path's records and rejects of ``lines`` (parsed in one batch) are Lark's, line for
    line; ``part`` (k, n): only those of the k-th of ``spans(lines, n)`` (a sample too slow for Lark
    in one test, in several: `make test` runs this file in one xdist worker, --dist loadfile)."""
    lo, hi = spans(lines, part[1])[part[0]]
    batch = fast.parse_batch(lines, source)
    f_rec = {r["line_number"]: r for r in batch.records.to_pylist() if lo < r["line_number"] <= hi}
    f_rej = {r["line_number"]: r["class"] for r in batch.rejects.to_pylist() if lo < r["line_number"] <= hi}
    l_rec, l_rej = lark_path(pool, lines[lo:hi], source, lo + 1)
    l_rec = {r["line_number"]: r for r in l_rec}
    l_rej = {r["line_number"]: r["class"] for r in l_rej}
    for n in sorted(set(f_rec) | set(l_rec)):
        a, b = f_rec.get(n), l_rec.get(n)
        where = f"{source}:{n}: {lines[n - 1][:120]!r}"
        assert a is not None and b is not None, f"{where}: only the {'regex' if a else 'Lark'} path parses it"
        diff = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
        assert not diff, f"{where}: fast vs Lark differ: {diff}"
    assert f_rej == l_rej, f"{source}: rejected lines differ"
    return len(f_rec)


TEXT_SAMPLES = [p for p in sample_files() if not p.name.endswith((".gz", ".zst", ".bz2"))]
PART_LINES = 800  # (~8 s of Lark: scenario/baseline-week.log's 3,051 lines are four tests)


def sample_parts() -> list:
    out = []
    for path in TEXT_SAMPLES:
        n = -(-len(read_lines(path)) // PART_LINES) or 1
        out += [pytest.param(path, (k, n), id=sample_id(path) + (f"-part{k + 1}of{n}" if n > 1 else ""))
                for k in range(n)]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("path, part", sample_parts())
def test_fast_and_lark_paths_agree_on_samples(fast, pool, path, part):
    assert_same(fast, pool, read_lines(path), sample_id(path), part)


@pytest.mark.slow
def test_fast_and_lark_paths_agree_on_generated_lines(fast, pool):
    lines = generated_lines(DIFF_LINES, seed=7)
    cut, checked = [], []
    real, real_checked = splitplan.cut, splitplan.cut_layouts

    def counting(plan, body, types=None):
        easy, columns = real(plan, body, types)
        cut.append(0 if columns is None else columns.height)
        return easy, columns

    def counting_checked(plans, body, types=None, glue=""):
        got = real_checked(plans, body, types, glue)
        checked.append(0 if got is None or got[1] is None else got[1].height)
        return got

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(splitplan, "cut", counting)
        mp.setattr(splitplan, "cut_layouts", counting_checked)
        assert assert_same(fast, pool, lines, "generated") > DIFF_LINES * 0.9
    # the lines were cut by the split plans, not the capture regex; most without the whole-line
    # regex (their tokens checked by cut.c), unless there is no cut.c
    assert sum(cut) + sum(checked) > DIFF_LINES * 0.9
    assert sum(checked) > DIFF_LINES * 0.8 or native.library() is None


# ---- hypothesis mutations of real sample lines ----------------------------------------------------

ACCESS_LINES = [x for p in TEXT_SAMPLES for x in read_lines(p)[:200] if x.startswith("[")][:400]
MUTATION_CHARS = ' "-[]|;:,/0aZ\t'


@st.composite
def mutated_lines(draw):
    line = draw(st.sampled_from(ACCESS_LINES))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(line)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "duplicate"]))
        ch = draw(st.sampled_from(MUTATION_CHARS))
        if op == "insert":
            line = line[:i] + ch + line[i:]
        elif op == "delete":
            line = line[:i] + line[i + 1:]
        elif op == "replace":
            line = line[:i] + ch + line[i + 1:]
        elif op == "truncate":
            line = line[:i]
        else:  # duplicate a token (a field too many)
            j = line.find(" ", i)
            line = line[:j] + line[i:j] + line[j:] if j > i else line
    return line


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(mutated_lines(), min_size=25, max_size=25))
def test_fast_and_lark_paths_agree_on_mutations(fast, pool, lines):
    assert_same(fast, pool, lines, "mutated")


@st.composite
def quoted_text_lines(draw):
    """Quotes inside quoted values, next to a layout's own quotes, where Envoy prints them unescaped:
    lines with several readings (FORMATS.md b.4), or none."""
    line = draw(st.sampled_from(ACCESS_LINES))
    quotes = [i for i, c in enumerate(line) if c == '"'][2:]  # not the request's
    for _ in range(draw(st.integers(1, 2))):
        if not quotes:
            break
        i = draw(st.sampled_from(quotes)) + draw(st.integers(0, 1))
        line = line[:i] + draw(st.sampled_from(['" "', '"', '""', '" "" "', ' " ', '"x" "y'])) + line[i:]
    return line


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(quoted_text_lines(), min_size=10, max_size=10))
def test_fast_and_lark_paths_agree_on_quotes_in_free_text(fast, pool, lines):
    assert_same(fast, pool, lines, "quoted")


def test_lark_path_alone_parses_a_line():
    """Parser(fast=False) really takes the Lark path (no generated regex), and gets the same record."""
    line = next(x for x in ACCESS_LINES if "inbound-vip" in x)
    slow = Parser(fast=False)
    assert slow.fastpath.layouts == []
    (a,), _, _ = parse_text([line])
    (b,), _, _ = parse_text([line], parser=slow)
    assert a == b


# ---- lines built from field values (free text with spaces and quotes, every layout) ----------------


@pytest.mark.slow
@pytest.mark.parametrize("layout", TEXT_LAYOUTS)
def test_fast_and_lark_paths_agree_on_built_lines(fast, pool, layout):
    from test_properties import access_record

    @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(access_record(layout), min_size=8, max_size=8))
    def check(cases):
        lines = [build_line(layout, values) for values, _, _ in cases]
        assert assert_same(fast, pool, lines, layout) == len(lines)

    check()


AMBIGUOUS = ('[2025-01-30T10:53:24.085Z] "GET /get HTTP/1.1" 200 - via_upstream - "-" 0 254 237 236 "10.0.0.1" '
             '"Mozilla" "x" "rid-1" "httpbin.org" "192.0.2.10:80" inbound-vip|80|http|httpbin.org 10.244.0.18:40906 '
             '240.240.0.2:80 10.244.0.24:43940 - default')


def test_fast_path_splits_an_ambiguous_line_shortest_first():
    """Envoy does not escape header values (FORMATS.md b.4): a user agent `Mozilla" "x` makes six
    quoted fields where the layout has five, and no parser can know which field holds the quotes.
    The fast path gives the earliest fields the shortest text; the record is kept, not rejected."""
    (r,), rejects, _ = parse_text([AMBIGUOUS])
    assert not rejects
    assert (r["x_forwarded_for"], r["user_agent"], r["request_id"], r["authority"]) == (
        "10.0.0.1", "Mozilla", "x", 'rid-1" "httpbin.org')


AMBIGUOUS_MORE = [
    AMBIGUOUS,
    AMBIGUOUS.replace('"10.0.0.1"', '"10.0.0.1" "10.0.0.2"'),  # two readings at two places
    AMBIGUOUS.replace('"Mozilla" "x"', '"Mozilla" "x" "y" "z"'),  # several extra '" "'
    AMBIGUOUS.replace('"-" 0 254', '"a" "b" 0 254'),  # in the upstream failure reason
    AMBIGUOUS.replace('"10.0.0.1"', '""').replace('"Mozilla" "x"', '"" ""'),  # empty fields
]


@pytest.mark.parametrize("line", AMBIGUOUS_MORE)
def test_lark_path_splits_an_ambiguous_line_like_the_fast_path(line):
    """Lark keeps every reading of such a line (ambiguity="explicit") and takes the one the fast
    path's regex takes (grammar.Rulebook._resolve): both paths give the same record."""
    fast, rejects_fast, _ = parse_text([line])
    exact, rejects_exact, _ = parse_text([line], parser=Parser(fast=False))
    assert not rejects_fast and not rejects_exact
    assert fast == exact


UNIX_HOSTS = ["@envoy_admin", "@/tmp/abstract", "/var/run/app.sock", "unix:///var/run/app.sock"]


def test_unix_socket_upstream_hosts_are_rows_on_both_paths(fast, pool):
    """An upstream on a unix socket, as Envoy prints it: its path, @name in the abstract namespace,
    or after old Envoy's unix:// (the grammar's PIPE): a row on both paths, the address kept whole."""
    lines = [f'[2024-03-05T06:07:08.123Z] "GET /a HTTP/1.1" 200 - via_upstream - "-" 0 5 1 1 "-" "ua" "rid" "a" '
             f'"{h}" outbound|80||a 10.0.0.2:1 10.0.0.3:80 10.0.0.4:2 - default' for h in UNIX_HOSTS]
    assert assert_same(fast, pool, lines) == len(lines)
    rows = fast.parse_batch(lines, "-").records.to_pylist()
    assert [(r["upstream_host"], r["upstream_host_ip"]) for r in rows] == [(h, None) for h in UNIX_HOSTS]


SRV_KEYS = {  # Istio's DNS SRV cluster key (BuildDNSSrvSubsetKey) -> (subset, host)
    "outbound_.80_.v1_.httpbin.default.svc.cluster.local": ("v1", "httpbin.default.svc.cluster.local"),
    "outbound_.9080_._.reviews.default.svc.cluster.local": (None, "reviews.default.svc.cluster.local"),
    # "_." in the host: the subset (a DNS-1123 label) ends at the first one, as Istio's ParseSubsetKey cuts
    "outbound_.80_.v1_.x_.httpbin.default.svc.cluster.local": ("v1", "x_.httpbin.default.svc.cluster.local"),
    "outbound_.80_.a_.b_.c_.h.example": ("a", "b_.c_.h.example"),
    "outbound_.80_._._.h.example": (None, "_.h.example"),
    "outbound_.80_.v_1_.h.example": ("v_1", "h.example"),
}


def test_dns_srv_cluster_keys_split_alike_on_both_paths(fast, pool):
    """A cluster key in DNS SRV form whose host holds "_." reads one way on both paths (the regex
    took the last "_." as the subset's end, Lark the first), in a text line and in a JSON line."""
    import json

    line = ('[2024-03-05T06:07:08.123Z] "GET /a HTTP/1.1" 200 - via_upstream - "-" 0 5 1 1 "-" "ua" "rid" "a" '
            '"10.0.0.1:80" {} 10.0.0.2:1 10.0.0.3:80 10.0.0.4:2 - default')
    head = {k: ADDRESS_VALUES[k] for k in ("start_time", "method", "path", "protocol", "response_code")}
    lines = [line.format(k) for k in SRV_KEYS] + [json.dumps(head | {"upstream_cluster": k}) for k in SRV_KEYS]
    assert assert_same(fast, pool, lines) == len(lines)
    rows = fast.parse_batch(lines, "-").records.to_pylist()
    assert [(r["upstream_cluster_direction"], r["upstream_cluster_port"], r["upstream_cluster_subset"],
             r["upstream_cluster_host"]) for r in rows] == [("outbound", int(k.split("_.")[1]), *v)
                                                           for k, v in SRV_KEYS.items()] * 2


METHODS = ["get", "PROPFIND", "M-SEARCH", "BASELINE-CONTROL", "X1", "foo.bar", "!#$%&'*+.^_`|~"]


def test_any_method_envoy_passes_through_is_a_row_on_both_paths(fast, pool):
    """%REQ(:METHOD)% is what the client sent, an RFC 9110 token (case-sensitive: "get" is not GET):
    HTTP/2's :method is checked as a token only, HTTP/1 with allow_custom_methods takes any
    (access.lark's METHOD cites the sources). Every one is a row on both paths, kept as sent; a lone
    "-" is still no method, and a method with a character no token has is malformed."""
    line = ('[2024-03-05T06:07:08.123Z] "{} /a HTTP/1.1" 200 - via_upstream - "-" 0 5 1 1 "-" "ua" "rid" "a" '
            '"10.0.0.1:80" outbound|80||a 10.0.0.2:1 10.0.0.3:80 10.0.0.4:2 - default')
    lines = [line.format(m) for m in METHODS]
    assert assert_same(fast, pool, lines) == len(lines)
    assert [r["method"] for r in fast.parse_batch(lines, "-").records.to_pylist()] == METHODS
    bad = [line.format(m) for m in ("GE(T", "GE/T", "GÉT")]
    assert assert_same(fast, pool, bad + [line.format("-")]) == 1
    assert [r["class"] for r in fast.parse_batch(bad, "-").rejects.to_pylist()] == ["malformed"] * 3


def test_lines_longer_than_the_diagnosis_reads_are_rows_on_both_paths(fast, pool):
    """A long URL path or user agent (a query string that carries data out, a GraphQL GET) is a row on
    both paths: Parser(fast=False) reads a line of any length, as the fast path does
    (MAX_DIAGNOSE_CHARS bounds only the diagnosis of a line no layout takes); one cut short is
    malformed on both."""
    line = ('[2024-03-05T06:07:08.123Z] "GET /q?d={} HTTP/1.1" 200 - via_upstream - "-" 0 5 1 1 "-" "ua{}" "rid" '
            '"a" "10.0.0.1:80" outbound|80||a 10.0.0.2:1 10.0.0.3:80 10.0.0.4:2 - default')
    lines = [line.format("x" * 20_000, ""), line.format("", " y" * 5_000), line.format("x" * MAX_DIAGNOSE_CHARS, "")]
    assert all(len(x) > MAX_DIAGNOSE_CHARS for x in lines)
    assert assert_same(fast, pool, lines + [lines[0][:-40]]) == len(lines)


def test_the_exact_path_reads_a_bounded_number_of_quoted_field_ends(fast, pool):
    """Lark's time grows steeply with the '" "' of a line (a quote, a space, a quote: where a quoted
    field may end; Envoy prints header values unescaped): a user agent of '" " " …' took minutes a line
    on Parser(fast=False). The exact path reads a line with up to its limit of them, the same row as the
    fast path, and rejects one with more saying so (the fast path reads it: a row), whatever its length;
    a run of '"' alone is no such place, a row on both paths at 8,000 characters."""
    from logpipe.exact import lark_limit

    line = ('[2024-03-05T06:07:08.123Z] "GET /a HTTP/1.1" 200 - via_upstream - "-" 0 5 1 1 "-" "{}" "rid" '
            '"a" "10.0.0.1:80" outbound|80||a 10.0.0.2:1 10.0.0.3:80 10.0.0.4:2 - default')
    slow = Parser(fast=False)
    most = max(k for k in range(64) if lark_limit(slow.access, TEXT_LAYOUTS, line.format('" "' * k)) is None)
    over = [line.format('" "' * (most + 8))] + [line.format('" ' * (n // 2)) for n in (2000, 4000, 8000)]
    for text in over:  # (the first: ~1 s a line for Lark, the others: hours)
        (r,) = slow.parse_batch([text], "-").rejects.to_pylist()
        assert r["class"] == "malformed" and r["reason"].startswith("not read by the exact path: ")
        assert f"more than its limit of {most + 4} " in r["reason"]  # (4: the line's own '" "')
    assert fast.parse_batch(over, "-").records.num_rows == len(over)
    assert assert_same(fast, pool, [line.format('" "' * most), line.format('"' * 8000)]) == 2
    custom = Parser(custom='text:%REQ(:METHOD)% "%REQ(USER-AGENT)%" "%REQ(:AUTHORITY)%"', fast=False)
    (r,) = custom.parse_batch(['GET "' + '" "' * 40 + '" "a"'], "-").rejects.to_pylist()
    assert r["reason"].startswith("not read by the exact path: ")


# Envoy brackets an IPv6 with its port and prints it bare only without one (%…_WITHOUT_PORT%: an IP's
# addressAsString(), access.lark's address rules cite the source), an IPv4-mapped one dotted
BARE_IPV6 = {"upstream_host": "2001:db8::10", "upstream_local_address": "::ffff:192.0.2.1",
             "downstream_local_address": "fe80::1%2", "downstream_remote_address": "fd00:10:244::12"}
ADDRESS_VALUES = {
    "start_time": "2025-03-12T03:14:17.768Z", "method": "GET", "path": "/get", "protocol": "HTTP/1.1",
    "response_code": "200", "response_flags": "-", "response_code_details": "via_upstream",
    "connection_termination_details": "-", "upstream_transport_failure_reason": "-", "bytes_received": "0",
    "bytes_sent": "254", "duration": "140", "upstream_service_time": "139", "x_forwarded_for": "-",
    "user_agent": "curl/8.11.1", "request_id": "be0e58cb", "authority": "httpbin.org",
    "upstream_cluster": "outbound|443||httpbin.org", "requested_server_name": "-", "route_name": "default",
    "upstream_host": "[2001:db8::10]:443", "upstream_local_address": "[fd00:10:244::12]:39338",
    "downstream_local_address": "[2001:2::f0f0:2]:80", "downstream_remote_address": "[fd00:10:244::1b]:53841",
}


@pytest.mark.parametrize("layout", TEXT_LAYOUTS)
def test_an_unbracketed_ipv6_is_the_ip_alone_on_both_paths(fast, pool, layout):
    """An IPv6 without brackets in an address field is the whole IP, with no port, on both paths
    (not IP "2001:db8:" and port 10), in every layout; the bracketed ones keep their port."""
    lines = [build_line(layout, ADDRESS_VALUES), build_line(layout, {**ADDRESS_VALUES, **BARE_IPV6})]
    assert assert_same(fast, pool, lines * 2, layout) == 4
    plain, bare = fast.parse_batch(lines, layout).records.to_pylist()
    for column, ip in BARE_IPV6.items():
        if column in plain and plain[column] is not None:
            assert (bare[f"{column}_ip"], bare[f"{column}_port"]) == (ip, None)
            assert plain[f"{column}_ip"] == ADDRESS_VALUES[column][1:].split("]")[0] and plain[f"{column}_port"]


def test_an_unbracketed_ipv6_in_a_json_line_is_the_ip_alone_on_both_paths(fast, pool):
    """The same in Istio's JSON encoding, whose keys a provider may fill with %…_WITHOUT_PORT%."""
    import json

    line = json.dumps({k: ADDRESS_VALUES[k] for k in ("start_time", "method", "path", "protocol", "response_code")}
                      | BARE_IPV6)
    assert assert_same(fast, pool, [line, line]) == 2
    (row, _) = fast.parse_batch([line, line], "-").records.to_pylist()
    assert {c: (row[f"{c}_ip"], row[f"{c}_port"]) for c in BARE_IPV6} == {c: (ip, None) for c, ip in BARE_IPV6.items()}
