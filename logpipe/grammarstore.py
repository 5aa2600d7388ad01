"""The built-in grammars' rules and terminals, read by Lark once per machine and then from the cache
directory (``logpipe/cache.py``), so that a process's fast path starts without Lark reading a grammar
(~50-80 ms a process for the three a parser loads); Lark reads it at the first exact parse.

What is stored is what ``grammar.Rulebook`` takes from Lark's reading of a grammar: its terminals
(name, pattern: text or regex, flags, priority) and its rules as written (EBNF trees of rule and
terminal names and tokens), as JSON. Keyed by the grammar's text, its start rules, every ``.lark``
file of its directory (what ``%import .common`` reads) and Lark's version; a changed grammar file is
read by Lark again. tests/test_grammar_store.py compares a stored reading with Lark's.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import lark
from lark.grammar import NonTerminal, Terminal
from lark.lexer import PatternRE, PatternStr, TerminalDef

from . import cache as _cache

_VERSION = _cache.source_version(__file__)
_PATTERNS = {"str": PatternStr, "re": PatternRE}


def stored(text: str, starts: list[str], directory: Path) -> _cache.Stored:
    """Where grammar ``text`` (a file of ``directory``) with ``starts`` is stored."""
    files = sorted(directory.glob("*.lark"))
    derived_from = "\0".join([lark.__version__, text, *starts, *(
        f"{f.name}:{hashlib.sha256(f.read_bytes()).hexdigest()}" for f in files)])
    return _cache.Stored("grammar", _VERSION, derived_from)


def load(store: _cache.Stored) -> tuple[list, dict] | None:
    """``(terminals, rules as written)`` as ``encode`` stored them, or None."""
    data = store.load()
    if not isinstance(data, dict):
        return None
    try:
        terminals = [TerminalDef(name, _PATTERNS[kind](value, frozenset(flags), raw), priority)
                     for name, kind, value, flags, raw, priority in data["terminals"]]
        return terminals, {name: _node(tree) for name, tree in data["rules"]}
    except (KeyError, IndexError, TypeError, ValueError):  # (a file this code did not write)
        return None


def save(store: _cache.Stored, terminals: list, rules: dict) -> None:
    store.save({
        "terminals": [[t.name, _kind(t.pattern), t.pattern.value, sorted(t.pattern.flags), t.pattern.raw,
                       t.priority] for t in terminals],
        "rules": [[name, _json(tree)] for name, tree in rules.items()],
    })


def _kind(pattern) -> str:
    return next(k for k, cls in _PATTERNS.items() if type(pattern) is cls)


def _json(node):
    if isinstance(node, lark.Tree):
        return ["tree", str(node.data), [_json(c) for c in node.children]]
    if isinstance(node, Terminal):
        return ["terminal", node.name, node.filter_out]
    if isinstance(node, NonTerminal):
        return ["rule", node.name]
    if isinstance(node, lark.Token):
        return ["token", node.type, str(node)]
    raise TypeError(f"a grammar node of type {type(node).__name__}")


def _node(data):
    kind = data[0]
    if kind == "tree":
        return lark.Tree(data[1], [_node(c) for c in data[2]])
    if kind == "terminal":
        return Terminal(data[1], filter_out=data[2])
    if kind == "rule":
        return NonTerminal(data[1])
    if kind == "token":
        return lark.Token(data[1], data[2])
    raise ValueError(f"a stored grammar node of kind {kind!r}")
