"""What may follow each terminal of a grammar, and the exact path's token filter built from it.

Lark's complete Earley lexer (``lexer="dynamic_complete"``, needed because free text may hold the
quotes and spaces that delimit it) tries every length of every terminal match: a free-text field of
a 300-character line becomes ~300 tokens, each carried through the parse until the terminal after it
fails to match. A token can only be part of a parse if what may follow it in the grammar matches
where it ends (or the line ends there and the grammar may end with it), so ``TokenFilter`` drops the
others before Lark sees them. That never changes which parses exist, so the trees are the same, and
a line is parsed ~6x faster. Lark's error for a line that does not parse came out the same too on
every line compared (tests/test_follow.py: samples and mutations).

What may follow is read two terminals deep (FOLLOW₂): free text inside quotes ends before ``DQ SP``,
not before any quote, so the quotes that open the later fields (a quote and then text) end no
candidate, and a path ends before ``SP PROTOCOL`` or ``SP DASH``, not before any space: ~1.3x faster
than one terminal deep (FOLLOW₁), and ~1.5x with the filter's own cost cut (one regex per terminal;
``[…]+`` terminals judged by where their cut ends). The second terminal is checked only after a
first one that is a fixed string (``SP``, ``DQ``), whose one match says where the second begins.

The sets are the textbook ones (Aho et al., 4.4: FIRST_k and FOLLOW_k, k = 2), over the rules Lark
compiled (its EBNF already expanded), with terminal names; ``END`` marks "the text may end here".
No lark import: the caller passes Lark's rule objects (``origin.name``, ``expansion`` of symbols with
``name`` and ``is_term``)."""
from __future__ import annotations

import contextlib
import re
import threading
from typing import Iterable

END = "$END"


def follow_strings(rules: Iterable, starts: Iterable[str], k: int = 2) -> dict[str, frozenset]:
    """For each terminal name, the strings (tuples) of up to ``k`` terminal names that may come right
    after it; a string shorter than ``k`` ends with ``END`` (the text may end there)."""
    rules = [(r.origin.name, [(s.name, s.is_term) for s in r.expansion]) for r in rules]
    terms = {name for _, exp in rules for name, is_term in exp if is_term}
    rules = [(origin, [name for name, _ in exp]) for origin, exp in rules]
    first: dict[str, set] = {t: {(t,)} for t in terms}
    follow: dict[str, set] = {t: set() for t in terms}
    for origin, _ in rules:
        first.setdefault(origin, set())
        follow.setdefault(origin, set())
    for s in starts:
        follow.setdefault(s, set()).add((END,))

    def cat(heads: set, tails: set) -> set:
        """Each head followed by each tail, cut to k; a head of k names, or one that ends the text,
        is whole already."""
        out = set()
        for h in heads:
            if len(h) >= k or h[-1:] == (END,):
                out.add(h[:k])
            else:
                out.update((h + t)[:k] for t in tails)
        return out

    def first_of(names: list[str]) -> set:  # FIRST_k of a run of symbols; () when it may be empty
        got: set = {()}
        for name in names:
            got = cat(got, first[name])
            if all(len(g) >= k for g in got):
                break
        return got

    changed = True
    while changed:  # a fixpoint: the sets only grow, and they are finite
        changed = False
        for origin, exp in rules:
            got = first_of(exp)
            if not got <= first[origin]:
                first[origin] |= got
                changed = True
            for i, name in enumerate(exp):
                after = {g for g in cat(first_of(exp[i + 1:]), follow[origin]) if g}
                if not after <= follow[name]:
                    follow[name] |= after
                    changed = True
    return {t: frozenset(follow[t]) for t in terms}


def follow_sets(rules: Iterable, starts: Iterable[str], ignore: Iterable[str] = ()) -> dict[str, frozenset]:
    """For each terminal name, the terminal names that may come right after it (FOLLOW₁), plus
    ``END`` when it may end the text. Every start rule may end the text; ``ignore`` terminals
    (``%ignore``) may follow anything."""
    extra = set(ignore)
    return {t: frozenset({s[0] for s in strings} | extra)
            for t, strings in follow_strings(rules, starts, k=1).items()}


class TokenFilter:
    """A drop-in for Lark's Earley ``term_matcher(term, text, index=0)``, which matches ``regexps``
    (terminal name → compiled pattern: the matcher's own) as Lark's does.

    Lark's scanner calls it with the whole text for the longest match of a terminal at a position,
    then once per shorter length with the cut text ``s[:-j]`` (``lark/parsers/xearley.py``, complete
    lexing). The longest match always passes; a shorter one passes only when one of the strings
    that may follow it (``follow``: terminal → tuples of terminal names, ``follow_strings``) matches
    where it ends: its first terminal there, and its second right after that one when the first is
    one of ``fixed`` (a fixed string, so its one match says where the second begins; after any other
    the second is not checked), or where the text ends right after the first (Lark's error for a line
    that ends early lists what it expected there, and these tokens are among its readings); ``END``
    where the text ends. A one-name tuple is that terminal followed by anything. Each terminal's
    strings are one regex (``_follower``), matched once where a token ends. Each parse runs inside
    ``reading(text)``; outside it every match passes."""

    def __init__(self, follow: dict[str, frozenset], regexps: dict, fixed: frozenset = frozenset()):
        # (Lark's matcher's own patterns, matched here: one call less a token). Keyed by plain texts:
        # Lark's names there are its grammar's Tokens, a str subclass whose __eq__ is Python's, and
        # the scanner asks by plain texts, so every lookup of a key that is not the same object
        # called it (~5% of a parse).
        regexps = {str.__str__(t): rx for t, rx in regexps.items()}
        follow = {str.__str__(t): strings for t, strings in follow.items()}
        self._regexps = regexps
        # terminal → (may it end the text, the regex of what may follow it or None). A terminal whose
        # followers have no pattern here (none in Lark today), or patterns of other flags, is not filtered.
        self._follow = {}
        for t, strings in follow.items():
            if all(n == END or n in regexps for s in strings for n in s):
                rx = _follower(strings, regexps, fixed)
                if rx is not False:
                    self._follow[t] = (any(s[0] == END for s in strings), rx)
        # Terminals every non-empty prefix of whose match is a match, whole ([…]+): a cut of their
        # longest match ends where the cut does, so a cut that cannot be followed is dropped unmatched.
        # Where such a cut may end is found for the whole text at once (``_ends``: a lookahead of the
        # follower regex at every position).
        self._closed = frozenset(t for t, rx in regexps.items() if _PREFIX_CLOSED.fullmatch(rx.pattern))
        self._ahead = {t: re.compile(f"(?=(?:{rule[1].pattern}))", rule[1].flags)
                       for t, rule in self._follow.items() if t in self._closed and rule[1] is not None}
        self._text: str | None = None
        self._start = 0
        self._seen: dict = {}
        self._where: dict = {}
        self.lock = threading.Lock()

    def begin(self, text: str | None) -> None:
        self._text, self._start, self._seen, self._where = text, 0, {}, {}

    def _ends(self, name) -> "set[int] | None":
        """Where in the text a cut of terminal ``name`` may end (None: anywhere)."""
        rule = self._follow.get(name)
        if rule is None:
            return None
        whole = self._text
        ahead = self._ahead.get(name)
        ends = {m.start() for m in ahead.finditer(whole)} if ahead is not None else set()
        ends.discard(len(whole))
        if rule[0]:
            ends.add(len(whole))
        return ends

    @contextlib.contextmanager
    def reading(self, text: str):
        """Filter for one parse of ``text`` (one parse at a time)."""
        with self.lock:
            self.begin(text)
            try:
                yield
            finally:
                self.begin(None)

    def __call__(self, term, text: str, index: int = 0):
        name = term.name
        if text is self._text or self._text is None:  # the longest match at ``index``
            self._start = index
            return self._regexps[name].match(text, index)
        # a shorter length, cut from the match at ``_start``
        if index == 0 and text and name in self._closed:  # (it ends where the cut does)
            ends = self._where.get(name, False)
            if ends is False:
                ends = self._where[name] = self._ends(name)
            if ends is not None and self._start + len(text) not in ends:
                return None
            return self._regexps[name].match(text)
        m = self._regexps[name].match(text, index)
        if m is None:
            return None
        end = self._start + m.end()
        key = (name, end)
        ok = self._seen.get(key)
        if ok is None:
            rule = self._follow.get(name)
            if rule is None:  # a terminal no rule uses (only %ignore'd), or unfilterable: keep it
                ok = True
            else:
                whole = self._text
                ok = rule[0] if end == len(whole) else rule[1] is not None and rule[1].match(whole, end) is not None
            self._seen[key] = ok
        return m if ok else None

    def matches(self, term, text: str, index: int) -> list[tuple[int, str]]:
        """Every match of ``term`` at ``index`` that the complete lexer's scanner keeps, as
        ``(end, text)`` in the order it asks ``__call__`` for them (``lark/parsers/xearley.py``: the
        longest, then each shorter length ``s[:-j]``, j = 1, 2, …): the same answers, asked at once
        (``grammar._Scanner``). A ``[…]+`` terminal's cuts are asked only at the lengths that end where
        it may end (``_ends``: a few of a free text's ~100-300 lengths); they would all be dropped
        unmatched, and the calls were most of the filter's time (95% of them on the sample lines)."""
        m = self(term, text, index)
        if m is None:
            return []
        s = m.group(0)
        got = [(m.end(), s)]
        name = term.name
        if len(s) > 1 and self._text is not None and name in self._closed:
            ends = self._where.get(name, False)
            if ends is False:
                ends = self._where[name] = self._ends(name)
            if ends is None:
                lengths = range(len(s) - 1, 0, -1)
            else:
                lengths = sorted((e - index for e in ends if index < e < index + len(s)), reverse=True)
            rx = self._regexps[name]
            for n in lengths:
                cut = rx.match(s[:n])  # (all of it: every non-empty prefix of a […]+ match is one)
                if cut is not None:
                    got.append((index + cut.end(), cut.group(0)))
            return got
        for j in range(1, len(s)):
            cut = self(term, s[:-j])
            if cut is not None:
                got.append((index + cut.end(), cut.group(0)))
        return got


_PREFIX_CLOSED = re.compile(r"\[\^?(?:[^\]\\]|\\.)+\]\+")


def _follower(strings, regexps: dict, fixed: frozenset):
    """One regex for what may follow a terminal (``strings`` but ``(END,)``), matched where it ends:
    ``first`` alone, ``first`` then the end (``\\Z``), or ``first`` then ``second`` or the end, after a
    fixed-string ``first``. None when only the end may follow; False when they cannot be one regex
    (patterns of other flags; a named group twice, from a user's grammar): that terminal is not filtered."""
    alternatives = set()
    for s in strings:
        if s[0] == END:
            continue
        first = f"(?:{regexps[s[0]].pattern})"
        if len(s) > 1 and s[0] in fixed:
            first += r"\Z" if s[1] == END else f"(?:{regexps[s[1]].pattern}|\\Z)"
        alternatives.add(first)
    names = {n for s in strings for n in s if n != END}
    if len({regexps[n].flags for n in names}) > 1:
        return False
    if not alternatives:
        return None
    try:
        return re.compile("|".join(sorted(alternatives)), regexps[min(names)].flags)
    except re.error:
        return False
