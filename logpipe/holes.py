"""Holes: runs of NUL bytes where a file lost its data. A NUL byte is no log text (Envoy refuses it in
headers and paths, JSON escapes it): a run of them at a line's start, or of HOLE_MIN or more inside
one, is a hole. logrotate's copytruncate under a writer that does not append (`envoy > access.log`,
`kubectl logs -f > f`) leaves one at the file's start, as long as the file was: the readers skip it
(``sources.iter_byte_chunks``, ``iter_file_ranges``, the stream's reader). A crash leaves one where
the written data had not reached the disk, before the lines written after it: ``fill`` (in
``parse.Parser.parse_series``). A file is only refused as binary for NUL bytes no hole explains
(``binary``, ``sources.inspect``), and a hole at a file's start is said (``note``).

Polars is imported by ``fill`` alone: the readers import this module before the workers start.
"""
from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import polars as pl

HOLE = "\x00"
# A hole is at least this long, or starts a line; shorter runs inside a line are a binary file's
# (UTF-16 without its byte-order mark: one a character), or, in a line that is otherwise text, that
# line's text.
HOLE_MIN = 16
_NULS = re.compile(rb"\x00+")
_INNER_HOLE = re.compile(f"\x00{{{HOLE_MIN},}}")
# The NUL bytes at a file's start that sources.inspect reads past before it gives up looking (a longer hole,
# of zeros written out rather than a sparse one, is taken for one: its text is judged as it is read).
HOLE_SCAN_BYTES = 64 << 20


def after_hole(f: BinaryIO, size: int) -> tuple[int, bytes]:
    """The NUL bytes ``f`` starts with (how many) and its first ``size`` bytes after them (b"" when it
    is all NULs, or when they run on past HOLE_SCAN_BYTES)."""
    try:
        f.seek(os.lseek(f.fileno(), 0, os.SEEK_DATA))  # past a sparse hole's blocks without reading them
    except (OSError, AttributeError):  # (no data at all: ENXIO; no SEEK_DATA here)
        f.seek(0)
    for _ in range(HOLE_SCAN_BYTES >> 20):
        at = f.tell()
        chunk = f.read(1 << 20)
        kept = chunk.lstrip(b"\x00")
        if kept:
            return at + len(chunk) - len(kept), kept[:size] + f.read(max(0, size - len(kept)))
        if not chunk:
            return at, b""
    return f.tell(), b""


def note(name: str, size: int) -> str:
    """What a user is told of a hole of ``size`` bytes at the start of input ``name``."""
    return (f"{name}: starts with a hole of {size:,} NUL bytes, skipped (logrotate's copytruncate under a writer "
            "that does not append: the lines written between its copy and its truncation are in neither file)")


BINARY_HINT = "binary file (NUL bytes), not a text log; leave it out of the inputs"  # (what binary() finds)


def binary(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes, from a line's start) holds NUL bytes that no hole
    explains: a run shorter than HOLE_MIN after some text, not cut short by the end of ``head``."""
    for m in _NULS.finditer(head):
        a, b = m.span()
        if b - a < HOLE_MIN and a and head[a - 1] != 0x0A and b < len(head):
            return True
    return False


def fill(df: "pl.DataFrame", rejects: list[dict]) -> "pl.DataFrame":
    """A batch's lines (``line``, ``raw``) past their holes: one at a line's start is no part of the
    line, which is read from after it (its ``raw`` too); one after some text cut that line short: a
    reject that says so (the text after the hole, another line's start, is kept in it). A line that
    was only a hole is then blank."""
    import polars as pl

    from .records import _reject

    nul = df["line"].str.contains(HOLE, literal=True)
    if not nul.any():
        return df
    df = df.with_columns(pl.when(nul).then(pl.col(c).str.strip_chars_start(HOLE)).otherwise(pl.col(c)).alias(c)
                         for c in ("raw", "line"))
    inside = nul & df["line"].str.contains(_INNER_HOLE.pattern)
    if not inside.any():
        return df
    for ln, raw, line in df.filter(inside).select("line_number", "raw", "line").iter_rows():
        at, end = _INNER_HOLE.search(line).span()
        why = (f"column {at + 1}: a hole of {end - at:,} NUL bytes cuts the line short (data the file lost: a "
               "crash, or a rewrite while it was written); the text after the hole is kept here")
        rejects.append(_reject(ln, raw, why, "malformed", at + 1))
    return df.filter(~inside)
