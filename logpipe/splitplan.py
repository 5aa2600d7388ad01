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

The plan's runners live apart: ``logpipe/nativecut.py`` runs plans in cut.c (their arrays, the
tokens' DFAs, typed columns), ``logpipe/subfields.py`` reads a token's sub-fields from its text
(an address from its right, each distinct text's regex once). Without cut.c, ``extract`` cuts with
polars' string kernels.
"""
from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from . import grammar as _grammar
from . import native as _native
from . import ruleregex as _ruleregex
from . import steps as _steps
from . import nativecut as _nativecut
from .nativecut import QUOTE, SPACE, Types
from .records import null_empty
from . import subfields as _subfields


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
    keep = _ruleregex.SUBFIELD_RULES
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
    done = _nativecut.run(lib, (plan,), body, False, types) if lib is not None else None
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
    done = _nativecut.run(lib, plans, body, True, types, glue) if lib is not None else None
    if done is None:
        return None
    easy, columns = _cut_columns(done[:4])
    return easy, columns, *done[4:]


def checkable(plans: tuple[SplitPlan, ...], types: "Types | None" = None) -> tuple[SplitPlan, ...]:
    """The longest start of ``plans`` that ``cut_layouts`` can run (each plan's tokens have DFAs, and
    their columns can be shared: ``nativecut.prepare``); empty when none can (no cut.c)."""
    for k in range(len(plans), 0, -1):
        if _native.library() is not None and _nativecut.prepare(plans[:k], types, True) is not None:
            return plans[:k]
    return ()


def nulled(plans: tuple[SplitPlan, ...], types: "Types") -> frozenset:
    """The string columns that come out of ``cut_layouts`` of ``plans`` with ``-`` and empty text null."""
    cut = _nativecut.prepare(plans, types, True)
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
            got = _subfields.read_tail(token, value, parts[i] if parts else None) if token.tail is not None else \
                _subfields.extract_groups(token.regex, token.groups, value)
            for name, column in got.items():
                _add(columns, name, column)
    return pl.DataFrame(columns, height=height)


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
