"""Address and cluster values that arrive whole, not cut from a text line (Istio's JSON encoding,
ztunnel's key=value pairs): their sub-field columns (``<column>_ip``, ``_port``, a cluster name's
direction, port, subset and host), read by the same grammar rules the text layouts use
(``address_value``, ``cluster_value`` of ``access.lark``)."""
from __future__ import annotations

import polars as pl

from . import splitplan as _splitplan
from . import subfields as _subfields
from .schema import ADDRESS_COLUMNS


class WholeValues:
    """The sub-fields of a frame's address and cluster columns (``split``), for one grammar."""

    def __init__(self, access) -> None:
        self.access = access
        self._address = {c: access.compile("address_value", c) for c in ADDRESS_COLUMNS}
        self._cluster = access.compile("cluster_value")
        self._tokens: dict[str, _splitplan.Token | None] = {}  # (_token: built at first use)

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
