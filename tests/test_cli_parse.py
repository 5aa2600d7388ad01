"""`logpipe parse` as a user runs it: formats on stdout, rejects and the summary on stderr, exit codes,
compressed inputs and stdin. CliRunner keeps stdout and stderr apart (click >= 8.2)."""
from __future__ import annotations

import bz2
import csv
import functools
import gzip
import io
import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SAMPLES, run_logpipe

from logpipe.cli import cli
from logpipe.schema import COLUMNS, REJECT_SCHEMA

SUMMARY = re.compile(r"^read (\d+), parsed (\d+), rejected (\d+) \(noise (\d+), malformed (\d+)\)(?:, blank (\d+))?$")
ACCESS = SAMPLES / "waypoint-egress-1.23.log"
MALFORMED = SAMPLES / "malformed.log"
NOISY = SAMPLES / "noise-mixed.log"


# Text given on stdin is of unknown size, so `parse -` starts a worker process (in a test, spawned:
# ~1 s of CPU) that these inputs of a few kB never use: the tests of what is read from stdin run in one.
ONE_PROCESS = {"LOGPIPE_WORKERS": "1"}


def run(*args, input=None):
    return CliRunner().invoke(cli, ["parse", *map(str, args)], input=input,
                              env=ONE_PROCESS if input is not None else None)


def summary(stderr: str) -> dict:
    last = stderr.rstrip("\n").splitlines()[-1]
    m = SUMMARY.match(last)
    assert m, f"last stderr line is not the summary: {last!r}"
    read, parsed, rejected, noise, malformed, blank = (int(x or 0) for x in m.groups())
    assert read == parsed + rejected + blank and rejected == noise + malformed
    return {"read": read, "parsed": parsed, "rejected": rejected, "noise": noise, "malformed": malformed, "blank": blank}


def ndjson(stdout: str) -> list[dict]:
    return [json.loads(x) for x in stdout.splitlines()]


def test_ndjson_records_on_stdout_summary_last_on_stderr():
    r = run(ACCESS, "-o", "ndjson")
    assert r.exit_code == 0, r.stderr
    rows = ndjson(r.stdout)
    s = summary(r.stderr)
    assert len(rows) == s["parsed"] > 0
    for row in rows:
        assert list(row) == COLUMNS
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", row["start_time"])
        assert row["source"].endswith("waypoint-egress-1.23.log")
        assert "-" not in (row["requested_server_name"], row["route_name"], row["upstream_host"])
    assert "start_time" not in r.stderr


def test_default_format_off_a_terminal_is_ndjson():
    r = run(ACCESS)
    assert r.exit_code == 0
    assert all(line.startswith("{") for line in r.stdout.splitlines())


def test_csv_output_has_the_schema_header():
    r = run(ACCESS, "-o", "csv")
    assert r.exit_code == 0, r.stderr
    table = list(csv.reader(io.StringIO(r.stdout)))
    assert table[0] == COLUMNS
    assert len(table) - 1 == summary(r.stderr)["parsed"]


def test_table_output_is_aligned_text():
    r = run(ACCESS, "-o", "table")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["start_time", "method", "path"]
    assert len(lines) >= summary(r.stderr)["parsed"] + 1


def test_rejects_go_to_stderr_with_source_line_and_reason():
    r = run(MALFORMED, "-o", "ndjson", "--max-warnings", "100")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    rejects = [x for x in lines if re.match(rf"^{re.escape(str(MALFORMED))}:\d+: (malformed|noise): ", x)]
    s = summary(r.stderr)
    assert len(rejects) == s["rejected"] == s["read"]
    assert any(":2: malformed: column 48: response_code expected INT, got '2OO'" in x for x in rejects)
    assert not any(x.endswith(", column 48") for x in rejects), "the column is said once"


def test_a_custom_formats_reject_says_its_column_once(tmp_path):
    log = tmp_path / "custom.log"
    log.write_text('[2025-03-01T00:00:00.000Z] GET /x 200 12 "abc" outbound|443||a.io 10.0.0.1:5\n'
                   '[2025-03-01T00:00:00.000Z] GET /x 200 12 "ab\n')
    r = run(str(log), "-o", "ndjson", "--format-string",
            '[%START_TIME%] %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %DURATION% "%REQ(X-B3-TRACEID)%" '
            "%UPSTREAM_CLUSTER% %DOWNSTREAM_REMOTE_ADDRESS%")
    (reject,) = [x for x in r.stderr.splitlines() if ":2: malformed: " in x]
    assert "does not follow the given format: column " in reject
    assert not re.search(r", column \d+$", reject), "the column is said once"
    assert summary(r.stderr)["parsed"] == 1


def test_max_warnings_caps_the_reject_lines():
    r = run(MALFORMED, "--max-warnings", "3")
    lines = r.stderr.splitlines()
    assert sum(1 for x in lines if ": malformed: " in x) == 3
    assert re.search(r"… 13 more rejects not shown", r.stderr)
    assert summary(r.stderr)["rejected"] == 16


def test_rejects_file_holds_them_as_ndjson(tmp_path):
    out = tmp_path / "rejects.ndjson"
    r = run(NOISY, "--rejects", out, "-o", "ndjson")
    assert r.exit_code == 0, r.stderr
    rows = ndjson(out.read_text(encoding="utf-8"))
    s = summary(r.stderr)
    assert len(rows) == s["rejected"] > 0
    assert all(set(row) == set(REJECT_SCHEMA.names) for row in rows)
    assert {row["class"] for row in rows} <= {"noise", "malformed"}
    assert len(r.stderr.splitlines()) == 1, "rejects went to the file, only the summary to stderr"


@pytest.mark.parametrize("fmt", ["ndjson", "csv", "table"])
def test_out_file_is_written_whole_or_not_at_all(tmp_path, fmt):
    """``--out FILE`` in a text format goes through a temporary file beside FILE, renamed over it
    when complete, as Parquet's does: a run that fails (``--on-error fail``'s first reject) leaves
    an old FILE as it was (it was opened "w", so emptied), and no temporary file."""
    out = tmp_path / "records.out"
    out.write_text("old\n", encoding="utf-8")
    r = run(MALFORMED, "--on-error", "fail", "-o", fmt, "--out", out)
    assert r.exit_code == 1 and "--on-error is fail" in str(r.exception)
    assert out.read_text(encoding="utf-8") == "old\n"
    assert os.listdir(tmp_path) == ["records.out"]
    r = run(ACCESS, "-o", fmt, "--out", out)
    assert r.exit_code == 0, r.stderr
    assert out.read_text(encoding="utf-8") == run(ACCESS, "-o", fmt).stdout
    assert os.listdir(tmp_path) == ["records.out"]


def test_on_error_skip_is_quiet_but_counts():
    r = run(NOISY, "--on-error", "skip")
    assert r.exit_code == 0
    assert len(r.stderr.splitlines()) == 1
    assert summary(r.stderr)["noise"] > 0


def test_on_error_fail_exits_1_with_the_first_reject():
    r = run(MALFORMED, "--on-error", "fail")
    assert r.exit_code == 1
    assert "malformed.log:1 was rejected" in str(r.exception)
    summary(r.stderr)  # the counts are still printed
    assert len(r.stderr.splitlines()) == 1  # (no line for each reject: the error names the first)


@pytest.mark.parametrize("args, code, message", [
    (["parse", str(MALFORMED), "--on-error", "fail"], 1, "was rejected (column 86"),
    (["parse", "no-such-file.log"], 1, "no-such-file.log: no such file or directory"),
])
def test_errors_are_one_line_and_an_exit_code(args, code, message):
    p = run_logpipe(*args)  # (the command line's error mapping and exit status, in this process)
    assert p.returncode == code
    errors = [x for x in p.stderr.splitlines() if x.startswith("logpipe: error:")]
    assert len(errors) == 1 and message in errors[0], p.stderr
    assert "Traceback" not in p.stderr


def compress(kind: str, data: bytes) -> bytes:
    if kind == "gz":
        return gzip.compress(data)
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize("kind", ["gz", "zst"])
@pytest.mark.parametrize("sample", [ACCESS, NOISY, SAMPLES / "istio-json-1.24.log"], ids=lambda p: p.name)
def test_compressed_inputs_give_the_same_records(tmp_path, kind, sample):
    packed = tmp_path / f"{sample.name}.{kind}"
    packed.write_bytes(compress(kind, sample.read_bytes()))
    plain, comp = run(sample, "-o", "ndjson"), run(packed, "-o", "ndjson")
    assert comp.exit_code == 0, comp.stderr
    strip = lambda rows: [{k: v for k, v in row.items() if k != "source"} for row in rows]  # noqa: E731
    assert strip(ndjson(comp.stdout)) == strip(ndjson(plain.stdout))
    assert summary(comp.stderr) == summary(plain.stderr)
    assert {row["source"] for row in ndjson(comp.stdout)} == {str(packed)}


# How Windows tools save a log: PowerShell 5's `>` writes UTF-16LE with a byte-order mark, its
# `Out-File -Encoding utf8` UTF-8 with one.
ENCODINGS = {"utf-8-sig": lambda t: t.encode("utf-8-sig"), "utf-16le": lambda t: t.encode("utf-16"),
             "utf-16be": lambda t: b"\xfe\xff" + t.encode("utf-16-be"), "utf-32": lambda t: t.encode("utf-32")}


@functools.lru_cache(maxsize=None)
def _plain_parse(sample):
    """``logpipe parse SAMPLE -o ndjson`` of the UTF-8 file: once for every encoding of it."""
    return run(sample, "-o", "ndjson")


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("sample", [ACCESS, NOISY], ids=lambda p: p.name)
def test_text_with_a_byte_order_mark_gives_the_same_records(tmp_path, encoding, sample):
    """The mark is not part of the first line, and UTF-16 or UTF-32 text is read as UTF-8 text: the
    records and counts are the UTF-8 file's, from a file, from stdin, and from gzip and zstd archives
    of it."""
    text = ENCODINGS[encoding](sample.read_text(encoding="utf-8"))
    saved, gz, zst = tmp_path / sample.name, tmp_path / f"{sample.name}.gz", tmp_path / f"{sample.name}.zst"
    saved.write_bytes(text)
    gz.write_bytes(compress("gz", text))
    zst.write_bytes(compress("zst", text))
    plain = _plain_parse(sample)
    strip = lambda rows: [{k: v for k, v in row.items() if k != "source"} for row in rows]  # noqa: E731
    for got in (run(saved, "-o", "ndjson"), run("-", "-o", "ndjson", input=text), run(gz, "-o", "ndjson"),
                run(zst, "-o", "ndjson")):
        assert got.exit_code == 0, got.stderr
        assert strip(ndjson(got.stdout)) == strip(ndjson(plain.stdout))
        assert summary(got.stderr) == summary(plain.stderr)


@pytest.mark.parametrize("cut", [lambda d: gzip.compress(d)[:5], lambda d: bz2.compress(d)[:100],
                                 lambda d: compress("zst", d)[:8]], ids=["gzip-header", "bz2-block", "zstd-header"])
def test_an_archive_damaged_from_its_start_says_so(tmp_path, cut):
    """An archive whose first bytes already fail to decompress (looked at for a byte-order mark
    before any line is read) is still an error naming it, not an empty input."""
    damaged = tmp_path / "damaged.log.x"
    damaged.write_bytes(cut(ACCESS.read_bytes()))
    got = run(damaged)
    assert got.exit_code == 1 and f"{damaged}: archive is corrupt or truncated after 0 bytes" in got.stderr, got.stderr


def test_a_binary_file_is_one_error_as_in_ingest(tmp_path):
    """A binary file among the inputs is one line of error, as ``ingest`` says it, not a reject for
    each of its "lines"; the other inputs are parsed."""
    core = tmp_path / "core.bin"
    core.write_bytes(b"\x7fELF\x00\x00\x01\n" * 100)
    got = run(core, ACCESS)
    assert got.exit_code == 1 and f"{core}: binary file (NUL bytes), not a text log; leave it out of the inputs" in got.stderr
    assert summary(got.stderr)["rejected"] == 0 and summary(got.stderr)["parsed"] == summary(run(ACCESS).stderr)["parsed"]


def test_a_binary_stdin_is_one_error_as_a_binary_file_is(tmp_path):
    """``parse -`` and ``ingest -`` of binary bytes (a Parquet file, UTF-16 without its byte-order
    mark) were read as lines, exit 0: stdin's first bytes are looked at as a file's are."""
    for data in (b"PAR1\x15\x04\x15\x10\x15\x14L\x15\x02\x15\x00\x12\x00\x00" + ACCESS.read_bytes()[:300],
                 ACCESS.read_text().encode("utf-16-le")):
        got = run("-", input=data)
        assert got.exit_code == 1 and "<stdin>: binary file (NUL bytes), not a text log" in got.stderr, got.stderr
        r = CliRunner().invoke(cli, ["ingest", "-", "--data", str(tmp_path / "d")], input=data, env=ONE_PROCESS)
        assert r.exit_code == 1 and "<stdin>: binary file (NUL bytes)" in r.stderr
    assert run("-", input=ACCESS.read_bytes()).exit_code == 0


def test_zstd_frames_are_read_in_turn_and_a_cut_one_is_an_error(tmp_path):
    """Concatenated zstd frames (``cat a.zst b.zst``) read as their texts one after the other; an
    archive cut inside a frame keeps the complete lines before the cut and says it is truncated, as
    gzip and bz2 do (the zstd library's reader used to end there quietly, losing the rest unsaid)."""
    text = ACCESS.read_bytes()
    joined = tmp_path / "joined.log.zst"
    joined.write_bytes(compress("zst", text) * 3)
    got = run(joined)
    assert got.exit_code == 0 and summary(got.stderr)["read"] == 3 * summary(run(ACCESS).stderr)["read"]
    big = (SAMPLES / "scenario" / "baseline-week.log").read_bytes()
    packed = compress("zst", big)
    cut = tmp_path / "cut.log.zst"
    cut.write_bytes(packed[: len(packed) // 2])
    got = run(cut)
    read = summary(got.stderr)["read"]
    assert got.exit_code == 1 and f"{cut}: archive is corrupt or truncated after" in got.stderr, got.stderr
    assert 0 < read < big.count(b"\n") and big.startswith(b"".join(line + b"\n" for line in big.split(b"\n")[:read]))


def test_utf16_bytes_that_do_not_decode_are_kept_visibly(tmp_path):
    """A lone surrogate and an odd last byte in UTF-16 text: the lines are kept, with the bytes
    shown as \\xNN (as invalid UTF-8 is), not dropped or replaced silently."""
    good = ACCESS.read_text(encoding="utf-8").splitlines()[0]
    saved = tmp_path / "broken16.log"
    saved.write_bytes("\ufeff".encode("utf-16-le") + (good + "\n").encode("utf-16-le") + b"\x00\xd8" + "x\n".encode("utf-16-le") + b"z")
    got = run(saved, "-o", "ndjson", "--rejects", str(tmp_path / "rejects.ndjson"))
    assert summary(got.stderr)["read"] == 3 and summary(got.stderr)["parsed"] == 1
    raws = [json.loads(line)["raw"] for line in (tmp_path / "rejects.ndjson").read_text().splitlines()]
    assert raws == ["\\x00\\xd8x", "\\x7a"], raws


def test_stdin_dash_reads_standard_input():
    data = ACCESS.read_text(encoding="utf-8")
    r = run("-", "-o", "ndjson", input=data)
    assert r.exit_code == 0, r.stderr
    rows = ndjson(r.stdout)
    assert rows and {row["source"] for row in rows} == {"<stdin>"}
    assert rows == [dict(x, source="<stdin>") for x in ndjson(run(ACCESS, "-o", "ndjson").stdout)]


def test_no_files_means_stdin():
    r = run(input="\n\n")
    assert r.exit_code == 0
    assert summary(r.stderr) == {"read": 2, "parsed": 0, "rejected": 0, "noise": 0, "malformed": 0, "blank": 2}


def test_several_inputs_add_up():
    r = run(ACCESS, MALFORMED, NOISY, "-o", "ndjson", "--on-error", "skip")
    total = sum(summary(run(p, "--on-error", "skip").stderr)["read"] for p in (ACCESS, MALFORMED, NOISY))
    assert summary(r.stderr)["read"] == total


@pytest.mark.parametrize("args,code", [
    (["parse", str(ACCESS), "-o", "ndjson"], 0),
    (["parse", str(MALFORMED), "--on-error", "fail"], 1),
    (["parse", "no-such-file.log"], 1),
])
def test_the_command_exits_quickly_with_everything_written(args, code, tmp_path):
    """The installed command (``cli.entry``) leaves out Python's teardown after a read-only command:
    its stdout (a pipe or a file), its stderr and its exit status are those of the command run in
    process (``conftest.run_logpipe``: ``exits.run``, as ``main`` runs it). (Its stdout a file too
    where it writes records: the errors' runs flush an empty stdout the same way, ~0.7 s of CPU a
    process.)"""
    piped = subprocess.run([sys.executable, "-m", "logpipe", *args], capture_output=True)
    usual = run_logpipe(*args, text=False)  # (``main``'s command, run in this process)
    assert piped.returncode == usual.returncode == code
    assert piped.stdout == usual.stdout and piped.stderr == usual.stderr
    if code == 0:
        out = tmp_path / "out"
        with open(out, "wb") as f:
            fast = subprocess.run([sys.executable, "-m", "logpipe", *args], stdout=f, stderr=subprocess.PIPE)
        assert fast.returncode == code and out.read_bytes() == piped.stdout and fast.stderr == piped.stderr
        assert len(ndjson(piped.stdout.decode())) == len(ACCESS.read_text().splitlines())


@pytest.mark.parametrize("command", ["parse", "ingest"])
def test_inputs_are_listed_once(command, tmp_path, monkeypatch):
    """The paths are expanded once, when the workers are sized (lanes.boot_pool), and the command reads
    those inputs: a directory is not listed a second time, whose files may have changed meanwhile."""
    from logpipe import ingest, pipeline, sources

    calls = []
    real = sources.expand_inputs

    def counting(paths):
        calls.append(list(paths))
        return real(paths)

    for module in (sources, ingest, pipeline):
        monkeypatch.setattr(module, "expand_inputs", counting)
    args = [str(SAMPLES / "scenario")] + (["--data", str(tmp_path / "data")] if command == "ingest" else [])
    result = CliRunner().invoke(cli, [command, *args])
    assert result.exit_code == 0, result.stderr
    assert calls == [[str(SAMPLES / "scenario")]]


SMALL_PARSE_FORMATS = ("ndjson", "csv", "table")


@functools.lru_cache(maxsize=1)
def _small_parses() -> dict[str, tuple[int, str, str]]:
    """``logpipe parse`` of a small sample to each of SMALL_PARSE_FORMATS, one after the other in one
    process (a start-up of ~0.5 s each saved): per format, its exit status, its stdout, and whether
    pyarrow.compute was imported by then (a module once imported stays: a format that imports it is
    seen at its own parse, or at an earlier one)."""
    code = ("import sys; from logpipe import cli\n"
            "path, fmts = sys.argv[1], sys.argv[2:]\n"
            "for fmt in fmts:\n"
            "    sys.argv = ['logpipe', 'parse', path, '-o', fmt]\n"
            "    try:\n        cli.main()\n    except SystemExit as e:\n        code = e.code\n"
            "    sys.stdout.flush()\n"
            "    sys.stdout.write('\\n--- %s %s %s\\n' % (fmt, code, 'pyarrow.compute' in sys.modules))\n"
            "    sys.stdout.flush()\n")
    got = subprocess.run([sys.executable, "-c", code, str(SAMPLES / "waypoint-egress-1.23.log"), *SMALL_PARSE_FORMATS],
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    parts = re.split(r"\n--- (\w+) (\S+) (True|False)\n", got.stdout)
    assert len(parts) == 4 * len(SMALL_PARSE_FORMATS) + 1 and parts[-1] == "", got.stdout[-2000:]
    return {fmt: (code, out, imported) for out, fmt, code, imported in zip(*[iter(parts[:-1])] * 4)}


@pytest.mark.parametrize("fmt", SMALL_PARSE_FORMATS)
def test_a_small_parse_starts_without_pyarrow_compute(fmt):
    """pyarrow.compute's import is ~50 ms of `logpipe parse`'s start-up on a small file (its Python
    module wraps each of Arrow's functions): the parse, its typing and its output do without it
    (``arrowpl.cast``; times of a short column made text by Python). JSON rows need cut.c for that."""
    from logpipe import native

    if fmt == "ndjson" and native.library() is None:
        pytest.skip(f"cut.c not built ({native.why_not}): JSON rows are joined by pyarrow.compute")
    code, out, imported = _small_parses()[fmt]
    assert code in ("0", "None"), out[-2000:]
    assert out.count("httpbin.org") >= 1
    assert imported == "False"


def test_ctrl_c_that_a_lock_s_wait_turned_into_another_error_exits_as_interrupted(capsys):
    """A KeyboardInterrupt that lands in ``threading.Condition.wait`` between its release and its
    try leaves the lock released; the ``with`` around the wait then raises RuntimeError ("cannot
    release un-acquired lock"), the interrupt as its context. That is Ctrl-C (exit 130), not an
    internal error; a RuntimeError of its own still is one."""
    import threading

    import click

    from logpipe import exits
    from logpipe.errors import interrupted

    def wait_interrupted():
        cond = threading.Condition()
        with cond:
            cond.release()  # (as the wait had released it when Ctrl-C came)
            raise KeyboardInterrupt

    @click.group()
    def group():
        pass

    @group.command()
    def waits():
        wait_interrupted()

    @group.command()
    def fails():
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="un-acquired lock") as caught:
        wait_interrupted()
    assert interrupted(caught.value) and not interrupted(RuntimeError("x"))
    for name, code, said in (("waits", 130, "logpipe: interrupted"), ("fails", 1, "internal error: RuntimeError: a bug")):
        old = sys.argv
        sys.argv = ["logpipe", name]
        try:
            assert exits.run(group) == code
        finally:
            sys.argv = old
        assert said in capsys.readouterr().err


@pytest.mark.parametrize("args, said", [
    (["stream", "--flush-rows", "abc"], "logpipe: error: Invalid value for '--flush-rows': 'abc' is not a valid integer"
                                        " (see `logpipe stream --help`)"),
    (["parse", "--bogus", "x"], "logpipe: error: No such option '--bogus'. Did you mean '--out'? (see `logpipe parse --help`)"),
    (["ingest"], "logpipe: error: Missing argument 'PATHS...' (see `logpipe ingest --help`)"),
    (["nosuchcommand"], "logpipe: error: No such command 'nosuchcommand' (see `logpipe --help`)"),
    (["report"], "logpipe: error: Missing argument '{inventory|anomalies}'. Choose from: inventory, anomalies"
                 " (see `logpipe report --help`)"),
    (["stream", "--flush-rows"], "logpipe: error: Option '--flush-rows' requires an argument (see `logpipe stream --help`)"),
    (["stream", "--window", "nan", "--debug"], "logpipe: error: Invalid value for '--window': 'nan' is not a finite"
                                               " number (see `logpipe stream --help`)"),
    (["replay", "x.log", "--max-sleep", "inf"], "logpipe: error: Invalid value for '--max-sleep': 'inf' is not a"
                                                " finite number (see `logpipe replay --help`)"),
    # (--help said x>=0, and 0 was refused later by the stream)
    (["stream", "--flush-seconds", "0"], "logpipe: error: Invalid value for '--flush-seconds': 0.0 is not in the"
                                         " range x>0 (see `logpipe stream --help`)"),
    (["stream", "-q", "--alerts-out", "-"], "logpipe: error: --quiet turns the alerts off, so --alerts-out would stay"
                                            " empty; give one of them"),
])
def test_a_bad_flag_or_argument_is_one_line(args, said, monkeypatch, capsys):
    """Click's usage errors (usage, a hint, a blank line, the error) are one line, as logpipe's own."""
    from logpipe import exits
    from logpipe.cli import cli

    monkeypatch.setattr(sys, "argv", ["logpipe", *args])
    assert exits.run(cli) == 2
    assert capsys.readouterr().err == said + "\n"


@pytest.mark.parametrize("given", ["sample_logs/waypoint-egress-1.23.log", b"a\nb", Path("x.log")])
def test_parse_lines_refuses_a_path_or_one_text(given):
    """A path handed to parse_lines was iterated as its characters: one noise reject per character."""
    from logpipe import parse_lines
    from logpipe.errors import UsageError

    with pytest.raises(UsageError, match="takes lines .*open\\(path, 'rb'\\)"):
        list(parse_lines(given))


def test_a_small_ingest_starts_without_pyarrow_compute(tmp_path):
    """`logpipe ingest` of a small file (`kubectl logs … > f; logpipe ingest f`, a nightly run of
    many pod logs) does without pyarrow.compute too (~20 ms of each of its processes' start): the
    batch's days and time bounds come from Arrow's functions by name (``arrowpl.compute``), and a
    lane's rows, of their schema already, are not cast (``parts._as_table``)."""
    code = ("import sys; from logpipe import cli\n"
            "try:\n    cli.main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "sys.stderr.write('--- %s\\n' % ('pyarrow.compute' in sys.modules))\n")
    got = subprocess.run([sys.executable, "-c", code, "ingest", str(SAMPLES / "waypoint-egress-1.23.log"),
                          "--data", str(tmp_path / "data")], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "LOGPIPE_WORKERS": "1"})
    assert got.returncode == 0, got.stderr
    assert "ingested 1" in got.stderr and got.stderr.rstrip().endswith("--- False"), got.stderr[-2000:]
