"""OpenTelemetry's JSON encoding of logs (OTLP/JSON), as the OpenTelemetry Collector's ``file``
exporter writes it: one ``ExportLogsServiceRequest`` a line (``{"resourceLogs":[{"resource":…,
"scopeLogs":[{"logRecords":[…]}]}]}``), each holding many log records. Istio's ``envoyOtelAls``
provider (the Telemetry API's OpenTelemetry access log) sends each access line as a record's body,
so a line of such a file holds many access lines.

``OtlpLines`` reads such a file as one line a log record, in order (``logpipe/unpack.py`` picks it
by the file's first bytes, ``OTLP_JSON``; ``logpipe stream`` for its stdin). A record (``records``)
is the record as written, but its ``attributes`` and its resource's (``resource``) as objects of
plain values (``{"k8s.pod.name":"waypoint-…"}``, not OTLP's list of typed pairs), and its time (when
the collector observed it, else its own) as RFC 3339 under ``time``; ``logpipe/envelopes.py`` reads
its JSON as a collector's record of a line: ``body.stringValue`` is the line, ``k8s.pod.name`` and
``k8s.container.name`` (the collector's k8sattributes processor's) its pod and container. Most
records are given as the line they hold with kubectl's prefix instead (``as_line``): the same rows.
A line that is not such a request (damaged, cut short) is given as it is, a reject as any line."""
from __future__ import annotations

import codecs
import datetime as dt
import functools
import json
import re

# An OTLP/JSON request's first bytes (the collector writes its keys compact, resourceLogs first).
OTLP_JSON = re.compile(rb'\{[ \t]*"resourceLogs"[ \t]*:')
# How an access line starts: "[" and a digit (Envoy's text layouts, START_TIME first), "{" (Istio's JSON
# encoding). A record's body that starts so is written as a prefixed line (as_line); the debug
# exporter's zap prefix is one only before it (logpipe/collectors.py).
ACCESS_START = re.compile(r"\[[0-9]|\{")

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _plain(value):
    """An OTLP ``AnyValue`` as a plain JSON value (an int64 is written as a text in OTLP/JSON); an
    array or key-value list stays as written."""
    if not isinstance(value, dict) or len(value) != 1:
        return value
    (kind, v), = value.items()
    if kind == "intValue":
        try:
            return int(v)
        except (TypeError, ValueError):
            return v
    return v if kind in ("stringValue", "boolValue", "doubleValue") else value


def _attributes(pairs) -> dict:
    """OTLP's attributes (``[{"key":…,"value":{…}}]``) as one object of plain values."""
    if not isinstance(pairs, list):
        return {}
    return {p["key"]: _plain(p.get("value")) for p in pairs if isinstance(p, dict) and isinstance(p.get("key"), str)}


def _rfc3339(nanos) -> str | None:
    """A time in nanoseconds since the epoch (a text or a number; 0 is no time) as RFC 3339 in UTC."""
    try:
        n = int(nanos)
    except (TypeError, ValueError):
        return None
    if n <= 0:
        return None
    seconds, frac = divmod(n, 1_000_000_000)
    second = _second(seconds)
    return None if second is None else f"{second}.{frac:09d}Z"


@functools.lru_cache(maxsize=4096)
def _second(seconds: int) -> str | None:
    """``seconds`` since the epoch as RFC 3339's date and time of day in UTC (a request's records
    share a few seconds: each is formatted once)."""
    try:
        return (_EPOCH + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    except OverflowError:
        return None


def records(request) -> list[dict] | None:
    """The log records of an ``ExportLogsServiceRequest`` (parsed JSON) as ``OtlpLines`` gives them,
    in order; None when it is not one."""
    if not isinstance(request, dict) or not isinstance(request.get("resourceLogs"), list):
        return None
    out = []
    for resource_logs in request["resourceLogs"]:
        if not isinstance(resource_logs, dict):
            return None
        resource = resource_logs.get("resource")
        resource = _attributes(resource.get("attributes") if isinstance(resource, dict) else None)
        # (instrumentationLibraryLogs: its name before OTLP 0.15, 2022, which collectors of then wrote;
        # a JSON receiver reads it where scopeLogs is not set, opentelemetry-proto's logs.proto says)
        for scope_logs in resource_logs.get("scopeLogs") or resource_logs.get("instrumentationLibraryLogs") or ():
            if not isinstance(scope_logs, dict):
                return None
            for record in scope_logs.get("logRecords") or ():
                if not isinstance(record, dict):
                    return None
                when = _rfc3339(record.get("observedTimeUnixNano")) or _rfc3339(record.get("timeUnixNano"))
                out.append({**({"time": when} if when else {}), **record,
                            "attributes": _attributes(record.get("attributes")), "resource": resource})
    return out


def as_line(record: dict) -> str:
    """A record (``records``') as the line ``OtlpLines`` gives: when its body is one text line that
    starts as an access line does (``[`` and a digit: Envoy's text layouts; ``{``: Istio's JSON
    encoding), and its pod and container are both named (``k8s.pod.name`` and
    ``k8s.container.name``, as kubectl names them) or neither, the line with the prefix
    ``kubectl logs --prefix --timestamps`` writes (``[pod/POD/CONTAINER] TIME ``), read by
    prefix.lark as kubectl's lines are, with no JSON to write and decode again (200k records: ingest
    in 3.6–4.2 s, against 5.8–6.3 s as JSON lines). Any other record is its JSON line. Both give the
    same rows (tests/test_otlp.py); a reject keeps the line as given."""
    body = record.get("body")
    text = body.get("stringValue") if type(body) is dict and len(body) == 1 else None
    if type(text) is str:
        text = text[:-1] if text.endswith("\n") else text
        if ACCESS_START.match(text) and "\n" not in text and "\r" not in text:
            pod, container = _names(record)
            if pod is None and container is None:
                head = ""
            elif pod is not None and container is not None and _k8s_name(pod) and _k8s_name(container):
                head = f"[pod/{pod}/{container}] "
            else:
                return _ENCODE(record)
            when = record.get("time")
            return f"{head}{when} {text}" if when else head + text
    return _ENCODE(record)


def _names(record: dict) -> tuple[str | None, str | None]:
    """The pod and container the record names, as envelopes.py reads them from its JSON: the first
    text of its key tables' paths (the resource's ``k8s.pod.name``, else the record's own, …)."""
    named_text, pod_paths, container_paths = _paths(tuple(record))
    return named_text(record, pod_paths), named_text(record, container_paths)


@functools.lru_cache(maxsize=64)
def _paths(keys: tuple) -> tuple:
    """envelopes.py's reader of names and its pod and container paths that start with one of
    ``keys`` (a record's top-level keys: the others find nothing in it), in their order. (Imported
    here, not with this module: unpack imports it, and ingest forks its workers before polars,
    which envelopes.py imports, is loaded.)"""
    from .envelopes import CONTAINER_KEYS, POD_KEYS, named_text

    return named_text, tuple(p for p in POD_KEYS if p[0] in keys), tuple(p for p in CONTAINER_KEYS if p[0] in keys)


@functools.lru_cache(maxsize=None)
def _k8s_rx() -> re.Pattern:
    from .grammar import load_builtin

    return re.compile(load_builtin("prefix").terminal_regex("K8S_NAME"))


@functools.lru_cache(maxsize=4096)
def _k8s_name(name: str) -> bool:
    """Whether prefix.lark reads ``name`` as a pod's or container's name (its K8S_NAME)."""
    return _k8s_rx().fullmatch(name) is not None


class OtlpLines:
    """An OTLP/JSON file's log records, each as one line (``as_line``), from its bytes fed in pieces
    of any size: ``feed(data, final) -> the lines of the requests complete so far`` (UTF-8 bytes), as
    ``documents.JsonArrayLines`` is fed. A line that is not a request is given as it is; so is a line
    longer than ``LIMIT`` (no request is: the collector's batches are a few MB), a piece at a time,
    never held whole."""

    LIMIT = 64 << 20

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("backslashreplace")
        self._rest = ""
        self._long = False  # (in a line longer than LIMIT: given as it is up to its newline)

    def __call__(self, data: bytes, final: bool = False) -> bytes:
        text, given = self._rest + self._decoder.decode(data, final), ""
        if self._long:
            cut = text.find("\n") + 1
            given, text, self._long = (text, "", True) if cut == 0 else (text[:cut], text[cut:], False)
        lines = text.split("\n")
        self._rest = lines.pop()  # (the text after the last newline: the next piece's, or a last line)
        given += "".join(x + "\n" for x in self._lines(lines))
        if final and self._rest:  # a last line without a newline: its lines end without one too, so
            # that an ingest sees the file's last line cut (it reads a grown file whole again)
            given += "\n".join(self._lines([self._rest]))
            self._rest = ""
        elif len(self._rest) > self.LIMIT:
            given, self._rest, self._long = given + self._rest, "", True
        return given.encode("utf-8")

    @staticmethod
    def _lines(lines: list[str]) -> list[str]:
        """The lines ``lines`` hold: each request's records, any other line itself."""
        out = []
        for line in lines:
            if not line.strip():
                out.append(line)
                continue
            try:
                got = records(json.loads(line))
            except (ValueError, RecursionError):
                got = None
            if got is None:
                out.append(line)
            else:
                out += map(as_line, got)
        return out


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode  # (one encoder, not one a record)
