"""Grammars: load ``grammars/*.lark`` and compile them, at run time, into the fast path.

The grammar is the single description of line syntax (DESIGN.md principle 1). This module reads a
Lark grammar and gives two things from it:

* ``Rulebook.regex(start)``: one anchored regular expression for a start rule, built by walking
  the grammar's rules and terminals. Rules named like a column become named groups; rules nested
  in a column named ``ip``, ``port``, ``direction``, ``subset``, ``host`` become ``<column>_<rule>``.
  polars runs it over whole batches (Rust ``regex``), so terminals use the syntax both engines
  share (no look-around). The walk is ``logpipe/ruleregex.py``.
* ``Rulebook.parse(text, start)``: the exact Lark path (Earley, complete lexing, so free-text fields
  that contain quotes or spaces are split by the line's structure exactly as the regex does; the
  lengths nothing can follow are dropped first: logpipe/follow.py). It returns the same
  ``{group: text}`` mapping, or raises ``GrammarMismatch`` with Lark's column and expected terminals.

A layout as a run of items (what diagnosis and split plans read) is ``logpipe/steps.py``. This is
the only module that imports lark, with ``logpipe/grammarstore.py``, which stores what it reads of one.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import re
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from . import forest as _forest
from .errors import LogpipeError
from .follow import TokenFilter, follow_sets, follow_strings
from .resources import resource_dir
from .ruleregex import SUBFIELD_RULES, RegexBuilder, terminal_regex
from .schema import COLUMNS

import lark  # (imported once here: Rulebook, _Lark and the exact path use it)
from lark.grammar import NonTerminal, Symbol  # noqa: E402  (logpipe/steps.py reads rules through it too)
from lark.lexer import Token  # noqa: E402  (the exact path's scanner, _Scanner)
from lark.exceptions import UnexpectedCharacters  # noqa: E402
from lark.parsers import xearley  # noqa: E402
from lark.parsers.earley_forest import TokenNode  # noqa: E402

_FIELD_RULES = frozenset(COLUMNS)


def rule_symbol(name: str) -> Symbol:
    """Rule ``name`` as an item of a rule's expansion (what ``steps.layout_items`` gives)."""
    return NonTerminal(name)


class GrammarMismatch(Exception):
    """A line the grammar does not accept; ``column`` is 1-based, ``expected`` terminal names."""

    def __init__(self, message: str, column: int | None, expected: tuple[str, ...] = ()):
        super().__init__(message)
        self.column = column
        self.expected = expected


@dataclass(frozen=True)
class CompiledRule:
    """A start rule compiled to a regex: ``pattern`` and, per output name, its group names."""

    start: str
    pattern: str
    groups: dict[str, tuple[str, ...]]  # output name -> regex group names (alternatives)


class Rulebook:
    """One Lark grammar (file or text) with several start rules."""

    def __init__(self, text: str, starts: list[str], *, source: str, import_paths=(), stored=None):
        """``stored``: the grammar's ``(terminals, rules as written)`` as Lark read it before
        (``logpipe/grammarstore.py``); Lark then reads the grammar only for an exact parse."""
        self.source = source
        self.starts = list(starts)
        self._text, self._import_paths = text, list(import_paths)
        self._priority: dict[str, int] | None = None  # rule -> priority (_reading_key)
        # Rules captured as columns: the schema's, plus a custom layout's extra columns
        # (logpipe/layouts.py adds them before the first compile).
        self.fields = _FIELD_RULES
        self._filter: TokenFilter | None = None  # (with the Earley parser: _earley)
        self._tree_class = None  # (_earley: when set, Lark gives the parse forest; logpipe/forest.py)
        self._earley_lock = threading.Lock()
        self._read: _Lark | None = None  # (_lark)
        self._read_lock = threading.Lock()
        terminals, self._ebnf = stored or self.parts()  # the grammar as written (EBNF trees): the regex compiler's
        self._terms = {t.name: terminal_regex(t) for t in terminals}
        self._term_defs = {t.name: t for t in terminals}

    @property
    def _lark(self) -> "_Lark":
        """Lark's reading of the grammar (made at the first use: a stored grammar needs it only for an
        exact parse)."""
        if self._read is None:
            with self._read_lock:
                if self._read is None:
                    self._read = self._read_grammar()
        return self._read

    def _read_grammar(self) -> "_Lark":
        try:
            read = _Lark(
                self._text,
                parser="earley",
                lexer="dynamic_complete",
                start=self.starts,
                propagate_positions=True,
                # A line can have several readings where free text holds '" "' (Envoy does not escape
                # header values: FORMATS.md b.4). Lark keeps them all and _resolve takes the fast path's.
                ambiguity="explicit",
                ordered_sets=ORDERED_SETS,
                import_paths=self._import_paths,
                source_path=self.source,
            )
        except lark.exceptions.GrammarError as e:  # a broken user grammar is a user error
            raise LogpipeError(f"grammar {self.source}: {e}") from None
        if read.parser is not _LATER:  # (built already)
            _plain_names(read)
            self._filter = _install_token_filter(read, self.starts)
            self._tree_class = _forest_mode(read)
        return read

    def parts(self) -> tuple[list, dict]:
        """What the fast path takes from Lark's reading of the grammar: its terminals, and its rules
        as written (EBNF trees, before Lark expands optionals into duplicate alternatives)."""
        return list(self._lark.terminals), {str(name): tree for name, _params, tree, _opts in self._lark.grammar.rule_defs}

    # ---- the fast path: rules to one regex --------------------------------------------------------

    @functools.lru_cache(maxsize=None)
    def compile(self, start: str, column: str | None = None, subfields: bool = True) -> CompiledRule:
        """Compile ``start`` to a regex by walking the grammar's EBNF (before Lark expands
        optionals into duplicate alternatives, which would bloat the regex). ``column`` names the
        context of a standalone value rule; ``subfields=False`` captures columns only."""
        build = RegexBuilder(self, subfields)
        return CompiledRule(start, build.rule(start, column, ()), build.result())

    def compile_items(self, items: tuple, key: str = "items", column: str | None = None) -> CompiledRule:
        """Compile a run of a layout's items (``layout_items``) to one regex, with the same groups
        ``compile`` gives them inside the whole layout (inside column ``column``: its sub-fields)."""
        build = RegexBuilder(self, True)
        return CompiledRule(key, "".join(build.node(i, column, ()) for i in items), build.result())

    def rule_names(self) -> list[str]:
        """The rules of the grammar, in the order they are defined."""
        return list(self._ebnf)

    def references(self, name: str) -> list[str]:
        """The rules (not terminals) that rule ``name`` refers to directly, in order."""
        tree = self._ebnf[name]
        found: dict[str, None] = {}

        def walk(t) -> None:
            if isinstance(t, Symbol):
                if not t.is_term:
                    found.setdefault(t.name)
                return
            for c in getattr(t, "children", ())[:1] if getattr(t, "data", None) == "alias" else getattr(t, "children", ()):
                walk(c)  # (an alias's second child names the tree node: no rule it refers to)

        walk(tree)
        return list(found)

    def rule_tree(self, name: str):
        """Rule ``name`` as written (its EBNF tree, before Lark expands it)."""
        return self._ebnf[name]

    def terminal(self, name: str):
        """Lark's definition of terminal ``name`` (``.pattern``), or None."""
        return self._term_defs.get(name)

    def terminal_regex(self, name: str) -> str:
        """Terminal ``name``'s regex as the fast path uses it (``ruleregex.terminal_regex``)."""
        return self._terms[name]

    def regex(self, start: str, column: str | None = None) -> str:
        """The anchored whole-line regex of ``start``."""
        return f"^{self.compile(start, column).pattern}$"

    # ---- the exact path ---------------------------------------------------------------------------

    def parse(self, text: str, start: str, column: str | None = None) -> tuple[str, dict[str, str]]:
        """Parse ``text`` with Lark from ``start``; return the rule that matched (the alternative
        of ``start`` when ``start`` is a choice of rules) and ``{output name: text}``."""
        self._earley()
        try:
            with self._filter.reading(text) if self._filter else contextlib.nullcontext():
                tree = self._lark.parse(text, start=start)
        except lark.exceptions.UnexpectedInput as e:
            col = getattr(e, "column", None)
            if not isinstance(col, int) or col < 1:
                col = len(text) + 1
            expected = tuple(sorted({str(t) for t in getattr(e, "allowed", None) or getattr(e, "expected", None) or ()}))
            shown = tuple(dict.fromkeys(shown_terminal(t, self.terminal(t)) for t in expected))
            raise GrammarMismatch(_describe(e, text, col, shown), col, expected) from None
        if self._tree_class is not None:  # the forest: its fields read from it when it has one reading
            got = _forest.read(tree, text, start, column, self.fields, SUBFIELD_RULES, self.starts)
            if got is not None:
                return got
            tree = _forest_tree(self._lark.parser.parser, self._tree_class, tree)
        tree = self._resolve(tree, text)
        out: dict[str, str] = {}

        def walk(node, ctx: str | None) -> None:
            for child in node.children:
                if not isinstance(child, lark.Tree):
                    continue
                name = str(child.data)
                if ctx and name in SUBFIELD_RULES:
                    out.setdefault(f"{ctx}_{name}", _text(text, child))
                    walk(child, ctx)
                elif name in self.fields:
                    out.setdefault(name, _text(text, child))
                    walk(child, name)
                else:
                    walk(child, ctx)

        walk(tree, column)
        top = tree.children[0] if len(tree.children) == 1 else None
        matched = str(top.data) if isinstance(top, lark.Tree) and str(top.data) in self.starts else start
        return matched, out

    def _earley(self) -> None:
        """Build the Earley parser now, if ``_Lark`` left it for later (at its first line)."""
        if self._lark.parser is not _LATER:
            return
        with self._earley_lock:  # (the lanes' thread and the main thread may both get here)
            if self._lark.parser is _LATER:
                _plain_names(self._lark)  # (before: the parser's sets of symbols are then the rules' own)
                self._lark.parser = lark.Lark._build_parser(self._lark)
                self._filter = _install_token_filter(self._lark, self.starts)
                self._tree_class = _forest_mode(self._lark)

    def _resolve(self, tree, text: str):
        """``tree`` with each ambiguity (``_ambig``) replaced by the reading the fast path's regex
        takes: the higher-priority rule first (layouts in ``access_line``'s order), then the earliest
        fields as short as the line allows (free-text terminals are lazy there: ``ruleregex.terminal_regex``)
        but not empty when they can hold text (an optional ``x?`` is greedy: tried present first).
        Readings that tie (none seen in the tests' ambiguous lines) are told apart by their rules and
        spans (``_spans``), so the choice does not depend on the order Lark lists them in."""
        if not isinstance(tree, lark.Tree):
            return tree
        children = [self._resolve(c, text) for c in tree.children]
        if tree.data == "_ambig":
            keys = [self._reading_key(alt, text) for alt in children]
            best = min(keys)
            tied = [alt for alt, key in zip(children, keys) if key == best]
            return tied[0] if len(tied) == 1 else min(tied, key=_spans)
        tree.children = children
        if getattr(tree.meta, "empty", True):  # (a rule over an ambiguity, e.g. a cluster that is a
            _span_children(tree)               # name or a DNS SRV key: Lark gave it no positions)
        return tree

    def _reading_key(self, tree, text: str) -> tuple:
        if self._priority is None:
            self._priority = {str(r.origin.name): r.options.priority or 0 for r in self._lark.rules}
        nodes = [t for t in tree.iter_subtrees_topdown() if isinstance(t, lark.Tree)]
        # The rules that hold text themselves (terminals, or nothing), in the line's order.
        leaves = [t for t in nodes if not any(isinstance(c, lark.Tree) for c in t.children)]
        return (tuple(-self._priority.get(str(t.data), 0) for t in nodes),
                tuple(len(_text(text, t)) or len(text) + 1 for t in leaves))


def _span_children(tree) -> None:
    """Give ``tree`` the positions from its first to its last child that has them (``_text`` reads
    a rule's text by them)."""
    spans = [(c.start_pos, c.end_pos) if isinstance(c, lark.Token) else (c.meta.start_pos, c.meta.end_pos)
             for c in tree.children
             if isinstance(c, lark.Token) or not getattr(c.meta, "empty", True)]
    if spans:
        tree.meta.empty = False
        tree.meta.start_pos, tree.meta.end_pos = spans[0][0], spans[-1][1]


def _spans(tree) -> tuple:
    """A reading's rules and tokens, top-down, with where each starts and ends: equal only for equal
    readings."""
    out = []
    for node in tree.iter_subtrees_topdown():
        out.append((str(node.data), getattr(node.meta, "start_pos", -1), getattr(node.meta, "end_pos", -1)))
        out.extend(("", str(c.type), c.start_pos, c.end_pos) for c in node.children if not isinstance(c, lark.Tree))
    return tuple(out)


# Lark's Earley sets as plain sets, not its insertion-ordered ones (~15-25% of a line's parse): their
# order is only the order in which a line's readings are listed, which _resolve's choice does not
# depend on (tests/test_follow.py compares against Lark's ordered sets).
ORDERED_SETS = False

_LATER = object()  # the Earley parser of a _Lark before its first parse


class _Lark(lark.Lark):
    """A Lark whose Earley parser (~6 ms a grammar, with the token filter's follow sets) is built at
    its first parse (``Rulebook._earley``), not with the grammar: the fast path needs only the rules,
    and most batches never reach the exact path, so a process parses its first line that much
    sooner. It relies on Lark's internal ``_build_parser``, as ``_install_token_filter`` relies on its
    scanner: if a Lark version has none, the parser is built with the grammar, as before."""

    def _build_parser(self):
        return _LATER


def _forest_mode(parser):
    """Set Lark's Earley parser to give the parse forest, not a tree, when the grammar's tree is its
    derivation node for node (``forest.plain``): returns the tree class it had (``_forest_tree``), or
    None, leaving it be (a grammar that is not plain, or a Lark laid out otherwise: lark 1.x's
    ``Tree`` and ``callbacks`` of its Earley parser)."""
    earley = getattr(getattr(parser, "parser", None), "parser", None)
    needed = ("Tree", "callbacks", "forest_sum_visitor", "resolve_ambiguity")
    if earley is None or not all(hasattr(earley, a) for a in needed) or earley.Tree is None \
            or earley.resolve_ambiguity or not _forest.plain(parser):
        return None
    tree_class, earley.Tree = earley.Tree, None
    return tree_class


def _forest_tree(earley, tree_class, root):
    """The tree Lark's Earley parser gives for forest ``root`` with ambiguity="explicit" (what
    lark/parsers/earley.py ``Parser.parse`` does once it has the forest)."""
    from lark.parsers.earley_forest import ForestToParseTree

    visitor = earley.forest_sum_visitor and earley.forest_sum_visitor()
    return ForestToParseTree(tree_class, earley.callbacks, visitor, False, True).transform(root)


def _plain_names(parser) -> None:
    """Name the symbols of the Earley parser's rules by plain texts. Lark names many of them by Tokens
    of the grammar's text (a str subclass whose ``__eq__`` is Python code), and its parser compares
    symbols by name for every item it predicts and completes: Token.__eq__ was ~8% of the exact
    path's samples. A plain text is equal to the Token and hashes alike, so every lookup and
    comparison answers as before, in C.

    And make the rules' symbols of one name one object: Lark's parser asks whether the symbol an
    item expects is a terminal (``in self.TERMINALS``, a set of one symbol of each name), and a set
    that holds another object of that name calls ``Symbol.__eq__`` (Python code), for 209 of the 289
    symbols of access.lark's rules. Shared before the parser is built (``Rulebook._earley``), its sets
    hold these objects, and each such question is answered by identity. Equal symbols stay equal."""
    shared: dict = {}
    for rule in parser.rules:
        for symbol in (rule.origin, *rule.expansion):
            if type(symbol.name) is not str:
                symbol.name = str.__str__(symbol.name)
        rule.origin = shared.setdefault((rule.origin.is_term, rule.origin.name), rule.origin)
        rule.expansion[:] = [shared.setdefault((s.is_term, s.name), s) for s in rule.expansion]


def _install_token_filter(parser, starts: list[str]) -> TokenFilter | None:
    """Put a ``TokenFilter`` in front of the Earley scanner's terminal matcher (the exact path,
    ~4x faster: logpipe/follow.py). It is Lark's internal ``term_matcher`` (lark 1.x); if a Lark
    version lays it out otherwise, the parser stays as it is: slower, just as exact."""
    scanner = getattr(getattr(parser, "parser", None), "parser", None)
    match = getattr(scanner, "term_matcher", None)
    regexps = getattr(getattr(match, "__self__", None), "regexps", None)
    if not getattr(scanner, "complete_lex", False) or not isinstance(regexps, dict):
        return None
    ignore = [str(t) for t in getattr(parser, "ignore_tokens", ())]
    if ignore:  # (an ignored terminal may come between any two: one terminal deep, with it everywhere)
        follow = {t: frozenset((n,) for n in names) for t, names in follow_sets(parser.rules, starts, ignore).items()}
    else:
        follow = follow_strings(parser.rules, starts)
    fixed = frozenset(t.name for t in parser.terminals if isinstance(t.pattern, lark.lexer.PatternStr))
    token_filter = TokenFilter(follow, regexps, fixed)
    scanner.term_matcher = token_filter
    if type(scanner) is xearley.Parser and _scans_as_copied():  # (its scan, asking the filter at once)
        scanner.__class__ = _Scanner
    return token_filter


# The hash of the source of lark's ``xearley.Parser._parse`` that ``_Scanner._parse`` copies (lark 1.3.1).
_COPIED_PARSE = "4f7a8280f38dec52"


@functools.lru_cache(maxsize=None)
def _scans_as_copied() -> bool:
    """Whether this lark's Earley scanner is the one ``_Scanner`` copies; if not, Lark's own scans
    (slower, as exact)."""
    try:
        source = inspect.getsource(xearley.Parser._parse)
    except (OSError, TypeError):
        return False
    return hashlib.sha256(source.encode()).hexdigest()[:16] == _COPIED_PARSE


class _Scanner(xearley.Parser):
    """Lark's Earley parser with the complete lexer (``lark/parsers/xearley.py`` of lark 1.3.1, its
    ``_parse`` as written there but for the lines marked ``#*``), asking the token filter for a
    terminal's matches at a position once (``TokenFilter.matches``), not once per item that expects
    it (~1.6 items a terminal) and once per length of its longest match (a free text's ~100-300
    lengths, nearly all dropped: 2,148 → 234 calls on a 264-character line), and passing over the
    positions where it has nothing to do (``_skip``). The tokens, and their order, are the same, so
    the forest is; ~1.15-1.25x faster a line (bench/PERFORMANCE.md)."""

    def _parse(self, stream, columns, to_scan, start_symbol=None):
        if not hasattr(self.term_matcher, "matches"):  # (another matcher than the filter: Lark's scan)
            return super()._parse(stream, columns, to_scan, start_symbol)

        def scan(i, to_scan):
            node_cache = {}
            found = {}  #* terminal name -> its matches at i
            for item in self.Set(to_scan):
                name = item.expect.name  #*
                got = found.get(name)  #*
                if got is None:  #*
                    got = found[name] = matches(item.expect, stream, i)  #*
                for end, value in got:  #*
                    delayed_matches[end].append((item, i, Token(name, value, i, text_line, text_column)))  #*

            for x in self.ignore:
                m = match(x, stream, i)
                if m:
                    delayed_matches[m.end()].extend([(item, i, None) for item in to_scan])
                    delayed_matches[m.end()].extend([(item, i, None) for item in columns[i] if item.is_complete and item.s == start_symbol])

            next_to_scan = self.Set()
            next_set = self.Set()
            columns.append(next_set)
            transitives.append({})

            for item, start, token in delayed_matches[i + 1]:
                if token is not None:
                    token.end_line = text_line
                    token.end_column = text_column + 1
                    token.end_pos = i + 1

                    new_item = item.advance()
                    label = (new_item.s, new_item.start, i + 1)
                    token_node = TokenNode(token, terminals[token.type])
                    new_item.node = node_cache[label] if label in node_cache else node_cache.setdefault(label, self.SymbolNode(*label))
                    new_item.node.add_family(new_item.s, item.rule, new_item.start, item.node, token_node)
                else:
                    new_item = item

                if new_item.expect in self.TERMINALS:
                    next_to_scan.add(new_item)
                else:
                    next_set.add(new_item)

            del delayed_matches[i + 1]

            if not next_set and not delayed_matches and not next_to_scan:
                considered_rules = list(sorted(to_scan, key=lambda key: key.rule.origin.name))
                raise UnexpectedCharacters(stream, i, text_line, text_column, {item.expect.name for item in to_scan},
                                           set(to_scan), state=frozenset(i.s for i in to_scan),
                                           considered_rules=considered_rules)

            return next_to_scan, node_cache

        delayed_matches = defaultdict(list)
        match = self.term_matcher
        matches = match.matches  #*
        # (by plain texts: Lark's keys are its grammar's Tokens, whose __eq__ is Python's, called for
        # each token's lookup by a plain name: ~2% of a parse)
        terminals = {str.__str__(name): t for name, t in self.lexer_conf.terminals_by_name.items()}  #*

        transitives = [{}]

        text_line = 1
        text_column = 1
        skip_to = 0  #*

        i = 0
        node_cache = {}
        skips = not self.ignore and isinstance(stream, str)  #*
        for token in stream:
            if i < skip_to:  #*
                i += 1  #*
                continue  #*
            self.predict_and_complete(i, to_scan, columns, transitives, node_cache)

            to_scan, node_cache = scan(i, to_scan)

            if token == '\n':
                text_line += 1
                text_column = 1
            else:
                text_column += 1
            i += 1
            if skips and not to_scan and not columns[i]:  #* no item at i: see _skip
                skip_to, text_line, text_column = self._skip(stream, i, delayed_matches, columns, transitives, text_line, text_column)  #*

        self.predict_and_complete(i, to_scan, columns, transitives, node_cache)

        assert i == len(columns) - 1
        return to_scan

    def _skip(self, stream: str, i: int, delayed_matches, columns, transitives, line: int, column: int):
        """Lark's parser at ``i`` with no item (nothing predicted, completed or scanned: free text
        whose cuts the token filter dropped) does nothing there, nor at the positions after it, up to
        the one before the next token ends (or the text's end): ~65% of the sample lines' positions. Returns
        that position, with the text's line and column there, having added the empty columns
        (and transitives) Lark would have made on the way."""
        to = min((end - 1 for end in delayed_matches if end > i), default=len(stream))
        if to <= i:
            return i, line, column
        Set = self.Set
        columns.extend([Set() for _ in range(i, to)])
        transitives.extend([{} for _ in range(i, to)])
        breaks = stream.count("\n", i, to)
        column = to - stream.rfind("\n", i, to) if breaks else column + (to - i)
        return to, line + breaks, column


def _text(line: str, tree) -> str:
    meta = tree.meta
    if getattr(meta, "empty", True):
        return ""
    return line[meta.start_pos : meta.end_pos]


def _describe(e, text: str, col: int, expected: tuple[str, ...]) -> str:
    """Lark's reason, ``expected`` as the user reads them (``shown_terminal``)."""
    got = text[col - 1 : col + 11]
    where = f"column {col}"
    what = f"unexpected {got!r}" if got else "line ends early"
    if expected:
        shown = " or ".join(expected[:6]) + (" or …" if len(expected) > 6 else "")
        return f"{where}: {what}, expected {shown}"
    return f"{where}: {what}"


# What a %START_TIME(…)% specifier's terminal (grammars/format.lark) reads, in a reason.
_STRF_WORDS = {
    "STRF_YEAR": "a year (4 digits)", "STRF_2DIGITS": "2 digits", "STRF_SPACE_DIGIT": "a day of the month (2 digits, space-padded)",
    "STRF_DAY_OF_YEAR": "a day of the year (3 digits)", "STRF_EPOCH": "seconds since the epoch",
    "STRF_OFFSET": "a UTC offset (+HHMM, +HH:MM or Z)", "STRF_ZONE": "a time zone name (as UTC)",
    "STRF_NAME": "a month or weekday name (as Jan)", "STRF_AMPM": "AM or PM", "STRF_FRACTION": "a fraction of a second",
    **{f"STRF_FRAC{n}": f"a fraction of a second ({n} digit{'s' if n > 1 else ''})" for n in range(1, 10)},
}


def shown_terminal(name: str, term) -> str:
    """Terminal ``name`` (Lark's definition ``term``, or None) as a reason names what it expects: a
    fixed text as that text quoted (``']'``, not ``RSQB``; ``'_.'``, not ``__ANON_0``), a time
    specifier's as what it reads (``a year (4 digits)``, not ``STRF_YEAR``), another anonymous one
    by its regex; else its name as the grammar wrote it (``INT``, ``ISO_TIME``, ``FLAGS``: the
    grammar's words, FORMATS.md), without the namespace Lark gives a terminal a grammar imports."""
    kind = type(term.pattern).__name__ if term is not None else ""
    if kind == "PatternStr":
        return repr(term.pattern.value)
    base = _plain_name(name)
    if base in _STRF_WORDS:
        return _STRF_WORDS[base]
    if base.startswith("__ANON") and kind == "PatternRE":
        return f"/{term.pattern.value}/"
    return base


def _plain_name(name: str) -> str:
    """A terminal's name as its grammar wrote it: without the namespace Lark gives a terminal a
    grammar imports (``access__CLUSTER_PART`` in a given format's grammar, from access.lark)."""
    space, _, base = name.rpartition("__")
    return base if space and base and not space.endswith("_") else name


# ---- the built-in grammars ----------------------------------------------------------------------

GRAMMAR_FILES = {
    "access": ["istio_1_9", "istio_1_3", "istio_1_2", "istio_1_8", "istio_1_1", "istio_1_1_pre", "envoy",
               "address_value", "cluster_value", "access_line"],
    "prefix": ["line_prefix", "partial_prefix", "blank_prefix"],
    "noise": ["ztunnel_opened", "ztunnel_log", "istio_log", "tracing_log", "envoy_native_log", "glog_log", "tail_header",
              "kubectl_log_mark", "kubectl_log_error", "fluent_bit_msgpack",
              "otel_debug_log", "yaml_line", "noise_line"],
}


@functools.lru_cache(maxsize=None)
def load_builtin(name: str) -> Rulebook:
    """A grammar of ``grammars/`` by file stem."""
    path = resource_dir("grammars") / f"{name}.lark"
    return load_file(path, tuple(GRAMMAR_FILES[name]))


def load_file(path: Path, starts: tuple[str, ...]) -> Rulebook:
    """A grammar file; a built-in one's terminals and rules as stored (``logpipe/grammarstore.py``)
    once Lark has read it on this machine."""
    text, directory = Path(path).read_text(encoding="utf-8"), Path(path).parent
    if directory != resource_dir("grammars"):
        return Rulebook(text, list(starts), source=str(path), import_paths=[str(directory)])
    from . import grammarstore as _store

    store = _store.stored(text, list(starts), directory)
    parts = _store.load(store)
    book = Rulebook(text, list(starts), source=str(path), import_paths=[str(directory)], stored=parts)
    if parts is None:
        _store.save(store, *book.parts())
    return book


def start_rules(text: str) -> list[str]:
    """Rule names defined in a grammar text (used to offer a custom grammar's layouts)."""
    return re.findall(r"(?m)^([a-z_][a-z0-9_]*)\s*:", text)
