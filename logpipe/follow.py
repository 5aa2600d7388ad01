"""What may follow each terminal of a grammar, and the exact path's token filter built from it.

Lark's complete Earley lexer (``lexer="dynamic_complete"``, needed because free text may hold the
quotes and spaces that delimit it) tries every length of every terminal match: a free-text field of
a 300-character line becomes ~300 tokens, each carried through the parse until the terminal after it
fails to match. A token can only be part of a parse if one of the terminals that may follow it in
the grammar matches where it ends (or the line ends there and the grammar may end with it), so
``TokenFilter`` drops the others before Lark sees them. That never changes which parses exist, so
the trees are the same, and a line is parsed ~4x faster. Lark's error for a line that does not parse
came out the same too on every line compared (tests/test_follow.py: samples and mutations).

The FOLLOW sets are the textbook ones (Aho et al., 4.4), over the rules Lark compiled (its EBNF
already expanded), with terminal names; ``END`` marks "the text may end here". No lark import: the
caller passes Lark's rule objects (``origin.name``, ``expansion`` of symbols with ``name`` and
``is_term``)."""
from __future__ import annotations

import contextlib
import threading
from typing import Iterable

END = "$END"


def follow_sets(rules: Iterable, starts: Iterable[str], ignore: Iterable[str] = ()) -> dict[str, frozenset]:
    """For each terminal name, the terminal names that may come right after it, plus ``END`` when
    it may end the text. Every start rule may end the text; ``ignore`` terminals (``%ignore``) may
    follow anything."""
    rules = [(r.origin.name, [(s.name, s.is_term) for s in r.expansion]) for r in rules]
    terms = {name for _, exp in rules for name, is_term in exp if is_term}
    first: dict[str, set] = {t: {t} for t in terms}
    follow: dict[str, set] = {t: set() for t in terms}
    for origin, _ in rules:
        first.setdefault(origin, set())
        follow.setdefault(origin, set())
    for s in starts:
        follow.setdefault(s, set()).add(END)
    nullable: set[str] = set()
    changed = True
    while changed:  # a fixpoint: the sets only grow, and they are finite
        changed = False
        for origin, exp in rules:
            names = [n for n, _ in exp]
            if origin not in nullable and all(n in nullable for n in names):
                nullable.add(origin)
                changed = True
            for k, name in enumerate(names):
                if all(n in nullable for n in names[:k]) and not first[name] <= first[origin]:
                    first[origin] |= first[name]
                    changed = True
                after: set = set()
                for nxt in names[k + 1:]:
                    after |= first[nxt]
                    if nxt not in nullable:
                        break
                else:  # the rest of the rule may be empty: what follows the rule follows it
                    after |= follow[origin]
                if not after <= follow[name]:
                    follow[name] |= after
                    changed = True
    extra = set(ignore)
    return {t: frozenset(follow[t] | extra) for t in terms}


class TokenFilter:
    """A drop-in for Lark's Earley ``term_matcher(term, text, index=0)``, which matches ``regexps``
    (terminal name → compiled pattern: the matcher's own) as Lark's does.

    Lark's scanner calls it with the whole text for the longest match of a terminal at a position,
    then once per shorter length with the cut text ``s[:-j]`` (``lark/parsers/xearley.py``, complete
    lexing). The longest match always passes; a shorter one passes only when a terminal of its
    FOLLOW set matches where it ends (``regexps``: name → compiled pattern), or the text ends there
    and ``END`` is in the set. Each parse runs inside ``reading(text)``; outside it every match
    passes."""

    def __init__(self, follow: dict[str, frozenset], regexps: dict):
        self._regexps = regexps  # (Lark's matcher's own patterns, matched here: one call less a token)
        # A follower without a pattern here (none in Lark today) would make its terminal unfilterable.
        self._follow = {t: (END in f, tuple(regexps[n] for n in sorted(f) if n != END))
                        for t, f in follow.items() if all(n == END or n in regexps for n in f)}
        self._text: str | None = None
        self._start = 0
        self._seen: dict = {}
        self.lock = threading.Lock()

    def begin(self, text: str | None) -> None:
        self._text, self._start, self._seen = text, 0, {}

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
        if text is self._text or self._text is None:  # the longest match at ``index``
            self._start = index
            return self._regexps[term.name].match(text, index)
        m = self._regexps[term.name].match(text, index)  # a shorter length, cut from the match at ``_start``
        if m is None:
            return None
        end = self._start + m.end()
        key = (term.name, end)
        ok = self._seen.get(key)
        if ok is None:
            rule = self._follow.get(term.name)
            if rule is None:  # a terminal no rule uses (only %ignore'd), or unfilterable: keep it
                ok = True
            else:
                whole = self._text
                ok = rule[0] if end == len(whole) else any(rx.match(whole, end) for rx in rule[1])
            self._seen[key] = ok
        return m if ok else None
