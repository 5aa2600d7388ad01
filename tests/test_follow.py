"""The exact path's token filter (logpipe/follow.py): FOLLOW sets, and parses unchanged by it; and its
fields read from Lark's parse forest (logpipe/forest.py), the same as from Lark's tree."""
from __future__ import annotations

import contextlib
import random

import lark
import pytest
from conftest import read_lines, sample_files

from logpipe import forest, grammar
from logpipe.follow import END, TokenFilter, follow_sets, follow_strings


def _rules(text: str, start: str = "start"):
    return lark.Lark(text, parser="earley", lexer="dynamic_complete", start=start).rules


def test_follow_sets_of_a_small_grammar():
    # an optional (B?) and a repetition (a: A+) expand into rules Lark makes; nullable tails pass on
    # what follows their rule; the start rule may end the text.
    follow = follow_sets(_rules('start: a B? C D?\na: A+\nA: "a"\nB: "b"\nC: "c"\nD: "d"\n'), ["start"])
    assert follow["A"] == {"A", "B", "C"}
    assert follow["B"] == {"C"}
    assert follow["C"] == {"D", END}
    assert follow["D"] == {END}


def test_follow_strings_two_deep():
    # FOLLOW_2: what may come after a terminal, two terminals deep; a shorter string ends the text
    rules = _rules('start: a B? C D?\na: A+\nA: "a"\nB: "b"\nC: "c"\nD: "d"\n')
    follow = follow_strings(rules, ["start"])
    assert follow["A"] == {("A", "A"), ("A", "B"), ("A", "C"), ("B", "C"), ("C", "D"), ("C", END)}
    assert follow["B"] == {("C", "D"), ("C", END)}
    assert follow["C"] == {("D", END), (END,)}
    assert follow["D"] == {(END,)}
    # one deep, they are the FOLLOW sets
    assert {t: {s[0] for s in strings} for t, strings in follow.items()} == follow_sets(rules, ["start"])


@pytest.mark.parametrize("text_rx", [r"[^\n]+", r"(?:[^\n])+"], ids=["prefix-closed", "matched"])
def test_free_text_ends_only_where_the_two_terminals_after_it_match(text_rx):
    """Quoted free text (``Q T Q S``) may hold quotes: it ends before a quote and a space, not before
    any quote. The second terminal is checked after a fixed-string first one only, and not where the
    text ends right after the first (a line that ends early keeps its readings, for Lark's error).
    A terminal whose every prefix matches whole (``[…]+``) is judged by where its cut ends, without
    matching it; any other is matched first: the same answers."""
    import re

    rules = _rules('start: Q T? Q S W\nT: /[^\\n]+/\nQ: "\\""\nS: " "\nW: /[a-z]+/\n')
    regexps = {n: re.compile(p) for n, p in {"T": text_rx, "Q": '"', "S": " ", "W": "[a-z]+"}.items()}
    follow = follow_strings(rules, ["start"])
    assert follow["T"] == {("Q", "S")}

    class Term:
        name = "T"

    def passes(text: str, end: int, fixed=frozenset({"Q", "S"})) -> bool:
        f = TokenFilter(follow, regexps, fixed)
        with f.reading(text):
            longest = f(Term, text, 1).group(0)  # as Lark's scanner asks: the longest match, from 1,
            return f(Term, longest[:end - 1]) is not None  # then shorter ones, cut from it (to end at ``end``)

    assert ("T" in TokenFilter(follow, regexps)._closed) == (text_rx == r"[^\n]+")
    text = '"a"b" x'
    assert not passes(text, 2)  # before '"b': a quote, then no space
    assert passes(text, 4)  # before '" x'
    assert passes(text, 2, fixed=frozenset())  # a quote of unknown length: one terminal deep
    assert passes('"a"', 2)  # the text ends after the quote: kept for Lark's error


def test_followers_that_cannot_be_one_regex_leave_their_terminal_unfiltered():
    """A user's terminal with a named group, following another terminal in two ways, cannot join one
    regex twice: that terminal is then not filtered (slower, as exact), and the grammar still parses."""
    text = 'start: T " " A | T "\\"" A\nT: /[a-z]+/\nA: /(?P<n>[0-9])x/\n'
    parser = lark.Lark(text, parser="earley", lexer="dynamic_complete")
    regexps = parser.parser.parser.term_matcher.__self__.regexps
    follow = follow_strings(parser.rules, ["start"])
    fixed = frozenset(t.name for t in parser.terminals if isinstance(t.pattern, lark.lexer.PatternStr))
    f = TokenFilter(follow, regexps, fixed)
    assert "T" not in f._follow and "A" in f._follow
    book = grammar.Rulebook(text, ["start"], source="<test>")
    book._earley()
    assert book._filter is not None
    assert book._lark.parse("ab 1x") is not None and book._lark.parse('ab"1x') is not None


def test_follow_sets_add_ignored_terminals_everywhere():
    follow = follow_sets(_rules('start: A B\nA: "a"\nB: "b"\nWS: " "\n%ignore WS\n'), ["start"], ["WS"])
    assert follow["A"] == {"B", "WS"}
    assert follow["B"] == {END, "WS"}


@pytest.mark.parametrize("name", sorted(grammar.GRAMMAR_FILES))
def test_the_filter_is_in_front_of_every_builtin_grammar(name):
    """A Lark upgrade that moves the scanner's matcher would leave the exact path ~4x slower: say so."""
    book = grammar.load_builtin(name)
    book._earley()
    assert book._filter is not None


def _fresh(name: str) -> grammar.Rulebook:
    return grammar.load_file(grammar.resource_dir("grammars") / f"{name}.lark", tuple(grammar.GRAMMAR_FILES[name]))


def test_the_earley_parser_is_built_at_the_first_exact_parse():
    """Loading a grammar builds its rules and regexes, not its Earley parser (the fast path needs
    none, most batches never reach the exact path): the first parse builds it, with its filter."""
    book = _fresh("access")
    assert book._lark.parser is grammar._LATER and book._filter is None
    assert book.regex("access_line")  # the fast path's regex, still without the parser
    assert book._lark.parser is grammar._LATER
    line = ('[2024-07-18T16:13:58.198Z] "GET /get HTTP/1.1" 200 - via_upstream - "-" 0 252 260 259 "-" '
            '"curl/8.7.1" "8d80cec6-8fc1-40de-8bc7-19716f173bbd" "httpbin.org" "3.234.9.11:80" '
            'inbound-vip|80|http|httpbin.org 10.244.0.24:41160 240.240.0.2:80 10.244.0.18:41548 - default')
    layout, fields = book.parse(line, "access_line")
    assert layout == "istio_1_9" and fields["upstream_cluster_host"] == "httpbin.org"
    assert book._lark.parser is not grammar._LATER and book._filter is not None
    assert (layout, fields) == _outcome(_unfiltered("access"), line)


def _unfiltered(name: str) -> grammar.Rulebook:
    """The grammar's exact path as Lark alone gives it: its ordered sets (Lark's default), no token
    filter (Lark's own matcher), fields read from its tree."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(grammar, "ORDERED_SETS", True)
        book = _fresh(name)
        book._earley()
    book._lark.parser.parser.term_matcher = lark.parser_frontends.EarleyRegexpMatcher(book._lark.lexer_conf).match
    book._filter = None
    if book._tree_class is not None:
        book._lark.parser.parser.Tree, book._tree_class = book._tree_class, None
    return book


@pytest.mark.parametrize("name", sorted(grammar.GRAMMAR_FILES))
def test_every_builtin_grammar_is_read_from_the_forest(name):
    """A Lark upgrade (or a grammar with a ``?rule``, a template or ``%ignore``) that leaves Lark building
    its tree for every line would leave the exact path ~20% slower: say so."""
    book = grammar.load_builtin(name)
    book._earley()
    assert book._tree_class is not None


def _outcome(book: grammar.Rulebook, line: str):
    try:
        return book.parse(line, "access_line")
    except grammar.GrammarMismatch as e:
        return ("mismatch", str(e), e.column, e.expected)


AMBIGUOUS = ('[2025-01-30T10:53:24.085Z] "GET /get HTTP/1.1" 200 - via_upstream - "-" 0 254 237 236 "10.0.0.1" '
             '"Mozilla" "x" "rid-1" "httpbin.org" "192.0.2.10:80" inbound-vip|80|http|httpbin.org 10.244.0.18:40906 '
             '240.240.0.2:80 10.244.0.24:43940 - default')


def test_filtered_and_unfiltered_parses_are_the_same():
    """Same readings for lines that parse (the filtered parser's read from the forest where it has one
    reading, the unfiltered one's from Lark's tree); the same error (message, column, expected
    terminals) for lines that do not: sample access lines, seeded mutations of them, and lines with
    several readings (quotes in free text: the forest leaves them to the tree)."""
    logs = [p for p in sample_files() if p.suffix == ".log"]
    by_file = [[x for x in read_lines(p)[:40] if x.startswith("[")] for p in logs]
    lines = [x for mine in by_file for x in mine]
    rnd = random.Random(11)
    mutated = []
    for _ in range(40):  # (a line parses in ~10 ms filtered, ~70 ms not: each one costs ~80 ms)
        line = rnd.choice(lines)
        for _ in range(rnd.randint(1, 3)):
            i, ch = rnd.randint(0, len(line)), rnd.choice(' "-[]|:0aZ')
            line = rnd.choice([line[:i] + ch + line[i:], line[:i] + line[i + 1:], line[:i]])
        mutated.append(line)
    filtered, plain = grammar.load_builtin("access"), _unfiltered("access")
    assert not filtered._lark.options.ordered_sets and plain._lark.options.ordered_sets
    ambiguous = [AMBIGUOUS, AMBIGUOUS.replace('"10.0.0.1"', '"10.0.0.1" "10.0.0.2"'),
                 AMBIGUOUS.replace('"-" 0 254', '"a" "b" 0 254')]
    # an address's IP under an alias ("-> ip": access.lark's port_ip, ipv6), named so in the forest too
    aliased = [AMBIGUOUS.replace('"Mozilla" "x"', '"Mozilla"').replace("192.0.2.10:80", "2001:db8::10")
               .replace("10.244.0.24:43940", "::ffff:192.0.2.7")]
    # a line of every sample (each layout, its variants: TCP, IPv6, prefixes, noise, malformed lines),
    # not a random 40 of them (most of one layout); and two more of the malformed ones
    malformed = by_file[[p.name for p in logs].index("malformed.log")]
    samples = [rnd.choice(mine) for mine in by_file if mine] + rnd.sample(malformed, 2)
    checked = samples + mutated + ambiguous + aliased
    failed, read = 0, []
    real = forest.read
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(forest, "read", lambda *a: read.append(real(*a)) or read[-1])
        for line in checked:
            a, b = _outcome(filtered, line), _outcome(plain, line)
            assert a == b, line
            failed += a[0] == "mismatch"
    assert 20 < failed < len(checked)  # both kinds were compared
    # every line that parsed was read from the forest, but those with several readings (the ambiguous
    # ones, and mutations that put a quote in free text), which Lark's tree read: most were read
    # from the forest (a third: ~30 lines read here, 6 of them by the tree; a fourth left one to spare)
    assert len(read) == len(checked) - failed and len(ambiguous) <= read.count(None) < len(read) // 3
    assert _outcome(filtered, aliased[0])[1]["upstream_host_ip"] == "2001:db8::10"


def _reading(rule: str) -> lark.Tree:
    leaf = lark.Tree(rule, [lark.Token("TEXT", "ab", start_pos=0, end_pos=2)])
    leaf.meta.empty, leaf.meta.start_pos, leaf.meta.end_pos = False, 0, 2
    return lark.Tree("line", [leaf])


def test_tied_readings_resolve_alike_in_either_order():
    """Lark's sets are unordered here (``grammar.ORDERED_SETS``), so it may list a line's readings in
    any order: two readings with the same priorities and field lengths resolve to the same one."""
    book = grammar.load_builtin("access")
    a, b = _reading("user_agent"), _reading("referer")
    assert book._reading_key(a, "ab") == book._reading_key(b, "ab")
    one = book._resolve(lark.Tree("_ambig", [a, b]), "ab")
    other = book._resolve(lark.Tree("_ambig", [_reading("referer"), _reading("user_agent")]), "ab")
    assert one == other


@pytest.mark.parametrize("name", sorted(grammar.GRAMMAR_FILES))
def test_every_builtin_grammar_scans_with_the_filters_scanner(name):
    """A Lark upgrade that changes its Earley scanner (``xearley.Parser._parse``, which
    ``grammar._Scanner`` copies) leaves Lark's own scanning, ~15% slower: say so. The rules' symbols
    of one name are one object, the one the parser's sets hold (``grammar._plain_names``)."""
    book = grammar.load_builtin(name)
    book._earley()
    earley = book._lark.parser.parser
    assert type(earley) is grammar._Scanner
    held = {id(s) for s in (*earley.TERMINALS, *earley.NON_TERMINALS)}
    assert all(id(s) in held for r in book._lark.rules for s in r.expansion)


@pytest.mark.parametrize("text_rx", [r"[^\n]+", r"(?:[^\n])+"], ids=["prefix-closed", "matched"])
def test_a_terminals_matches_at_once_are_its_matches_length_by_length(text_rx):
    """``TokenFilter.matches`` gives what Lark's scanner gets asking ``__call__`` for the longest match
    and then each shorter length (``lark/parsers/xearley.py``), in its order, at every position; and
    so outside a parse (no filter)."""
    import re

    rules = _rules('start: Q T? Q S W\nT: /[^\\n]+/\nQ: "\\""\nS: " "\nW: /[a-z]+/\n')
    regexps = {n: re.compile(p) for n, p in {"T": text_rx, "Q": '"', "S": " ", "W": "[a-z]+"}.items()}
    follow = follow_strings(rules, ["start"])

    class Term:
        name = "T"

    def one_by_one(f, text, i):
        m = f(Term, text, i)
        if m is None:
            return []
        s, got = m.group(0), [(m.end(), m.group(0))]
        for j in range(1, len(s)):
            cut = f(Term, s[:-j])
            if cut is not None:
                got.append((i + cut.end(), cut.group(0)))
        return got

    text = '"a"b" x" y"z" w'
    for reading in (True, False):
        f, g = TokenFilter(follow, regexps, frozenset({"Q", "S"})), TokenFilter(follow, regexps, frozenset({"Q", "S"}))
        with f.reading(text) if reading else contextlib.nullcontext(), g.reading(text) if reading else contextlib.nullcontext():
            for i in range(len(text) + 1):
                assert f.matches(Term, text, i) == one_by_one(g, text, i), (reading, i)
    with f.reading(text):
        # (the longest, to the end; then the cuts before '" ', the strings that may follow T)
        assert f.matches(Term, text, 1) == [(15, 'a"b" x" y"z" w'), (12, 'a"b" x" y"z'), (7, 'a"b" x'), (4, 'a"b')]


def test_the_scanner_asks_the_filter_once_and_passes_over_free_text():
    """On a line of free text, Lark's parser is at few of its positions (those where a token the
    filter kept ends: 103 of this line's 265) and asks the filter for a ``[…]+`` terminal's cuts only
    where they may end (234 calls to ``TokenFilter.__call__``); before ``grammar._Scanner``, 2,148
    calls and all 265 positions."""
    book = grammar.load_builtin("access")
    line = ('[2024-07-18T16:13:58.198Z] "GET /get HTTP/1.1" 200 - via_upstream - "-" 0 252 260 259 "-" '
            '"curl/8.7.1" "8d80cec6-8fc1-40de-8bc7-19716f173bbd" "httpbin.org" "3.234.9.11:80" '
            'inbound-vip|80|http|httpbin.org 10.244.0.24:41160 240.240.0.2:80 10.244.0.18:41548 - default')
    book.parse(line, "access_line")
    calls, at = [0], []
    real_call, real_step = TokenFilter.__call__, lark.parsers.earley.Parser.predict_and_complete
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TokenFilter, "__call__", lambda *a, **k: calls.__setitem__(0, calls[0] + 1) or real_call(*a, **k))
        mp.setattr(lark.parsers.earley.Parser, "predict_and_complete", lambda self, i, *a: at.append(i) or real_step(self, i, *a))
        book.parse(line, "access_line")
    assert calls[0] < 500 and len(at) < len(line) // 2


def test_the_scanner_passes_over_lines_as_lark_counts_them():
    """Where the scanner passes over free text that holds newlines, the tokens after it have the
    lines and columns Lark's own scanner gives them."""
    text = 'start: W S T B W\nT: /[^|]+/\nB: "|"\nS: " "\nW: /[a-z]+/\n'
    book = grammar.Rulebook(text, ["start"], source="test.lark")
    line = "ab cd\nef gh\nij|xy"
    book.parse(line, "start")
    with book._filter.reading(line):
        forest_root = book._lark.parse(line, start="start")
    mine = grammar._forest_tree(book._lark.parser.parser, book._tree_class, forest_root)
    theirs = lark.Lark(text, parser="earley", lexer="dynamic_complete", ambiguity="explicit").parse(line)

    def tokens(tree):
        return [(t.type, str(t), t.start_pos, t.line, t.column, t.end_line, t.end_column, t.end_pos)
                for t in tree.scan_values(lambda v: isinstance(v, lark.Token))]

    assert tokens(mine) == tokens(theirs)
    assert tokens(mine)[-2:] == [("B", "|", 14, 3, 3, 3, 4, 15), ("W", "xy", 15, 3, 4, 3, 6, 17)]
