"""A split plan as cut.c runs it (``logpipe_cut``): the plan's tokens and literals as C arrays, the
DFAs of its tokens' regexes (``checks``, logpipe/dfa.py), the columns cut.c types as it cuts
(``Types``), several layouts' plans as one call (``NativeCut``), and the call itself
(``run``). ``logpipe/splitplan.py`` says what a plan is and why cutting a line at its
quotes and spaces reads it as the grammar does; this module knows no layout either.
"""
from __future__ import annotations

import ctypes
import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from . import arrowpl as _arrowpl
from . import native as _native

if TYPE_CHECKING:
    from .splitplan import SplitPlan, Token

QUOTE, SPACE, TAB = '"', " ", "\t"  # what a plan cuts a line at (and a tab, which it leaves alone)


@functools.lru_cache(maxsize=64)
def _native_plan(plan: SplitPlan) -> tuple | None:
    """The plan as cut.c's arrays: per segment its left/free/right token counts; per useful token
    its segment, its index among the segment's tokens, and the literal text around it (lengths,
    and offsets into one bytes string of all of them)."""
    seg_left, seg_free, seg_right, tokens, where, lits, split = [], [], [], [], [], b"", b""
    for j, seg in enumerate(plan.segments):
        order = [*seg.left, *([seg.free] if seg.free is not None else []), *seg.right]
        if len(order) > _native.MAX_SEGMENT_TOKENS:
            return None
        seg_left.append(len(seg.left))
        seg_free.append(int(seg.free is not None))
        seg_right.append(len(seg.right))
        for i, token in enumerate(order):
            if token.useful:
                before, after = (text.encode() for text in token.strip)
                tokens.append(token)
                where.append((j, i, len(before), len(after), len(lits), len(lits) + len(before)))
                lits += before + after
                split += token.tail.sep.encode() if token.tail is not None else b"\0"
    arrays = [_native.int32s(a) for a in (seg_left, seg_free, seg_right, *zip(*where))] if where else None
    return (tuple(tokens), lits, split, arrays) if arrays else None


@functools.lru_cache(maxsize=64)
def checks(plan: SplitPlan) -> tuple | None:
    """Every token of the plan as cut.c checks it: (count, per token its segment, index and DFA's
    offsets and sizes, the DFAs' byte classes, tables and accepting flags), or None when a token's
    regex has no DFA (logpipe/dfa.py)."""
    from . import dfa as _dfa

    chk, classes, table, accept, entries = [], b"", b"", b"", []
    for j, seg in enumerate(plan.segments):
        order = [*seg.left, *([seg.free] if seg.free is not None else []), *seg.right]
        for i, token in enumerate(order):
            # cut.c leaves lines with a tab to the whole-line regex, so that a token of WORD (no space,
            # quote or tab) is known good after its first byte, like free text
            excluded = QUOTE + TAB if token is seg.free else QUOTE + SPACE + TAB
            found = _dfa.compile_token(token.pattern, excluded)
            if found is None or len(found.table) > 65535:  # (its rows' offsets are 16 bits)
                return None
            if found.first_sink <= 1:  # its start accepts whatever text the cut gives it: nothing to check
                continue
            cls, tab, acc, ncls, sink = _native.dfa_tables(found)
            chk += [j, i, len(classes), len(table) // 2, len(accept), ncls, sink]  # (table: 16-bit entries)
            classes, table, accept = classes + cls, table + tab, accept + acc
            entries.append((j, i, token.pattern, token.strip, excluded))
    return len(chk) // 7, _native.int32s(chk), classes, table, accept, tuple(entries)


def _deferred(native: tuple, chk: tuple, kinds: list[int]) -> tuple | None:
    """The checks of a plan's typed tokens that cut.c need not walk (cut.c's chk_skip, tok_chk): a
    token whose regex accepts every text read_typed reads as a value of its kind (``_values_match``)
    matches it when it reads as one, so its DFA is walked only when it reads as null (``-`` or
    empty text) or does not read. Skipped so: START_TIME, the response code and the four counters,
    six of the default layout's 19 walks (~6% of the cut). None when no check is skipped."""
    plan_tokens, arrays, entries = native[0], native[3], chk[5]
    tok_seg, tok_index = arrays[3], arrays[4]
    at = {(j, i): c for c, (j, i, *_) in enumerate(entries)}
    tok_chk, skip = [-1] * len(plan_tokens), [0] * len(entries)
    for u, kind in enumerate(kinds):
        c = at.get((tok_seg[u], tok_index[u]))
        if c is not None and kind in VALUE_TEXTS and _values_match(*entries[c][2:], kind):
            tok_chk[u], skip[c] = c, 1
    return (_native.uint8s(bytes(skip)), _native.int32s(tok_chk)) if any(skip) else None


@functools.lru_cache(maxsize=256)
def _values_match(pattern: str, strip: tuple[str, str], excluded: str, kind: int) -> bool:
    """Whether regex ``pattern`` accepts every value text of ``kind`` (VALUE_TEXTS) between the
    token's literal text ``strip`` (``dfa.includes``: their DFAs, so only what both read exactly)."""
    from . import dfa as _dfa

    outer = _dfa.compile_token(pattern, excluded)
    inner = _dfa.compile_token(f"^{re.escape(strip[0])}(?:{VALUE_TEXTS[kind]}){re.escape(strip[1])}$", excluded)
    return outer is not None and inner is not None and _dfa.includes(outer, inner)


TEXT_KIND, INT32_KIND, INT64_KIND, TIME_KIND, NULLED_KIND = 0, 1, 2, 3, 4  # cut.c's kinds of token
KIND_TYPES = {INT32_KIND: pa.int32(), INT64_KIND: pa.int64(), TIME_KIND: pa.timestamp("us", "UTC")}
# The texts cut.c's read_typed reads as a value (not null) of each kind (``_deferred``): at most 18
# digits; a time in UTC with at most 6 digits of fraction (a subset: it also checks the ranges).
VALUE_TEXTS = {INT32_KIND: r"[0-9]{1,18}", INT64_KIND: r"[0-9]{1,18}",
               TIME_KIND: r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z"}


@dataclass(frozen=True)
class Types:
    """The columns cut.c types as it cuts (``splitplan.cut`` and ``cut_checked`` with ``types``):
    those of ``columns`` ((name, Arrow type) pairs, the record's) that are 32- or 64-bit ints or times
    in µs UTC, less ``keep_text`` (a custom START_TIME format: records.py reads it). A token that is such a
    column's whole text comes out typed as records.py would type it, ``-`` and empty text null;
    a line whose text cut.c does not read as its type (an offset, 7 digits of fraction, an int
    over 18 digits) is not cut, so the whole-line regex and records.py take it as before.

    The string columns a plan's tokens give whole (``nulled``) come out with ``-`` and empty text
    null, as records.py would make them, by cut.c or by polars alike; records.py then leaves them be.
    Not a column given twice (``splitplan._add`` keeps the first value that is there: ``-`` is)."""

    columns: tuple[tuple[str, pa.DataType], ...]
    keep_text: frozenset = frozenset()

    @functools.cached_property
    def by_name(self) -> dict[str, int]:
        kinds = {}
        for name, type_ in self.columns:
            kind = next((k for k, t in KIND_TYPES.items() if t == type_), TEXT_KIND)
            if kind != TEXT_KIND and name not in self.keep_text:
                kinds[name] = kind
        return kinds

    def kinds(self, tokens) -> ctypes.Array:
        nulled = self.nulled_fields(tuple(tokens))
        return _native.int32s(TEXT_KIND if t.field is None or t.tail is not None else
                              self.by_name.get(t.field, NULLED_KIND if t.field in nulled else TEXT_KIND)
                              for t in tokens)

    def nulled(self, plan: "SplitPlan") -> frozenset:
        """The string columns that come out of ``plan``'s cut with ``-`` and empty text null."""
        native = _native_plan(plan)
        return self.nulled_fields(native[0]) if native is not None else frozenset()

    @functools.lru_cache(maxsize=64)
    def nulled_fields(self, tokens: tuple) -> frozenset:
        strings = {name for name, type_ in self.columns if pa.types.is_string(type_)}
        outputs = [name for t in tokens for name in ((t.field,) if t.field is not None else dict(t.groups))]
        return frozenset(t.field for t in tokens if t.field is not None and t.tail is None
                         and t.field in strings and outputs.count(t.field) == 1)


def _typed_column(nums, valid, n: int, c: int, kind: int, rows: int) -> pl.Series:
    """Output column c's typed values as cut.c wrote them (``run``)."""
    type_ = KIND_TYPES[kind]
    width = 4 if kind == INT32_KIND else 8
    array = pa.Array.from_buffers(type_, rows, [valid.slice((n + 7) // 8 * c, (rows + 7) // 8),
                                                nums.slice(8 * n * c, width * rows)])
    return _arrowpl.series(array)


@dataclass(frozen=True)
class NativeCut:
    """Plans as one call of cut.c (``logpipe_cut``): a line is cut by the first plan that fits it, and
    its tokens go to the output columns of all the plans, each column (``tokens[c]``, written as
    ``kinds[c]``) shared by the plans that have its token (the same Token, written the same way);
    a plan does not write the others, which are null in its lines. Columns ``len(tokens)`` on are the
    parts of the tokens with a Tail (``parts[c]``: the first of a token's two, else None)."""

    layouts: tuple[str, ...]
    tokens: tuple[Token, ...]
    kinds: tuple[int, ...]  # of every output column, parts included (TEXT_KIND)
    parts: tuple[int | None, ...]
    validity: tuple[bool, ...]  # the output columns with a validity bit
    col_valid: bytes  # cut.c's col_valid: a text column some plan does not write
    nulled: frozenset  # the string columns whose "-" and empty text come out null (Types.nulled)
    structs: object  # a C array of native.Plan, and what it points to (keep)
    keep: tuple = ()

    @property
    def ncol(self) -> int:
        return len(self.kinds)


@functools.lru_cache(maxsize=64)
def prepare(plans: tuple[SplitPlan, ...], types: "Types | None" = None, checked: bool = False) -> NativeCut | None:
    """``plans`` as cut.c runs them (``NativeCut``), with their DFAs (``checks``) when ``checked``; None
    when cut.c cannot take one (``_native_plan``, ``checks``), or when sharing columns would change
    which of a column's values comes first (``splitplan._add``) in one plan's lines."""
    if not plans or len(plans) > 32:  # (cut.c's doubt: a bit per plan)
        return None
    read = []
    for plan in plans:
        native, chk = _native_plan(plan), checks(plan) if checked else None
        if native is None or (checked and chk is None):
            return None
        kinds = list(types.kinds(native[0]))[:len(native[0])] if types is not None else [TEXT_KIND] * len(native[0])
        read.append((native, chk, kinds))
    keys: dict[tuple, int] = {}
    tokens, kinds, written = [], [], []
    for (plan_tokens, *_), _, plan_kinds in read:
        cols, seen = [], {}
        for token, kind in zip(plan_tokens, plan_kinds):
            key = (token, kind, seen.setdefault((token, kind), 0))  # (a token printed twice: two columns)
            seen[(token, kind)] += 1
            if key not in keys:
                keys[key] = len(tokens)
                tokens.append(token)
                kinds.append(kind)
            cols.append(keys[key])
        by_name: dict[str, list[int]] = {}
        for token, c in zip(plan_tokens, cols):
            for name in ((token.field,) if token.field is not None else dict(token.groups)):
                by_name.setdefault(name, []).append(c)
        if any(found != sorted(found) for found in by_name.values()):
            return None
        written.append(cols)
    parts, at = [], len(tokens)
    for token in tokens:
        parts.append(at if token.tail is not None else None)
        at += 2 if token.tail is not None else 0
    all_kinds = kinds + [TEXT_KIND] * (at - len(tokens))
    structs, keep, absent_anywhere = (_native.Plan * len(plans))(), [], set()
    for p, (((plan_tokens, lits, split, arrays), chk, plan_kinds), cols) in enumerate(zip(read, written)):
        mine = set(cols) | {parts[c] + k for c in cols if parts[c] is not None for k in (0, 1)}
        absent = [c for c in range(at) if c not in mine]
        absent_anywhere.update(absent)
        seg_left, seg_free, seg_right, tok_seg, tok_index, tok_lstrip, tok_rstrip, tok_loff, tok_roff = arrays
        tok_col = _native.int32s(cols)
        tok_part = _native.int32s(parts[c] if parts[c] is not None else -1 for c in cols)
        out_kind = _native.int32s(plan_kinds) if types is not None else None
        lits, split, absent = _native.uint8s(lits), _native.uint8s(split), _native.int32s(absent or [0])
        nchk, chk_arr, classes, table, accept, _ = chk or (0, None, b"", b"", b"", ())
        classes, table, accept = _native.uint8s(classes), _native.uint8s(table), _native.uint8s(accept)
        chk_skip, tok_chk = (chk is not None and types is not None and
                             _deferred((plan_tokens, lits, split, arrays), chk, plan_kinds)) or (None, None)
        pointers = (seg_left, seg_free, seg_right, tok_seg, tok_index, tok_lstrip, tok_rstrip, tok_loff, tok_roff,
                    lits, split, tok_col, tok_part, out_kind, chk_arr, classes, table, accept, absent, chk_skip,
                    tok_chk)
        keep.append(pointers)
        a = [_native.address(x) for x in pointers]
        structs[p] = _native.Plan(plans[p].quotes + 1, a[0], a[1], a[2], len(plan_tokens), *a[3:9], a[9], a[10],
                                  a[11], a[12], a[13], nchk, a[14] if chk is not None else None, a[15], a[16], a[17],
                                  at - len(mine), a[18], a[19], a[20])
    col_valid = bytes(int(c in absent_anywhere and all_kinds[c] == TEXT_KIND) for c in range(at))
    validity = tuple(bool(col_valid[c]) or all_kinds[c] != TEXT_KIND for c in range(at))
    nulled_kind = {t.field for t, k in zip(tokens, kinds) if k == NULLED_KIND}
    nulled = frozenset(nulled_kind - {t.field for t, k in zip(tokens, kinds) if k != NULLED_KIND}
                       - {name for t in tokens if t.field is None for name in dict(t.groups)})
    return NativeCut(tuple(plan.layout for plan in plans), tuple(tokens), tuple(all_kinds), tuple(parts),
                     validity, col_valid, nulled, structs, tuple(keep))


def run(lib, plans: tuple[SplitPlan, ...], body: pl.Series, checked: bool = False,
                types: "Types | None" = None, glue: str = "") -> tuple | None:
    """``splitplan.cut`` by cut.c, by the first of ``plans`` that fits each line (``NativeCut``): (which lines
    it cut, the output columns' tokens, each column's text (or, with ``types``, its typed value) for
    every line it cut, for each column whose token has a Tail its text cut at its last separator:
    (before, after), else None; with more than one plan, each cut line's layout and doubt (cut.c's:
    bit p set when plan p's whole-line regex may take it)), or None when cut.c cannot take these
    plans or this batch (polars then cuts)."""
    cut = prepare(plans, types, checked)
    if cut is None or body.len() == 0:
        return None
    lines, line_views, bufs, buf_sizes, nbuf = _native.string_views(body)
    n, ncol, multi = len(lines), cut.ncol, len(plans) > 1
    views, ok, valid = pa.allocate_buffer(16 * n * ncol), pa.allocate_buffer(n), pa.allocate_buffer((n + 7) // 8 * ncol)
    sizes = (ctypes.c_int64 * ncol)()
    typed = [k in KIND_TYPES for k in cut.kinds]
    nums = pa.allocate_buffer(8 * n * ncol) if any(typed) else None
    which, doubt = (pa.allocate_buffer(n), pa.allocate_buffer(4 * n)) if multi else (None, None)
    mark = glue.encode()
    good = lib.logpipe_cut(line_views, bufs, buf_sizes, nbuf, n, len(plans), cut.structs, ncol, cut.col_valid,
                           views.address, ok.address, sizes, nums.address if nums is not None else None,
                           valid.address, which.address if multi else None, doubt.address if multi else None,
                           mark, len(mark))
    easy = _arrowpl.series(pa.Array.from_buffers(pa.uint8(), n, [None, ok])).cast(pl.Boolean)
    validity = [valid.slice((n + 7) // 8 * c, (good + 7) // 8) if v and not typed[c] else None
                for c, v in enumerate(cut.validity)]
    texts = _native.view_columns(lib, views, n, list(sizes), bufs, good, skip=typed, validity=validity)  # in order
    values = [_typed_column(nums, valid, n, c, cut.kinds[c], good) if typed[c] else texts[c] for c in range(ncol)]
    parts = [(values[at], values[at + 1]) if at is not None else None for at in cut.parts]
    layouts = doubts = None
    if multi:
        codes = _arrowpl.series(pa.Array.from_buffers(pa.uint8(), good, [None, which]))
        layouts = pl.Series("log_format", cut.layouts, dtype=pl.String).gather(codes)
        doubts = _arrowpl.series(pa.Array.from_buffers(pa.uint32(), good, [None, doubt]))
    return easy, list(cut.tokens), values[:len(cut.tokens)], parts, layouts, doubts
