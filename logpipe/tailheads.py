"""`tail -f` of several files: its header (noise.lark's ``tail_header``, ``==> FILE <==``) says which
file the lines after it come from, up to the next header. When FILE is a node's container log
(``collectors.node_log_names``: ``/var/log/pods/NAMESPACE_POD_UID/CONTAINER/0.log``), it names the
pod and container of those lines, which a CRI line does not name itself:

    tail -F /var/log/pods/*/istio-proxy/0.log | logpipe stream

Only an input that starts with a header (tail's output of several files does) is read so: its lines
are numbered and cut into batches as any input's, so a header names the lines after it in its batch,
and the header in effect where a batch starts is the reader's to carry (``Parser.parse_series(header=)``,
"" at the input's start, None for any other input; ``ParsedBatch.header``): a sequential reader
passes each batch's on to the next, the workers' byte ranges get theirs from the parent's reading
of the file (``sources.iter_file_ranges``), and a file read on from where an earlier ingest stopped
gets the one before that point (``sources.header_at``). The header line itself is noise, as before.
"""
from __future__ import annotations

import ast

import polars as pl

from .collectors import node_log_names

# What a reader of bytes looks for (sources.header_at, iter_file_ranges), the grammar's start of a header.
LOOK = b"==> "


class TailHeads:
    """The headers of ``noise`` (a Rulebook with ``tail_header``): which lines they name."""

    def __init__(self, noise) -> None:
        self.rx = noise.regex("tail_header")
        self.head, self.tail = _literal_ends(noise, "tail_header")
        assert LOOK.decode() == self.head, "sources' look for a header is the grammar's start of one"

    def file(self, line: str | None) -> str | None:
        """The file header ``line`` names, or None when it is no header (or None)."""
        if line is None or not line.startswith(self.head) or not pl.Series([line]).str.contains(self.rx)[0]:
            return None
        return line[len(self.head):len(line) - len(self.tail)]

    def fill(self, df: pl.DataFrame, header: str) -> tuple[pl.DataFrame, str]:
        """``df``'s lines (``body``) with the pod and container their header's file names where
        their prefix named none; ``header``: the header line in effect before the first line ("":
        none yet; a reader's look, so the grammar is asked here). Returns the lines and the header
        line in effect after them."""
        start = self.file(header)
        is_head = df["body"].str.starts_with(self.head)
        if is_head.any():
            is_head = is_head & df["body"].str.contains(self.rx)
        if not is_head.any():
            names = node_log_names(start) if start is not None else None
            if names is None:
                return df, header
            return df.with_columns(pl.col("pod").fill_null(names[0]), pl.col("container").fill_null(names[1])), header
        file = pl.when(pl.col("__head")).then(pl.col("body").str.slice(len(self.head)).str.head(-len(self.tail)))
        file = file.forward_fill()
        file = file.fill_null(start) if start is not None else file
        files = df.select("body", is_head.alias("__head")).select(file).to_series()
        return _named(df, files), df["body"].filter(is_head)[-1]


def _named(df: pl.DataFrame, files: pl.Series) -> pl.DataFrame:
    """``df`` with each line's pod and container those its file (``files``) names, where it had none."""
    named = {f: node_log_names(f) for f in files.unique().drop_nulls().to_list()}
    keys = [f for f, n in named.items() if n is not None]
    if not keys:
        return df
    pods = pl.Series([named[f][0] for f in keys], dtype=pl.String)
    containers = pl.Series([named[f][1] for f in keys], dtype=pl.String)
    return df.with_columns(
        pl.coalesce(pl.col("pod"), files.replace_strict(keys, pods, default=None)).alias("pod"),
        pl.coalesce(pl.col("container"), files.replace_strict(keys, containers, default=None)).alias("container"),
    )


def _literal_ends(book, rule: str) -> tuple[str, str]:
    """The literal texts rule ``rule`` (one expansion) starts and ends with."""
    (expansion,) = book._ebnf[rule].children
    ends = []
    for item in (expansion.children[0], expansion.children[-1]):
        lit = item.children[0]
        if getattr(lit, "data", None) != "literal" or not str(lit.children[0]).startswith('"'):
            raise ValueError(f"rule {rule} must start and end with a literal text")
        ends.append(ast.literal_eval(str(lit.children[0])))
    return ends[0], ends[1]
