"""The lines of a batch that no layout's regex took (``parse.Parser.parse_series``, step 4): two lines
glued together, noise (another program's output, ``noise.lark``), and the rest, which the exact Lark
path parses, or rejects saying where and why the line breaks (``logpipe/diagnose.py`` finds where it
departs from its closest layout; Lark adds its own context when it is cheap enough to ask).

Every line given to these functions ends as a row or a reject, or is returned, never dropped."""
from __future__ import annotations

import functools
import re
from typing import Sequence

import polars as pl

from . import grammar as _grammar
from . import steps as _steps
from . import ztunnel as _ztunnel
from .batches import line_in_input
from .diagnose import diagnose_line
from .records import _reject, _row

NOISE_RULES = {
    "ztunnel_opened": _ztunnel.OPENED,
    "ztunnel_log": "ztunnel's own log line (time, level, its Rust target such as xds::client or proxy::inbound), "
                   "not an access line",
    "istio_log": "istio-agent/Envoy log line (or another Go program's: time, level, message), not an access line",
    "tracing_log": "ztunnel/tracing log line, not an access line",
    "envoy_native_log": "Envoy application log line, not an access line",
    "glog_log": "glog/klog log line, not an access line",
    "tail_header": "tail's header of the file it reads next (tail -f of several files), not an access line",
    "kubectl_log_mark": "kubectl cluster-info dump's mark of where a container's log starts or ends "
                        "(==== START/END logs for container C of pod NAMESPACE/POD ====), not an access line",
    "kubectl_log_error": "kubectl cluster-info dump's error getting a container's log (Create log request error, "
                         "Request log error), not an access line",
    "fluent_bit_msgpack": "Fluent Bit stdout output's event in its default msgpack format ([0] TAG: [TIME, {...}]), "
                          "no JSON: give the stdout output format json_lines to read the log lines it holds",
    "otel_debug_log": "OpenTelemetry Collector debug exporter's record line, not an access line",
    "go_panic": "Go crash dump line (a panic or fatal error and its goroutine traceback), not an access line",
    "yaml_line": "YAML line (key: value, or - item) of a config dump (ztunnel's after 'running with config:', "
                 "istio-agent's after 'Effective config:'), not an access line",
}
# Noise rules of a time and a word (a level) that an access line of a format starting %START_TIME%
# %REQ(:METHOD)% also follows: under a given format, their reasons say where the line departs from it.
WORD_AFTER_TIME_RULES = ("ztunnel_log", "istio_log", "tracing_log")
# Rules also tried on the line past a stern-style prefix's words (WORDS_RULES): stern's prefix is two
# or three words, so a Go traceback's "goroutine 1 [running]:" reads as one (pod "goroutine", container
# "1", body "[running]:"), and after stern's own prefix "exit status 2" loses "exit" to it. Not the other
# rules: the words skipped are pod names, and a rule that could take what follows a collector's prefix
# (zap's "<time>\t<level>\t" before istio_log's) would make a truncated access line after it noise.
WORDS_RULES = ("go_panic",)
WORDS = 3
# Longest line the exact Lark path diagnoses; longer unmatched lines are rejected with a short reason.
# Not a limit on what it reads: Parser(fast=False) parses a line of any length (take_lines, take_parsed),
# as the fast path does (a long URL or user agent is a row; Lark takes ~1 s a 30,000-character line).
MAX_DIAGNOSE_CHARS = 8192
# Lark's Earley parser is cubic where free text meets quotes (a 1,300-character line of '" "'
# takes ~35 s). With the fast path on, Lark only adds its context to a reject's reason (the
# differential test shows the regexes take every line Lark takes), so it is asked only about lines
# of a normal length with no more quotes than a layout has (+4 for quotes inside fields).
LARK_CONTEXT_CHARS = 2048
LARK_CONTEXT_EXTRA_QUOTES = 4
# A given format's free text need not be quoted (`%REQ(:PATH)% %REQ(USER-AGENT)% %RESPONSE_CODE%`):
# then Earley is cubic in the line's spaces, whatever its quotes (a malformed line of 120 words took
# ~0.1 s, of 330 ~0.8 s, of 1,200 ~17 s). Its lines are asked about with at most this many spaces.
LARK_CONTEXT_SPACES = 128
# Lark's context costs ~5 ms a malformed line (its diagnosis ~0.1 ms): an input with 5% truncated
# lines would take 30x longer. So only malformed lines among the first LARK_CONTEXT_LINES lines of an
# input get it; later ones keep the diagnosis alone (column, field, expected, closest layout). By
# line number, not by count, so that a line's reason is the same however the input is cut into
# batches (ingest's workers, a stream's slices). A line with no diagnosis always goes to Lark: only
# Lark can say why it fails.
LARK_CONTEXT_LINES = 100
# Parser(fast=False) has Lark read every line, and Lark's time grows steeply with the places where
# a quoted field may end, '" "' (a quote, a space, a quote: free text may hold them, each one more
# reading of the line): ~0.1-0.2 s a line with 16 of them, ~1 s with 32, ~8 s with 80, over 5 minutes
# with 500 (a header value of '" " " …'). So it reads a line with at most LARK_EXTRA_BREAKS more than
# its layouts' quoted fields allow (overlapping: '" " "' is two); one with more is a malformed reject
# naming the limit (lark_limit), which the fast path's regexes read in linear time. A quote without a
# space after it costs no more (a user agent of 8,000 '"': ~0.2 s).
LARK_EXTRA_BREAKS = 12
BREAK = '" "'
_BREAKS = re.compile('"(?= ")')


def reject_glued(df: pl.DataFrame, head_rx: str, rejects: list[dict]) -> pl.DataFrame:
    """Two access lines written without a newline between them would parse as one, its free text
    holding the second line; a second match of ``head_rx`` ("[START_TIME] \"") in a line gives them
    away. They become rejects; returns the other lines."""
    glued = df["body"].str.count_matches(head_rx) > 1
    if not glued.any():
        return df
    head = re.compile(head_rx)
    for ln, raw, body, plen in df.filter(glued).select("line_number", "raw", "body", "prefix_len").iter_rows():
        col = [m.start() for m in head.finditer(body)][1] + 1 + (plen or 0)
        why = f"column {col}: a second access line starts here (two lines glued together: a newline is missing)"
        rejects.append(_reject(ln, raw, why, "malformed", col))
    return df.filter(~glued)


# The body a line had before parse._trim took the spaces around it (null for the others).
PADDED = "__padded"


def classify_noise(df: pl.DataFrame, noise: Sequence[tuple[str, str]], rejects: list[dict],
                   past_words: dict[str, str] | None = None, custom=None) -> pl.DataFrame:
    """The lines of ``df`` that a noise rule (``noise``: its name in NOISE_RULES and its regex) takes
    become rejects (the first rule that matches names it, ``noise_hits``); returns the others. One
    query for all rules: each polars call costs ~0.2 ms, more than the few lines that get here. Under
    a given text format (``custom``, which left these lines) the reason of a WORD_AFTER_TIME_RULES line
    says where it departs from that format too: an access line of another format (time, tab, method,
    tab) reads as istio-agent's, so a wrong format given would be said as noise alone."""
    which = pl.coalesce([pl.when(hit).then(pl.lit(k, pl.Int8))
                         for k, hit in enumerate(noise_hits(df, noise, past_words))]).alias("__noise")
    marked = df.select("line_number", "raw", "body", "prefix_len", which)
    for ln, raw, body, plen, k in marked.filter(pl.col("__noise").is_not_null()).iter_rows():
        mine = _departure(custom, body) if noise[k][0] in WORD_AFTER_TIME_RULES else None
        why = NOISE_RULES[noise[k][0]] + (f" (nor does it follow the given format: {mine.describe(plen or 0, layout=False)})"
                                          if mine is not None else "")
        rejects.append(_reject(ln, raw, why, "noise"))
    return df.filter(marked["__noise"].is_null())


def _departure(custom, body: str):
    """Where ``body`` departs from a given text format (``custom``: a CustomLayout) by its grammar's
    diagnosis, or None (no format, a JSON one, or none found)."""
    if custom is None or custom.rulebook is None:
        return None
    return diagnose_line(custom.rulebook, body, (custom.name,))


def noise_hits(df: pl.DataFrame, noise: Sequence[tuple[str, str]],
               past_words: dict[str, str] | None = None) -> list[pl.Expr]:
    """Whether each rule of ``noise`` takes a line of ``df``, one expression a rule: a line the parser
    tried without the spaces around it is looked at as it was (``PADDED``: noise.lark's rules of the
    debug exporter's indented lines); a rule of ``past_words`` (its name: its regex, ``words_regex``)
    also at the whole line, past up to WORDS words that a stern prefix could be. The one reading of
    classify_noise and of a custom layout's claim on a line (layouts.CustomLayout.take_lines)."""
    body = pl.coalesce(PADDED, "body") if PADDED in df.columns else pl.col("body")
    past_words = past_words if past_words and "line" in df.columns else {}

    def hit(name: str, rx: str) -> pl.Expr:
        found = body.str.contains(rx)
        return found | pl.col("line").str.contains(past_words[name]) if name in past_words else found

    return [hit(name, rx) for name, rx in noise]


def words_regex(noise: "_grammar.Rulebook", prefix: "_grammar.Rulebook") -> dict[str, str]:
    """The regexes of WORDS_RULES at the start of a line or past up to WORDS of prefix.lark's names."""
    name = prefix.compile("pod").pattern
    return {rule: f"^(?:{name} ){{0,{WORDS}}}{noise.regex(rule)[1:]}" for rule in WORDS_RULES}


def take_lines(access: "_grammar.Rulebook", layouts: Sequence[str], df: pl.DataFrame, rejects: list[dict], *,
               fast: bool = True, exact: bool = True, custom=None, words: pl.Series | None = None) -> list[pl.DataFrame]:
    """Lines no fast-path regex took: Lark parses them from ``access_line`` (any of ``layouts``, in
    the order a line is tried), or says where they break. ``fast``: the regexes were tried first (so
    Lark only adds context to a reject, see LARK_CONTEXT_LINES); ``exact=False``: no Lark at all, the
    diagnosis alone classifies a line; ``custom``: the given format's layout (layouts.CustomLayout),
    which left these lines: a line that starts like no built-in layout is said to match neither it
    nor them (``_noise_reason``); ``words``: which lines had stern's words alone split off as their
    prefix (collectors.bare_words): where what follows them starts like no layout, another program's
    line lost its first words to it ("listening on :15000": pod "listening", container "on"), so its
    reason is of the line as written, from its column 1. Returns the parsed rows as one frame (or none)."""
    rows = []
    words = pl.lit(False) if words is None else pl.lit(words)
    for ln, raw, line, body, plen, pod, container, received, worded in df.select(
        "line_number", "raw", "line", "body", "prefix_len", "pod", "container", "received_at", words.alias("__words")
    ).iter_rows():
        limit = None if fast or not exact else lark_limit(access, tuple(layouts), body)
        if len(body) > MAX_DIAGNOSE_CHARS:  # (Parser(fast=False) reads it: it stands in for the regexes)
            got = None if fast or not exact or limit else _parse_whole(access, body, "access_line")
            if got is None:
                rejects.append(_reject(ln, raw, limit or f"matches no access-log layout ({len(body)} characters)", "malformed"))
            else:
                rows.append(_row(got[1], ln, raw, got[0], pod, container, received))
            continue
        plen = plen or 0
        where = diagnose_line(access, body, layouts)
        if worded and where and where.column == 1:  # (the words may be the line's own: see above)
            body, plen = line, as_written(raw, line)
            where = diagnose_line(access, body, layouts)
        if where and where.column == 1:  # starts like no layout: another program's output
            why, col = _noise_reason(where, body, plen, custom)
            rejects.append(_reject(ln, raw, why, "noise", col))
            continue
        if limit is not None:
            rejects.append(_reject(ln, raw, limit, "malformed"))
            continue
        if where and (not exact or fast and (line_in_input(ln) > LARK_CONTEXT_LINES
                                             or not lark_can_explain(access, tuple(layouts), body))):
            rejects.append(_reject(ln, raw, where.describe(plen), "malformed", where.column + plen))
            continue
        try:
            layout, fields = access.parse(body, "access_line")
        except _grammar.GrammarMismatch as e:
            lark = _shift_column(str(e), e.column, (e.column or 0) + plen)
            if where is None:  # a layout's regex takes the whole line but Lark does not (a bug)
                reason, col = f"not an access line of any known layout: {lark}", (e.column or 0) + plen
            else:
                reason, col = where.describe(plen, lark, lark_column=(e.column or 0) + plen), where.column + plen
            rejects.append(_reject(ln, raw, reason, "malformed", col))
            continue
        rows.append(_row(fields, ln, raw, layout, pod, container, received))
    return [pl.DataFrame(rows, infer_schema_length=None)] if rows else []


def as_written(raw: str, line: str) -> int:
    """Where ``line`` (a line past its byte-order mark) starts in ``raw`` as written, 0-based: the
    mark's length, so that a column counts from the line's own start."""
    written = raw.rstrip("\r\n")
    return len(written) - len(line) if written.endswith(line) else 0


def _noise_reason(where, body: str, plen: int, custom) -> tuple[str, int]:
    """The reason and column of a line that starts like none of the built-in layouts (``where``: its
    departure from them, at column 1). Under a given format (``custom``, which left the line: it does
    not follow it, or only for fields that take any word, diagnose.tells) it names both: where the line
    departs from that format and what it expected there, then the layouts' start; the column is the
    format's. Not "Envoy's and Istio's text layouts start with '['" alone: the user gave a format of their own."""
    layouts = f"column {1 + plen}: Envoy's and Istio's text layouts start with {where.step.expects}, got {where.got!r}"
    if custom is None:
        return f"not an access line: {layouts}", 1 + plen
    if custom.rulebook is None:  # (a JSON format: its lines are JSON objects)
        return f"not an access line: matches neither the given JSON format (a JSON object) nor a built-in layout ({layouts})", 1 + plen
    mine = _departure(custom, body)
    if mine is None:  # (the format's regex takes it, Lark does not: Lark's reason was asked of it)
        return f"not an access line: matches neither the given format nor a built-in layout ({layouts})", 1 + plen
    return (f"not an access line: matches neither the given format ({mine.describe(plen, layout=False)}) "
            f"nor a built-in layout ({layouts})", mine.column + plen)


def take_parsed(books: Sequence[tuple["_grammar.Rulebook", str, tuple[str, ...]]], df: pl.DataFrame,
                frames: list[pl.DataFrame]) -> pl.DataFrame:
    """``Parser(fast=False)``'s stand-in for the fast path's regexes: the lines of ``df`` that Lark
    parses whole from a start rule of ``books`` (``(rulebook, start, its layouts)``, tried in the order
    the fast path tries their regexes: a custom layout's, then ``access_line``) become rows, a frame per
    start rule, into ``frames``. Returns the other lines: they take the steps after the fast path's
    (noise, a custom layout's malformed lines, ``take_lines``), as the lines its regexes leave do.
    A line of any length: the fast path reads a line longer than MAX_DIAGNOSE_CHARS (a long URL,
    a line over 16 KiB a container runtime split and logpipe joined), and so does this; not one past
    ``lark_limit`` (those steps reject it)."""
    taken: set[int] = set()
    for book, start, layouts in books:
        rows = []
        for ln, raw, body, pod, container, received in df.select(
            "line_number", "raw", "body", "pod", "container", "received_at"
        ).iter_rows():
            got = None if ln in taken or lark_limit(book, layouts, body) else _parse_whole(book, body, start)
            if got is None:
                continue
            rows.append(_row(got[1], ln, raw, got[0], pod, container, received))
            taken.add(ln)
        if rows:
            frames.append(pl.DataFrame(rows, infer_schema_length=None))
    return df.filter(~pl.col("line_number").is_in(list(taken))) if taken else df


def _parse_whole(book: "_grammar.Rulebook", body: str, start: str) -> tuple[str, dict] | None:
    """Lark's reading of ``body`` from ``start`` (the layout, its fields), or None."""
    try:
        return book.parse(body, start)
    except _grammar.GrammarMismatch:
        return None


def lark_can_explain(access: "_grammar.Rulebook", layouts: tuple[str, ...], body: str, given: bool = False) -> bool:
    """Whether Lark is asked for its context on a malformed line (see LARK_CONTEXT_CHARS); ``given``:
    of a given format (see LARK_CONTEXT_SPACES)."""
    return (len(body) <= LARK_CONTEXT_CHARS and body.count('"') <= _max_quotes(access, layouts) + LARK_CONTEXT_EXTRA_QUOTES
            and (not given or body.count(" ") <= LARK_CONTEXT_SPACES))


@functools.lru_cache(maxsize=16)
def _max_quotes(access: "_grammar.Rulebook", layouts: tuple[str, ...]) -> int:
    """The most double quotes a line of one of ``layouts`` has."""
    return max(sum(1 for s in _steps.layout_steps(access, name) if s.expects == "'\"'") for name in layouts)


def lark_limit(book: "_grammar.Rulebook", layouts: tuple[str, ...], body: str) -> str | None:
    """Why the exact path does not ask Lark to read ``body`` (see LARK_EXTRA_BREAKS), or None."""
    n, limit = len(_BREAKS.findall(body)), _max_quotes(book, layouts) // 2 + LARK_EXTRA_BREAKS
    if n <= limit:
        return None
    return (f"not read by the exact path: {n} '{BREAK}' (a quote, a space, a quote), more than its limit"
            f" of {limit} (Lark's time grows steeply with them; the fast path reads such a line)")


def _shift_column(message: str, old: int | None, new: int) -> str:
    if old is None or old == new:
        return message
    return message.replace(f"column {old}:", f"column {new}:", 1)
