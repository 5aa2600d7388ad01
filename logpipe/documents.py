"""Files that are a document of log entries, not lines of them, read as their entries' lines: a JSON
array of records (what ``gcloud logging read --format=json`` and other CLIs print: ``[``, then
objects, indented) as one line an element, OTLP/JSON (the OpenTelemetry Collector's file
exporter: ``logpipe/otlp.py``) as one line a log record, Loki's query API responses and CloudWatch
Logs' events as ``aws logs`` prints them as one line an entry (``DOCUMENTS``). ``logpipe/unpack.py`` tells
a file of them by its first bytes and pulls it through its reader a piece at a time; ``logpipe
stream`` feeds the reader its stdin."""
from __future__ import annotations

import codecs
import json
import re

from .otlp import _ENCODE, OTLP_JSON, OtlpLines, _rfc3339

# A JSON array of objects: "[" and "{" (or "]") with only white space between, in the first bytes; an
# access line starts "[2025-…", "[pod/…" or "[2025-01-30 08:08:15.071]".
JSON_ARRAY = re.compile(rb"\[[ \t\r\n]*(?:\{|\]|$)")


def document_lines(head: bytes):
    """A reader of the lines a file that starts with ``head`` holds when it is a document of log
    entries, not lines of them (``DOCUMENTS``: a JSON array, OTLP/JSON), fed its bytes in pieces
    (``feed(data, final) -> lines``); None for any other file."""
    return next((lines() for _, rx, lines in DOCUMENTS if rx.match(head)), None)


class JsonArrayLines:
    """A JSON array's elements, each as one line of compact JSON (a record of a line, an access record
    of Istio's JSON encoding: read as JSON lines are), from its bytes fed in pieces of any size:
    ``feed(data, final) -> the lines of the elements complete so far`` (UTF-8 bytes), as
    ``unpack.text_decoder``'s decode is called (``unpack._Document`` pulls a file through it, ``logpipe
    stream`` feeds it stdin). Text that does not read as the array's next element (a damaged or cut file,
    anything after the array) is given as it is, its lines rejects as any line's."""

    LIMIT = 16 << 20  # an element longer than this is no log entry: the text is given as it is

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("backslashreplace")
        self._json = json.JSONDecoder()
        self._text, self._pos, self._started, self._raw_rest = "", 0, False, False

    def __call__(self, data: bytes, final: bool = False) -> bytes:
        text = self._text = self._text[self._pos:] + self._decoder.decode(data, final)
        at, out = 0, []
        while at < len(text):
            if self._raw_rest:  # (after the array, or where it broke: the text as it is)
                out.append(text[at:])
                at = len(text)
                break
            while at < len(text) and text[at] in " \t\r\n,":
                at += 1
            if at == len(text):
                break
            if not self._started:
                opened = self._open(text, at, final)
                if opened is None:
                    break  # (the next piece says)
                self._started, at = True, opened
            elif text[at] == "]":  # the array's end
                closed = self._close(text, at + 1, final)
                if closed is None:
                    break
                at = closed
            else:
                try:
                    value, at = self._json.raw_decode(text, at)
                except ValueError:
                    if not final and len(text) - at < self.LIMIT:
                        break  # (the element goes on in the next piece)
                    self._raw_rest = True
                    continue
                out.append(self._line(value) + "\n")
        self._pos = at
        return "".join(out).encode("utf-8")

    def _open(self, text: str, at: int, final: bool) -> int | None:
        """Where the array's elements start, its opening at ``text[at]`` (None: the next piece says)."""
        return at + 1  # the array's "["

    def _close(self, text: str, at: int, final: bool) -> int | None:
        """Where the text after the array (from ``at``) goes on (None: the next piece says): here all of
        it, but its white space, is given as it is."""
        self._raw_rest = True
        return len(text) - len(text[at:].lstrip(" \t\r\n"))

    def _line(self, value) -> str:
        """An element as its line."""
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# Loki's query API response (/loki/api/v1/query_range, /query: what `curl` of it saves), compact as Loki
# writes it: {"status":"success","data":{"resultType":"streams","result":[{"stream":{<labels>},
# "values":[["<ns since the epoch>","<line>"],…]},…],"stats":{…}}}, one a line; or indented, as `jq .`
# and `python -m json.tool` print it ("{", then "  \"status\": \"success\",", …, "}"), whose "data" may
# start past a file's first 32 bytes (unpack.HEAD_BYTES): the head then ends in its white space or name.
LOKI_RESPONSE = re.compile(rb'\{\s*"status"\s*:\s*"success"\s*,\s*(?:"data"\s*:|"?d?a?t?a?"?\s*\Z)')


class LokiLines(OtlpLines):
    """Loki's query API responses (``LOKI_RESPONSE``), one a line, as their log entries: each the line
    ``logcli query -o jsonl`` prints for it (``{"labels":{…},"line":"…","timestamp":"…"}``, read as
    a record of a line: its stream's labels name the pod and container, its time is ``received_at``),
    in the response's order (its streams', each stream's entries in the query's direction). Fed as
    ``OtlpLines`` is; a line that is no such response (a metric query's matrix, an error) is given as
    it is. An indented response (a line ``{``, its keys' lines, a line ``}``) is read as one; held
    lines that are none (cut short, no JSON, over ``LIMIT``) are given as they are, the response of no
    log streams as one line of compact JSON."""

    def __init__(self) -> None:
        super().__init__()
        self._held: list[str] | None = None  # (the lines of an indented response so far)
        self._size = 0

    def __call__(self, data: bytes, final: bool = False) -> bytes:
        cut = final and (not data.endswith(b"\n") if data else bool(self._rest))  # (the text ends without a newline)
        given = super().__call__(data, final)
        if final and self._held is not None:  # (cut short: its lines as they are, the last as it ended)
            held, self._held = self._held, None
            given += ("\n".join(held) + ("" if cut else "\n")).encode("utf-8")
        return given

    def _lines(self, lines: list[str]) -> list[str]:
        out = []
        for line in lines:
            if self._held is not None:
                self._held.append(line)
                self._size += len(line) + 1
                if line.rstrip() == "}":  # (the response's last line: its "}" unindented)
                    out += self._indented(self._held)
                    self._held = None
                elif self._size > self.LIMIT:
                    out += self._held
                    self._held = None
                continue
            if line.rstrip() == "{":
                self._held, self._size = [line], len(line) + 1
                continue
            try:
                got = _entries(json.loads(line)) if line.strip() else None
            except (ValueError, RecursionError):
                got = None
            out += [line] if got is None else got
        return out

    @staticmethod
    def _indented(lines: list[str]) -> list[str]:
        """The entries of an indented response's ``lines``; a response of no log streams as one compact
        line; text that is no JSON as its lines."""
        try:
            response = json.loads("\n".join(lines))
        except (ValueError, RecursionError):
            return lines
        got = _entries(response)
        return [_ENCODE(response)] if got is None else got


def _entries(response) -> list[str] | None:
    """The entries of a Loki query API response (parsed JSON) as ``logcli query -o jsonl`` lines, or
    None when it is no response of log streams. (An entry's third item, the structured metadata
    Loki 3 adds, is not read.)"""
    data = response.get("data") if isinstance(response, dict) else None
    if not isinstance(data, dict) or data.get("resultType") != "streams" or not isinstance(data.get("result"), list):
        return None
    out = []
    for stream in data["result"]:
        labels = stream.get("stream") if isinstance(stream, dict) else None
        values = stream.get("values") if isinstance(stream, dict) else None
        if not isinstance(labels, dict) or not isinstance(values, list):
            return None
        for value in values:
            if not isinstance(value, list) or len(value) < 2 or not isinstance(value[1], str):
                return None
            when = _rfc3339(value[0])
            out.append(_ENCODE({"labels": labels, "line": value[1], **({"timestamp": when} if when else {})}))
    return out


# What `aws logs filter-log-events` prints (CloudWatch Logs' FilterLogEvents response; the CLI's JSON output,
# indented, its pages as one): {"events":[{"logStreamName":…,"timestamp":<ms since the epoch>,"message":…,
# "ingestionTime":…,"eventId":…},…],"searchedLogStreams":[…],"nextToken":…}; `get-log-events` prints the same
# events without their stream's name, then nextForwardToken and nextBackwardToken.
CLOUDWATCH_EVENTS = re.compile(rb'\{\s*"events"\s*:\s*\[')
_EVENTS_OPEN = re.compile(r'\{\s*"events"\s*:\s*\[')
# The response's other keys after its events: texts, lists of texts (searchedLogStreams' objects too), null.
_TEXT = r'"(?:[^"\\]|\\.)*"'
_EVENTS_TAIL = re.compile(rf'\s*(?:,\s*{_TEXT}\s*:\s*(?:{_TEXT}|null|true|false|-?[0-9]+|\[[^\]]*\]))*\s*\}}')


class CloudWatchLines(JsonArrayLines):
    """CloudWatch Logs' events as ``aws logs filter-log-events`` (and ``get-log-events``) prints them
    (``CLOUDWATCH_EVENTS``), one line an event, in order: ``{"logStreamName":…,"message":…,"timestamp":…}``
    (its time as RFC 3339), which ``logpipe/envelopes.py`` reads as a record of a line: the message is
    the line, a stream named after a node's container log file (EKS's Fluent Bit names it
    ``<node>-application.var.log.containers.<pod>_<namespace>_<container>-<id>.log``) names its pod and
    container. Fed as ``JsonArrayLines`` is; the response's other keys are no entries (dropped); several
    responses one after another are read alike; text that is no such response is given as it is."""

    def _open(self, text: str, at: int, final: bool) -> int | None:
        m = _EVENTS_OPEN.match(text, at)
        if m is not None:
            return m.end()
        if not final and len(text) - at < 64:  # (its "events" may come in the next piece)
            return None
        self._raw_rest = True
        return at

    def _close(self, text: str, at: int, final: bool) -> int | None:
        m = _EVENTS_TAIL.match(text, at)
        if m is not None:
            self._started = False  # (another response may follow)
            return m.end()
        if not final and len(text) - at < self.LIMIT:
            return None
        self._raw_rest = True
        return at

    def _line(self, value) -> str:
        if not isinstance(value, dict) or not isinstance(value.get("message"), str):
            return super()._line(value)
        ms = value.get("timestamp")
        when = _rfc3339(ms * 1_000_000) if type(ms) is int else None
        return _ENCODE({"logStreamName": value.get("logStreamName") or "", "message": value["message"],
                        **({"timestamp": when} if when else {})})


# Files that are a document of log entries, by their first bytes: the manifest's name for each (its
# "compression"), and the reader of its entries as lines.
DOCUMENTS = (("json-array", JSON_ARRAY, JsonArrayLines), ("otlp-json", OTLP_JSON, OtlpLines),
             ("loki-json", LOKI_RESPONSE, LokiLines), ("cloudwatch-json", CLOUDWATCH_EVENTS, CloudWatchLines))
