"""Custom layouts: an Envoy format string, JSON format or grammar file as a layout that the parser
tries before the built-in ones, and the parser for the CLI's format options.

A format string becomes a Lark grammar (``logpipe/formats.py``) parsed exactly as a built-in layout;
a JSON format, a mapping of keys to columns; ``--format-file`` is read by ``logpipe/formatfile.py``.
A layout's ``spec`` rebuilds it, so a dataset's manifest remembers it.
"""
from __future__ import annotations

import functools
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LogpipeError, UsageError
from .formatfile import read_format_file
from .formats import (LIMIT_RX, QUERY_ALIASES, TIME_SPEC_RX, VIEW_COLUMNS, FormatError, OmittingFormat, Operator, _flatten, _strftime,
                      cluster_note, filter_state_json, grammar_from_format, greedy_tail, json_operators, parse_format, typo_notes)
from .schema import COLUMNS

# %RESPONSE_FLAGS_LONG%'s names and the short codes the record keeps (FORMATS.md c, from Envoy's
# source/common/stream_info/utility.h): the reports ask for UF, UH, … whichever the mesh logs. A name
# not here (an extension's own flag) is kept as it is.
LONG_FLAGS = {
    "NoHealthyUpstream": "UH", "UpstreamConnectionFailure": "UF", "UpstreamOverflow": "UO", "NoRouteFound": "NR",
    "UpstreamRetryLimitExceeded": "URX", "NoClusterFound": "NC", "DurationTimeout": "DT",
    "DownstreamConnectionTermination": "DC", "FailedLocalHealthCheck": "LH", "UpstreamRequestTimeout": "UT",
    "LocalReset": "LR", "UpstreamRemoteReset": "UR", "UpstreamConnectionTermination": "UC", "DelayInjected": "DI",
    "FaultInjected": "FI", "RateLimited": "RL", "UnauthorizedExternalService": "UAEX", "RateLimitServiceError": "RLSE",
    "InvalidEnvoyRequestHeaders": "IH", "StreamIdleTimeout": "SI", "DownstreamProtocolError": "DPE",
    "UpstreamProtocolError": "UPE", "UpstreamMaxStreamDurationReached": "UMSDR", "OverloadManagerTerminated": "OM",
    "DnsResolutionFailed": "DF", "ResponseFromCacheFilter": "RFCF", "NoFilterConfigFound": "NFCF", "DropOverload": "DO",
    # (newer than FORMATS.md's table: Envoy's usage.rst and stream_info's CoreResponseFlag)
    "DownstreamRemoteReset": "DR", "UnconditionalDropOverload": "UDO",
}


# ---- a custom layout, as the parser uses it ----------------------------------------------------------


# A byte of a line that is no UTF-8, as the line's text has it (backslashreplace's "\\xc3", parse.py)
_ESCAPED_BYTE = re.compile(r"\\x[0-9a-f]{2}")


@dataclass
class CustomLayout:
    """One custom layout: a text grammar (from a format string or a file) or a JSON key mapping.

    ``spec`` says where it came from (``text:<format>``, ``json:<object>``, ``grammar:<text>``) and
    rebuilds it (``layout_from_spec``); datasets keep it in their manifest."""

    spec: str
    name: str
    rulebook: object | None = None  # logpipe.grammar.Rulebook of a text layout
    extra: list[str] = field(default_factory=list)
    counts: frozenset = frozenset()  # the extra columns that are 64-bit ints (``_count_columns``), the rest text
    long_flags: bool = False  # response_flags logged by %RESPONSE_FLAGS_LONG% (LONG_FLAGS)
    time_format: str | None = None  # chrono format of a customised %START_TIME(…)%
    time_spec: str | None = None  # and its spec (``time_fault`` names the part of a time that is wrong)
    # column -> (its operator, N): a text operator truncated to N characters (%REQ(USER-AGENT):10%)
    limits: dict[str, tuple[str, int]] = field(default_factory=dict)
    # the columns of metadata operators (%DYNAMIC_METADATA(…)%, …: ``_METADATA_OPERATORS``), whose string
    # values Envoy before 1.19 wrote JSON-quoted ("abc"), as ``unquote_metadata`` reads them
    metadata: frozenset = frozenset()
    json_keys: dict[str, str] | None = None
    notes: list[str] = field(default_factory=list)  # what a user of this format should know (the CLI says them)
    given: str | None = None  # the CLI option that gave it (``--format-file PATH``), shell-quoted (``option``)

    def __reduce__(self):  # Lark objects do not pickle; the spec rebuilds the layout exactly
        return (layout_from_spec, (self.spec,))

    @property
    def option(self) -> str:
        """The format option that gives this layout to another command, shell-quoted, for a hint to
        paste (``head FILE | logpipe parse OPTION``): the one the user gave, else (a format the dataset
        remembers) ``--format-string`` of the format itself; a remembered grammar has no file to name."""
        if self.given:
            return self.given
        kind, _, body = self.spec.partition(":")
        if kind == "text_omit":  # (omit_empty_values is said in a format file only)
            return "--format-file FILE.yaml"
        return f"--format-string {shlex.quote(body)}" if kind in ("text", "json") else "--grammar FILE.lark"

    @property
    def schema(self):
        import pyarrow as pa

        from .schema import RECORD_SCHEMA

        return pa.schema(list(RECORD_SCHEMA) + [pa.field(c, pa.int64() if c in self.counts else pa.string())
                                                for c in self.extra])

    def prepare(self, df, rejects: list | None = None):
        """Rewrite a customised START_TIME of this layout's rows as ISO-8601 UTC, which records.py
        types (a value that does not fit the spec is kept as it is and rejected there), and flags'
        long names as their short codes (LONG_FLAGS). A row whose value of a truncated column
        (``limits``) is longer than Envoy truncates it to is no line of this format: to ``rejects``; so
        is one whose time has a part no time has (month 13: ``time_fault`` names it)."""
        import polars as pl

        if self.limits and df is not None and rejects is not None:
            df = self._over_limits(df, rejects)
        if self.metadata and df is not None:
            df = self._unquote_metadata(df)
        if self.long_flags and df is not None and "response_flags" in df.columns:
            flags = pl.col("response_flags").cast(pl.String)
            short = flags.str.split(",").list.eval(pl.element().replace(LONG_FLAGS)).list.join(",")
            df = df.with_columns(pl.when(pl.col("log_format") == self.name).then(short).otherwise(flags)
                                 .alias("response_flags"))
        if not self.time_format or df is None or "start_time" not in df.columns:
            return df
        col = pl.col("start_time").cast(pl.String)
        text, fmt = col, self.time_format
        epoch = re.fullmatch(r"%s%([1-9])f", fmt)
        if epoch:  # epoch milliseconds (%s%3f), which chrono reads only with a dot: 1740823200123 -> 1740823200.123
            digits = int(epoch[1])
            text = pl.concat_str(text.str.slice(0, text.str.len_chars() - digits), pl.lit("."), text.str.slice(-digits))
            fmt = f"%s.%{digits}f"
        parsed = text.str.to_datetime(fmt, strict=False, time_unit="us")
        if not re.search(r"%:?z", self.time_format):
            parsed = parsed.dt.replace_time_zone("UTC")
        iso = parsed.dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        mine = pl.col("log_format") == self.name
        if self.time_spec and rejects is not None:
            df = self._bad_times(df, parsed.is_null() & mine & ~col.is_in(["-", ""]) & col.is_not_null(), rejects)
        return df.with_columns(pl.when(mine).then(pl.coalesce(iso, col)).otherwise(col).alias("start_time"))

    def _unquote_metadata(self, df):
        """``df`` with this layout's metadata values that are one JSON string (``"abc"``) as that string
        (``abc``): Envoy's MetadataFormatter wrote a string value as JSON until 1.19, which writes it as
        it is (envoyproxy/envoy PR #16736, runtime guard ``unquote_log_string_values``); an object or a
        list stays its JSON text, in the text and the JSON formats alike."""
        import polars as pl

        mine = pl.col("log_format") == self.name
        for c in (c for c in self.metadata if c in df.columns):
            text = pl.col(c).cast(pl.String)
            quoted = df.select(pl.int_range(pl.len()).filter(mine & text.str.starts_with('"') & text.str.ends_with('"')
                                                               & (text.str.len_chars() > 1))).to_series().to_list()
            if not quoted:
                continue
            values = df[c].cast(pl.String).to_list()
            for i in quoted:
                values[i] = _json_string(values[i])
            df = df.with_columns(pl.Series(c, values, dtype=pl.String))
        return df

    def _bad_times(self, df, unread, rejects: list):
        """``df`` without the rows of ``unread`` (their time did not read with the spec) whose time has
        a part no time has: each a malformed reject naming that part, at its column of the line. Any
        other row is kept, for records.py's reason (a time that does not fit the spec at all)."""
        import polars as pl

        from .records import AT, _reject

        rows = df.select(pl.int_range(pl.len()).filter(unread)).to_series().to_list()
        bad = []
        for i in rows:
            fault = time_fault_reason("start_time", self.time_spec, str(df["start_time"][i]),
                                      f"read with %START_TIME({self.time_spec})%")
            if fault is None:
                continue
            why, at = fault
            rejects.append(_reject(df["line_number"][i], df["raw"][i], why, "malformed") | {AT: at})
            bad.append(i)
        return df.filter(~pl.int_range(pl.len()).is_in(bad)) if bad else df

    def _over_limits(self, df, rejects: list):
        """``df`` without this layout's rows whose value of a ``limits`` column is longer than its N,
        each a malformed reject naming the column, its operator and the length."""
        import polars as pl

        from .records import _reject

        mine = pl.col("log_format") == self.name
        names = [c for c in self.limits if c in df.columns]
        # Envoy cuts a value to N bytes (a std::string's), maybe within a character; the line's bytes that
        # are no UTF-8 read as backslashreplace's "\\xNN" (parse.py): one byte each, not four characters
        over = {c: mine & (pl.col(c).cast(pl.String).str.replace_all(_ESCAPED_BYTE.pattern, "?").str.len_bytes()
                           > self.limits[c][1]) for c in names}
        if not names:
            return df
        flags = df.select(*(e.fill_null(False).alias(c) for c, e in over.items()))
        bad = pl.any_horizontal(flags)
        if not flags.select(bad.any()).item():
            return df
        for i in flags.select(pl.int_range(pl.len()).filter(bad)).to_series().to_list():
            c = next(c for c in names if flags[c][i])
            value = str(df[c][i])
            op, n = self.limits[c]
            rejects.append(_reject(df["line_number"][i], df["raw"][i],
                                   f"invalid value: {c}: {len(_ESCAPED_BYTE.sub('?', value).encode())} bytes, longer than the {n} {op} "
                                   f"truncates it to ({value[:40]!r})", "malformed"))
        return df.filter(~flags.select(bad).to_series())

    def keep_prefix(self, df):
        """Undo the split of a collector prefix (kubectl --timestamps, …) where the whole line, not
        the rest after the prefix, is a line of this layout: e.g. a format starting ``%START_TIME% ``."""
        import polars as pl

        if self.rulebook is None or "prefix_len" not in df.columns or not (df["prefix_len"] > 0).any():
            return df
        rx = self.rulebook.regex(self.name)
        whole = (pl.col("prefix_len") > 0) & pl.col("line").str.contains(rx) & ~pl.col("body").str.contains(rx)
        return df.with_columns(
            pl.when(whole).then(pl.col("line")).otherwise(pl.col("body")).alias("body"),
            pl.when(whole).then(0).otherwise(pl.col("prefix_len")).alias("prefix_len"),
            *(pl.when(whole).then(None).otherwise(pl.col(c)).alias(c) for c in ("pod", "container", "received_at")),
        )

    def take_lines(self, parser, df, frames: list, rejects: list, claim: int = 0):
        """The exact (Lark) path of this layout for the lines no fast-path regex took: rows into
        ``frames``; a line it does not parse is rejected with this grammar's reason. With ``claim``
        (the fast path's lines, before the noise rules look at them), only the lines that follow
        this format for ``claim`` fields or more: another program's line that merely starts with a
        time, as a format ``%START_TIME% …`` does, is left to the noise rules; one a noise rule takes
        whole (istio-agent's ``TIME<TAB>info<TAB>…``, whose level a tab-separated format's second field
        may read) must follow it for one field more."""
        import polars as pl

        from .diagnose import diagnose_line, tells
        from .grammar import GrammarMismatch
        from .batches import line_in_input
        from .exact import LARK_CONTEXT_LINES, as_written, lark_can_explain, lark_limit, noise_hits
        from .records import _reject, _row

        if self.rulebook is None:
            return df
        rows, others = [], []
        whole_line = pl.col("line") if "line" in df.columns else pl.col("body")
        shaped: set = set()
        if claim and df.height:  # (the lines a noise rule takes: one query, as exact.classify_noise)
            hit = pl.any_horizontal(noise_hits(df, parser._noise, parser._noise_words))
            shaped = set(df.filter(hit)["line_number"].to_list())
        for ln, raw, line, body, plen, pod, container, received in df.select(
            "line_number", "raw", whole_line.alias("__line"), "body", "prefix_len", "pod", "container", "received_at"
        ).iter_rows():
            # With the fast path, these lines are malformed (or another program's): Lark (~0.5 ms a
            # line) says why only among an input's first LARK_CONTEXT_LINES lines, as for the built-in
            # layouts (exact.py); later ones get the grammar's diagnosis (~0.05 ms), unless it finds
            # nothing or a departure at the start (Lark decides those).
            where = diagnose_line(self.rulebook, body, (self.name,))  # (~0.05 ms; its reason only with the fast path)
            if plen and line != body and where is not None and where.column <= 1:
                # The prefix split off (kubectl --timestamps' time) may be this format's own start
                # (``%START_TIME% …``, keep_prefix): a line that follows it further is read whole.
                whole = diagnose_line(self.rulebook, line, (self.name,))
                if whole is None or whole.fields > where.fields:  # (the line's own column 1: where it ends what was written)
                    plen = as_written(raw, line)  # (a byte-order mark before it)
                    body, where, pod, container, received = line, whole, None, None, None
            # A line of words follows a format whose first fields take any word (a method, free text) and
            # tells nothing of it (diagnose.tells): not this format's line (the layouts', or noise). Not one
            # with a double quote: its free text may hold it, where the diagnosis stops short (Lark decides).
            if where is not None and '"' not in body and not tells(self.rulebook, where):
                others.append(ln)
                continue
            if claim and where is not None and where.fields < claim + (ln in shaped):
                others.append(ln)
                continue
            if not parser.fast:
                where = None
                why = lark_limit(self.rulebook, (self.name,), body)
                if why is not None:
                    rejects.append(_reject(ln, raw, why, "malformed"))
                    continue
            if where is not None and where.column > 1 and (line_in_input(ln) > LARK_CONTEXT_LINES or not parser.exact
                                                           or not lark_can_explain(self.rulebook, (self.name,), body, True)):
                col = where.column + (plen or 0)
                why = f"does not follow the given format: {where.describe(plen or 0, layout=False)}"
                rejects.append(_reject(ln, raw, why, "malformed", col))
                continue
            try:
                _, fields = self.rulebook.parse(body, self.name)
            except GrammarMismatch as e:
                if (e.column or 1) <= 1:  # not even the start: noise, or another layout (parse.py decides)
                    others.append(ln)
                    continue
                col = (e.column or 0) + (plen or 0)
                lark = f"column {col}: {str(e).partition(': ')[2]}"
                if where is not None and where.column > 1:  # (where the line departs from the format, then Lark's word)
                    lark = where.describe(plen or 0, lark, layout=False, lark_column=col)
                    col = where.column + (plen or 0)
                rejects.append(_reject(ln, raw, f"does not follow the given format: {lark}", "malformed", col))
                continue
            rows.append(_row(fields, ln, raw, self.name, pod, container, received))
        if rows:
            frames.append(pl.DataFrame(rows, infer_schema_length=None))
        return df.filter(pl.col("line_number").is_in(others))

    def json_record(self, obj) -> tuple[str, dict] | None:
        """A decoded JSON line as ``(log_format, {column: text})`` when it has this format's keys: at
        least half of its operators' keys, or two or more and no key the format lacks (Envoy's
        ``omit_empty_values`` leaves a TCP connection's line a few keys of the format)."""
        flat, hits = self._json_hits(obj)
        if not hits or (len(hits) < len(self.json_keys) // 2 and not (len(hits) >= 2 and flat.keys() <= self.json_format_keys)):
            return None
        from .jsonlog import _json_text

        return self.name, {self.json_keys[k]: _json_text(flat[k]) for k in hits}

    def json_miss(self, obj) -> str | None:
        """Why a JSON object that holds some of this format's keys is not read as it (``json_record``)."""
        flat, hits = self._json_hits(obj)
        if not hits:
            return None
        others = [k for k in flat if k not in self.json_format_keys]
        held = (f"JSON object holds {len(hits)} of the given format's {len(self.json_keys)} keys "
                f"({', '.join(hits[:6])}{', …' if len(hits) > 6 else ''})")
        if not others:  # (only the format's keys, but fewer than two)
            return f"{held}; a line of the format holds half of its keys, or two or more and only keys of it"
        return (f"{held} and keys it does not have ({', '.join(others[:6])}{', …' if len(others) > 6 else ''}); "
                "a line of the format holds half of its keys, or only keys of it")

    def _json_hits(self, obj) -> tuple[dict, list[str]]:
        """A decoded JSON line's keys (flattened, dotted) and those of them this format has."""
        flat = _flatten(obj, leaves=self.json_keys) if self.json_keys and isinstance(obj, dict) else {}
        return flat, [k for k in self.json_keys or () if k in flat]

    @functools.cached_property
    def json_format_keys(self) -> frozenset:
        """Every key of the JSON format (dotted for nested objects), its literal values' too."""
        return frozenset(_flatten(json.loads(self.spec.partition(":")[2]))) if self.spec.startswith("json:") else frozenset()


def layout_from_format(fmt: str) -> CustomLayout:
    """A text format string (or a JSON format object written as JSON) as a layout."""
    stripped = fmt.strip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except ValueError as e:
            if stripped.endswith("}") and re.match(r'\{\s*"', stripped):  # (a JSON format, mistyped)
                raise FormatError(f"the format is a JSON object that does not read as JSON: {e}; fix it (a comma "
                                  "after the last key? quotes?), or pass a text format") from None
            obj = None
        if isinstance(obj, dict):
            return layout_from_json(obj)
    text = grammar_from_format(fmt)
    kind = "text_omit" if isinstance(fmt, OmittingFormat) else "text"  # (layout_from_spec rebuilds it so)
    layout = layout_from_grammar(text, source="<format string>", spec=f"{kind}:{fmt}")
    pieces = parse_format(fmt)  # (its START_TIME spec: layout_from_grammar read it from the grammar's TIME_SPEC_RX line)
    layout.notes += typo_notes(pieces)
    layout.metadata = _metadata_columns(pieces)
    layout.notes += filter(None, [cluster_note({p.column for p in pieces if isinstance(p, Operator)})])
    tail = greedy_tail(pieces)
    if tail is not None:
        layout.notes.append(f"the format ends with {tail.text} unquoted, which may hold spaces: it takes the rest "
                            f"of a line, so a line of Istio's own layouts that starts as this format does reads as "
                            f"this format, the rest of it in {tail.column} (they are tried after it)")
    return layout


def layout_from_json(fmt: dict) -> CustomLayout:
    operators = json_operators(fmt)
    keys = {key: op.column for key, op in operators.items()}
    first = next((op for op in operators.values() if op.column == "start_time"), None)
    time = first.arg if first is not None else None  # (the spec of the START_TIME read into start_time)
    extra = [c for c in dict.fromkeys(keys.values()) if c not in COLUMNS]
    # (a count operator's value: a number in typed JSON, or "-" / a string of digits in Istio's)
    counts = frozenset(op.column for op in operators.values() if op.shape == "count" and op.column in extra)
    long_flags = any(op.shape == "flags_long" and op.column == "response_flags" for op in operators.values())
    layout = CustomLayout(spec="json:" + json.dumps(fmt, separators=(",", ":")), name="custom_json",
                          extra=extra, counts=counts, long_flags=long_flags,
                          time_format=_strftime(time)[1] if time else None, time_spec=time, json_keys=keys,
                          metadata=_metadata_columns(operators.values()))
    layout.notes += typo_notes(list(operators.values()))
    layout.notes += filter(None, [cluster_note(set(keys.values()))])
    mixed = [k for k, v in _flatten(fmt).items() if k not in operators and isinstance(v, str) and "%" in v
             and any(isinstance(p, Operator) for p in _pieces(v))]
    if mixed:  # ("%DURATION%.0" is Envoy's own example of one)
        layout.notes.append(f"the JSON format's key(s) {', '.join(mixed[:5])} hold operators with other text in one "
                            f"value ({_flatten(fmt)[mixed[0]]!r}); logpipe reads a key whose value is one operator, "
                            "so these keys are not read: give each operator a key of its own")
    return layout


def _pieces(text: str) -> list:
    """A JSON format value read as a format string (its operators and text), or [] when it is none."""
    try:
        return parse_format(text)
    except FormatError:
        return []


def layout_from_grammar(text: str, *, source: str, spec: str | None = None, import_dir: str | None = None) -> CustomLayout:
    """A Lark grammar with one start rule (``custom``, ``start``, or the first rule) as a layout."""
    from . import grammar as _grammar
    from .resources import resource_dir

    names = _grammar.start_rules(text)
    if not names:
        raise FormatError(f"grammar {source} defines no rule; write one start rule such as `custom: …`"
                          " (see `logpipe grammar --from-format`)")
    start = next((n for n in ("custom", "start") if n in names), names[0])
    paths = ([import_dir] if import_dir else []) + [str(resource_dir("grammars"))]
    try:
        book = _grammar.Rulebook(text, [start], source=source, import_paths=paths)
    except LogpipeError as e:
        raise FormatError(f"{e}; a layout imports its terminals and shared rules as grammars/access.lark"
                          " does (%import .common (SP, DQ, INT, WORD, TEXT)), see `logpipe grammar --from-format`") from None
    extra = _extra_columns(book, start)
    taken = sorted(set(extra) & (VIEW_COLUMNS | QUERY_ALIASES))
    if taken:  # (a format string's operator takes its prefix instead: formats._RESERVED)
        raise FormatError(f"grammar {source}: rule {taken[0]!r} would be an extra column of a name the views or the "
                          f"reports give a column of their own (date, destination, source_ip, …); rename the rule")
    book.fields = book.fields | frozenset(extra)
    layout = CustomLayout(spec=spec or f"grammar:{text}", name=start, rulebook=book, extra=extra,
                          counts=_count_columns(book, extra),
                          long_flags="response_flags" in book.rule_names()
                          and "FLAGS_LONG" in _terminals(book.rule_tree("response_flags")))
    book.compile(start)  # a grammar the fast path cannot take fails now, with the grammar's name
    time_spec = TIME_SPEC_RX.search(text)  # (one `logpipe grammar --from-format` wrote: its START_TIME's spec)
    if time_spec:
        layout.time_format, layout.time_spec = _strftime(time_spec[1])[1], time_spec[1]
    layout.limits = {c: (op, int(n)) for op, c, n in LIMIT_RX.findall(text) if c in book.fields}
    return layout


# Envoy's operators whose value its MetadataFormatter writes (source/common/formatter/stream_info_formatter.cc)
_METADATA_OPERATORS = frozenset({"DYNAMIC_METADATA", "CLUSTER_METADATA", "UPSTREAM_METADATA", "METADATA"})


def _metadata_columns(operators) -> frozenset:
    """The columns of a format's metadata operators (``CustomLayout.metadata``), and of its
    %FILTER_STATE(KEY)%s that Envoy writes as JSON (``formats.filter_state_json``): a string value
    "abc" is abc, as a metadata value is."""
    return frozenset(op.column for op in operators if isinstance(op, Operator)
                     and (op.name in _METADATA_OPERATORS or filter_state_json(op)))


def _json_string(text: str) -> str:
    """A value that is one JSON string (``"a\\"b"``) as the string it is (``a"b``); else as it is."""
    try:
        got = json.loads(text)
    except ValueError:
        return text
    return got if isinstance(got, str) else text


# The times of the built-in layouts (Envoy's %START_TIME%: 2024-05-03T09:12:40.747Z), JSON lines' and a
# collector's (received_at), as a spec ``time_fault`` reads: any fraction, "Z" or an offset (common.lark ISO_TIME)
ISO_TIME_SPEC = "%Y-%m-%dT%H:%M:%E*S%Ez"


def time_fault_reason(column: str, spec: str, value: str, read: str) -> tuple[str, tuple[str, int]] | None:
    """A malformed reject's reason for ``column``'s ``value`` that ``spec`` did not read, when a part of
    it is one no time has (``time_fault``), and where (the value, the part's offset in it); ``read``
    says how the value was read (``read with %START_TIME(…)%``). None otherwise."""
    fault = time_fault(spec, value)
    if fault is None:
        return None
    return f"invalid value: {column}: {fault[1]} in {value[:40]!r}, {read}", (value, fault[0])


def time_fault(spec: str, value: str) -> tuple[int, str] | None:
    """Where a time that a %START_TIME(spec)% did not read is wrong, and how: ``(offset in value,
    "month 13 (%m) is not 01-12")`` for the first specifier whose number no time has (or a day past its
    month's end); None when the value is not of the spec's shape or no part is out of range."""
    import calendar

    from .formats import STRF_RANGES

    rx, groups, letters = _time_reader(spec)
    m = rx.fullmatch(value)
    if m is None:
        return None
    got = {}
    for rule, letter in letters.items():
        group = next((g for g in groups.get(rule, ()) if m.group(g) is not None), None)
        if group is None:
            continue
        text, at = m.group(group), m.start(group)
        key = "S" if letter.startswith("E") and letter.endswith("S") else letter  # (%E3S: the seconds, then
        # their fraction; %Ez, an offset, is no number)
        if key not in STRF_RANGES:
            got[key] = (text, at)
            continue
        number = int(text[:2] if key == "S" else text)
        what, low, high = STRF_RANGES[key]
        if not low <= number <= high:
            width = 3 if key == "j" else 2
            return at, f"{what} {number:0{width}} (%{letter}) is not {low:0{width}}-{high:0{width}}"
        got[key] = (text, at)
    if {"Y", "m", "d"} <= got.keys() or {"Y", "m", "e"} <= got.keys():
        day, at = got.get("d") or got["e"]
        year, month = int(got["Y"][0]), int(got["m"][0])
        if 1 <= year and int(day) > calendar.monthrange(year, month)[1]:
            # ("(30 days)", not ", which has 30 days": the reason goes on " in '2024-04-31T…'", which
            # read as the days the value has)
            return at, (f"day {day.strip()} (%{'d' if 'd' in got else 'e'}) is past the end of {year:04}-{month:02} "
                        f"({calendar.monthrange(year, month)[1]} days)")
    return None


@functools.lru_cache(maxsize=16)
def _time_reader(spec: str):
    """``time_fault``'s reading of a spec's times, a group per specifier: its regex, the rules' groups
    and the rules' specifiers, from the spec's grammar (formats.time_grammar)."""
    from . import grammar as _grammar
    from .formats import time_grammar
    from .resources import resource_dir

    text, letters = time_grammar(spec)
    book = _grammar.Rulebook(text, ["time"], source=f"<%START_TIME({spec})%>", import_paths=[str(resource_dir("grammars"))])
    book.fields = book.fields | frozenset(letters)
    compiled = book.compile("time")
    return re.compile(compiled.pattern), compiled.groups, letters


def _count_columns(book, extra: list[str]) -> frozenset:
    """The extra columns whose rule reads a whole number or ``-`` (its terminals INT, and DASH or not:
    ``formats._COUNT_OPERATORS``' rule ``INT | DASH``): typed as 64-bit ints, as the grammar says they are."""
    return frozenset(c for c in extra if "INT" in _terminals(tree := book.rule_tree(c)) and _count_or_dash(tree))


def _count_or_dash(tree) -> bool:
    """Whether each choice of a rule's EBNF tree is INT or DASH alone: a count or '-'. A choice of
    both in a row (``DASH INT``) reads "-1", which no Envoy count is: its column is text."""
    from lark import Tree
    from lark.grammar import Symbol

    if isinstance(tree, Symbol):
        return tree.is_term and tree.name in ("INT", "DASH")
    if not isinstance(tree, Tree):
        return False
    if tree.data == "expansions":
        return all(_count_or_dash(c) for c in tree.children)
    return tree.data in ("expansion", "value") and len(tree.children) == 1 and _count_or_dash(tree.children[0])


def _terminals(tree) -> set[str]:
    """The terminals a rule's EBNF tree names ("(rule)" for a rule it refers to, "(literal)" for a
    string or regex written in it, "(op)" for an operator such as ``?``)."""
    from lark import Token, Tree
    from lark.grammar import Symbol

    if isinstance(tree, Symbol):
        return {tree.name} if tree.is_term else {"(rule)"}
    if isinstance(tree, Tree) and tree.data == "literal":
        return {"(literal)"}
    if isinstance(tree, Token):
        return {"(op)"}
    return set().union(*(_terminals(c) for c in getattr(tree, "children", ())))


def _extra_columns(book, start: str) -> list[str]:
    """Rules reached from ``start`` outside any column rule that hold only terminals and are not
    columns: the layout's extra columns, in order."""
    from .ruleregex import SUBFIELD_RULES

    out: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name in COLUMNS or name in SUBFIELD_RULES:
            return
        seen.add(name)
        refs = book.references(name)
        if not refs and name != start:
            out.append(name)
        for r in refs:
            visit(r)

    visit(start)
    return out


def layout_from_spec(spec: str) -> CustomLayout:
    kind, _, body = spec.partition(":")
    if kind == "text":
        return layout_from_format(body)
    if kind == "text_omit":
        return layout_from_format(OmittingFormat(body))
    if kind == "json":
        return layout_from_json(json.loads(body))
    if kind == "grammar":
        return layout_from_grammar(body, source="<grammar from a dataset manifest>", spec=spec)
    raise FormatError(f"unknown format spec {spec[:40]!r}; expected text:, text_omit:, json: or grammar:")


# ---- the parser for the CLI's format options --------------------------------------------------------


def layout_from_options(format_string: str | None = None, format_file: str | None = None,
                        grammar_file: str | None = None) -> CustomLayout | None:
    given = [o for o, v in (("--format-string", format_string), ("--format-file", format_file),
                            ("--grammar", grammar_file)) if v]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} each give the layout; use only one of them")
    if not given:
        return None
    if format_string:
        layout = layout_from_format(format_string)
    elif format_file:
        fmt = read_format_file(format_file)
        layout = layout_from_json(fmt) if isinstance(fmt, dict) else layout_from_format(fmt)
    else:
        try:
            text = Path(grammar_file).read_text(encoding="utf-8")
        except OSError as e:
            raise FormatError(f"cannot read grammar {grammar_file}: {e.strerror}; check the path") from None
        layout = layout_from_grammar(text, source=grammar_file, import_dir=str(Path(grammar_file).resolve().parent))
    layout.given = f"{given[0]} {shlex.quote(format_string or format_file or grammar_file)}"
    return layout


def parser_from_options(format_string: str | None = None, format_file: str | None = None,
                        grammar_file: str | None = None):
    """The Parser for ``--format-string`` / ``--format-file`` / ``--grammar`` (at most one); the default
    parser (auto-detection among the built-in layouts) when none is given. ``Parser.format_spec`` is
    what a dataset manifest should record."""
    from .parse import Parser, default_parser

    layout = layout_from_options(format_string, format_file, grammar_file)
    return default_parser() if layout is None else Parser(custom=layout)


def parser_from_spec(spec: str | None):
    """The Parser a manifest's recorded ``format_spec`` describes ("" or None: the default)."""
    from .parse import Parser, default_parser

    return default_parser() if not spec else Parser(custom=layout_from_spec(spec))


def detect_layouts(paths: list[str], parser=None) -> list[tuple[str, str, int]]:
    """``(source, layout, lines)`` per input: rows counted by ``log_format``; rejects as
    ``(noise)`` / ``(malformed)``; blank lines as ``(blank)``, the parts of split lines joined to their
    first part as ``(joined)``; an input with no line at all as ``(empty)``, 0. An input that is not
    there is an error before any is read (it was left out unsaid when another one was there).
    Parsed in this process alone, whatever the input's size: a count of the fast path is cheaper than
    a worker process's boot (~0.5 s of CPU: polars, pyarrow) and the pipes to it (60 MB: 1.5 s here,
    2.1 s with a worker)."""
    from collections import Counter

    from .errors import InputError
    from .parse import default_parser
    from .pipeline import parse_input
    from .sources import expand_inputs

    inputs, errors = expand_inputs(paths)
    if errors:
        raise InputError("; ".join(errors))
    base = parser or default_parser()
    parser = base.with_options(exact=False)  # a count: no reasons, no Lark
    out = []
    for inp in inputs:
        counts: Counter = Counter()
        for batch, _end in parse_input(inp, parser, workers=1):
            counts.update(batch.records.column("log_format").to_pylist())
            counts.update(f"({c})" for c in batch.rejects.column("class").to_pylist())
            counts["(blank)"] += batch.blank
            counts["(joined)"] += batch.joined
        out += [(inp.name, layout, n) for layout, n in counts.most_common() if n] or [(inp.name, "(empty)", 0)]
    return out
