"""What collectors and container runtimes put around an access line, and what it says of where the
line came from (``parse.Parser.parse_series`` calls these before and after the layouts):

* prefixes (``prefix.lark``): ``kubectl logs --prefix/--timestamps``, stern, docker compose, and a
  node's container log file in the CRI format containerd and CRI-O write (``<time> stdout F ``);
  their pod, container and time become the ``pod``, ``container`` and ``received_at`` columns, and
  a prefix with nothing after it is a blank line;
* docker's json-file entries (``{"log":"<line>\\n","stream":…,"time":…}``): the line each holds;
* kubelet's file names (``/var/log/pods/<namespace>_<pod>_<uid>/<container>/0.log``): the pod and
  container of lines that name none;
* lines over 16 KiB, which both runtimes write in parts: the CRI format's joined into the line
  (``join_parts``; the file readers keep a line's parts in one batch: ``sources.whole_runs``),
  docker's rejects that say so, never rows.
"""
from __future__ import annotations

import functools
import re

import polars as pl

from . import fastpath as _fastpath
from . import subfields as _subfields
from .batches import same_input
from .sources import JOIN_LOOKAHEAD
from .records import _reject

PARTIAL = ("part of a line over 16 KiB that the container runtime split (CRI tag P, containerd's"
           " max_container_log_line_size), whose last part (tag F) did not follow it here: not joined")
# docker's json-file driver splits the same way: each part's "log" text but the last lacks its newline.
DOCKER_PARTIAL = ("part of a line over 16 KiB that docker split (its json-file entry's log text has no newline),"
                  " whose last part did not follow it here: not joined")
# A log collector's JSON record of a line (Collectors.envelope): the key of the line's text, then of
# its time, in the order tried; an object is a record of a line when it also has one of a collector's
# own keys (_signed): kubernetes metadata, Vector's source_type, Filebeat's @timestamp, Fluent Bit's
# CRI tag (_p), a stream, or Fluent Bit's epoch date.
ENVELOPE_TEXT = ("log", "message")
ENVELOPE_TIME = ("time", "timestamp", "@timestamp")


def _signed(obj: dict) -> bool:
    return (isinstance(obj.get("kubernetes"), dict) or obj.get("source_type") is not None
            or obj.get("@timestamp") is not None or obj.get("_p") in ("P", "F") or obj.get("stream") in ("stdout", "stderr")
            or (isinstance(obj.get("date"), (int, float)) and "log" in obj))


def _name(where, key: str) -> str | None:
    value = where.get(key) if isinstance(where, dict) else None
    return value if isinstance(value, str) and value else None


_ENVELOPE_SCHEMA = {"line_number": pl.Int64, "raw": pl.String, "body": pl.String, "pod": pl.String,
                    "container": pl.String, "received_at": pl.String}
_ENVELOPE_TYPE = pl.Struct({
    **{k: pl.String for k in (*ENVELOPE_TEXT, *ENVELOPE_TIME, "stream", "_p", "source_type")}, "date": pl.Float64,
    "kubernetes": pl.Struct({"pod_name": pl.String, "container_name": pl.String,
                             "pod": pl.Struct({"name": pl.String}), "container": pl.Struct({"name": pl.String})}),
})


def envelope_lines(held: list) -> tuple[pl.DataFrame, int]:
    """The lines that collectors' records held (``Collectors.envelope``: per row its line number,
    the record as written, its line, pod, container, time; or frames of such rows,
    ``Collectors.envelopes``) as a batch's lines are: ``body`` the line, ``raw`` and ``line`` the
    record (a reject keeps it as written, its column counted in the line), with their pod,
    container and time; and how many held a blank line (dropped)."""
    rows = [x for x in held if isinstance(x, tuple)]
    frames = [x.cast(_ENVELOPE_SCHEMA) for x in held if isinstance(x, pl.DataFrame)]
    if rows:
        frames.append(pl.DataFrame(rows, schema=_ENVELOPE_SCHEMA, orient="row"))
    df = frames[0] if len(frames) == 1 else pl.concat(frames).sort("line_number")
    blank = df["body"].str.contains(r"^\s*$")
    df = df.filter(~blank) if blank.any() else df
    return df.with_columns(pl.col("raw").alias("line"), pl.lit(0, dtype=pl.Int64).alias("prefix_len")), int(blank.sum())


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
        # A part of a line the container runtime split (CRI tag P): joined with the parts after it
        # (join_parts), or, when its last part is not in the batch, a reject (reject_partial).
        partial = book.compile("partial_prefix")
        self.partial_rx = "^" + partial.pattern
        self._part = re.compile(self.partial_rx)
        self._whole = re.compile("^" + book.compile("cri_prefix").pattern)
        self._time = re.compile("^" + book.compile("received_at").pattern + "$")  # (an envelope's time)
        # Each kind of prefix alone (line_prefix's alternatives, in order), for a batch whose prefixed
        # lines are all of one kind: its regex captures ~3x faster than all of them (split_prefix).
        self.kinds = [(f"^(?P<__prefix>{kind.pattern})[^ ]", kind.groups)
                      for kind in map(book.compile, _alternatives(book, "line_prefix"))]

    def split_prefix(self, df: pl.DataFrame) -> tuple[pl.DataFrame, tuple[int, ...]]:
        """``df``'s lines (``line``) with their ``body`` after any prefix, its length, and the
        prefix's pod, container and time (null where it has none); the parts of a line the runtime
        split are joined first (``join_parts``: the line numbers of the parts joined to an earlier one)."""
        has = starts_with(df["line"], self.prefix_rx)
        if has is None or not has.any():
            return df.with_columns(
                pl.col("line").alias("body"),
                pl.lit(0, dtype=pl.Int64).alias("prefix_len"),
                *(pl.lit(None, dtype=pl.String).alias(c) for c in PROVENANCE),
            ), ()
        df, joined = self.join_parts(df)  # (a part's prefix is a prefix too: it starts with a time)
        if joined:
            has = starts_with(df["line"], self.prefix_rx)
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
        ), joined

    def join_parts(self, df: pl.DataFrame) -> tuple[pl.DataFrame, tuple[int, ...]]:
        """A node's container log file (the CRI format) holds a line of over 16 KiB as parts: each
        but the last tagged ``P`` (``partial_prefix``), the last ``F``, the next lines of the same
        stream (stdout or stderr: the other's lines may come between). Each such line whole, as the
        container wrote it: on its first part's row (``line_number``), its last part's prefix (its
        time: when the line was whole) before the parts' texts; ``raw`` is that line too. Returns
        the lines and the numbers of the parts joined to an earlier one (dropped: counted as joined).
        Parts whose last part is not in ``df`` (nor within JOIN_LOOKAHEAD lines) stay as they are:
        ``reject_partial`` says so."""
        part = starts_with(df["line"], self.partial_rx)
        if part is None or not part.any():
            return df, ()

        def tags(rows):  # (from each line's start: a part is ~16 KiB, its start says all)
            return [(True, *tag) if tag is not None else (False, None, False)
                    for tag in map(self.cri_tag, df["line"].gather(rows).str.slice(0, 64).to_list())]

        runs = _runs(part.arg_true().to_list(), df.height, df["line_number"], tags)
        if not runs:
            return df, ()
        texts = iter(df["line"].gather([i for run in runs for i in run]).to_list())
        whole = []
        for run in runs:
            lines = [next(texts) for _ in run]
            bodies = [x[(self._part.match(x) or self._whole.match(x)).end():] for x in lines]
            whole.append(lines[-1][:len(lines[-1]) - len(bodies[-1])] + "".join(bodies))
        at, keep, numbers = _run_rows(df, runs)
        text = df["line"].scatter(at, pl.Series(whole, dtype=pl.String))
        return df.with_columns(text.alias("line"), text.alias("raw")).filter(keep), numbers

    def envelope(self, obj: dict) -> tuple[str, str | None, str | None, str | None] | None:
        """A log collector's JSON record of a line (``ENVELOPE_TEXT``, ``_signed``), as an agent
        writes it to a file or an object store: Fluent Bit and Fluentd (``log``, their
        ``kubernetes`` filter's ``pod_name``/``container_name``, ``time``), Vector
        (``message``, ``kubernetes.pod_name``, ``timestamp``), Filebeat and Logstash (``message``,
        ``kubernetes.pod.name``, ``@timestamp``): ``(the line, pod, container, time)``, the time only
        where it reads as ``received_at`` does; None for any other object. (``jsonlog`` asks only of
        objects that are no access record.)"""
        text = next((obj[k] for k in ENVELOPE_TEXT if isinstance(obj.get(k), str)), None)
        if text is None or not _signed(obj):
            return None
        k8s = obj.get("kubernetes") if isinstance(obj.get("kubernetes"), dict) else {}
        pod = _name(k8s, "pod_name") or _name(k8s.get("pod"), "name")
        container = _name(k8s, "container_name") or _name(k8s.get("container"), "name")
        time = next((obj[k] for k in ENVELOPE_TIME if isinstance(obj.get(k), str) and self._time.match(obj[k])), None)
        return text[:-1] if text.endswith("\n") else text, pod, container, time

    def envelopes(self, df: pl.DataFrame) -> tuple[pl.DataFrame | None, pl.DataFrame]:
        """``envelope`` of the JSON lines ``df`` (``body``) in one polars pass (``json_decode`` of
        the keys it reads: ~3 µs a line, against ~25 by json.loads and Python): the records of a
        line among them, as ``envelope_lines`` takes them, and the other lines. Only where the line
        is written as a text (``"log":"``, ``"message":"``: json_decode would read a number as
        text too); None and ``df`` when polars cannot decode them all with these types (another
        shape of a key: each line is then read by ``envelope``)."""
        body = df["body"]
        try:
            got = body.str.json_decode(_ENVELOPE_TYPE).struct.unnest().with_columns(body.alias("__body"))
        except pl.exceptions.PolarsError:
            return None, df
        c, k8s = pl.col, pl.col("kubernetes").struct
        log = c("log").is_not_null()
        quoted = pl.when(log).then(c("__body").str.contains('"log":"', literal=True)) \
            .otherwise(c("__body").str.contains('"message":"', literal=True))
        signed = (c("kubernetes").is_not_null() | c("source_type").is_not_null() | c("@timestamp").is_not_null()
                  | c("_p").is_in(["P", "F"]) | c("stream").is_in(["stdout", "stderr"]) | (c("date").is_not_null() & log))
        text = pl.when(log).then(c("log")).otherwise(c("message"))
        time = pl.coalesce([pl.when(c(k).str.contains(self._time.pattern)).then(c(k)) for k in ENVELOPE_TIME])
        named = lambda a, b: pl.coalesce(pl.when(a != "").then(a), pl.when(b != "").then(b))  # noqa: E731
        # A name or time json_decode read from a number is no text to json.loads: that line is read by envelope
        texts = pl.all_horizontal(
            [value.is_null() | c("__body").str.contains(f'"{key}":"', literal=True) for key, value in (
                ("pod_name", k8s.field("pod_name")), ("container_name", k8s.field("container_name")),
                ("name", k8s.field("pod").struct.field("name")), ("name", k8s.field("container").struct.field("name")),
                *((k, c(k)) for k in ENVELOPE_TIME))])
        read = got.lazy().select(
            (text.is_not_null() & quoted & signed & texts).fill_null(False).alias("ok"),
            text.str.strip_suffix("\n").alias("body"),
            named(k8s.field("pod_name"), k8s.field("pod").struct.field("name")).alias("pod"),
            named(k8s.field("container_name"), k8s.field("container").struct.field("name")).alias("container"),
            time.alias("received_at")).collect()
        ok = read["ok"]
        if not ok.any():
            return None, df
        mine = df.filter(ok).select("line_number", "raw", read.filter(ok)["body"],
                                    *(pl.coalesce(read.filter(ok)[c], df.filter(ok)[c]).alias(c) for c in PROVENANCE))
        return mine, df.filter(~ok)

    @staticmethod
    def docker_tag(tail: str) -> tuple[str, bool] | None:
        """A docker json-file entry's stream and whether it is a split line's part (its log text
        without its newline), from the entry's last ~100 characters; None for any other line."""
        at = tail.rfind(DOCKER_MIDDLE)
        if at < 0 or re.match(DOCKER_TAIL, tail[at + len(DOCKER_MIDDLE):]) is None:
            return None
        text = tail[:at]
        escapes = len(text[:-1]) - len(text[:-1].rstrip("\\"))  # (an odd count before "n": the escape \n)
        return tail[at + len(DOCKER_MIDDLE):at + len(DOCKER_MIDDLE) + 6], not (text.endswith("n") and escapes % 2 == 1)

    def cri_tag(self, line: str) -> tuple[str, bool] | None:
        """A CRI line's stream and whether it is a split line's part (``partial_prefix``), not a
        whole line or its last part (``cri_prefix``); None for any other line."""
        for rx in (self._part, self._whole):
            if rx.match(line) is not None:
                return self._stream(line, rx), rx is self._part
        return None

    @staticmethod
    def _stream(line: str, rx: re.Pattern) -> str:
        """Which stream a CRI line is of (its prefix between the time and the tag: `` stdout ``)."""
        m = rx.match(line)
        return line[m.end("received_at"):m.end() - 2]  # (the tag and the space after it: prefix.lark)

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
        """The parts of a split line that ``join_parts`` left (its last part is not in the batch: a
        file cut short, a stream's batch, or past JOIN_LOOKAHEAD lines) become rejects saying so
        (``partial_prefix`` of prefix.lark; the body after such a prefix is never a layout's, so
        parts reach this step); returns the other lines. A last part in a later batch is judged as
        any line (noise or malformed)."""
        partial = df["raw"].str.contains(self.partial_rx)
        if not partial.any():
            return df
        return _reject_parts(df, partial, pl.repeat(False, df.height, eager=True), PARTIAL, "", rejects)


def unwrap_docker(df: pl.DataFrame, is_json: pl.Series, rejects: list[dict]) -> tuple[pl.DataFrame, pl.Series, int, tuple]:
    """docker's json-file lines (``{"log":"<line>\\n","stream":"stdout","time":"…"}``, a docker node's
    ``/var/lib/docker/containers/<id>/<id>-json.log``) as the line they hold: its text becomes the
    ``body`` that the layouts read (Istio's JSON encoding inside too), docker's time its
    ``received_at``; ``raw`` stays the line as written, and a reject's column counts in the text. A
    line over 16 KiB is written in parts, each but the last without its newline: they are joined
    (``_join_docker``), or, when its last part is not in the batch, rejects that say so
    (``DOCKER_PARTIAL``), never rows. ``is_json``: the lines whose body is JSON. Returns the lines
    (the others as they were), which of them are JSON now, how many were blank (a blank line's
    entry: dropped), and the line numbers of parts joined to an earlier one (dropped)."""
    maybe = starts_with(df["body"], DOCKER_START)  # (cut.c's check: ~0.02 µs a line)
    if maybe is None:
        return df, is_json, 0, ()
    body = df["body"]
    text, stream, time = _docker_fields(body, maybe)
    docker = (is_json & maybe & text.is_not_null() & stream.is_in(["stdout", "stderr"]) & time.is_not_null()).fill_null(False)
    if not docker.any():
        return df, is_json, 0, ()
    part = docker & ~text.str.ends_with("\n").fill_null(False)
    joined: tuple[int, ...] = ()
    if part.any():  # a line over 16 KiB: its parts joined (those whose last part is here; it may be "\n")
        df, docker, text, stream, time, part, joined = _join_docker(df, docker, text, stream, time, part)
    blank = docker & text.str.ends_with("\n") & text.str.contains(r"^\s*$")  # (a part is never blank)
    if blank.any():
        df, docker, text, time, part = (x.filter(~blank) for x in (df, docker, text, time, part))
    df = df.with_columns(
        pl.when(docker).then(text.str.strip_suffix("\n")).otherwise(pl.col("body")).alias("body"),
        pl.when(docker & pl.col("received_at").is_null()).then(time).otherwise(pl.col("received_at")).alias("received_at"),
        pl.when(docker).then(0).otherwise(pl.col("prefix_len")).alias("prefix_len"),
    )
    if part.any():
        df = _reject_parts(df, part, pl.repeat(False, df.height, eager=True), DOCKER_PARTIAL, "", rejects)
    return df, df["body"].str.starts_with("{"), int(blank.sum()), joined


def _join_docker(df, docker, text, stream, time, part):
    """docker's parts of a line over 16 KiB (``part``: a log text without its newline), each with
    the next entries of its stream up to the one that ends the line (within JOIN_LOOKAHEAD rows, in
    its input): that line whole, on the first part's row, with the last part's time; ``raw`` the
    entry docker would have written for it. The parts joined to an earlier one are dropped; returns
    the columns without them, which parts are left (no end here), and the dropped rows' line numbers."""
    import json

    runs = _runs(part.arg_true().to_list(), df.height, df["line_number"], lambda rows: zip(
        (docker.gather(rows) & stream.gather(rows).is_not_null()).to_list(), stream.gather(rows).to_list(),
        part.gather(rows).to_list()))
    if not runs:
        return df, docker, text, stream, time, part, ()
    texts = text.gather([i for run in runs for i in run]).to_list()
    whole, k = [], 0
    for run in runs:
        whole.append("".join(texts[k:k + len(run)]))
        k += len(run)
    ends = [run[-1] for run in runs]
    end_time, end_stream = time.gather(ends).to_list(), stream.gather(ends).to_list()
    raw = [json.dumps({"log": w, "stream": s, "time": t}, ensure_ascii=False, separators=(",", ":"))
           for w, s, t in zip(whole, end_stream, end_time)]
    at, keep, numbers = _run_rows(df, runs)
    df = df.with_columns(df["raw"].scatter(at, pl.Series(raw, dtype=pl.String)).alias("raw")).filter(keep)
    text = text.scatter(at, pl.Series(whole, dtype=pl.String)).filter(keep)
    time = time.scatter(at, pl.Series(end_time, dtype=pl.String)).filter(keep)
    part = part.scatter(at, False).filter(keep)
    return df, docker.filter(keep), text, stream.filter(keep), time, part, numbers


def _run_rows(df: pl.DataFrame, runs: list[list[int]]) -> tuple[pl.Series, pl.Series, tuple[int, ...]]:
    """Where each joined line goes (its first part's row), which rows stay (all but the later
    parts), and the later parts' line numbers."""
    gone = sorted(i for run in runs for i in run[1:])
    keep = pl.Series([True] * df.height).scatter(pl.Series(gone, dtype=pl.UInt32), False)
    return pl.Series([run[0] for run in runs], dtype=pl.UInt32), keep, tuple(df["line_number"].gather(gone).to_list())


def _runs(starts: list[int], height: int, line_numbers: pl.Series, tags) -> list[list[int]]:
    """The runs of a split line's parts that end here: from each of ``starts`` (a part's row), the
    next rows of its stream (each within JOIN_LOOKAHEAD rows of the one before, in its input) while
    they are parts, then the one that ends it. ``tags(rows)``: per row (whether it is of a runtime's
    format, its stream, whether it is a part)."""
    near = sorted({j for i in starts for j in range(i, min(i + JOIN_LOOKAHEAD + 1, height))})
    tag = dict(zip(near, tags(near)))
    numbers = dict(zip(near, line_numbers.gather(near).to_list()))
    runs, taken = [], set()
    for i in starts:
        if i in taken:
            continue
        run, j, ended = [i], i + 1, False
        while j in tag and j - run[-1] <= JOIN_LOOKAHEAD and same_input(numbers[j], numbers[i]):
            ours, stream, is_part = tag[j]
            if j not in taken and ours and stream == tag[i][1]:
                run.append(j)
                if not is_part:
                    ended = True
                    break
            j += 1
        if ended:
            taken.update(run)
            runs.append(run)
    return runs


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
    at = body.str.find(DOCKER_MIDDLE, literal=True)  # (in bytes: str.slice counts characters)
    escaped = body.str.slice(8, at - 8)  # (after '{"log":"')
    rest = body.str.slice(at + len(DOCKER_MIDDLE))
    wide = maybe & (body.str.len_bytes() != body.str.len_chars())
    if wide.any():  # a text of other than ASCII (~1.4 ms a 41k-line batch to tell): cut by characters
        where = wide.arg_true()
        cut = body.gather(where).str.splitn(DOCKER_MIDDLE, 2).struct
        escaped = escaped.scatter(where, cut.field("field_0").str.slice(8))
        rest = rest.scatter(where, cut.field("field_1"))
    shaped = (maybe & rest.str.contains(DOCKER_TAIL)).fill_null(False)
    stream = rest.str.slice(0, 6)
    time = rest.str.slice(16, rest.str.len_chars() - 18)  # (between 'stdout","time":"' and '"}')
    newline = escaped.str.ends_with("\\n")
    text = pl.select(pl.when(newline).then(escaped.str.slice(0, escaped.str.len_chars() - 2)).otherwise(escaped)).to_series()
    for old, new in _DOCKER_ESCAPES:
        if text.str.contains(old, literal=True).any():
            text = text.str.replace_all(old, new, literal=True)
    read = shaped & ~text.str.contains("\\", literal=True).fill_null(True)
    text = pl.select(pl.when(read).then(pl.when(newline).then(text + "\n").otherwise(text))).to_series()
    other = (shaped & ~read).fill_null(False)
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
