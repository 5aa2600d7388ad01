"""What a container runtime writes around a line, and the lines over 16 KiB it splits into parts:

* docker's json-file entries (``{"log":"<line>\\n","stream":…,"time":…}``): the line each holds
  (``unwrap_docker``);
* a line over 16 KiB, which both runtimes write in parts: a node's CRI file tags each part but the
  last ``P`` (``CriParts``), docker's entries but the last lack their newline. The parts are joined
  into the line, on its first part's row (``_runs``), or, where its last part is not in the batch,
  rejected saying so; the file readers keep a line's parts in one batch (``whole_runs``,
  ``parts_at_end``: ``logpipe/sources.py``, ``logpipe/stream.py``, ``parse.parse_lines``).

``logpipe/collectors.py`` has the rest of what wraps a line (prefixes, collectors' records,
kubelet's file names); ``starts_with`` (cut.c's check of a line's start) serves both.
"""
from __future__ import annotations

import re

import polars as pl

from . import fastpath as _fastpath
from . import subfields as _subfields
from . import tailheads as _tailheads
from .batches import same_input
from .records import _reject

PARTIAL = ("part of a line over 16 KiB that the container runtime split (CRI tag P, containerd's"
           " max_container_log_line_size), whose last part (tag F) did not follow it here: not joined")
# docker's json-file driver splits the same way: each part's "log" text but the last lacks its newline.
DOCKER_PARTIAL = ("part of a line over 16 KiB that docker split (its json-file entry's log text has no newline),"
                  " whose last part did not follow it here: not joined")
# A line no split line's parts are joined across (CriParts' barrier), as the readers tell it, and how
# much of a line tells it.
BARRIER = ("", False)
BARRIER_CHARS = 512
# A byte-order mark (the file's, not the line's: parse.py reads past one) before a split line's part.
BOM = "\ufeff"
_MARK_BYTES = BOM.encode()
# How docker's json-file entries start (its Go encoder writes the keys in this order), or after a
# byte-order mark (unwrap_docker).
DOCKER_START = f'^{BOM}?\\{{"log":'

# How far after a split line's part its next part may come (the other stream's lines between them):
# CriParts.join and _join_docker look this far, and the readers keep this many lines together.
JOIN_LOOKAHEAD = 16


def whole_runs(buf, start: int, cut: int) -> int:
    """``_run_start``, or ``cut`` itself when the parts of unfinished lines are all ``buf[start:cut]`` holds."""
    at = _run_start(buf, start, cut)
    return at if at > start else cut


def _run_start(buf, start: int, cut: int) -> int:
    """Where to end the lines of ``buf[start:cut]`` (``cut`` just after a newline) so that the parts
    of a line a container runtime split (a node's CRI log file: tag ``P``, then the last part ``F``,
    the other stream's lines maybe between: ``CriParts.join``) stay in one batch:
    before the first part of a stream's line whose last part is not before ``cut``; else ``cut``
    itself (also when such parts are all it holds). Read from ``cut`` back: a stream's last line
    before it ends its run or is a part; its parts before that one, each within JOIN_LOOKAHEAD lines
    of the next, are that line's too."""
    runs: dict[str, int] = {}  # stream -> where its unfinished line starts (none: it ends before cut)
    last: dict[str, int] = {}  # stream -> how many lines back its last part was seen
    done: set[str] = set()
    line_end, back = cut, 0
    while line_end > start:
        if back >= JOIN_LOOKAHEAD and all(k in done or back - last[k] > JOIN_LOOKAHEAD for k in runs):
            break  # (a stream not seen by now, or whose part is this far back, has no part across cut)
        line_start = buf.rfind(b"\n", start, line_end - 1) + 1 or start
        tag = _runtime_tag(buf, line_start, line_end - 1)
        line_end, back = line_start, back + 1
        if tag is BARRIER:  # (no part before it is joined with a line after it)
            break
        if tag is None or tag[0] in done:
            continue
        stream, part = tag
        if not part or (stream in runs and back - last[stream] > JOIN_LOOKAHEAD):
            done.add(stream)  # a whole line (tag F), or too far back to be joined across
        else:
            runs[stream], last[stream] = line_start, back
    return min((runs[k] for k in runs), default=cut)


def parts_at_end(lines: list) -> int:
    """How many of ``lines``' last lines (bytes or text, with or without their line ends) to hold
    back so that a split line's parts stay together (``whole_runs``, for a list of lines): all of
    them, when they are all such."""
    from .envelopes import RECORD_LOOK  # (envelopes imports this module)

    n = 4 * JOIN_LOOKAHEAD
    while True:
        last = [(x.encode("utf-8", "surrogateescape") if isinstance(x, str) else x).rstrip(b"\r\n") for x in lines[-n:]]
        # (as told: _runtime_tag; a collector's record of a part whole, its tags and names anywhere in it)
        body = b"".join((x if len(x) <= 200 or any(k in x for k in RECORD_LOOK) else x[:64] + x[-100:]) + b"\n"
                        for x in last)
        held = body.count(b"\n", _run_start(body, 0, len(body)))
        if held < len(last) or len(last) == len(lines):
            return held
        n *= 4


def _runtime_tag(buf, start: int, end: int) -> tuple[str, bool] | None:
    """The line ``buf[start:end]``'s stream and whether it is a split line's part, as a container
    runtime wrote it (a CRI line: tag P, else F; a docker json-file entry: a log text without its
    newline), or None for any other line. A look at its first bytes first, then the grammar's
    regexes (``CriParts.tag``, ``docker_tag``) for the few that pass."""
    if buf[start:start + 3] == _MARK_BYTES and start + 3 <= end:  # (a part after a byte-order mark is one: CriParts.join)
        start += 3
    head = buf[start:min(end, start + 64)]
    if head.startswith(_tailheads.LOOK):  # (a look at its start, then the grammar's: CriParts.is_barrier)
        from .parse import default_parser

        line = bytes(buf[start:min(end, start + BARRIER_CHARS)]).decode("utf-8", "replace")
        return BARRIER if default_parser().collectors.cri.is_barrier(line) else None
    if head.startswith(b'{"log":"'):
        tag = docker_tag(bytes(buf[max(start, end - 100):end]).decode("utf-8", "replace"))
        if tag is not None:
            return tag
    if not head[:1].isdigit() or (b" P " not in head and b" F " not in head):
        from .envelopes import record_tag  # (a collector's record of a part: Fluent Bit's _p, Fluentd's logtag…)

        return record_tag(buf, start, end)
    from .parse import default_parser

    return default_parser().collectors.cri.tag(bytes(head).decode("utf-8", "replace"))


class CriParts:
    """The parts of lines over 16 KiB in a node's CRI log file (``partial_prefix`` and ``cri_prefix``
    of prefix.lark: tag P, then the last part's F): told, joined, or rejected. ``barrier``: the
    regex of a line no part is joined across (noise.lark's ``tail_header``: `tail -f` of several
    files turns to another file there)."""

    def __init__(self, book, barrier: str | None = None) -> None:
        self.partial_rx = "^" + book.compile("partial_prefix").pattern
        self.marked_rx = f"^{BOM}?" + self.partial_rx[1:]  # (or after a byte-order mark: join)
        self._part = re.compile(self.partial_rx)
        self._whole = re.compile("^" + book.compile("cri_prefix").pattern)
        self._barrier = re.compile(barrier) if barrier else None

    def is_barrier(self, line: str) -> bool:
        return self._barrier is not None and self._barrier.match(line) is not None

    def join(self, df: pl.DataFrame) -> tuple[pl.DataFrame, tuple[int, ...]]:
        """A node's container log file (the CRI format) holds a line of over 16 KiB as parts: each
        but the last tagged ``P`` (``partial_prefix``), the last ``F``, the next lines of the same
        stream (stdout or stderr: the other's lines may come between). Each such line whole, as the
        container wrote it: on its first part's row (``line_number``), its last part's prefix (its
        time: when the line was whole) before the parts' texts; ``raw`` is that line too. Returns
        the lines and the numbers of the parts joined to an earlier one (dropped: counted as joined).
        Parts whose last part is not in ``df`` (nor within JOIN_LOOKAHEAD lines) stay as they are:
        ``reject`` says so. A part after a byte-order mark (a file's first line, `cat` of files saved
        with one) is a part: its ``line`` without the mark (the file's, not the line's: parse._BOM)."""
        part = starts_with(df["line"], self.marked_rx)
        if part is None or not part.any():
            return df, ()
        marked = part & df["line"].str.starts_with(BOM)
        if marked.any():
            df = df.with_columns(pl.when(marked).then(pl.col("line").str.strip_prefix(BOM)).otherwise(pl.col("line")))

        def tags(rows):  # (from each line's start: a part is ~16 KiB, its start says all)
            return [None if self.is_barrier(x) else (True, *tag) if tag is not None else (False, None, False)
                    for x, tag in ((x, self.tag(x)) for x in df["line"].gather(rows).str.slice(0, BARRIER_CHARS).to_list())]

        runs = _runs(part.arg_true().to_list(), df.height, df["line_number"], tags)
        if not runs:
            return df, ()
        texts = iter(df["line"].gather([i for run in runs for i in run]).to_list())
        whole = []
        for run in runs:
            lines = [next(texts) for _ in run]
            bodies = [x[(self._part.match(x) or self._whole.match(x)).end():] for x in lines]
            whole.append(lines[-1][:len(lines[-1]) - len(bodies[-1])] + join_split_text(bodies))
        at, keep, numbers = _run_rows(df, runs)
        text = df["line"].scatter(at, pl.Series(whole, dtype=pl.String))
        return df.with_columns(text.alias("line"), text.alias("raw")).filter(keep), numbers

    def tag(self, line: str) -> tuple[str, bool] | None:
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

    def reject(self, df: pl.DataFrame, rejects: list[dict]) -> pl.DataFrame:
        """The parts of a split line that ``join`` left (its last part is not in the batch: a
        file cut short, a stream's batch, or past JOIN_LOOKAHEAD lines) become rejects saying so
        (``partial_prefix`` of prefix.lark; the body after such a prefix is never a layout's, so
        parts reach this step); returns the other lines. A last part in a later batch is judged as
        any line (noise or malformed)."""
        partial = df["raw"].str.contains(self.marked_rx)
        if not partial.any():
            return df
        return _reject_parts(df, partial, PARTIAL, rejects)


def unwrap_docker(df: pl.DataFrame, is_json: pl.Series, rejects: list[dict]) -> tuple[pl.DataFrame, pl.Series, int, tuple]:
    """docker's json-file lines (``{"log":"<line>\\n","stream":"stdout","time":"…"}``, a docker node's
    ``/var/lib/docker/containers/<id>/<id>-json.log``) as the line they hold: its text becomes the
    ``body`` that the layouts read (Istio's JSON encoding inside too), docker's time its
    ``received_at``; ``raw`` stays the line as written, and a reject's column counts in the text. A
    line over 16 KiB is written in parts, each but the last without its newline: they are joined
    (``_join_docker``), or, when its last part is not in the batch, rejects that say so
    (``DOCKER_PARTIAL``), never rows. ``is_json``: the lines whose body is JSON. Returns the lines
    (the others as they were), which of them are JSON now, how many were blank (a blank line's
    entry: dropped), and the line numbers of parts joined to an earlier one (dropped). An entry after a
    byte-order mark (`cat` of files saved with one) is one: its ``body`` without the mark (the file's, not
    the line's: parse._BOM), so that a split line's first part there is joined as ``CriParts.join`` does."""
    maybe = starts_with(df["body"], DOCKER_START)  # (cut.c's check: ~0.02 µs a line)
    if maybe is None or not maybe.any():  # (polars' search of a small batch says False for each line)
        return df, is_json, 0, ()
    marked = maybe & ~is_json  # (one that starts so, not with "{": after a mark)
    if marked.any():
        df = df.with_columns(pl.when(marked).then(pl.col("body").str.strip_prefix(BOM)).otherwise(pl.col("body")))
        is_json = is_json | marked
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
        df = _reject_parts(df, part, DOCKER_PARTIAL, rejects)
    return df, df["body"].str.starts_with("{"), int(blank.sum()), joined


def _join_docker(df, docker, text, stream, time, part):
    """docker's parts of a line over 16 KiB (``part``: a log text without its newline), each with
    the next entries of its stream up to the one that ends the line (within JOIN_LOOKAHEAD rows, in
    its input): that line whole, on the first part's row, with the last part's time; ``raw`` the
    entry docker would have written for it. The parts joined to an earlier one are dropped; returns
    the columns without them, which parts are left (no end here), and the dropped rows' line numbers."""
    import json

    def tags(rows):  # (None for `tail -f`'s header, as CriParts.join's: the lines after it are another file's)
        heads = df["line"].gather(rows).str.slice(0, BARRIER_CHARS).to_list()
        return [None if head.startswith(_HEADER_LOOK) and _barrier(head) else tag for head, tag in zip(heads, zip(
            (docker.gather(rows) & stream.gather(rows).is_not_null()).to_list(), stream.gather(rows).to_list(),
            part.gather(rows).to_list()))]

    runs = _runs(part.arg_true().to_list(), df.height, df["line_number"], tags)
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


_HEADER_LOOK = _tailheads.LOOK.decode()


def _barrier(line: str) -> bool:
    """Whether ``line`` is one no split line's parts are joined across (``CriParts.is_barrier``)."""
    from .parse import default_parser

    return default_parser().collectors.cri.is_barrier(line)


# A runtime cuts a long line at a byte count (containerd: 16 KiB), so a UTF-8 character may be cut in
# two: each part, decoded alone, then ends or starts with bytes that are invalid alone, kept as \\xNN
# (parse._decode, backslashreplace). Joined, they are the character again.
_CUT_TAIL = re.compile(r"\\x([c-f][0-9a-f])((?:\\x[89ab][0-9a-f]){0,2})$")
_CUT_HEAD = re.compile(r"\\x[89ab][0-9a-f]")


def join_split_text(parts: list[str]) -> str:
    """The texts of a split line's parts joined, a character cut between two parts whole again."""
    out = parts[0]
    for nxt in parts[1:]:
        tail = _CUT_TAIL.search(out)
        if tail:  # (a lead byte, maybe continuations, at the end: the rest of its character starts nxt)
            lead = int(tail.group(1), 16)
            have = bytes.fromhex(tail.group(0).replace("\\x", ""))
            need = (2 if lead < 0xE0 else 3 if lead < 0xF0 else 4) - len(have)
            head = [_CUT_HEAD.match(nxt, 4 * k) for k in range(max(need, 0))]
            if need > 0 and all(head):
                try:
                    char = (have + bytes.fromhex(nxt[:4 * need].replace("\\x", ""))).decode("utf-8")
                except UnicodeDecodeError:
                    char = None
                if char is not None:
                    out, nxt = out[:tail.start()] + char, nxt[4 * need:]
        out += nxt
    return out


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
    format, its stream, whether it is a part), or None for a line no run goes past (``CriParts``'
    barrier)."""
    near = sorted({j for i in starts for j in range(i, min(i + JOIN_LOOKAHEAD + 1, height))})
    tag = dict(zip(near, tags(near)))
    numbers = dict(zip(near, line_numbers.gather(near).to_list()))
    runs, taken = [], set()
    for i in starts:
        if i in taken:
            continue
        run, j, ended = [i], i + 1, False
        while j in tag and tag[j] is not None and j - run[-1] <= JOIN_LOOKAHEAD and same_input(numbers[j], numbers[i]):
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


def _reject_parts(df: pl.DataFrame, part: pl.Series, why: str, rejects: list[dict]) -> pl.DataFrame:
    """The parts of lines a runtime split that were not joined (``part``) as malformed rejects
    saying so (``why``); returns the other lines."""
    for ln, raw in df.filter(part).select("line_number", "raw").iter_rows():
        rejects.append(_reject(ln, raw, why, "malformed"))
    return df.filter(~part)


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
    a line a key), read by cutting the entry where its keys are (~0.5 µs a line in all); an entry
    whose text holds an escape other than ``_DOCKER_ESCAPES``' and its last newline is read by
    JSON's path queries. An object of another shape (more keys, another order: docker's ``attrs``,
    a collector's record) is null here: ``envelopes.Envelopes.envelope`` reads the line it holds."""
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


def docker_tag(tail: str) -> tuple[str, bool] | None:
    """A docker json-file entry's stream and whether it is a split line's part (its log text
    without its newline), from the entry's last ~100 characters; None for any other line."""
    at = tail.rfind(DOCKER_MIDDLE)
    if at < 0 or re.match(DOCKER_TAIL, tail[at + len(DOCKER_MIDDLE):]) is None:
        return None
    text = tail[:at]
    escapes = len(text[:-1]) - len(text[:-1].rstrip("\\"))  # (an odd count before "n": the escape \n)
    return tail[at + len(DOCKER_MIDDLE):at + len(DOCKER_MIDDLE) + 6], not (text.endswith("n") and escapes % 2 == 1)


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
