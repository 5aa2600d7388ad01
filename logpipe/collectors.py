"""What collectors and container runtimes put around an access line, and what it says of where the
line came from (``parse.Parser.parse_series`` calls these before and after the layouts):

* prefixes (``prefix.lark``): ``kubectl logs --prefix/--timestamps``, stern, docker compose, and a
  node's container log file in the CRI format containerd and CRI-O write (``<time> stdout F ``);
  their pod, container and time become the ``pod``, ``container`` and ``received_at`` columns, and
  a prefix with nothing after it is a blank line;
* docker's json-file entries (``{"log":"<line>\\n","stream":…,"time":…}``): the line each holds;
* kubelet's file names (``/var/log/pods/<namespace>_<pod>_<uid>/<container>/0.log``): the pod and
  container of lines that name none;
* lines over 16 KiB, which both runtimes write in parts: rejects that say so, never rows.
"""
from __future__ import annotations

import functools
import re

import polars as pl

from . import fastpath as _fastpath
from . import subfields as _subfields
from .records import _reject

PARTIAL = ("part of a line over 16 KiB that the container runtime split (CRI tag P, containerd's"
           " max_container_log_line_size); logpipe does not join the parts")
PARTIAL_END = "last part of line {}, which the container runtime split (CRI tag P); logpipe does not join the parts"
# docker's json-file driver splits the same way: each part's "log" text but the last lacks its newline.
DOCKER_PARTIAL = ("part of a line over 16 KiB that docker split (its json-file entry's log text has no newline);"
                  " logpipe does not join the parts")
DOCKER_PARTIAL_END = "last part of line {}, which docker split (json-file); logpipe does not join the parts"
# How docker's json-file entries start (its Go encoder writes the keys in this order).
DOCKER_START = r'^\{"log":'
PROVENANCE = ("pod", "container", "received_at")


class Collectors:
    """The regexes of ``prefix.lark`` (its ``Rulebook``), compiled once for a parser."""

    def __init__(self, book) -> None:
        prefix = book.compile("line_prefix")
        # The prefix, then a body that does not start with a space (prefix.lark's header says why).
        self.prefix_rx = f"^(?P<__prefix>{prefix.pattern})[^ ]"
        self.groups = prefix.groups
        # A prefix and nothing more (kubectl's, the CRI format's: a blank line of the container's) is blank.
        self.blank_rx = "^" + book.compile("blank_prefix").pattern + r"\s*$"
        # A part of a line the container runtime split (CRI tag P): never a row (reject_partial).
        self.partial_rx = "^" + book.compile("partial_prefix").pattern
        # Each kind of prefix alone (line_prefix's alternatives, in order), for a batch whose prefixed
        # lines are all of one kind: its regex captures ~3x faster than all of them (split_prefix).
        self.kinds = [(f"^(?P<__prefix>{kind.pattern})[^ ]", kind.groups)
                      for kind in map(book.compile, _alternatives(book, "line_prefix"))]

    def split_prefix(self, df: pl.DataFrame) -> pl.DataFrame:
        """``df``'s lines (``line``) with their ``body`` after any prefix, its length, and the
        prefix's pod, container and time (null where it has none)."""
        has = starts_with(df["line"], self.prefix_rx)
        if has is None or not has.any():
            return df.with_columns(
                pl.col("line").alias("body"),
                pl.lit(0, dtype=pl.Int64).alias("prefix_len"),
                *(pl.lit(None, dtype=pl.String).alias(c) for c in PROVENANCE),
            )
        regex, groups = self._one_kind(df["line"] if has.all() else df["line"].filter(has))
        pre = df["line"].str.extract_groups(regex).struct.unnest()
        outs = [_subfields.coalesce(g).alias(out) for out, g in groups.items()]
        pre = pre.select(pl.col("__prefix"), *outs)
        for c in PROVENANCE:
            if c not in pre.columns:
                pre = pre.with_columns(pl.lit(None, dtype=pl.String).alias(c))
        plen = pre["__prefix"].str.len_chars().fill_null(0).cast(pl.Int64)
        return df.with_columns(
            pl.col("line").str.slice(plen).alias("body"),
            plen.alias("prefix_len"),
            pre["pod"], pre["container"], pre["received_at"],
        )

    def _one_kind(self, prefixed: pl.Series) -> tuple[str, dict]:
        """The regex and groups that read the prefixes of ``prefixed`` (lines that have one): those of
        the one kind every line has, when no earlier kind matches any of them (so that each line's
        reading is the one the whole regex, whose first matching alternative wins, gives); else the
        whole regex's. A check costs ~0.1–0.2 µs a prefixed line (cut.c walks it to its end); the
        capture it saves ~0.5 µs."""
        for regex, groups in self.kinds:
            hit = starts_with(prefixed, regex)
            if hit is None or not hit.any():
                continue
            return (regex, groups) if hit.all() else (self.prefix_rx, self.groups)
        return self.prefix_rx, self.groups

    def drop_blank(self, text: pl.DataFrame) -> tuple[pl.DataFrame, int]:
        """The lines the layouts left (``text``) but those that are a prefix and nothing more, and
        how many those were (blank lines)."""
        prefixed = text["line"].str.contains(self.blank_rx)
        if not prefixed.any():
            return text, 0
        return text.filter(~prefixed), int(prefixed.sum())

    def reject_partial(self, df: pl.DataFrame, rejects: list[dict]) -> pl.DataFrame:
        """A node's container log file (the CRI format: ``<time> stdout F <line>``) holds a line of
        over 16 KiB as parts: each but the last tagged ``P`` (``partial_prefix`` of prefix.lark; the
        body after such a prefix is never a layout's, so parts reach this step), the last ``F`` on the
        next line. Both become rejects saying so; returns the other lines. Where the parts fall in
        different batches, the last one is judged as any line (noise or malformed)."""
        partial = df["raw"].str.contains(self.partial_rx)
        if not partial.any():
            return df
        return _reject_parts(df, partial, pl.repeat(True, df.height, eager=True), PARTIAL, PARTIAL_END, rejects)


def unwrap_docker(df: pl.DataFrame, is_json: pl.Series, rejects: list[dict]) -> tuple[pl.DataFrame, pl.Series, int]:
    """docker's json-file lines (``{"log":"<line>\\n","stream":"stdout","time":"…"}``, a docker node's
    ``/var/lib/docker/containers/<id>/<id>-json.log``) as the line they hold: its text becomes the
    ``body`` that the layouts read (Istio's JSON encoding inside too), docker's time its
    ``received_at``; ``raw`` stays the line as written, and a reject's column counts in the text. A
    line over 16 KiB is written in parts, each but the last without its newline: the parts are
    rejects that say so (``DOCKER_PARTIAL``), never rows. ``is_json``: the lines whose body is
    JSON. Returns the lines (the others as they were), which of them are JSON now, and how many were
    blank (a blank line's entry: dropped)."""
    maybe = starts_with(df["body"], DOCKER_START)  # (cut.c's check: ~0.02 µs a line)
    if maybe is None:
        return df, is_json, 0
    body = df["body"]
    text, stream, time = _docker_fields(body, maybe)
    docker = (is_json & maybe & text.is_not_null() & stream.is_in(["stdout", "stderr"]) & time.is_not_null()).fill_null(False)
    if not docker.any():
        return df, is_json, 0
    blank = docker & text.str.ends_with("\n") & text.str.contains(r"^\s*$")  # (a part is never blank)
    if blank.any():
        df, docker, text, time = (x.filter(~blank) for x in (df, docker, text, time))
    part = docker & ~text.str.ends_with("\n").fill_null(False)
    df = df.with_columns(
        pl.when(docker).then(text.str.strip_suffix("\n")).otherwise(pl.col("body")).alias("body"),
        pl.when(docker & pl.col("received_at").is_null()).then(time).otherwise(pl.col("received_at")).alias("received_at"),
        pl.when(docker).then(0).otherwise(pl.col("prefix_len")).alias("prefix_len"),
    )
    if part.any():
        df = _reject_parts(df, part, docker, DOCKER_PARTIAL, DOCKER_PARTIAL_END, rejects)
    return df, df["body"].str.starts_with("{"), int(blank.sum())


def _reject_parts(df: pl.DataFrame, part: pl.Series, may_end: pl.Series, why: str, why_end: str,
                  rejects: list[dict]) -> pl.DataFrame:
    """The parts of lines a runtime split (``part``: each but the last), and the line right after a
    part that ends one (one of ``may_end``, not a part itself), as malformed rejects saying so
    (``why``, ``why_end`` naming the part before it); returns the other lines."""
    starts = df.filter(part)["line_number"]
    end = may_end & ~part & (df["line_number"] - 1).is_in(starts.implode())
    gone = part | end
    for ln, raw, is_part in df.filter(gone).select("line_number", "raw", part.filter(gone).alias("part")).iter_rows():
        rejects.append(_reject(ln, raw, why if is_part else why_end.format(ln - 1), "malformed"))
    return df.filter(~gone)


# An entry as docker writes it: {"log":"<text>","stream":"stdout","time":"<time>"}, keys in this
# order. Inside the escaped text every quote is written \", so the first '","stream":"' ends it.
DOCKER_MIDDLE = '","stream":"'
DOCKER_TAIL = r'^(?:stdout|stderr)","time":"[^"\\]*"\}$'
# The escapes an access line's text is read through by replacing them (each one backslash, which no
# backslash of the text can be taken for: that one is written \\, and leaves a backslash behind):
# a quote, and Go's HTML-safe & < > (docker writes them so). A text with any other: JSON's reading.
_DOCKER_ESCAPES = (('\\"', '"'), ("\\u0026", "&"), ("\\u003c", "<"), ("\\u003e", ">"))


def _docker_fields(body: pl.Series, maybe: pl.Series) -> tuple[pl.Series, pl.Series, pl.Series]:
    """The log text (unescaped), stream and time of each of ``body``'s docker entries (``maybe``:
    those that start as one), null elsewhere: what ``str.json_path_match`` of each key gives (~2 µs
    a line a key), read by cutting the entry where its keys are (~0.5 µs a line in all): an entry
    of another shape, or whose text holds an escape other than ``_DOCKER_ESCAPES``' and its last
    newline, is read by JSON's path queries."""
    at = body.str.find(DOCKER_MIDDLE, literal=True)
    escaped = body.str.slice(8, at - 8)  # (after '{"log":"')
    rest = body.str.slice(at + len(DOCKER_MIDDLE))
    shaped = (maybe & rest.str.contains(DOCKER_TAIL)).fill_null(False)
    stream = rest.str.slice(0, 6)
    time = rest.str.slice(16, rest.str.len_bytes() - 18)  # (between 'stdout","time":"' and '"}')
    newline = escaped.str.ends_with("\\n")
    text = pl.select(pl.when(newline).then(escaped.str.slice(0, escaped.str.len_bytes() - 2)).otherwise(escaped)).to_series()
    for old, new in _DOCKER_ESCAPES:
        if text.str.contains(old, literal=True).any():
            text = text.str.replace_all(old, new, literal=True)
    read = shaped & ~text.str.contains("\\", literal=True).fill_null(True)
    text = pl.select(pl.when(read).then(pl.when(newline).then(text + "\n").otherwise(text))).to_series()
    other = (maybe & ~read).fill_null(False)
    stream, time = (pl.select(pl.when(read).then(x)).to_series() for x in (stream, time))
    if other.any():  # (another key order, more keys, a rarer escape: JSON's own reading)
        where = other.arg_true()
        entries = body.gather(where)
        text = text.scatter(where, entries.str.json_path_match("$.log"))
        stream = stream.scatter(where, entries.str.json_path_match("$.stream"))
        time = time.scatter(where, entries.str.json_path_match("$.time"))
    return text, stream, time


# A node's container log files name their pod and container (kubelet's layout; rotated copies
# gain a time and may be compressed): /var/log/pods/<namespace>_<pod>_<pod uid>/<container>/<n>.log
# and its link /var/log/containers/<pod>_<namespace>_<container>-<container id>.log; also as a tar
# archive's file ("ARCHIVE:MEMBER", logpipe/archives.py), from the tree's root or from inside it.
_POD_LOG = re.compile(r"(?:^|[/:])[a-z0-9-]+_(?P<pod>[a-z0-9][a-z0-9.-]*)_[0-9a-f-]{32,36}/(?P<container>[a-z0-9][a-z0-9-]*)"
                      r"/[0-9]+\.log(?:\.[0-9]{8}-[0-9]{6})?(?:\.gz)?$")
_CONTAINER_LOG = re.compile(r"(?:^|[/:])(?P<pod>[a-z0-9][a-z0-9.-]*)_[a-z0-9-]+_(?P<container>[a-z0-9][a-z0-9-]*)"
                            r"-[0-9a-f]{64}\.log$")


@functools.lru_cache(maxsize=256)
def node_log_names(source: str) -> tuple[str, str] | None:
    """The pod and container a node's container log file is named after (``_POD_LOG``,
    ``_CONTAINER_LOG``), for lines whose own prefix names none; None for any other path."""
    m = _POD_LOG.search(source) or _CONTAINER_LOG.search(source)
    return (m["pod"], m["container"]) if m else None


def _alternatives(book, rule: str) -> list[str]:
    """The rules ``rule`` is a choice of (``a | b | c``, each one rule), in order; [] for any other
    shape (then no kind is read alone)."""
    names = []
    for expansion in book._ebnf[rule].children:
        items = getattr(expansion, "children", [])
        value = items[0] if len(items) == 1 and getattr(items[0], "data", None) == "value" else None
        symbol = value.children[0] if value is not None and len(value.children) == 1 else None
        if symbol is None or not hasattr(symbol, "is_term") or symbol.is_term:
            return []
        names.append(symbol.name)
    return names


def starts_with(lines: pl.Series, regex: str) -> pl.Series | None:
    """Which of ``lines`` regex ``^R`` matches (``str.contains``), or None when none does: by cut.c
    when the batch is large and the regex has an exact DFA (``subfields.exact_matches``; of the
    prefixes' regex, Istio lines leave it at their second byte: ~0.01 µs a line, ~0.14 µs by polars)."""
    got = None
    if lines.len() >= _fastpath.SPLIT_MIN_ROWS and regex.startswith("^"):  # any text after R: polars' "$" ends the text
        got = _subfields.exact_matches(regex + r"(?:[^\n]|\n)*$", lines)
    if got is None:
        return lines.str.contains(regex)
    return None if got is _subfields.NONE else got
