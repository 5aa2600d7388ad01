"""An input's bytes as the UTF-8 text lines are cut from, by content, not by name (``logpipe/sources.py``
opens the files and stdin): gzip, zstd and bz2 archives are decompressed, and text that starts with
a byte-order mark, as Windows tools write it (PowerShell 5's ``>`` writes UTF-16, its
``Out-File -Encoding utf8`` UTF-8 with a mark), has the mark dropped and UTF-16 or UTF-32 read as
UTF-8, in an archive too. A reading error (a damaged archive) is raised by the read that meets it,
so that the lines before it are kept (``sources.iter_byte_chunks``). A document of log entries (a
JSON array of records, OTLP/JSON: ``logpipe/documents.py``) is read as its entries' lines
(``_Document``), and the OpenTelemetry Collector's file exporter's zstd messages as the OTLP/JSON they
hold (``_Messages``)."""
from __future__ import annotations

import bz2
import codecs
import gzip
import io
import zlib
from pathlib import Path
from typing import BinaryIO

from .documents import DOCUMENTS, document_lines

READ_STEP = 1 << 16  # a read's size in a decoded stream (and read_some's step in one or in stdin)

# Byte-order marks, longest first (UTF-32LE's starts as UTF-16LE's does), and the codec that reads
# the text after them: Python's codecs of these names read and drop the mark.
BYTE_ORDER_MARKS = ((b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\xef\xbb\xbf", "utf-8-sig"),
                    (b"\xfe\xff", "utf-16"), (b"\xff\xfe", "utf-16"))


def detect_compression(head: bytes) -> str:
    """By content: gzip (1f 8b 08), zstd frame magic, bz2 ("BZh" + level + block magic
    31 41 59 26 53 59, so a text file that starts with "BZh" stays text); text that starts with a
    byte-order mark: its codec (``BYTE_ORDER_MARKS``); else plain."""
    if head.startswith(b"\x1f\x8b\x08"):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[3:4] != b"0" and head[4:10] == b"1AY&SY":
        return "bz2"
    if head[:1] == b"\x00" and head[4:8] == ZSTD_MAGIC:  # (a text log never starts with a NUL byte)
        return "zstd-messages"
    if head[:1] == b"\x00" and _proto_request(head):
        return "otlp-proto"
    return mark_codec(head) or next((kind for kind, rx, _ in DOCUMENTS if rx.match(head)), "plain")


# The OpenTelemetry Collector's file exporter writes a request a message, each after its length (4 bytes,
# big-endian; exportMessageAsBuffer in exporter/fileexporter/file_writer.go) where it does not write
# JSON lines: with `compression: zstd` each message is compressed alone ("zstd-messages": read, each
# message a line, then OTLP/JSON as any), and `format: proto` is protobuf ("otlp-proto": not read). A
# request's length is under 16 MiB (gRPC's default limit), so a file of them starts with a NUL byte.
# (Its newer native compression, behind a feature gate, writes one zstd stream of JSON lines: a .zst.)
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _proto_request(head: bytes) -> bool:
    """Whether ``head`` starts as a length-prefixed ExportLogsServiceRequest does: field 1
    (resource_logs, length-delimited: 0x0a) whose length fits in the message's."""
    size, at, length, shift = int.from_bytes(head[:4], "big"), 5, 0, 0
    if head[4:5] != b"\x0a":
        return False
    while at < len(head) and shift < 35:
        byte = head[at]
        length |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if byte < 0x80:
            return 0 < length <= size - (at - 4)
    return False
OTLP_PROTO_HINT = ("OTLP protobuf (the OpenTelemetry Collector's file exporter with format: proto) is not read: "
                   "set format: json in the exporter")


HEAD_BYTES = 32  # (what detect_compression and document_lines need of a file's first bytes)


def mark_codec(head: bytes) -> str | None:
    """The codec of the byte-order mark ``head`` starts with (``BYTE_ORDER_MARKS``), or None."""
    return next((codec for mark, codec in BYTE_ORDER_MARKS if head.startswith(mark)), None)


class _Chunked(io.RawIOBase):
    """A stream made from ``raw`` a chunk at a time: ``_next()`` gives the next bytes (maybe none yet),
    None at the end; reads hand them out in order."""

    def __init__(self, raw: BinaryIO):
        self.raw, self._out, self._at = raw, memoryview(b""), 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while self._at == len(self._out):
            got = self._next()
            if got is None:
                return 0
            self._out, self._at = memoryview(got), 0
        n = min(len(b), len(self._out) - self._at)
        b[:n] = self._out[self._at:self._at + n]
        self._at += n
        return n

    def _next(self) -> bytes | None:
        raise NotImplementedError

    def close(self) -> None:
        self.raw.close()
        super().close()


class _Zstd(_Chunked):
    """zstd frames, one after another (as ``cat a.zst b.zst`` makes them), decompressed. A stream that
    ends inside a frame raises ``EOFError``, as gzip's and bz2's readers do: python-zstandard's
    stream reader ends there quietly, which lost a truncated archive's tail without a word."""

    def __init__(self, raw: BinaryIO):
        import zstandard

        super().__init__(raw)
        self._new = zstandard.ZstdDecompressor().decompressobj
        self._frame, self._fed = self._new(), False  # (_fed: the current frame has had bytes)

    def _next(self) -> bytes | None:
        data = self.raw.read(READ_STEP)
        if not data:
            if self._fed and not self._frame.eof:
                raise EOFError("zstd: the compressed file ended inside a frame")
            return None
        out = []
        while data:
            if self._frame.eof:  # the next frame starts here
                self._frame = self._new()
            self._fed = True
            out.append(self._frame.decompress(data))
            data = self._frame.unused_data if self._frame.eof else b""
        return b"".join(out)


class _Messages(_Chunked):
    """Length-prefixed zstd messages (``ZSTD_MAGIC``' comment), each decompressed and ended with a
    newline. A file that ends inside a message (the exporter was writing it) raises ``EOFError``."""

    def __init__(self, raw: BinaryIO):
        import zstandard

        super().__init__(raw)
        self._new = zstandard.ZstdDecompressor().decompressobj

    def _next(self) -> bytes | None:
        size = self.raw.read(4)
        if not size:
            return None
        n = int.from_bytes(size, "big")
        data = self.raw.read(n) if len(size) == 4 else b""
        if len(data) < n or len(size) < 4:
            raise EOFError("the file ended inside a message (the exporter may still be writing it)")
        frame = self._new()
        out = frame.decompress(data)
        if not frame.eof or frame.unused_data:
            raise EOFError("a message is not one whole zstd frame")
        return out + b"\n"


class _Failed(_Chunked):
    """A stream whose first read failed already (``error``): every read raises it again."""

    def __init__(self, raw: BinaryIO, error: BaseException):
        super().__init__(raw)
        self.error = error

    def _next(self) -> bytes | None:
        raise self.error


def text_decoder(codec: str):
    """``decode(data, final) -> UTF-8 bytes`` for text in ``codec`` (UTF-16 or UTF-32, its mark first),
    fed in pieces of any size; bytes that do not decode come out as ``\\xNN``."""
    decoder = codecs.getincrementaldecoder(codec)("backslashreplace")
    return lambda data, final=False: decoder.decode(data, final).encode("utf-8")


class _Recoded(_Chunked):
    """UTF-16 or UTF-32 text (``codec``: its byte-order mark says which byte order) as UTF-8 bytes.
    Bytes that do not decode (a lone surrogate, an odd last byte) are kept visibly as ``\\xNN``, as
    invalid UTF-8 is (``split_lines``), never lost."""

    def __init__(self, raw: BinaryIO, codec: str):
        super().__init__(raw)
        self._decoder, self._done = text_decoder(codec), False

    def _next(self) -> bytes | None:
        if self._done:
            return None
        data = self.raw.read(READ_STEP)
        self._done = not data
        return self._decoder(data, self._done)


class _Document(_Chunked):
    """A document of log entries read as their lines (``document_lines``' reader ``lines``), a piece
    at a time, never whole."""

    def __init__(self, raw: BinaryIO, lines):
        super().__init__(raw)
        self._lines, self._done = lines, False

    def _next(self) -> bytes | None:
        # (read1: a reading error, as a message cut short, is raised by the read after the lines before it)
        read = getattr(self.raw, "read1", self.raw.read)
        while not self._done:
            data = read(READ_STEP)
            self._done = not data
            got = self._lines(data, self._done)
            if got:
                return got
        return None


def unpack(buffered: BinaryIO) -> tuple[BinaryIO, str]:
    """``buffered`` (a stream with ``peek``, nothing read yet) decompressed and as UTF-8 text; returns
    the stream and its compression, or the codec of its byte-order mark (``detect_compression``)."""
    kind = detect_compression(buffered.peek(HEAD_BYTES)[:HEAD_BYTES])
    if kind == "gzip":
        stream = gzip.GzipFile(fileobj=buffered)
    elif kind == "bz2":
        stream = bz2.BZ2File(buffered)
    elif kind == "zstd":
        stream = io.BufferedReader(_Zstd(buffered), READ_STEP)
    elif kind == "zstd-messages":
        stream = io.BufferedReader(_Messages(buffered), READ_STEP)
    else:  # plain text, text with a byte-order mark, a JSON array
        return _as_text(buffered, mark_codec(buffered.peek(4)[:4])), kind
    try:  # an archive of text with a byte-order mark (a Windows tool's log, compressed), or of a JSON array
        head = stream.peek(4)[:4]
    except Exception as e:  # noqa: BLE001 - damaged from its start: the first read says so, as it would have
        return io.BufferedReader(_Failed(stream, e)), kind
    return _as_text(stream, mark_codec(head)), kind


def _as_text(stream: BinaryIO, codec: str | None) -> BinaryIO:
    """``stream`` (its first bytes not yet read) as UTF-8 text without its byte-order mark, whose
    ``codec`` (``BYTE_ORDER_MARKS``) says how its text is written (None: no mark); a JSON array
    (``JSON_ARRAY``, after a mark too: PowerShell's ``Out-File``) as its elements' lines, and OTLP/JSON as
    its records' (``document_lines``)."""
    if codec == "utf-8-sig":
        stream.read(3)  # the mark is not part of the first line
    elif codec is not None:  # UTF-16 or UTF-32
        stream = io.BufferedReader(_Recoded(stream, codec), READ_STEP)
    try:
        head = stream.peek(HEAD_BYTES)[:HEAD_BYTES]
    except Exception:  # noqa: BLE001 - the first read says so, as it would have
        return stream
    lines = document_lines(head)
    return stream if lines is None else io.BufferedReader(_Document(stream, lines), READ_STEP)


def read_text(path) -> str:
    """A small text file (a format file, a pods JSON, ``logpipe.toml``) as text: UTF-8, or what its
    byte-order mark says (Windows editors and PowerShell write one), the mark dropped. Raises
    ``OSError``, or ``UnicodeDecodeError`` (its ``object`` the file's bytes) when it is not such text."""
    raw = Path(path).read_bytes()
    return raw.decode(mark_codec(raw[:4]) or "utf-8")


def read_failure(e: BaseException) -> bool:
    """Whether ``e`` is a failure of the read itself, not of the data read: an ``OSError`` the system
    raised, with an errno (EIO of a failing disk, an NFS mount's ESTALE, ENXIO…). The file may read
    whole next time: it is no damage. (The formats' own errors carry no errno: gzip's
    ``BadGzipFile``, bz2's ``OSError("Invalid data stream")``.)"""
    return isinstance(e, OSError) and e.errno is not None


def is_damage(e: BaseException) -> bool:
    """Whether ``e`` is what a read of damaged data raises: a cut archive's ``EOFError``, ``zlib.error``
    (gzip's "invalid block type"), gzip's ``BadGzipFile`` and bz2's ``OSError`` (no errno: not a
    ``read_failure``), zstandard's own ``ZstdError``, a ``ValueError``."""
    if read_failure(e):
        return False
    return isinstance(e, (OSError, EOFError, zlib.error, ValueError)) or type(e).__name__ == "ZstdError"


def read_some(stream: BinaryIO, n: int, step: int = READ_STEP) -> tuple[bytes, BaseException | None]:
    """Read up to ``n`` bytes in steps of ``step``, so that a decompression error loses nothing that
    was decoded before it: returns the bytes read (one step's bytes as read, not copied) and the
    error, if one stopped the reading."""
    parts: list[bytes] = []
    size = 0
    # A plain file's one step of all n bytes is read at once (read1 would first return what peek
    # buffered: a copy of them all to join). A decoder's is not: its read of n bytes that meets the
    # damage drops all it decoded before (a BufferedReader's read over GzipFile's, ZipExtFile's: a
    # small damaged gzip on stdin lost all its lines to the 8 KB look at its head), read1 at most a step.
    plain = step >= n and isinstance(getattr(stream, "raw", None), io.FileIO)
    read = stream.read if plain else getattr(stream, "read1", stream.read)
    while size < n:
        try:
            got = read(min(step, n - size))
        except Exception as e:  # noqa: BLE001 - what is not damage (a read_failure too) is raised
            if not is_damage(e):
                raise
            return b"".join(parts), e
        if not got:
            break
        parts.append(got)
        size += len(got)
    return b"".join(parts), None
