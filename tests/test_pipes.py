"""Inputs that are pipes, not files: bash's ``<(kubectl logs …)``, a named pipe, /dev/stdin. Each is
read once, front to back, as stdin is (``sources.Input.pipe``): the same records as the file, in
every command; the probe's look at its first lines does not close it; a tar through one, or a
socket, is a one-line error."""
from __future__ import annotations

import contextlib
import gzip
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
from conftest import SAMPLES, run_logpipe

LOGPIPE = f"{shlex.quote(sys.executable)} -m logpipe"
# For a run whose workers are not what is tested (an error, an empty input): a pipe has no size, so
# the command would start a worker process for it (~0.5 s of CPU, spawned in this process).
ONE_LANE = {"LOGPIPE_WORKERS": "1"}


def sh(command: str, stdin: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """``command`` run by bash (for its ``<(…)``), logpipe as ``logpipe``, ``env`` added to the environment."""
    return subprocess.run(["bash", "-c", command.replace("logpipe ", LOGPIPE + " ")], input=stdin,
                          capture_output=True, timeout=120, env={**os.environ, **(env or {})})


def rows(out: bytes) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if k != "source"} for x in out.splitlines()]


def summary(err: bytes) -> str:
    return err.decode().strip().splitlines()[-1]


def here(*args: str) -> subprocess.CompletedProcess:
    """``logpipe ARGS`` in this process, one lane (conftest.run_logpipe): what the command makes of a
    file, which a pipe's run is compared with."""
    done = run_logpipe(*args, env={"LOGPIPE_WORKERS": "1"}, text=False)
    return subprocess.CompletedProcess(args, done.returncode, done.stdout, done.stderr)


def here_streams(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``logpipe ARGS`` in this process (conftest.run_logpipe), of a pipe, a named pipe or a character
    device: the run gets its own tables of the pipes it keeps open (``sources._PIPES``, by path: /dev/fd/N
    is another pipe in another test), and they are closed after it, as a process's exit would close them."""
    done = run_logpipe(*args, env=env, text=False)
    return subprocess.CompletedProcess(args, done.returncode, done.stdout, done.stderr)


def through_pipe(data: bytes, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, str]:
    """``here_streams(ARGS)``, each ``{}`` in them the path of a pipe (/dev/fd/N, as bash's ``<(…)``
    names one) that a thread writes ``data`` into, then closes: what a command makes of a pipe it is
    given, without bash's and a process's start (~0.5 s of CPU; as much as a worker process spawned
    here, so for one lane: ONE_LANE). Returns the run and the pipe's path."""
    r, w = os.pipe()

    def write() -> None:
        with contextlib.suppress(BrokenPipeError), open(w, "wb") as f:  # (a command that stops reading)
            f.write(data)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    path = f"/dev/fd/{r}"
    try:
        done = here_streams(*(path if a == "{}" else a for a in args), env=env)
    finally:
        os.close(r)
        writer.join(60)
    return done, path


@pytest.fixture(scope="module")
def big_log(tmp_path_factory) -> Path:
    """Samples of every kind, repeated past a pipe's buffer (64 KiB) and the probe's head (32 KiB):
    ~390 kB (each line's parsing costs, in each of the runs that read it)."""
    body = b"".join(p.read_bytes() for p in sorted(SAMPLES.glob("*.log")))
    path = tmp_path_factory.mktemp("pipes") / "mixed.log"
    path.write_bytes(body * 2)
    return path


@pytest.fixture(scope="module")
def big_log_parsed(big_log) -> subprocess.CompletedProcess:
    return here("parse", big_log, "-o", "ndjson")


@pytest.mark.parametrize("feed", ["cat", "gzip -c"])
def test_process_substitution_reads_as_the_file(big_log, big_log_parsed, feed):
    """(One lane: the pipe is read the same way by the lanes, whose chunks test_tailheads and the
    ingest of a pipe below give to the workers.)"""
    log, file = big_log, big_log_parsed
    pipe = sh(f"logpipe parse <({feed} {log}) -o ndjson", env=ONE_LANE)
    assert pipe.returncode == file.returncode == 0, pipe.stderr
    assert rows(pipe.stdout) == rows(file.stdout) and len(rows(file.stdout)) > 700
    assert summary(pipe.stderr) == summary(file.stderr)
    assert {json.loads(x)["source"] for x in pipe.stdout.splitlines()[:1]} == {"/dev/fd/63"}


@pytest.mark.parametrize("end", ["\n", ""], ids=["newline", "no-newline"])
@pytest.mark.parametrize("command", ["parse", "ingest"])
def test_a_small_pipe_boots_no_worker_process(tmp_path, command, end):
    """A pipe has no size: its workers would boot for 10 lines (~0.2 CPU-s). They start only when
    a second chunk of it is there; its one chunk (a last line without a newline in it too) is parsed
    in this process, into the same records as the file's."""
    from logpipe import lanes

    lines = (SAMPLES / "waypoint-egress-1.23.log").read_bytes().splitlines(keepends=True)[:10]
    data = b"".join(lines).rstrip(b"\n") + end.encode()
    log = tmp_path / "small.log"
    log.write_bytes(data)
    args = lambda src, data: ["parse", src, "-o", "ndjson"] if command == "parse" else ["ingest", src, "--data", data]  # noqa: E731
    before = lanes.started_processes
    done, _ = through_pipe(data, *args("{}", tmp_path / "d"), env={"LOGPIPE_WORKERS": "2"})
    assert done.returncode == 0, done.stderr
    assert lanes.started_processes == before
    file = here(*args(log, tmp_path / "f"))
    if command == "parse":
        assert rows(done.stdout) == rows(file.stdout) and len(rows(file.stdout)) == 10
    lines_read = lambda err: [x for x in err.decode().splitlines() if x.startswith(("read ", "lines read"))]  # noqa: E731
    assert lines_read(done.stderr) == lines_read(file.stderr) and lines_read(file.stderr)


@pytest.mark.parametrize("known", ["read ahead", "second chunk"])
def test_a_big_pipe_is_parsed_by_the_workers(big_log, big_log_parsed, monkeypatch, known):
    """A pipe of several chunks (of 64 kB here) starts the workers: at once when it holds more than a
    chunk within lanes.PIPE_WAIT (read ahead, before the command imports polars), else when its
    second chunk is there. The records are the file's, in order."""
    from logpipe import lanes, pipeline

    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 64 << 10)
    monkeypatch.setattr(lanes, "CHUNK_BYTES", 64 << 10)
    if known == "second chunk":
        monkeypatch.setattr(lanes, "PIPE_WAIT", 0)  # (not known at the start: a slow writer's)
    before = lanes.started_processes
    done, _ = through_pipe(big_log.read_bytes(), "parse", "{}", "-o", "ndjson", env={"LOGPIPE_WORKERS": "2"})
    assert done.returncode == 0, done.stderr
    assert lanes.started_processes == before + 1
    assert rows(done.stdout) == rows(big_log_parsed.stdout) and len(rows(done.stdout)) > 700
    assert summary(done.stderr) == summary(big_log_parsed.stderr)


def test_ingest_of_a_pipe_is_probed_without_closing_it(tmp_path, big_log):
    """ingest probes a stream's first lines (sources.read_head) and reads them again: a pipe stays
    open meanwhile, so the program writing it is not cut off and every line is counted."""
    log = big_log
    assert log.stat().st_size > 256 << 10
    a = sh(f"logpipe ingest <(cat {log}) --data {tmp_path / 'a'} --max-reject-ratio 0.5")
    b = here("ingest", log, "--data", tmp_path / "b", "--max-reject-ratio", "0.5")
    assert a.returncode == b.returncode == 0, a.stderr
    lines = lambda err: [x for x in err.decode().splitlines() if x.startswith("lines read")]  # noqa: E731
    assert lines(a.stderr) == lines(b.stderr) and lines(a.stderr)
    (entry,) = json.loads((tmp_path / "a" / "_manifest.json").read_text())["inputs"]
    assert entry["path"] == "/dev/fd/63" and entry["size"] is None and entry["bytes_read"] == log.stat().st_size


def test_named_pipe_and_dev_stdin(tmp_path):
    """A named pipe read in this process (here_streams, one lane); /dev/stdin by a process of its own."""
    log = SAMPLES / "tcp-and-ipv6.log"
    fifo = tmp_path / "live"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(log.read_bytes()), daemon=True)
    writer.start()
    named = here_streams("parse", fifo, "-o", "ndjson", env=ONE_LANE)
    writer.join(timeout=60)
    file = here("parse", log, "-o", "ndjson")
    assert named.returncode == 0 and rows(named.stdout) == rows(file.stdout), named.stderr
    dev = sh("logpipe detect /dev/stdin", stdin=log.read_bytes(), env=ONE_LANE)  # (else a pipe's detect boots a worker)
    assert dev.returncode == 0 and dev.stdout.decode().startswith("/dev/stdin\t"), dev.stderr


def test_dev_null_is_an_empty_input():
    done = here_streams("parse", "/dev/null", env=ONE_LANE)
    assert done.returncode == 0 and summary(done.stderr) == "read 0, parsed 0, rejected 0 (noise 0, malformed 0)"


def test_a_tar_through_a_pipe_and_a_socket_are_one_line_errors(tmp_path):
    tar = tmp_path / "logs.tar"
    with tarfile.open(tar, "w") as t:
        t.add(SAMPLES / "istio-1.5.log", arcname="istio-1.5.log")
    piped, path = through_pipe(tar.read_bytes(), "parse", "{}", env=ONE_LANE)
    assert piped.returncode == 1
    assert piped.stderr.decode().splitlines()[0] == (
        f"logpipe: error: {path}: a tar archive: give its path instead (logpipe reads an archive's files"
        " from the archive file, not from a pipe)")
    gz, _ = through_pipe(gzip.compress(tar.read_bytes()), "parse", "{}", env=ONE_LANE)
    assert gz.returncode == 1 and b"a tar archive: give its path" in gz.stderr
    where = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(where))
        sock = here_streams("parse", where, env=ONE_LANE)
    assert sock.returncode == 1 and sock.stderr.decode().splitlines() == [
        f"logpipe: error: {where}: not a regular file, a directory or a pipe (a socket or a block device)"]


def test_a_pipe_with_rejects_hints_at_what_wrote_it(tmp_path):
    """A pipe's lines cannot be read again by the hint's ``logpipe parse PATH``: it names the stream."""
    done, path = through_pipe((SAMPLES / "malformed.log").read_bytes(), "ingest", "{}", "--data", tmp_path / "d",
                              env=ONE_LANE)
    assert done.returncode == 1
    err = done.stderr.decode()
    assert path in err and f"logpipe parse {path}" not in err, err


@pytest.mark.parametrize("command", [["parse", "-o", "ndjson"], ["ingest", "-", "--no-progress"]], ids=["parse", "ingest"])
def test_lines_typed_or_pasted_on_a_terminal_end_at_one_ctrl_d(tmp_path, command):
    """stdin a terminal: Ctrl-D there is one read of nothing, and the next read waits for more. The
    readers peek and read on, so `logpipe parse` took ten Ctrl-D and `ingest -` never ended; the
    first end is the end now, and a note says what the command waits for."""
    import pty

    if command[0] == "ingest":
        command = [*command, "--data", str(tmp_path / "d")]
    lines = (SAMPLES / "waypoint-egress-1.23.log").read_bytes().splitlines(keepends=True)[:3]
    main, tty = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "logpipe", *command], stdin=tty, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, env={**os.environ, **ONE_LANE})
    os.close(tty)  # (one lane: stdin is read the same way for the workers, whose boot is not what is tested)
    try:
        os.write(main, b"".join(lines) + b"\x04")  # pasted, then Ctrl-D once
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # (its worker processes too: they hold its stdout open)
        proc.communicate()
        pytest.fail("still reading the terminal after Ctrl-D")
    finally:
        os.close(main)
    assert proc.returncode == 0, err
    err = err.decode()
    assert err.startswith("logpipe: reading access-log lines from the terminal (Ctrl-D ends them)"), err
    assert "parsed 3, rejected 0" in err
    if command[0] == "parse":
        assert [json.loads(x)["line_number"] for x in out.splitlines()] == [1, 2, 3]


@pytest.mark.parametrize("given", ["terminal", "named pipe"])
def test_ctrl_c_stops_a_command_waiting_for_its_input(tmp_path, given):
    """Ctrl-C (SIGINT to the terminal's process group) while `logpipe parse` waits for lines typed on
    the terminal, or for a named pipe whose writer is quiet: the summary and exit 130, as anywhere
    else (it went on waiting: a thread of polars' may take the signal, and the read was not
    interrupted)."""
    import pty

    if given == "terminal":
        main, stdin = pty.openpty()
        args = []
    else:
        stdin, fifo = subprocess.DEVNULL, tmp_path / "fifo"
        os.mkfifo(fifo)
        args = [str(fifo)]
    proc = subprocess.Popen([sys.executable, "-m", "logpipe", "parse", "-o", "ndjson", *args], stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    guard = threading.Timer(90, os.killpg, (proc.pid, signal.SIGKILL))  # (a hang fails, not waits)
    guard.start()
    try:
        if given == "terminal":
            os.close(stdin)
            note = proc.stderr.readline().decode()
            assert note.startswith("logpipe: reading access-log lines from the terminal"), note
        else:
            main = os.open(fifo, os.O_WRONLY)  # (returns once logpipe opened the pipe to read it)
        time.sleep(1)  # (the command waits for its input by now)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        guard.cancel()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        os.close(main)
    assert proc.returncode == 130, err
    assert err.decode().splitlines()[-1] == "logpipe: interrupted"
