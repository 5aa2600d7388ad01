"""Parsing with worker processes gives the same rows, rejects and counts as parsing in-process:
ingest (workers write their own Parquet parts from byte ranges of a plain file, or from chunks of a
compressed one) and parse (workers hand batches back)."""
from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import kept_pool, use_kept_pool
from logpipe import ingest, pipeline
from logpipe import lanes as lanes_mod
from logpipe import workers as workers_mod
from logpipe.sources import Input

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_logs"


@pytest.fixture(scope="module")
def mixed_log(tmp_path_factory) -> Path:
    """Every sample (all layouts, JSON, ztunnel, prefixes, noise, malformed lines), twice: ~395 kB,
    1,178 lines (several of the tests' tasks of 32-96 kB; each line's parsing costs, so not more)."""
    text = "".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted(SAMPLES.glob("*.log")))
    path = tmp_path_factory.mktemp("parallel") / "mixed.log"
    path.write_text(text * 2, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pool2():
    """A pool of two lanes booted once for the module (conftest.kept_pool)."""
    pool = kept_pool(2)
    yield pool
    pool.stop()


@pytest.fixture
def own_pool2(pool2, monkeypatch):
    """The pool of two lanes that parse_input starts for an input it is given no pool for, and the one
    an ingest gives it for its small inputs with LOGPIPE_WORKERS=2 (``ingest._spare_pool``: its own
    pool is for inputs it starts workers for), is ``pool2``."""
    use_kept_pool(pool2, monkeypatch)


def _read(files: list[Path]) -> list[dict]:
    if not files:
        return []
    table = pa.concat_tables([pq.ParquetFile(f).read() for f in files], promote_options="permissive")  # (lighter than read_table)
    return table.sort_by("line_number").to_pylist()


def _ingest(log: Path, data: Path, workers: str, monkeypatch) -> tuple:
    monkeypatch.setenv("LOGPIPE_WORKERS", workers)
    summary = ingest.ingest_paths([str(log)], str(data), err=io.StringIO(), progress=False, max_reject_ratio=1)
    rows = _read(sorted(data.glob("date=*/*.parquet")))
    rejects = _read(sorted(data.glob("_rejects/*.parquet")))
    return summary, rows, rejects


def test_parallel_parse_to_parquet_equals_in_process(mixed_log, tmp_path, monkeypatch, own_pool2):
    """`logpipe parse -o parquet` of a file of many tasks: the worker process's rows (handed back as
    Arrow IPC streams, ``workers._Shipped``) give the same file as one process: rows in order, the
    schema and its metadata; the columns encoded as ingest's parts are (``parts.parquet_options``)."""
    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 64 << 10)
    shipped = []
    real = workers_mod._unship
    monkeypatch.setattr(workers_mod, "_unship", lambda stream: shipped.append(1) or real(stream))

    def parse(workers: str) -> Path:
        monkeypatch.setenv("LOGPIPE_WORKERS", workers)
        out = tmp_path / f"{workers}.parquet"
        pipeline.parse_to_output([str(mixed_log)], fmt="parquet", out_path=str(out), rejects_path=None,
                                 on_error="warn", max_warnings=0)
        return out

    one, two = pq.read_table(parse("1")), pq.read_table(parse("2"))
    assert shipped  # (the worker process's tasks came back so)
    assert two.schema.equals(one.schema, check_metadata=True)
    assert two.num_rows == one.num_rows > 750 and two.equals(one)
    column = pq.ParquetFile(tmp_path / "2.parquet").metadata.row_group(0).column(one.schema.get_field_index("start_time"))
    assert "DELTA_BINARY_PACKED" in column.encodings


def test_shipped_rows_cross_as_they_were():
    """A worker's rows pickled as an IPC stream unpickle as the same batch, schema metadata and all."""
    import pickle

    from logpipe.parse import default_parser

    rows = default_parser().parse_chunk((SAMPLES / "istio-1.12.log").read_bytes(), "x").records
    back = pickle.loads(pickle.dumps(workers_mod._Shipped(rows)))
    assert isinstance(back, pa.RecordBatch) and back.num_rows > 0
    assert back.equals(rows) and back.schema.equals(rows.schema, check_metadata=True)


_CHILD = """
import multiprocessing, sys

def rows_type():
    from logpipe import lanes, workers
    from logpipe.parse import default_parser

    lanes._LANE.parser = default_parser()  # (its own lane, as a command's in-process parse has)
    with open(sys.argv[1], "rb") as f:
        return type(workers._parse_chunk(f.read(), "x", 1).records).__name__

if __name__ == "__main__":
    with multiprocessing.get_context("spawn").Pool(1) as child:
        print(child.apply(rows_type))
"""


def test_only_a_pools_worker_ships_its_rows(tmp_path):
    """logpipe run by a program inside a child process of its own (multiprocessing, not logpipe's pool)
    parses in its own lane, whose rows are a RecordBatch, not the IPC wrapper a pool's worker pickles.
    (A script of its own, spawned: a fork of a test process with threads can hang.)"""
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = {**os.environ, "PYTHONPATH": str(Path(workers_mod.__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, str(script), str(SAMPLES / "istio-1.12.log")], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "RecordBatch"


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_parallel_ingest_equals_in_process(mixed_log, tmp_path, monkeypatch, compressed, own_pool2):
    log = mixed_log
    if compressed:
        log = tmp_path / "mixed.log.gz"
        log.write_bytes(gzip.compress(mixed_log.read_bytes()))
    monkeypatch.setattr(workers_mod, "STAGE_TASK_BYTES", 96 << 10)  # many small tasks
    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 96 << 10)
    monkeypatch.setattr(workers_mod, "CHUNK_BYTES", 96 << 10)  # a worker's pieces of its task
    one, rows1, rejects1 = _ingest(log, tmp_path / "one", "1", monkeypatch)
    two, rows2, rejects2 = _ingest(log, tmp_path / "two", "2", monkeypatch)
    assert two.counts.read == one.counts.read > 1_000
    assert (two.counts.parsed, two.counts.noise, two.counts.malformed, two.counts.blank) == \
        (one.counts.parsed, one.counts.noise, one.counts.malformed, one.counts.blank)
    assert (two.min_time, two.max_time, two.undated) == (one.min_time, one.max_time, one.undated)
    assert len(rows2) == len(rows1) == one.counts.parsed
    assert rows2 == rows1
    assert rejects2 == rejects1 and len(rejects1) == one.counts.noise + one.counts.malformed
    assert two.files > 2  # the workers wrote parts of their own
    # its rejects, of many tasks, in one file of its own: the workers hand them to the parent, which
    # writes an input's together (a file a task was merged at the run's end: merged-….parquet)
    files = sorted((tmp_path / "two").glob("_rejects/*.parquet"))
    assert len(files) == 1 and not files[0].name.startswith("merged-"), files


def test_an_inputs_rejects_are_written_a_flush_at_a_time(mixed_log, tmp_path, monkeypatch, own_pool2):
    """The workers' rejects the parent holds are written when they reach --flush-rows (bounded
    memory for a file of many rejects), in line order, every reject once."""
    monkeypatch.setattr(workers_mod, "STAGE_TASK_BYTES", 96 << 10)
    monkeypatch.setenv("LOGPIPE_WORKERS", "2")
    summary = ingest.ingest_paths([str(mixed_log)], str(tmp_path / "d"), err=io.StringIO(), progress=False,
                                  max_reject_ratio=1, flush_rows=40)
    files = sorted((tmp_path / "d").glob("_rejects/*.parquet"))
    tables = [pq.read_table(f) for f in files]
    assert 1 < len(files) < summary.counts.noise + summary.counts.malformed
    assert all(t["line_number"].to_pylist() == sorted(t["line_number"].to_pylist()) for t in tables)
    got = sorted(n for t in tables for n in t["line_number"].to_pylist())
    assert len(got) == len(set(got)) == summary.counts.noise + summary.counts.malformed


def test_parallel_parse_equals_in_process(mixed_log, monkeypatch, own_pool2):
    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 64 << 10)

    def batches(workers: int):
        records, rejects = [], []
        for batch, _end in pipeline.parse_input(Input(str(mixed_log)), workers=workers):
            records.append(batch.records)
            rejects.append(batch.rejects)
        return (pa.Table.from_batches(records).to_pylist(), pa.Table.from_batches(rejects).to_pylist())

    serial, parallel = batches(1), batches(2)
    assert parallel[0] == serial[0] and len(serial[0]) > 750
    assert parallel[1] == serial[1]


def test_the_lanes_files_are_fsynced_by_the_parent_before_their_commit(mixed_log, tmp_path, monkeypatch, own_pool2):
    """A lane does not fsync the part files it writes (an fsync held it ~3-10 ms a 16 MB task, 0.1 s at
    times): the main process does, on a thread of its own while the lanes go on, every one of them
    before the manifest commits them (crash safety: a committed file's data is on disk)."""
    from logpipe import parts
    from logpipe.dataset import Dataset

    monkeypatch.setattr(workers_mod, "STAGE_TASK_BYTES", 96 << 10)
    monkeypatch.setenv("LOGPIPE_WORKERS", "2")
    log = tmp_path / "fsyncs.txt"
    real = parts.fsync_file

    def logged(path):
        real(path)
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {path}\n")

    monkeypatch.setattr(parts, "fsync_file", logged)
    synced_at_commit = []
    real_commit = Dataset.commit_entries

    def commit(self, items):
        said = log.read_text(encoding="utf-8").split() if log.exists() else []
        synced_at_commit.extend(str(hidden) in said for _, pairs, _ in items for hidden, _ in pairs)
        return real_commit(self, items)

    monkeypatch.setattr(Dataset, "commit_entries", commit)
    summary = ingest.ingest_paths([str(mixed_log)], str(tmp_path / "d"), err=io.StringIO(), progress=False,
                                  max_reject_ratio=1)
    assert summary.files > 2 and len(synced_at_commit) >= summary.files
    assert all(synced_at_commit)
    pids = {line.split()[0] for line in log.read_text(encoding="utf-8").splitlines()}
    assert pids == {str(os.getpid())}  # (none by a worker process)


def test_parallel_ingest_failure_leaves_no_files(mixed_log, tmp_path, monkeypatch, own_pool2):
    """--on-error fail stops at the first malformed line: the input is not ingested, and nothing
    the workers wrote (visible or hidden) stays behind, tasks still running included."""
    from logpipe.errors import RejectLimitError

    monkeypatch.setattr(workers_mod, "STAGE_TASK_BYTES", 32 << 10)
    monkeypatch.setenv("LOGPIPE_WORKERS", "2")
    data = tmp_path / "data"
    with pytest.raises(RejectLimitError, match="--on-error fail"):
        ingest.ingest_paths([str(mixed_log)], str(data), on_error="fail", err=io.StringIO(), progress=False)
    # (the dataset it made, holding nothing, is not left: test_data_dir_mistakes.py)
    assert not data.exists()


def _three_small_logs(tmp_path: Path) -> list[Path]:
    logs = []
    for k, name in enumerate(("istio-1.5.log", "envoy-default.log", "tcp-and-ipv6.log")):
        logs.append(tmp_path / f"{k}.log")
        logs[-1].write_bytes((SAMPLES / name).read_bytes())
    return logs


def test_small_inputs_given_lanes_boot_one_pool_a_run(tmp_path, monkeypatch):
    """LOGPIPE_WORKERS=2 and three small inputs (too few for the run's pool): each is parsed in two
    lanes, by one pool for the run, not one each (three worker boots: 0.92 s, 0.52 s with one); the
    same rows as in one process."""
    logs = _three_small_logs(tmp_path)
    monkeypatch.setenv("LOGPIPE_WORKERS", "2")
    before = lanes_mod.started_processes
    two = ingest.ingest_paths([str(p) for p in logs], str(tmp_path / "two"), err=io.StringIO(), progress=False,
                              max_reject_ratio=1)
    assert lanes_mod.started_processes == before + 1
    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    one = ingest.ingest_paths([str(p) for p in logs], str(tmp_path / "one"), err=io.StringIO(), progress=False,
                              max_reject_ratio=1)
    assert two.ingested == one.ingested == 3 and two.counts.parsed == one.counts.parsed > 0
    assert _read(sorted((tmp_path / "two").glob("date=*/*.parquet"))) == \
        _read(sorted((tmp_path / "one").glob("date=*/*.parquet")))


def test_the_pool_works_in_this_process_and_in_worker_processes():
    """WorkerPool's lanes: the first runs tasks here (with this process's parser), the others in
    worker processes; a task goes to a free lane."""
    import os
    import time

    from logpipe.parse import default_parser

    parser = default_parser()
    with lanes_mod.WorkerPool(parser, 2) as pool:
        lanes = pool.executor()
        here = lanes.submit(lambda: (time.sleep(0.5), os.getpid(), lanes_mod.lane_parser())[1:])
        there = lanes.submit(os.getpid).result()  # the first lane is busy: a worker process
        assert here.result() == (os.getpid(), parser) and there != os.getpid()
        assert {lanes.submit(os.getpid).result() for _ in range(4)} <= {os.getpid(), there}
    assert lanes_mod.lane_parser() is None  # this thread is no lane


def test_a_pool_of_one_lane_works_in_this_process():
    import os

    from logpipe.parse import default_parser

    with lanes_mod.WorkerPool(default_parser(), 1) as pool:
        pool.start()
        assert [pool.executor().submit(os.getpid).result() for _ in range(3)] == [os.getpid()] * 3


def _skip_when_sigint_is_ignored() -> None:
    """A test run whose shell started it with SIGINT ignored (a background job of a non-interactive
    shell) cannot tell whether the pool left it so: these tests need Python's own handler first."""
    import signal

    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("pytest was started with SIGINT ignored or handled (e.g. `make test &` in a script)")


def test_worker_processes_leave_ctrl_c_to_the_main_process():
    """A terminal's Ctrl-C reaches the worker processes too: they ignore it (the main process stops
    the run; test_ingest.py tests that end to end)."""
    import signal
    import time

    _skip_when_sigint_is_ignored()

    from logpipe.parse import default_parser

    with lanes_mod.WorkerPool(default_parser(), 2) as pool:
        lanes = pool.executor()
        busy = lanes.submit(time.sleep, 0.5)  # this process's lane
        assert lanes.submit(signal.getsignal, signal.SIGINT).result() == signal.SIG_IGN
        busy.result()
    assert signal.getsignal(signal.SIGINT) != signal.SIG_IGN


def test_worker_processes_ignore_ctrl_c_from_their_start():
    """They inherit SIGINT blocked (``lanes._sigint_held``) and then ignore it, so a Ctrl-C while
    one still boots (imports polars, ~0.3 s) prints no traceback of theirs either; this process's
    mask is as it was."""
    import signal

    _skip_when_sigint_is_ignored()

    def masks(pid: int) -> dict:
        with open(f"/proc/{pid}/status") as f:
            return {k: int(v, 16) & (1 << (signal.SIGINT - 1)) for k, v in
                    (x.split(":") for x in f if x.startswith(("SigBlk:", "SigIgn:")))}

    with lanes_mod.WorkerPool(None, 2) as pool:
        (pid,) = pool.start().executor().procs._processes
        assert masks(pid)["SigBlk"]  # read at once: the process has not run Python yet
        assert pool.executor().procs.submit(signal.getsignal, signal.SIGINT).result() == signal.SIG_IGN
        assert masks(pid) == {"SigBlk": 0, "SigIgn": 1 << (signal.SIGINT - 1)}
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ---- how many workers: the memory budget ------------------------------------------------------------


@pytest.mark.parametrize("budget, workers", [("1G", 2), ("1GiB", 2), ("1024M", 2), ("700M", 1), ("4G", 10),
                                             ("2.5g", 6), ("1T", 2730)])
def test_memory_budget_sizes_the_pool(budget, workers):
    assert lanes_mod.memory_workers(budget) == workers


def test_default_workers_follow_cores_budget_and_size(tmp_path, monkeypatch):
    big = tmp_path / "big.log"
    with open(big, "wb") as f:  # sparse: as large as a file that takes workers, no disk used
        f.truncate(lanes_mod.PARALLEL_MIN_BYTES)
    small = tmp_path / "small.log"
    small.write_text("x\n")
    monkeypatch.delenv("LOGPIPE_WORKERS", raising=False)
    monkeypatch.setattr(lanes_mod.os, "sched_getaffinity", lambda _pid: set(range(8)), raising=False)
    monkeypatch.delenv("LOGPIPE_MEMORY", raising=False)
    assert lanes_mod.default_workers(Input(str(big))) == 2  # 8 cores, but 1 GiB fits two workers
    assert lanes_mod.default_workers(Input(str(small))) == 1
    monkeypatch.setenv("LOGPIPE_MEMORY", "4G")
    assert lanes_mod.default_workers(Input(str(big))) == 8  # a larger budget: one per core
    monkeypatch.setenv("LOGPIPE_MEMORY", "600M")
    assert lanes_mod.default_workers(Input(str(big))) == 1
    monkeypatch.setenv("LOGPIPE_WORKERS", "3")  # the count outright
    assert lanes_mod.default_workers(Input(str(big))) == 3


@pytest.mark.parametrize("name, value, message", [
    ("LOGPIPE_WORKERS", "two", "LOGPIPE_WORKERS='two': expected a whole number of worker processes, 1 or more"),
    ("LOGPIPE_WORKERS", "0", "LOGPIPE_WORKERS='0': expected a whole number"),
    ("LOGPIPE_MEMORY", "lots", "LOGPIPE_MEMORY='lots': expected a size with a unit, such as 1G or 1500M"),
    ("LOGPIPE_MEMORY", "512", "LOGPIPE_MEMORY='512': expected a size with a unit"),
])
def test_bad_worker_settings_are_a_one_line_usage_error(tmp_path, monkeypatch, name, value, message):
    from conftest import run_logpipe

    result = run_logpipe("ingest", SAMPLES / "istio-1.8.log", "--data", tmp_path / "d", env={name: value})
    assert result.returncode == 2
    assert result.stderr.startswith(f"logpipe: error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1


# ---- many small inputs: one worker task each, several at once ----------------------------------------


SMALL_MIN_BYTES = 96 << 10  # (PARALLEL_MIN_BYTES for small_inputs: every part is small, together large)


@pytest.fixture()
def small_inputs(mixed_log, tmp_path) -> Path:
    """A directory of small logs as rotation leaves them: plain and gzip parts, a renamed copy of one
    part, and a part that grew (its first lines are another input's, whole)."""
    lines = mixed_log.read_text(encoding="utf-8").splitlines(keepends=True)
    lines = lines[: len(lines) // 2]  # every sample once (~195 kB: still large together): the tests ingest them 2-4 times
    d = tmp_path / "logs"
    d.mkdir()
    step = len(lines) // 8 + 1
    parts = ["".join(lines[i:i + step]) for i in range(0, len(lines), step)]
    for k, text in enumerate(parts):
        if k == 3:
            (d / f"p{k:02}.log.gz").write_bytes(gzip.compress(text.encode()))
        else:
            (d / f"p{k:02}.log").write_text(text, encoding="utf-8")
    (d / "p05z-copy.log").write_text(parts[5], encoding="utf-8")  # sorted after p05: skipped as the same
    (d / "p06z-grown.log").write_text(parts[6] + parts[7][:5000].rsplit("\n", 1)[0] + "\n", encoding="utf-8")
    return d


def _ingest_dir(d: Path, data: Path, workers: str | None, monkeypatch, pool=None, **kw) -> tuple:
    from logpipe.dataset import Dataset

    if workers is None:
        monkeypatch.delenv("LOGPIPE_WORKERS", raising=False)
    else:
        monkeypatch.setenv("LOGPIPE_WORKERS", workers)
    err = io.StringIO()
    try:
        summary = ingest.ingest_paths([str(d)], str(data), err=err, progress=False, pool=pool if workers != "1" else None,
                                      **kw)
    except Exception as e:  # noqa: BLE001 - compared below
        summary = e
    rows = _read(sorted(data.glob("date=*/*.parquet")))
    rows.sort(key=lambda r: (r["source"], r["line_number"]))
    rejects = _read(sorted(data.glob("_rejects/*.parquet")))
    rejects.sort(key=lambda r: (r["source"], r["line_number"]))
    keys = ("path", "read", "parsed", "noise", "malformed", "skip_bytes", "first_line", "line_end", "bytes_end",
            "error", "rows")
    entries = [{k: e.get(k) for k in keys} for e in Dataset(data).entries()]
    notes = [ln.replace(str(data), "DATA") for ln in err.getvalue().splitlines() if " MB/s" not in ln and "kB/s" not in ln]
    return summary, rows, rejects, entries, notes


def test_small_inputs_in_workers_equal_one_by_one(small_inputs, tmp_path, monkeypatch, pool2):
    monkeypatch.setattr(lanes_mod, "PARALLEL_MIN_BYTES", SMALL_MIN_BYTES)  # every part is small, together large
    assert all(lanes_mod.is_small(i) for i in ingest.expand_inputs([str(small_inputs)])[0])
    _, rows1, rejects1, entries1, notes1 = _ingest_dir(small_inputs, tmp_path / "one", "1", monkeypatch,
                                                       max_reject_ratio=1)
    _, rows2, rejects2, entries2, notes2 = _ingest_dir(small_inputs, tmp_path / "two", None, monkeypatch, pool2,
                                                       max_reject_ratio=1)
    assert lanes_mod.ingest_workers(ingest.expand_inputs([str(small_inputs)])[0]) == 2
    assert len(entries1) == 9  # 10 files, the copy skipped
    assert entries2 == entries1
    grown = next(e for e in entries2 if e["path"].endswith("p06z-grown.log"))
    assert grown["skip_bytes"] > 0 and grown["first_line"] > 1  # only its new lines
    assert any("p05z-copy.log: same content as" in n for n in notes2)
    assert notes2 == notes1
    assert rows2 == rows1 and len(rows2) > 375  # (~405: every sample once)
    assert rejects2 == rejects1
    # and again: everything is known
    again, *_ = _ingest_dir(small_inputs, tmp_path / "two", None, monkeypatch, pool2, max_reject_ratio=1)
    assert (again.ingested, again.skipped) == (0, 10)


def test_small_inputs_failures_stay_per_input(small_inputs, tmp_path, monkeypatch, pool2):
    """A corrupt archive keeps its lines before the damage, an input over --max-reject-ratio is left
    out, a --force run replaces: the others are ingested, as one by one."""
    monkeypatch.setattr(lanes_mod, "PARALLEL_MIN_BYTES", SMALL_MIN_BYTES)
    clean = gzip.compress(((SAMPLES / "waypoint-egress-1.23.log").read_text(encoding="utf-8") * 40).encode())
    (small_inputs / "p03.log.gz").write_bytes(clean[: len(clean) // 2])  # cut: corrupt after ~half its lines
    # (10 malformed lines, not more: each costs Lark's diagnosis, ~4 ms, in each of the four runs)
    (small_inputs / "p09-bad.log").write_text("not an access line at all\n" * 5 + "[2024-01-01T00:00:00Z] x\n" * 10)
    got = {}
    for workers, name in (("1", "one"), (None, "two")):
        s1, rows, rejects, entries, notes = _ingest_dir(small_inputs, tmp_path / name, workers, monkeypatch, pool2)
        s2, rows_f, _, entries_f, _ = _ingest_dir(small_inputs, tmp_path / name, workers, monkeypatch, pool2,
                                                 force=True, max_reject_ratio=1)
        got[name] = (type(s1), str(s1), rows, rejects, entries, notes, type(s2), rows_f, entries_f)
    assert got["two"] == got["one"]
    _, message, rows, _, entries, notes, *_ = got["two"]
    assert "input(s) had" in message, message
    assert any("p03.log.gz: archive is corrupt or truncated" in n for n in notes), notes
    assert any("p09-bad.log" in n and "over --max-reject-ratio" in n for n in notes)
    assert not any(e["path"].endswith("p09-bad.log") for e in entries)
    assert not list((tmp_path / "two").glob("*/.*.tmp"))  # nothing hidden left behind


def test_small_inputs_parsed_in_one_batch_equal_each_alone(tmp_path, monkeypatch):
    """workers._stage_inputs parses several small inputs in one batch (their lines numbered by
    batches.INPUT_SHIFT): each input's files hold what ``_stage_input`` of it alone writes, row for row
    (its line numbers and name), its rejects too (which it gives the parent to write: Lark's context
    for a malformed line among its first 100 lines, whichever input it is), and the same counts: blank lines, a last line without a
    newline, an empty input, an input read from where an earlier ingest stopped."""
    from logpipe import lanes, parse

    monkeypatch.setattr(lanes, "_WORKER_PARSER", parse.Parser())  # (as in a worker process)
    good = (SAMPLES / "waypoint-egress-1.23.log").read_text(encoding="utf-8").splitlines(keepends=True)
    bad = (SAMPLES / "malformed.log").read_text(encoding="utf-8").splitlines(keepends=True)
    texts = ["".join(good[:5] + bad[:3] + ["\n", "  \n"] + good[5:9]),
             "".join(bad[3:9] + good[:4]) + "not an access line, no newline",
             "",
             "".join(good * 30 + bad[9:12]),  # its malformed lines past its 100th
             "".join(good[:3])]
    items = []
    for k, text in enumerate(texts):
        path = tmp_path / f"in{k}.log"
        path.write_text(text, encoding="utf-8")
        skip, first = (len(good[0].encode()), 2) if k == 4 else (0, 1)
        items.append((str(path), skip, first, f"part-{k}"))

    def staged(root, results):
        out = []
        for k, ((staged_list, error), (path, *_)) in enumerate(zip(results, items)):
            assert error is None
            (batch, end), = staged_list
            files = [final for _, final in batch.pairs]
            for hidden, final in batch.pairs:
                final.parent.mkdir(parents=True, exist_ok=True)
                hidden.rename(final)
            assert not any("_rejects" in str(f) for f in files)  # (the parent writes an input's rejects)
            rows = _read(files)
            rejects = batch.rejects.to_pylist()
            out.append((batch.read, batch.blank, batch.parsed, batch.rejected, batch.formats, batch.undated,
                        batch.tmin, batch.tmax, end, rows, rejects))
        return out

    alone = staged(tmp_path / "a", [workers_mod._stage_input(p, skip, first, str(tmp_path / "a"), prefix)
                                    for p, skip, first, prefix in items])
    grouped = workers_mod._stage_inputs(items, str(tmp_path / "g"))
    assert [kind for kind, _ in grouped] == ["ok"] * len(items)
    together = staged(tmp_path / "g", [value for _, value in grouped])
    assert together == alone
    reads = [a[0] for a in alone]
    assert reads[2] == 0 and reads[1] == 11 and alone[0][1] == 2  # (the empty input; no newline; blanks)
    assert any(r["source"].endswith("in1.log") and "Lark" in r["reason"] for r in alone[1][10])
    assert not any("Lark" in r["reason"] for r in alone[3][10]) and alone[3][10]


def test_a_split_into_inputs_that_does_not_add_up_is_an_error():
    """batches.split_inputs counts an input's blank lines as the rest of its lines: if the lines it is
    told of are not the batch's, it says so rather than hide lines there."""
    import polars as pl

    from logpipe import batches, parse

    good = (SAMPLES / "waypoint-egress-1.23.log").read_text(encoding="utf-8").splitlines(keepends=True)[:4]
    body = "".join(good * 2).encode()
    numbers = pl.Series([1, 2, 3, 4, (1 << batches.INPUT_SHIFT) + 1, (1 << batches.INPUT_SHIFT) + 2,
                         (1 << batches.INPUT_SHIFT) + 3, (1 << batches.INPUT_SHIFT) + 4])
    batch = parse.Parser().parse_chunk(body, "-", 1, line_numbers=numbers)
    a, b = batches.split_inputs(batch, ["a.log", "b.log"], [4, 4])
    assert (a.parsed, b.parsed, a.blank, b.blank) == (4, 4, 0, 0)
    assert b.records.column("line_number").to_pylist() == [1, 2, 3, 4]
    assert set(b.records.column("source").to_pylist()) == {"b.log"}
    with pytest.raises(ValueError, match="does not add up"):
        batches.split_inputs(batch, ["a.log", "b.log"], [4, 5])


def test_small_plain_inputs_go_to_the_workers_together(small_inputs, tmp_path, monkeypatch, pool2):
    """ingest hands the workers its small plain inputs several to a task (``_stage_inputs``, up to
    STAGE_TASK_BYTES), the gzip part alone; a smaller --flush-rows keeps them one to a task."""
    monkeypatch.setattr(lanes_mod, "PARALLEL_MIN_BYTES", SMALL_MIN_BYTES)
    part = (small_inputs / "p00.log").stat().st_size
    monkeypatch.setattr(ingest, "STAGE_TASK_BYTES", 3 * part)  # three parts a task
    tasks = []
    real_group, real_one = workers_mod.stage_inputs_async, workers_mod.stage_input_async
    monkeypatch.setattr(ingest, "stage_inputs_async", lambda pool, items, root: tasks.append(len(items)) or
                        real_group(pool, items, root))
    monkeypatch.setattr(ingest, "stage_input_async", lambda pool, inp, *a: tasks.append(inp.name) or
                        real_one(pool, inp, *a))
    summary, rows, *_ = _ingest_dir(small_inputs, tmp_path / "d", "2", monkeypatch, pool2, max_reject_ratio=1)
    assert summary.ingested == 9 and len(rows) > 375
    assert max(t for t in tasks if isinstance(t, int)) > 1, tasks  # (where launches cut them: decide)
    assert [t for t in tasks if isinstance(t, str)] == [str(small_inputs / "p03.log.gz")]
    assert sum(t for t in tasks if isinstance(t, int)) == 8
    tasks.clear()
    _ingest_dir(small_inputs, tmp_path / "e", "2", monkeypatch, pool2, max_reject_ratio=1, flush_rows=100)
    assert len(tasks) == 9 and all(isinstance(t, str) for t in tasks)


@pytest.mark.parametrize("workers", ["1", None], ids=["in-process", "workers"])
def test_many_small_inputs_share_manifest_writes(tmp_path, monkeypatch, workers, pool2):
    """The manifest is rewritten whole: thousands of small inputs must not each rewrite it three
    times (O(inputs²)); they are begun and committed in groups, and every one is still there."""
    from logpipe.dataset import Dataset

    d = tmp_path / "pods"
    d.mkdir()
    lines = (SAMPLES / "waypoint-egress-1.23.log").read_text(encoding="utf-8").splitlines(keepends=True)
    for k in range(60):
        (d / f"pod-{k:03}.log").write_text("".join(lines[k % 7:k % 7 + 3]), encoding="utf-8")
    writes = []
    real = Dataset._write_manifest
    monkeypatch.setattr(Dataset, "_write_manifest", lambda self, m, durable=True: (writes.append(1), real(self, m, durable)))
    summary, rows, _, entries, _ = _ingest_dir(d, tmp_path / "data", workers, monkeypatch, pool2)
    assert summary.ingested + summary.skipped == 60 and summary.ingested == len(entries)
    assert len(rows) == summary.counts.parsed > 0
    assert len(writes) <= 30  # one input at a time: 3 per input, 180


@pytest.mark.parametrize("content", [
    b"a\nbb\nccc\n" * 50,
    b"a\nbb\nccc\n" * 50 + b"no newline at the end",
    b"x" * 300 + b"\n" + b"y" * 10 + b"\n" + b"z" * 1000,  # lines longer than a range
    b"\n\n\n" + b"line\n" * 7,
    b"only one line, no newline",
    b"",
], ids=["lines", "unterminated", "long-lines", "blank-lines", "one-line", "empty"])
@pytest.mark.parametrize("skip", [0, 6])
def test_file_ranges_are_whole_lines_that_add_up(tmp_path, content, skip):
    """The parent cuts a plain file into ranges it reads once: each range is whole lines with their
    count, the ranges follow each other from ``skip_bytes`` to the end, nothing lost or repeated."""
    from logpipe.sources import iter_file_ranges

    path = tmp_path / "f.log"
    path.write_bytes(content)
    skip = skip if content[:skip].endswith(b"\n") else 0
    ranges = list(iter_file_ranges(Input(str(path)), skip_bytes=skip, chunk_bytes=64))
    got = b"".join(r.read() for r, _ in ranges)
    assert got == content[skip:]
    at = skip
    for r, end in ranges:
        body = r.read()
        assert (r.start, r.stop, end) == (at, at + len(body), at + len(body))
        assert r.lines == body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
        assert body.endswith(b"\n") or r.stop == len(content)
        at = r.stop


@pytest.mark.parametrize("content", [
    b"a\nbb\nccc\n" * 50,
    b"x" * 200 + b"\nshort\n" + b"y" * 150,  # lines longer than the buffer; the last unterminated
    b"no newline at all " * 10,
], ids=["lines", "long-lines", "one-long-line"])
def test_file_ranges_hash_every_byte_in_order(tmp_path, content):
    """The parent hashes a range's bytes after it yields the range (its worker starts sooner): the
    hash is still that of every byte after ``skip_bytes``, in order, each once."""
    import hashlib

    from logpipe.dataset import InputHash
    from logpipe.sources import iter_file_ranges

    path = tmp_path / "f.log"
    path.write_bytes(content)
    for skip in (0, content.index(b"\n") + 1 if b"\n" in content else 0):
        hasher = InputHash("sha256-128")
        list(iter_file_ranges(Input(str(path)), skip_bytes=skip, chunk_bytes=64, hasher=hasher))
        assert hasher._hash.hexdigest() == hashlib.sha256(content[skip:]).hexdigest()
        assert hasher.size == len(content) - skip


@pytest.mark.parametrize("content", [
    b"a\nbb\nccc\n" * 50,
    b"a\nbb\nccc\n" * 50 + b"no newline at the end",
    b"x" * 300 + b"\n" + b"y" * 10 + b"\n" + b"z" * 1000,  # lines longer than a chunk
    b"only one line, no newline",
    b"",
], ids=["lines", "unterminated", "long-lines", "one-line", "empty"])
@pytest.mark.parametrize("chunk", [64, 1 << 20])
def test_byte_chunks_of_a_plain_file_are_whole_lines_that_add_up(tmp_path, content, chunk):
    """iter_byte_chunks (small inputs, a worker reads them whole): runs of whole lines with their end
    offsets, nothing lost or repeated, read a chunk a call (a small file: one chunk, not copied)."""
    from logpipe.sources import iter_byte_chunks

    path = tmp_path / "f.log"
    path.write_bytes(content)
    got, at = [], 0
    for body, end in iter_byte_chunks(Input(str(path)), chunk_bytes=chunk):
        assert body and end == at + len(body)
        assert body.endswith(b"\n") or end == len(content)
        got.append(body)
        at = end
    assert b"".join(got) == content
    if chunk > len(content) and content.endswith(b"\n"):
        assert len(got) == 1


@pytest.mark.parametrize("scan", [8, 64 << 10])
def test_a_range_read_in_pieces_is_whole_lines_that_add_up(tmp_path, monkeypatch, scan):
    """A worker reads its range in pieces of about CHUNK_BYTES (FileRange.pieces), each from the
    file: whole lines, in order, nothing lost, however long a line is beside the scan for its end."""
    import random

    from logpipe import sources
    from logpipe.sources import FileRange

    monkeypatch.setattr(sources, "PIECE_SCAN", scan)
    rng = random.Random(4)
    lines = [b"x" * rng.choice([0, 1, 5, 40, 300]) + b"\n" for _ in range(400)] + [b"y" * 700 + b"\n", b"z\n"]
    content = b"".join(lines)
    path = tmp_path / "f.log"
    path.write_bytes(b"head\n" + content + b"no newline")
    r = FileRange(str(path), 5, 5 + len(content), len(lines))
    for size in (1, 64, 1000, len(content), 10 * len(content)):
        pieces = list(r.pieces(size))
        assert b"".join(pieces) == content == r.read()
        assert all(p.endswith(b"\n") for p in pieces)
        assert all(len(p) <= max(size, 1) + 701 for p in pieces)  # about size, at most one more line
    tail = FileRange(str(path), 5 + len(content), len(content) + 15, 1)  # the last line, unterminated
    assert list(tail.pieces(4)) == [b"no newline"]


def test_file_ranges_of_a_file_shorter_than_skip(tmp_path):
    from logpipe.errors import InputError
    from logpipe.sources import iter_file_ranges

    path = tmp_path / "f.log"
    path.write_bytes(b"a\n")
    with pytest.raises(InputError, match="shorter than the 10 bytes already ingested"):
        list(iter_file_ranges(Input(str(path)), skip_bytes=10))


def test_a_new_large_input_is_hashed_while_its_ranges_are_read(mixed_log, tmp_path, monkeypatch, pool2):
    """A large plain input that no earlier entry can be (or start) is hashed in the pass that cuts
    it into the workers' ranges, not before: its entry gets the same hash, so a second ingest skips
    it, a renamed copy is known, and the file grown is read from where it ended."""
    from logpipe import dataset

    monkeypatch.setattr(lanes_mod, "PARALLEL_MIN_BYTES", 64 << 10)  # mixed_log is a large input
    monkeypatch.setattr(workers_mod, "STAGE_TASK_BYTES", 96 << 10)
    monkeypatch.setenv("LOGPIPE_WORKERS", "2")
    hashed_first = []
    real = ingest.fingerprint
    monkeypatch.setattr(ingest, "fingerprint", lambda path, *a, **k: hashed_first.append(path) or real(path, *a, **k))
    log, data = tmp_path / "live.log", tmp_path / "data"
    log.write_bytes(mixed_log.read_bytes()[:400_000].rsplit(b"\n", 1)[0] + b"\n")  # (~4 tasks: three runs read it)

    def run(*paths):
        return ingest.ingest_paths([str(p) for p in paths], str(data), err=io.StringIO(), progress=False,
                                   max_reject_ratio=1, pool=pool2)

    first = run(log)
    (entry,) = dataset.Dataset(data).entries()
    assert hashed_first == [] and first.files > 2  # no pass before the workers began
    assert (entry["size"], entry["hash"]) == dataset.fingerprint(log)[:2]
    copy = tmp_path / "copy.log"
    copy.write_bytes(log.read_bytes())
    again = run(log, copy)
    assert again.skipped == 2 and again.rows == 0 and hashed_first  # an entry as small: hashed first
    with open(log, "ab") as f:
        f.write(mixed_log.read_bytes()[:50_000].rsplit(b"\n", 1)[0] + b"\n")
    grown = run(log)
    new = dataset.Dataset(data).entries()[-1]
    assert grown.ingested == 1 and new["first_line"] == entry["line_end"] + 1
    assert (new["size"], new["hash"]) == dataset.fingerprint(log)[:2]


def test_ingest_boots_its_workers_before_it_imports_polars(tmp_path):
    """`logpipe ingest` starts its worker processes first thing (lanes.boot_pool): they import
    polars and pyarrow while this process does, and get the parser when it is built."""
    import os
    import subprocess
    import sys

    big = tmp_path / "big.log"
    with open(big, "wb") as f:  # sparse: as large as a file that takes workers
        f.truncate(lanes_mod.PARALLEL_MIN_BYTES)
    code = ("import sys, logpipe.lanes as w\n"
            "pool, found = w.boot_pool([sys.argv[1]])\n"
            "print('polars' in sys.modules, 'pyarrow' in sys.modules, pool.workers, len(pool.executor().procs._processes),\n"
            "      pool.executor().procs._mp_context.get_start_method())\n"
            "from logpipe.parse import default_parser\n"
            "lanes = pool.use(default_parser()).executor()\n"
            "print(lanes.procs.submit(w._in_worker, lanes._pickled, w.lane_parser).result().fast)\n"
            "pool.close()\n")
    done = subprocess.run([sys.executable, "-c", code, str(big)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, LOGPIPE_WORKERS="2"), cwd=ROOT)
    assert done.returncode == 0, done.stderr
    # forked (still one thread, nothing heavy loaded): it starts importing at once
    assert done.stdout.split() == ["False", "False", "2", "1", "fork", "True"]


def test_a_rerun_of_inputs_all_ingested_boots_no_worker_process(tmp_path, monkeypatch):
    """An ingest whose dataset has every input already (a nightly job's rerun: the same names, the
    same sizes) starts no worker process (~0.5 s of CPU: polars, pyarrow), neither the command
    (lanes.boot_pool) nor ingest_paths; when an input's content changed all the same, they start at
    its first task and read it; --force reads every input again: it starts them first thing."""
    from conftest import run_logpipe

    monkeypatch.setattr(lanes_mod, "PARALLEL_MIN_INPUTS", 3)  # (as many small inputs as take the workers)
    boots = []
    real = lanes_mod._Lanes.__init__
    monkeypatch.setattr(lanes_mod._Lanes, "__init__", lambda self, *a: boots.append(a[2]) or real(self, *a))
    lines = (SAMPLES / "waypoint-egress-1.23.log").read_text(encoding="utf-8").splitlines(keepends=True)
    logs, data = tmp_path / "logs", tmp_path / "d"
    logs.mkdir()
    for k in range(3):
        (logs / f"pod-{k}.log").write_text("".join(lines[k:k + 4]), encoding="utf-8")
    two = {"LOGPIPE_WORKERS": "2"}
    assert run_logpipe("ingest", logs, "--data", data, env={"LOGPIPE_WORKERS": "1"}).returncode == 0
    again = run_logpipe("ingest", logs, "--data", data, env=two)
    assert again.returncode == 0 and "inputs 3: ingested 0, skipped as already ingested 3" in again.stderr
    monkeypatch.setenv("LOGPIPE_WORKERS", "2")
    assert ingest.ingest_paths([str(logs)], str(data), err=io.StringIO(), progress=False).skipped == 3
    assert boots == []
    # (the same size, another content: its lines an hour later, rows not ingested; lines of the others', in
    # another order, would be the end of theirs, found ingested already: ingest.py's ``_Run.overlap``)
    (logs / "pod-1.log").write_text("".join(lines[4:0:-1]).replace("T10:", "T11:"), encoding="utf-8")
    changed = run_logpipe("ingest", logs, "--data", data, env=two)
    assert changed.returncode == 0 and "inputs 3: ingested 1, skipped as already ingested 2" in changed.stderr
    assert "rows written 4 " in changed.stderr and boots == [2]
    forced = run_logpipe("ingest", logs, "--data", data, "--force", env=two)
    assert forced.returncode == 0 and "inputs 3: ingested 3," in forced.stderr and boots == [2, 2]


def test_a_new_input_is_known_as_no_rerun_without_parsing_the_manifest(tmp_path, monkeypatch):
    """lanes.boot_pool's rerun check parses a dataset's manifest (18,000 entries: ~0.15 s, +84 MB,
    before the workers start) only when every input's name is in its text: a new input is not a
    rerun, known from a search of its bytes. A name in it (unicode too, as json.dumps writes it)
    is still checked against its parsed entries."""
    import json

    from logpipe.sources import Input

    data = tmp_path / "d"
    data.mkdir()
    old, new = tmp_path / "pod-\u00e9.log", tmp_path / "pod-new.log"
    old.write_text("x\n", encoding="utf-8")
    new.write_text("y\n", encoding="utf-8")
    entry = {"path": str(old), "size": 2, "state": "complete"}
    (data / "_manifest.json").write_text(json.dumps({"inputs": [entry]}, sort_keys=True), encoding="utf-8")
    parsed = []
    real = json.loads
    monkeypatch.setattr(json, "loads", lambda *a, **k: parsed.append(1) or real(*a, **k))
    assert lanes_mod._manifest_entries(str(data), [Input(str(new))]) == [] and parsed == []
    assert lanes_mod._manifest_entries(str(data), [Input(str(old)), Input(str(new))]) == [] and parsed == []
    assert lanes_mod._manifest_entries(str(data), [Input("-")]) == [] and parsed == []
    assert lanes_mod._manifest_entries(str(data), [Input(str(old))]) == [entry] and parsed == [1]
    assert lanes_mod.ingested_before([Input(str(old))], lanes_mod._manifest_entries(str(data), [Input(str(old))]))


def test_a_prepared_parser_builds_nothing_at_its_first_large_batch(monkeypatch):
    """A worker prepares the default parser while it boots (Parser.prepare): the parser its parent
    sends is rebuilt from the same grammars, and its first large batch builds no split plan."""
    from logpipe import fastpath, parse, splitplan

    fastpath._plan_of.cache_clear()
    built = []
    real = splitplan.build
    monkeypatch.setattr(splitplan, "build", lambda book, layout: built.append(layout) or real(book, layout))
    parse.Parser().prepare()
    assert built == ["istio_1_9"]  # the layout the checked cut tries first
    line = ('[2024-07-18T16:13:58.198Z] "GET /get HTTP/1.1" 200 - via_upstream - "-" 0 252 260 259 "-" '
            '"curl/8.7.1" "8d80cec6-8fc1-40de-8bc7-19716f173bbd" "httpbin.org" "3.234.9.11:80" '
            'inbound-vip|80|http|httpbin.org 10.244.0.24:{port} 240.240.0.2:80 10.244.0.18:41548 - default\n')
    lines = "".join(line.format(port=40000 + i) for i in range(fastpath.SPLIT_MIN_ROWS + 200)).encode()
    batch = parse.Parser().parse_chunk(lines)  # (as a worker's: rebuilt from the same options)
    assert batch.parsed == fastpath.SPLIT_MIN_ROWS + 200
    assert built[0] == "istio_1_9" and "istio_1_9" not in built[1:]


def test_workers_are_spawned_once_polars_is_loaded():
    """A pool started after polars or pyarrow is imported (a library user, these tests) spawns its
    workers: fork is not safe once their thread pools or allocators may hold locks."""
    import polars

    assert "polars" in sys.modules and polars.Series  # (loaded, as in a library user's process)
    assert lanes_mod._start_method() == "spawn"
    with lanes_mod.WorkerPool(None, 2) as pool:
        assert pool.executor().procs._mp_context.get_start_method() == "spawn"


@pytest.mark.parametrize("change", ["truncate", "rewrite"])
def test_a_file_changed_after_its_ranges_were_counted_is_not_ingested(mixed_log, tmp_path, monkeypatch, change,
                                                                     own_pool2):
    """The workers read their ranges after this process counted their lines: a file truncated or
    rewritten meanwhile gives a worker fewer bytes or other lines. The input is not ingested (none of
    what was read is one version of it), with one clear line, and no file is left behind."""

    monkeypatch.setattr(workers_mod, "STAGE_TASK_BYTES", 96 << 10)
    monkeypatch.setenv("LOGPIPE_WORKERS", "2")
    log, data, err = tmp_path / "live.log", tmp_path / "data", io.StringIO()
    text = mixed_log.read_bytes()
    log.write_bytes(text)
    counted = pipeline.iter_file_ranges

    def then_changed(*args, **kwargs):
        ranges = list(counted(*args, **kwargs))  # every range counted, then the file changes
        with open(log, "r+b") as f:
            if change == "truncate":
                f.truncate(len(text) // 3)
            else:  # as long as it was, other lines: copytruncate, then a writer wrote again
                f.write(text[len(text) // 3:].replace(b"\n", b"") + text[:len(text) // 3] + b"\n" * text.count(b"\n", len(text) // 3))
        yield from ranges

    monkeypatch.setattr(pipeline, "iter_file_ranges", then_changed)
    from logpipe.errors import InputError

    with pytest.raises(InputError, match=r"^1 input\(s\) had errors \(see above\)"):
        ingest.ingest_paths([str(log)], str(data), err=err, progress=False, max_reject_ratio=1)
    (line,) = [x for x in err.getvalue().splitlines() if x.startswith("logpipe: error:")]
    assert line.startswith(f"logpipe: error: {log}: changed while being read (")
    assert not data.exists()  # (the dataset it made, holding nothing, is not left: test_data_dir_mistakes.py)


def test_parse_shares_one_pool_among_its_large_inputs(mixed_log, tmp_path, monkeypatch, pool2):
    """`logpipe parse` boots its workers once (before it imports polars) for all its large inputs,
    and prints what it prints in one process. The pool it makes is ``pool2`` (``use_kept_pool``: a
    boot, ~0.7 s of CPU, saved), every pool made anywhere counted."""
    from click.testing import CliRunner

    from logpipe.cli import cli

    text = mixed_log.read_bytes()[:400_000].rsplit(b"\n", 1)[0] + b"\n"
    half = text.index(b"\n", 200_000) + 1
    first, copy = tmp_path / "first.log", tmp_path / "copy.log"  # (~200 kB each: two large inputs, read four times)
    first.write_bytes(text[:half])
    copy.write_bytes(text[half:])
    monkeypatch.setattr(lanes_mod, "PARALLEL_MIN_BYTES", 64 << 10)
    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 64 << 10)
    pools = []
    use_kept_pool(pool2, monkeypatch)
    for module in (pipeline, ingest, lanes_mod):  # (where a pool is made: use_kept_pool's)
        monkeypatch.setattr(module, "WorkerPool", lambda *a, make=module.WorkerPool: pools.append(a) or make(*a))

    def parse(workers: str):
        monkeypatch.setenv("LOGPIPE_WORKERS", workers)
        return CliRunner().invoke(cli, ["parse", "-o", "ndjson", str(first), str(copy)])

    serial, parallel = parse("1"), parse("2")
    assert parallel.exit_code == serial.exit_code == 0, parallel.output
    assert parallel.stdout == serial.stdout and serial.stdout.count("\n") > 750  # (~800 rows)
    assert parallel.stderr.splitlines()[-1] == serial.stderr.splitlines()[-1]
    assert pools == [(None, 2)]


_REAPER = r"""
import ctypes, os, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of the run come to this process
run = subprocess.run([sys.executable, "-m", "logpipe", *sys.argv[1:]], capture_output=True, text=True,
                     env={**os.environ, "LOGPIPE_WORKERS": "2"})
left = []
deadline = time.monotonic() + 2
while time.monotonic() < deadline:
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if pid:
        left.append(pid)
    else:
        time.sleep(0.05)
print(run.returncode, len(left))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_CHILD_SUBREAPER is Linux's")
@pytest.mark.parametrize("command", ["ingest", "parse"])
def test_no_process_outlives_a_run_with_workers(tmp_path, command):
    """multiprocessing's resource tracker outlives its process by design, left to PID 1 to reap: in a
    container whose PID 1 does not reap, a zombie per run. The command stops and reaps it before it
    exits: a run leaves no process behind (here this test's process stands in for PID 1)."""
    args = [command, str(SAMPLES / "istio-1.8.log")]
    args += ["--data", str(tmp_path / "d")] if command == "ingest" else ["-o", "ndjson"]
    result = subprocess.run([sys.executable, "-c", _REAPER, *args], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.split() == ["0", "0"], (result.stdout, result.stderr)


def test_a_closed_stdin_boots_no_worker_process(monkeypatch, tmp_path):
    """`logpipe parse -` (or `ingest -`) started with stdin closed (`<&-`) only says so: stdin, of
    no size, took a worker process (~0.4 s of CPU importing polars and pyarrow) before that error."""
    from logpipe.errors import InputError

    starts = []
    monkeypatch.setattr(lanes_mod.WorkerPool, "start", lambda self: starts.append(self.workers) or self)
    monkeypatch.setenv("LOGPIPE_WORKERS", "2")
    monkeypatch.setattr(sys, "stdin", None)
    for whole in (False, True):  # (parse, ingest)
        pool, (inputs, errors) = lanes_mod.boot_pool(["-"], ingest=whole)
        assert pool is None and [i.name for i in inputs] == ["<stdin>"] and errors == []  # (said when read)
    err = io.StringIO()
    with pytest.raises(InputError):  # (ingest_paths sizes its own pool when given none)
        ingest.ingest_paths(["-"], str(tmp_path / "d"), err=err, progress=False)
    assert "stdin is closed" in err.getvalue() and starts == []
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    # (an open stdin: sized for, started at its second chunk; this one holds none: lanes.boots_now)
    assert lanes_mod.boot_pool(["-"], ingest=False)[0].workers == 2 and starts == []


def test_inputs_read_in_memory_share_one_pool(tmp_path, monkeypatch):
    """`query --input`/`report --input` (``parse_to_tables``) of several inputs that take workers boot
    one pool for them all, not one each (parse_input's own, when it is given none); the same rows as
    in one process."""
    logs = _three_small_logs(tmp_path)
    monkeypatch.setenv("LOGPIPE_WORKERS", "2")
    before = lanes_mod.started_processes
    records, rejects, counts = pipeline.parse_to_tables([str(p) for p in logs])
    assert lanes_mod.started_processes == before + 1
    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    records1, rejects1, counts1 = pipeline.parse_to_tables([str(p) for p in logs])
    assert lanes_mod.started_processes == before + 1
    assert records.num_rows == records1.num_rows > 0 and counts.read == counts1.read
    assert records.sort_by([("source", "ascending"), ("line_number", "ascending")]).to_pylist() == \
        records1.sort_by([("source", "ascending"), ("line_number", "ascending")]).to_pylist()
