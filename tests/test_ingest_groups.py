"""logpipe ingest of several inputs in one run: one that fails (gone before it is read, a damaged
archive parsed by the lanes) costs no other input anything, and a Ctrl-C's summary says exactly
which inputs were left unread."""
from __future__ import annotations

import errno
import gzip
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import kept_pool, use_kept_pool
from test_ingest import check_consistent, gen_lines, manifest, rows, run, write_log

from logpipe import exits, ingest, sources


class _FailingDisk(io.RawIOBase):
    """File ``f``'s bytes, read 4 kB at a time, until its offset reaches ``at``: then every read
    fails with EIO, as a failing disk's does."""

    def __init__(self, f, at: int):
        self.f, self.at = f, at

    def readable(self):
        return True

    def readinto(self, b):
        if self.f.tell() >= self.at:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return self.f.readinto(memoryview(b)[:4096])

    def close(self):
        self.f.close()
        super().close()


@pytest.fixture(scope="module")
def pool2():
    """The two lanes (a worker process) of the runs with LOGPIPE_WORKERS=2 below, booted once for the
    module (conftest.kept_pool: ~0.5-1 s of CPU a boot, at each of 9 runs): what the worker process
    reads and what reaches this one is tested, not how a pool starts or stops (the Ctrl-C tests').
    While it lives, a command's end (exits.finish, as a process's exit) leaves multiprocessing's
    resource tracker running: it would wait for the tracker, which waits for the pool's worker."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(exits, "_stop_resource_tracker", lambda: None)
        pool = kept_pool(2)
        yield pool
        pool.stop()


@pytest.fixture
def lanes(request, monkeypatch) -> None:
    """With LOGPIPE_WORKERS=2 (the test's ``workers``), the runs' lanes are ``pool2``'s."""
    if request.getfixturevalue("workers") == "2":
        use_kept_pool(request.getfixturevalue("pool2"), monkeypatch)


def _logs(tmp_path, n: int):
    logs = tmp_path / "logs"
    lines = gen_lines(40 * n, seed=7)
    return logs, [write_log(logs / f"pod-{i:02}.log", lines[i * 40:(i + 1) * 40]) for i in range(n)]


def _odd_input(tmp_path, n: int, packed: bool):
    """``_logs`` and the one whose reading a test troubles (the second: gzipped when ``packed``), and
    the name it is moved to meanwhile."""
    logs, paths = _logs(tmp_path, n)
    odd = paths[1]
    if packed:
        odd = odd.with_name(odd.name + ".gz")
        odd.write_bytes(gzip.compress(paths[1].read_bytes()))
        paths[1].unlink()
        paths[1] = odd
    return logs, paths, odd, odd.with_name(odd.name + ".away")


@pytest.mark.parametrize("workers, n", [("1", 4), ("2", 4), ("2", 40)],
                         ids=["in-process", "lanes", "worker-tasks"])
def test_an_input_gone_before_it_is_read_fails_alone(tmp_path, monkeypatch, capsys, workers, n, lanes):
    """A file decided on and then gone before it is read (kubelet rotated a pod's log away meanwhile)
    is its own one-line error: the others of its commit group, and those after it, are ingested,
    whoever reads them (this process, its lanes, or worker tasks of several inputs: 32 or more);
    the next run reads it once it is back."""
    monkeypatch.setenv("LOGPIPE_WORKERS", workers)
    data = tmp_path / "data"
    logs, paths = _logs(tmp_path, n)
    gone = paths[1]
    launch = ingest._Run.launch

    def rotated_away(self):
        if any(p.inp.path == str(gone) for p in self.decided):
            gone.rename(gone.with_suffix(".away"))
        return launch(self)

    monkeypatch.setattr(ingest._Run, "launch", rotated_away)
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 1, err
    assert f"logpipe: error: {gone}: cannot read: No such file or directory\n" in err
    assert f"inputs {n}: ingested {n - 1}, skipped as already ingested 0, errors 1\n" in err
    assert err.splitlines()[-1] == "logpipe: error: 1 input(s) had errors (see above); everything else was ingested"
    m = check_consistent(data)
    assert sorted(e["path"] for e in m["inputs"]) == sorted(str(p) for p in paths if p != gone)
    monkeypatch.setattr(ingest._Run, "launch", launch)
    gone.with_suffix(".away").rename(gone)
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 0 and f"inputs {n}: ingested 1, skipped as already ingested {n - 1}\n" in err, err
    assert len(check_consistent(data)["inputs"]) == n


@pytest.mark.parametrize("workers, n, packed", [("1", 4, False), ("2", 40, False), ("2", 40, True)],
                         ids=["in-process", "worker-tasks", "worker-task-gz"])
def test_a_file_that_cannot_be_opened_when_read_is_no_damaged_archive_though_it_opens_after(
        tmp_path, monkeypatch, capsys, workers, n, packed, lanes):
    """Whoever reads an input (this process, or a worker process: a task of several inputs, or a
    compressed one's own), a file that cannot be opened when it is read fails alone as `cannot read`,
    by the error its reader met: here a directory in its place then (root opens any mode's file),
    the file back before the reader's error reaches ``finish``. (The parent opened the file again to
    tell: it opened, so it was committed as a damaged archive of 0 lines, skipped by later runs.)"""
    monkeypatch.setenv("LOGPIPE_WORKERS", workers)
    data = tmp_path / "data"
    logs, paths, odd, away = _odd_input(tmp_path, n, packed)

    def swap():
        odd.rename(away)
        odd.mkdir()

    def restore():
        odd.rmdir()
        away.rename(odd)

    launch, finish, open_ = ingest._Run.launch, ingest._Run.finish, sources._open

    def when_launched(self):  # a worker task reads it: a directory there from now on
        if self.pool is not None and any(p.inp.path == str(odd) for p in self.decided):
            swap()
        return launch(self)

    def when_finished(self, plan):  # its task ended (its reader failed): the file is back
        if plan.inp.path == str(odd) and plan.future is not None:
            plan.future.exception()
            restore()
        return finish(self, plan)

    def when_opened(inp):  # read here, after inspect() opened it: a directory for its open alone
        if inp.path != str(odd) or away.exists():
            return open_(inp)
        swap()
        try:
            return open_(inp)
        finally:
            restore()

    monkeypatch.setattr(ingest._Run, "launch", when_launched)
    monkeypatch.setattr(ingest._Run, "finish", when_finished)
    monkeypatch.setattr(sources, "_open", when_opened)
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 1, err
    assert f"logpipe: error: {odd}: cannot read: Is a directory\n" in err
    assert "damage" not in err and "corrupt" not in err
    assert f"inputs {n}: ingested {n - 1}, skipped as already ingested 0, errors 1\n" in err
    assert sorted(e["path"] for e in check_consistent(data)["inputs"]) == sorted(str(p) for p in paths if p != odd)
    for name, was in (("launch", launch), ("finish", finish)):
        monkeypatch.setattr(ingest._Run, name, was)
    monkeypatch.setattr(sources, "_open", open_)
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 0 and f"inputs {n}: ingested 1, skipped as already ingested {n - 1}\n" in err, err


@pytest.mark.parametrize("workers, n, packed", [("1", 4, False), ("1", 4, True), ("2", 4, False), ("2", 40, False),
                                                ("2", 40, True)],
                         ids=["in-process", "in-process-gz", "lanes", "worker-tasks", "worker-task-gz"])
def test_a_file_whose_read_fails_with_eio_is_no_damaged_archive_and_is_read_again(
        tmp_path, monkeypatch, capsys, workers, n, packed, lanes):
    """A read that fails (EIO: a failing disk, an NFS hiccup) is no damage of the file's content,
    whoever reads it (this process, or a worker process: a task of several inputs, a .gz's own task):
    the input alone fails as `cannot read`, none of it is recorded, and the next run reads it. The
    EIO is the kernel's: the file, after it was decided on, is a link to /proc/self/mem, whose read at
    offset 0 (no page mapped there) fails with EIO in whichever process reads it. (It stopped the
    whole run: `internal error: OSError: [Errno 5] Input/output error`, the other inputs not ingested.)"""
    monkeypatch.setenv("LOGPIPE_WORKERS", workers)
    data = tmp_path / "data"
    logs, paths, odd, away = _odd_input(tmp_path, n, packed)
    launch = ingest._Run.launch

    def failing_disk(self):  # decided on (its head read, hashed): its reads fail from now on
        if any(p.inp.path == str(odd) for p in self.decided):
            odd.rename(away)
            odd.symlink_to("/proc/self/mem")
        return launch(self)

    monkeypatch.setattr(ingest._Run, "launch", failing_disk)
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 1, err
    assert f"logpipe: error: {odd}: cannot read: Input/output error\n" in err
    assert "damage" not in err and "corrupt" not in err
    assert f"inputs {n}: ingested {n - 1}, skipped as already ingested 0, errors 1\n" in err
    assert err.splitlines()[-1] == "logpipe: error: 1 input(s) had errors (see above); everything else was ingested"
    assert sorted(e["path"] for e in check_consistent(data)["inputs"]) == sorted(str(p) for p in paths if p != odd)
    monkeypatch.setattr(ingest._Run, "launch", launch)
    odd.unlink()
    away.rename(odd)
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 0 and f"inputs {n}: ingested 1, skipped as already ingested {n - 1}\n" in err, err
    assert sum(e["read"] for e in check_consistent(data)["inputs"]) == 40 * n


def test_an_archive_whose_read_fails_midway_keeps_nothing_and_is_read_again(tmp_path, monkeypatch, capsys):
    """A .gz whose read fails with EIO half-way (after lines of it were parsed and staged) keeps none
    of them and is not recorded: the next run reads it whole. (Its lines before the EIO were kept as a
    damaged archive's, and later runs skipped it: its other half never ingested.)"""
    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    logs = tmp_path / "logs"
    logs.mkdir()
    text = "".join(ln + "\n" for ln in gen_lines(3000, seed=9)).encode()
    packed = gzip.compress(text)
    gz = logs / "a.log.gz"
    gz.write_bytes(packed)
    open_ = sources._open

    def failing(inp):
        f = open_(inp)
        return _FailingDisk(f, len(packed) // 2) if inp.path == str(gz) else f

    monkeypatch.setattr(sources, "_open", failing)
    data = tmp_path / "data"
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data, "--flush-rows", "500")
    assert code == 1, err
    assert f"logpipe: error: {gz}: cannot read: Input/output error\n" in err and "corrupt" not in err
    assert "inputs 1: ingested 0, skipped as already ingested 0, errors 1\n" in err
    assert not data.exists()  # (nothing ingested: the dataset it made is not left)
    monkeypatch.setattr(sources, "_open", open_)
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 0 and "inputs 1: ingested 1, skipped as already ingested 0\n" in err, err
    assert [e["read"] for e in check_consistent(data)["inputs"]] == [3000]


def test_a_tar_whose_read_fails_midway_is_no_damaged_archive(tmp_path, monkeypatch, capsys):
    """A tar archive whose read fails with EIO half-way through its bytes: `cannot read`, none of its
    files ingested, and the next run reads them all. (It was `tar archive is corrupt or truncated`,
    its files before the EIO ingested, the one it cut up to there.)"""
    import tarfile

    from logpipe import unpack

    logs = tmp_path / "logs"
    logs.mkdir()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for k in range(2):
            body = "".join(ln + "\n" for ln in gen_lines(500, seed=k)).encode()
            info = tarfile.TarInfo(f"pod-{k}.log")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    packed = out.getvalue()
    bundle = logs / "bundle.tar"
    bundle.write_bytes(packed)
    real = unpack.unpack

    def failing(raw):
        if getattr(raw, "name", None) == str(bundle):
            raw = io.BufferedReader(_FailingDisk(raw, len(packed) // 2))
        return real(raw)

    monkeypatch.setattr(unpack, "unpack", failing)
    data = tmp_path / "data"
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 1, err
    assert f"logpipe: error: {bundle}: cannot read: Input/output error\n" in err and "corrupt" not in err
    assert rows(data) == 0
    monkeypatch.setattr(unpack, "unpack", real)
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 0 and "inputs 2: ingested 2, skipped as already ingested 0\n" in err, err
    assert sum(e["read"] for e in check_consistent(data)["inputs"]) == 1000


def test_a_damaged_archive_parsed_by_the_lanes_keeps_its_lines_before_the_damage(tmp_path, monkeypatch, capsys, pool2):
    """The lanes parse chunks ahead of the one being read: when reading one fails (a truncated gzip),
    those before it are still the input's lines before the damage, as when this process alone parses
    it (they were dropped: `the complete lines before that point were kept (0 lines read)`)."""
    logs = tmp_path / "logs"
    text = "".join(ln + "\n" for ln in gen_lines(3000, seed=9)).encode()
    packed = gzip.compress(text)
    logs.mkdir()
    (logs / "a-cut.log.gz").write_bytes(packed[:len(packed) // 2])
    write_log(logs / "b-good.log", gen_lines(50, seed=11))
    got = {}
    use_kept_pool(pool2, monkeypatch)
    for workers in ("1", "2"):  # (2: small inputs each parsed in the lanes, parse_input's pool)
        monkeypatch.setenv("LOGPIPE_WORKERS", workers)
        data = tmp_path / f"data-{workers}"
        code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
        assert code == 1 and "inputs 2: ingested 2 (1 only up to the damage), skipped as already ingested 0" in err
        entry = next(e for e in check_consistent(data)["inputs"] if e["path"].endswith("a-cut.log.gz"))
        assert f"the complete lines before that point were kept ({entry['read']} lines read)" in err
        got[workers] = entry["read"], rows(data, "source like '%a-cut%'")
    assert got["2"] == got["1"] and 0 < got["1"][0] < 3000


@pytest.mark.parametrize("workers, n", [("1", 2), ("2", 40)], ids=["in-process", "worker-task"])
def test_a_damaged_archive_deleted_after_its_damage_was_met_keeps_its_lines(tmp_path, monkeypatch, capsys, workers, n, lanes):
    """A damaged archive is one by what its reader met, whatever became of the file since (rotated
    away before its error reached ``finish``): its lines before the damage are kept. (The parent
    opened the file again to tell: gone, it said `cannot read: No such file or directory`, nothing kept.)"""
    monkeypatch.setenv("LOGPIPE_WORKERS", workers)
    logs, _ = _logs(tmp_path, n - 1)
    text = "".join(ln + "\n" for ln in gen_lines(3000, seed=9)).encode()
    packed = gzip.compress(text)
    cut = logs / "a-cut.log.gz"
    cut.write_bytes(packed[:len(packed) // 2])
    finish, parse_input = ingest._Run.finish, ingest.parse_input

    def deleted_when_met(inp, *args, **kwargs):  # read here: deleted as its error leaves the reader
        try:
            yield from parse_input(inp, *args, **kwargs)
        except Exception:
            if inp.path == str(cut):
                cut.unlink()
            raise

    def deleted_after_its_task(self, plan):  # read by a worker task: deleted once it ended
        if plan.inp.path == str(cut) and plan.future is not None:
            plan.future.exception()
            cut.unlink()
        return finish(self, plan)

    monkeypatch.setattr(ingest, "parse_input", deleted_when_met)
    monkeypatch.setattr(ingest._Run, "finish", deleted_after_its_task)
    data = tmp_path / "data"
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 1 and not cut.exists(), err
    assert f"inputs {n}: ingested {n} (1 only up to the damage), skipped as already ingested 0, errors 1\n" in err
    entry = next(e for e in check_consistent(data)["inputs"] if e["path"] == str(cut))
    assert f"{cut}: archive is corrupt or truncated" in err and "cannot read" not in err
    assert 0 < entry["read"] < 3000 and f"were kept ({entry['read']} lines read)" in err


def test_ctrl_c_says_every_input_left_unread(tmp_path, monkeypatch, capsys):
    """A Ctrl-C's `N more input(s) not ingested` counts every input not ingested besides the one it
    stopped: those of its commit group and those not reached yet, as the summary's `not read` does
    (it counted only those in flight after the group: 1 of 2); the next run reads them. Its last
    line, `logpipe: interrupted`, follows the summary."""
    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    monkeypatch.setattr(ingest, "LAUNCH_INPUTS", 1)  # groups of two: a and b commit, then c, d; e is not reached
    monkeypatch.setattr(ingest, "AHEAD_INPUTS", 2)
    data = tmp_path / "data"
    logs, paths = _logs(tmp_path, 5)
    parse_input = ingest.parse_input

    def ctrl_c_in_c(inp, *args, **kwargs):
        if inp.path == str(paths[2]):
            raise KeyboardInterrupt
        yield from parse_input(inp, *args, **kwargs)

    monkeypatch.setattr(ingest, "parse_input", ctrl_c_in_c)
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 130, err
    assert f"logpipe: {paths[2]}: stopped before its end, not ingested (the next run does it)\n" \
           "logpipe: 2 more input(s) not ingested (the next run does them)\n" in err
    assert "inputs 5: ingested 2, skipped as already ingested 0, not read 3\n" in err
    # `logpipe: interrupted` right after the summary (click's main wrote a blank line before it for
    # any KeyboardInterrupt, to end a terminal's `^C` echo, on a terminal or not: here the summary has
    # ended that line, and on a terminal the progress bar's clean-up erases the `^C`)
    last = err.splitlines()[-2:]
    assert last[0].endswith(" MB/s") and last[1] == "logpipe: interrupted" and "\n\n" not in err, err
    assert sorted(e["path"] for e in check_consistent(data)["inputs"]) == [str(p) for p in paths[:2]]
    monkeypatch.setattr(ingest, "parse_input", parse_input)
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 0 and "inputs 5: ingested 3, skipped as already ingested 2\n" in err, err


def test_ctrl_c_while_inputs_commit_is_raised_once_they_are_counted(tmp_path, monkeypatch, capsys):
    """A Ctrl-C during a group's commit waits for it: the inputs committed are counted as ingested
    (they were committed, and the summary said `ingested 0, … not read 3`)."""
    from logpipe.dataset import Dataset

    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    data = tmp_path / "data"
    logs, paths = _logs(tmp_path, 3)
    commit = Dataset.commit_entries

    def ctrl_c_meanwhile(self, items):
        done = commit(self, items)
        os.kill(os.getpid(), signal.SIGINT)
        return done

    monkeypatch.setattr(Dataset, "commit_entries", ctrl_c_meanwhile)
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 130 and "logpipe: interrupted" in err, err
    assert "inputs 3: ingested 3, skipped as already ingested 0\n" in err and "more input(s)" not in err
    assert len(manifest(data)["inputs"]) == 3


# `logpipe ingest` with a worker process stuck in a task as the pool shuts down, the inputs all done:
# it says so in the file MARKER once it is stuck (a spawned script of its own: no multiprocessing in
# the pytest process, which may be an xdist worker).
_STUCK_AT_SHUTDOWN = """
import os, sys, time

def stuck(marker):
    open(marker, "w").close()
    time.sleep(3600)

if __name__ == "__main__":
    from logpipe import cli, lanes

    shutdown = lanes._Lanes.shutdown

    def stuck_then_shutdown(self, *args, **kwargs):
        if self.procs is not None and not getattr(lanes, "stuck", False):
            lanes.stuck = True
            task = self.procs.submit(stuck, os.environ["MARKER"])
            # Handed to the worker process before the shutdown: until the executor's thread queues it
            # for one (running), the shutdown's cancel_futures (WorkerPool.close's) cancels it, and the
            # run ended with no worker stuck (3 runs in 20).
            deadline = time.monotonic() + 60
            while not task.running() and time.monotonic() < deadline:
                time.sleep(0.001)
        return shutdown(self, *args, **kwargs)

    lanes._Lanes.shutdown = stuck_then_shutdown
    sys.argv = ["logpipe", *sys.argv[1:]]
    cli.main()
"""


def test_ctrl_c_while_the_workers_end_prints_the_summary_and_waits_for_no_stuck_worker(tmp_path):
    """A Ctrl-C after every input is committed, while the pool shuts down (a worker slow to end under
    load; here stuck), prints the summary of what was committed and exits 130 at once: the worker
    processes are killed, and none outlives the run. (It raised out of the pool's shutdown before the
    summary, then waited for the stuck worker forever: in the CLI's own close and at exit.)"""
    logs, _ = _logs(tmp_path, 40)  # (worker tasks: the run's own pool)
    script, marker = tmp_path / "stuck.py", tmp_path / "stuck"
    script.write_text(_STUCK_AT_SHUTDOWN)
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, LOGPIPE_WORKERS="2", MARKER=str(marker), PYTHONPATH=str(root))
    proc = subprocess.Popen([sys.executable, str(script), "ingest", str(logs), "--data", str(tmp_path / "data")],
                            env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), proc.communicate(timeout=60)[1]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "inputs 40: ingested 40, skipped as already ingested 0\n" in err
    assert err.rstrip().endswith("logpipe: interrupted") and "Traceback" not in err, err
    assert len(check_consistent(tmp_path / "data")["inputs"]) == 40
    for _ in range(100):  # every process of its group (the workers, the resource tracker) gone
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("a process of the run outlived it")


def test_ctrl_c_while_the_summary_prints_is_raised_after_it(tmp_path, monkeypatch, capsys):
    """A Ctrl-C that comes as the summary starts to print waits for it: the whole summary, then exit 130
    (it was cut off where it came: no summary at all)."""
    from logpipe import progress

    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    logs, _ = _logs(tmp_path, 3)
    said = progress.print_summary

    def ctrl_c_first(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return said(*args, **kwargs)

    monkeypatch.setattr(ingest, "print_summary", ctrl_c_first)
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", tmp_path / "data")
    assert code == 130 and "inputs 3: ingested 3, skipped as already ingested 0\n" in err, err
    assert err.rstrip().endswith("logpipe: interrupted")
