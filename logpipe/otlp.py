"""OpenTelemetry's JSON encoding of logs (OTLP/JSON), as the OpenTelemetry Collector's ``file``
exporter writes it: one ``ExportLogsServiceRequest`` a line (``{"resourceLogs":[{"resource":…,
"scopeLogs":[{"logRecords":[…]}]}]}``), each holding many log records. Istio's ``envoyOtelAls``
provider (the Telemetry API's OpenTelemetry access log) sends each access line as a record's body,
so a line of such a file holds many access lines.

``OtlpLines`` reads such a file as one line a log record, in order (``logpipe/unpack.py`` picks it
by the file's first bytes, ``OTLP_JSON``; ``logpipe stream`` for its stdin): the record as written,
but its ``attributes`` and its resource's (``resource``) as objects of plain values
(``{"k8s.pod.name":"waypoint-…"}``, not OTLP's list of typed pairs), and its time (when the collector
observed it, else its own) as RFC 3339 under ``time``. ``logpipe/envelopes.py`` reads that as a
collector's record of a line: ``body.stringValue`` is the line, ``k8s.pod.name`` and
``k8s.container.name`` (the collector's k8sattributes processor's) its pod and container.
A line that is not such a request (damaged, cut short) is given as it is, a reject as any line."""
from __future__ import annotations

import codecs
import datetime as dt
import functools
import json
import re

# An OTLP/JSON request's first bytes (the collector writes its keys compact, resourceLogs first).
OTLP_JSON = re.compile(rb'\{[ \t]*"resourceLogs"[ \t]*:')

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
        for scope_logs in resource_logs.get("scopeLogs") or ():
            if not isinstance(scope_logs, dict):
                return None
            for record in scope_logs.get("logRecords") or ():
                if not isinstance(record, dict):
                    return None
                when = _rfc3339(record.get("observedTimeUnixNano")) or _rfc3339(record.get("timeUnixNano"))
                out.append({**({"time": when} if when else {}), **record,
                            "attributes": _attributes(record.get("attributes")), "resource": resource})
    return out


class OtlpLines:
    """An OTLP/JSON file's log records, each as one line of compact JSON (``records``), from its bytes
    fed in pieces of any size: ``feed(data, final) -> the lines of the requests complete so far``
    (UTF-8 bytes), as ``unpack.JsonArrayLines`` is fed. A line that is not a request is given as it is."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("backslashreplace")
        self._rest = ""

    def __call__(self, data: bytes, final: bool = False) -> bytes:
        lines = (self._rest + self._decoder.decode(data, final)).split("\n")
        self._rest = lines.pop()  # (the text after the last newline: the next piece's, or a last line)
        text = "".join(x + "\n" for x in self._lines(lines))
        if final and self._rest:  # a last line without a newline: its lines end without one too, so
            # that an ingest sees the file's last line cut (it reads a grown file whole again)
            text += "\n".join(self._lines([self._rest]))
            self._rest = ""
        return text.encode("utf-8")

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
                out += map(_ENCODE, got)
        return out


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode  # (one encoder, not one a record)
