"""Holes: runs of NUL bytes where a file lost its data (logpipe/holes.py). logrotate's copytruncate under a
writer that does not append leaves one at the file's start, as long as the file was; a crash leaves
one where written data had not reached the disk. A hole is no line's text: the lines around it read
as they would without it, a line it cuts short is a reject that says so, and a file is only called
binary for NUL bytes no hole explains."""
from __future__ import annotations

import gzip
import io
import json

import pytest
from click.testing import CliRunner
from conftest import SAMPLES, parse_file

from logpipe import ingest, lanes, native, pipeline, workers
from logpipe.cli import cli
from logpipe.dataset import InputHash
from logpipe.parse import Parser
from logpipe.sources import Input, inspect, iter_byte_chunks, iter_file_ranges

GOOD = SAMPLES / "waypoint-egress-1.23.log"
TEXT = GOOD.read_bytes()
LINES = TEXT.splitlines(keepends=True)
CUT_SHORT = "a hole of 4,096 NUL bytes cuts the line short"


def _sparse(path, hole: int, text: bytes) -> None:
    """``text`` after ``hole`` NUL bytes left unwritten, as copytruncate leaves them (a sparse file)."""
    with open(path, "wb") as f:
        f.seek(hole)
        f.write(text)


def _ndjson(text: str) -> list[dict]:
    return [json.loads(x) for x in text.splitlines()]


def _rows(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "source"} for r in records]


@pytest.mark.parametrize("hole", [1, 5000, 3 << 20], ids=["one-byte", "in-the-head", "past-the-head"])
def test_a_hole_at_the_start_is_no_line(tmp_path, hole):
    """copytruncate's hole: the file's lines are read after it, numbered and kept as without it; the
    file is not "binary"."""
    path = tmp_path / "access.log"
    _sparse(path, hole, TEXT)
    assert inspect(Input(str(path))) == (None, hole)
    records, rejects = parse_file(path)
    want, want_rejects = parse_file(GOOD)
    assert _rows(records) == _rows(want) and len(records) > 10
    assert _rows(rejects) == _rows(want_rejects)  # (their raw texts too: no NUL)


def test_the_cli_reads_past_a_hole_from_a_file_a_pipe_and_an_archive(tmp_path):
    path = tmp_path / "access.log"
    _sparse(path, 70_000, TEXT)
    packed = tmp_path / "access.log.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    want = CliRunner().invoke(cli, ["parse", str(GOOD), "-o", "ndjson"])
    for args, stdin in (([str(path)], None), (["-"], path.read_bytes()), ([str(packed)], None)):
        got = CliRunner().invoke(cli, ["parse", *args, "-o", "ndjson"], input=stdin)
        assert got.exit_code == 0 and _rows(_ndjson(got.stdout)) == _rows(_ndjson(want.stdout)), got.stderr
        assert got.stderr.splitlines()[-1] == want.stderr.splitlines()[-1]  # the same counts
    # the file says where its hole was (a gzip or a pipe cannot be looked into before it is read)
    said = CliRunner().invoke(cli, ["parse", str(path), "-o", "ndjson"]).stderr.splitlines()
    assert said[0] == (f"logpipe: {path}: starts with a hole of 70,000 NUL bytes, skipped (logrotate's copytruncate "
                       "under a writer that does not append: the lines written between its copy and its truncation "
                       "are in neither file)") and len(said) == 2


def test_a_crash_hole_between_lines_and_inside_one(tmp_path):
    """A hole after a newline is skipped; one after some text cut that line short: a malformed reject
    that says where and why, holding the text after the hole. Every line is counted once."""
    a, b, c, d = LINES[0], LINES[1], LINES[2], LINES[3]
    text = a + b"\x00" * 4096 + b + c[:40] + b"\x00" * 4096 + d + b"\x00" * 100 + b"\n" + LINES[4]
    path = tmp_path / "crashed.log"
    path.write_bytes(text)
    got = CliRunner().invoke(cli, ["parse", str(path), "-o", "ndjson"])
    assert got.exit_code == 0, got.stderr
    assert f"crashed.log:3: malformed: column 41: {CUT_SHORT}" in got.stderr
    assert "read 5, parsed 3, rejected 1 (noise 0, malformed 1), blank 1" in got.stderr
    records, rejects = parse_file(path)
    assert [r["line_number"] for r in records] == [1, 2, 5]
    (reject,) = rejects
    assert reject["raw"] == (c[:40] + b"\x00" * 4096 + d).decode().rstrip("\n") and reject["column"] == 41


def test_a_few_nul_bytes_inside_a_line_are_its_text():
    """Fewer than HOLE_MIN NUL bytes after some text are no hole: the line reads as it would with
    any other character there (a user agent's, here)."""
    line = LINES[0].decode().rstrip("\n")
    odd = line.replace('"curl/8.11.1"', '"curl/\x00\x008.11.1"')
    assert odd != line
    batch = Parser().parse_batch([odd])
    assert batch.parsed == 1 and batch.records.to_pylist()[0]["user_agent"] == "curl/\x00\x008.11.1"


@pytest.mark.parametrize("lib", ["native", "polars"])
def test_every_reader_of_lines_fills_holes_alike(lib, monkeypatch):
    """parse_chunk (told of NUL bytes by native.lines, or not told) and parse_batch give the same."""
    if lib == "polars":
        monkeypatch.setattr(native, "library", lambda: None)
    elif native.library() is None:
        pytest.skip("no C compiler: cut.c is not built")
    body = b"\x00" * 9 + LINES[0] + LINES[1][:30] + b"\x00" * 4096 + LINES[2] + b"\x00" * 20 + LINES[3]
    parser = Parser()
    chunk = parser.parse_chunk(body, "x")
    batch = parser.parse_batch(body.splitlines(), "x")
    assert chunk.records.to_pylist() == batch.records.to_pylist()
    assert chunk.rejects.to_pylist() == batch.rejects.to_pylist()
    assert (chunk.read, chunk.parsed, chunk.rejected, chunk.blank) == (3, 2, 1, 0)
    assert CUT_SHORT in chunk.rejects.to_pylist()[0]["reason"]


@pytest.mark.parametrize("content", [
    b"\x00" * 300 + b"a\nbb\nccc\n" * 30,
    b"\x00" * 300 + b"one line, no newline",
    b"\x00" * 300,
    b"\x00" * 100 + b"\n" + b"\x00" * 100 + b"x\n",  # (a hole after the first newline is a line's)
], ids=["lines", "unterminated", "all-hole", "holes"])
@pytest.mark.parametrize("chunk", [64, 1 << 20])
def test_readers_start_after_the_hole_and_count_its_bytes(tmp_path, content, chunk):
    """The readers of a file (its byte chunks; its ranges for the workers, hashed as they are read)
    start after a hole at its start: their lines are the text after it, their offsets the file's,
    and the hash is of every byte, the hole's too."""
    import hashlib

    path = tmp_path / "f.log"
    path.write_bytes(content)
    after = len(content) - len(content.lstrip(b"\x00"))
    for reader in ("chunks", "ranges"):
        hasher = InputHash("sha256-128")
        if reader == "chunks":
            got = list(iter_byte_chunks(Input(str(path)), chunk_bytes=chunk))
        else:
            got = [(r.read(), end) for r, end in iter_file_ranges(Input(str(path)), chunk_bytes=chunk, hasher=hasher)]
            assert hasher._hash.hexdigest() == hashlib.sha256(content).hexdigest()
        assert b"".join(body for body, _ in got) == content[after:]
        assert [end for _, end in got] == [after + len(b"".join(body for body, _ in got[:k + 1])) for k in range(len(got))]


@pytest.mark.parametrize("content, binary", [
    ("".join(x.decode() for x in LINES[:20]).encode("utf-16-le"), True),  # UTF-16 without its byte-order mark
    (b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + b"\x02\x00>\x00" * 50, True),
    (b"SQLite format 3\x00\x10\x00\x01\x01\x00@  " + b"\x00" * 200, True),
    (b"\x00" * 20000 + b"\x01\x00\x02\x00" * 10, True),  # binary after a hole
    (b"\x00" * 20000 + TEXT, False),
    (TEXT[:3000] + b"\x00" * 4096 + TEXT, False),  # a crash's hole inside a line
    (TEXT[:3000] + b"\n" + b"\x00" * 5 + TEXT, False),  # a short one at a line's start
    (b"\x00" * 9000, False),  # nothing but a hole: no lines, nothing to refuse
], ids=["utf-16-le", "elf", "sqlite", "binary-after-a-hole", "hole-then-text", "crash-hole", "short-hole",
        "only-a-hole"])
def test_binary_files_are_told_from_holes(tmp_path, content, binary):
    path = tmp_path / "f"
    path.write_bytes(content)
    assert (inspect(Input(str(path)))[0] is not None) == binary


def test_ingest_of_a_file_with_a_hole_in_workers_equals_one_process_and_resumes(tmp_path, monkeypatch):
    """A large copytruncated file, split among the worker processes, gives the rows the file without
    its hole gives in this process; ingested again it is skipped, and grown it is read on."""
    base = b"".join(LINES) * 60
    path = tmp_path / "in" / "access.log"
    path.parent.mkdir()
    _sparse(path, 2 << 20, base)
    plain = tmp_path / "plain.log"
    plain.write_bytes(base)
    monkeypatch.setattr(lanes, "PARALLEL_MIN_BYTES", 256 << 10)
    for module in (workers, pipeline):  # many small tasks: the hole is in the first range's bytes
        monkeypatch.setattr(module, "CHUNK_BYTES", 96 << 10)
    monkeypatch.setattr(workers, "STAGE_TASK_BYTES", 96 << 10)
    got = {}
    for name, log, lanes_ in (("hole", path, "2"), ("plain", plain, "1")):
        monkeypatch.setenv("LOGPIPE_WORKERS", lanes_)
        err = io.StringIO()
        s = ingest.ingest_paths([str(log)], str(tmp_path / name), err=err, progress=False)
        assert ("starts with a hole of 2,097,152 NUL bytes, skipped" in err.getvalue()) == (name == "hole")
        got[name] = (s.counts.read, s.counts.parsed, s.counts.noise, s.counts.malformed, s.counts.blank)
        assert s.files > 1 or name == "plain"  # (the workers wrote parts of their own)
    assert got["hole"] == got["plain"] and got["hole"][1] > 1000
    err = io.StringIO()
    ingest.ingest_paths([str(path)], str(tmp_path / "hole"), err=err, progress=False)
    assert "skipped as already ingested 1" in err.getvalue()
    with open(path, "ab") as f:
        f.write(b"".join(LINES[:7]))
    s = ingest.ingest_paths([str(path)], str(tmp_path / "hole"), err=io.StringIO(), progress=False)
    extra = tmp_path / "extra.log"
    extra.write_bytes(b"".join(LINES[:7]))
    assert (s.counts.read, s.counts.parsed) == (7, len(parse_file(extra)[0])) and s.counts.parsed > 0
