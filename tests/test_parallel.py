"""Parsing with worker processes gives the same rows, rejects and counts as parsing in-process:
ingest (workers write their own Parquet parts from byte ranges of a plain file, or from chunks of a
compressed one) and parse (workers hand batches back)."""
from __future__ import annotations

import gzip
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from logpipe import ingest, pipeline
from logpipe.sources import Input

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_logs"


@pytest.fixture(scope="module")
def mixed_log(tmp_path_factory) -> Path:
    """Every sample (all layouts, JSON, ztunnel, prefixes, noise, malformed lines), repeated: ~1 MB."""
    text = "".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted(SAMPLES.glob("*.log")))
    path = tmp_path_factory.mktemp("parallel") / "mixed.log"
    path.write_text(text * 6, encoding="utf-8")
    return path


def _read(files: list[Path]) -> list[dict]:
    if not files:
        return []
    table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")
    return table.sort_by("line_number").to_pylist()


def _ingest(log: Path, data: Path, workers: str, monkeypatch) -> tuple:
    monkeypatch.setenv("LOGPIPE_WORKERS", workers)
    summary = ingest.ingest_paths([str(log)], str(data), err=io.StringIO(), progress=False, max_reject_ratio=1)
    rows = _read(sorted(data.glob("date=*/*.parquet")))
    rejects = _read(sorted(data.glob("_rejects/*.parquet")))
    return summary, rows, rejects


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_parallel_ingest_equals_in_process(mixed_log, tmp_path, monkeypatch, compressed):
    log = mixed_log
    if compressed:
        log = tmp_path / "mixed.log.gz"
        log.write_bytes(gzip.compress(mixed_log.read_bytes()))
    monkeypatch.setattr(pipeline, "STAGE_TASK_BYTES", 96 << 10)  # many small tasks
    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 96 << 10)
    one, rows1, rejects1 = _ingest(log, tmp_path / "one", "1", monkeypatch)
    two, rows2, rejects2 = _ingest(log, tmp_path / "two", "2", monkeypatch)
    assert two.counts.read == one.counts.read > 2_000
    assert (two.counts.parsed, two.counts.noise, two.counts.malformed, two.counts.blank) == \
        (one.counts.parsed, one.counts.noise, one.counts.malformed, one.counts.blank)
    assert (two.min_time, two.max_time, two.undated) == (one.min_time, one.max_time, one.undated)
    assert len(rows2) == len(rows1) == one.counts.parsed
    assert rows2 == rows1
    assert rejects2 == rejects1 and len(rejects1) == one.counts.noise + one.counts.malformed
    assert two.files > 2  # the workers wrote parts of their own


def test_parallel_parse_equals_in_process(mixed_log, monkeypatch):
    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 64 << 10)

    def batches(workers: int):
        records, rejects = [], []
        for batch, _end in pipeline.parse_input(Input(str(mixed_log)), workers=workers):
            records.append(batch.records)
            rejects.append(batch.rejects)
        return (pa.Table.from_batches(records).to_pylist(), pa.Table.from_batches(rejects).to_pylist())

    serial, parallel = batches(1), batches(2)
    assert parallel[0] == serial[0] and len(serial[0]) > 1_500
    assert parallel[1] == serial[1]


def test_parallel_ingest_failure_leaves_no_files(mixed_log, tmp_path, monkeypatch):
    """--on-error fail stops at the first malformed line: the input is not ingested, and nothing
    the workers wrote (visible or hidden) stays behind, tasks still running included."""
    from logpipe.dataset import Dataset
    from logpipe.errors import RejectLimitError

    monkeypatch.setattr(pipeline, "STAGE_TASK_BYTES", 32 << 10)
    monkeypatch.setenv("LOGPIPE_WORKERS", "2")
    data = tmp_path / "data"
    with pytest.raises(RejectLimitError, match="--on-error fail"):
        ingest.ingest_paths([str(mixed_log)], str(data), on_error="fail", err=io.StringIO(), progress=False)
    left = [p for p in data.rglob("*") if p.is_file() and p.name not in ("_manifest.json", "_ingest.lock", "_lock")]
    assert left == []
    assert Dataset(data).entries(state=None) == []


# ---- how many workers: the memory budget ------------------------------------------------------------


@pytest.mark.parametrize("budget, workers", [("1G", 2), ("1GiB", 2), ("1024M", 2), ("700M", 1), ("4G", 10),
                                             ("2.5g", 6), ("1T", 2730)])
def test_memory_budget_sizes_the_pool(budget, workers):
    assert pipeline.memory_workers(budget) == workers


def test_default_workers_follow_cores_budget_and_size(tmp_path, monkeypatch):
    big = tmp_path / "big.log"
    with open(big, "wb") as f:  # sparse: as large as a file that takes workers, no disk used
        f.truncate(pipeline.PARALLEL_MIN_BYTES)
    small = tmp_path / "small.log"
    small.write_text("x\n")
    monkeypatch.delenv("LOGPIPE_WORKERS", raising=False)
    monkeypatch.setattr(pipeline.os, "sched_getaffinity", lambda _pid: set(range(8)), raising=False)
    monkeypatch.delenv("LOGPIPE_MEMORY", raising=False)
    assert pipeline.default_workers(Input(str(big))) == 2  # 8 cores, but 1 GiB fits two workers
    assert pipeline.default_workers(Input(str(small))) == 1
    monkeypatch.setenv("LOGPIPE_MEMORY", "4G")
    assert pipeline.default_workers(Input(str(big))) == 8  # a larger budget: one per core
    monkeypatch.setenv("LOGPIPE_MEMORY", "600M")
    assert pipeline.default_workers(Input(str(big))) == 1
    monkeypatch.setenv("LOGPIPE_WORKERS", "3")  # the count outright
    assert pipeline.default_workers(Input(str(big))) == 3


@pytest.mark.parametrize("name, value, message", [
    ("LOGPIPE_WORKERS", "two", "LOGPIPE_WORKERS='two': expected a whole number of worker processes, 1 or more"),
    ("LOGPIPE_WORKERS", "0", "LOGPIPE_WORKERS='0': expected a whole number"),
    ("LOGPIPE_MEMORY", "lots", "LOGPIPE_MEMORY='lots': expected a size with a unit, such as 1G or 1500M"),
    ("LOGPIPE_MEMORY", "512", "LOGPIPE_MEMORY='512': expected a size with a unit"),
])
def test_bad_worker_settings_are_a_one_line_usage_error(tmp_path, monkeypatch, name, value, message):
    import os
    import subprocess
    import sys

    env = {**os.environ, name: value}
    result = subprocess.run([sys.executable, "-m", "logpipe", "ingest", str(SAMPLES / "istio-1.8.log"),
                             "--data", str(tmp_path / "d")], env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith(f"logpipe: error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1
