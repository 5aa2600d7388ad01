"""The split plan: a layout's columns cut out of a whole batch by splitting, planned from the grammar.

One capture regex for a whole line (``Rulebook.compile``) costs the Rust engine ~6 µs a line: it
carries ~60 groups across ~300 bytes. Most of that work is finding where fields start and end,
which in an access line is decided by its double quotes and spaces. So for each layout the grammar
is read once into a plan (``build``):

* the layout's items are cut at its double-quote items into segments (the text between quotes);
* each segment is cut at its single-space items into tokens;
* a token that may hold a space (free text: a ``TEXT…`` terminal) may appear at most once in a
  segment; the tokens before it are found from the left, those after it from the right;
* a token that is one column's whole text is taken as it is; any other token (a column with
  sub-fields, such as an address or a cluster, or a column wrapped in literals) gets the regex the
  grammar compiles for exactly its items, run on the token only (and on each distinct value once).

Why the result equals the whole-line regex (and Lark): the plan runs only on lines that the
layout's whole-line regex accepts (polars' ``contains``: a DFA, no captures) and whose number of
double quotes equals the layout's. Then every quote of the line is one of the layout's quote items,
no other item holds a quote, and within a segment every token but the free one holds no space, so
the i-th space from either end is the i-th separator. There is one way to read such a line, and
the plan reads it. Lines with quotes inside their free text go to the whole-line capture regex.

``cut_checked`` runs a plan on lines *not* known to match: cut.c also walks each token, literal-only
and empty ones included, through a DFA of the regex the grammar compiles for exactly its items
(``Token.pattern``, logpipe/dfa.py), and cuts only lines whose every token is accepted. Such a line
matches the whole-line regex, which is those regexes joined by the quotes and spaces the cut found,
so the argument above holds for it; the other lines take the whole-line regex as before.

``cut_layouts`` runs several layouts' plans in that one pass (a batch that mixes layouts, as a mesh
mid-upgrade logs, is then one frame, typed once, with no sort back into line order): a line is cut
by the first plan, in the order lines are tried, that fits it, and only when no earlier layout's
regex can match it. cut.c knows that when the line has exactly an earlier layout's quotes (its one
reading failed a check) or fewer (a quote item is missing); a line with more (free text may hold
them) is cut with a ``doubt`` bit for that layout, and the parser asks that layout's regex. A line
an earlier plan may still take (a tab, the glue mark twice, a value it does not type) is not cut.
"""
from __future__ import annotations

import ctypes
import functools
import re
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from . import grammar as _grammar
from . import native as _native
from . import steps as _steps
from .records import null_empty

QUOTE, SPACE, TAB = '"', " ", "\t"
# A token's regex runs once per distinct value when values repeat at least this often on average
# (clusters and service addresses repeat; client ports do not), in batches of at least DEDUPE_ROWS
# values (below that, the join back costs more than the regex it saves).
DEDUPE_RATIO = 2
DEDUPE_ROWS = 8192
DEDUPE_PROBE_ROWS = 2048  # (a column whose first rows repeat too little is read row by row)


@dataclass(frozen=True)
class Tail:
    """A column token that can be read from its right (``tail_of``). When the token matches
    ``first``, its column's first alternative (``address: ADDRESS_SCHEME? ip_port``, with
    ``ip_port: (ip | "[" ip "]") ":" port``), it ends in ``sep`` and a sub-field that cannot hold
    ``sep``: the text after its last ``sep`` is that sub-field (``name``), the text before it is read
    by ``head``. A client's address is unique by its port, but its head (the client's IP) repeats,
    so ``head`` runs once per distinct head, where the token's regex ran once per row (~0.3-0.5 µs).

    Why it reads what the token's regex reads: the regex tries its alternatives in order and
    ``first`` is the first, so a token that ``first`` matches is read by it; the split at the last
    ``sep`` is the only one (the sub-field holds no ``sep``); and ``first``'s reading of the head
    is its first reading in priority order that ends there, which is what ``^head$`` finds."""

    column: str
    sep: str
    first: str
    head: str
    head_groups: tuple[tuple[str, tuple[str, ...]], ...]
    name: str
    last: str = "^$"  # the regex of sub-field ``name``'s text (``^…$``)


@dataclass(frozen=True)
class Token:
    """What a token yields: ``field`` (its whole text is that column), or ``regex`` with
    ``groups`` (output name -> group names), or neither (a token of literals only)."""

    field: str | None = None
    regex: str | None = None
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    strip: tuple[str, str] = ("", "")  # literal text around ``field`` ("[" start_time "]")
    tail: Tail | None = None  # ``regex``'s columns, read from the right (Tail)
    pattern: str = "^$"  # the regex of the token's whole text (``^…$``), for its DFA (``checks``)

    @property
    def useful(self) -> bool:
        return self.field is not None or self.regex is not None


@dataclass(frozen=True)
class Segment:
    """The tokens between two quotes: ``left`` of the free token, ``free`` (may hold spaces),
    ``right`` of it. With no free token all tokens are ``left``."""

    left: tuple[Token, ...]
    free: Token | None
    right: tuple[Token, ...]


@dataclass(frozen=True)
class SplitPlan:
    layout: str
    quotes: int
    segments: tuple[Segment, ...]


def build(book: "_grammar.Rulebook", start: str) -> SplitPlan | None:
    """The plan of layout ``start``, or None when its grammar cannot be read by splitting (two
    free-text tokens between the same quotes; the whole-line regex then takes its lines)."""
    items = _steps.layout_items(book, start)
    segments: list[list] = [[]]
    for item in items:
        if _steps.item_literal(book, item) == QUOTE:
            segments.append([])
        else:
            segments[-1].append(item)
    planned = []
    for seg in segments:
        runs: list[list] = [[]]
        for item in seg:
            if _steps.item_literal(book, item) == SPACE:
                runs.append([])
            else:
                runs[-1].append(item)
        free = [i for i, run in enumerate(runs) if any(_steps.item_can_hold(book, it, SPACE) for it in run)]
        if len(free) > 1:
            return None
        tokens = [_token(book, run, f"{start}_{len(planned)}_{i}") for i, run in enumerate(runs)]
        if free:
            f = free[0]
            planned.append(Segment(tuple(tokens[:f]), tokens[f], tuple(tokens[f + 1:])))
        else:
            planned.append(Segment(tuple(tokens), None, ()))
    return SplitPlan(start, len(segments) - 1, tuple(planned))


def _token(book: "_grammar.Rulebook", run: list, key: str) -> Token:
    if not run:
        return Token()
    compiled = book.compile_items(tuple(run), key)
    pattern = f"^{compiled.pattern}$"
    fields = [i for i, item in enumerate(run) if _steps.item_field(book, item)]
    literals = [_steps.item_literal(book, item) for item in run]
    if len(fields) == 1 and all(text is not None for i, text in enumerate(literals) if i != fields[0]):
        f = fields[0]
        field = _steps.item_field(book, run[f])
        if list(compiled.groups) == [field]:  # one column, no sub-fields, fixed text around it
            return Token(field=field, strip=("".join(literals[:f]), "".join(literals[f + 1:])), pattern=pattern)
    if not compiled.groups:
        return Token(pattern=pattern)
    return Token(regex=pattern, groups=tuple(compiled.groups.items()),
                 tail=tail_of(book, run, compiled.groups, key), pattern=pattern)


def column_token(book: "_grammar.Rulebook", column: str) -> Token:
    """The token of ``column`` standing alone, as a split plan reads a token that is that column's
    whole text (a JSON value): its regex, groups and Tail."""
    return _token(book, [_grammar.rule_symbol(column)], f"{column}_value")


def tail_of(book: "_grammar.Rulebook", run: list, groups: dict, key: str) -> Tail | None:
    """The Tail of a token that is one column whose first alternative ends in a one-character
    literal and a sub-field that cannot hold it, and whose other columns come from that
    alternative's head; else None."""
    column = _steps.item_field(book, run[0]) if len(run) == 1 else None
    if column is None:
        return None
    keep = _grammar.SUBFIELD_RULES
    items = _steps.flatten_items(book, book.rule_tree(column), keep)
    if len(items) == 1 and isinstance(items[0], _grammar.Symbol) and not items[0].is_term \
            and items[0].name not in keep and items[0].name not in book.fields:  # upstream_host: address
        tree = book.rule_tree(items[0].name)
        if tree.data != "expansions":
            return None
        items = _steps.flatten_items(book, tree.children[0], keep)  # the first alternative
    if len(items) < 3:
        return None
    sep, last = _steps.item_literal(book, items[-2]), items[-1]
    if sep is None or len(sep.encode()) != 1 or not isinstance(last, _grammar.Symbol) or last.name not in keep \
            or _steps.item_can_hold(book, last, sep):
        return None
    head = book.compile_items(items[:-2], f"{key}_head", column)
    tail = book.compile_items((last,), f"{key}_tail", column)
    if list(tail.groups) != [f"{column}_{last.name}"] or column in head.groups \
            or set(groups) != {column, *head.groups, *tail.groups}:
        return None
    first = book.compile_items(items, f"{key}_first", column)
    return Tail(column, sep, f"^{first.pattern}$", f"^{head.pattern}$", tuple(head.groups.items()),
                f"{column}_{last.name}", f"^{tail.pattern}$")


def cut(plan: SplitPlan, body: pl.Series, types: "Types | None" = None) -> tuple[pl.Series, pl.DataFrame | None]:
    """Which of ``body``'s lines (each accepted by the layout's whole-line regex) the plan cuts, and
    their text columns, as the whole-line regex names them (None when it cuts none). The lines it does
    not cut (quotes inside free text) are left to the capture regex. Natively when ``cut.c`` is
    built (logpipe/native.py), else with polars: the same result. ``types``: see ``Types``."""
    lib = _native.library()
    done = _cut_native(lib, (plan,), body, False, types) if lib is not None else None
    if done is None:
        parts = split_quotes(body)
        easy = parts.list.len() == plan.quotes + 1
        columns = extract(plan, parts.filter(easy)) if easy.any() else None
        if columns is not None and types is not None:  # as cut.c gives them (Types)
            columns = columns.with_columns(null_empty(pl.col(c)).alias(c) for c in types.nulled(plan))
        return easy, columns
    return _cut_columns(done[:4])


def cut_checked(plan: SplitPlan, body: pl.Series, types: "Types | None" = None,
                glue: str = "") -> tuple[pl.Series, pl.DataFrame | None] | None:
    """``cut`` of lines not known to match the layout: a line is cut only when each of its tokens
    matches the regex of its items (``checks``), which is when the whole line matches the layout's
    regex (those regexes joined by the quotes and spaces the cut found). None when that cannot be
    checked (a token's regex is not read by logpipe/dfa.py, or no cut.c): the whole-line regex decides.
    ``glue`` (text ending in a double quote): a line in which it ends at two quotes is not cut."""
    got = cut_layouts((plan,), body, types, glue)
    return got[:2] if got is not None else None


def cut_layouts(plans: tuple[SplitPlan, ...], body: pl.Series, types: "Types | None" = None,
                glue: str = "") -> tuple | None:
    """``cut_checked`` by the first of ``plans`` (layouts in the order a line is tried) that cuts each
    line: (which lines were cut, their columns or None, with more than one plan each cut line's
    layout and doubt, else None and None). A line is cut by plan p only when it matches no earlier
    plan's layout: cut.c knows that from a line with exactly that layout's quotes (the one way to read
    it failed) or fewer, but not from one with more (free text may hold quotes): bit k of its doubt is
    set then, and the caller asks layout k's whole-line regex. None as for ``cut_checked``."""
    lib = _native.library()
    done = _cut_native(lib, plans, body, True, types, glue) if lib is not None else None
    if done is None:
        return None
    easy, columns = _cut_columns(done[:4])
    return easy, columns, *done[4:]


def checkable(plans: tuple[SplitPlan, ...], types: "Types | None" = None) -> tuple[SplitPlan, ...]:
    """The longest start of ``plans`` that ``cut_layouts`` can run (each plan's tokens have DFAs, and
    their columns can be shared: ``_native_cut``); empty when none can (no cut.c)."""
    for k in range(len(plans), 0, -1):
        if _native.library() is not None and _native_cut(plans[:k], types, True) is not None:
            return plans[:k]
    return ()


def nulled(plans: tuple[SplitPlan, ...], types: "Types") -> frozenset:
    """The string columns that come out of ``cut_layouts`` of ``plans`` with ``-`` and empty text null."""
    cut = _native_cut(plans, types, True)
    return cut.nulled if cut is not None else frozenset()


def _cut_columns(done) -> tuple[pl.Series, pl.DataFrame | None]:
    easy, tokens, values, parts = done  # (values and parts: of the lines cut alone)
    if not easy.any():
        return easy, None
    return easy, _columns(tokens, values, values[0].len() if values else int(easy.sum()), parts)


def split_quotes(body: pl.Series) -> pl.Series:
    """Lines cut at their double quotes: a list per line; ``extract`` takes those of
    ``plan.quotes + 1`` parts."""
    return body.str.split(QUOTE)


def extract(plan: SplitPlan, parts: pl.Series) -> pl.DataFrame:
    """The layout's text columns (as the whole-line regex names them) of lines that the layout's
    regex accepts and that hold exactly ``plan.quotes`` double quotes, cut by ``split_quotes``
    (polars' string kernels: ``cut``'s path when there is no C compiler)."""
    # Every cut is an expression of one lazy query: a batch costs one pass through polars, not one
    # call per token (which, for a small batch or one of many layouts, cost more than the work).
    cuts, tokens = [], []
    for j, seg in enumerate(plan.segments):
        if any(t.useful for t in (*seg.left, seg.free, *seg.right) if t is not None):
            for token, expr in _cut(seg, pl.col("parts").list.get(j, null_on_oob=True), f"s{j}"):
                cuts.append(expr.alias(f"t{len(tokens)}"))
                tokens.append(token)
    frame = parts.alias("parts").to_frame().lazy().select(cuts).collect()
    return _columns(tokens, frame.get_columns(), parts.len())


def _columns(tokens: list[Token], values: list[pl.Series], height: int, parts: list | None = None) -> pl.DataFrame:
    """The text columns of cut tokens (``values[i]``: the text of ``tokens[i]``; ``parts[i]``: cut.c's
    cut of it for ``read_tail``)."""
    columns: dict[str, pl.Series] = {}
    for i, (token, value) in enumerate(zip(tokens, values)):
        if token.field is not None:
            _add(columns, token.field, value)
        else:
            got = read_tail(token, value, parts[i] if parts else None) if token.tail is not None else \
                extract_groups(token.regex, token.groups, value)
            for name, column in got.items():
                _add(columns, name, column)
    return pl.DataFrame(columns, height=height)


NONE = _native.NONE  # exact_matches: no text matches


def exact_matches(regex: str, texts: pl.Series):
    """Which of ``texts`` anchored ``regex`` (``^…$``) matches whole, by cut.c's walk of its DFA
    (``native.matches``: false for a null; NONE when none matches), or None when that cannot tell
    exactly as polars' regex would: no cut.c, or a DFA that accepts less than the regex
    (``dfa.exact``)."""
    lib = _native.library()
    tables = _exact_tables(regex) if lib is not None else None
    return _native.matches(lib, texts, tables) if tables is not None else None


@functools.lru_cache(maxsize=64)
def _exact_tables(regex: str) -> tuple | None:
    from . import dfa as _dfa

    if not _dfa.exact(regex):
        return None
    found = _dfa.compile_token(regex, "")
    if found is None or len(found.table) > 65535:  # (cut.c's rows' offsets are 16 bits)
        return None
    return _native.dfa_tables(found)


def read_tail(token: Token, value: pl.Series, parts: tuple[pl.Series, pl.Series] | None = None) -> dict[str, pl.Series]:
    """``extract_groups`` of ``token`` (which has a Tail) on ``value``: the same columns, those of
    the texts its first alternative matches read from the right, the others by its regex.
    ``parts``: each text cut at its last separator (cut.c's cut of the line, or ``native.split_last``
    of the texts), else polars cuts them."""
    distinct = _distinct(value)
    if distinct is not None:  # texts that repeat (a service's address) are read once each anyway
        return _extract_groups(token.regex, token.groups, value, distinct)
    tail = token.tail
    lib = _native.library() if parts is None and value.dtype == pl.String else None
    if parts is None and lib is not None and tail.sep.isascii():  # (a JSON value: no plan cut it)
        parts = _native.split_last(lib, value, tail.sep)  # ~0.3 ms for 21k texts, polars' reading ~4
    if parts is not None:
        head, last = parts
    else:
        sep = re.escape(tail.sep)
        last = value.str.extract(f"{sep}([^{sep}]*)$")  # found from the end (a reverse DFA)
        head = value.str.slice(0, value.str.len_chars() - last.str.len_chars() - 1)
    # Whether ``first`` matches a text, without running it over every text (~0.9 ms for 25k texts):
    # first is head, sep, last, and the last sep is the only place to split it (last holds no sep),
    # so it matches when the text has a sep, its head matches ``head`` (tried once per distinct
    # head, which repeat) and its last part ``last``. A null text (a layout without the column) is
    # no miss: its columns are null either way.
    head_ok, heads = _matches(tail.head, head)
    # the last part's regex (a port's digits) by cut.c's walk of its DFA where it is exact: ~0.3 ms for
    # 52k texts, ~2.6 by polars' regex; false for a null, as polars' null is here after fill_null
    last_ok = exact_matches(tail.last, last) if parts is not None else None
    last_ok = pl.lit(False) if last_ok is NONE else pl.lit(last_ok) if last_ok is not None else \
        pl.col("last").str.contains(tail.last)
    hit = pl.DataFrame({"ok": head_ok, "last": last, "value": value}).select(  # (one query, not five)
        (pl.col("ok") & last_ok).fill_null(False) | pl.col("value").is_null()).to_series()
    if not hit.any():
        return _extract_groups(token.regex, token.groups, value, None)
    got = {tail.column: value.alias(tail.column), **_extract_groups(tail.head, tail.head_groups, head, heads),
           tail.name: last.alias(tail.name)}
    if not hit.all():
        miss = (~hit).arg_true()
        other = extract_groups(token.regex, token.groups, value.gather(miss))
        got = {name: column.scatter(miss, other[name]) for name, column in got.items()}
    return got


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
    """The columns cut.c types as it cuts (``cut`` and ``cut_checked`` with ``types``): those of
    ``columns`` ((name, Arrow type) pairs, the record's) that are 32- or 64-bit ints or times in µs
    UTC, less ``keep_text`` (a custom START_TIME format: records.py reads it). A token that is such a
    column's whole text comes out typed as records.py would type it, ``-`` and empty text null;
    a line whose text cut.c does not read as its type (an offset, 7 digits of fraction, an int
    over 18 digits) is not cut, so the whole-line regex and records.py take it as before.

    The string columns a plan's tokens give whole (``nulled``) come out with ``-`` and empty text
    null, as records.py would make them, by cut.c or by polars alike; records.py then leaves them be.
    Not a column given twice (``_add`` keeps the first value that is there: ``-`` is)."""

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
    """Output column c's typed values as cut.c wrote them (``_cut_native``)."""
    type_ = KIND_TYPES[kind]
    width = 4 if kind == INT32_KIND else 8
    array = pa.Array.from_buffers(type_, rows, [valid.slice((n + 7) // 8 * c, (rows + 7) // 8),
                                                nums.slice(8 * n * c, width * rows)])
    return pl.from_arrow(array)


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
def _native_cut(plans: tuple[SplitPlan, ...], types: "Types | None" = None, checked: bool = False) -> NativeCut | None:
    """``plans`` as cut.c runs them (``NativeCut``), with their DFAs (``checks``) when ``checked``; None
    when cut.c cannot take one (``_native_plan``, ``checks``), or when sharing columns would change
    which of a column's values comes first (``_add``) in one plan's lines."""
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


def _cut_native(lib, plans: tuple[SplitPlan, ...], body: pl.Series, checked: bool = False,
                types: "Types | None" = None, glue: str = "") -> tuple | None:
    """``cut`` by cut.c, by the first of ``plans`` that fits each line (``NativeCut``): (which lines
    it cut, the output columns' tokens, each column's text (or, with ``types``, its typed value) for
    every line it cut, for each column whose token has a Tail its text cut at its last separator:
    (before, after), else None; with more than one plan, each cut line's layout and doubt (cut.c's:
    bit p set when plan p's whole-line regex may take it)), or None when cut.c cannot take these
    plans or this batch (polars then cuts)."""
    cut = _native_cut(plans, types, checked)
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
    easy = pl.from_arrow(pa.Array.from_buffers(pa.uint8(), n, [None, ok])).cast(pl.Boolean)
    validity = [valid.slice((n + 7) // 8 * c, (good + 7) // 8) if v and not typed[c] else None
                for c, v in enumerate(cut.validity)]
    texts = _native.view_columns(lib, views, n, list(sizes), bufs, good, skip=typed, validity=validity)  # in order
    values = [_typed_column(nums, valid, n, c, cut.kinds[c], good) if typed[c] else texts[c] for c in range(ncol)]
    parts = [(values[at], values[at + 1]) if at is not None else None for at in cut.parts]
    layouts = doubts = None
    if multi:
        codes = pl.from_arrow(pa.Array.from_buffers(pa.uint8(), good, [None, which]))
        layouts = pl.Series("log_format", cut.layouts, dtype=pl.String).gather(codes)
        doubts = pl.from_arrow(pa.Array.from_buffers(pa.uint32(), good, [None, doubt]))
    return easy, list(cut.tokens), values[:len(cut.tokens)], parts, layouts, doubts


def _add(columns: dict[str, pl.Series], name: str, value: pl.Series) -> None:
    """A column printed twice (``%REQ(:PATH)%`` … ``%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%``) keeps its
    first value that is there, as the whole-line regex (coalesce) and Lark do."""
    columns[name] = columns[name].fill_null(value) if name in columns else value.alias(name)


def _cut(seg: Segment, text: pl.Expr, key: str) -> list[tuple[Token, pl.Expr]]:
    """The expression of each useful token of a segment (``text``: the segment's expression)."""
    if seg.free is None:
        if len(seg.left) == 1:
            pieces = [text]
        else:
            cut = text.str.split_exact(SPACE, len(seg.left) - 1)
            pieces = [cut.struct.field(f"field_{i}") for i in range(len(seg.left))]
        found = list(zip(seg.left, pieces))
    else:
        k, m = len(seg.left), len(seg.right)
        words = text.str.split(SPACE)
        left = [words.list.get(i, null_on_oob=True) for i in range(k)]
        right = [words.list.get(i - m, null_on_oob=True) for i in range(m)]
        start = pl.sum_horizontal(w.str.len_chars() for w in left) + k if k else pl.lit(0)
        end = text.str.len_chars() - m
        if m:
            end = end - pl.sum_horizontal(w.str.len_chars() for w in right)
        free = text.str.slice(start, end - start) if k or m else text
        found = [*zip(seg.left, left), (seg.free, free), *zip(seg.right, right)]
    out = []
    for token, expr in found:
        if not token.useful:
            continue
        before, after = token.strip
        if before:
            expr = expr.str.strip_prefix(before)
        if after:
            expr = expr.str.strip_suffix(after)
        out.append((token, expr))
    return out


def _distinct(value: pl.Series):
    """``value``'s distinct texts when they repeat enough to be read once each (DEDUPE_RATIO): a
    Series of them, or, by cut.c (``native.dictionary``), a pair (codes, firsts): row i holds the
    text of row firsts[codes[i]]. None when they do not repeat enough."""
    if value.len() < DEDUPE_ROWS:
        return _distinct_polars(value)
    lib = _native.library()
    if lib is None or value.dtype != pl.String:
        return _distinct_polars(value)
    # A column of texts that do not repeat (client ports) is told by its first rows: not hashed whole
    pair = _native.dictionary(lib, value, probe=DEDUPE_PROBE_ROWS, ratio=DEDUPE_RATIO)
    if pair is _native.SPREAD:
        return None
    if pair is None:
        return _distinct_polars(value)
    return pair if pair[1].len() * DEDUPE_RATIO <= value.len() else None


def _distinct_polars(value: pl.Series) -> pl.Series | None:
    distinct = value.unique() if value.len() >= DEDUPE_ROWS else value
    return distinct if distinct.len() * DEDUPE_RATIO <= value.len() else None


def _matches(regex: str, value: pl.Series) -> tuple[pl.Series, object]:
    """Whether each text of ``value`` matches ``regex``, tried once per distinct text when texts
    repeat (``_distinct``), and those distinct texts (for ``_extract_groups``)."""
    distinct = _distinct(value)
    if isinstance(distinct, tuple):
        codes, firsts = distinct
        return value.gather(firsts).to_frame("__v").select(pl.col("__v").str.contains(regex).gather(codes)).to_series(), \
            distinct
    if distinct is not None:
        table = distinct.to_frame("__v").with_columns(pl.col("__v").str.contains(regex).alias("__ok"))
        ok = value.to_frame("__v").join(table, on="__v", how="left", maintain_order="left", nulls_equal=True)
        return ok.to_series(1), distinct
    return value.str.contains(regex), None


def extract_groups(regex: str, groups, value: pl.Series) -> dict[str, pl.Series]:
    """The columns ``groups`` (output name -> its group names, coalesced) of ``regex`` on each text of
    ``value``; on each distinct text once when texts repeat (DEDUPE_RATIO)."""
    return _extract_groups(regex, groups, value, _distinct(value))


def _extract_groups(regex: str, groups, value: pl.Series, distinct) -> dict[str, pl.Series]:
    """``extract_groups``, on each of ``distinct`` (``value``'s distinct texts, ``_distinct``) once,
    or on each row."""
    outs = [_coalesce(names).alias(out) for out, names in dict(groups).items()]
    if isinstance(distinct, tuple):  # dictionary codes: read each text once, then gather
        codes, firsts = distinct  # (two polars queries, not one per column: each costs ~0.1 ms)
        table = value.gather(firsts).to_frame("__v").select(pl.col("__v").str.extract_groups(regex).struct.unnest())
        got = table.select(*(out.gather(codes) for out in outs))
        return {c: got.to_series(i) for i, c in enumerate(got.columns)}
    if distinct is not None:
        table = distinct.to_frame("__v").with_columns(pl.col("__v").str.extract_groups(regex).struct.unnest())
        table = table.select("__v", *outs)
        got = value.to_frame("__v").join(table, on="__v", how="left", maintain_order="left", nulls_equal=True)
        got = got.drop("__v")
    else:
        got = value.str.extract_groups(regex).struct.unnest().select(*outs)
    return {c: got.to_series(i) for i, c in enumerate(got.columns)}


def _coalesce(names) -> pl.Expr:
    return pl.coalesce([pl.col(n) for n in names]) if len(names) > 1 else pl.col(names[0])
