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
gets the one before that point (``header_at``). The header line itself is noise, as before.

The readers' part (bytes: ``first_header``, ``last_header``, ``header_at``) imports no polars: the
parent reads inputs before its workers start.
"""
from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from .unpack import detect_compression

if TYPE_CHECKING:
    import polars as pl

    from .sources import Input

# What a reader of bytes looks for (the grammar's start of a header, TailHeads checks it): an input
# is looked at only when it starts with one, as tail's output of several files does.
LOOK = b"==> "
HEADER_SCAN = 1 << 20


def first_header(body: "bytes | bytearray") -> str | None:
    """"" when ``body``, an input's first bytes, starts like `tail -f`'s header (then its headers
    name the lines after them: ``TailHeads``), else None."""
    return "" if body[:len(LOOK)] == LOOK else None


def last_header(body: "bytes | bytearray", end: int | None = None) -> str | None:
    """The last line of ``body[:end]`` that starts like `tail -f`'s header (``LOOK``), or None."""
    end = len(body) if end is None else end
    k = _last_header_start(body, end)
    if k is None:
        return None
    stop = body.find(b"\n", k, end)
    return bytes(body[k:stop if stop >= 0 else end]).rstrip(b"\r").decode("utf-8", "replace")


def _last_header_start(body: "bytes | bytearray", end: int) -> int | None:
    at = end
    while (k := body.rfind(LOOK, 0, at)) >= 0:
        if k == 0 or body[k - 1] == 0x0A:
            return k
        at = k
    return None


def header_at(inp: "Input", offset: int) -> str | None:
    """The header line of `tail -f` in effect at ``offset`` of a plain file that starts with one (the
    last before it), or None (at the start too: the first bytes tell, ``first_header``): where a
    read on from ``offset`` starts (ingest of a grown file)."""
    if offset <= 0 or inp.is_stream or detect_compression(_head(inp.path)) != "plain":
        return None
    with open(inp.path, "rb") as f:
        if f.read(len(LOOK)) != LOOK:
            return None
        pos = offset
        while pos > 0:  # back a block at a time: the lines that start in [lo, pos)
            lo = max(0, pos - HEADER_SCAN)
            base = max(0, lo - 1)  # (the byte before tells whether a line starts at lo)
            f.seek(base)
            block = f.read(min(offset, pos + len(LOOK) - 1) - base)  # (a look that starts before pos, whole)
            if lo:
                block = (b"\n" if block[:1] == b"\n" else b"x") + block[1:]
            k = _last_header_start(block, len(block))
            while k is not None and base + k >= pos:  # (one the later block holds)
                k = _last_header_start(block, k)
            if k is not None:
                f.seek(base + k)
                return f.readline().rstrip(b"\r\n").decode("utf-8", "replace")
            pos = lo
    return None


def _head(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(64)


class TailHeads:
    """The headers of ``noise`` (a Rulebook with ``tail_header``): which lines they name."""

    def __init__(self, noise) -> None:
        self.rx = noise.regex("tail_header")
        self.head, self.tail = _literal_ends(noise, "tail_header")
        assert LOOK.decode() == self.head, "the readers' look for a header is the grammar's start of one"

    def file(self, line: str | None) -> str | None:
        """The file header ``line`` names, or None when it is no header (or None)."""
        import polars as pl

        if line is None or not line.startswith(self.head) or not pl.Series([line]).str.contains(self.rx)[0]:
            return None
        return line[len(self.head):len(line) - len(self.tail)]

    def fill(self, df: "pl.DataFrame", header: str) -> "tuple[pl.DataFrame, str]":
        """``df``'s lines (``body``) with the pod and container their header's file names where
        their prefix named none; ``header``: the header line in effect before the first line ("":
        none yet; a reader's look, so the grammar is asked here). Returns the lines and the header
        line in effect after them."""
        import polars as pl

        start = self.file(header)
        is_head = df["body"].str.starts_with(self.head)
        if is_head.any():
            is_head = is_head & df["body"].str.contains(self.rx)
        if not is_head.any():
            names = _names(start) if start is not None else None
            if names is None:
                return df, header
            return df.with_columns(pl.col("pod").fill_null(names[0]), pl.col("container").fill_null(names[1])), header
        file = pl.when(pl.col("__head")).then(pl.col("body").str.slice(len(self.head)).str.head(-len(self.tail)))
        file = file.forward_fill()
        file = file.fill_null(start) if start is not None else file
        files = df.select("body", is_head.alias("__head")).select(file).to_series()
        return _named(df, files), df["body"].filter(is_head)[-1]


def _named(df: "pl.DataFrame", files: "pl.Series") -> "pl.DataFrame":
    """``df`` with each line's pod and container those its file (``files``) names, where it had none."""
    import polars as pl

    named = {f: _names(f) for f in files.unique().drop_nulls().to_list()}
    keys = [f for f, n in named.items() if n is not None]
    if not keys:
        return df
    pods = pl.Series([named[f][0] for f in keys], dtype=pl.String)
    containers = pl.Series([named[f][1] for f in keys], dtype=pl.String)
    return df.with_columns(
        pl.coalesce(pl.col("pod"), files.replace_strict(keys, pods, default=None)).alias("pod"),
        pl.coalesce(pl.col("container"), files.replace_strict(keys, containers, default=None)).alias("container"),
    )


def _names(path: str) -> "tuple[str, str] | None":
    from .collectors import node_log_names  # (polars: a lane's)

    return node_log_names(path)


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
