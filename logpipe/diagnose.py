"""Diagnosis: where a malformed text line departs from its closest layout, and what that layout
expected there (a reject's reason). Stage 1 asks it about the lines no layout's regex took.

Each layout's leading items are the grammar's (``logpipe/steps.py`` reads them from
``grammars/access.lark``); nothing here is a regex of line syntax.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Sequence

from . import grammar as _grammar
from . import steps as _steps
from .schema import ADDRESS_COLUMNS


@dataclass
class Departure:
    """Where a line stops following its closest layout: 1-based ``column`` of the body, the
    ``layout``, and the grammar ``step`` that failed there (None: text left after the last field)."""

    column: int
    layout: str
    step: "_steps.Step | None"
    last_field: str | None
    got: str
    place: str = ""  # "after <column>" or "before <column>", for a separator
    fields: int = 0  # columns matched, of the layout's ``total``
    total: int = 0
    portless: bool = False  # an address field got an IP or host name with no port

    def describe(self, shift: int = 0, context: str = "", layout: bool = True, lark_column: int | None = None) -> str:
        """The reason, at ``column + shift``; ``context``: Lark's own, which names ``lark_column``;
        ``layout=False`` for the one layout of a given format (no "closest layout")."""
        got = f"got {self.got!r}" if self.got else "the line ends there"
        step, why = self.step, f"closest layout {self.layout}" if layout else ""
        if step is None:
            what = f"unexpected text after {self.last_field}, the last field, {got}"
        elif self.portless:  # (where Lark wants the ':' of the port next)
            what = f"{step.field} expected {_steps.ADDRESS_EXPECTS}, {got}, no port"
        elif step.field:
            what = f"{step.field} expected {step.expects}, {got}"
        else:
            what = f"expected {step.expects} {self.place}, {got}"
        if not self.got:
            why += f"{', ' if why else ''}{self.fields} of {self.total} fields"
        at = self.column + shift
        # Past the word it got: Earley let free text take the rest (within it: the field read its start).
        if context and lark_column is not None and lark_column > at and lark_column >= at + len(self.got):
            context = context.replace(f"column {lark_column}:", f"column {lark_column}, free text read on past column {at}:", 1)
        why += f"{'; ' if why else ''}Lark: {context}" if context else ""
        return f"column {at}: {what}" + (f" ({why})" if why else "")



def tells(access: "_grammar.Rulebook", where: Departure) -> bool:
    """Whether the part of a line that follows ``where``'s layout, up to where it departs, tells it
    from another program's line (``steps.telling_steps``): a line of words is not a given format's
    because its first fields take any word."""
    flags = _steps.telling_steps(access, where.layout)
    return any(flags[:where.step.index if where.step is not None else len(flags)])


def diagnose_line(access: "_grammar.Rulebook", body: str, layouts: Sequence[str]) -> Departure | None:
    """The layout of ``layouts`` whose leading items (compiled from the grammar) match ``body``
    furthest (the first of them on a tie: pass them in the order a line is tried, parse.TEXT_LAYOUTS),
    and what it expected where they stop; None when a layout matches the whole line. A tab-separated
    layout's free text may hold a tab (Envoy logs a header's as it is), but a line that breaks is
    diagnosed as read with none there: else a free-text field takes the tabs after it, and the reason
    names a later column than the one that broke (``2OO`` under ``%REQ(:PATH)%<TAB>%RESPONSE_CODE%``)."""
    best = _closest(access, body, layouts, False)
    if best is not None and any(_steps.tab_separated(access, name) for name in layouts):
        best = _closest(access, body, layouts, True)
    return best and _one_bad_field(access, body, best[0], best[3], _departure(access, body, *best))


def _closest(access: "_grammar.Rulebook", body: str, layouts: Sequence[str], tabless: bool) -> tuple | None:
    """``diagnose_line``'s layout, as ``(name, end, k, steps)``: ``steps`` (``tabless``: those of
    ``steps.layout_steps`` for a tab-separated layout) match ``body[:end]`` for k of them; None when a
    layout's match the whole line."""
    best: tuple | None = None
    tried: list[tuple[str, int, int]] = []
    for name in layouts:
        steps = _steps.layout_steps(access, name, tabless=tabless and _steps.tab_separated(access, name))
        # Layouts share their leading steps (Istio's, most of a line): what a layout tried before
        # found there holds for this one. Where it stopped within them, this one stops; else they
        # match, and the search goes on from their end (a malformed line: ~2.5x fewer regex runs).
        known, same = 0, None
        for other, k, end in tried:
            shared = _steps.shared_steps(access, other, name, tabless)
            if k < shared:
                same = (k, end)
                break
            known = max(known, shared)
        k, end = same or _steps.match_steps(steps, body, known)
        tried.append((name, k, end))
        if k == len(steps) and end == len(body):
            return None
        if best is None or (end, k) > (best[1], best[2]):
            best = (name, end, k, steps)
    return best


def _departure(access: "_grammar.Rulebook", body: str, name: str, end: int, k: int, steps: tuple) -> Departure:
    """Where ``body`` departs from layout ``name`` whose first k ``steps`` match ``body[:end]``."""
    step = steps[k] if k < len(steps) else None
    j = k - 1  # the field before the step that failed, past the optional items after it (the cluster's ";"?):
    while j > 0 and not steps[j].field and _optional(steps[j]):  # a name read as the cluster's "outbound" of
        j -= 1  # "outbound|443|_", then ";"? and ' ' failed at '|': the cluster's fault, not the separator's
    prev = steps[j] if k else None
    if (step is None or not step.field) and prev is not None and prev.field:
        # A separator failed right after a field, or text is left after the last one: the field may
        # have stopped short (free text matched lazily; "2OO" read as "2"). Take the field as far as
        # it goes, then judge: a token it matched only the start of is the field's fault, at its start.
        k = j + 1
        start = _steps.match_steps(steps[:j], body, j)[1]  # (they match: one regex run for their end)
        greedy = _steps.greedy_match(prev.pattern, body, start)
        token = _word(body[start:])
        if greedy > end:
            end = greedy
        elif body[end:end + 1] not in ("", " ", "\t", '"'):
            # (``fields``: the field counts, as far as the line follows the format: it started as the
            # field does; a noise rule's line must follow a given format for that many, layouts.py.)
            matched = sum(1 for s in steps[:k] if s.field)
            return Departure(start + 1, name, prev, None, token[:40], fields=matched,
                             total=_steps.field_count(access, name))
    rest = body[end:]
    got = (_word(rest)[:40] or rest[:16]) if step is not None and step.field and rest else rest[:24]
    fields = [s.field for s in steps[:k] if s.field]
    place = ""
    if step is not None and not step.field:
        opens = k + 1 < len(steps) and steps[k + 1].field  # the quote that opens a field
        place = f"before {step.before}" if opens or not step.after else f"after {step.after}"
    portless = step is not None and step.field in ADDRESS_COLUMNS and bool(_ip_rx(access).fullmatch(got.strip("[]")))
    return Departure(end + 1, name, step, fields[-1] if fields else None, got, place,
                     len(fields), _steps.field_count(access, name), portless)


def _optional(step: "_steps.Step") -> bool:
    """Whether a layout's item may match no text (an optional: the cluster's ``";"?``)."""
    return _of_steps((step,), "optional", lambda: _steps.compiled(step.pattern).fullmatch("") is not None)


def _one_bad_field(access: "_grammar.Rulebook", body: str, name: str, steps: tuple, where: Departure) -> Departure:
    """``where``, or an earlier field's departure when the line is the layout but for that one field's
    word: a field after free text that can hold a space (an unquoted ``%REQ(:PATH)%``) whose word, taken
    as any word, lets the rest of the line follow the layout to its end. Else the free text took the
    word that broke (``/x 2OO`` as the path under ``%REQ(:PATH)% %RESPONSE_CODE% %DURATION%``) and the
    reason named a later field, shifted a word along (``duration expected INT or '-', got '"abc"'``).
    The earliest such field, its free text as short as the line allows (lazy: the tab fix's reading)."""
    stop = where.step.index if where.step is not None else len(steps)
    found = None
    for j in _reachable(steps, _steps.spaced_steps(access, name)):
        if j >= stop:
            break
        m = _any_word_at(steps, j).fullmatch(body)
        if m and m.start(1) + 1 < where.column and (found is None or m.start(1) < found[1]):
            found = (j, m.start(1))
    return where if found is None else _departure(access, body, name, found[1], found[0], steps)


# What _one_bad_field derives from a layout's steps (the fields a free text reaches, a regex per field),
# by the steps' identity (a layout's steps are built once: steps.layout_steps) with the steps they are
# of. Built for each field of each malformed line, a regex's ~1-2 KB text joined and hashed cost ~45 µs
# a line (2% truncated lines: +0.4 ms a 16 MB task's ~150).
_OF_STEPS: dict[tuple[int, object], tuple[tuple, object]] = {}


def _of_steps(steps: tuple, key, make):
    """``make()`` for ``steps`` and ``key``, made once."""
    got = _OF_STEPS.get((id(steps), key))
    if got is None or got[0] is not steps:
        if len(_OF_STEPS) > 4096:  # (custom formats' steps come and go: bounded)
            _OF_STEPS.clear()
        got = _OF_STEPS[(id(steps), key)] = (steps, make())
    return got[1]


def _reachable(steps: tuple, spaced: tuple) -> list[int]:
    """The fields of ``steps`` whose word a free text before them (``spaced``: a field that can hold a
    space) may have taken: after it, with no quote between (a quoted field's free text ends at its
    quote: a built-in layout's fields after its path are its protocol alone, not the ~13 fields a
    truncated line tried, each a regex of the whole line)."""
    def make() -> list[int]:
        out, free = [], False
        for j, step in enumerate(steps):
            if step.field and free:
                out.append(j)
            if j < len(spaced) and spaced[j]:
                free = True
            elif not step.field and step.expects == "'\"'":
                free = False
        return out

    return _of_steps(steps, "reachable", make)


def _any_word_at(steps: tuple, j: int) -> re.Pattern:
    """The regex of a whole line that follows ``steps`` but has any word as field ``j``."""
    return _of_steps(steps, j, lambda: _steps.compiled(
        f"{steps[j - 1].prefix}([^ \t\"]*){''.join(s.pattern for s in steps[j + 1:])}"))


def _word(text: str) -> str:
    """``text`` up to its first space or tab (what a field's reason shows it got)."""
    return re.match("[^ \t]*", text).group()


@functools.lru_cache(maxsize=16)
def _ip_rx(access: "_grammar.Rulebook") -> "re.Pattern":
    """The grammar's ``ip`` rule (an address without its port), as a regex."""
    return re.compile(access.regex("ip"))

