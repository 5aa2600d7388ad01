"""Grammars: load ``grammars/*.lark`` and compile them, at run time, into the fast path.

The grammar is the single description of line syntax (DESIGN.md principle 1). This module reads a
Lark grammar and gives two things from it:

* ``Rulebook.regex(start)``: one anchored regular expression for a start rule, built by walking
  the grammar's rules and terminals. Rules named like a column become named groups; rules nested
  in a column named ``ip``, ``port``, ``direction``, ``subset``, ``host`` become ``<column>_<rule>``.
  polars runs it over whole batches (Rust ``regex``), so terminals use the syntax both engines
  share (no look-around).
* ``Rulebook.parse(text, start)``: the exact Lark path (Earley, complete lexing, so free-text fields
  that contain quotes or spaces are split by the line's structure exactly as the regex does). It
  returns the same ``{group: text}`` mapping, or raises ``GrammarMismatch`` with Lark's column and
  expected terminals.

This is the only module that imports lark.
"""
from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import LogpipeError
from .resources import resource_dir
from .schema import COLUMNS

from lark.grammar import Symbol as _Symbol  # noqa: E402

# Rules nested inside a column rule that name a derived column `<column>_<rule>`.
SUBFIELD_RULES = frozenset({"ip", "port", "direction", "subset", "host"})
_FIELD_RULES = frozenset(COLUMNS)


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

    def __init__(self, text: str, starts: list[str], *, source: str, import_paths=()):
        import lark

        self.source = source
        self.starts = list(starts)
        # Rules captured as columns: the schema's, plus a custom layout's extra columns
        # (logpipe/formats.py adds them before the first compile).
        self.fields = _FIELD_RULES
        try:
            self._lark = lark.Lark(
                text,
                parser="earley",
                lexer="dynamic_complete",
                start=self.starts,
                propagate_positions=True,
                ambiguity="resolve",
                import_paths=list(import_paths),
                source_path=source,
            )
        except lark.exceptions.GrammarError as e:  # a broken user grammar is a user error
            raise LogpipeError(f"grammar {source}: {e}") from None
        self._rules: dict[str, list] = {}
        for rule in self._lark.rules:
            self._rules.setdefault(rule.origin.name, []).append(rule.expansion)
        self._terms = {t.name: _terminal_regex(t) for t in self._lark.terminals}
        # The grammar as written (EBNF trees), for the regex compiler.
        self._ebnf = {str(name): tree for name, _params, tree, _opts in self._lark.grammar.rule_defs}

    # ---- the fast path: rules to one regex --------------------------------------------------------

    @functools.lru_cache(maxsize=None)
    def compile(self, start: str, column: str | None = None, subfields: bool = True) -> CompiledRule:
        """Compile ``start`` to a regex by walking the grammar's EBNF (before Lark expands
        optionals into duplicate alternatives, which would bloat the regex). ``column`` names the
        context of a standalone value rule; ``subfields=False`` captures columns only."""
        counter: dict[str, int] = {}
        groups: dict[str, list[str]] = {}

        def group(name: str) -> str:
            n = counter.get(name, 0) + 1
            counter[name] = n
            gname = name if n == 1 else f"{name}__{n}"
            groups.setdefault(name, []).append(gname)
            return gname

        def rule(name: str, ctx: str | None, stack: tuple[str, ...]) -> str:
            if name in stack:
                raise LogpipeError(
                    f"grammar {self.source}: rule {name!r} is recursive; the fast path needs a"
                    " regular grammar (use a terminal such as / +/ instead of repetition)"
                )
            return node(self._ebnf[name], ctx, stack + (name,))

        def node(t, ctx, stack) -> str:
            if isinstance(t, _Symbol):
                return symbol(t, ctx, stack)
            kind = t.data
            if kind == "expansions":
                alts = [node(c, ctx, stack) for c in t.children]
                return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
            if kind == "alias":
                return node(t.children[0], ctx, stack)
            if kind == "expansion":
                return "".join(node(c, ctx, stack) for c in t.children)
            if kind == "maybe":
                return f"(?:{node(t.children[0], ctx, stack)})?"
            if kind == "expr":
                inner, op = t.children[0], str(t.children[1])
                if op == "?":
                    return f"(?:{node(inner, ctx, stack)})?"
                raise LogpipeError(
                    f"grammar {self.source}: repetition {op!r} is not supported in a layout; use a"
                    " terminal such as / +/ instead"
                )
            if kind == "value":
                return node(t.children[0], ctx, stack)
            if kind == "literal":
                return f"(?:{_literal_regex(str(t.children[0]))})"
            raise LogpipeError(f"grammar {self.source}: unsupported construct {kind!r} in a layout")

        def symbol(t, ctx, stack) -> str:
            if t.is_term:
                return f"(?:{self._terms[t.name]})"
            name = t.name
            if ctx and name in SUBFIELD_RULES:
                inner = rule(name, ctx, stack)
                return f"(?P<{group(f'{ctx}_{name}')}>{inner})" if subfields else f"(?:{inner})"
            if name in self.fields:
                return f"(?P<{group(name)}>{rule(name, name, stack)})"
            return rule(name, ctx, stack)

        body = rule(start, column, ())
        return CompiledRule(start, body, {k: tuple(v) for k, v in groups.items()})

    def rule_names(self) -> list[str]:
        """The rules of the grammar, in the order they are defined."""
        return list(self._ebnf)

    def references(self, name: str) -> list[str]:
        """The rules (not terminals) that rule ``name`` refers to directly, in order."""
        tree = self._ebnf[name]
        found: dict[str, None] = {}

        def walk(t) -> None:
            if isinstance(t, _Symbol):
                if not t.is_term:
                    found.setdefault(t.name)
                return
            for c in getattr(t, "children", ()):
                walk(c)

        walk(tree)
        return list(found)

    def regex(self, start: str, column: str | None = None) -> str:
        """The anchored whole-line regex of ``start``."""
        return f"^{self.compile(start, column).pattern}$"

    # ---- the exact path ---------------------------------------------------------------------------

    def parse(self, text: str, start: str, column: str | None = None) -> tuple[str, dict[str, str]]:
        """Parse ``text`` with Lark from ``start``; return the rule that matched (the alternative
        of ``start`` when ``start`` is a choice of rules) and ``{output name: text}``."""
        import lark

        try:
            tree = self._lark.parse(text, start=start)
        except lark.exceptions.UnexpectedInput as e:
            col = getattr(e, "column", None)
            if not isinstance(col, int) or col < 1:
                col = len(text) + 1
            expected = tuple(sorted(getattr(e, "allowed", None) or getattr(e, "expected", None) or ()))
            raise GrammarMismatch(_describe(e, text, col, expected), col, expected) from None
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


def _terminal_regex(term) -> str:
    """A terminal's regex for the fast path. Free text (terminals named TEXT…) ends where the
    line's structure says; Lark's Earley lexer tries every length of it, and the regex says the
    same with a lazy quantifier, which also keeps Rust's capture engine fast."""
    pattern = term.pattern.to_regexp()
    if term.name.startswith("TEXT") and pattern.endswith(("+", "*")):
        pattern += "?"
    return pattern


def _literal_regex(token: str) -> str:
    """A grammar literal ("text" or /regex/flags) as a regex."""
    if token.startswith('"'):
        return re.escape(ast.literal_eval(token))
    body, _, flags = token[1:].rpartition("/")
    return f"(?{flags}:{body})" if flags else body


def _text(line: str, tree) -> str:
    meta = tree.meta
    if getattr(meta, "empty", True):
        return ""
    return line[meta.start_pos : meta.end_pos]


def _describe(e, text: str, col: int, expected: tuple[str, ...]) -> str:
    got = text[col - 1 : col + 11]
    where = f"column {col}"
    what = f"unexpected {got!r}" if got else "line ends early"
    if expected:
        shown = ", ".join(expected[:6]) + (", …" if len(expected) > 6 else "")
        return f"{where}: {what}, expected {shown}"
    return f"{where}: {what}"


# ---- the built-in grammars ----------------------------------------------------------------------

GRAMMAR_FILES = {
    "access": ["istio_1_9", "istio_1_3", "istio_1_2", "istio_1_8", "istio_1_1", "istio_1_1_pre", "envoy",
               "address_value", "cluster_value", "access_line"],
    "prefix": ["line_prefix"],
    "noise": ["istio_log", "tracing_log", "envoy_native_log", "glog_log", "noise_line"],
}


@functools.lru_cache(maxsize=None)
def load_builtin(name: str) -> Rulebook:
    """A grammar of ``grammars/`` by file stem."""
    path = resource_dir("grammars") / f"{name}.lark"
    return load_file(path, tuple(GRAMMAR_FILES[name]))


def load_file(path: Path, starts: tuple[str, ...]) -> Rulebook:
    text = Path(path).read_text(encoding="utf-8")
    return Rulebook(text, list(starts), source=str(path), import_paths=[str(Path(path).parent)])


def start_rules(text: str) -> list[str]:
    """Rule names defined in a grammar text (used to offer a custom grammar's layouts)."""
    return re.findall(r"(?m)^([a-z_][a-z0-9_]*)\s*:", text)


# ---- diagnosis: how far a line follows a layout ---------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One item of a layout's sequence (a column rule, a terminal or a literal), with the regex of
    the layout's first items up to and including it (``prefix``, anchored at the start)."""

    index: int
    prefix: str
    pattern: str  # this item's own regex
    field: str | None  # the column this item captures, or None for a separator
    expects: str  # what the item accepts, from the grammar: "INT or '-'", "'\"'"
    after: str | None  # the last column before this item
    before: str | None  # the next column from this item on


@functools.lru_cache(maxsize=None)
def layout_steps(book: Rulebook, start: str, strict: bool = True) -> tuple[Step, ...]:
    """The items of layout ``start`` in order, helper rules (``head``, ``counters``, …) inlined down
    to column rules, terminals and literals, each with the regex of the layout's first k items.
    A malformed line is diagnosed by the longest prefix it matches. ``strict`` keeps free text
    (TEXT… terminals) from crossing a double quote, so that a quoted field does not swallow the
    next fields and the diagnosis points where the line first departs from the layout."""
    items: list = []

    def flatten(t) -> None:
        if isinstance(t, _Symbol):
            tree = None if t.is_term or t.name in _FIELD_RULES else book._ebnf[t.name]
            if tree is not None and tree.data == "expansions" and len(tree.children) == 1:
                flatten(tree.children[0])
            else:
                items.append(t)
        elif t.data == "expansions" and len(t.children) == 1:
            flatten(t.children[0])
        elif t.data == "expansion":
            for c in t.children:
                flatten(c)
        elif t.data == "value" and isinstance(t.children[0], _Symbol):
            flatten(t.children[0])
        else:
            items.append(t)

    flatten(book._ebnf[start])
    names = [i.name if isinstance(i, _Symbol) and i.name in _FIELD_RULES else None for i in items]
    steps, prefix = [], ""
    for k, item in enumerate(items):
        pattern = _item_regex(book, item, strict)
        prefix += pattern
        after = next((n for n in reversed(names[:k]) if n), None)
        before = next((n for n in names[k:] if n), None)
        steps.append(Step(k, prefix, pattern, names[k], _describe_first(book, item), after, before))
    return tuple(steps)


def _item_regex(book: Rulebook, t, strict: bool) -> str:
    if isinstance(t, _Symbol):
        if t.is_term:
            pattern = book._terms[t.name]
            if strict and t.name.startswith("TEXT") and pattern.startswith("[^"):
                pattern = '[^"' + pattern[2:]
            return f"(?:{pattern})"
        return f"(?:{_item_regex(book, book._ebnf[t.name], strict)})"
    kind = t.data
    if kind == "expansions":
        return "(?:" + "|".join(_item_regex(book, c, strict) for c in t.children) + ")"
    if kind == "expansion":
        return "".join(_item_regex(book, c, strict) for c in t.children)
    if kind in ("value", "alias"):
        return _item_regex(book, t.children[0], strict)
    if kind == "maybe" or (kind == "expr" and str(t.children[1]) == "?"):
        return f"(?:{_item_regex(book, t.children[0], strict)})?"
    if kind == "literal":
        return f"(?:{_literal_regex(str(t.children[0]))})"
    raise LogpipeError(f"grammar {book.source}: unsupported construct {kind!r} in a layout")


def _describe_first(book: Rulebook, item) -> str:
    """What an item can start with, in the grammar's words: terminal names, literal text quoted."""
    terms = {t.name: t for t in book._lark.terminals}
    seen: list[str] = []

    def first(t, stack=()) -> bool:  # returns True when t can be empty
        if isinstance(t, _Symbol):
            if t.is_term:
                term = terms.get(t.name)
                kind = type(term.pattern).__name__ if term else ""
                seen.append(repr(term.pattern.value) if kind == "PatternStr" else t.name)
                return False
            return t.name in stack or first(book._ebnf[t.name], stack + (t.name,))
        kind = t.data
        if kind == "expansions":
            return any([first(c, stack) for c in t.children])
        if kind == "expansion":
            for c in t.children:
                if not first(c, stack):
                    return False
            return True
        if kind in ("value", "alias"):
            return first(t.children[0], stack)
        if kind == "maybe" or kind == "expr":
            first(t.children[0], stack)
            return True
        if kind == "literal":
            token = str(t.children[0])
            seen.append(repr(ast.literal_eval(token)) if token.startswith('"') else token)
            return False
        return False

    empty = first(item)
    shown = list(dict.fromkeys(seen)) + (["nothing"] if empty else [])
    return " or ".join(shown)


@functools.lru_cache(maxsize=4096)
def _prefix_re(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def match_steps(steps: tuple[Step, ...], text: str) -> tuple[int, int]:
    """How far ``text`` follows a layout: ``(k, end)`` where the first k steps match ``text[:end]``
    (k == len(steps) when all do). Binary search: a prefix matches only if every shorter one does."""
    lo, hi, end = 0, len(steps), 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        m = _prefix_re(steps[mid - 1].prefix).match(text)
        if m:
            lo, end = mid, m.end()
        else:
            hi = mid - 1
    if lo and not end:
        end = _prefix_re(steps[lo - 1].prefix).match(text).end()
    return lo, end


def greedy_match(pattern: str, text: str, pos: int) -> int:
    """Where an item's regex ends at ``pos`` when its free text is taken as far as it goes."""
    m = _prefix_re(pattern.replace("+?", "+").replace("*?", "*")).match(text, pos)
    return m.end() if m else pos
