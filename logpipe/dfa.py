"""A split-plan token's regex as a byte DFA that ``cut.c`` runs, so that a line cut by the plan is
known to match its layout without the whole-line regex (``nativecut.checks`` and ``cut_checked``).

Why: polars runs a layout's whole-line regex over every line (~0.74 µs a line) only to learn
whether the line is that layout's; the plan then cuts it again. When the plan cuts a line into
its tokens (at its quotes and spaces) and every token matches the regex the grammar compiles for
exactly its items, the line matches the whole-line regex, which is those regexes joined by the same
quotes and spaces. So each token's regex is compiled here, once (~40 ms for a layout), into a table
that cut.c walks over the token's bytes while it cuts (~0.35 µs a line in all: ~180 bytes walked).

Only what must be exact is: ``compile_token`` gives None (no check is possible: the layout keeps the
whole-line regex) for any construct it does not read exactly, and a DFA may accept less than the
regex, never more: a line it does not accept takes the whole-line regex as before. The texts are
valid UTF-8 (``parse.chunk_lines``), matched by characters as polars does:

* an ASCII character is one byte;
* a class that holds every non-ASCII character (``[^"\\n]``, ``.``) accepts any one UTF-8 sequence
  there, whose lead byte gives its length;
* any other class accepts its ASCII characters only (``\\d``, ``[^\\s]``: a subset, so a token with
  a non-ASCII digit goes to the regex).

A state from which every text the cut can give a token is accepted (``[^\\n]*`` on a token with no
quote) is a *sink*: cut.c stops there, so a free-text token costs a byte or two, not its length.
"""
from __future__ import annotations

import functools
import re
import re._constants as C
import re._parser as P
from dataclasses import dataclass

from . import cache as _cache

MAX_STATES = 4096  # a token's DFA (an address: IPv4/IPv6/host alternatives, a scheme, a pipe: 181)
ASCII = frozenset(range(128))
_CATEGORIES = {  # their ASCII members (in a class, Unicode members are left out: a subset)
    C.CATEGORY_DIGIT: frozenset(range(48, 58)),
    C.CATEGORY_WORD: frozenset([*range(48, 58), *range(65, 91), *range(97, 123), 95]),
    C.CATEGORY_SPACE: frozenset(b" \t\n\r\f\v"),
}


class Unsupported(Exception):
    pass


@dataclass(frozen=True)
class TokenDFA:
    """``classes[b]``: byte b's class; ``table[state * nclasses + class]``: the next state; state 0
    rejects (dead), 1 starts; states >= ``first_sink`` accept whatever follows; ``accepting``."""

    classes: bytes
    nclasses: int
    table: tuple[int, ...]
    accepting: bytes
    first_sink: int

    def matches(self, data: bytes) -> bool:
        """What cut.c computes, in Python (the tests)."""
        state = 1
        for b in data:
            if state >= self.first_sink:
                return True
            state = self.table[state * self.nclasses + self.classes[b]]
            if state == 0:
                return False
        return bool(self.accepting[state])


def includes(outer: TokenDFA, inner: TokenDFA) -> bool:
    """Whether ``outer`` accepts every text that ``inner`` accepts: both walked at once, from their
    starts, over every byte that keeps ``inner`` alive (their exact tables: a sink's row too); no
    pair of states that ``inner`` accepts in and ``outer`` does not is reached."""
    alive = {}  # inner state -> the bytes that lead it to a live state
    seen, todo = {(1, 1)}, [(1, 1)]
    while todo:
        i, o = todo.pop()
        if inner.accepting[i] and not outer.accepting[o]:
            return False
        if i not in alive:
            alive[i] = [b for b in range(256) if inner.table[i * inner.nclasses + inner.classes[b]]]
        for b in alive[i]:
            pair = (inner.table[i * inner.nclasses + inner.classes[b]], outer.table[o * outer.nclasses + outer.classes[b]])
            if pair not in seen:
                seen.add(pair)
                todo.append(pair)
    return True


@functools.lru_cache(maxsize=1024)
def compile_token(pattern: str, excluded: str) -> TokenDFA | None:
    """The DFA of anchored regex ``pattern`` (``^…$``), or None when it holds a construct read
    inexactly here. ``excluded``: the characters a token never holds (the cut's quotes, spaces):
    a state that accepts every text without them is a sink. Once per process, and once per machine:
    stored in the cache directory (logpipe/cache.py) by the regex's text, so that a process reads
    it without parsing the regex again (~0.1-0.3 ms a regex, ~50 of them at a lane's first batch)."""
    stored = _cache.Stored("dfa", _VERSION, repr((pattern, excluded)))
    found = _load(stored)
    if found is not _cache.MISSING:
        return found
    try:
        parsed = P.parse(pattern)
        if parsed.state.flags & (re.IGNORECASE | re.MULTILINE | re.LOCALE):
            return None
        items = _canonical(_strip_anchors(parsed))
    except (Unsupported, re.error):
        return None
    found = _compile(items, excluded)
    _save(stored, found)
    return found


def exact(pattern: str) -> bool:
    """Whether ``compile_token(pattern, …)`` accepts exactly the regex's texts, not a subset: none of
    its classes leaves characters out (a category such as ``\\d``, a non-ASCII member, or a
    negated non-ASCII character: their non-ASCII texts are not accepted)."""
    def walk(items) -> bool:
        for op, av in items:
            if op is C.IN and any(o is C.CATEGORY or (o is C.LITERAL and a > 127) or (o is C.RANGE and a[1] > 127)
                                  for o, a in av):
                return False
            if op is C.NOT_LITERAL and av > 127:
                return False
            if op is C.SUBPATTERN and not walk(av[3]):
                return False
            if op is C.BRANCH and not all(walk(alt) for alt in av[1]):
                return False
            if op in (C.MAX_REPEAT, C.MIN_REPEAT) and not walk(av[2]):
                return False
        return True

    try:
        return walk(P.parse(pattern))
    except re.error:
        return False


@functools.lru_cache(maxsize=256)
def _compile(items: tuple, excluded: str) -> TokenDFA | None:
    # Cached by the regex less its group names: a layout's four address columns share one (~15 ms);
    # and on disk by compile_token: building a layout's DFAs costs every process ~50-130 ms at start-up.
    try:
        nfa = _NFA()
        start, end = nfa.build(items)
        return _with_sinks(_minimize(_determinize(nfa, start, end)), _universe(excluded))
    except Unsupported:
        return None


_VERSION = _cache.source_version(__file__)


def _load(stored: _cache.Stored):
    """A stored DFA (or None: no DFA), ``cache.MISSING`` when there is none or it cannot be trusted."""
    data = stored.load()
    if data is None or data is _cache.MISSING:
        return data
    try:
        return TokenDFA(bytes.fromhex(data["classes"]), data["nclasses"], tuple(data["table"]),
                        bytes.fromhex(data["accepting"]), data["first_sink"])
    except (ValueError, KeyError, TypeError):
        return _cache.MISSING


def _save(stored: _cache.Stored, found: TokenDFA | None) -> None:
    stored.save(None if found is None else {
        "classes": found.classes.hex(), "nclasses": found.nclasses, "table": list(found.table),
        "accepting": found.accepting.hex(), "first_sink": found.first_sink})


def _canonical(items) -> tuple:
    """A parsed regex as nested tuples, its groups unnumbered (what matches does not depend on them)."""
    out = []
    for op, av in items:
        if op is C.SUBPATTERN:
            av = (None, av[1], av[2], _canonical(av[3]))
        elif op is C.BRANCH:
            av = (None, tuple(_canonical(alt) for alt in av[1]))
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            av = (av[0], av[1], _canonical(av[2]))
        elif op is C.IN:
            av = tuple(av)
        elif op not in (C.LITERAL, C.NOT_LITERAL, C.ANY):
            raise Unsupported(f"regex construct {op}")
        out.append((op, av))
    return tuple(out)


def _escape(c: str) -> str:
    return "\\" + c if c in "\\]^-[" else c


def _strip_anchors(items):
    """A whole-token regex (``^…$``) without its anchors: the DFA reads a whole token."""
    items = list(items)
    if len(items) < 2 or items[0] != (C.AT, C.AT_BEGINNING) or items[-1] != (C.AT, C.AT_END):
        raise Unsupported("not anchored at both ends")
    return items[1:-1]


class _NFA:
    """Thompson's construction over bytes: ``edges[s]``: (byte set, next) pairs; ``eps[s]``: next states."""

    def __init__(self) -> None:
        self.edges: list[list[tuple[frozenset, int]]] = []
        self.eps: list[list[int]] = []

    def state(self) -> int:
        self.edges.append([])
        self.eps.append([])
        return len(self.edges) - 1

    def build(self, items) -> tuple[int, int]:
        start = cur = self.state()
        for op, av in items:
            a, b = self.item(op, av)
            self.eps[cur].append(a)
            cur = b
        return start, cur

    def bytes_edge(self, chars: frozenset) -> tuple[int, int]:
        a, b = self.state(), self.state()
        self.edges[a].append((chars, b))
        return a, b

    def chars(self, ascii_set: frozenset, nonascii: bool) -> tuple[int, int]:
        """One character: a byte of ``ascii_set``, or (``nonascii``) any one UTF-8 sequence over 127."""
        a, b = self.state(), self.state()
        if ascii_set:
            self.edges[a].append((ascii_set, b))
        if nonascii:
            for lead, more in ((range(0xC0, 0xE0), 1), (range(0xE0, 0xF0), 2), (range(0xF0, 0xF8), 3)):
                cur = self.state()
                self.edges[a].append((frozenset(lead), cur))
                for _ in range(more - 1):
                    nxt = self.state()
                    self.edges[cur].append((frozenset(range(0x80, 0xC0)), nxt))
                    cur = nxt
                self.edges[cur].append((frozenset(range(0x80, 0xC0)), b))
        return a, b

    def literal(self, code: int) -> tuple[int, int]:
        data = chr(code).encode()
        start = cur = self.state()
        for byte in data:
            a, b = self.bytes_edge(frozenset([byte]))
            self.eps[cur].append(a)
            cur = b
        return start, cur

    def item(self, op, av) -> tuple[int, int]:
        if op is C.LITERAL:
            return self.literal(av)
        if op is C.NOT_LITERAL:
            return self.chars(ASCII - {av}, av < 128)
        if op is C.ANY:
            return self.chars(ASCII - {10}, True)
        if op is C.IN:
            return self.chars(*_class(av))
        if op is C.SUBPATTERN:
            group, add_flags, del_flags, items = av
            if add_flags or del_flags:
                raise Unsupported("inline flags")
            return self.build(items)
        if op is C.BRANCH:
            a, b = self.state(), self.state()
            for alt in av[1]:
                s, e = self.build(alt)
                self.eps[a].append(s)
                self.eps[e].append(b)
            return a, b
        if op in (C.MAX_REPEAT, C.MIN_REPEAT):  # lazy or greedy: the same texts match
            low, high, items = av
            start = cur = self.state()
            for _ in range(low):
                s, e = self.build(items)
                self.eps[cur].append(s)
                cur = e
            if high is C.MAXREPEAT:
                s, e = self.build(items)
                self.eps[cur].append(s)
                self.eps[e].append(s)
                end = self.state()
                self.eps[cur].append(end)
                self.eps[e].append(end)
                return start, end
            end = self.state()
            for _ in range(high - low):
                self.eps[cur].append(end)
                s, e = self.build(items)
                self.eps[cur].append(s)
                cur = e
            self.eps[cur].append(end)
            return start, end
        raise Unsupported(f"regex construct {op}")


def _class(items) -> tuple[frozenset, bool]:
    """A class's (ASCII bytes, whether it holds every non-ASCII character)."""
    negate, members, exact = False, set(), True
    for op, av in items:
        if op is C.NEGATE:
            negate = True
        elif op is C.LITERAL:
            if av < 128:
                members.add(av)
            else:
                exact = False  # a non-ASCII member: left out (of a negated class: none accepted)
        elif op is C.RANGE:
            lo, hi = av
            members.update(range(lo, min(hi, 127) + 1))
            exact = exact and hi < 128
        elif op is C.CATEGORY and av in _CATEGORIES:
            members.update(_CATEGORIES[av])
            exact = False  # Unicode digits, letters, spaces: left out
        else:
            raise Unsupported(f"class item {op} {av}")
    if negate:
        return ASCII - members, exact
    return frozenset(members), False


def _closure(nfa: _NFA, states) -> frozenset:
    seen, todo = set(states), list(states)
    while todo:
        for nxt in nfa.eps[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return frozenset(seen)


@dataclass
class _DFA:
    classes: list[int]  # byte -> class
    nclasses: int
    trans: list[list[int]]  # state -> class -> state (0: dead, 1: start)
    accepting: list[bool]


def _determinize(nfa: _NFA, start: int, end: int) -> _DFA:
    sets = list({e[0] for edges in nfa.edges for e in edges})
    signature: dict[tuple, int] = {}
    classes = []
    for byte in range(256):
        key = tuple(byte in s for s in sets)
        classes.append(signature.setdefault(key, len(signature)))
    reps = [classes.index(c) for c in range(len(signature))]  # a byte of each class
    # moves[c][s]: the NFA states a byte of class c leads to from state s, with their closures
    closures = [_closure(nfa, [s]) for s in range(len(nfa.edges))]
    moves = [{s: [closures[t] for chars, t in edges if byte in chars] for s, edges in enumerate(nfa.edges) if edges}
             for byte in reps]
    first = closures[start]
    index = {frozenset(): 0, first: 1}
    order = [frozenset(), first]
    trans: list[list[int]] = [[0] * len(reps)]
    i = 1
    while i < len(order):
        row = []
        for move in moves:
            nxt = frozenset().union(*[t for s in order[i] for t in move.get(s, ())])
            if nxt not in index:
                if len(order) >= MAX_STATES:
                    raise Unsupported("too many states")
                index[nxt] = len(order)
                order.append(nxt)
            row.append(index[nxt])
        trans.append(row)
        i += 1
    return _DFA(classes, len(reps), trans, [end in s for s in order])


def _minimize(dfa: _DFA) -> _DFA:
    """``dfa`` with its equivalent states merged (Moore's refinement: states apart only when a byte
    leads them to states apart), the dead state 0 and the start 1 first. A subset construction can
    give many states that accept the same texts: prefix.lark's logcli labels, read as four ways to
    name a pod and a container, gave 1,416 states for the 55 their texts need."""
    n = len(dfa.trans)
    block = [int(a) for a in dfa.accepting]
    count = len(set(block))
    while True:
        signature: dict[tuple, int] = {}
        new = [signature.setdefault((block[s], *(block[t] for t in dfa.trans[s])), len(signature)) for s in range(n)]
        if len(signature) == count:
            break
        block, count = new, len(signature)
    if block[1] == block[0]:  # (the start is dead: a regex of no text; left as it was)
        return dfa
    order = [block[0], block[1]]  # (the dead state's block, then the start's)
    order += sorted(set(block) - set(order))
    number = {b: i for i, b in enumerate(order)}
    first = {}
    for s in range(n):
        first.setdefault(block[s], s)
    trans = [[number[block[t]] for t in dfa.trans[first[b]]] for b in order]
    return _DFA(dfa.classes, dfa.nclasses, trans, [dfa.accepting[first[b]] for b in order])


@functools.lru_cache(maxsize=8)
def _universe(excluded: str) -> _DFA:
    """The texts a token can be: any without the characters ``excluded`` (nor a newline)."""
    nfa = _NFA()
    start, end = nfa.build(_canonical(P.parse(f"[^{''.join(_escape(c) for c in excluded)}\\n]*")))
    return _determinize(nfa, start, end)


def _with_sinks(dfa: _DFA, universe: _DFA) -> TokenDFA:
    """``dfa`` with its sinks (states that accept every continuation ``universe`` accepts) numbered last."""
    n, m = len(dfa.trans), len(universe.trans)
    combos = sorted({(universe.classes[b], dfa.classes[b]) for b in range(256)})
    # The product of the two: a pair (u, d) is bad when universe accepts there and dfa does not; a
    # state d is a sink when no bad pair can be reached from (universe's start, d).
    back: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for u in range(1, m):
        for d in range(n):
            for uc, dc in combos:
                nu = universe.trans[u][uc]
                if nu:
                    back.setdefault((nu, dfa.trans[d][dc]), []).append((u, d))
    bad = {(u, d) for u in range(1, m) for d in range(n) if universe.accepting[u] and not dfa.accepting[d]}
    todo = list(bad)
    while todo:
        for prev in back.get(todo.pop(), ()):
            if prev not in bad:
                bad.add(prev)
                todo.append(prev)
    sinks = {d for d in range(1, n) if (1, d) not in bad}
    if 1 in sinks:  # the start accepts everything: every state from 1 on counts as a sink
        new_order, first_sink = list(range(n)), 1
    else:
        keep = [d for d in range(n) if d not in sinks]
        new_order, first_sink = keep + sorted(sinks), len(keep)
    renumber = {old: new for new, old in enumerate(new_order)}
    table = [renumber[dfa.trans[old][c]] for old in new_order for c in range(dfa.nclasses)]
    return TokenDFA(bytes(dfa.classes), dfa.nclasses, tuple(table),
                    bytes(int(dfa.accepting[old]) for old in new_order), first_sink)
