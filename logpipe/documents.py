"""Files that are a document of log entries, not lines of them, read as their entries' lines: a JSON
array of records (what ``gcloud logging read --format=json`` and other CLIs print: ``[``, then
objects, indented) as one line an element, and OTLP/JSON (the OpenTelemetry Collector's file
exporter: ``logpipe/otlp.py``) as one line a log record (``DOCUMENTS``). ``logpipe/unpack.py`` tells
a file of them by its first bytes and pulls it through its reader a piece at a time; ``logpipe
stream`` feeds the reader its stdin."""
from __future__ import annotations

import codecs
import json
import re

from .otlp import OTLP_JSON, OtlpLines

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
                self._started, at = True, at + 1  # the array's "["
            elif text[at] == "]":  # the array's end, and the white space after it
                self._raw_rest, at = True, len(text) - len(text[at + 1:].lstrip(" \t\r\n"))
            else:
                try:
                    value, at = self._json.raw_decode(text, at)
                except ValueError:
                    if not final and len(text) - at < self.LIMIT:
                        break  # (the element goes on in the next piece)
                    self._raw_rest = True
                    continue
                out.append(json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n")
        self._pos = at
        return "".join(out).encode("utf-8")


# Files that are a document of log entries, by their first bytes: the manifest's name for each (its
# "compression"), and the reader of its entries as lines.
DOCUMENTS = (("json-array", JSON_ARRAY, JsonArrayLines), ("otlp-json", OTLP_JSON, OtlpLines))
