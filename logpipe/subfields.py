"""A token's text to its sub-field columns: an address's ip and port, a cluster name's parts
(``logpipe/splitplan.py`` cuts the tokens; the grammar gives each token's regex and groups).

A token's regex runs once per distinct text when texts repeat (clusters, service addresses:
``_distinct``, by cut.c's dictionary codes where it is built), then the results are gathered back
to every row. An address whose texts hardly repeat (a client's ``ip:port``) is read from its right
(``read_tail``, ``splitplan.Tail``): its port after its last ``:``, its head's regex once per
distinct head. Which texts an exact regex matches is told by cut.c's walk of its DFA
(``exact_matches``) where that DFA reads exactly what the regex does.
"""
from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

import polars as pl

from . import native as _native

if TYPE_CHECKING:
    from .splitplan import Token

# A token's regex runs once per distinct value when values repeat at least this often on average
# (clusters and service addresses repeat; client ports do not), in batches of at least DEDUPE_ROWS
# values (below that, the join back costs more than the regex it saves).
DEDUPE_RATIO = 2
DEDUPE_ROWS = 8192
DEDUPE_PROBE_ROWS = 2048  # (a column whose first rows repeat too little is read row by row)

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
    outs = [coalesce(names).alias(out) for out, names in dict(groups).items()]
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


def coalesce(names) -> pl.Expr:
    """The first non-null of columns ``names`` (a regex's groups for one output: its alternatives)."""
    return pl.coalesce([pl.col(n) for n in names]) if len(names) > 1 else pl.col(names[0])
