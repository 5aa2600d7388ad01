"""Split plans (logpipe/splitplan.py): each text layout's grammar read once into a plan that cuts
lines at double quotes and single spaces, used by ``Parser.parse_series`` for lines with the
layout's number of quotes. The plan must give exactly what the whole-line capture regex gives
(``Parser(split=False)``), and it must be built, refused and bypassed where its docstring says.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
from collections import Counter

import polars as pl
import pytest
from conftest import ROOT, generated_lines, read_lines, sample_files, split_part

from logpipe import fastpath, formats, grammar, layouts, native, nativecut, schema, splitplan, steps, subfields
from logpipe.parse import TEXT_LAYOUTS, Parser

QUOTE, SPACE = '"', " "
GRAMMARS = str(ROOT / "grammars")


@pytest.fixture(scope="module", autouse=True, params=["native", "polars"])
def plans_for_every_batch(request):
    """Split plans are used for batches of any size here (by default a layout needs
    ``fastpath.SPLIT_MIN_ROWS`` lines in a batch), so that every test line can take them; every test
    runs with the plan cut by cut.c (logpipe/native.py) and by polars (no C compiler)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fastpath, "SPLIT_MIN_ROWS", 0)
        mp.setenv("LOGPIPE_NATIVE", "1" if request.param == "native" else "0")
        if request.param == "native":
            if shutil.which(os.environ.get("CC", "cc")) is None:
                pytest.skip("no C compiler: cut.c cannot be built here")
            assert native.library() is not None, f"cut.c was not built: {native.why_not}"
        yield request.param


# For a test of what a plan is (the grammar read, splitplan.build, steps) that parses no line: the
# cut (cut.c or polars) plays no part in it, so it runs once, in the polars run (which needs no C
# compiler), not again in the native one.
NO_CUT = pytest.mark.parametrize("plans_for_every_batch", ["polars"], indirect=True)


@pytest.fixture(scope="module")
def access():
    return grammar.load_builtin("access")


@pytest.fixture(scope="module")
def parsers():
    """(split plans on, split plans off), built once."""
    return Parser(), Parser(split=False)


@pytest.fixture
def cut_calls(monkeypatch):
    """Every call of ``splitplan.cut`` and ``cut_layouts`` as (layout, number of rows it cut)."""
    calls: list[tuple[str, int]] = []
    real, real_checked = splitplan.cut, splitplan.cut_layouts

    def counting(plan, body, types=None):
        easy, columns = real(plan, body, types)
        calls.append((plan.layout, 0 if columns is None else columns.height))
        return easy, columns

    def counting_checked(plans, body, types=None, glue=""):
        got = real_checked(plans, body, types, glue)
        if got is None or got[1] is None:
            calls.append((plans[0].layout, 0))
        elif got[2] is None:
            calls.append((plans[0].layout, got[1].height))
        else:  # several layouts: each cut line's
            calls.extend((name, n) for name, n in got[2].value_counts().iter_rows())
        return got

    monkeypatch.setattr(splitplan, "cut", counting)
    monkeypatch.setattr(splitplan, "cut_layouts", counting_checked)
    return calls


def routed(calls, layout: str | None = None) -> int:
    return sum(n for name, n in calls if layout is None or name == layout)


def assert_same(split: Parser, whole: Parser, lines: list[str], source: str = "t.log", b=None):
    """``split``'s batch of ``lines``, checked against ``whole``'s (or ``b``: its batch already made)."""
    a = split.parse_batch(lines, source)
    b = b if b is not None else whole.parse_batch(lines, source)
    if not a.records.equals(b.records):  # (Arrow's compare; a row-by-row one of dicts costs ~1 s a 10k rows)
        got, want = a.records.to_pylist(), b.records.to_pylist()
        assert len(got) == len(want)
        for g, w in zip(got, want):  # row by row: a failure names the line and the columns that differ
            assert g == w, (lines[g["line_number"] - 1], {k: (g[k], w.get(k)) for k in g if g[k] != w.get(k)})
        assert a.records.schema == b.records.schema
    assert a.rejects.to_pylist() == b.rejects.to_pylist()
    assert (a.read, a.blank) == (b.read, b.blank)
    return a


@functools.lru_cache(maxsize=None)
def custom_layout(fmt: str) -> layouts.CustomLayout:
    """The layout of format string ``fmt`` (``--format-string``), compiled once (~60 ms: its grammar's)
    for the module's parsers of it, with and without split plans, in both runs."""
    return layouts.layout_from_spec(f"text:{fmt}")


def custom_book(text: str, start: str = "custom") -> grammar.Rulebook:
    return grammar.Rulebook(text, [start], source="<test>", import_paths=[GRAMMARS])


def tokens(seg: splitplan.Segment) -> list[splitplan.Token]:
    return [*seg.left, *([seg.free] if seg.free is not None else []), *seg.right]


def plan_outputs(plan: splitplan.SplitPlan) -> set[str]:
    """The columns a plan yields: fields of whole-text tokens and output names of regex tokens."""
    out = set()
    for seg in plan.segments:
        for t in tokens(seg):
            if t.field is not None:
                out.add(t.field)
            out.update(name for name, _groups in t.groups)
    return out


# ---- 1. a plan for every built-in layout ----------------------------------------------------------


@NO_CUT
@pytest.mark.parametrize("layout", TEXT_LAYOUTS)
def test_every_builtin_layout_has_a_plan(access, layout):
    plan = splitplan.build(access, layout)
    assert plan is not None and plan.layout == layout
    items = steps.layout_items(access, layout)
    quotes = sum(1 for i in items if steps.item_literal(access, i) == QUOTE)
    assert quotes >= 10  # the layouts quote the request line and five client fields at least
    assert plan.quotes == quotes
    assert len(plan.segments) == quotes + 1
    # The plan yields exactly the columns (and sub-columns) the whole-line regex captures.
    assert plan_outputs(plan) == set(access.compile(layout).groups)
    # Free text (may hold spaces) is exactly the TEXT columns: the path and the quoted fields.
    free = {seg.free.field for seg in plan.segments if seg.free is not None and seg.free.field}
    text_fields = {steps.item_field(access, i) for i in items
                   if steps.item_field(access, i) and steps.item_can_hold(access, i, SPACE)}
    assert free == text_fields and "path" in free and "user_agent" in free


def plans(parser: Parser) -> dict:
    """The split plan of each text layout of ``parser``, by layout name."""
    return {name: parser.fastpath.split_plan(name) for name, *_ in parser.fastpath.layouts}


def test_parser_builds_a_plan_per_layout(parsers):
    split, whole = parsers
    assert [name for name, *_ in split.fastpath.layouts] == list(TEXT_LAYOUTS)
    assert all(plan is not None for plan in plans(split).values())
    assert all(plan is None for plan in plans(whole).values())


def test_plans_are_read_when_a_batch_first_needs_one(monkeypatch):
    """Reading a plan from the grammar costs ms: `logpipe parse` of a few lines reads none."""
    monkeypatch.setattr(fastpath, "SPLIT_MIN_ROWS", 1000)
    line = read_lines(ROOT / "sample_logs" / "waypoint-egress-1.23.log")[0]
    fastpath._plan_of.cache_clear()
    built = []
    real = splitplan.build
    monkeypatch.setattr(splitplan, "build", lambda book, layout: built.append((layout, book)) or real(book, layout))
    parser = Parser()
    parser.parse_batch([line] * 10)
    assert built == []
    parser.parse_batch([line] * fastpath.SPLIT_MIN_ROWS)
    assert built == [("istio_1_9", parser.access)]


@NO_CUT
def test_istio_1_9_plan_shape(access):
    plan = splitplan.build(access, "istio_1_9")
    assert plan.quotes == 14
    # [START_TIME] "
    head = plan.segments[0]
    assert head.free is None
    assert (head.left[0].field, head.left[0].strip) == ("start_time", ("[", "]"))
    assert re.fullmatch(head.left[0].pattern, "[2024-07-18T16:13:58.198Z]")  # the token's whole text
    assert not any(t.useful for t in head.left[1:])
    # "METHOD PATH PROTOCOL": method from the left, path free, protocol from the right
    request = plan.segments[1]
    assert [t.field for t in request.left] == ["method"]
    assert request.free is not None and request.free.field == "path" and request.free.strip == ("", "")
    assert [t.field for t in request.right] == ["protocol"]
    # " 200 - via_upstream - ": whole tokens, split from the left
    codes = plan.segments[2]
    assert codes.free is None
    assert [t.field for t in codes.left if t.useful] == [
        "response_code", "response_flags", "response_code_details", "connection_termination_details"]
    # a quoted TEXT? field is a segment of its own, all free
    reason = plan.segments[3]
    assert (reason.left, reason.right, reason.free.field, reason.free.strip) == ((), (), "upstream_transport_failure_reason", ("", ""))
    # "%UPSTREAM_HOST%": an address, cut by its own regex into sub-columns
    (host,) = [t for t in plan.segments[13].left if t.useful]
    assert host.field is None and host.regex.startswith("^") and host.regex.endswith("$")
    assert {name for name, _ in host.groups} == {"upstream_host", "upstream_host_ip", "upstream_host_port"}
    # (an IPv4 or a name before its port, an IP in brackets, an IPv6 alone)
    assert dict(host.groups)["upstream_host_ip"] == ("upstream_host_ip", "upstream_host_ip__2", "upstream_host_ip__3")
    # cluster (with its optional ";"), three addresses, SNI, route
    tail = [t for t in plan.segments[14].left if t.useful]
    assert [t.field for t in tail] == [None, None, None, None, "requested_server_name", "route_name"]
    assert {name for name, _ in tail[0].groups} == {
        "upstream_cluster", "upstream_cluster_direction", "upstream_cluster_port",
        "upstream_cluster_subset", "upstream_cluster_host"}


def test_cut_one_line(access):
    """``cut`` on one istio_1_9 line, with spaces in the path and user agent."""
    import polars as pl

    line = ('[2025-01-30T10:53:24.085Z] "GET /search?q=blue shoes HTTP/1.1" 200 UF,URX via_upstream - "-" 0 254 237 236 '
            '"-" "Mozilla/5.0 (X11; Linux)" "6f2e" "httpbin.org" "[2001:db8::10]:443" inbound-vip|80|http|httpbin.org; '
            "10.244.0.18:39682 240.240.0.2:80 10.244.0.24:45748 - default")
    plan = splitplan.build(access, "istio_1_9")
    easy, columns = splitplan.cut(plan, pl.Series([line]))
    assert easy.to_list() == [True]
    row = columns.row(0, named=True)
    assert row["start_time"] == "2025-01-30T10:53:24.085Z"
    assert (row["method"], row["path"], row["protocol"]) == ("GET", "/search?q=blue shoes", "HTTP/1.1")
    assert (row["response_code"], row["response_flags"]) == ("200", "UF,URX")
    assert row["user_agent"] == "Mozilla/5.0 (X11; Linux)"
    assert (row["upstream_host"], row["upstream_host_port"]) == ("[2001:db8::10]:443", "443")
    assert row["upstream_cluster"] == "inbound-vip|80|http|httpbin.org"
    assert (row["upstream_cluster_direction"], row["upstream_cluster_host"]) == ("inbound-vip", "httpbin.org")
    assert (row["downstream_remote_address_ip"], row["route_name"]) == ("10.244.0.24", "default")
    # the same text as the whole-line capture regex, column for column
    compiled = access.compile("istio_1_9")
    groups = pl.Series([line]).str.extract_groups(f"^{compiled.pattern}$").struct.unnest()
    want = {out: next((groups[g][0] for g in names if groups[g][0] is not None), None)
            for out, names in compiled.groups.items()}
    assert row == want


# ---- 2. which items can hold a space or a quote ------------------------------------------------


@NO_CUT
@pytest.mark.parametrize("pattern, char, can", [
    ("[0-9]+", SPACE, False),
    ("[0-9]+", QUOTE, False),
    (r'[^ "\t\n]+', SPACE, False),
    (r'[^ "\t\n]+', QUOTE, False),
    (r"[^\n]+", SPACE, True),
    (r"[^\n]+", QUOTE, True),
    (r"\S+", SPACE, False),
    (r"\S+", QUOTE, True),
    (r"\s", SPACE, True),
    (r"\s", QUOTE, False),
    (r"[^\S]", SPACE, True),
    (r"[\w.-]+", SPACE, False),
    (r"\d{1,3}", SPACE, False),
    (r"[^\d]", SPACE, True),
    (".", SPACE, True),
    (".+", QUOTE, True),
    ("[ -~]", SPACE, True),  # a range holding the space
    ("[!-~]", SPACE, False),  # starts after it
    ("[!-~]", QUOTE, True),
    ('a"', QUOTE, True),
    ("a\\ b", SPACE, True),
    ('[^"]', SPACE, True),  # NOT_LITERAL
    ('[^"]', QUOTE, False),
    ("^abc$", SPACE, False),  # anchors hold nothing
    # alternations, groups and repeats are walked into
    ("ab|cd", SPACE, False),
    ("ab|c d", SPACE, True),
    ("(?:x(?P<g>[a-z]+))+", SPACE, False),
    ("(?:x( y)?)", SPACE, True),
    ("(?:[a-z]+ )*z", SPACE, True),
    ("(?:[a-z]+ )*?z", SPACE, True),
    ("x{2,3}(?:a|(?:b|[ ]))", SPACE, True),
    ("(?i:[a-z]+)", SPACE, False),
    ("(?>a b)", SPACE, True),  # atomic group
    ("(?!x)y", SPACE, True),  # a construct not read: conservatively True
])
def test_regex_can_hold(pattern, char, can):
    assert steps._regex_can_hold(pattern, char) is can


@NO_CUT
def test_item_can_hold_builtin_items(access):
    items = {steps.item_field(access, i): i for i in steps.layout_items(access, "istio_1_9")
             if steps.item_field(access, i)}
    holds_space = {f for f, i in items.items() if steps.item_can_hold(access, i, SPACE)}
    assert holds_space == {"path", "upstream_transport_failure_reason", "x_forwarded_for", "user_agent",
                           "request_id", "authority"}
    holds_quote = {f for f, i in items.items() if steps.item_can_hold(access, i, QUOTE)}
    assert holds_quote == holds_space  # TEXT holds anything; addresses and clusters exclude '"'
    # free text can hold anything, even what its regex ([^\n]+) cannot
    assert steps.item_can_hold(access, items["path"], "\n")
    assert not steps.item_can_hold(access, items["start_time"], "[")  # "[" is outside the column


@NO_CUT
def test_item_can_hold_literals_terminals_and_constructs():
    book = custom_book(r"""
%import .common (SP, DQ, INT, WORD, TEXT)
TEXT_NARROW: /[a-z]+/
NUMBERISH: /[0-9]+/
custom: method " | " path SP? protocol ("x" | "y z") "[" user_agent "]" SP authority SP route_name
method: WORD
path: TEXT_NARROW
protocol: NUMBERISH | "-"
user_agent: WORD | DQ
authority: TEXT?
route_name: (INT SP)? WORD
""")
    items = steps.layout_items(book, "custom")
    lit = [steps.item_literal(book, i) for i in items]
    can = [steps.item_can_hold(book, i, SPACE) for i in items]
    quote = [steps.item_can_hold(book, i, QUOTE) for i in items]
    by_name = dict(zip([steps.item_field(book, i) or lit[k] or f"#{k}" for k, i in enumerate(items)],
                       zip(can, quote)))
    assert by_name["method"] == (False, False)  # WORD
    assert by_name[" | "] == (True, False)  # a literal holding a space
    assert by_name["path"] == (True, True)  # named TEXT…: free text, whatever its regex says
    assert by_name["protocol"] == (False, False)  # an alternation of a terminal and a literal
    assert by_name["["] == (False, False)
    assert by_name["user_agent"] == (False, True)  # WORD | DQ: one branch holds a quote
    assert by_name["authority"] == (True, True)  # TEXT?: an optional free text
    assert by_name["route_name"] == (True, False)  # (INT SP)? WORD: the optional holds a space
    # SP? (an optional, not a separator) and ("x" | "y z") are walked too
    constructs = [(c, q) for i, li, c, q in zip(items, lit, can, quote)
                  if li is None and steps.item_field(book, i) is None]
    assert constructs == [(True, False), (True, False)]


# ---- 3. a plan is refused for two free-text tokens between the same quotes ---------------------

TWO_FREE = """
%import .common (SP, DQ, INT, WORD, TEXT, ISO_TIME)
custom: "[" start_time "]" SP DQ user_agent SP path DQ SP response_code
start_time: ISO_TIME
user_agent: TEXT
path: TEXT
response_code: INT
"""


@NO_CUT
def test_two_free_tokens_between_the_same_quotes_refuse_the_plan():
    book = custom_book(TWO_FREE)
    assert {"user_agent", "path", "start_time", "response_code"} <= book.fields
    assert splitplan.build(book, "custom") is None


@NO_CUT
def test_free_tokens_in_different_segments_get_a_plan():
    book = custom_book(TWO_FREE.replace("DQ user_agent SP path DQ", "DQ user_agent DQ SP DQ path DQ"))
    plan = splitplan.build(book, "custom")
    assert plan is not None and plan.quotes == 4
    assert [s.free.field if s.free else None for s in plan.segments] == [None, "user_agent", None, "path", None]
    # a free token between whole tokens, in one segment: found from both ends
    book = custom_book(TWO_FREE.replace("DQ user_agent SP path DQ", "DQ user_agent SP response_code DQ")
                       .replace("SP response_code\n", "SP path\n").replace("path: TEXT", "path: WORD"))
    plan = splitplan.build(book, "custom")
    seg = plan.segments[1]
    assert (seg.free.field, [t.field for t in seg.right]) == ("user_agent", ["response_code"])


def test_refused_plan_still_parses_with_the_whole_line_regex(cut_calls):
    """A custom grammar whose plan is refused: Parser keeps None for it, and its lines parse the
    same with and without split plans (none of them through ``extract``)."""
    split, whole = Parser(custom=TWO_FREE), Parser(custom=TWO_FREE, split=False)
    assert plans(split)["custom"] is None and plans(split)["istio_1_9"] is not None
    lines = ['[2025-03-01T00:00:00.000Z] "curl/8 x /a b" 200', '[2025-03-01T00:00:01Z] "a "q" b /c" 404',
             '[2025-03-01T00:00:02.5+01:00] "ua /" 500']
    batch = assert_same(split, whole, lines)
    assert batch.parsed == 3 and batch.records.column("log_format").to_pylist() == ["custom"] * 3
    assert routed(cut_calls, "custom") == 0


# ---- 4. split and whole-line regex agree on every sample and generated line -------------------


def _corpora():
    out = [(p.relative_to(ROOT).as_posix(), read_lines(p)) for p in sample_files()]
    out.append(("bench/generate.py seed 11", generated_lines(3000, 11)))
    out.append(("bench/generate.py seed 29", generated_lines(3000, 29)))
    return out


_WHOLE: dict = {}


def whole_corpus(whole: Parser, source: str, lines: list[str]):
    """``whole``'s batch of a corpus (``_corpora``), made once per ``subfields.DEDUPE_ROWS`` for the
    module: the whole-line regexes read alike with cut.c and without it (only the split plans'
    cut differs between this module's two runs), so both runs' splits, and ``by_layout``, are
    checked against one reading."""
    key = (source, subfields.DEDUPE_ROWS)
    if key not in _WHOLE:
        _WHOLE[key] = whole.parse_batch(lines, source)
    return _WHOLE[key]


@NO_CUT
def test_samples_include_the_scenario_folder():
    names = {p.relative_to(ROOT / "sample_logs").as_posix() for p in sample_files()}
    assert {"scenario/baseline-week.log", "scenario/incident-day.log"} <= names


# (cut, corpus) pairs test_split_equals_whole_line_regex_on_samples_and_generated_lines found the same
# in a batch too small for DEDUPE_ROWS: test_dedupe_of_token_values_changes_nothing's "never" would
# repeat the very same parses (no column reaches DEDUPE_ROWS either way), so it does not again.
SAME_WITHOUT_DEDUPE: set[tuple[str, str]] = set()


def test_split_equals_whole_line_regex_on_samples_and_generated_lines(parsers, cut_calls, plans_for_every_batch):
    split, whole = parsers
    text_rows, layouts = 0, Counter()
    for source, lines in _corpora():
        before = routed(cut_calls)
        batch = assert_same(split, whole, lines, source, whole_corpus(whole, source, lines))
        if len(lines) < subfields.DEDUPE_ROWS:
            SAME_WITHOUT_DEDUPE.add((plans_for_every_batch, source))
        kinds = batch.records.column("log_format").to_pylist()
        text = sum(1 for k in kinds if k in TEXT_LAYOUTS)
        layouts.update(k for k in kinds if k in TEXT_LAYOUTS)
        # a line the plan cut may still be rejected when typed (malformed.log: month 13)
        untyped = sum(1 for r in batch.rejects.to_pylist() if r["reason"].startswith("invalid value:"))
        assert routed(cut_calls) - before <= text + untyped
        text_rows += text
    seen = routed(cut_calls)
    assert text_rows > 9000
    assert seen > 0.5 * text_rows, (seen, text_rows)
    # every layout that occurs went through its plan
    assert {name for name, n in cut_calls if n} == set(layouts)
    assert len(layouts) == len(TEXT_LAYOUTS)


def test_split_equals_whole_line_regex_with_collector_prefixes(parsers, cut_calls):
    """kubectl/stern prefixes are cut off first; the plan reads the body."""
    split, whole = parsers
    body = ('[2025-01-30T10:53:24.085Z] "GET /get HTTP/1.1" 200 - via_upstream - "-" 0 254 237 236 "-" "curl/8.11.1" '
            '"6f2e" "httpbin.org" "192.0.2.10:80" inbound-vip|80|http|httpbin.org 10.244.0.18:39682 240.240.0.2:80 '
            "10.244.0.24:45748 - default")
    lines = [body, f"[pod/waypoint-7d9f8b6c4-x2k8p/istio-proxy] {body}", f"waypoint-7d9f8b6c4-x2k8p istio-proxy {body}",
             f"2025-01-30T10:53:24.085123456Z {body}"]
    batch = assert_same(split, whole, lines)
    assert batch.parsed == 4 and routed(cut_calls, "istio_1_9") == 4


# ---- 5. quotes inside free text, spaces inside the path -----------------------------------------

HEAD = '[2025-01-30T10:53:24.085Z] "{request}" 200 - via_upstream - "-" 0 254 237 236 "-" "{ua}" '
TAIL = ('"6f2ed0e3" "httpbin.org" "192.0.2.10:80" inbound-vip|80|http|httpbin.org 10.244.0.18:39682 '
        "240.240.0.2:80 10.244.0.24:45748 - default")


def line(request="GET /get HTTP/1.1", ua="curl/8.11.1"):
    return HEAD.format(request=request, ua=ua) + TAIL


@pytest.mark.parametrize("ua", ['curl "quoted" x', '"', 'a " b', '""', 'x "y z"'])
def test_quote_inside_free_text_takes_the_whole_line_regex(parsers, cut_calls, ua):
    split, whole = parsers
    batch = assert_same(split, whole, [line(ua=ua)])
    (rec,) = batch.records.to_pylist()
    assert (rec["log_format"], rec["user_agent"], rec["path"]) == ("istio_1_9", ua, "/get")
    assert rec["upstream_cluster_host"] == "httpbin.org"
    assert routed(cut_calls) == 0  # the quote count differs from the layout's


@pytest.mark.parametrize("request_line, method, path", [
    ("GET /a b HTTP/1.1", "GET", "/a b"),
    ("GET /search?q=blue  shoes HTTP/1.1", "GET", "/search?q=blue  shoes"),
    ("POST  /lead HTTP/2", "POST", " /lead"),
    ("GET /x HTTP/1.1 HTTP/1.1", "GET", "/x HTTP/1.1"),
    ("GET - - HTTP/1.1", "GET", "- -"),
    ("- - -", None, None),
])
def test_spaces_inside_the_path_take_the_plan(parsers, cut_calls, request_line, method, path):
    split, whole = parsers
    batch = assert_same(split, whole, [line(request=request_line)])
    (rec,) = batch.records.to_pylist()
    assert (rec["log_format"], rec["method"], rec["path"]) == ("istio_1_9", method, path)
    assert routed(cut_calls, "istio_1_9") == 1


def test_mixed_batch_keeps_line_order(parsers, cut_calls):
    """Lines of one layout split between the plan and the regex come back in input order."""
    split, whole = parsers
    lines = [line(request=f"GET /{i} x HTTP/1.1", ua=f'ua "{i}"' if i % 3 == 0 else f"ua {i}") for i in range(30)]
    lines.insert(7, "")
    lines.insert(12, "not an access line at all")
    batch = assert_same(split, whole, lines)
    recs = batch.records.to_pylist()
    assert [r["path"] for r in recs] == [f"/{i} x" for i in range(30)]
    assert [r["line_number"] for r in recs] == sorted(r["line_number"] for r in recs)
    assert routed(cut_calls) == 20 and batch.rejected == 1 and batch.blank == 1


def test_quotes_and_spaces_at_every_offset_and_in_long_lines(parsers, cut_calls):
    """cut.c finds quotes, spaces and tabs 16 bytes at a time: separators at every offset of a block,
    texts with thousands of spaces (more than its first buffer of positions holds), a path of 20k
    bytes, and lines it must leave to the whole-line regex (a tab, one quote too many) in between
    (a tab where the grammar allows none makes a reject),
    read as the whole-line regex reads them."""
    split, whole = parsers
    lines = [line(request=f"GET /{'p' * k} HTTP/1.1", ua="u" * (k % 17) + " x" * (k % 5)) for k in range(40)]
    lines += [line(ua="a " * 3000), line(request=f"GET /{'q' * 20000} HTTP/1.1"), line(ua=" " * 5000),
              line(ua="tab\there"), line().replace('"httpbin.org"', '"httpbin\torg"'),
              line().replace(" default", " def\tault"), line().replace("via_upstream", "via\tupstream"),
              line(ua='one " more'),
              line(request="GET  /two  spaces HTTP/1.1"), line(ua="a " * 3000 + '"')]
    batch = assert_same(split, whole, lines)
    assert batch.records.num_rows == len(lines) - 2 and batch.rejects.column("raw").to_pylist() == lines[45:47]
    assert routed(cut_calls) >= 44 and "httpbin\torg" in batch.records.column("authority").to_pylist()


def test_glued_lines_are_left_to_the_glue_check(parsers, cut_calls):
    """The checked cut leaves a line where '] "' ends at two of its quotes (cut.c's glue mark) to the
    check of a second "[START_TIME] \"" in it, which ran on every line before: two access lines glued
    together are rejected as before (and so is a user agent ending in a time in brackets, which that
    check cannot tell from them), and a line with the mark twice but one start is parsed as before."""
    split, whole = parsers
    glued = line() + line(request="GET /second HTTP/1.1")
    lookalike = line(ua="bot [2025-01-30T10:53:24.085Z] ")
    twice = line(ua="x] ").replace('"6f2ed0e3"', '"6f2ed0e3] "')
    lines = [line(), glued, lookalike, twice, line(request="GET /last HTTP/1.1")]
    batch = assert_same(split, whole, lines)
    assert [r["line_number"] for r in batch.records.to_pylist()] == [1, 4, 5]
    assert batch.records.column("user_agent")[1].as_py() == "x] "
    assert [r["line_number"] for r in batch.rejects.to_pylist()] == [2, 3]
    assert all("a second access line starts here" in r["reason"] for r in batch.rejects.to_pylist())
    if native.library() is not None:  # the checked cut (cut.c's): the first and last lines, not the other three
        assert cut_calls[0] == ("istio_1_9", 2)


# ---- 6. custom formats ------------------------------------------------------------------------

B3_PEER = formats.ISTIO_1_23_FORMAT + " %REQ(X-B3-TRACEID)% %DOWNSTREAM_PEER_URI_SAN%"
PEERS = ("[%START_TIME%] %DOWNSTREAM_PEER_URI_SAN% %UPSTREAM_PEER_URI_SAN% %REQUESTED_SERVER_NAME% %UPSTREAM_CLUSTER% "
         "%DOWNSTREAM_LOCAL_ADDRESS% %BYTES_SENT%")
KEY_VALUE = ('start=%START_TIME% method=%REQ(:METHOD)% path="%REQ(:PATH)%" status=%RESPONSE_CODE% '
             'flags=%RESPONSE_FLAGS% upstream=%UPSTREAM_HOST% cluster=%UPSTREAM_CLUSTER% dur=%DURATION%')
EPOCH = '%START_TIME(%s.%3f)% %REQ(:METHOD)% "%REQ(:PATH)%" %RESPONSE_CODE% %DURATION% %UPSTREAM_CLUSTER% %UPSTREAM_HOST%'
CLF_TIME = ('[%START_TIME(%d/%b/%Y:%H:%M:%S %z)%] %REQ(X-FORWARDED-FOR)% "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%" '
            "%RESPONSE_CODE%")

SAN = "spiffe://cluster.local/ns/shop/sa/frontend"
CUSTOM_LINES = {
    B3_PEER: [
        line() + f" 80f198ee56343ba8 {SAN}",
        line(request="GET /a b HTTP/1.1", ua="Mozilla/5.0 (X11)") + " - -",
        line(ua='say "hi"') + f" 463ac35c9f6413ad {SAN}",  # quotes: the whole-line regex
        line(),  # the built-in istio_1_9 layout, not the custom one
    ],
    PEERS: [
        f"[2025-03-01T00:00:00.000Z] {SAN} spiffe://cluster.local/ns/a/sa/b api.example.com "
        "outbound|443||api.example.com; 10.0.0.1:443 5120",
        "[2025-03-01T00:00:01.250Z] - - - PassthroughCluster [2001:db8::1]:80 -",
        f"[2025-03-01T00:00:02.000Z] {SAN} - httpbin.org inbound-vip|80|http|httpbin.org envoy://connect_originate/ 0",
    ],
    KEY_VALUE: [
        'start=2025-03-01T00:00:00.000Z method=GET path="/a b?c=d" status=200 flags=- upstream=10.0.0.1:80 '
        "cluster=outbound|80||a.svc dur=12",
        'start=2025-03-01T00:00:00.500Z method=POST path="/q "x"" status=503 flags=UF,URX upstream=- cluster=BlackHoleCluster dur=-',
        'start=2025-03-01T00:00:01.000Z method=- path="-" status=0 flags=DC upstream=[::1]:8080 cluster=inbound|8080|| dur=3',
    ],
    EPOCH: [
        '1740787200.123 GET "/get" 200 15 outbound|80||httpbin.org 192.0.2.10:80',
        '1740787201.000 PUT "/a b c" 204 - PassthroughCluster -',
        '1740787202.999 - "-" 0 7 BlackHoleCluster; tcp://10.0.0.1:5432',
    ],
    CLF_TIME: [
        '[01/Mar/2025:10:00:00 +0100] 192.0.2.1, 10.0.0.1 "GET /a b HTTP/1.1" 200',
        '[01/Mar/2025:10:00:01 -0500] - "POST /x HTTP/2" 500',
    ],
}


@pytest.mark.parametrize("fmt", list(CUSTOM_LINES), ids=["b3_peer", "peers", "key_value", "epoch", "clf_time"])
def test_custom_format_split_equals_whole_line_regex(fmt, cut_calls):
    split = Parser(custom=custom_layout(fmt))
    whole = Parser(custom=custom_layout(fmt), split=False)
    lines = CUSTOM_LINES[fmt]
    batch = assert_same(split, whole, lines)
    assert batch.rejected == 0 and batch.parsed == len(lines)
    kinds = batch.records.column("log_format").to_pylist()
    plan = plans(split)["custom"]
    if fmt == CLF_TIME:  # a time with a space and X-FORWARDED-FOR (TEXT) share a segment
        assert plan is None and routed(cut_calls, "custom") == 0
        return
    assert plan is not None and plan.quotes == fmt.count('"')
    expected = sum(1 for text, k in zip(lines, kinds) if k == "custom" and text.count('"') == plan.quotes)
    assert routed(cut_calls, "custom") == expected > 0


def test_custom_extra_columns_through_the_plan(cut_calls):
    """Unquoted extra columns (%REQ(X-B3-TRACEID)%, %DOWNSTREAM_PEER_URI_SAN%) come out of the plan."""
    layout = custom_layout(B3_PEER)
    assert layout.extra == ["x_b3_traceid", "downstream_peer_uri_san"]
    split = Parser(custom=layout)
    tail = plans(split)["custom"].segments[-1]
    # a header operator is free text (TEXT) even unquoted: found between the tokens on its left
    # (cluster, addresses, SNI, route) and the peer SAN on its right
    assert [t.field for t in tail.left][-2:] == ["requested_server_name", "route_name"]
    assert tail.free.field == "x_b3_traceid" and [t.field for t in tail.right] == ["downstream_peer_uri_san"]
    recs = split.parse_batch(CUSTOM_LINES[B3_PEER]).records.to_pylist()
    assert [r["log_format"] for r in recs] == ["custom", "custom", "custom", "istio_1_9"]
    assert [(r["x_b3_traceid"], r["downstream_peer_uri_san"]) for r in recs] == [
        ("80f198ee56343ba8", SAN), (None, None), ("463ac35c9f6413ad", SAN), (None, None)]
    assert recs[1]["path"] == "/a b" and recs[2]["user_agent"] == 'say "hi"'
    assert routed(cut_calls, "custom") == 2 and routed(cut_calls, "istio_1_9") == 1

    peers = Parser(custom=custom_layout(PEERS))
    recs = peers.parse_batch(CUSTOM_LINES[PEERS]).records.to_pylist()
    assert [r["downstream_peer_uri_san"] for r in recs] == [SAN, None, SAN]
    assert [r["upstream_peer_uri_san"] for r in recs] == ["spiffe://cluster.local/ns/a/sa/b", None, None]
    assert [r["upstream_cluster_host"] for r in recs] == ["api.example.com", None, "httpbin.org"]
    assert [r["downstream_local_address_port"] for r in recs] == [443, 80, None]


# ---- bugs found ---------------------------------------------------------------------------------


REWRITE = ('[%START_TIME%] "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%" %RESPONSE_CODE% '
           '"%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"')


def test_column_printed_twice_takes_the_first_value_as_the_regex_does():
    lines = ['[2025-03-01T00:00:00.000Z] "GET /v2/rewritten HTTP/1.1" 200 "/api/original"']
    split = Parser(custom=custom_layout(REWRITE))
    whole = Parser(custom=custom_layout(REWRITE), split=False)
    assert whole.parse_batch(lines).records.to_pylist()[0]["path"] == "/v2/rewritten"
    assert_same(split, whole, lines)


def test_custom_layout_named_like_a_builtin_one_does_not_replace_its_plan():
    fmt = formats.ENVOY_DEFAULT_FORMAT.replace("%RESPONSE_CODE% %RESPONSE_FLAGS%", "%RESPONSE_FLAGS% %RESPONSE_CODE%")
    text = formats.grammar_from_format(fmt, start="envoy")
    lines = ['[2024-05-03T09:12:40.747Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" '
             '"nsq2http" "209cea95-9e33-474d-aa50-3d4366f9cb8d" "locations" "tcp://10.0.2.1:80"']
    split, whole = Parser(custom=text), Parser(custom=text, split=False)
    rec = whole.parse_batch(lines).records.to_pylist()[0]
    assert (rec["response_code"], rec["response_flags"]) == (204, [])
    assert_same(split, whole, lines)


@pytest.mark.parametrize("rows", [1, 10**9], ids=["always", "never"])
def test_dedupe_of_token_values_changes_nothing(parsers, monkeypatch, rows, plans_for_every_batch):
    """A token's regex runs once per distinct value in large batches (``DEDUPE_ROWS``): forced on
    for every batch, or off, the records are the same as the whole-line regex's. (Off, a batch
    smaller than the default DEDUPE_ROWS is parsed as the test above parsed it: not again.)"""
    monkeypatch.setattr(subfields, "DEDUPE_ROWS", rows)
    split, whole = parsers
    for source, lines in _corpora():
        if len(lines) >= rows or (plans_for_every_batch, source) not in SAME_WITHOUT_DEDUPE:
            assert_same(split, whole, lines, source, whole_corpus(whole, source, lines))


def test_small_batches_take_the_capture_regex(monkeypatch, cut_calls):
    """Below ``SPLIT_MIN_ROWS`` lines of a layout in a batch, the capture regex reads them: same
    records, and ``extract`` sees none of them."""
    monkeypatch.setattr(fastpath, "SPLIT_MIN_ROWS", 10**9)
    lines = read_lines(ROOT / "sample_logs" / "waypoint-egress-1.23.log")
    before = routed(cut_calls)
    got = Parser().parse_batch(lines)
    assert routed(cut_calls) == before and got.parsed > 10
    assert got.records.to_pylist() == Parser(split=False).parse_batch(lines).records.to_pylist()


@NO_CUT
@pytest.mark.parametrize("pattern, expected", [
    (r'[a-z]+:\/\/([^\/ "]+\/)?', r'[a-z]+:\/\/(?:[^\/ "]+\/)?'),
    (r"(%[0-9A-Za-z]+)?", r"(?:%[0-9A-Za-z]+)?"),
    (r"a\(b[(]c[]()]d[^]()](?P<x>y)(?:z)", r"a\(b[(]c[]()]d[^]()](?P<x>y)(?:z)"),  # nothing to change
])
def test_terminal_groups_do_not_capture(pattern, expected):
    """A terminal's own groups become non-capturing (capture slots slow Rust's engine); escaped
    parentheses, parentheses in classes and named groups stay as they are."""
    from logpipe.ruleregex import uncapture

    assert uncapture(pattern) == expected
    assert re.compile(expected).groups == len(re.findall(r"\(\?P<", expected))  # named groups only


# ---- 6. address tokens read from their right (splitplan.Tail) --------------------------------------

WAYPOINT = ('[2024-07-18T16:13:58.198Z] "GET /get HTTP/1.1" 200 - via_upstream - "-" 0 254 237 236 "-" '
            '"curl/8.7.1" "8d80cec6-8fc1-40de-8bc7-19716f173bbd" "httpbin.org" "{up}" '
            'inbound-vip|80|http|httpbin.org {local} 240.240.0.2:80 {remote} - default')
# Every shape of address.lark's alternatives: the first (ip_port, with or without a scheme) is read
# from the right, the others (a scheme alone, a pipe that ends in ":digits", "-") by the regex.
ADDRESSES = ["10.244.0.24:{p}", "[fd00:10:244::18]:{p}", "fd00:10:244::18:{p}", "[::1]:{p}", "::1:{p}",
             "envoy://connect_originate/3.234.9.11:{p}", "tcp://10.0.0.1:{p}", "httpbin.org:{p}",
             "my_host-1.ns.svc:{p}", "/var/run/app.sock:{p}", "@/abstract:{p}", "envoy://internal/", "-",
             "1.2.3.4:{p}:{p}", "[fe80::1%eth0]:{p}"]


def test_texts_of_every_length_are_copied_whole(parsers):
    """cut.c copies a column's long texts (over 12 bytes) into its own buffer with moves of fixed
    sizes that overlap (8, 16, then 4 x 16 bytes up to 64, memcpy beyond): every length from 0 to
    100, in every text column of the line, gives the whole-line regex's values."""
    lines = []
    for n in range(101):
        word = "".join(chr(97 + (n + k) % 26) for k in range(n))
        lines.append(WAYPOINT.format(up="3.234.9.11:80", local="10.244.0.24:41160", remote="10.244.0.18:41548")
                     .replace("/get", "/" + word, 1).replace("curl/8.7.1", word or "-", 1)
                     .replace('"httpbin.org"', f'"{word or "-"}"', 1))
    split, whole = parsers
    batch = assert_same(split, whole, lines)
    assert batch.parsed == len(lines)
    assert [r["path"] for r in batch.records.to_pylist()][:20] == ["/" + "".join(chr(97 + (n + k) % 26)
                                                                         for k in range(n)) for n in range(20)]


@NO_CUT
def test_address_tokens_have_a_tail_and_clusters_not(access):
    for layout in TEXT_LAYOUTS:
        plan = splitplan.build(access, layout)
        tails = {t.tail.column: t.tail for seg in plan.segments for t in tokens(seg) if t.tail is not None}
        assert set(tails) <= set(schema.ADDRESS_COLUMNS) and "upstream_host" in tails
        for column, tail in tails.items():
            assert (tail.sep, tail.name) == (":", f"{column}_port")
            assert dict(tail.head_groups) == {f"{column}_ip": (f"{column}_ip", f"{column}_ip__2")}


@pytest.mark.parametrize("rows", [600, 3 * subfields.DEDUPE_ROWS])
def test_read_tail_gives_the_token_regex_columns(access, rows):
    """read_tail on texts of every address shape, unique by their ports (no dedupe of the whole
    text), a null among them: the columns of the token's regex run on every text. Which texts its
    first alternative takes is found from their heads and last parts (polars' cut of them here);
    both sizes: distinct heads by polars (a join) and by cut.c's dictionary codes."""
    token = next(t for seg in splitplan.build(access, "istio_1_9").segments for t in tokens(seg)
                 if t.tail is not None and t.tail.column == "downstream_remote_address")
    shapes = [*ADDRESSES, "", ":80", "10.0.0.1:", "10.0.0.1:x", "a:b:c", "[::1]", "10.0.0.1"]
    texts = [shapes[i % len(shapes)].format(p=10000 + i) for i in range(rows)]
    value = pl.Series("downstream_remote_address", [*texts, None], dtype=pl.String)
    got = subfields.read_tail(token, value)
    want = subfields._extract_groups(token.regex, token.groups, value, None)
    assert set(got) == set(want)
    for name in want:
        assert got[name].to_list() == want[name].to_list(), name
    assert want["downstream_remote_address_port"].count() > rows // 3  # many are read from the right


def test_tail_reads_what_the_token_regex_reads(parsers, monkeypatch):
    """Lines whose client and upstream-local addresses are unique (the Tail's case: no dedupe), of every
    address shape: the same records as the whole-line regex, and the Tail's head regex ran."""
    heads = {t.tail.head for seg in splitplan.build(grammar.load_builtin("access"), "istio_1_9").segments
             for t in tokens(seg) if t.tail is not None}
    ran: list[str] = []
    real = subfields._extract_groups
    monkeypatch.setattr(subfields, "_extract_groups", lambda rx, *a: (ran.append(rx), real(rx, *a))[1])
    lines = []
    for i in range(600):
        remote, local = ADDRESSES[i % len(ADDRESSES)], ADDRESSES[(i // len(ADDRESSES)) % len(ADDRESSES)]
        lines.append(WAYPOINT.format(up=ADDRESSES[i % 4].format(p=80), local=local.format(p=10000 + i),
                                     remote=remote.format(p=40000 + i)))
    split, whole = parsers
    batch = assert_same(split, whole, lines)
    # "1.2.3.4:p:p" is no address: both reject its lines
    assert batch.parsed == sum(1 for line in lines if not re.search(r"1\.2\.3\.4:\d+:\d+", line)) > 400
    assert heads & set(ran), "the Tail must have been taken"
    rows = batch.records.to_pylist()
    by_remote = {r["downstream_remote_address"]: r for r in rows}
    assert by_remote["[fd00:10:244::18]:40001"]["downstream_remote_address_ip"] == "fd00:10:244::18"
    assert by_remote["[fd00:10:244::18]:40001"]["downstream_remote_address_port"] == 40001
    assert by_remote["envoy://connect_originate/3.234.9.11:40005"]["downstream_remote_address_ip"] == "3.234.9.11"
    assert by_remote["/var/run/app.sock:40009"]["downstream_remote_address_port"] is None
    assert by_remote[None]["downstream_remote_address_ip"] is None  # "-"


@pytest.mark.parametrize("fmt", [f for f in CUSTOM_LINES if f != CLF_TIME], ids=["b3_peer", "peers", "key_value", "epoch"])
def test_custom_formats_are_cut_with_their_tokens_checked(fmt):
    """A format you give gets token DFAs too (logpipe/dfa.py): its lines skip its whole-line regex,
    and the checked cut takes exactly the lines that regex matches (with the plan's quotes)."""
    split = Parser(custom=custom_layout(fmt))
    plan = split.fastpath.split_plan("custom")
    assert nativecut.checks(plan) is not None
    lines = CUSTOM_LINES[fmt]
    if native.library() is None:  # (this module's polars run: the whole-line regex decides)
        assert splitplan.cut_checked(plan, pl.Series(lines)) is None
        return
    easy, _ = splitplan.cut_checked(plan, pl.Series(lines))
    rx = re.compile(split.custom.rulebook.regex("custom"))
    assert easy.to_list() == [bool(rx.fullmatch(x)) and x.count('"') == plan.quotes for x in lines]
    assert any(easy.to_list())


TIMES = ["2024-07-18T16:13:58.198Z", "2024-07-18T16:13:58Z", "2024-07-18T16:13:58.1Z", "2024-07-18T16:13:58.123456Z",
         "2024-07-18T16:13:58.1234567Z", "2024-07-18T16:13:58.198+02:00", "2024-02-29T00:00:00.000Z",
         "2023-02-29T00:00:00.000Z", "2023-04-31T00:00:00.000Z", "2024-12-31T23:59:59.999Z", "2024-07-18T24:00:00.000Z",
         "2024-07-18T16:60:00.000Z", "2016-12-31T23:59:60.000Z", "0001-01-01T00:00:00.000Z", "0000-01-01T00:00:00.000Z",
         "9999-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999Z", "1900-02-29T00:00:00.000Z", "2000-02-29T00:00:00.000Z"]
NUMBERS = ["0", "007", "-", "2147483647", "2147483648", "999999999999999999", "9999999999999999999", "12"]


@pytest.mark.parametrize("time", TIMES)
def test_times_read_by_the_cut_equal_records_py(plans_for_every_batch, parsers, time):
    """cut.c reads %START_TIME% itself (nativecut.Types); what it does not read exactly as records.py
    does (an offset, 7 digits of fraction, a leap second, no such day) is not cut: the same record
    or the same reject either way."""
    if plans_for_every_batch != "native":
        pytest.skip("what cut.c reads (the polars cut types nothing)")
    split, whole = parsers
    lines = [line().replace("2025-01-30T10:53:24.085Z", time, 1), line()]
    assert_same(split, whole, lines)


@pytest.mark.parametrize("number", NUMBERS)
def test_numbers_read_by_the_cut_equal_records_py(plans_for_every_batch, parsers, number):
    """Counters and the response code (an int32) read by cut.c: "-" null, too big a reject."""
    if plans_for_every_batch != "native":
        pytest.skip("what cut.c reads (the polars cut types nothing)")
    split, whole = parsers
    base = line()
    assert " 200 - via_upstream - \"-\" 0 254 237 236 " in base
    for counters in (f"{number} 254 237 236", f"0 {number} 237 {number}"):
        assert_same(split, whole, [base.replace(" 0 254 237 236 ", f" {counters} ", 1)])
    assert_same(split, whole, [base.replace(" 200 - ", f" {number} - ", 1)])


def test_fuzzed_times_and_numbers_read_by_the_cut_equal_records_py(plans_for_every_batch, parsers):
    """cut.c walks a typed token's DFA only when the token reads as null (nativecut._deferred): a
    value it reads is one the token's regex accepts. Mutations of TIMES and NUMBERS in START_TIME, the
    response code and the counters: the same records and rejects as the whole-line regex."""
    if plans_for_every_batch != "native":
        pytest.skip("what cut.c reads (the polars cut types nothing)")
    import random

    rng = random.Random(11)

    def mutate(text: str) -> str:
        chars = list(text)
        for _ in range(rng.randint(0, 2)):
            k = rng.randrange(len(chars) + 1)
            c = rng.choice("0123456789-.:TZ+[]x")
            if rng.random() < 0.5 and chars:
                chars[min(k, len(chars) - 1)] = c
            elif rng.random() < 0.5:
                chars.insert(k, c)
            elif chars:
                del chars[min(k, len(chars) - 1)]
        return "".join(chars)

    split, whole = parsers
    base = line()
    lines = [base.replace("2025-01-30T10:53:24.085Z", mutate(rng.choice(TIMES)), 1)
             .replace(" 200 - ", f" {mutate(rng.choice(NUMBERS))} - ", 1)
             .replace(" 0 254 237 236 ", " {} {} {} {} ".format(*(mutate(rng.choice(NUMBERS)) for _ in range(4))), 1)
             for _ in range(600)]
    assert_same(split, whole, lines)


WIDE_TYPED = """
%import .common (SP, DQ, TEXT)
wide: "[" start_time "]" SP response_code SP bytes_sent SP DQ user_agent DQ
start_time: /[^\\]" \\t]+/
response_code: /[^" \\t]+/
bytes_sent: /[^" \\t]+/
user_agent: TEXT
"""


def test_the_cut_reads_as_values_only_value_texts(plans_for_every_batch):
    """What cut.c's read_typed reads as a value is one of nativecut.VALUE_TEXTS (the proof of
    ``_deferred`` rests on it): tokens whose regexes take any text, fuzzed around times and numbers;
    every line cut holds, for each value it typed, a text of its kind's VALUE_TEXTS."""
    if plans_for_every_batch != "native":
        pytest.skip("what cut.c reads (the polars cut types nothing)")
    import random

    rng = random.Random(12)
    book = grammar.Rulebook(WIDE_TYPED, ["wide"], source="<test>", import_paths=[GRAMMARS])
    plan = splitplan.build(book, "wide")
    types = nativecut.Types(tuple((f.name, f.type) for f in schema.RECORD_SCHEMA))
    texts = {"time": TIMES + ["2024-07-18T16:13:58.", "2024-07-18 16:13:58Z", "+2024-07-18T16:13:58Z", "2024-7-18T16:13:58Z"],
             "number": NUMBERS + ["+1", "-1", "1e3", "0x10", " 1", "١٢", "1.0", ""]}
    pool = {k: v + ["".join(rng.choice("0123456789-+.:TZ") for _ in range(rng.randrange(1, 30))) for _ in range(300)]
            for k, v in texts.items()}
    for k in pool:  # and each text with a byte changed
        pool[k] += [t[:i] + rng.choice("0123456789-+.:TZx") + t[i + 1:] for t in list(pool[k]) if t
                    for i in [rng.randrange(len(t))]]
    good = {"time": ["2024-07-18T16:13:58.198Z"], "number": ["0", "200", "-"]}

    def pick(k: str) -> str:  # most lines are cut, so each fuzzed text is read when it can be
        return rng.choice(pool[k] if rng.random() < 0.4 else good[k])

    rows = [(pick("time"), pick("number"), pick("number")) for _ in range(3000)]
    rows = [r for r in rows if not any(c in "".join(r) for c in '" \t]')]
    lines = [f'[{t}] {c} {b} "x"' for t, c, b in rows]
    easy, columns, _, _ = splitplan.cut_layouts((plan,), pl.Series(lines), types)
    got = columns.to_dicts()
    taken = [r for r, e in zip(rows, easy.to_list()) if e]
    assert len(taken) == len(got) > 100
    kinds = {"start_time": nativecut.TIME_KIND, "response_code": nativecut.INT32_KIND, "bytes_sent": nativecut.INT64_KIND}
    for (t, c, b), row in zip(taken, got):
        for name, text in zip(("start_time", "response_code", "bytes_sent"), (t, c, b)):
            if row[name] is not None:
                assert re.fullmatch(nativecut.VALUE_TEXTS[kinds[name]], text), (name, text)
            else:
                assert text in ("", "-"), (name, text)


def test_typed_tokens_whose_regex_takes_every_value_are_walked_only_when_null(parsers):
    """nativecut._deferred, on the default layout: START_TIME, the response code and the four counters."""
    parser = parsers[0]
    plan = parser.fastpath.split_plan("istio_1_9")
    cut, chk = nativecut._native_plan(plan), nativecut.checks(plan)
    skip, tok_chk = nativecut._deferred(cut, chk, list(parser.fastpath.types.kinds(cut[0])))
    assert {cut[0][u].field for u, c in enumerate(tok_chk) if c >= 0} == {
        "start_time", "response_code", "bytes_received", "bytes_sent", "duration", "upstream_service_time"}
    assert sum(skip) == 6 and all(skip[c] for c in tok_chk if c >= 0)


def test_text_columns_nulled_by_the_cut(parsers, cut_calls):
    """"-" and "" of a column cut whole are null (cut.c sets it); a column printed twice keeps its
    first value that is there, "-" included (it then types to null, as with the regex)."""
    split, whole = parsers
    lines = [line(ua=""), line(ua="-"), line(request="- - -"), line().replace('"httpbin.org"', '""', 1),
             line().replace(" - default", " - -", 1)]
    batch = assert_same(split, whole, lines)
    recs = batch.records.to_pylist()
    assert [r["user_agent"] for r in recs[:2]] == [None, None]
    assert (recs[2]["method"], recs[3]["authority"], recs[4]["route_name"]) == (None, None, None)
    assert routed(cut_calls) == len(lines)
    fmt = '%REQ(:PATH)% "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%" %RESPONSE_CODE%'
    split, whole = (Parser(custom=custom_layout(fmt), split=s) for s in (True, False))
    got = assert_same(split, whole, ['- "/b" 200', '/a "-" 200', '- "-" 200'])
    assert [r["path"] for r in got.records.to_pylist()] == [None, "/a", None]


def test_lines_of_twelve_bytes_or_fewer(cut_calls):
    """Arrow keeps a text of at most 12 bytes inside its view: cut.c reads such lines there."""
    fmt = "%RESPONSE_CODE% %BYTES_SENT% %PROTOCOL%"
    split, whole = (Parser(custom=custom_layout(fmt), split=s) for s in (True, False))
    lines = ["200 5 -", "404 - HTTP/2", "503 12345 -", "200 123456789 HTTP/1.1", "x y z"]
    got = assert_same(split, whole, lines)
    assert [r["bytes_sent"] for r in got.records.to_pylist()] == [5, None, 12345, 123456789]
    assert routed(cut_calls) == 4 or native.library() is None


@pytest.mark.parametrize("address", ["10.244.0.18:39682", "[2001:db8::10]:443", "httpbin.org:443", "-", "@/tmp/s:80",
                                     "/var/run/x.sock", "envoy://connect_originate/10.0.0.1:80", "10.0.0.1:99999999999",
                                     "10.0.0.1:2147483648", "10.0.0.1:", "tcp://10.0.0.1:007", "[fe80::1%eth0]:8080",
                                     "2001:db8::10", "::ffff:192.0.2.1", "fe80::1%2"])
def test_addresses_read_by_the_cut(parsers, cut_calls, address):
    """Addresses of every alternative read from their right (``splitplan.Tail``) or by their regex
    (a pipe, "-"), with ports too large for their type: the same records and rejects as the regex."""
    split, whole = parsers
    lines = [line().replace("10.244.0.24:45748", address, 1), line().replace("240.240.0.2:80", address, 1), line()]
    assert_same(split, whole, lines * 3)


# ---- one checked cut for several layouts (splitplan.cut_layouts, FastPath._take_checked) -------------

THREE_LAYOUTS = """
%import .common (SP, DQ, INT, WORD, TEXT, ISO_TIME)
first: "[" start_time "]" SP response_code SP DQ user_agent DQ
second: "[" start_time "]" SP method SP DQ user_agent DQ
third: "[" start_time "]" SP method SP DQ user_agent DQ SP DQ path DQ
start_time: ISO_TIME
response_code: INT
method: WORD
user_agent: TEXT
path: TEXT
"""


def test_several_layouts_in_one_cut_by_the_first_that_fits(plans_for_every_batch):
    """A line goes to the first plan that cuts it, and to none when an earlier layout may still take
    it: a value cut.c does not type (an int over 2^31) or a tab stops it there, where a later plan
    would have cut it; a line with more quotes than earlier layouts is cut by a later one, flagged
    (doubt: a bit per such layout)."""
    if plans_for_every_batch != "native":
        pytest.skip("cut_layouts is cut.c's")
    book = grammar.Rulebook(THREE_LAYOUTS, ["first", "second", "third"], source="<test>", import_paths=[GRAMMARS])
    plans = tuple(splitplan.build(book, name) for name in ("first", "second", "third"))
    types = nativecut.Types(tuple((f.name, f.type) for f in schema.RECORD_SCHEMA))
    t = "[2025-01-01T00:00:00.000Z]"
    lines = [f'{t} 200 "a b"', f'{t} GET "a"', f'{t} 99999999999 "a"', f'{t} 200 "a" "b"', f'{t} 200 "a\tb"',
             f'{t} GET "a" "/x"', f'{t} GET "a" "/x" "y"']
    easy, columns, layouts, doubt = splitplan.cut_layouts(plans, pl.Series(lines), types)
    assert easy.to_list() == [True, True, False, True, False, True, False]
    assert layouts.to_list() == ["first", "second", "third", "third"] and doubt.to_list() == [0, 0, 3, 3]
    rows = columns.to_dicts()
    assert [(r["response_code"], r["method"], r["user_agent"], r["path"]) for r in rows] == [
        (200, None, "a b", None), (None, "GET", "a", None), (None, "200", "a", "b"), (None, "GET", "a", "/x")]
    # each line is its layout's, and the fourth is also the first's (its user agent: 'a" "b'): the
    # parser asks the regexes of the layouts a line's doubt names
    for text, name in zip([x for x, e in zip(lines, easy.to_list()) if e], layouts.to_list()):
        assert re.fullmatch(book.regex(name), text)
    assert re.fullmatch(book.regex("first"), lines[3]) and re.fullmatch(book.regex("second"), lines[2])


def test_the_checked_cut_takes_the_layouts_it_can_check(plans_for_every_batch, parsers):
    """``checkable``: the longest start of the layouts whose tokens all have DFAs (a look-ahead has
    none): a layout after one that cannot be checked is not tried in the cut (that one's whole-line
    regex must come first). Every built-in layout can be, in one cut."""
    if plans_for_every_batch != "native":
        pytest.skip("cut_layouts is cut.c's")
    odd = THREE_LAYOUTS.replace("path: TEXT", "path: TEXT\nfourth: \"[\" start_time \"]\" SP route_name\n"
                                                "route_name: /(?=x)x+/")
    book = grammar.Rulebook(odd, ["first", "second", "fourth"], source="<test>", import_paths=[GRAMMARS])
    first, second, fourth = (splitplan.build(book, name) for name in ("first", "second", "fourth"))
    assert nativecut.checks(fourth) is None and nativecut.checks(second) is not None
    assert splitplan.checkable((first, fourth, second)) == (first,)
    assert splitplan.checkable((first, second, fourth)) == (first, second)
    split = parsers[0]
    builtin = tuple(split.fastpath.split_plan(name) for name in TEXT_LAYOUTS)
    assert splitplan.checkable(builtin, split.fastpath.types) == builtin


@pytest.fixture(scope="module")
def by_layout(parsers):
    """The corpora's lines by the layout the whole-line regexes read them as."""
    whole, found = parsers[1], {}
    for source, lines in _corpora():
        batch = whole_corpus(whole, source, lines)
        for ln, name in zip(batch.records.column("line_number").to_pylist(),
                            batch.records.column("log_format").to_pylist()):
            if not split_part(lines[ln - 1]) and not lines[ln - 1].startswith("{"):  # (the line its row reads: not
                # a split line's first part, nor a collector's record of a line)
                found.setdefault(name, []).append(lines[ln - 1])
    return found


def test_a_later_layout_joins_the_checked_cut_once_a_batch_has_many_of_its_lines(parsers, by_layout, cut_calls):
    """A fresh parser cuts with the first layout's plan; a batch with CHECKED_MIN_ROWS lines of a
    later layout (read by its whole-line regex) adds the plans up to it, and the next batch cuts
    those lines in the same call: the same records either way."""
    split, whole = parsers
    mixed = [x for name in ("istio_1_9", "istio_1_2", "istio_1_8") for x in by_layout[name][:30]]
    assert len(mixed) == 90
    fresh = Parser()
    assert fresh.fastpath.checked == 1
    assert_same(fresh, whole, mixed)
    native_cut = native.library() is not None  # (None in the polars runs: LOGPIPE_NATIVE=0)
    assert fresh.fastpath.checked == (TEXT_LAYOUTS.index("istio_1_8") + 1 if native_cut else fresh.fastpath.checked)
    cut_calls.clear()
    assert_same(fresh, whole, mixed[::-1])
    if native_cut:
        assert {name: n for name, n in cut_calls if n} == {"istio_1_9": 30, "istio_1_2": 30, "istio_1_8": 30}


def test_a_fresh_parsers_first_large_batch_is_cut_once_with_the_layouts_it_samples(parsers, by_layout, cut_calls,
                                                                                  monkeypatch):
    """A batch of SPLIT_MIN_ROWS lines or more that a fresh parser meets first: the layouts of
    SAMPLE_LINES of its lines, spread over it, join the checked cut before it runs, so that the
    later layouts' lines are cut in the same call, not read by their whole-line regexes and a cut
    of their own each; the same records as the whole-line regexes give."""
    split, whole = parsers
    lines = [x for name in ("istio_1_9", "istio_1_2", "istio_1_8") for x in by_layout[name][:30]] * 12
    monkeypatch.setattr(fastpath, "SPLIT_MIN_ROWS", 1000)  # (as outside this module: 360 lines cut alone are too few)
    assert len(lines) >= fastpath.SPLIT_MIN_ROWS
    fresh = Parser()
    assert fresh.fastpath.checked == 1
    assert_same(fresh, whole, lines)
    if native.library() is not None:  # (None in the polars runs: LOGPIPE_NATIVE=0)
        assert fresh.fastpath.checked == TEXT_LAYOUTS.index("istio_1_8") + 1
        assert {name: n for name, n in cut_calls if n} == {"istio_1_9": 360, "istio_1_2": 360, "istio_1_8": 360}
        assert len(cut_calls) == 3  # (one call of cut_layouts: each of its layouts counted)
    # sampled once: a later batch with another layout's lines adds it as before (CHECKED_MIN_ROWS)
    cut_calls.clear()
    more = by_layout["istio_1_9"][:30] * 40 + by_layout["envoy"][:20]
    assert_same(fresh, whole, more)
    if native.library() is not None:
        assert fresh.fastpath.checked == TEXT_LAYOUTS.index("envoy") + 1


def test_a_line_an_earlier_layout_may_take_goes_back_to_its_regex(cut_calls):
    """A custom layout (tried first) with one quote and free text after it: an Istio line has more
    quotes, so cut.c cuts it by istio_1_9's plan with a doubt; the custom layout's regex then takes
    those it matches (GET), as without the cut."""
    fmt = custom_layout('[%START_TIME%] "GET %REQ(USER-AGENT)%')
    split, whole = Parser(custom=fmt), Parser(custom=fmt, split=False)
    split.fastpath.checked = 2
    istio = ('[2024-07-18T16:13:58.198Z] "{} /get HTTP/1.1" 200 - via_upstream - "-" 0 252 260 259 "-" "curl/8.7.1" '
             '"8d80cec6" "httpbin.org" "3.234.9.11:80" inbound-vip|80|http|httpbin.org 10.244.0.24:41160 '
             '240.240.0.2:80 10.244.0.18:41548 - default')
    lines = [istio.format("GET"), istio.format("POST"), '[2024-07-18T16:13:58.198Z] "GET x', istio.format("PUT")]
    batch = assert_same(split, whole, lines)
    assert batch.records.column("log_format").to_pylist() == ["custom", "istio_1_9", "custom", "istio_1_9"]
    if native.library() is not None:
        # (cut.c cut three by istio_1_9's plan; the custom layout's regex took the GET line back)
        assert sorted((name, n) for name, n in cut_calls if n) == [("custom", 1), ("istio_1_9", 3)]
    # a custom layout whose free text takes any line: every line the cut gave istio_1_9 goes back
    anything = custom_layout("[%START_TIME%] %REQ(USER-AGENT)%")
    split, whole = Parser(custom=anything), Parser(custom=anything, split=False)
    split.fastpath.checked = 2
    batch = assert_same(split, whole, lines)
    assert batch.records.column("log_format").to_pylist() == ["custom"] * 4
