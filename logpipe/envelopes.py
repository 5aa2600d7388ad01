"""Log collectors' JSON records of a line, as their agents and CLIs write them (``Envelopes``):
Fluent Bit and Fluentd (``log``, their ``kubernetes`` filter's names, ``time``), Vector
(``message``, ``kubernetes.pod_name``, ``timestamp``), Filebeat and Logstash (``@timestamp``), what
``logcli query -o jsonl`` and ``stern -o json`` print, Google Cloud Logging's entries, Azure
Monitor's ContainerLogV2 rows and a Splunk search's export. Each holds one line, in any layout; its
pod, container and time become the ``pod``, ``container`` and ``received_at`` columns. Where a
record keeps these is data (the key tables below), read alike by polars for a batch
(``Envelopes.envelopes``) and by ``json.loads`` for the odd record (``Envelopes.envelope``).

``jsonlog.take_lines`` asks of the JSON lines that are no access record; ``parse.Parser`` reads the
lines they held (``envelope_lines``) as a batch's lines are read.
"""
from __future__ import annotations

import json
import re

import polars as pl

from . import runtimes as _runtimes
from .collectors import PROVENANCE, node_log_names
from .jsonlog import _json_record as json_record
from .runtimes import docker_tag

# A log collector's JSON record of a line (Envelopes.envelope): where its line's text is, then its
# time (paths of keys into nested objects), in the order tried. An object is a record of a line when
# it also has one of a collector's own keys (_signed): kubernetes metadata, Vector's source_type,
# Filebeat's @timestamp, Fluent Bit's CRI tag (_p), a stream, Fluent Bit's epoch date, Loki's labels
# (logcli query -o jsonl), stern's podName (stern -o json), logcli's timestamp beside its line
# (-o jsonl --no-labels), Google Cloud Logging's monitored resource (a LogEntry, as a sink writes it
# to Cloud Storage: textPayload, or jsonPayload, the object GKE's agent read from a JSON line,
# ENVELOPE_OBJECT), Azure Monitor's PodName (a ContainerLogV2 row of AKS's Container insights, as a
# query or a data export gives it: LogMessage, a text or the object the agent read from a JSON line),
# or Splunk's result._raw (a search's export: the event's text, its _time, its source the node's log
# file, SOURCE_KEYS), docker's fluentd log driver's container_id beside its stream as "source" (as Fluentd's
# forward input gets it: no pod or container named; rare, read by json.loads alone, not polars' pass: its
# "source" may be another collector's object), or an OpenTelemetry log record (body.stringValue, its resource beside it, as
# logpipe/otlp.py gives an OTLP/JSON file's records: the resource is a collector's key, as Cloud
# Logging's is).
ENVELOPE_TEXT = (("log",), ("message",), ("line",), ("textPayload",), ("LogMessage",), ("result", "_raw"),
                 ("body", "stringValue"))
ENVELOPE_OBJECT = ("jsonPayload", "LogMessage")
ENVELOPE_TIME = (("time",), ("timestamp",), ("@timestamp",), ("TimeGenerated",), ("result", "_time"))
# Where a record names the pod and the container, in the order tried: Fluent Bit's and Fluentd's
# kubernetes filter, Vector's (pod_name, container_name), Filebeat's (pod.name, container.name), Loki's
# labels as logcli writes them (promtail's and Alloy's pod and container; k8s_pod_name and
# k8s_container_name when Loki took the logs over OTLP), stern's, a Cloud Logging k8s_container's,
# a ContainerLogV2 row's, a Splunk event's fields (the Splunk OpenTelemetry Collector's k8s.pod.name
# and k8s.container.name; Splunk Connect for Kubernetes' pod and container_name), an OpenTelemetry
# record's resource or own attributes (the same names: the collector's k8sattributes processor's).
POD_KEYS = (("kubernetes", "pod_name"), ("kubernetes", "pod", "name"), ("labels", "pod"), ("labels", "k8s_pod_name"),
            ("podName",), ("resource", "labels", "pod_name"), ("PodName",), ("result", "k8s.pod.name"),
            ("result", "pod"), ("resource", "k8s.pod.name"), ("attributes", "k8s.pod.name"))
CONTAINER_KEYS = (("kubernetes", "container_name"), ("kubernetes", "container", "name"), ("labels", "container"),
                  ("labels", "k8s_container_name"), ("containerName",), ("resource", "labels", "container_name"),
                  ("ContainerName",), ("result", "k8s.container.name"), ("result", "container_name"),
                  ("resource", "k8s.container.name"), ("attributes", "k8s.container.name"))
# Where a record names the file its line was read from: a node's container log file names its pod and
# container (node_log_names), for a record that names neither: a Splunk event's source, Vector's file
# (its file source's, and kubernetes_logs' for a pod gone before Vector read its metadata), Filebeat's
# log.file.path (without its add_kubernetes_metadata processor), a CloudWatch Logs event's stream (EKS's
# Fluent Bit names it after the file: "<node>-application.var.log.containers.<file>"). The polars pass reads the first three
# (_POLARS_SOURCE_KEYS): its "log" is the line's text, so a Filebeat record, whose "log" is an object,
# is read by envelope.
SOURCE_KEYS = (("result", "source"), ("file",), ("logStreamName",), ("log", "file", "path"))
_POLARS_SOURCE_KEYS = SOURCE_KEYS[:3]


# The keys _signed reads, as a record's JSON text names them (Envelopes._read_envelopes: a line that
# may itself be such a record).
_NESTED_KEYS = r'"(?:kubernetes|source_type|@timestamp|_p|stream|date|labels|podName|timestamp|resource|PodName|result|container_id|logStreamName)"\s*:'


def _signed(obj: dict) -> bool:
    return (isinstance(obj.get("kubernetes"), dict) or obj.get("source_type") is not None
            or obj.get("@timestamp") is not None or obj.get("_p") in ("P", "F") or obj.get("stream") in ("stdout", "stderr")
            or (isinstance(obj.get("date"), (int, float)) and "log" in obj) or isinstance(obj.get("labels"), dict)
            or isinstance(obj.get("podName"), str) or ("line" in obj and obj.get("timestamp") is not None)
            or isinstance(obj.get("resource"), dict) or isinstance(obj.get("PodName"), str)
            or isinstance(_at(obj, ("result", "_raw")), str)
            or (isinstance(obj.get("container_id"), str) and obj.get("source") in ("stdout", "stderr"))
            or isinstance(obj.get("logStreamName"), str))


def _at(obj: dict, path):
    """The value at ``path`` (keys into nested objects) in ``obj``, or None."""
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def named_text(obj: dict, paths) -> str | None:
    """The first non-empty text at one of ``paths`` (keys into nested objects) in ``obj`` (``_at``'s
    walk written out: ``logpipe/otlp.py`` asks it of every record)."""
    for path in paths:
        value = obj
        for key in path:
            value = value.get(key) if type(value) is dict else None  # (JSON's objects: plain dicts)
        if type(value) is str and value:
            return value
    return None


def _struct_of(paths) -> dict:
    """The polars type of the objects ``paths`` go through, texts at their ends (json_decode's)."""
    tree: dict = {}
    for path in paths:
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = None
    typed = lambda node: pl.Struct({k: pl.String if v is None else typed(v) for k, v in node.items()})  # noqa: E731
    return {f.name: f.dtype for f in typed(tree).fields}


def _named_by_source(read: pl.DataFrame) -> pl.DataFrame:
    """``read``'s pod and container, where a record names neither, from the file it names
    (``_POLARS_SOURCE_KEYS``, ``node_log_names``): a few files a batch, read once each."""
    unnamed = read["source"].is_not_null() & read["pod"].is_null() & read["container"].is_null()
    if not unnamed.any():
        return read
    names = {s: node_log_names(s) or (None, None) for s in read["source"].filter(unnamed).unique()}
    return read.with_columns(
        pl.when(unnamed).then(pl.col("source").replace_strict({s: n[k] for s, n in names.items()}, default=None,
                                                               return_dtype=pl.String)).otherwise(pl.col(c)).alias(c)
        for k, c in enumerate(("pod", "container")))


ENVELOPE_PART_ROWS = 64  # (Envelopes.envelopes: a part this small that polars cannot decode goes to envelope)


def _decoded(df: pl.DataFrame) -> pl.DataFrame | None:
    """``df``'s lines (``body``) decoded as records (``_ENVELOPE_TYPE``'s keys, ``__body`` the line),
    or None when polars cannot decode one of them with these types."""
    body = df["body"]
    try:
        return body.str.json_decode(_ENVELOPE_TYPE).struct.unnest().with_columns(body.alias("__body"))
    except pl.exceptions.PolarsError:
        return None


def _field(path) -> pl.Expr:
    expr = pl.col(path[0])
    for key in path[1:]:
        expr = expr.struct.field(key)
    return expr


_ENVELOPE_SCHEMA = {"line_number": pl.Int64, "raw": pl.String, "body": pl.String, "pod": pl.String,
                    "container": pl.String, "received_at": pl.String}
_ENVELOPE_TYPE = pl.Struct({
    **_struct_of(ENVELOPE_TEXT + ENVELOPE_TIME + (("stream",), ("_p",), ("source_type",)) + POD_KEYS + CONTAINER_KEYS
                 + _POLARS_SOURCE_KEYS), "date": pl.Float64,
})


def envelope_lines(held: list, rejects: list[dict]) -> tuple[pl.DataFrame, int, tuple[int, ...]]:
    """The lines that collectors' records held (``Envelopes.envelope``: per row its line number,
    the record as written, its line, pod, container, time; or frames of such rows,
    ``Envelopes.envelopes``) as a batch's lines are: ``body`` and ``line`` the line (``line`` keeps
    it whole when ``Collectors.split_held`` takes a prefix off ``body``), ``raw`` the record (a
    reject keeps it as written, its column counted in the line), with their pod, container and
    time; records of a split line's parts joined (``join_record_parts``: its parts with no last part
    here go to ``rejects``); how many held a blank line (dropped), and the line numbers of the parts
    joined to an earlier one (dropped: counted as joined)."""
    rows = [x for x in held if isinstance(x, tuple)]
    frames = [x.cast(_ENVELOPE_SCHEMA) for x in held if isinstance(x, pl.DataFrame)]
    if rows:
        frames.append(pl.DataFrame(rows, schema=_ENVELOPE_SCHEMA, orient="row"))
    df = frames[0] if len(frames) == 1 else pl.concat(frames).sort("line_number")
    df, joined = join_record_parts(df, rejects)  # (before the blank ones go: a last part may be empty)
    blank = df["body"].str.contains(r"^\s*$")
    df = df.filter(~blank) if blank.any() else df
    return df.with_columns(pl.col("body").alias("line"), pl.lit(0, dtype=pl.Int64).alias("prefix_len")), \
        int(blank.sum()), joined


# A collector's record of a part of a line over 16 KiB the container runtime split, which its reader
# did not join (RECORD_PART), and of the part that ends it (RECORD_LAST): Fluent Bit's CRI parser keeps the
# CRI tag as "_p" (P, the last part F), Fluentd's cri parser as "logtag"; docker's fluentd log driver
# (to Fluentd's forward input) marks each part "partial_last":"false", the last "true", all of one
# partial_id (what fluent-plugin-concat joins). Told by the record as written: its own key, not one
# inside its text (whose quotes are escaped, \").
_OWN_KEY = r'(?:^|[^\\])"'
_CRI_TAG, _DOCKER_TAG = '(?:_p|logtag)"\\s*:\\s*"', 'partial_last"\\s*:\\s*"'  # (a tag's key, to its value's quote)
RECORD_PART = f'{_OWN_KEY}{_CRI_TAG}P"|{_OWN_KEY}{_DOCKER_TAG}false"'
RECORD_LAST = f'{_OWN_KEY}{_CRI_TAG}F"|{_OWN_KEY}{_DOCKER_TAG}true"'
_PART_LOOK = '"P"|partial_last"'  # (what each RECORD_PART holds)
_RECORD_STREAM = f'{_OWN_KEY}(?:stream|source)"\\s*:\\s*"(stdout|stderr)"'  # (docker's driver: "source")
# (docker's driver names no pod or container that its records' reader sees, only its container_id:
# two containers' parts that interleave in one stream are told apart by it, where pod, container and
# stream alone glued them into one reject, "a second access line starts here", and left a part of
# each a reject)
_RECORD_CONTAINER_ID = f'{_OWN_KEY}container_id"\\s*:\\s*"([^"\\\\]*)"'
# The readers' look at a line as bytes (record_tag: a split line's parts in one batch, as a node file's,
# runtimes._runtime_tag): RECORD_PART's and RECORD_LAST's tags, then the keys that tell whose line a part
# is (pod, container, stream, container_id: the keys join_record_parts tells parts apart by, and some more
# names, never fewer: two lines' parts are never taken for one's). Each the record's own key (_OWN_KEY),
# checked after a search for its quote: 16 µs for a 16 KiB part, where _OWN_KEY's pattern took ~400.
# RECORD_LOOK: what any tag holds.
_RECORD_TAG = re.compile(f'"{_CRI_TAG}([PF])"|"{_DOCKER_TAG}(false|true)"'.encode())
# (the keys: the stream's, docker's container_id, and each last key of POD_KEYS and CONTAINER_KEYS)
_RECORD_OWNER = re.compile(('"(' + "|".join(sorted({"stream", "source", "container_id"} | {
    re.escape(k[-1]) for k in POD_KEYS + CONTAINER_KEYS}, key=lambda k: (-len(k), k))) + ')"\\s*:\\s*"([^"\\\\]*)"').encode())
RECORD_LOOK = (b'"P"', b'"F"', b'partial_last"')


def _own(line: bytes, found) -> list:
    """The matches ``found`` of keys of the record ``line`` itself, not inside its text (``\\"``)."""
    return [m for m in found if not m.start() or line[m.start() - 1] != 0x5C]


def record_tag(buf, start: int, end: int) -> tuple[tuple, bool] | None:
    """Whose line the line ``buf[start:end]`` (bytes) is a part of, when it is a collector's record of a
    split line's part (``RECORD_PART``: True) or of its last part (``RECORD_LAST``: False), as
    ``runtimes._runtime_tag`` tells a node file's line: the readers keep a line's parts in one batch
    (an ingest's chunks, ``parse_lines``' and ``logpipe stream``'s batches), so that
    ``join_record_parts`` finds them all; None for any other line."""
    line = bytes(buf[start:end])
    if not any(look in line for look in RECORD_LOOK):
        return None
    tags = _own(line, _RECORD_TAG.finditer(line))
    if not tags:
        return None
    return tuple(m.groups() for m in _own(line, _RECORD_OWNER.finditer(line))), tags[0][1] == b"P" or tags[0][2] == b"false"


RECORD_PARTIAL = ("part of a line over 16 KiB that the container runtime split, in a collector's record of it"
                  " (Fluent Bit's _p or Fluentd's logtag P, docker's partial_last false), whose last part did not"
                  " follow it here: not joined")


def join_record_parts(df: pl.DataFrame, rejects: list[dict]) -> tuple[pl.DataFrame, tuple[int, ...]]:
    """The records of a split line's parts (``RECORD_PART``) in ``df`` (``envelope_lines``' rows) joined,
    as ``runtimes.CriParts.join`` joins a node file's: each with the next records of its pod, container
    (docker's driver: its container_id) and stream up to the one that ends the line (``RECORD_LAST``, within ``runtimes.JOIN_LOOKAHEAD``
    rows, in its input), on its first part's row, with the last part's time; ``raw`` the last part's
    record holding the whole line (or the line, after a file output's prefix). Parts with no last
    part here become rejects saying so (``RECORD_PARTIAL``). Returns the rows and the line numbers of
    the parts joined to an earlier one (dropped)."""
    # (a look for the tags' values first: 2.6 ms for 50k Fluent Bit records, ~2% of their polars pass's
    # ~150, where RECORD_PART's search of every record took 111)
    maybe = df["raw"].str.contains(_PART_LOOK)
    if not maybe.any():
        return df, ()
    at = maybe.arg_true()
    part = pl.repeat(False, df.height, eager=True).scatter(at, df["raw"].gather(at).str.contains(RECORD_PART))
    if not part.any():
        return df, ()

    def tags(rows):  # (whether it is a part's record or the last's, whose stream (and container_id), whether a part)
        raws = df["raw"].gather(rows)
        keys = zip(df["pod"].gather(rows).to_list(), df["container"].gather(rows).to_list(),
                   raws.str.extract(_RECORD_STREAM, 1).to_list(), raws.str.extract(_RECORD_CONTAINER_ID, 1).to_list())
        return list(zip((part.gather(rows) | raws.str.contains(RECORD_LAST)).to_list(), keys, part.gather(rows).to_list()))

    runs = _runtimes._runs(part.arg_true().to_list(), df.height, df["line_number"], tags)
    joined: tuple[int, ...] = ()
    if runs:
        texts = df["body"].gather([i for run in runs for i in run]).to_list()
        whole, k = [], 0
        for run in runs:
            whole.append(_runtimes.join_split_text(texts[k:k + len(run)]))
            k += len(run)
        ends = [run[-1] for run in runs]
        raws = [_whole_record(raw, text) for raw, text in zip(df["raw"].gather(ends).to_list(), whole)]
        at, keep, joined = _runtimes._run_rows(df, runs)
        df = df.with_columns(df["body"].scatter(at, pl.Series(whole, dtype=pl.String)),
                             df["raw"].scatter(at, pl.Series(raws, dtype=pl.String)),
                             df["received_at"].scatter(at, df["received_at"].gather(ends))).filter(keep)
        part = part.scatter(at, False).filter(keep)
    if part.any():
        df = _runtimes._reject_parts(df, part, RECORD_PARTIAL, rejects)
    return df, joined


def _whole_record(raw: str, text: str) -> str:
    """The record ``raw`` (a split line's last part's) holding the whole line ``text`` in its line's
    key, as the collector would have written it had the line not been split; ``text`` itself when
    ``raw`` is no record alone (a file output's line: its prefix before it)."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return text
    key = next((path[0] for path in ENVELOPE_TEXT if len(path) == 1 and isinstance(obj.get(path[0]), str)), None) \
        if isinstance(obj, dict) else None
    return text if key is None else json.dumps({**obj, key: text}, separators=(",", ":"), ensure_ascii=False)


# docker's fluentd log driver's record names its container as docker does ("container_name", after a "/"),
# and under dockershim (the kubelet's docker runtime, before Kubernetes 1.24) that name is the kubelet's:
# k8s_<container>_<pod>_<namespace>_<pod uid>_<attempt> (dockershim's naming.go; "_" is in none of
# Kubernetes' names). The pod and container columns take its pod's and container's names (the namespace
# has no column: node_log_names leaves a node file's out too).
_DOCKERSHIM_NAME = re.compile(r"/?k8s_([^_]+)_([^_]+)_([^_]+)_[^_]+_[0-9]+")


def docker_names(obj: dict) -> tuple[str, str] | None:
    """The pod and container that docker's fluentd log driver's record ``obj`` (``container_id`` beside
    its ``container_name``) names in a dockershim container's name (``_DOCKERSHIM_NAME``), or None."""
    name = obj.get("container_name")
    if not isinstance(obj.get("container_id"), str) or not isinstance(name, str):
        return None
    m = _DOCKERSHIM_NAME.fullmatch(name)
    return None if m is None else (m[2], m[1])


class Envelopes:
    """The records of a line, read for a parser whose ``received_at`` rule reads a time as
    ``time_rx`` does (``collectors.Collectors.time_rx``: a record's time is kept only where it
    reads so)."""

    def __init__(self, time_rx: re.Pattern) -> None:
        self._time = time_rx

    def envelope(self, obj: dict) -> tuple[str, str | None, str | None, str | None] | None:
        """A log collector's JSON record of a line (``ENVELOPE_TEXT``, ``_signed``), as an agent
        writes it to a file or an object store: Fluent Bit and Fluentd (``log``, their
        ``kubernetes`` filter's ``pod_name``/``container_name``, ``time``), Vector
        (``message``, ``kubernetes.pod_name``, ``timestamp``), Filebeat and Logstash (``message``,
        ``kubernetes.pod.name``, ``@timestamp``); Google Cloud Logging's LogEntry (``textPayload``
        or ``jsonPayload``, ``resource.labels.pod_name``, ``timestamp``); Azure Monitor's
        ContainerLogV2 row (``LogMessage``, ``PodName``, ``TimeGenerated``); a Splunk search's export
        (``result._raw``, the event's fields or its ``source`` file, ``result._time``); or as a CLI prints it:
        Loki's ``logcli query -o jsonl`` (``line``, ``labels.pod``, ``timestamp``), ``stern -o json``
        (``message``, ``podName``): ``(the line, pod, container, time)``, the time only
        where it reads as ``received_at`` does; None for any other object. (``jsonlog`` asks only of
        objects that are no access record.)"""
        if isinstance(obj.get("_source"), dict) and isinstance(obj.get("_index"), str):
            return self._hit(obj["_source"])
        text = next((t for path in ENVELOPE_TEXT if isinstance(t := _at(obj, path), str)), None)
        if text is None:  # (a JSON line a collector read into an object: the line, written compact)
            text = next((json.dumps(obj[k], separators=(",", ":"), ensure_ascii=False) for k in ENVELOPE_OBJECT
                         if isinstance(obj.get(k), dict)), None)
        if text is None or not _signed(obj):
            return None
        text = text[:-1] if text.endswith("\n") else text
        inner = self._nested(text)
        if inner is not None:  # (its names and time first: the record nearer the line; ours where it has none)
            return (inner[0], *(mine or theirs for mine, theirs in zip(inner[1:], self.metadata(obj))))
        return (text, *self.metadata(obj))

    def _hit(self, doc: dict) -> tuple[str, str | None, str | None, str | None] | None:
        """An Elasticsearch search hit's document (``_source``, beside ``_index``: elasticdump writes
        an index's hits one a line): a collector's record of a line (``envelope``), or an access record
        a collector stored as an object (Istio's JSON encoding, its keys beside Filebeat's or Fluent
        Bit's: the record, written compact, as the line) with the pod, container and time it names."""
        if json_record(doc)[0] not in (None, "noise"):
            return (json.dumps(doc, separators=(",", ":"), ensure_ascii=False), *self.metadata(doc))
        return self.envelope(doc)

    def _nested(self, text: str) -> tuple[str, str | None, str | None, str | None] | None:
        """``envelope`` of the line a record holds when that line is itself a collector's record of a
        line (Fluent Bit's loki output writes its record as the line, as JSON, by default: ``logcli
        query -o jsonl`` gives it back inside Loki's), else None: an access record (Istio's JSON
        encoding, ztunnel's) and docker's own entries (``runtimes.unwrap_docker`` reads them, joining a
        split line's parts) stay the line."""
        if not text.startswith("{") or docker_tag(text[-100:]) is not None:
            return None
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            return None
        if not isinstance(obj, dict) or json_record(obj)[0] not in (None, "noise"):
            return None
        return self.envelope(obj)

    def metadata(self, obj: dict) -> tuple[str | None, str | None, str | None]:
        """The pod, container and time a collector's record names (``envelope``); also of an access
        record a collector merged its keys into (Fluent Bit's ``Merge_Log``: Istio's JSON keys beside
        ``kubernetes``)."""
        pod, container = named_text(obj, POD_KEYS), named_text(obj, CONTAINER_KEYS)
        if pod is None and container is None:
            pod, container = node_log_names(named_text(obj, SOURCE_KEYS) or "") or docker_names(obj) or (None, None)
        time = next((t for path in ENVELOPE_TIME if isinstance(t := _at(obj, path), str) and self._time.match(t)), None)
        return pod, container, time

    def envelopes(self, df: pl.DataFrame) -> tuple[pl.DataFrame | None, pl.DataFrame]:
        """``envelope`` of the JSON lines ``df`` (``body``) in one polars pass (``json_decode`` of
        the keys it reads: ~3 µs a line, against ~25 by json.loads and Python): the records of a
        line among them, as ``envelope_lines`` takes them (None: none), and the other lines. Only
        where the line is written as a text (``"log":"``, ``"message":"``: json_decode would read a
        number as text too). A line polars cannot decode with these types (a record cut short,
        another shape of a key) fails its whole part: the parts that fail are halved, down to
        ``ENVELOPE_PART_ROWS`` lines, so that only the lines near it are left to ``envelope``; when
        every part of a level fails (8 or more: a shape of the batch's own), they all are."""
        got = _decoded(df)
        if got is not None:
            return self._read_envelopes(df, got)
        mine: list[pl.DataFrame] = []
        others: list[pl.DataFrame] = []
        failing, level = [df], 0
        while failing:
            level += 1
            halves = [h for part in failing for h in (part.slice(0, part.height // 2), part.slice(part.height // 2))]
            failing = []
            for half in halves:
                got = _decoded(half) if half.height else None
                if got is None:
                    (failing if half.height > ENVELOPE_PART_ROWS else others).append(half)
                    continue
                held, rest = self._read_envelopes(half, got)
                mine += [held] if held is not None else []
                others.append(rest)
            if level >= 3 and len(failing) == len(halves):  # (every part fails: for envelope, all of them)
                others += failing
                break
        others = [o for o in others if o.height]
        return (pl.concat(mine).sort("line_number") if mine else None), \
            (pl.concat(others).sort("line_number") if others else df.clear())

    def _read_envelopes(self, df: pl.DataFrame, got: pl.DataFrame) -> tuple[pl.DataFrame | None, pl.DataFrame]:
        """``envelopes`` of ``df``, which polars decoded (``got``)."""
        c = pl.col
        text_at = {path: _field(path).is_not_null() for path in ENVELOPE_TEXT}
        # (json_decode reads a number as text: the line must be written as one; each search is a pass
        # over every line, so only for the keys the batch has)
        has_text = got.select(*(found.any().alias(str(k)) for k, found in enumerate(text_at.values()))).row(0)
        quoted = pl.coalesce([pl.when(text_at[path]).then(c("__body").str.contains(f'"{path[-1]}":"', literal=True))
                              for path, has in zip(ENVELOPE_TEXT, has_text) if has] or [pl.lit(None, pl.Boolean)])
        signed = (c("kubernetes").is_not_null() | c("source_type").is_not_null() | c("@timestamp").is_not_null()
                  | c("_p").is_in(["P", "F"]) | c("stream").is_in(["stdout", "stderr"])
                  | (c("date").is_not_null() & text_at[("log",)]) | c("labels").is_not_null() | c("podName").is_not_null()
                  | (text_at[("line",)] & c("timestamp").is_not_null()) | c("resource").is_not_null()
                  | c("PodName").is_not_null() | text_at[("result", "_raw")] | c("logStreamName").is_not_null())
        text = pl.coalesce([_field(path) for path in ENVELOPE_TEXT])
        # A line that may be a collector's record itself (a JSON object with one of _signed's keys) is
        # read by envelope (_nested): an Istio JSON line or ztunnel's has none of these keys
        nested = text.str.starts_with("{") & text.str.contains(_NESTED_KEYS)
        time = pl.coalesce([pl.when(_field(p).str.contains(self._time.pattern)).then(_field(p)) for p in ENVELOPE_TIME])
        named = lambda paths: pl.coalesce([pl.when(_field(p) != "").then(_field(p)) for p in paths])  # noqa: E731
        # A name or time json_decode read from a number is no text to json.loads: a line where such a key
        # (at any depth: "pod_name" is Fluent Bit's and Cloud Logging's) holds anything but a text is
        # read by envelope
        by_key: dict[str, pl.Expr] = {}
        for path in POD_KEYS + CONTAINER_KEYS + ENVELOPE_TIME + _POLARS_SOURCE_KEYS:
            by_key[path[-1]] = by_key.get(path[-1], pl.lit(False)) | _field(path).is_not_null()
        present = got.select(*(found.any().alias(key) for key, found in by_key.items())).row(0, named=True)
        texts = pl.all_horizontal(pl.lit(True), *(
            ~by_key[key] | ~c("__body").str.contains(rf'"{re.escape(key)}"\s*:\s*[^"\s]') for key in by_key if present[key]))
        read = got.lazy().select(
            (text.is_not_null() & quoted & signed & texts & ~nested).fill_null(False).alias("ok"),
            text.str.strip_suffix("\n").alias("body"),
            named(POD_KEYS).alias("pod"), named(CONTAINER_KEYS).alias("container"),
            named(_POLARS_SOURCE_KEYS).alias("source"), time.alias("received_at")).collect()
        ok = read["ok"]
        if not ok.any():
            return None, df
        read = _named_by_source(read)
        mine = df.filter(ok).select("line_number", "raw", read.filter(ok)["body"],
                                    *(pl.coalesce(read.filter(ok)[c], df.filter(ok)[c]).alias(c) for c in PROVENANCE))
        return mine, df.filter(~ok)
