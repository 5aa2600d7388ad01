"""A layout as a run of items: what diagnosis (logpipe/diagnose.py) and split plans
(logpipe/splitplan.py) read from the grammar.

``layout_items`` inlines a layout's helper rules (``head``, ``counters``, …) down to column rules,
terminals, literals and the constructs between them; ``layout_steps`` gives each item the regex of
the layout up to it, so that a line that does not parse is diagnosed by the longest prefix it
matches (``match_steps``). Rules and terminals are read through ``grammar.Rulebook``.
"""
from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass

from .errors import LogpipeError
from .grammar import Rulebook, Symbol, shown_terminal
from .ruleregex import literal_regex


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
def layout_items(book: Rulebook, start: str) -> tuple:
    """The items of layout ``start`` in order: helper rules (``head``, ``counters``, …) inlined down
    to column rules, terminals, literals and the constructs (optionals, choices) between them."""
    return flatten_items(book, book.rule_tree(start))


def flatten_items(book: Rulebook, tree, keep: frozenset = frozenset()) -> tuple:
    """The items of a rule's ``tree`` in order (as ``layout_items``); rules named in ``keep`` (the
    sub-field rules inside a column) stay items too."""
    items: list = []

    def flatten(t) -> None:
        if isinstance(t, Symbol):
            tree = None if t.is_term or t.name in book.fields or t.name in keep else book.rule_tree(t.name)
            if tree is not None and tree.data == "expansions" and len(tree.children) == 1:
                flatten(tree.children[0])
            else:
                items.append(t)
        elif t.data == "expansions" and len(t.children) == 1:
            flatten(t.children[0])
        elif t.data == "expansion":
            for c in t.children:
                flatten(c)
        elif t.data == "value" and isinstance(t.children[0], Symbol):
            flatten(t.children[0])
        else:
            items.append(t)

    flatten(tree)
    return tuple(items)


def item_literal(book: Rulebook, item) -> str | None:
    """The fixed text an item always matches (a string literal or a string terminal), else None."""
    if isinstance(item, Symbol):
        if not item.is_term:
            return None
        term = book.terminal(item.name)
        kind = type(term.pattern).__name__ if term else ""
        return term.pattern.value if kind == "PatternStr" else None
    if item.data == "value":
        return item_literal(book, item.children[0])
    if item.data == "literal" and str(item.children[0]).startswith('"'):
        return ast.literal_eval(str(item.children[0]))
    return None


def item_field(book: Rulebook, item) -> str | None:
    """The column an item captures when it is a column rule, else None."""
    return item.name if isinstance(item, Symbol) and not item.is_term and item.name in book.fields else None


def item_can_hold(book: Rulebook, item, char: str) -> bool:
    """Whether any text the item matches can contain ``char``. Free text (TEXT… terminals) can hold
    anything; other terminals are read from their regex (conservatively: True when unsure)."""
    seen: set[str] = set()

    def walk(t) -> bool:
        if isinstance(t, Symbol):
            if t.is_term:
                if t.name.startswith("TEXT"):
                    return True
                return _regex_can_hold(book.terminal_regex(t.name), char)
            if t.name in seen:
                return False
            seen.add(t.name)
            return walk(book.rule_tree(t.name))
        if t.data == "literal":
            token = str(t.children[0])
            if token.startswith('"'):
                return char in ast.literal_eval(token)
            return _regex_can_hold(literal_regex(token), char)
        kids = t.children[:1] if t.data == "alias" else t.children  # (its second: the name it gives, no item)
        return any(walk(c) for c in kids if not isinstance(c, str) or isinstance(c, Symbol))

    return walk(item)


@functools.lru_cache(maxsize=1024)
def _regex_can_hold(pattern: str, char: str) -> bool:
    import re._constants as C
    import re._parser as P

    code = ord(char)
    categories = {  # which classes hold a space or a double quote
        C.CATEGORY_DIGIT: False, C.CATEGORY_WORD: False, C.CATEGORY_LINEBREAK: False,
        C.CATEGORY_SPACE: char.isspace(),
        C.CATEGORY_NOT_DIGIT: True, C.CATEGORY_NOT_WORD: True, C.CATEGORY_NOT_LINEBREAK: True,
        C.CATEGORY_NOT_SPACE: not char.isspace(),
    }

    def in_set(items) -> bool:
        negate, hit = False, False
        for op, av in items:
            if op is C.NEGATE:
                negate = True
            elif op is C.LITERAL:
                hit |= av == code
            elif op is C.RANGE:
                hit |= av[0] <= code <= av[1]
            elif op is C.CATEGORY:
                hit |= categories.get(av, True)
            else:
                return True
        return hit != negate

    def walk(seq) -> bool:
        for op, av in seq:
            if op is C.LITERAL and av == code or op is C.NOT_LITERAL and av != code or op is C.ANY:
                return True
            if op is C.IN and in_set(av):
                return True
            if op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT) and walk(av[2]):
                return True
            if op is C.SUBPATTERN and walk(av[-1]):
                return True
            if op is C.BRANCH and any(walk(b) for b in av[1]):
                return True
            if op is C.ATOMIC_GROUP and walk(av):
                return True
            if op not in (C.LITERAL, C.NOT_LITERAL, C.IN, C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT,
                          C.SUBPATTERN, C.BRANCH, C.ATOMIC_GROUP, C.AT):
                return True  # a construct not read here: assume it can
        return False

    return walk(P.parse(pattern))


@functools.lru_cache(maxsize=None)
def layout_steps(book: Rulebook, start: str, strict: bool = True, tabless: bool = False) -> tuple[Step, ...]:
    """The items of layout ``start`` in order, helper rules (``head``, ``counters``, …) inlined down
    to column rules, terminals and literals, each with the regex of the layout's first k items.
    A malformed line is diagnosed by the longest prefix it matches. ``strict`` keeps free text
    (TEXT… terminals) from crossing a double quote, so that a quoted field does not swallow the
    next fields and the diagnosis points where the line first departs from the layout; ``tabless``
    (with ``strict``) keeps it from crossing a tab too (a tab-separated layout, ``tab_separated``)."""
    items = layout_items(book, start)
    names = [item_field(book, i) for i in items]
    steps, prefix = [], ""
    for k, item in enumerate(items):
        pattern = _item_regex(book, item, strict, tabless)
        prefix += pattern
        after = next((n for n in reversed(names[:k]) if n), None)
        before = next((n for n in names[k:] if n), None)
        expects = FIELD_EXPECTS.get(names[k]) or describe_first(book, item)
        steps.append(Step(k, prefix, pattern, names[k], expects, after, before))
    return tuple(steps)


@functools.lru_cache(maxsize=None)
def telling_steps(book: Rulebook, start: str) -> tuple[bool, ...]:
    """For each of ``layout_steps(book, start)``, whether the text it matches tells a line of the
    layout from another program's: a literal other than white space (``[``, ``"``, ``key=``), or a
    field that does not take every word of letters (a time, a number, a protocol, an address). A
    method, a token and free text take any: ``listening on :15000`` follows ``%REQ(:METHOD)%
    %REQ(:PATH)% %PROTOCOL%`` for two fields and tells nothing. A field whose regex logpipe/dfa.py does
    not read tells (as every field did before)."""
    from . import dfa as _dfa

    word = _dfa.compile_token("^[A-Za-z]+$", "")
    out = []
    for item, step in zip(layout_items(book, start), layout_steps(book, start)):
        if step.field is None:
            text = item_literal(book, item)
            out.append(bool(text and text.strip(" \t")))
        else:
            found = _dfa.compile_token(f"^{step.pattern}$", "")
            out.append(found is None or word is None or not _dfa.includes(found, word))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def tab_separated(book: Rulebook, start: str) -> bool:
    """Whether a separator of layout ``start`` (a literal between its columns) holds a tab."""
    return any("\t" in (item_literal(book, i) or "") for i in layout_items(book, start) if item_field(book, i) is None)


def _item_regex(book: Rulebook, t, strict: bool, tabless: bool = False) -> str:
    if isinstance(t, Symbol):
        if t.is_term:
            pattern = book.terminal_regex(t.name)
            if strict and t.name.startswith("TEXT") and pattern.startswith("[^"):
                pattern = ('[^"\t' if tabless else '[^"') + pattern[2:]
            return f"(?:{pattern})"
        return f"(?:{_item_regex(book, book.rule_tree(t.name), strict, tabless)})"
    kind = t.data
    if kind == "expansions":
        return "(?:" + "|".join(_item_regex(book, c, strict, tabless) for c in t.children) + ")"
    if kind == "expansion":
        return "".join(_item_regex(book, c, strict, tabless) for c in t.children)
    if kind in ("value", "alias"):
        return _item_regex(book, t.children[0], strict, tabless)
    if kind == "maybe" or (kind == "expr" and str(t.children[1]) == "?"):
        return f"(?:{_item_regex(book, t.children[0], strict, tabless)})?"
    if kind == "literal":
        return f"(?:{literal_regex(str(t.children[0]))})"
    raise LogpipeError(f"grammar {book.source}: unsupported construct {kind!r} in a layout")


# What an address field expects where a line (or a JSON value) gives an IP or host with no port, in a
# reason: diagnose.py's for a text line, values.py's for a JSON value.
ADDRESS_EXPECTS = "an address with its port (IP:PORT, [IPv6]:PORT)"
# What a field whose grammar words say little to a reader expects, in a reason: the cluster's rule
# starts with CLUSTER_DIRECTION or CLUSTER_PART ("upstream_cluster expected CLUSTER_DIRECTION or
# CLUSTER_PART, got 'outbound|443|_'" told no one what a cluster looks like).
FIELD_EXPECTS = {"upstream_cluster": "a cluster name (outbound|PORT|SUBSET|HOST, inbound-vip|PORT|PROTOCOL|HOST, or one name)"}


def describe_first(book: Rulebook, item) -> str:
    """What an item can start with, as a reason names it (``grammar.shown_terminal``): literal text
    quoted, a time specifier's terminal as what it reads, others by name."""
    seen: list[str] = []

    def first(t, stack=()) -> bool:  # returns True when t can be empty
        if isinstance(t, Symbol):
            if t.is_term:
                seen.append(shown_terminal(t.name, book.terminal(t.name)))
                return False
            return t.name in stack or first(book.rule_tree(t.name), stack + (t.name,))
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


compiled = _prefix_re  # (a regex of a layout's steps, compiled once: diagnose.py's too)


@functools.lru_cache(maxsize=None)
def spaced_steps(book: Rulebook, start: str) -> tuple[bool, ...]:
    """For each of ``layout_steps(book, start)``, whether it is a field of free text that can hold a
    space (an unquoted header or path): the words after it may be its own."""
    return tuple(item_field(book, i) is not None and item_can_hold(book, i, " ") for i in layout_items(book, start))


def match_steps(steps: tuple[Step, ...], text: str, known: int = 0) -> tuple[int, int]:
    """How far ``text`` follows a layout: ``(k, end)`` where the first k steps match ``text[:end]``
    (k == len(steps) when all do); the first ``known`` steps are known to match. Binary search: a
    prefix matches only if every shorter one does."""
    lo, hi, end = known, len(steps), 0
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


@functools.lru_cache(maxsize=None)
def field_count(book: Rulebook, start: str) -> int:
    """The columns of layout ``start``: its steps that are a field."""
    return sum(1 for s in layout_steps(book, start) if s.field)


@functools.lru_cache(maxsize=None)
def shared_steps(book: Rulebook, first: str, second: str, tabless: bool = False) -> int:
    """How many leading steps layouts ``first`` and ``second`` share: the same prefix regexes."""
    a = layout_steps(book, first, tabless=tabless and tab_separated(book, first))
    b = layout_steps(book, second, tabless=tabless and tab_separated(book, second))
    return next((k for k, (x, y) in enumerate(zip(a, b)) if x.prefix != y.prefix), min(len(a), len(b)))


def greedy_match(pattern: str, text: str, pos: int) -> int:
    """Where an item's regex ends at ``pos`` when its free text is taken as far as it goes."""
    m = _prefix_re(pattern.replace("+?", "+").replace("*?", "*")).match(text, pos)
    return m.end() if m else pos
