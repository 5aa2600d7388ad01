"""The stream's stdin reader (``logpipe stream``, logpipe/stream.py): a thread that reads the raw
bytes of stdin as they come (``select`` + ``os.read``: a line is seen as soon as it is written, not
when a buffer fills) and puts its complete lines on a bounded queue. Before the first line it takes
what a log may start with off the text: a hole's NUL bytes, a byte-order mark (and UTF-16/32 to
UTF-8), gzip, bz2 or zstd compression (decompressed as it comes), a JSON document of records
(logpipe/documents.py).
"""
from __future__ import annotations

import os
import queue
import select
import threading

from . import archives as _archives
from . import holes as _holes
from .documents import document_lines
from .unpack import BYTE_ORDER_MARKS, HEAD_BYTES, detect_compression, mark_codec, text_decoder

READ_BYTES = 1 << 20  # one os.read
MAX_LINE_BYTES = 8 << 20  # a longer line is cut into pieces of this size (each a reject)
_EOF, _STOPPED = "eof", "stopped"


PIECE_BYTES = 1 << 14  # _Unzip feeds its decompressor this much at a time: damage loses a piece's text at most


class Damage(OSError):
    """A compressed stdin's damaged data (``kind``: gzip, bz2, zstd; ``detail``: its decompressor's
    words), met after its text before it was read: the stream says it as damage, not as a failed read."""

    def __init__(self, kind: str, detail: str):
        import errno

        # (EIO: what the stream says of a failed read of stdin; its text says damage)
        super().__init__(errno.EIO, f"its {kind} data is damaged ({detail})")
        self.kind, self.detail = kind, detail


class _Unzip:
    """A gzip (several members, as `cat a.gz b.gz` makes), bz2 or zstd (several frames) stdin
    (unpack.detect_compression), decompressed as it comes. Damaged data ends it, its text before the
    damage given first (``damage``: the error, raised by the reader after those lines)."""

    def __init__(self, kind: str):
        self.kind = kind
        self.done = False
        self.damage: Damage | None = None
        self._new()

    def _new(self):
        import bz2
        import zlib

        if self.kind == "zstd":
            import zstandard

            self.d = zstandard.ZstdDecompressor().decompressobj()
        else:
            self.d = zlib.decompressobj(31) if self.kind == "gzip" else bz2.BZ2Decompressor()

    def take(self, data: bytes) -> bytes:
        """``data``'s text, up to the damage if it meets one (then ``damage`` is set, and later data
        is not read). A decompressor's call that fails drops all it decoded: it is fed a piece at a
        time, and a gzip's piece that fails is fed again a byte at a time from a copy of it before
        (a gzip's CRC is checked after all its text is out: `cat bad-crc.gz | logpipe stream` lost
        all of a small one's lines, and its compressed bytes were read as a line)."""
        out = []
        view = memoryview(data)
        for at in range(0, len(view), PIECE_BYTES):
            piece = view[at:at + PIECE_BYTES]
            while piece and self.damage is None:
                if self.d.eof and self.kind == "gzip":  # (zeros after a member are padding, as gzip's module reads them)
                    piece = piece[len(bytes(piece)) - len(bytes(piece).lstrip(b"\0")):]
                    if not piece:
                        break
                if self.d.eof:  # the next member (frame, stream) starts here (bz2's and zstd's refuse more data)
                    self._new()
                before = self.d.copy() if self.kind == "gzip" else None
                try:
                    out.append(self.d.decompress(piece))
                except MemoryError:  # (not the data's damage)
                    raise
                except Exception as e:  # noqa: BLE001 - zlib.error, bz2's OSError, zstandard.ZstdError: damaged data
                    if before is not None:
                        out.append(_before_damage(before, piece))
                    self.damage = Damage(self.kind, str(e))
                    break
                self.done = self.d.eof
                piece = self.d.unused_data if self.d.eof else b""
            if self.damage is not None:
                break
        return b"".join(out)


def _before_damage(d, piece) -> bytes:
    """What ``piece`` decodes to in zlib decompressor ``d`` up to the byte that fails."""
    out = []
    for k in range(len(piece)):
        try:
            out.append(d.decompress(piece[k:k + 1]))
        except Exception:  # noqa: BLE001 - the damage itself: ``take`` says it
            break
    return b"".join(out)


class LineReader(threading.Thread):
    """Reads ``fd`` until EOF or ``stop``; puts lists of lines (bytes, no newline) on ``out``, then
    ``_EOF`` or ``_STOPPED``. After ``stop`` is set it reads nothing more, so every byte it took from
    the pipe reaches the queue."""

    def __init__(self, fd: int, out: queue.Queue, stop: threading.Event):
        super().__init__(name="logpipe-stdin", daemon=True)
        self.fd, self.out, self.stop = fd, out, stop
        self.error: OSError | None = None
        self.compressed: str | None = None  # "gzip", "bz2", "zstd": what stdin was (decompressed as it comes)
        self.cut_short = False  # a compressed stdin that ended inside its stream
        self.archive: str | None = None  # "zip", "tar": stdin was an archive (not read)
        self.binary = False  # stdin was binary (NUL bytes no hole explains: sources.inspect), not read

    def run(self) -> None:
        tail = b""
        end = _STOPPED
        first = True  # a byte-order mark (a Windows tool's) is not part of the first line
        decode = None  # UTF-16 or UTF-32 text (its mark says which) to UTF-8
        unzip = None  # gzip, bz2 or zstd (`cat access.log.gz | logpipe stream`, as `ingest -` reads it)
        try:
            while not self.stop.is_set():
                if unzip is not None and unzip.damage is not None:  # (its lines before it are out)
                    raise unzip.damage
                try:
                    ready, _, _ = select.select([self.fd], [], [], 0.1)
                except (OSError, ValueError):
                    ready = [self.fd]  # not selectable (rare): just read
                if not ready:
                    continue
                data = os.read(self.fd, READ_BYTES)
                if not data:
                    end = _EOF
                    break
                if unzip is not None:
                    data = unzip.take(data)
                tail += decode(data) if decode is not None else data
                if first:
                    tail = tail.lstrip(b"\x00")  # (a hole at the start, copytruncate's: no line's; logpipe/holes.py)
                    if not tail:
                        continue
                    if unzip is None and len(tail) < 10 and tail[:1] in b"\x1fB\x28" and b"\n" not in tail:
                        continue  # (a compressed stream's magic may come in several reads)
                    kind = detect_compression(tail[:HEAD_BYTES]) if unzip is None else None
                    if kind in ("gzip", "bz2", "zstd"):
                        unzip, self.compressed = _Unzip(kind), kind
                        tail = unzip.take(tail)
                        if not tail:
                            continue
                    archive = "zip" if _archives.zip_header(tail) else \
                        "tar" if len(tail) >= _archives.BLOCK and _archives.tar_header(tail[:_archives.BLOCK]) else None
                    if archive is not None:  # (Streamer.run says so: a log's lines, not an archive's files)
                        self.archive, end, tail = archive, _EOF, b""
                        break
                    if len(tail) < 4 and any(mark.startswith(tail) for mark, _ in BYTE_ORDER_MARKS):
                        continue  # (a mark may come in several reads)
                    if tail == b"[" or (tail.startswith(b"{") and len(tail) < HEAD_BYTES and b"\n" not in tail[1:].lstrip()):
                        continue  # (a JSON array's "[" or an access line's, an OTLP/JSON request's first
                        # bytes or a JSON line's, an indented Loki response's "{" and first key: the next
                        # read says which)
                    first, codec = False, mark_codec(tail)
                    if codec is None and b"\x00" in tail[:8192] and _holes.binary(tail[:8192]):
                        self.binary, end, tail = True, _EOF, b""  # (Streamer.run says so, as ingest does)
                        break
                    if codec == "utf-8-sig":
                        tail = tail[3:]
                    elif codec is not None:
                        decode = text_decoder(codec)
                        tail = decode(tail)
                    document = document_lines(tail)  # (gcloud logging read --format=json: its elements as
                    if document is not None:            # lines; OTLP/JSON: its records)
                        marked = decode
                        decode = document if marked is None else \
                            (lambda data, final=False: document(marked(data, final), final))
                        tail = document(tail)
                cut = tail.rfind(b"\n")
                if cut >= 0:
                    lines = tail[:cut].split(b"\n")
                    tail = tail[cut + 1 :]
                    self.out.put(lines)
                while len(tail) >= MAX_LINE_BYTES:
                    self.out.put([tail[:MAX_LINE_BYTES]])
                    tail = tail[MAX_LINE_BYTES:]
        except OSError as e:
            self.error = e
            end = _EOF
            if unzip is not None and e is unzip.damage:
                tail = b""  # (the line the damage cut short is no line, as ingest keeps a damaged archive's whole lines)
        finally:
            if unzip is not None and end == _EOF and not unzip.done and self.error is None:
                self.cut_short = True
            # (an odd last byte: kept as \\xNN; a document's last entry. Not where damage cut them short:
            # a JSON array's element it cut was a malformed reject, `Unterminated string`)
            damaged = unzip is not None and unzip.damage is not None and self.error is unzip.damage
            if decode is not None and not damaged:
                tail += decode(b"", True)
            if tail:
                self.out.put([tail])
            self.out.put(end)
