"""An input whose first lines are the end of an ingested input's (hourly `kubectl logs --since=2h`
captures) is read from the first line after them (ingest.py's ``_Run.overlap``)."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import pytest

from test_ingest import check_consistent, keys, manifest, rows, run, write_log

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
NOISE = "2025-01-30T10:55:00.000Z warning envoy config gRPC config stream closed: 13, "


def log_lines(n: int) -> list[str]:
    """``n`` waypoint lines of sample_logs, in time order: each its own request (its time a second
    after the one before, to the millisecond, and its own request id)."""
    base = [ln for ln in (SAMPLES / "waypoint-egress-1.23.log").read_text().splitlines() if ln.strip()]
    t0 = dt.datetime(2025, 1, 30, 10, 0, 0, 123000)
    out = []
    for i in range(n):
        ln = re.sub(r"^\[[^\]]+\]", f"[{(t0 + dt.timedelta(seconds=i)):%Y-%m-%dT%H:%M:%S.%f}"[:-3] + "Z]", base[i % len(base)])
        ln = re.sub(r'"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"', f'"00000000-0000-4000-8000-{i:012d}"', ln)
        out.append(ln)
    return out


def captures(tmp_path: Path, noise_at: int | None = None) -> tuple[Path, Path]:
    """cap-10h.log: the log's lines 1-25; cap-11h.log: its lines 16-40 (a noise line after line
    ``noise_at`` of the log, in both when they both hold it)."""
    lines = log_lines(40)
    if noise_at is not None:
        lines.insert(noise_at, NOISE)
    end_a = 25 + (noise_at is not None and noise_at < 25)
    start_b = 15 + (noise_at is not None and noise_at < 15)
    return write_log(tmp_path / "cap-10h.log", lines[:end_a]), write_log(tmp_path / "cap-11h.log", lines[start_b:])


@pytest.fixture(params=[None, 700], ids=["read", "bisected"])
def chunk(request, monkeypatch):
    """As the overlap of a small capture is found (parsed from its start), and of a large one (its
    end found by bisection first, ``_Run._overlap_near``: here with chunks of 700 bytes, two lines)."""
    if request.param is not None:
        import logpipe.ingest

        monkeypatch.setattr(logpipe.ingest, "OVERLAP_CHUNK", request.param)


def test_a_capture_whose_start_is_an_earlier_ones_end_adds_only_its_new_lines(tmp_path, monkeypatch, capsys, chunk):
    data = tmp_path / "data"
    a, b = captures(tmp_path)
    assert run(monkeypatch, capsys, "ingest", a, "--data", data)[0] == 0
    code, _, err = run(monkeypatch, capsys, "ingest", b, "--data", data)
    assert code == 0, err
    assert f"{b}: its first 10 lines were ingested already (the end of {a}); read from line 11" in err
    assert "lines read 15, parsed 15" in err and "rows written 15" in err
    assert rows(data) == 40
    m = check_consistent(data)
    assert [(e["first_line"], e["line_end"]) for e in m["inputs"]] == [(1, 25), (11, 25)]
    assert keys(data) == sorted([(str(a), n) for n in range(1, 26)] + [(str(b), n) for n in range(11, 26)])
    # the rows' line numbers are b's own: line 11 of b is the log's line 26
    got = dict(duckdb.sql(
        f"select line_number, request_id from read_parquet('{data}/date=*/*.parquet') where source = '{b}'").fetchall())
    assert got[11] == "00000000-0000-4000-8000-000000000025"
    # b again: the same content, skipped
    assert "skipped as already ingested 1" in run(monkeypatch, capsys, "ingest", b, "--data", data)[2]
    assert rows(data) == 40


def test_a_capture_whose_lines_are_all_the_end_of_an_earlier_one_is_skipped(tmp_path, monkeypatch, capsys, chunk):
    data = tmp_path / "data"
    lines = log_lines(40)
    a, c = write_log(tmp_path / "cap-10h.log", lines[:25]), write_log(tmp_path / "last.log", lines[15:25])
    assert run(monkeypatch, capsys, "ingest", a, "--data", data)[0] == 0
    code, _, err = run(monkeypatch, capsys, "ingest", c, "--data", data)
    assert code == 0, err
    assert f"{c}: its lines were ingested already (with {a}); skipped" in err
    assert "skipped as already ingested 1" in err and rows(data) == 25
    assert len(check_consistent(data)["inputs"]) == 1


def test_a_noise_line_in_the_overlap_is_skipped_with_it(tmp_path, monkeypatch, capsys, chunk):
    data = tmp_path / "data"
    a, b = captures(tmp_path, noise_at=20)  # (b's line 6)
    assert run(monkeypatch, capsys, "ingest", a, "--data", data)[0] == 0
    code, _, err = run(monkeypatch, capsys, "ingest", b, "--data", data)
    assert code == 0, err
    assert f"{b}: its first 11 lines were ingested already (the end of {a}); read from line 12" in err
    m = check_consistent(data)
    assert [(e["read"], e["noise"]) for e in m["inputs"]] == [(26, 1), (15, 0)]
    assert rows(data) == 40


def test_a_capture_that_overlaps_nothing_is_ingested_whole_and_reads_no_file_of_the_dataset(tmp_path, monkeypatch,
                                                                                            capsys):
    """No ingested input's time range holds its first line's time: no dataset file is read (no look-up);
    into a new dataset, not even its first lines are parsed for it."""
    import logpipe.ingest
    import logpipe.ingested

    looked, parsed = [], []
    real_stored, real_read = logpipe.ingested.Ingested._stored, logpipe.ingest.read_head
    monkeypatch.setattr(logpipe.ingested.Ingested, "_stored", lambda self, rows, only=None: looked.append(rows) or
                        real_stored(self, rows, only))
    monkeypatch.setattr(logpipe.ingest, "read_head", lambda *a: parsed.append(a) or real_read(*a))
    data = tmp_path / "data"
    lines = log_lines(40)
    a, b = write_log(tmp_path / "a.log", lines[:20]), write_log(tmp_path / "b.log", lines[20:])
    assert run(monkeypatch, capsys, "ingest", a, "--data", data)[0] == 0
    assert not parsed
    code, _, err = run(monkeypatch, capsys, "ingest", b, "--data", data)
    assert code == 0, err
    assert "ingested already" not in err
    assert len(parsed) == 1 and not looked
    assert [(e["first_line"], e["read"]) for e in check_consistent(data)["inputs"]] == [(1, 20), (1, 20)]
    assert rows(data) == 40


def test_force_reads_an_overlapping_capture_whole(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    a, b = captures(tmp_path)
    assert run(monkeypatch, capsys, "ingest", a, "--data", data)[0] == 0
    code, _, err = run(monkeypatch, capsys, "ingest", "--force", b, "--data", data)
    assert code == 0, err
    assert "ingested already" not in err
    assert [(e["first_line"], e["read"]) for e in manifest(data)["inputs"]] == [(1, 25), (1, 25)]
    assert rows(data) == 50


def test_captures_of_one_run_large_ones_committed_in_order(tmp_path, monkeypatch, capsys):
    """Inputs too large to share the workers are committed one by one, in order: the later capture
    finds the earlier one's rows (lanes.PARALLEL_MIN_BYTES lowered to make these large)."""
    import logpipe.ingest
    import logpipe.lanes

    monkeypatch.setattr(logpipe.lanes, "PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(logpipe.ingest, "is_small", logpipe.lanes.is_small)
    data = tmp_path / "data"
    a, b = captures(tmp_path)
    code, _, err = run(monkeypatch, capsys, "ingest", a, b, "--data", data)
    assert code == 0, err
    assert f"{b}: its first 10 lines were ingested already (the end of {a}); read from line 11" in err
    assert rows(data) == 40


@pytest.mark.parametrize("holders", [4, 6], ids=["few-enough", "pods-of-the-same-hours"])
def test_a_capture_whose_time_many_inputs_hold_is_not_looked_up(tmp_path, monkeypatch, capsys, holders):
    """A directory of pods' logs of the same hours: every earlier input's time range holds a new
    input's first time, and a look-up per input in all their files made a second run of 300 pods'
    logs 3.2 → 16.5 s. Past OVERLAP_HOLDERS (4) such inputs none is made, and the capture is read
    whole (as before overlaps were looked for); at or under it, its overlap is found."""
    import logpipe.ingest
    import logpipe.ingested

    looked = []
    real_stored = logpipe.ingested.Ingested._stored
    monkeypatch.setattr(logpipe.ingested.Ingested, "_stored", lambda self, rows, only=None: looked.append(rows) or
                        real_stored(self, rows, only))
    data = tmp_path / "data"
    lines = log_lines(60)
    pods = [write_log(tmp_path / f"pod-{k}.log", lines[k:40:holders]) for k in range(holders)]  # (each 0-39 s)
    assert run(monkeypatch, capsys, "ingest", *pods, "--data", data)[0] == 0
    later = write_log(tmp_path / "pod-0-later.log", lines[20:40:holders] + lines[40:])  # (pod 0's last lines, then new)
    code, _, err = run(monkeypatch, capsys, "ingest", later, "--data", data)
    assert code == 0, err
    overlap = len(lines[20:40:holders])
    if holders > logpipe.ingest.OVERLAP_HOLDERS:
        assert "ingested already" not in err and not looked
        assert rows(data) == 40 + overlap + 20
    else:
        assert f"its first {overlap} lines were ingested already (the end of {pods[0]})" in err and looked
        assert rows(data) == 60
