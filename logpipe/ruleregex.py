"""The fast path's regexes, compiled from a grammar's rules as written (``grammar.Rulebook``'s EBNF
trees and terminals): column rules become named groups, rules nested in a column named like
``SUBFIELD_RULES`` become ``<column>_<rule>`` groups. polars runs them over whole batches (Rust
``regex``), so terminals use the syntax both engines share (no look-around).

No lark import (``logpipe/grammar.py`` is lark's importer): the trees are read by their attributes,
those of lark's ``Tree`` (``data``, ``children``) and ``Symbol`` (``name``, ``is_term``), and a
terminal's by its ``name`` and ``pattern.to_regexp()``.
"""
from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

from .errors import LogpipeError

if TYPE_CHECKING:
    from .grammar import Rulebook

# Rules nested inside a column rule that name a derived column `<column>_<rule>`.
SUBFIELD_RULES = frozenset({"ip", "port", "direction", "subset", "host"})


class RegexBuilder:
    """Rules to regex text: column rules become named groups, rules nested in a column named like
    SUBFIELD_RULES become ``<column>_<rule>`` groups (a repeated name gets ``__2``, ``__3``…)."""

    def __init__(self, book: "Rulebook", subfields: bool):
        self.book, self.subfields = book, subfields
        self.counter: dict[str, int] = {}
        self.groups: dict[str, list[str]] = {}

    def result(self) -> dict[str, tuple[str, ...]]:
        return {k: tuple(v) for k, v in self.groups.items()}

    def group(self, name: str) -> str:
        n = self.counter.get(name, 0) + 1
        self.counter[name] = n
        gname = name if n == 1 else f"{name}__{n}"
        self.groups.setdefault(name, []).append(gname)
        return gname

    def rule(self, name: str, ctx: str | None, stack: tuple[str, ...]) -> str:
        if name in stack:
            raise LogpipeError(
                f"grammar {self.book.source}: rule {name!r} is recursive; the fast path needs a"
                " regular grammar (use a terminal such as / +/ instead of repetition)"
            )
        return self.node(self.book._ebnf[name], ctx, stack + (name,))

    def node(self, t, ctx, stack) -> str:
        if hasattr(t, "is_term"):  # a rule's or terminal's name (lark's Symbol), not a tree
            return self.symbol(t, ctx, stack)
        kind, source = t.data, self.book.source
        if kind == "expansions":
            alts = [self.node(c, ctx, stack) for c in t.children]
            return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if kind == "alias":  # (an alternative "-> name": Lark names its rule's tree node so, as if it were rule name)
            alias = tree_name(t)
            if alias is None:
                return self.node(t.children[0], ctx, stack)
            return self.named(alias, ctx, lambda c: self.node(t.children[0], c, stack))
        if kind == "expansion":
            return "".join(self.node(c, ctx, stack) for c in t.children)
        if kind == "maybe":
            return f"(?:{self.node(t.children[0], ctx, stack)})?"
        if kind == "expr":
            inner, op = t.children[0], str(t.children[1])
            if op == "?":
                return f"(?:{self.node(inner, ctx, stack)})?"
            raise LogpipeError(
                f"grammar {source}: repetition {op!r} is not supported in a layout; use a"
                " terminal such as / +/ instead"
            )
        if kind == "value":
            return self.node(t.children[0], ctx, stack)
        if kind == "literal":
            return f"(?:{literal_regex(str(t.children[0]))})"
        raise LogpipeError(f"grammar {source}: unsupported construct {kind!r} in a layout")

    def symbol(self, t, ctx, stack) -> str:
        if t.is_term:
            return f"(?:{self.book._terms[t.name]})"
        return self.named(t.name, ctx, lambda c: self.rule(t.name, c, stack))

    def named(self, name: str, ctx, body) -> str:
        """The regex ``body(context)`` of a rule's text, captured as what its tree node's ``name`` says."""
        if ctx and name in SUBFIELD_RULES:
            inner = body(ctx)
            return f"(?P<{self.group(f'{ctx}_{name}')}>{inner})" if self.subfields else f"(?:{inner})"
        if name in self.book.fields:
            return f"(?P<{self.group(name)}>{body(name)})"
        return body(ctx)


def tree_name(alias) -> str | None:
    """The name an ``alias`` node of a rule's EBNF tree (an alternative, ``-> name`` or none) gives
    its rule's tree node, or None when it gives none."""
    name = alias.children[1] if len(alias.children) > 1 else None
    return None if name is None else str(getattr(name, "name", name))


def terminal_regex(term) -> str:
    """A terminal's regex for the fast path. Free text (terminals named TEXT…) ends where the
    line's structure says; Lark's Earley lexer tries every length of it, and the regex says the
    same with a lazy quantifier, which also keeps Rust's capture engine fast."""
    pattern = uncapture(term.pattern.to_regexp())
    if term.name.startswith("TEXT") and pattern.endswith(("+", "*")):
        pattern += "?"
    return pattern


def uncapture(pattern: str) -> str:
    """``pattern`` with its unnamed groups made non-capturing. A terminal's groups only group (no
    column is named after them), and every capture slot slows Rust's capture engine (~20% on the
    address regex)."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            # "]" right after "[" or "[^" is a literal member of the class
            j = i + 1 + (pattern[i + 1:i + 2] == "^")
            if pattern[j:j + 1] == "]":
                out.append(pattern[i:j + 1])
                i = j + 1
                continue
        elif ch == "(" and pattern[i + 1:i + 2] != "?":
            out.append("(?:")
            i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def literal_regex(token: str) -> str:
    """A grammar literal ("text" or /regex/flags) as a regex."""
    if token.startswith('"'):
        return re.escape(ast.literal_eval(token))
    body, _, flags = token[1:].rpartition("/")
    return f"(?{flags}:{body})" if flags else body
