"""logpipe/dfa.py: a split-plan token's regex as a byte DFA, and cut.c's checked cut that runs them
(splitplan.cut_checked), which lets a line skip its layout's whole-line regex.

What must hold is soundness: a DFA accepts a text only when the token's regex does, and the checked
cut takes a line only when the layout's whole-line regex matches it. Both are fuzzed here against
Python's ``re`` on real tokens and lines (every sample and generated line, and mutations of them:
ASCII, non-ASCII, quotes, spaces). On ASCII texts the DFA is exact, so it is compared both ways.
"""
from __future__ import annotations

import random
import re

import pytest
from conftest import generated_lines, read_lines, sample_files

from logpipe import dfa, native, nativecut, splitplan, subfields
from logpipe.parse import TEXT_LAYOUTS, Parser, chunk_lines

ALPHABET = list("0123456789abcdefxyzABCDEFXYZ.:-_/[]|,;%@ \"\t") + ["é", "ß", "€", "😀", "٣"]


@pytest.fixture(scope="module")
def parser():
    return Parser()


def _plan_tokens(parser):
    plan = parser.fastpath.split_plan("istio_1_9")
    for seg in plan.segments:
        for token in (*seg.left, *([seg.free] if seg.free is not None else []), *seg.right):
            yield token, token is seg.free


def _lines():
    lines = [x for p in sample_files() if p.suffix == ".log" for x in read_lines(p)]
    return lines + generated_lines(2000, 5)


def _mutate(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 3)):
        k = rng.randrange(len(chars) + 1)
        what = rng.random()
        if what < 0.4 and chars:
            chars[min(k, len(chars) - 1)] = rng.choice(ALPHABET)
        elif what < 0.7:
            chars.insert(k, rng.choice(ALPHABET))
        elif chars:
            del chars[min(k, len(chars) - 1)]
    return "".join(chars)


def test_each_token_dfa_accepts_only_what_its_regex_does(parser):
    """Every token of the istio_1_9 plan, on the texts of real tokens and mutations of them that the
    cut can give (no quote; no space but in free text): the DFA never accepts a text its regex
    refuses, and on ASCII texts it is exact."""
    rng = random.Random(3)
    words = sorted({w for line in _lines()[:3000] for part in line.split('"') for w in (part, *part.split(" "))})
    tokens = list(_plan_tokens(parser))
    assert len(tokens) > 30
    # no token the cut gives holds an excluded character (the DFA's sinks count on it): such texts are
    # left out; the words' own texts are made once, a token's mutations added to them
    common = set(words) | {"", "-", " ", "a b"}

    def texts_of(pool, excluded):
        return [(t, t.encode(), t.isascii()) for t in pool if not any(c in t for c in excluded)]

    kept = {excluded: texts_of(common, excluded) for excluded in ('"\t', '" \t')}
    for token, free in tokens:
        excluded = '"\t' if free else '" \t'  # as nativecut.checks: cut.c leaves lines with a tab alone
        found = dfa.compile_token(token.pattern, excluded)
        assert found is not None, token.pattern
        rx = re.compile(token.pattern)
        mutated = {_mutate(rng, rng.choice(words)) for _ in range(1500)} - common
        for text, data, ascii in kept[excluded] + texts_of(mutated, excluded):
            got, want = found.matches(data), rx.fullmatch(text) is not None
            assert not got or want, (token.pattern, text)
            if ascii:
                assert got == want, (token.pattern, text)


def test_walks_may_go_on_past_the_dead_state_and_sinks(parser):
    """cut.c tests for the dead state or a sink only every fourth byte of a walk. So: from the dead
    state every byte leads to it; from a sink, any text a token can hold (valid UTF-8, no quote, tab,
    newline, or space outside free text) ends accepted, whatever states it passes (a sink is
    one from which every such text is accepted)."""
    rng = random.Random(5)
    alphabet = "az09-_./:|[]{}%é😀中"
    for token, free in _plan_tokens(parser):
        excluded = '"\t' if free else '" \t'
        found = dfa.compile_token(token.pattern, excluded)
        n = found.nclasses
        assert set(found.table[:n]) == {0}, token.pattern
        if found.first_sink <= 1:  # its start accepts every such text: never walked (nativecut.checks)
            continue
        for state in range(found.first_sink, len(found.table) // n):
            for _ in range(40):
                text = "".join(rng.choice(alphabet + ("" if not free else " ")) for _ in range(rng.randrange(9)))
                at = state
                for byte in text.encode():
                    at = found.table[at * n + found.classes[byte]]
                    assert at != 0, (token.pattern, state, text)
                assert found.accepting[at], (token.pattern, state, text)


@pytest.mark.parametrize("pattern, text, accepted", [
    (r"^(?:[^\n]+?)?$", "any text at all 😀", True),  # the start accepts everything: a sink
    (r"^(?:[^\n]+?)$", "", False),
    (r"^(?:[^\n]+?)$", "é", True),  # one character of two bytes
    (r"^[^ ]{2}$", "é", False),  # two characters, not two bytes
    (r"^[^ ]{2}$", "éa", True),
    (r"^[0-9]+$", "٣", False),  # a non-ASCII digit: left to the regex (a subset)
    (r"^\d{1,3}$", "123", True),
    (r"^(?:Z|[+-][0-9]{2}:?[0-9]{2})$", "+0530", True),
    (r"^(?:Z|[+-][0-9]{2}:?[0-9]{2})$", "+05:3", False),
])
def test_token_dfa_cases(pattern, text, accepted):
    found = dfa.compile_token(pattern, '" ')
    assert found is not None and found.matches(text.encode()) is accepted
    assert (re.fullmatch(pattern, text) is not None) is accepted


@pytest.mark.parametrize("pattern", [r"^(?=a)a$", r"^(a)\1$", r"^(?i:a)$", r"(?i)^a$", r"^a\b$", r"^a", r"^[^\W]$",
                                     r"^a*+$"])
def test_what_a_dfa_cannot_read_exactly_gets_none(pattern):
    """Lookarounds, back references, flags, word boundaries, an unanchored end, a negated category
    in a class, possessive repeats: no DFA (the layout keeps its whole-line regex)."""
    assert dfa.compile_token(pattern, '" ') is None


def test_equivalent_states_are_merged():
    """A DFA has one state for each set of texts that can follow (``dfa._minimize``): a regex that
    says the same texts several ways gets the table its shortest form does, and the prefix grammar
    (logcli's labels, four ways to name a pod and a container) fits ``cut.c``'s 16-bit table."""
    same = [(r"^(?:ab|ab|a(?:b))[0-9]+$", r"^ab[0-9]+$"),
            (r"^(?:x(?:, x)*|x(?:, x)*, y(?:, x)*|y(?:, x)*)$", r"^(?:x, )*(?:x|y)(?:, x)*$")]
    for long, short in same:
        a, b = dfa.compile_token(long, '"'), dfa.compile_token(short, '"')
        assert a.table == b.table and a.accepting == b.accepting and a.first_sink == b.first_sink
    prefix = Parser().collectors.prefix_rx + r"(?:[^\n]|\n)*$"
    assert len(dfa.compile_token(prefix, "").table) < 8_000  # (70,564 entries unminimized)


def test_a_negated_class_with_a_category_reads_ascii_only():
    r"""``[^\s]`` leaves out Unicode spaces: which non-ASCII characters it holds is not read here, so
    the DFA takes none of them (a subset: such a token goes to the regex)."""
    found = dfa.compile_token(r"^[^\s]+$", '" ')
    assert found.matches(b"abc") and not found.matches("é".encode()) and not found.matches(b"a\tb")


def test_free_text_costs_a_byte_or_two(parser):
    """A free-text token's DFA reaches a sink after its first character: cut.c stops walking there."""
    (token, _), = [(t, f) for t, f in _plan_tokens(parser) if t.field == "user_agent"]
    found = dfa.compile_token(token.pattern, '"')
    assert found.first_sink == 1  # TEXT? : even the empty text is accepted


@pytest.mark.skipif(native.library() is None, reason="no cut.c (no C compiler): the whole-line regex decides")
def test_the_checked_cut_takes_only_lines_the_whole_line_regex_matches(parser):
    """cut.c with the DFAs (splitplan.cut_checked) on real lines and ~10,000 mutations of them: a
    line it takes matches the layout's whole-line regex, and it takes nearly every line that does
    and has no quote in its free text (nor a tab: see nativecut.checks)."""
    rng = random.Random(11)
    real = _lines()
    lines = real + [_mutate(rng, rng.choice(real)) for _ in range(10_000)]
    lines = [x for x in lines if "\n" not in x and "\r" not in x]
    plan = parser.fastpath.split_plan("istio_1_9")
    rx = re.compile(parser.access.regex("istio_1_9"))
    easy, _ = splitplan.cut_checked(plan, chunk_lines("\n".join(lines).encode()))
    took = easy.to_list()
    assert len(took) == len(lines)
    matched = [rx.fullmatch(x) is not None for x in lines]
    wrong = [x for x, t, m in zip(lines, took, matched) if t and not m]
    assert wrong == []
    plain = [t for x, t, m in zip(lines, took, matched) if m and x.count('"') == plan.quotes and "\t" not in x]
    assert sum(plain) >= 0.99 * len(plain) and len(plain) > 5000


@pytest.mark.skipif(native.library() is None, reason="no cut.c (no C compiler): the whole-line regex decides")
def test_one_checked_cut_of_every_layout_takes_each_line_by_its_first_layout(parser):
    """cut.c with every text layout's plan at once (splitplan.cut_layouts, in the order lines are
    tried) on real lines of every layout and ~10,000 mutations of them: a line it gives layout k
    matches layout k's whole-line regex and no earlier layout's, except those it flags in its
    doubt (it has more quotes than they do: free text may hold them); it takes nearly every line
    whose first layout has its quotes."""
    rng = random.Random(13)
    real = _lines()
    lines = real + [_mutate(rng, rng.choice(real)) for _ in range(10_000)]
    lines = [x for x in lines if "\n" not in x and "\r" not in x]
    plans = tuple(parser.fastpath.split_plan(name) for name in TEXT_LAYOUTS)
    rxs = [re.compile(parser.access.regex(name)) for name in TEXT_LAYOUTS]
    easy, columns, layouts, doubt = splitplan.cut_layouts(plans, chunk_lines("\n".join(lines).encode()))
    assert easy.len() == len(lines) and columns.height == layouts.len() == doubt.len() == easy.sum()
    taken = [x for x, t in zip(lines, easy.to_list()) if t]
    wrong, flagged = [], 0
    for text, name, bits in zip(taken, layouts.to_list(), doubt.to_list()):
        k = TEXT_LAYOUTS.index(name)
        if rxs[k].fullmatch(text) is None:
            wrong.append((name, text))
        for j in range(k):
            flagged += bits >> j & 1
            if not bits >> j & 1 and rxs[j].fullmatch(text) is not None:
                wrong.append((f"also {TEXT_LAYOUTS[j]}", text))
            assert not bits >> j & 1 or text.count('"') > plans[j].quotes
    assert wrong == []
    first = [next((k for k, rx in enumerate(rxs) if rx.fullmatch(x)), None) for x in lines]
    plain = [t for x, t, k in zip(lines, easy.to_list(), first)
             if k is not None and x.count('"') == plans[k].quotes and "\t" not in x]
    assert sum(plain) >= 0.99 * len(plain) and len(plain) > 5000
    assert set(layouts.to_list()) >= {"istio_1_9", "istio_1_8", "istio_1_2", "envoy"} and flagged > 0


def test_compiled_dfas_are_stored_and_read_back(tmp_path, monkeypatch):
    """A token's DFA is compiled once per machine (logpipe/cache.py, in $LOGPIPE_CACHE, by its regex's
    text): read back equal, without compiling or parsing the regex; a damaged file is compiled afresh
    and written again; an earlier dfa.py's files are removed when one is written."""
    monkeypatch.setenv("LOGPIPE_CACHE", str(tmp_path))
    compiled = []
    real, parsed, real_parse = dfa._with_sinks, [], dfa.P.parse
    monkeypatch.setattr(dfa, "_with_sinks", lambda *a: compiled.append(1) or real(*a))
    monkeypatch.setattr(dfa.P, "parse", lambda *a, **k: parsed.append(1) or real_parse(*a, **k))
    pattern, excluded = r"^(?:\d{1,3}\.){3}\d{1,3}:\d+$", ' "\t'
    (tmp_path / "dfa-000000000000-0123.json").write_text("null")  # an earlier dfa.py's

    _forget()
    fresh = dfa.compile_token(pattern, excluded)
    (stored,) = tmp_path.glob("dfa-*.json")
    assert fresh is not None and len(compiled) == 1 and stored.name.startswith(f"dfa-{dfa._VERSION}-")

    _forget()
    before = len(parsed)
    assert dfa.compile_token(pattern, excluded) == fresh and len(compiled) == 1  # read, not compiled
    assert len(parsed) == before  # nor parsed
    assert dfa.compile_token(pattern, excluded) is dfa.compile_token(pattern, excluded)  # once a process

    stored.write_text('{"classes": "zz"')
    _forget()
    assert dfa.compile_token(pattern, excluded) == fresh and len(compiled) == 2
    _forget()
    assert dfa.compile_token(pattern, excluded) == fresh and len(compiled) == 2
    assert fresh.matches(b"10.0.0.1:80") and not fresh.matches(b"10.0.0.1")
    _forget()


def _forget() -> None:
    """The DFAs compiled in this process (so that the next compile_token reads the cache directory)."""
    dfa.compile_token.cache_clear()
    dfa._compile.cache_clear()


# ---- dfa.includes: the proof that lets cut.c skip a typed token's walk (nativecut._deferred) -------

TIME_VALUE = nativecut.VALUE_TEXTS[nativecut.TIME_KIND]
ENVOY_TIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9]{2}:?[0-9]{2})"


@pytest.mark.parametrize("outer, inner, included", [
    (r"^[0-9]+$", r"^[0-9]{1,18}$", True),
    (r"^(?:(?:[0-9]+)|(?:\-))$", r"^[0-9]{1,18}$", True),
    (r"^[0-9]{1,3}$", r"^[0-9]{1,18}$", False),
    (r"^[0-9]+$", r"^(?:-|[0-9]{1,18})$", False),  # "-": a null, which [0-9]+ refuses (cut.c walks it)
    (rf"^\[{ENVOY_TIME}\]$", rf"^\[(?:{TIME_VALUE})\]$", True),  # START_TIME: fraction and offset optional
    (rf"^\[{ENVOY_TIME}\]$", rf"^(?:{TIME_VALUE})$", False),  # without its brackets
    (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$", rf"^(?:{TIME_VALUE})$", False),  # no fraction
    (r"^(?:[^\n]+?)$", r"^[0-9]{1,18}$", True),  # free text: from a sink, whatever follows
    (r"^a$", r"^$", False),
])
def test_includes_cases(outer, inner, included):
    got = dfa.includes(dfa.compile_token(outer, '" \t'), dfa.compile_token(inner, '" \t'))
    assert got is included


def test_includes_equals_the_languages_on_short_texts():
    """Every pair of a pool of regexes whose languages differ, if at all, on a text of at most five
    characters: ``includes`` says what enumerating those texts says."""
    import itertools

    pool = [r"^[0-9]+$", r"^[0-9]{1,3}$", r"^(?:[0-9]+|-)$", r"^-?[0-9]*$", r"^[0-9a]{2}$", r"^a?$",
            r"^(?:a|-)[0-9]$", r"^$", r"^[0-9]{2,4}$", r"^(?:a[0-9]|[0-9]a)$"]
    texts = ["".join(t) for k in range(6) for t in itertools.product("09-a", repeat=k)]
    for outer, inner in itertools.product(pool, repeat=2):
        want = all(re.fullmatch(outer, t) for t in texts if re.fullmatch(inner, t))
        assert dfa.includes(dfa.compile_token(outer, '" '), dfa.compile_token(inner, '" ')) is want, (outer, inner)


# ---- a line's start, by cut.c (runtimes.starts_with: kubectl prefixes, JSON bodies) ------------------

@pytest.mark.parametrize("pattern, exact", [
    (r"^[0-9]+$", True), (r"^[a-z]{2}(?:x[^ ]|y)*$", True), (r"^é\|$", True), (r"^[^\n]*$", True),
    (r"^\d+$", False), (r"^[^\s]+$", False), (r"^(?:a|[é])$", False), (r"^[^é]$", False), (r"^(?:x|[\w-])$", False),
])
def test_exact_says_whether_a_dfa_accepts_all_the_regex_does(pattern, exact):
    """``dfa.exact``: no class of the regex leaves characters out (categories, non-ASCII members)."""
    assert dfa.exact(pattern) is exact


PREFIXES = ["[pod/waypoint-7d9f8b6c4-x2k8p/istio-proxy] ", "[pod/w-1/istio-proxy] 2024-07-18T16:13:58.198123456Z ",
            "2024-07-18T16:13:58.198Z ", "waypoint-7d9f8b6c4-x2k8p istio-proxy ", "egress  | ", "egress | ",
            "[pod/W/x] ", "2024-07-18T16:13:58Z  ", "é ", "a\tb ", "x y\n", "[pod/a/b]\n",
            "\x1b[36mwaypoint-7d9f8b6c4-x2k8p\x1b[0m \x1b[32mistio-proxy\x1b[0m ", "\x1b[1;35megress-1  | \x1b[0m",
            "\x1b[36mw\x1b[0m x ", "\x1b[36m w x ", "\x1b[3xm w x ",
            "2024-07-18T16:13:58.198123456Z stdout F ", "2024-07-18T16:13:58.198123456Z stderr F ",
            "2024-07-18T16:13:58.198123456Z stdout P ", "2024-07-18T16:13:58Z stdin F "]


def test_a_line_start_is_read_by_cut_c_as_by_polars(parser):
    """Which lines start with a kubectl/stern/compose prefix (the prefix grammar's regex; and, as a
    second regex, a JSON brace): cut.c's walk of the regex's DFA (``runtimes.starts_with``, batches of SPLIT_MIN_ROWS lines
    or more) says what polars' ``str.contains`` does, on real lines with every kind of prefix,
    mutated ones (non-ASCII, tabs, quotes) and texts with a newline inside; and a regex whose DFA
    would not be exact (``\\d``) is left to polars."""
    import polars as pl

    from logpipe import runtimes

    rng = random.Random(7)
    base = _lines()[:1500]
    lines = [rng.choice(PREFIXES) + x if k % 3 == 0 else x for k, x in enumerate(base)]
    lines += [_mutate(rng, x) for x in lines[:600]] + ['{"a": 1}', ' {"a": 1}', "{", "", "\n{", '{"a":\n1}']
    lines += [p + "a\nb" for p in PREFIXES]
    series = pl.Series(lines)
    for regex in (parser.collectors.prefix_rx, r"^\{"):
        assert subfields._exact_tables(regex + r"(?:[^\n]|\n)*$") is not None
        want = series.str.contains(regex)
        for part in (series, series.slice(333, 1200)):  # (a slice: views at an offset)
            got = runtimes.starts_with(part, regex)
            expected = want.slice(333, 1200) if part.len() == 1200 else want
            assert (got if got is not None else pl.repeat(False, part.len(), eager=True)).to_list() == \
                expected.to_list()
        assert want.sum() > 20  # (of each kind)
    assert subfields._exact_tables(r"^\d+ (?:[^\n]|\n)*$") is None
    assert runtimes.starts_with(series, r"^\d+ ").to_list() == series.str.contains(r"^\d+ ").to_list()
    assert runtimes.starts_with(pl.Series(["x"] * 3), parser.collectors.prefix_rx).to_list() == [False] * 3  # (small: polars)


def test_a_large_batch_with_prefixes_parses_as_with_polars_reading_them(parser, monkeypatch):
    """A batch of prefixed lines large enough for cut.c's check of their starts (and of their
    addresses' ports): the same records and rejects as with polars' regexes."""
    rng = random.Random(3)
    lines = [rng.choice(PREFIXES[:6]) + x for x in _lines()[:1200]]
    body = "\n".join(lines).encode()
    got = Parser().parse_chunk(body)
    monkeypatch.setattr(subfields, "exact_matches", lambda regex, texts: None)
    want = Parser().parse_chunk(body)
    assert got.records.to_pylist() == want.records.to_pylist()
    assert got.rejects.to_pylist() == want.rejects.to_pylist()
    assert got.records.column("pod").null_count < got.records.num_rows


def test_exact_matches_reads_nulls_as_no_match_and_falls_back_where_it_cannot_tell():
    """``subfields.exact_matches`` (an address's port, a prefix): what polars' ``str.contains`` of
    the anchored regex gives, with a null as no match; None (polars then) for a regex whose DFA is not
    exact, or a column whose nulls start at a bit offset; NONE when nothing matches."""
    import polars as pl

    rng = random.Random(5)
    texts = [rng.choice(["80", "15021", "-", "", "8o", "٣", "99999999999", "0", " 1", None]) for _ in range(3000)]
    series = pl.Series(texts, dtype=pl.String)
    regex = r"^(?P<port>(?:[0-9]+))$"
    got = subfields.exact_matches(regex, series)
    if native.library() is None:
        assert got is None
        return
    assert got.to_list() == series.str.contains(regex).fill_null(False).to_list()
    assert subfields.exact_matches(r"^\d+$", series) is None  # (\d: Unicode digits too; its DFA reads ASCII ones)
    assert subfields.exact_matches(regex, pl.Series(["-", None, "x"])) is subfields.NONE
    sliced = series.slice(3, 100)
    got = subfields.exact_matches(regex, sliced)  # (at a bit offset: None, or read right)
    assert got is None or got.to_list() == sliced.str.contains(regex).fill_null(False).to_list()
