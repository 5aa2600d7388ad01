"""The exact path's fields read from Lark's parse forest, where building its tree adds nothing.

Lark's Earley parser finds a line's readings as a shared packed parse forest (SPPF), then builds a
tree of it (``ambiguity="explicit"``: an ``_ambig`` node where a line reads more than one way, which
``Rulebook._resolve`` settles as the fast path does). Building that tree is ~15-25% of a line's
parse. When every node of the forest has one derivation, the tree is that derivation, and the
fields ``Rulebook.parse`` wants from it are the texts its rules span: a rule's tree node spans, from
its first child that holds text to its last (Lark's ``propagate_positions``), exactly the forest
node's ``[start, end)`` when the grammar shapes its tree plainly (``plain``: no ``%ignore`` between
tokens, no ``?rule`` or template renaming a node; the rules named ``_…`` are the ones the tree
inlines, and an alternative's alias, ``-> name``, names its node: ``_name``). So ``read`` walks the forest for them; it gives None for a forest with two derivations
anywhere, and the caller builds the tree as Lark would (``grammar._forest_tree``).
tests/test_follow.py compares the two readings on every sample line and on mutations of them.

No lark import (logpipe/grammar.py is lark's one importer): the nodes are read by their attributes,
those of lark's ``SymbolNode`` (``s``, ``start``, ``end``, ``is_intermediate``, ``children``: its
derivations) and ``PackedNode`` (``left``, ``right``); a token's node has no ``is_intermediate``.
"""
from __future__ import annotations


class _Ambiguous(Exception):
    """A forest node with more than one derivation: the tree decides."""


def plain(parser) -> bool:
    """Whether Lark's tree of ``parser``'s grammar is the forest's derivation node for node (see the
    module's docstring)."""
    return not getattr(parser, "ignore_tokens", ()) and not any(
        r.options.expand1 or r.options.template_source for r in parser.rules)


def read(root, text: str, start: str, column: str | None, fields, subfields, starts) -> tuple[str, dict] | None:
    """``Rulebook.parse``'s ``(matched, {output name: text})`` from forest ``root``, or None when
    a node of it has more than one derivation."""
    out: dict[str, str] = {}
    try:
        _walk(root, column, text, out, fields, subfields)
        top = _top(root)
    except _Ambiguous:
        return None
    if top is None:
        return None
    return (top if top in starts else start), out


def _derivation(node):
    kids = node.children
    if len(kids) != 1:
        raise _Ambiguous
    return kids[0]


def _parts(packed, acc: list) -> list:
    """The symbols a derivation is made of, in order (intermediate nodes, a rule's prefixes, opened)."""
    for side in (packed.left, packed.right):
        if side is None:
            continue
        if getattr(side, "is_intermediate", False):
            _parts(_derivation(side), acc)
        else:
            acc.append(side)
    return acc


def _walk(node, ctx: str | None, text: str, out: dict, fields, subfields) -> None:
    # (as Rulebook.parse walks the tree: a rule named like a column holds that column, and a rule
    # named like a sub-field inside it holds <column>_<rule>; the first reading of a name is kept)
    for child in _parts(_derivation(node), []):
        if not _is_rule(child):  # a token
            continue
        name = _name(child)
        if ctx and name in subfields:
            out.setdefault(f"{ctx}_{name}", text[child.start:child.end])
            _walk(child, ctx, text, out, fields, subfields)
        elif name in fields:
            out.setdefault(name, text[child.start:child.end])
            _walk(child, name, text, out, fields, subfields)
        else:
            _walk(child, ctx, text, out, fields, subfields)


def _top(root) -> str | None:
    """The rule of the tree root's only child, "" when it has no such child (then the start rule
    matched itself), None when that cannot be told without the tree (a token beside a rule: Lark
    keeps some tokens in the tree and filters others out)."""
    level, rules, tokens = _parts(_derivation(root), []), [], 0
    while level:
        node = level.pop(0)
        if not _is_rule(node):
            tokens += 1
        elif node.s.name.startswith("_"):  # inlined: its symbols stand in the parent's place
            level[:0] = _parts(_derivation(node), [])
        else:
            rules.append(_name(node))
    if len(rules) == 1 and not tokens:
        return rules[0]
    return "" if not rules or len(rules) > 1 else None


def _name(node) -> str:
    """The name of a rule's tree node: its rule's, or the alias of the alternative it derives
    (lark/parse_tree_builder.py: ``rule.alias or … rule.origin.name``)."""
    name = node.s.name
    if name.startswith("_"):  # (inlined: no node of its own)
        return name
    return getattr(_derivation(node).rule, "alias", None) or name


def _is_rule(node) -> bool:
    return hasattr(node, "is_intermediate")  # (a SymbolNode; intermediate ones are opened by _parts)
