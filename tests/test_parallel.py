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
