"""The stream's stdin reader (logpipe/linereader.py) on damaged compressed data: the lines before the
damage are read, none after, the line it cuts short is none, and the damage is its error."""
from __future__ import annotations

import bz2
import gzip
import os
import queue
import threading

import pytest
from test_ingest import GOOD, gen_lines

from logpipe.linereader import _EOF, LineReader


def read_lines(data: bytes) -> tuple[list[bytes], LineReader]:
    """``data`` through a pipe into a LineReader: the lines it put, and the reader (its error)."""
    r, w = os.pipe()
    return _read_from(r, lambda: (os.write(w, data) if len(data) < 60_000 else
                                  [os.write(w, data[k:k + 4096]) for k in range(0, len(data), 4096)], os.close(w)))


def _read_from(r: int, write) -> tuple[list[bytes], LineReader]:
    """The lines a LineReader put from pipe ``r`` while ``write`` (on a thread) wrote into it and closed it."""
    writer = threading.Thread(target=write)
    writer.start()
    out: queue.Queue = queue.Queue()
    reader = LineReader(r, out, threading.Event())
    reader.start()
    lines = []
    while (got := out.get(timeout=30)) != _EOF:
        lines.extend(got)
    writer.join()
    os.close(r)
    return lines, reader


def _bad_crc(data: bytes) -> bytes:
    packed = bytearray(gzip.compress(data))
    packed[-8] ^= 0xFF
    return bytes(packed)


@pytest.mark.parametrize("size", ["small", "large"])
def test_a_gzip_with_a_bad_crc_keeps_its_lines(size):
    """`cat bad-crc.gz | logpipe stream`: every line is read (they all decoded; the check at the end
    failed), then the damage is the error. (A small one's lines were all lost, and its compressed bytes
    read as one line: a noise reject.)"""
    text = GOOD.read_bytes() if size == "small" else "".join(ln + "\n" for ln in gen_lines(3000, seed=5)).encode()
    lines, reader = read_lines(_bad_crc(text))
    assert lines == text.split(b"\n")[:-1]
    assert reader.error is not None and "its gzip data is damaged" in reader.error.strerror
    assert not reader.cut_short


def test_damage_after_some_data_keeps_the_whole_lines_before_it():
    """A gzip (or bz2) whose second member (stream) is damaged at its start, its first ending inside a
    line (`cat a.gz bad.gz`): the first one's whole lines are read, not the line the damage cuts short,
    and no compressed byte is read as a line. (The read that met the damage lost all it had decoded.)"""
    text = "".join(ln + "\n" for ln in gen_lines(6000, seed=6)).encode()
    first = text[:len(text) // 2]
    lines, reader = read_lines(gzip.compress(first) + b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"\xff" * 200)
    assert lines == first.split(b"\n")[:-1] and first[-1:] != b"\n"  # (its last line, cut short, is none)
    assert "its gzip data is damaged" in reader.error.strerror
    lines, reader = read_lines(bz2.compress(first) + b"BZh91AY&SY" + b"\xff" * 200)
    assert lines == first.split(b"\n")[:-1]
    assert "its bz2 data is damaged" in reader.error.strerror


@pytest.mark.parametrize("kind", ["gzip", "bz2", "zstd"])
def test_a_second_member_read_on_its_own_is_read(kind):
    """`(cat a.bz2; sleep 1; cat b.bz2) | logpipe stream`: a member (stream, frame) that ends where a
    read of the pipe ends, the next one in a later read, is read on. (bz2's and zstd's decompressor
    refuses data after its end: the second was `its bz2 data is damaged (End of stream already
    reached)`, zstd's `(cannot use a decompressobj multiple times)`.)"""
    import time

    import zstandard

    compress = {"gzip": gzip.compress, "bz2": bz2.compress, "zstd": zstandard.ZstdCompressor().compress}[kind]
    text = GOOD.read_bytes()
    r, w = os.pipe()

    def write():
        os.write(w, compress(text))
        time.sleep(0.4)  # (the reader has read the first by now: its read ends where it ends)
        os.write(w, compress(text))
        os.close(w)

    lines, reader = _read_from(r, write)
    assert reader.error is None and lines == text.split(b"\n")[:-1] * 2


def test_the_stream_says_damaged_stdin_as_damage_not_as_a_read_error(tmp_path):
    """`cat a.gz bad.gz | logpipe stream`: one error line that says the damage, after which line, and
    that the lines before it were stored (exit 1, those rows written). It said `stdin read error after
    line N: its gzip data is damaged (…)`, as of a failed read of the pipe."""
    from test_stream import count_rows, stream_file

    text = GOOD.read_bytes()
    n = text.count(b"\n")
    src = tmp_path / "bad.gz"
    src.write_bytes(gzip.compress(text) + b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"\xff" * 200)
    code, err = stream_file(src, tmp_path / "data")
    assert code == 1 and count_rows(tmp_path / "data") == n, err
    assert (f"logpipe: error: stdin: its gzip data is damaged after line {n} (Error -3 while decompressing data:"
            " invalid block type); the lines before it were stored\n") in err, err
    assert "read error" not in err, err


def test_damage_inside_a_documents_entry_keeps_the_whole_entries_before_it():
    """A gzip of a JSON array (`gcloud logging read --format=json | gzip`) damaged inside an element:
    the whole elements before it are lines, not the element it cuts short (the reader's last flush gave
    it, a malformed reject `invalid JSON: Unterminated string`), as a text line's."""
    import json

    from logpipe.documents import JsonArrayLines

    text = json.dumps([{"n": k, "log": ln} for k, ln in enumerate(gen_lines(400, seed=7))], indent=2).encode()
    first = text[:len(text) // 2]
    lines, reader = read_lines(gzip.compress(first) + b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"\xff" * 200)
    whole = JsonArrayLines()(first).split(b"\n")[:-1]
    assert lines == whole and len(whole) > 100 and all(json.loads(ln)["log"] for ln in lines)
    assert "its gzip data is damaged" in reader.error.strerror


def test_zeros_after_a_gzip_member_are_padding_not_damage():
    """Zero bytes after a gzip member (a tape's or a block device's padding) are skipped, as Python's
    gzip module (ingest's reader of a .gz file) skips them, before another member too: the stream
    called them damage (`incorrect header check`)."""
    text = GOOD.read_bytes()
    for data in (gzip.compress(text) + b"\0" * 3000, gzip.compress(text) + b"\0" * 40_000 + gzip.compress(text)):
        assert gzip.decompress(data).count(b"\n") in (text.count(b"\n"), 2 * text.count(b"\n"))
        lines, reader = read_lines(data)
        assert reader.error is None and lines == gzip.decompress(data).split(b"\n")[:-1], reader.error
