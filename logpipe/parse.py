"""Stage 1: lines to typed records, vectorized over a batch, with the grammar as the only syntax.

For a batch of lines:

1. kubectl/stern/compose prefixes and a node file's CRI prefix are split off with the regex compiled
   from ``prefix.lark``, and docker's json-file entries unwrapped (``logpipe/collectors.py``);
2. JSON bodies (``{…}``) are decoded with the json module and mapped by key (FORMATS.md a.3,
   ``logpipe/jsonlog.py``); addresses and clusters that arrive whole get their sub-fields from the
   same grammar rules (``logpipe/values.py``);
3. text bodies are matched, layout after layout, by the regexes compiled from ``access.lark``
   (polars runs them over the whole batch as a DFA, without captures); the columns of a matched
   line are then cut out by the layout's split plan (``logpipe/splitplan.py``: at its quotes and
   spaces, planned from the same grammar), or, when free text holds a quote, by the capture regex.
   Most lines are the first layout's: its plan first cuts every line, checking each token with a
   DFA of the token's own regex (``logpipe/dfa.py``), and the lines it takes skip the layout regex;
   the later layouts seen in a sample of a parser's first large batch, and those a batch has many
   lines of, join that cut (``logpipe/fastpath.py``);
4. what is left is noise (``noise.lark``) or goes to the exact Lark path, which parses it or says
   where and why it fails (``logpipe/exact.py``; ``logpipe/diagnose.py`` finds where it departs
   from its closest layout);
5. all text columns are typed in one place (``type_columns``, ``logpipe/records.py``): ``-`` becomes
   null there and only there, numbers are cast, flags split, times parsed; a value that cannot be
   typed makes the line a reject, never a silent null.

Every line of the batch ends as a row, a reject, a blank line, or a part joined to its split line's
row: ``read = parsed + rejected + blank + joined``.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Sequence

import polars as pl

from . import collectors as _collectors
from . import envelopes as _envelopes
from . import exact as _exact
from . import fastpath as _fastpath
from . import grammar as _grammar
from . import holes as _holes
from . import nativecut as _nativecut
from . import runtimes as _runtimes
from . import steps as _steps
from . import tailheads as _tailheads
from . import values as _values
from . import ztunnel as _ztunnel
from .batches import ParsedBatch
from . import jsonlog as _jsonlog
from .records import AT, _rejects_batch, type_columns, value_columns
from .schema import RECORD_SCHEMA

# Layouts of access.lark in the order a line is tried: most fields first, so that a longer layout
# wins over a shorter one whose free-text fields could swallow the extra tokens.
TEXT_LAYOUTS = ("istio_1_9", "istio_1_3", "istio_1_2", "istio_1_8", "istio_1_1", "istio_1_1_pre", "envoy")


class Parser:
    """Parses batches of lines. Build once (compiles the grammars), call ``parse_batch`` often."""

    def __init__(self, **options) -> None:
        # Keep the options so that a Parser can be rebuilt in a worker process (see __reduce__).
        self._options = options
        self.access = _grammar.load_builtin("access")
        self.prefix = _grammar.load_builtin("prefix")
        self.noise = _grammar.load_builtin("noise")
        # `tail -f`'s header: the pod and container of the lines after one; no split line's parts
        # are joined across it
        self.tailheads = _tailheads.TailHeads(self.noise)
        self.collectors = _collectors.Collectors(self.prefix, barrier=self.tailheads.rx)
        self.envelopes = _envelopes.Envelopes(self.collectors.time_rx)  # (collectors' JSON records of a line)
        # fast=False skips the generated regexes: every text line takes the exact Lark path
        # (the differential test and the bench compare the two).
        self.fast = options.get("fast", True)
        # exact=False: a line no regex takes is classified by its diagnosis alone (noise or malformed,
        # with where it departs from the closest layout), without Lark's verdict, which costs ms a
        # line: `logpipe detect` counts lines this way, fast on a file in another format.
        self.exact = options.get("exact", True)
        self._noise = [(name, self.noise.regex(name)) for name in _exact.NOISE_RULES]
        self._noise_words = _exact.words_regex(self.noise, self.prefix)  # (a Go traceback's words read as stern's)
        # Address and cluster values that arrive whole (JSON lines, ztunnel): their sub-fields.
        self.values = _values.WholeValues(self.access)
        # A custom layout (--format-string / --format-file / --grammar, logpipe/layouts.py) is tried
        # before the built-in ones; its extra columns follow RECORD_SCHEMA in ``self.schema``.
        self.custom = _custom_layout(options.get("custom"))
        self.schema = self.custom.schema if self.custom else RECORD_SCHEMA
        self.format_spec = self.custom.spec if self.custom else ""
        # The text layouts in the order a line is tried; a custom layout (its own grammar) comes first.
        books = [(name, self.access) for name in TEXT_LAYOUTS]
        if self.custom and self.custom.rulebook is not None:
            books.insert(0, (self.custom.name, self.custom.rulebook))
        # The columns cut.c types as it cuts (numbers, times); a custom START_TIME format is read
        # by the custom layout's ``prepare`` from text, so then no layout's times are typed there.
        keep = {"start_time"} if self.custom is not None and getattr(self.custom, "time_format", None) else set()
        types = _nativecut.Types(tuple((f.name, f.type) for f in self.schema), frozenset(keep))
        # "[START_TIME] \"", from the grammar: a line holding two is two lines glued together.
        head = _steps.layout_steps(self.access, "head", strict=False)
        head_rx = head[next(s.index for s in head if s.field == "method") - 1].prefix
        self.fastpath = _fastpath.FastPath(books if self.fast else [], types, head_rx, options.get("split", True))

    def __reduce__(self):
        # Lark objects do not pickle well; rebuilding from the options is cheap and exact.
        return (_rebuild_parser, (type(self), self._options))

    def with_options(self, **changes) -> "Parser":
        """A parser like this one with some options changed (``exact=False``: see ``__init__``)."""
        return type(self)(**{**self._options, **changes})

    def prepare(self) -> None:
        """Build now what this parser's first large batch would build: the checked cut of the layouts
        it tries first (their split plans, DFAs, cut.c's structures) and the ztunnel rules, ~15 ms in
        all (the DFAs read from the cache directory). A worker process does it while it boots
        (``lanes._init_worker``): its first range is read after the parent's probe of the input.
        Not the other layouts' (~100 ms for all seven): that took `make bench`'s ingest longer than
        building those its first batch samples (``FastPath._sample_layouts``) then."""
        if self.fast:
            self.fastpath.checked_plans()
            _ztunnel.rules()

    # ---- the batch ---------------------------------------------------------------------------------

    def parse_batch(self, lines: Sequence[str | bytes], source: str = "-", first_line: int = 1,
                    header: str | None = None) -> ParsedBatch:
        raw = [_decode(x) for x in lines] if lines and not isinstance(lines[0], str) else list(lines)
        return self.parse_series(pl.Series(raw, dtype=pl.String), source, first_line, header=header)

    def parse_chunk(self, body: bytes, source: str = "-", first_line: int = 1, views: bool = False,
                    line_numbers: pl.Series | None = None, header: str | None = None) -> ParsedBatch:
        """Parse a run of whole lines as read from a file (newline-separated, the last newline
        optional); the same as ``parse_batch`` of its lines, with the split done natively."""
        lines, bare, solid, holes = _chunk_lines(body)
        return self.parse_series(lines, source, first_line, bare, views, solid, line_numbers, holes, header)

    def parse_series(self, raw: pl.Series, source: str = "-", first_line: int = 1, bare: bool = False,
                     views: bool = False, solid: bool = False, line_numbers: pl.Series | None = None,
                     holes: bool | None = None, header: str | None = None) -> ParsedBatch:
        """Parse a batch of lines; ``bare``: none ends in ``\n`` or ``\r`` (nothing to strip, no check);
        ``solid``: none is blank (no check); ``views``: the records' strings as Arrow string views
        (``schema.view_schema``: ingest's lanes write them so), not cast to the schema's strings;
        ``line_numbers``: each line's, increasing (several inputs: ``batches.INPUT_SHIFT``), not ``first_line`` on;
        ``holes``: whether the lines hold NUL bytes (None: not known, looked for; ``logpipe/holes.py``);
        ``header``: `tail -f`'s header line in effect before the first line, "" for none yet, None when
        the input is no `tail -f` of several files (``logpipe/tailheads.py``: the batch's ``header``
        is the one after its last line)."""
        n = raw.len()
        if line_numbers is not None and line_numbers.len() != n:
            raise ValueError(f"{line_numbers.len()} line numbers for {n} lines")
        df = raw.alias("raw").to_frame().with_columns(
            pl.int_range(first_line, first_line + n, dtype=pl.Int64).alias("line_number") if line_numbers is None
            else line_numbers.cast(pl.Int64).alias("line_number"),
        )
        if not bare and (raw.str.ends_with("\n").any() or raw.str.ends_with("\r").any()):
            df = df.with_columns(pl.col("raw").str.strip_suffix("\n").str.strip_suffix("\r").alias("line"))
        else:  # lines as chunk_lines cuts them: nothing to strip, no copy
            df = df.with_columns(pl.col("raw").alias("line"))
        rejects: list[dict] = []
        if holes or holes is None and raw.str.contains(_holes.HOLE, literal=True).any():
            df, solid = _holes.fill(df, rejects), False
        is_blank = None if solid else df["line"].str.contains(_BLANK)
        blank = int(is_blank.sum()) if is_blank is not None else 0
        if blank:  # (a filter copies every column, ~0.1 µs a line)
            df = df.filter(~is_blank)

        df, joined = self.collectors.split_prefix(df)  # (and a split line's parts joined)
        if header is not None:  # (an input that starts with `tail -f`'s header)
            df, header = self.tailheads.fill(df, header, rejects)
        if self.custom is not None:  # a custom line may itself start like a prefix ("%START_TIME% …")
            df = self.custom.keep_prefix(df)
        is_json = df["body"].str.starts_with("{")
        any_json = bool(is_json.any())  # (text logs hold none: no filter of every column)
        if any_json:
            df, is_json, more = self.collectors.drop_blank_json(df, is_json)
            blank, any_json = blank + more, bool(is_json.any())
        if any_json:  # docker's json-file lines: the line each holds
            df, is_json, more, parts = _runtimes.unwrap_docker(df, is_json, rejects)
            blank, joined = blank + more, tuple(sorted(joined + parts))
            any_json = bool(is_json.any())
        frames: list[pl.DataFrame] = []
        cut: list[tuple] = []  # (frame, its nulled columns): cut with the fast path's nativecut.Types

        indented: list[pl.DataFrame] = []  # (JSON lines with blanks before them: _take_text finds them)
        blank += self._take_text(df.filter(~is_json) if any_json else df, n, cut, frames, rejects, indented)
        json_frames: list[tuple] = []
        bodies = [df]  # (the lines as read: a reject's column is counted in them, value_columns)
        if any_json or indented:
            unwrapped: list[tuple] = []
            json_frames = _jsonlog.take_lines(self, _concat(([df.filter(is_json)] if any_json else []) + indented),
                                              rejects, unwrapped)
            if unwrapped:  # log collectors' records (Fluent Bit, Vector, …): the lines they hold
                inner, more, parts = _envelopes.envelope_lines(unwrapped, rejects)  # (a split line's parts joined)
                joined = tuple(sorted(joined + parts))
                inner, most = self.collectors.split_held(inner)
                more += most
                inner_json = inner["body"].str.starts_with("{")
                if inner_json.any():  # (a docker entry inside: an agent that tailed docker's files as text)
                    inner, inner_json, most, parts = _runtimes.unwrap_docker(inner, inner_json, rejects)
                    more, joined = more + most, tuple(sorted(joined + parts))
                indented = []
                bodies.append(inner)  # (a record's: its text's, not the record's)
                blank += more + self._take_text(inner.filter(~inner_json), inner.height, cut, frames, rejects, indented)
                json_frames += _jsonlog.take_lines(self, _concat([inner.filter(inner_json)] + indented), rejects)
        others = [(f, frozenset()) for f in frames] + json_frames  # (frame, its nulled columns), as cut's

        groups = [(_concat([f for f, _ in cut]), _nulled(cut))] if cut else []
        groups += [(_concat([f for f, _ in others]), _nulled(others))] if others else []
        if self.custom is not None:
            groups = [(self.custom.prepare(group, rejects), nulled) for group, nulled in groups]
        records, more_rejects = type_columns(groups, source, self.schema, views)
        rejects.extend(more_rejects)
        if any(AT in r for r in rejects):  # (a time with a part no time has: its column, rare)
            wanted = [r["line_number"] for r in rejects if AT in r]
            found = {ln: (body, plen) for frame in bodies for ln, body, plen in
                     frame.filter(pl.col("line_number").is_in(wanted)).select("line_number", "body", "prefix_len").iter_rows()}
            value_columns(rejects, found)
        if header is not None or _collectors.node_log_names(source) is not None:  # (lines a container's, not a proxy's: noise)
            self.tailheads.quiet(rejects, df, records, source)
        return ParsedBatch(records, _rejects_batch(rejects, source), n, blank, joined, header)

    # ---- steps -------------------------------------------------------------------------------------

    def _take_text(self, text: pl.DataFrame, n: int, cut: list, frames: list, rejects: list[dict],
                   indented: list) -> int:
        """The text (not JSON) lines of a batch of ``n`` lines: cut by the fast path (into ``cut``),
        or read by the other paths (into ``frames``), or rejected; returns how many were blank. Those
        that are JSON once the blanks before them are gone go to ``indented`` (a frame), for the
        JSON path."""
        blank = 0
        text = self._take_layouts(text, n, cut, frames, rejects)
        if text.height:  # (a line after a byte-order mark, or pasted with white space around it: again without them)
            text, again, blank = self._past_mark(text)
            text, trimmed = _trim(text)
            if again is not None:  # (its body after its prefix may have white space around it too)
                again, again_trimmed = _trim(again)
                trimmed = _concat([f for f in (again, again_trimmed, trimmed) if f is not None])
            if trimmed is not None:
                is_json = trimmed["body"].str.starts_with("{")
                if is_json.any():  # (noise first: the debug exporter's fields, "\t{…}", are its lines)
                    json_lines = _exact.classify_noise(trimmed.filter(is_json), self._noise, rejects)
                    indented.append(json_lines.drop(_exact.PADDED))
                    trimmed = trimmed.filter(~is_json)
                text = pl.concat([text, self._take_layouts(trimmed, n, cut, frames, rejects)], how="diagonal")
        if text.height:  # (lines the fast path leaves: a prefix and nothing more is blank; a line's parts)
            text, more = self.collectors.drop_blank(text)
            blank += more
            text = self.collectors.cri.reject(text, rejects)
        if text.height:  # ztunnel lines look like istio-agent log lines to noise.lark: take them first
            text = _ztunnel.take_lines(self, text, frames, rejects)
        # A custom layout's exact path: just before noise (lines its regex did not take rarely parse,
        # and noise can be plenty) for the lines that follow it for CLAIM_FIELDS fields; the others after noise.
        if text.height and self.custom is not None:
            text = self.custom.take_lines(self, text, frames, rejects, claim=CLAIM_FIELDS)
        if text.height:
            text = _exact.classify_noise(text, self._noise, rejects, self._noise_words, self.custom)
        if text.height and self.custom is not None:
            text = self.custom.take_lines(self, text, frames, rejects)
        if text.height:
            frames.extend(self._exact_path(text, rejects))
        return blank

    def _take_layouts(self, text: pl.DataFrame, n: int, cut: list, frames: list, rejects: list[dict]) -> pl.DataFrame:
        """The lines of ``text`` the fast path's regexes take (``_take_text``: as written, then those
        padded or after a mark again without it); returns the others. With fast=False, Lark stands in
        for the regexes, in their order: the lines the custom grammar parses, then those a built-in
        layout parses, are rows; the rest take the steps after as the lines the regexes leave do.
        Not the custom layout's whole exact path: a line of Istio's own layout under a format that
        starts as it does (`[%START_TIME%] `) follows it for CLAIM_FIELDS fields, and would be its
        malformed line, not the built-in layout's row. (Lark read a padded line only without its
        white space: a format ending in unquoted free text lost the trailing space the regex keeps.)"""
        text = self.fastpath.take_lines(text, n, cut, frames, rejects)
        if text.height and self.custom is not None and self.custom.rulebook is not None and not self.fast:
            text = _exact.take_parsed([(self.custom.rulebook, self.custom.name, (self.custom.name,)),
                                       (self.access, "access_line", TEXT_LAYOUTS)], text, frames)
        return text

    def _past_mark(self, text: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame | None, int]:
        """The lines the layouts left (``text``) that start with a byte-order mark (``_BOM``), read past
        it: a collector's prefix after it is split off (those lines are returned apart, ``again``, for
        the layouts to try: their ``line`` without the mark, which their prefix's length counts), and a
        mark with nothing after it but white space, or a collector's blank line, is a blank line; the
        others stay as they were (``_trim`` reads past the mark). Returns (the other lines, ``again`` or
        None, how many were blank)."""
        marked = text["line"].str.starts_with(_BOM)
        if not marked.any():
            return text, None, 0
        past = text.filter(marked)
        line = past["line"].str.strip_chars_start(_BOM)
        blank = line.str.contains(_BLANK) | line.str.contains(self.collectors.blank_rx)
        past, line = past.filter(~blank), line.filter(~blank)
        split, _ = self.collectors.split_prefix(line.to_frame("line"), join=False)
        has = split["prefix_len"] > 0
        if not has.any():
            return text.filter(~marked).vstack(past), None, int(blank.sum())
        split, again = split.filter(has), past.filter(has)
        mark = again["line"].str.len_chars() - split["line"].str.len_chars()
        again = again.with_columns(split["line"], split["body"], split["prefix_len"],  # (its prefix's pod and container first)
                                   *(pl.coalesce(split[c], again[c]).alias(c) for c in _collectors.PROVENANCE))
        if self.custom is not None:  # (as parse_series does: the custom line may itself start like a prefix)
            again = self.custom.keep_prefix(again)
        again = again.with_columns(pl.col("prefix_len") + mark)
        return text.filter(~marked).vstack(past.filter(~has)), again, int(blank.sum())

    def _exact_path(self, df: pl.DataFrame, rejects: list[dict]) -> list[pl.DataFrame]:
        """Lines no fast-path regex took: Lark parses them, or says where they break (``exact.take_lines``)."""
        return _exact.take_lines(self.access, TEXT_LAYOUTS, df, rejects, fast=self.fast, exact=self.exact,
                                 custom=self.custom, words=self.collectors.bare_words(df))

# A line that follows a given format for this many fields, and then breaks, is that format's
# malformed line, whatever a noise rule says: a format that starts with an unbracketed %START_TIME%
# makes its lines look like another program's log line to noise.lark (ISO time, space, a word), and
# noise does not count towards ingest's --max-reject-ratio, so a wrong format would pass unnoticed.
# Another program's line matches one field of it, the time, at most; fields that take any word (a
# method, free text) tell nothing, and a line that follows only those is not the format's (diagnose.tells).
CLAIM_FIELDS = 2

# Spaces and tabs around a line (pasted from a document, a ticket, an editor's): no layout of
# access.lark starts or ends with them, so a line the layouts did not take as it is is tried again
# without them (a given format that has them took it already), by the exact path too, or by the JSON
# path when it is a JSON object; the noise rules look at it as it was (exact.PADDED). The ones before
# it count as its prefix (prefix_len): a reject's column is still the line's own. So does a byte-order
# mark before it: the reader takes an input's own (unpack.BYTE_ORDER_MARKS), not that of a file `cat`
# joined to another, which starts a line in the middle of the input. The noise rules see the line
# without the mark (it is the file's, not the line's: Envoy's own log line after one is still noise).
# A mark before a collector's prefix (`cat` of `kubectl logs --prefix` or a node's files saved with one) is
# read past too (Parser._past_mark), and a mark alone is a blank line.
_BOM = _runtimes.BOM
_BLANK = r"^\s*$"  # (Unicode White_Space, as strip_chars)
_PADDED = f"^[ \t{_BOM}]|[ \t]$"
_LEAD = " \t" + _BOM


def _trim(text: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The lines of ``text`` with no space or tab around their body, and those that had, without."""
    padded = text["body"].str.contains(_PADDED)
    if not padded.any():
        return text, None
    body = pl.col("body").str.strip_chars_start(_LEAD)
    trimmed = text.filter(padded).with_columns(
        (pl.col("prefix_len") + pl.col("body").str.len_chars() - body.str.len_chars()).alias("prefix_len"),
        body.str.strip_chars_end(" \t").alias("body"),
        pl.col("body").str.strip_chars_start(_BOM).alias(_exact.PADDED))  # (a mark is the file's, not the line's)
    return text.filter(~padded), trimmed


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


def _nulled(cut: list[tuple]) -> frozenset:
    """The columns whose ``-`` and empty text are null in every frame of ``cut`` that has them."""
    names = {c for frame, _ in cut for c in frame.columns}
    return frozenset.intersection(*(nulled | (names - set(frame.columns)) for frame, nulled in cut))


def chunk_lines(body: bytes) -> pl.Series:
    r"""The lines of ``body`` as a string Series, without their ``\n`` (a ``\r`` before it is
    kept, as in a list of lines). Invalid UTF-8 is kept visibly (``\\xNN``), never lost."""
    return _chunk_lines(body)[0]


def _chunk_lines(body: bytes) -> tuple[pl.Series, bool, bool, bool | None]:
    """``chunk_lines``, whether no line ends in ``\r`` (``body`` holds none), whether no line is
    blank (``native.lines`` tells: then the check of every line is skipped), and whether a line holds
    a NUL byte (None: not known)."""
    if b"\r" not in body:
        from . import native as _native

        lib = _native.library()
        got = _native.lines(lib, body) if lib is not None else None  # views into body: no copy
        if got is not None:
            return got[0], True, not got[1], got[2]
        try:
            return pl.read_lines(body)["line"], True, False, None  # native split; it validates UTF-8
        except pl.exceptions.ComputeError:
            pass
    from .sources import split_lines

    return pl.Series(split_lines(body), dtype=pl.String), False, False, None


def _decode(line: bytes) -> str:
    # Invalid UTF-8 is kept visibly (\xNN), never a crash and never a lost line.
    return line.decode("utf-8", "backslashreplace")


def _custom_layout(custom):
    """``Parser(custom=…)``: a layouts.CustomLayout, a Rulebook's grammar text, or a format spec."""
    if custom is None or hasattr(custom, "take_lines"):
        return custom
    from . import layouts

    if isinstance(custom, str):  # a spec as Parser.format_spec gives it, or a Lark grammar's text
        if custom.startswith(("text:", "text_omit:", "json:", "grammar:")):
            return layouts.layout_from_spec(custom)
        return layouts.layout_from_grammar(custom, source="<grammar>")
    raise TypeError(f"Parser(custom=…) takes a layouts.CustomLayout or grammar text, not {type(custom).__name__}")


def _rebuild_parser(cls, options):
    return cls(**options)


# ---- library API ------------------------------------------------------------------------------------

_PARSER: Parser | None = None


def default_parser() -> Parser:
    global _PARSER
    if _PARSER is None:
        _PARSER = Parser()
    return _PARSER


def parse_lines(lines: Iterable[str | bytes], source: str = "-", *, batch_size: int = 65536,
                parser: Parser | None = None) -> Iterator[ParsedBatch]:
    """Parse an iterable of lines (str or bytes, with or without line endings) into ``ParsedBatch``
    objects of at most ``batch_size`` input lines: Arrow record batches of RECORD_SCHEMA plus the
    rejects of REJECT_SCHEMA. Line numbers start at 1. A path (a str, bytes or ``os.PathLike``
    given where lines belong) is refused: iterated, it would be its characters, each a line."""
    import os

    from .runtimes import JOIN_LOOKAHEAD, parts_at_end

    if isinstance(lines, (str, bytes, bytearray, os.PathLike)):
        from .errors import UsageError

        raise UsageError(f"parse_lines takes lines (an open file, or a list of str or bytes), not one "
                         f"{type(lines).__name__} ({str(lines)[:60]}); for a file, pass open(path, 'rb'), "
                         "and for text, text.splitlines()")
    parser = parser or default_parser()
    chunk: list = []
    first = 1
    for line in lines:
        chunk.append(line)
        if len(chunk) >= batch_size:
            held = parts_at_end(chunk)  # (a line a container runtime split: its parts in one batch)
            if held == len(chunk) and len(chunk) < 2 * batch_size + 4 * JOIN_LOOKAHEAD:
                continue  # (all parts of unfinished lines: wait for their ends, within bounds)
            held = held if held < len(chunk) else 0
            yield parser.parse_batch(chunk[:len(chunk) - held], source, first)
            first += len(chunk) - held
            chunk = chunk[len(chunk) - held:]
    if chunk:
        yield parser.parse_batch(chunk, source, first)
