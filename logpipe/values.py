"""Address and cluster values that arrive whole, not cut from a text line (Istio's JSON encoding,
ztunnel's key=value pairs): their sub-field columns (``<column>_ip``, ``_port``, a cluster name's
direction, port, subset and host), read by the same grammar rules the text layouts use
(``address_value``, ``cluster_value`` of ``access.lark``); and whether a JSON line's values have the
shapes the text layouts read (``check``)."""
from __future__ import annotations

import polars as pl

from . import splitplan as _splitplan
from . import subfields as _subfields
from .records import _reject
from .schema import ADDRESS_COLUMNS

# The columns whose value has a shape of Envoy's (a method, a protocol, a count, the comma-joined short
# flags, an address with its port): a JSON line's value of one must have it as a text line's must, by
# the same rule of access.lark, or be null, "-" or empty. polars' cast reads "-1" and "+5" as counts,
# and the flags' split and the address's regex kept "UF, URX" (flag ' URX'), "uf" and "10.0.0.1" (no
# _ip), a method "GET /x" and a protocol "http 1.1", which the text layouts reject.
SHAPED = ("method", "protocol", "response_code", "response_flags", "bytes_received", "bytes_sent", "duration",
          "upstream_service_time", *ADDRESS_COLUMNS)
# The columns whose values are words: each distinct one's regex tells (no cheaper test tells most).
_WORDS = ("method", "protocol", "response_flags")
# A JSON format's %RESPONSE_FLAGS_LONG% (its flags' long names, comma-joined): the rule a text format's
# line follows (formats._SHAPES' "flags_long"), of format.lark's terminal.
_LONG_FLAGS_RULE = "%import .format (FLAGS_LONG)\n%import .common (DASH)\nresponse_flags_long: FLAGS_LONG | DASH\n"


def _not_digits(text: pl.Expr) -> pl.Expr:
    """Whether a text is not digits alone: polars reads an unsigned int of digits, and of a "+" and
    digits, nothing else (tests/test_json_shapes.py; ~0.8 ms for 50k texts, strip_chars' ~1.4)."""
    return text.cast(pl.UInt64, strict=False).is_null() | text.str.starts_with("+")


class WholeValues:
    """The sub-fields of a frame's address and cluster columns (``split``), for one grammar."""

    def __init__(self, access) -> None:
        self.access = access
        self._address = {c: access.compile("address_value", c) for c in ADDRESS_COLUMNS}
        self._cluster = access.compile("cluster_value")
        self._tokens: dict[str, _splitplan.Token | None] = {}  # (_token: built at first use)
        self._shapes: dict[str, tuple[str, str]] | None = None  # (_shape: built at first use)

    def check(self, frame: pl.DataFrame, rejects: list[dict], keys: dict[str, str] | None = None,
              counts: frozenset = frozenset(), skip: frozenset = frozenset(), long_flags: bool = False) -> pl.DataFrame:
        """``frame`` (JSON lines' text columns, ``split``) without the lines whose value of a SHAPED
        column, or of a count column of ``counts`` (a JSON format's extra ones), has not its shape:
        those go to ``rejects``, malformed, the reason naming the key (``keys``: a column's key in the
        lines of a JSON format, whose ``log_format`` is ``keys["log_format"]``) and the value. Columns
        in ``skip`` are not checked; nor are ztunnel's lines (read from its own fields, as its text
        lines are). ``long_flags``: the format logs %RESPONSE_FLAGS_LONG%, whose names its
        response_flags must have (the layout's ``prepare`` makes them the short codes after)."""
        # (in SHAPED's order: a line's reason names the same key whichever reading read it)
        names = [c for c in (*SHAPED, *sorted(counts)) if c in frame.columns and c not in skip]
        if not names or not frame.height:
            return frame
        # The shape's regex runs only on the values no cheaper test tells, once each distinct one: a value
        # whose address has its _ip matched the address's regex whole (``split``'s), a count of digits
        # alone is INT, and null is none. (The regexes on every value cost ~25 ms a batch of 50k Istio
        # JSON lines, ten columns a line; this ~7 ms, of a parse's ~100.)
        unsure = frame.select(*(
            (pl.col(c).is_not_null() & (pl.col(f"{c}_ip").is_null() if c in ADDRESS_COLUMNS else
                                        ~pl.col(c).cast(pl.String).is_in(["-", ""]) if c in _WORDS else
                                        _not_digits(pl.col(c).cast(pl.String)))).alias(c) for c in names))
        theirs = frame["log_format"] == "ztunnel_json" if "log_format" in frame.columns else None
        miss = {}
        for c in names:
            rows = unsure[c].arg_true()
            if theirs is not None and rows.len():
                rows = rows.filter(~theirs.gather(rows))
            if rows.len():
                texts = frame[c].cast(pl.String).gather(rows)
                distinct = texts.unique()  # (flags and an upstream's envoy:// address repeat: ~14k texts, ~300 distinct)
                shape = self._shape("response_flags_long" if long_flags and c == "response_flags" else c)
                fits = distinct.str.contains(shape[0]) | distinct.is_in(["-", ""])
                if fits.all():  # (the usual batch: every method, protocol, flags… fits; no look-up of each row)
                    continue
                miss[c] = set(rows.filter(~texts.is_in(distinct.filter(fits).implode())).to_list())
        bad_rows = sorted(set().union(*miss.values()))
        if not bad_rows:
            return frame
        keys = keys or {}
        for i in bad_rows:
            row = frame.row(i, named=True)
            c = next(c for c in names if i in miss.get(c, ()))
            key = keys.get(c, c) if row.get("log_format") == keys.get("log_format") else c
            what = f'key "{key}"' + (f" ({c})" if key != c else "")
            shape = self._shape("response_flags_long" if long_flags and c == "response_flags" else c)
            rejects.append(_reject(row["line_number"], row["raw"],
                                   f"invalid value: {what} expected {shape[1]}, got {str(row[c])[:40]!r}",
                                   "malformed"))
        return frame.filter(~pl.int_range(frame.height).is_in(bad_rows))

    def _shape(self, column: str) -> tuple[str, str]:
        """A SHAPED column's anchored regex (its access.lark rule; a JSON format's extra count
        column: a count's) and what it expects, in the words of a text line's reason."""
        if self._shapes is None:
            from .grammar import rule_symbol
            from .steps import ADDRESS_EXPECTS, describe_first

            rules = {c: "address_value" if c in ADDRESS_COLUMNS else c for c in SHAPED}
            self._shapes = {c: (f"^{self.access.compile(rule, c if rule != c else None).pattern}$",
                                ADDRESS_EXPECTS if c in ADDRESS_COLUMNS else describe_first(self.access, rule_symbol(rule)))
                            for c, rule in rules.items()}
        if column == "response_flags_long" and column not in self._shapes:  # (only a format that logs them:
            from .grammar import Rulebook, rule_symbol  # its grammar costs ~27 ms to read)
            from .resources import resource_dir
            from .steps import describe_first

            book = Rulebook(_LONG_FLAGS_RULE, ["response_flags_long"], source="<response_flags_long>",
                            import_paths=[str(resource_dir("grammars"))])
            self._shapes[column] = (f"^{book.compile(column).pattern}$", describe_first(book, rule_symbol(column)))
        return self._shapes.get(column) or self._shapes["bytes_received"]  # (a count: INT or '-')

    def split(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` with the sub-field columns of each address and cluster column it has."""
        for col, compiled in [*self._address.items(), ("upstream_cluster", self._cluster)]:
            if col not in frame.columns:
                continue
            value = frame[col].cast(pl.String)  # (a column null in every row of the batch has polars' Null type)
            token = self._token(col) if col != "upstream_cluster" else None
            if token is not None:  # an address read from its right, as the text layouts' (a client's port is unique)
                got = pl.DataFrame({k: v for k, v in _subfields.read_tail(token, value).items() if k != col})
            else:
                got = pl.DataFrame(_subfields.extract_groups(f"^{compiled.pattern}$", compiled.groups, value))
            if col == "upstream_cluster":  # keep the value as sent when it has no cluster shape
                got = got.with_columns(pl.coalesce(pl.col(col), frame[col]).alias(col))
            else:
                got = got.drop(col, strict=False)
            frame = frame.drop([c for c in got.columns if c in frame.columns]).hstack(got)
        return frame

    def _token(self, column: str) -> "_splitplan.Token | None":
        """The split plans' token of an address column alone, when it has a Tail (read from its
        right) and the same sub-fields as ``address_value``; else None (its regex reads it)."""
        if column not in self._tokens:
            try:
                token = _splitplan.column_token(self.access, column)
            except (KeyError, ValueError):  # (a custom grammar without the column's own rule)
                token = None
            subs = set(self._address[column].groups)
            self._tokens[column] = token if token is not None and token.tail is not None and \
                {name for name, _ in token.groups} == subs | {column} else None
        return self._tokens[column]
