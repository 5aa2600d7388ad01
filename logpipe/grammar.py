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
            if name in _FIELD_RULES:
                return f"(?P<{group(name)}>{rule(name, name, stack)})"
            return rule(name, ctx, stack)

        body = rule(start, column, ())
        return CompiledRule(start, body, {k: tuple(v) for k, v in groups.items()})

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
                elif name in _FIELD_RULES:
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
