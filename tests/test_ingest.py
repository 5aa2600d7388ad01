"""logpipe ingest: counts against the manifest, idempotency, grown files, --force, compressed and
corrupt inputs, bad paths, reject policies, and a real kill -9 test."""
from __future__ import annotations

import bz2
import datetime as dt
import functools
import gzip
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import generated_lines, run_logpipe

from logpipe.cli import main
from logpipe.ingest import AHEAD_INPUTS, LAUNCH_INPUTS
from logpipe.batches import Counts
from logpipe.parse import parse_lines
from logpipe.unpack import unpack

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_logs"
SAMPLE_FILES = sorted(p for p in SAMPLES.iterdir() if p.is_file() and not p.name.startswith("."))
GOOD = SAMPLES / "waypoint-egress-1.23.log"


GENERATED = 24_000  # (lines of the one generation gen_lines takes its lines from)


def gen_lines(n: int, seed: int) -> list[str]:
    """Realistic access lines: bench/generate.py when present, else the waypoint sample repeated.
    ``n`` lines of one generation shared by the module, from where ``seed`` says: each generation
    costs ~0.4 s before its first line (seed 5's are its own first lines, as before)."""
    if (ROOT / "bench" / "generate.py").exists():
        if n > GENERATED:
            return generated_lines(n, seed)
        start = (seed - 5) * 1000 % (GENERATED - n + 1)
        return generated_lines(GENERATED, 5)[start:start + n]
    base = [ln for ln in GOOD.read_text().splitlines() if ln.strip()]
    return [base[(i + seed) % len(base)] for i in range(n)]


def write_log(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(ln + "\n" for ln in lines))
    return path


def run(monkeypatch, capsys, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    """Run the CLI in-process exactly as a user would (main() maps errors to exit codes)."""
    monkeypatch.setattr(sys, "argv", ["logpipe", *map(str, args)])
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(stdin))))
    with pytest.raises(SystemExit) as e:
        main()
    cap = capsys.readouterr()
    return e.value.code, cap.out, cap.err


def manifest(data: Path) -> dict:
    return json.loads((data / "_manifest.json").read_text())


def rows(data: Path, where: str = "true") -> int:
    files = list(data.glob("date=*/*.parquet"))
    if not files:
        return 0
    sql = f"select count(*) from read_parquet('{data}/date=*/*.parquet', hive_partitioning=true) where {where}"
    return duckdb.sql(sql).fetchall()[0][0]


def keys(data: Path) -> list[tuple[str, int]]:
    if not list(data.glob("date=*/*.parquet")):
        return []
    sql = f"select source, line_number from read_parquet('{data}/date=*/*.parquet') order by all"
    return duckdb.sql(sql).fetchall()


def reject_keys(data: Path) -> list[tuple[str, int]]:
    if not list(data.glob("_rejects/*.parquet")):
        return []
    return duckdb.sql(f"select source, line_number from read_parquet('{data}/_rejects/*.parquet') order by all").fetchall()


def check_consistent(data: Path) -> dict:
    """Every entry complete, read = parsed + rejected + blank, its part files (its share of a shared
    one) hold exactly its parsed rows and its reject files (likewise) its rejects, the dataset holds
    exactly the manifest's parsed rows and rejects, each (source, line) once."""
    m = manifest(data)
    shared = m.get("shared", {})  # files merged across inputs: how many rows of each are whose
    for rel, owners in shared.items():
        assert pq.read_metadata(data / rel).num_rows == sum(n for _, n in owners), rel

    def held(e: dict, files: list[str]) -> int:
        return sum(sum(n for o, n in shared[p] if o == e["id"]) if p in shared else pq.read_metadata(data / p).num_rows
                   for p in files)

    for e in m["inputs"]:
        assert e["state"] == "complete", e
        assert e["read"] == e["parsed"] + e["noise"] + e["malformed"] + e["blank"] + e.get("joined", 0), e
        assert held(e, e["parts"]) == e["parsed"], e
        assert held(e, e["rejects"]) == e["noise"] + e["malformed"], e
    listed = {p for e in m["inputs"] for p in e["parts"]}
    assert {str(p.relative_to(data)) for p in data.glob("date=*/*.parquet")} == listed
    assert {str(p.relative_to(data)) for p in data.glob("_rejects/*.parquet")} == {p for e in m["inputs"]
                                                                                  for p in e["rejects"]}
    assert rows(data) == sum(e["parsed"] for e in m["inputs"])
    k = keys(data)
    assert len(k) == len(set(k))
    k = reject_keys(data)
    assert len(k) == len(set(k)) == sum(e["noise"] + e["malformed"] for e in m["inputs"])
    assert not list(data.rglob("*.tmp"))
    return m


# ---- the samples --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def samples_ingested(tmp_path_factory) -> tuple:
    """Every sample ingested by one `logpipe ingest` (test_ingest_sample_logs's run), its stderr and
    stdout, its manifest checked (check_consistent), and its rows per source: made once for the module.
    Each sample is an entry of its own, read from its first line (none is another's copy or start),
    so test_manifest_counts_match_the_parser reads its entry here rather than ingesting it alone
    (31 ingests, ~3 s of CPU)."""
    data = tmp_path_factory.mktemp("samples") / "data"
    got = run_logpipe("ingest", SAMPLES, "--data", data, "--max-reject-ratio", "1")
    assert got.returncode == 0, got.stderr
    by_source = dict(duckdb.sql(f"select source, count(*) from read_parquet('{data}/date=*/*.parquet') group by all")
                     .fetchall())
    return data, got, check_consistent(data), by_source


def test_ingest_sample_logs(samples_ingested):
    data, got, m, _ = samples_ingested
    err = got.stderr
    assert got.stdout == ""  # data goes to the dataset, talk to stderr
    assert len(m["inputs"]) >= len(SAMPLE_FILES)  # another writer may add samples meanwhile
    assert f"inputs {len(m['inputs'])}: ingested {len(m['inputs'])}," in err
    parsed = sum(e["parsed"] for e in m["inputs"])
    assert parsed > 0
    assert f"rows written {parsed} " in err
    assert "date range" in err and "MB/s" in err
    rejected = duckdb.sql(f"select count(*) from read_parquet('{data}/_rejects/*.parquet')").fetchall()[0][0]
    assert rejected == sum(e["noise"] + e["malformed"] for e in m["inputs"])


@pytest.mark.parametrize("sample", SAMPLE_FILES, ids=lambda p: p.name)
def test_manifest_counts_match_the_parser(samples_ingested, sample):
    _, _, m, by_source = samples_ingested  # (check_consistent checked every entry there)
    (entry,) = [e for e in m["inputs"] if e["path"] == str(sample)]
    want = Counts()
    with open(sample, "rb") as f, unpack(io.BufferedReader(f))[0] as text:  # (a document's lines: its records')
        lines = text.read().splitlines(keepends=True)
    for batch in parse_lines(lines, str(sample)):
        want.add(batch)
    got = {k: entry[k] for k in ("read", "parsed", "noise", "malformed", "blank")}
    assert got == {k: getattr(want, k) for k in got}
    assert entry["size"] == sample.stat().st_size and entry["bytes_end"] == sum(map(len, lines))
    assert by_source.get(str(sample), 0) == entry["parsed"]


# ---- idempotency --------------------------------------------------------------------------------------


def test_same_file_twice_adds_nothing(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    assert run(monkeypatch, capsys, "ingest", GOOD, "--data", data)[0] == 0
    before = rows(data)
    code, _, err = run(monkeypatch, capsys, "ingest", GOOD, "--data", data)
    assert code == 0
    assert "skipped as already ingested 1" in err and "rows written 0" in err
    assert rows(data) == before > 0
    assert len(check_consistent(data)["inputs"]) == 1


def test_renamed_copy_is_recognised(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    copy = tmp_path / "logs" / "rotated.log.1"
    copy.parent.mkdir()
    shutil.copy(GOOD, copy)
    assert run(monkeypatch, capsys, "ingest", GOOD, "--data", data)[0] == 0
    code, _, err = run(monkeypatch, capsys, "ingest", copy, "--data", data)
    assert code == 0
    assert f"{copy}: same content as {GOOD}" in err
    assert len(check_consistent(data)["inputs"]) == 1


@pytest.mark.parametrize("compress", [None, gzip.compress], ids=["plain", "gzip-member"])
def test_grown_file_ingests_only_new_lines(tmp_path, monkeypatch, capsys, compress):
    data, log = tmp_path / "data", tmp_path / "live.log"
    lines = gen_lines(300, seed=3)
    first, more = "".join(x + "\n" for x in lines[:200]).encode(), "".join(x + "\n" for x in lines[200:]).encode()
    log.write_bytes(compress(first) if compress else first)
    assert run(monkeypatch, capsys, "ingest", log, "--data", data)[0] == 0
    n1 = rows(data)
    with open(log, "ab") as f:  # a live log appended to (gzip: one more member, as `cat a.gz b.gz`)
        f.write(compress(more) if compress else more)
    code, _, err = run(monkeypatch, capsys, "ingest", log, "--data", data)
    assert code == 0, err
    m = check_consistent(data)
    assert [e["first_line"] for e in m["inputs"]] == [1, 201]
    assert m["inputs"][1]["read"] == 100
    assert rows(data) == n1 + m["inputs"][1]["parsed"]
    assert [ln for _, ln in keys(data)] == sorted(ln for _, ln in keys(data))
    assert "grew since the last ingest" in err
    # the whole file once more: nothing new; a renamed copy of it: nothing new either
    shutil.copy(log, tmp_path / "copy.log")
    assert "skipped as already ingested 2" in run(monkeypatch, capsys, "ingest", log, tmp_path / "copy.log",
                                                  "--data", data)[2]


def test_grown_file_whose_last_line_was_cut_is_read_whole_again(tmp_path, monkeypatch, capsys):
    data, log = tmp_path / "data", tmp_path / "live.log"
    lines = gen_lines(20, seed=7)
    text = "".join(x + "\n" for x in lines)
    cut = text.index("\n", len(text) // 2) + 15  # mid-line, as a writer caught mid-write
    log.write_text(text[:cut])
    assert run(monkeypatch, capsys, "ingest", log, "--data", data)[0] == 0
    log.write_text(text)
    code, _, err = run(monkeypatch, capsys, "ingest", log, "--data", data)
    assert code == 0 and "re-ingesting it whole" in err
    (entry,) = check_consistent(data)["inputs"]
    assert entry["read"] == 20 and entry["ends_newline"] is True


def test_force_replaces_rows_instead_of_duplicating(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    assert run(monkeypatch, capsys, "ingest", GOOD, "--data", data)[0] == 0
    before, old_parts = rows(data), set(data.glob("date=*/*.parquet"))
    code, _, err = run(monkeypatch, capsys, "ingest", GOOD, "--data", data, "--force")
    assert code == 0 and "skipped as already ingested 0" in err
    m = check_consistent(data)
    assert len(m["inputs"]) == 1 and rows(data) == before
    assert not old_parts & set(data.glob("date=*/*.parquet"))


def test_force_on_a_grown_file_replaces_every_earlier_piece(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    lines = gen_lines(150, seed=4)
    log = write_log(tmp_path / "a.log", lines[:100])
    run(monkeypatch, capsys, "ingest", log, "--data", data)
    write_log(log, lines)
    run(monkeypatch, capsys, "ingest", log, "--data", data)
    assert len(manifest(data)["inputs"]) == 2
    code, _, _ = run(monkeypatch, capsys, "ingest", log, "--data", data, "--force")
    assert code == 0
    (entry,) = check_consistent(data)["inputs"]
    assert entry["read"] == 150 and rows(data) == entry["parsed"]


def per_pod_logs(tmp_path: Path, pods: int, lines: int = 40, seed: int = 21) -> list[Path]:
    every = gen_lines(pods * lines, seed=seed)
    return [write_log(tmp_path / "logs" / f"pod-{i:02}.log", every[i * lines:(i + 1) * lines]) for i in range(pods)]


def test_many_small_inputs_are_merged_into_few_files_and_force_still_replaces_one(tmp_path, monkeypatch, capsys):
    """A file per input and day costs queries (600 files: count(*) ~7x slower than one file): ingest
    merges a day directory's small files across inputs once it holds 8, and --force of one input
    still replaces exactly its rows, taken out of the merged file."""
    data = tmp_path / "data"
    logs = per_pod_logs(tmp_path, 12)
    code, _, err = run(monkeypatch, capsys, "ingest", *logs[:7], "--data", data)
    assert code == 0 and "merged" not in err  # 7 files a day: left as they are
    code, _, err = run(monkeypatch, capsys, "ingest", *logs[7:], "--data", data)
    assert code == 0 and re.search(r"^merged 12 small part files into 1$", err, re.M), err
    days = {p.parent for p in data.glob("date=*/*.parquet")}
    assert len(list(data.glob("date=*/*.parquet"))) == len(days)
    m = check_consistent(data)
    assert len(m["inputs"]) == 12 and m["shared"]
    want = keys(data)
    old_id = next(e["id"] for e in m["inputs"] if e["path"] == str(logs[3]))
    code, _, err = run(monkeypatch, capsys, "ingest", logs[3], "--data", data, "--force")
    assert code == 0 and "merged" not in err, err
    m = check_consistent(data)
    assert keys(data) == want and len(m["inputs"]) == 12
    assert old_id not in {o for owners in m["shared"].values() for o, _ in owners}
    (new,) = [e for e in m["inputs"] if e["path"] == str(logs[3])]
    assert not set(new["parts"]) & set(m["shared"])  # its rows are in its own file again
    # every input again: the merged file held only their rows, and goes; the new files are merged
    code, _, err = run(monkeypatch, capsys, "ingest", *logs, "--data", data, "--force")
    assert code == 0 and "merged 12 small part files into 1" in err, err
    m = check_consistent(data)
    assert keys(data) == want and len(m["inputs"]) == 12 and len(m["shared"]) == len(days)


def test_the_reject_files_of_many_small_inputs_are_merged_and_force_still_replaces_one_inputs(tmp_path, monkeypatch,
                                                                                              capsys):
    """Each input with a reject (a noise line) writes its own reject file, and every connection binds
    them all (2,000: a query's connection ~0.2 s slower): an ingest merges them as it merges its part
    files, and --force of one input takes exactly its rejects out of the merged file."""
    data = tmp_path / "data"
    noise = "2024-07-18T16:13:58.198412Z\tinfo\tads\tADS: new connection for node:sleep-{}"
    logs = [write_log(log, [noise.format(i), *log.read_text().splitlines()])
            for i, log in enumerate(per_pod_logs(tmp_path, 12))]
    code, _, err = run(monkeypatch, capsys, "ingest", *logs[:7], "--data", data)
    assert code == 0 and "merged" not in err and len(list(data.glob("_rejects/*.parquet"))) == 7
    code, _, err = run(monkeypatch, capsys, "ingest", *logs[7:], "--data", data)
    assert code == 0 and re.search(r"^merged 12 small reject files into 1$", err, re.M), err
    assert re.search(r"^merged 12 small part files into 1$", err, re.M), err
    (merged,) = data.glob("_rejects/*.parquet")
    m = check_consistent(data)
    assert ds_rel(data, merged) in m["shared"] and all(e["rejects"] == [ds_rel(data, merged)] for e in m["inputs"])
    want = reject_keys(data)
    assert len({source for source, _ in want}) == 12  # (an input of the generated lines may have more)
    code, _, err = run(monkeypatch, capsys, "ingest", logs[3], "--data", data, "--force")
    assert code == 0, err
    m = check_consistent(data)
    assert reject_keys(data) == want and len(list(data.glob("_rejects/*.parquet"))) == 2
    (new,) = [e for e in m["inputs"] if e["path"] == str(logs[3])]
    assert not set(new["rejects"]) & set(m["shared"])  # its reject in its own file again
    assert [o for owners in m["shared"].values() for o, _ in owners].count(new["id"]) == 0


def ds_rel(data: Path, path: Path) -> str:
    return str(path.relative_to(data))


def test_the_merge_at_an_ingests_end_takes_only_small_files_of_the_days_it_wrote(tmp_path, monkeypatch, capsys):
    """An ingest merges files under INGEST_SMALL_ROWS rows (a large input's ~52k-row parts read as fast
    as merged ones: merging them would double its ingest) in the day directories it wrote to (not
    every file's footer of a long-lived dataset); `logpipe compact` merges every file under a row
    group, of every day."""
    import pyarrow as pa

    from logpipe import compaction
    from logpipe.dataset import Dataset

    data = tmp_path / "data"
    ds = Dataset(data, create=True)
    old_day = pa.table({"start_time": pa.array([dt.datetime(2020, 1, 1, 12, tzinfo=dt.timezone.utc)] * 3,
                                               pa.timestamp("ms", tz="UTC")), "source_file": ["s.log"] * 3})
    for i in range(8):  # another day's small files, of 8 streams (a stream merges only its own)
        ds.append(old_day, prefix=f"stream{i}")
    monkeypatch.setattr(compaction, "INGEST_SMALL_ROWS", 30)
    code, _, err = run(monkeypatch, capsys, "ingest", *per_pod_logs(tmp_path, 9, lines=40), "--data", data)
    assert code == 0 and "merged" not in err, err  # 40-line files: not small here; 2020-01-01 not written
    assert len(list(data.glob("date=2020-01-01/*.parquet"))) == 8
    code, _, err = run(monkeypatch, capsys, "ingest", *per_pod_logs(tmp_path / "b", 9, lines=20, seed=5),
                       "--data", data)
    assert code == 0 and re.search(r"^merged 9 small part files into 1$", err, re.M), err
    assert len(list(data.glob("date=2020-01-01/*.parquet"))) == 8
    code, _, err = run(monkeypatch, capsys, "compact", "--data", data)
    (merged,) = data.glob("date=2020-01-01/*.parquet")
    assert code == 0 and pq.read_metadata(merged).num_rows == 24, err


def test_the_merge_at_an_ingests_end_waits_for_a_query_and_says_so(tmp_path, monkeypatch):
    """The ingest runs in a thread of this process (not a process of its own: ~0.5 s of CPU, its
    imports): the readers' lock is a flock, which another open of its file meets here as it would in
    another process."""
    import threading

    from logpipe import db, ingest
    from logpipe.dataset import Dataset

    class Said(io.StringIO):  # (a line said: the event set once it ends)
        def __init__(self):
            super().__init__()
            self.waiting = threading.Event()

        def write(self, s):
            n = super().write(s)
            if "waiting" in self.getvalue() and self.getvalue().endswith("\n"):
                self.waiting.set()
            return n

    data = tmp_path / "data"
    Dataset(data, create=True)  # (its readers' lock, to hold)
    logs = per_pod_logs(tmp_path, 9)
    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    err, done = Said(), []

    def ingest_logs():
        try:
            done.append(ingest.ingest_paths([str(p) for p in logs], str(data), err=err, progress=False))
        except BaseException as e:  # noqa: BLE001 - said below
            done.append(e)

    with db.reading(data):
        thread = threading.Thread(target=ingest_logs)
        thread.start()
        assert err.waiting.wait(60), err.getvalue()
        said = next(line for line in err.getvalue().splitlines(keepends=True) if "waiting" in line)
        assert said == f"logpipe: waiting for the queries reading {data} to finish, to merge small part files\n"
        assert thread.is_alive() and len(check_consistent(data)["inputs"]) == 9  # committed, merged once we are done
    thread.join(60)
    assert len(done) == 1 and not isinstance(done[0], BaseException), done
    assert "merged 9 small part files into 1" in err.getvalue(), err.getvalue()
    check_consistent(data)


def test_a_compaction_that_fails_leaves_the_ingested_rows_and_says_so(tmp_path, monkeypatch, capsys):
    import errno

    from logpipe import compaction

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(compaction, "write_hidden_pieces", full)
    data = tmp_path / "data"
    code, _, err = run(monkeypatch, capsys, "ingest", *per_pod_logs(tmp_path, 9), "--data", data)
    assert code == 0
    assert err.splitlines()[-1] == ("logpipe: compaction skipped: No space left on device; the rows are stored"
                                    " (`logpipe compact` merges the small part files later)")
    assert len(check_consistent(data)["inputs"]) == 9 and len(list(data.glob("date=*/*.parquet"))) >= 9


# ---- inputs -------------------------------------------------------------------------------------------


def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize("first, then, new_lines", [
    ("a.log", "a.log.1.gz", 0),       # logrotate: the plain file, then the same lines gzipped
    ("a.log.gz", "copy.log", 0),      # the archive first, then a plain copy of its text
    ("a.log", "a.log.1.bz2", 0),
    ("start.log", "a.log.1.gz", 100),  # read while it grew, then rotated and compressed whole
])
def test_a_rotated_and_compressed_log_is_known_by_its_text(tmp_path, monkeypatch, capsys, first, then, new_lines):
    """An input is known by its text, not only its bytes: a gzipped copy of an ingested log (logrotate
    makes access.log.1.gz of access.log.1) was ingested again, every row twice in every report."""
    import bz2
    import gzip

    lines = gen_lines(300, seed=5)
    data, text = tmp_path / "data", "".join(x + "\n" for x in lines).encode()
    head = "".join(x + "\n" for x in lines[:200]).encode() if new_lines else text

    def write(name: str, body: bytes) -> Path:
        packed = gzip.compress(body) if name.endswith(".gz") else bz2.compress(body) if name.endswith(".bz2") else body
        (tmp_path / name).write_bytes(packed)
        return tmp_path / name

    assert run(monkeypatch, capsys, "ingest", write(first, head), "--data", data)[0] == 0
    before = rows(data)
    code, _, err = run(monkeypatch, capsys, "ingest", write(then, text), "--data", data)
    assert code == 0, err
    assert rows(data) == 300 and before == 300 - new_lines
    if new_lines:
        assert f"{then}: its first 200 lines are {tmp_path / first}'s, ingested before; read lines 201 to 300" in err
    else:
        assert f"{then}: same content as {tmp_path / first}, already ingested; skipped" in err
    check_consistent(data)


@pytest.mark.parametrize("names", [("a.log", "a.log.1.gz"), ("a.log.gz", "copy.log")])
def test_a_log_and_its_compressed_copy_in_one_run_are_one_input(tmp_path, monkeypatch, capsys, names):
    """Both small, in one run: the second is decided while the first is still being read, and waits for
    it (its stand-in is known by its text too), then is skipped as the same content."""
    text = "".join(x + "\n" for x in gen_lines(50, seed=6)).encode()
    paths = [tmp_path / n for n in names]
    for p in paths:
        p.write_bytes(gzip.compress(text) if p.suffix == ".gz" else text)
    code, _, err = run(monkeypatch, capsys, "ingest", *paths, "--data", tmp_path / "data")
    assert code == 0, err
    assert f"{paths[1]}: same content as {paths[0]}, already ingested; skipped" in err
    (entry,) = check_consistent(tmp_path / "data")["inputs"]
    assert rows(tmp_path / "data") == entry["parsed"]


def test_a_file_truncated_while_read_is_not_ingested(tmp_path, monkeypatch, capsys):
    """A file that shrinks between being sized and read (logrotate's copytruncate) is no one
    version of itself: not ingested, said in one line, nothing left behind; the next run reads it."""
    from logpipe import ingest

    data, log = tmp_path / "data", write_log(tmp_path / "live.log", gen_lines(300, seed=5))
    probe = ingest._Run.probe

    def truncate_after_sizing(self, inp, *args):
        with open(log, "r+b") as f:
            f.truncate(log.stat().st_size // 2)
        return probe(self, inp, *args)

    monkeypatch.setattr(ingest._Run, "probe", truncate_after_sizing)
    code, _, err = run(monkeypatch, capsys, "ingest", log, "--data", data)
    assert code == 1
    assert f"logpipe: error: {log}: changed while being read (read to byte" in err
    assert "truncated or rewritten, as by logrotate's copytruncate?" in err
    assert not data.exists()  # (the dataset it made, holding nothing, is not left: test_data_dir_mistakes.py)
    assert not [p for p in data.rglob("*.parquet")] and not [p for p in data.rglob(".*.tmp")]
    monkeypatch.setattr(ingest._Run, "probe", probe)
    assert run(monkeypatch, capsys, "ingest", log, "--data", data)[0] == 0
    assert check_consistent(data)["inputs"][0]["size"] == log.stat().st_size


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, _zstd], ids=["gzip", "bz2", "zstd"])
def test_compressed_inputs_are_detected_by_content(tmp_path, monkeypatch, capsys, compress):
    plain = tmp_path / "plain"
    (tmp_path / "in").mkdir()
    packed = tmp_path / "in" / "archive.log"  # no telling extension
    packed.write_bytes(compress(GOOD.read_bytes()))
    run(monkeypatch, capsys, "ingest", GOOD, "--data", plain)
    code, _, err = run(monkeypatch, capsys, "ingest", packed, "--data", tmp_path / "packed")
    assert code == 0, err
    assert rows(tmp_path / "packed") == rows(plain) > 0
    assert manifest(tmp_path / "packed")["inputs"][0]["compression"] != "plain"


def test_utf16_text_is_ingested_and_grows_as_text(tmp_path, monkeypatch, capsys):
    """A log saved as UTF-16 (PowerShell 5's `>`) is text, not a "binary file": its rows are the UTF-8
    file's, it is skipped once ingested, and lines appended to it are read on from where it stopped."""
    text = GOOD.read_text(encoding="utf-8").splitlines(keepends=True)
    half = len(text) // 2
    plain, log = tmp_path / "plain.log", tmp_path / "in" / "saved.log"
    log.parent.mkdir()
    plain.write_text("".join(text), encoding="utf-8")
    log.write_bytes("".join(text[:half]).encode("utf-16"))
    code, _, err = run(monkeypatch, capsys, "ingest", log, "--data", tmp_path / "d16")
    assert code == 0 and "binary file" not in err, err
    assert manifest(tmp_path / "d16")["inputs"][0]["compression"] == "utf-16"
    assert "skipped as already ingested 1" in run(monkeypatch, capsys, "ingest", log, "--data", tmp_path / "d16")[2]
    with open(log, "ab") as f:  # appended as a UTF-16LE writer goes on: no second mark
        f.write("".join(text[half:]).encode("utf-16-le"))
    code, _, err = run(monkeypatch, capsys, "ingest", log, "--data", tmp_path / "d16")
    assert code == 0 and f"read lines {half + 1} to {len(text)}" in err, err
    run(monkeypatch, capsys, "ingest", plain, "--data", tmp_path / "d8")
    assert rows(tmp_path / "d16") == rows(tmp_path / "d8") > 0
    check_consistent(tmp_path / "d16")


def test_stdin(tmp_path, monkeypatch, capsys):
    """stdin (no size: as large an input as any) in this process, with its workers."""
    data = tmp_path / "data"
    code, _, err = run(monkeypatch, capsys, "ingest", "-", "--data", data, stdin=GOOD.read_bytes())
    assert code == 0, err
    m = check_consistent(data)
    assert rows(data, "source = '<stdin>'") == m["inputs"][0]["parsed"] > 0


@functools.lru_cache(maxsize=1)
def packed_log() -> tuple[int, bytes]:
    """A gzip of 3,000 generated lines (~180 kB, many deflate blocks: one damaged half-way has whole
    lines before it; 200 bytes of 0xff there make a block zlib refuses, as at 20,000 lines, not one
    that only fails the CRC at the end, as at 4,000-6,000), its line count: made once for the
    damaged-archive tests."""
    lines = gen_lines(3000, seed=5)
    return len(lines), gzip.compress("".join(x + "\n" for x in lines).encode())


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_corrupt_gzip_keeps_lines_before_the_damage_and_continues(tmp_path, monkeypatch, capsys, damage):
    """A damaged archive keeps its complete lines before the damage, and the others go on (exit 1); each
    later run says it again (exit 1: a nightly job's status is not 0 while the dataset lacks its rest),
    until an intact copy takes its place: then its lines after the damage are read, none twice."""
    import zlib

    data, logs = tmp_path / "data", tmp_path / "logs"
    n, packed = packed_log()
    half = len(packed) // 2
    broken = packed[:half] if damage == "truncated" else packed[:half] + b"\xff" * 200 + packed[half + 200:]
    with pytest.raises(EOFError if damage == "truncated" else zlib.error):  # (zlib's "invalid block type")
        gzip.decompress(broken)
    logs.mkdir()
    (logs / "a-broken.log.gz").write_bytes(broken)
    shutil.copy(GOOD, logs / "b-good.log")
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 1
    errors = [ln for ln in err.splitlines() if ln.startswith("logpipe: error:")]
    assert any("a-broken.log.gz" in ln and "corrupt or truncated" in ln and "lines read" in ln for ln in errors), err
    m = check_consistent(data)
    entry = next(e for e in m["inputs"] if e["path"].endswith("a-broken.log.gz"))
    assert 0 < entry["read"] < n and entry["error"]
    assert rows(data, "source like '%b-good.log'") > 0
    assert rows(data, "source like '%a-broken%'") == entry["parsed"] > 0
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)  # nothing new: the damage is said again
    assert code == 1 and err.splitlines()[0] == (
        f"logpipe: error: {logs / 'a-broken.log.gz'}: damaged archive, ingested before up to its damage"
        f" ({entry['read']} lines), the rest unreadable: replace it with an intact copy (its lines after the damage are"
        " read then), or move it out of the inputs")
    assert "inputs 2: ingested 0, skipped as already ingested 2 (1 only up to the damage), errors 1\n" in err
    assert err.splitlines()[-1] == "logpipe: error: 1 input(s) had errors (see above); everything else was ingested"
    code, _, err = run(monkeypatch, capsys, "ingest", logs / "a-broken.log.gz", "--data", data)
    assert code == 1 and err.splitlines()[-1] == (  # (alone: not "nothing was ingested")
        "logpipe: error: 1 input(s) had errors (see above); the complete lines before the damage were ingested")
    (logs / "a-broken.log.gz").write_bytes(packed)  # an intact copy in its place
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 0 and (f"a-broken.log.gz: intact now, ingested before up to its damage; read lines {entry['read'] + 1}"
                          f" to {n}\n") in err, err
    m = check_consistent(data)  # (each line once)
    assert sum(e["read"] for e in m["inputs"] if e["path"].endswith("a-broken.log.gz")) == n
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 0 and "skipped as already ingested 2\n" in err


def test_a_damaged_archive_read_on_from_an_earlier_damage_says_all_its_lines_before_its_own(tmp_path, monkeypatch,
                                                                                         capsys):
    """A truncated archive replaced by a longer copy, truncated too: the second run reads on from the
    first damage to the second; the run after says how many lines are in before the damage, all of them."""
    data, log = tmp_path / "data", tmp_path / "a.log.gz"
    packed = packed_log()[1]
    for cut in (len(packed) // 4, len(packed) // 2):
        log.write_bytes(packed[:cut])
        code, _, err = run(monkeypatch, capsys, "ingest", log, "--data", data)
        assert code == 1 and "corrupt or truncated" in err
    first, second = manifest(data)["inputs"]
    assert second["first_line"] == first["line_end"] + 1 and second["read"] < second["line_end"]
    code, _, err = run(monkeypatch, capsys, "ingest", log, "--data", data)
    assert code == 1 and f"ingested before up to its damage ({second['line_end']} lines)" in err


def test_bad_paths_each_get_a_clear_message(tmp_path, monkeypatch, capsys):
    data, logs = tmp_path / "data", tmp_path / "logs"
    logs.mkdir()
    shutil.copy(GOOD, logs / "good.log")
    (logs / "core.bin").write_bytes(b"\x7fELF\x00\x00\x01" * 100)
    code, _, err = run(monkeypatch, capsys, "ingest", logs, tmp_path / "missing.log", "--data", data)
    assert code == 1
    assert f"{tmp_path / 'missing.log'}: no such file or directory" in err
    assert "core.bin: binary file" in err
    assert rows(data) > 0  # the good file was ingested anyway
    assert "inputs 3: ingested 1" in err
    assert "Traceback" not in err


def test_an_only_input_that_fails_is_not_everything_else_ingested(tmp_path, monkeypatch, capsys):
    (tmp_path / "core.bin").write_bytes(b"\x7fELF\x00\x00\x01" * 100)
    code, _, err = run(monkeypatch, capsys, "ingest", tmp_path / "core.bin", "--data", tmp_path / "data")
    assert code == 1 and err.strip().splitlines()[-1] == (
        "logpipe: error: 1 input(s) had errors (see above); nothing was ingested")  # (not "everything else was")


def test_an_only_input_damaged_says_its_lines_before_the_damage_were_ingested(tmp_path, monkeypatch, capsys):
    packed = packed_log()[1]
    (tmp_path / "a.log.gz").write_bytes(packed[: len(packed) // 2])
    code, _, err = run(monkeypatch, capsys, "ingest", tmp_path / "a.log.gz", "--data", tmp_path / "data")
    assert code == 1 and rows(tmp_path / "data") > 0
    assert err.strip().splitlines()[-1] == (  # (it said "nothing was ingested", rows written)
        "logpipe: error: 1 input(s) had errors (see above); the complete lines before the damage were ingested")


def test_a_full_disk_is_one_error_after_the_summary_and_the_next_run_reads_on(tmp_path, monkeypatch, capsys):
    """A nightly job's disk fills up: one line that says so (not "internal error: OSError"), exit 1, the
    summary of what was committed before it; the run after it, with room, ingests the rest."""
    import errno

    from logpipe import parts

    data, logs = tmp_path / "data", tmp_path / "logs"
    logs.mkdir()
    shutil.copy(GOOD, logs / "a.log")
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 0
    shutil.copy(SAMPLES / "sidecar-outbound-1.22.log", logs / "b.log")
    shutil.copy(SAMPLES / "sidecar-inbound-1.22.log", logs / "c.log")
    write = parts._write_hidden

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(parts, "_write_hidden", full)
    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    # b.log's write failed; c.log (in-process: read after it) is not read: every input counted
    assert code == 1 and "inputs 3: ingested 0, skipped as already ingested 1, errors 1, not read 1\n" in err
    assert err.strip().splitlines()[-1] == (
        f"logpipe: error: cannot write to dataset directory {data}: No space left on device; free space (or move"
        " --data), then run the ingest again: it reads what was not ingested")
    monkeypatch.setattr(parts, "_write_hidden", write)
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 0 and "inputs 3: ingested 2, skipped as already ingested 1\n" in err
    check_consistent(data)


def test_a_full_disk_fails_only_the_input_it_stopped_in_a_group_of_small_inputs(tmp_path, monkeypatch):
    """Small inputs go to the workers together (one task: workers._stage_inputs) and commit together:
    a write that finds the disk full fails the input it was writing, not the group. The others' files
    were written: they commit before the run stops; the next run, with room, reads the one left."""
    import errno

    from logpipe import ingest, lanes, parts
    from logpipe.errors import DatasetError

    data, logs = tmp_path / "data", tmp_path / "logs"
    for k in range(4):
        write_log(logs / f"p{k}.log", gen_lines(60, seed=k))
    write = parts._write_hidden

    def full(table, final, *more):
        if table.column("source")[0].as_py().endswith("p2.log"):
            raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")
        return write(table, final, *more)

    monkeypatch.setattr(parts, "_write_hidden", full)
    tasks, real = [], ingest.stage_inputs_async
    monkeypatch.setattr(ingest, "stage_inputs_async", lambda pool, items, root: tasks.append(len(items)) or
                        real(pool, items, root))
    err = io.StringIO()
    with pytest.raises(DatasetError, match="No space left on device"):  # (one lane: the tasks run in this process)
        ingest.ingest_paths([str(logs)], str(data), err=err, progress=False, pool=lanes.WorkerPool(None, 1))
    assert tasks == [4]  # one group
    assert "inputs 4: ingested 3, skipped as already ingested 0, errors 1\nlines read 180," in err.getvalue()
    m = check_consistent(data)
    assert sorted(Path(e["path"]).name for e in m["inputs"]) == ["p0.log", "p1.log", "p3.log"]
    monkeypatch.setattr(parts, "_write_hidden", write)
    summary = ingest.ingest_paths([str(logs)], str(data), err=io.StringIO(), progress=False,
                                  pool=lanes.WorkerPool(None, 1))
    assert (summary.ingested, summary.skipped, summary.failed, summary.counts.read) == (1, 3, 0, 60)
    assert [e["read"] for e in check_consistent(data)["inputs"]] == [60] * 4  # every line a row or a reject, once


def test_only_missing_paths(tmp_path, monkeypatch, capsys):
    code, _, err = run(monkeypatch, capsys, "ingest", tmp_path / "nope", "--data", tmp_path / "data")
    assert code == 1 and err.strip() == f"logpipe: error: {tmp_path / 'nope'}: no such file or directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path, monkeypatch, capsys):
    log = tmp_path / "secret.log"
    shutil.copy(GOOD, log)
    log.chmod(0)
    code, _, err = run(monkeypatch, capsys, "ingest", log, "--data", tmp_path / "data")
    assert code == 1 and "permission denied" in err


def test_dataset_inside_the_input_directory_is_not_ingested(tmp_path, monkeypatch, capsys):
    shutil.copy(GOOD, tmp_path / "a.log")
    data = tmp_path / "logpipe-data"
    run(monkeypatch, capsys, "ingest", tmp_path, "--data", data)
    code, _, err = run(monkeypatch, capsys, "ingest", tmp_path, "--data", data)
    assert code == 0 and "inputs 1:" in err


def test_an_input_with_no_access_line_is_said_so(tmp_path, monkeypatch, capsys):
    """An application container's log (kubectl logs without -c istio-proxy): ingested, with a warning
    naming the likely causes, not a silent 0 rows."""
    log = tmp_path / "app.log"
    log.write_text("".join(f"2024-07-18T16:13:58.{i:03d}Z INFO handled request id={i}\n" for i in range(30)))
    code, _, err = run(monkeypatch, capsys, "ingest", log, "--data", tmp_path / "data")
    assert code == 0
    assert ("app.log: no access line among its 30 lines (30 not access-log output): Istio's access log is the "
            "istio-proxy container's (`kubectl logs POD -c istio-proxy`)") in err


# ---- reject policies --------------------------------------------------------------------------------

MALFORMED = SAMPLES / "malformed.log"


def test_the_summary_says_which_lines_were_not_stored(tmp_path, monkeypatch, capsys):
    """An input refused over --max-reject-ratio counts in "lines read", but none of it is stored: the
    summary says so (its malformed count matched no rejects in the dataset)."""
    code, _, err = run(monkeypatch, capsys, "ingest", MALFORMED, GOOD, "--data", tmp_path / "d")
    n = len(MALFORMED.read_text().splitlines())
    assert code == 1 and f"; {n} of them in inputs not ingested (over --max-reject-ratio), none stored\n" in err


@pytest.mark.parametrize(
    "args, code, ingested",
    [
        ([], 1, False),  # default --max-reject-ratio 0.1
        (["--max-reject-ratio", "1"], 0, True),
        (["--max-reject-ratio", "1", "--on-error", "fail"], 1, False),
    ],
)
def test_malformed_input_policies(tmp_path, monkeypatch, capsys, args, code, ingested):
    data = tmp_path / "data"
    got, _, err = run(monkeypatch, capsys, "ingest", MALFORMED, GOOD, "--data", data, *args)
    assert got == code, err
    # (--on-error fail stops at the first input: nothing ingested, the dataset it made is not left)
    paths = [e["path"] for e in check_consistent(data)["inputs"]] if data.exists() or not code else []
    assert (str(MALFORMED) in paths) == ingested
    if code:
        assert err.strip().splitlines()[-1].startswith("logpipe: error:")


def test_noise_does_not_count_towards_the_reject_ratio(tmp_path, monkeypatch, capsys):
    noise = "2024-07-18T16:13:58.198412Z\tinfo\tads\tADS: new connection for node:sleep-1"
    log = write_log(tmp_path / "noisy.log", [noise] * 50 + gen_lines(10, seed=6))
    code, _, err = run(monkeypatch, capsys, "ingest", log, "--data", tmp_path / "data")
    assert code == 0, err
    (entry,) = check_consistent(tmp_path / "data")["inputs"]
    assert entry["noise"] >= 50 and entry["malformed"] == 0


def _other_format(lines: list[str]) -> list[str]:
    """Access lines with a field Istio's layouts do not have (as a mesh's own format would add)."""
    import re

    return [re.sub(r'^(\[[^]]*\] "[^"]*") ', r"\1 x-extra ", x) for x in lines]


@pytest.mark.parametrize("extra, code, ingested", [([], 1, False), (["--max-reject-ratio", "1"], 0, True)])
def test_an_input_in_another_format_is_not_read_past_its_first_lines(tmp_path, monkeypatch, capsys,
                                                                      extra, code, ingested):
    """A malformed line costs ms (its diagnosis, Lark), so a large input whose first lines are
    mostly malformed is judged on them, not after hours; --max-reject-ratio 1 reads it all."""
    from logpipe import ingest
    from logpipe.parse import Parser

    monkeypatch.setattr(ingest, "PROBE_MIN_BYTES", 64 << 10)
    log = write_log(tmp_path / "other.log", _other_format(gen_lines(300, seed=8)))
    assert log.stat().st_size >= 64 << 10
    seen: list[int] = []
    real = Parser.parse_chunk
    monkeypatch.setattr(Parser, "parse_chunk", lambda self, body, *a, **k: seen.append(len(body)) or real(self, body, *a, **k))
    got, _, err = run(monkeypatch, capsys, "ingest", log, GOOD, "--data", tmp_path / "data", *extra)
    assert got == code, err
    paths = [e["path"] for e in check_consistent(tmp_path / "data")["inputs"]]
    assert (str(log) in paths) == ingested and str(GOOD) in paths
    if not ingested:
        assert f"logpipe: error: {log}: " in err and "of its first" in err and "not read further" in err
        assert sum(seen) - GOOD.stat().st_size <= ingest.PROBE_BYTES  # the probe only
        assert "had too many malformed lines" in err.splitlines()[-1]


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_stdin_is_probed_and_what_the_probe_read_is_read_again(tmp_path, monkeypatch, capsys, compress):
    """stdin has no size: it is always probed. Its first lines are read again afterwards, so a good
    stream loses nothing (plain or compressed); one in another format stops after them."""
    from logpipe import sources

    monkeypatch.setenv("LOGPIPE_WORKERS", "1")  # (stdin has no size: no pool spawned for it; test_stdin has one)
    good = "".join(x + "\n" for x in gen_lines(3000, seed=10)).encode()
    bad = "".join(x + "\n" for x in _other_format(gen_lines(3000, seed=10))).encode()
    pack = gzip.compress if compress else (lambda b: b)
    code, _, err = run(monkeypatch, capsys, "ingest", "-", "--data", tmp_path / "good", stdin=pack(good))
    assert code == 0, err
    (entry,) = check_consistent(tmp_path / "good")["inputs"]
    assert entry["read"] == 3000 and entry["bytes_read"] == len(good)
    assert sources._STREAMS["-"]["again"] == b"" and sources._STREAMS["-"]["taking"] is None  # read again, all of it
    code, _, err = run(monkeypatch, capsys, "ingest", "-", "--data", tmp_path / "bad", stdin=pack(bad))
    assert code == 1 and "<stdin>: " in err and "not read further" in err
    assert not (tmp_path / "bad").exists()  # (nothing ingested: the dataset it made is not left)
    # the lines the probe read add up in the summary, none stored (it said "lines read 0")
    read = int(re.search(r"lines read (\d+), parsed 0, rejected (\d+)", err)[1])
    assert read > 0 and f"rejected {read}" in err and f"{read} of them in inputs not ingested" in err


def test_read_head_of_stdin_uses_nothing_up(monkeypatch):
    from logpipe.sources import Input, iter_byte_chunks, read_head

    data = b"".join(b"line %d\n" % i for i in range(50000))
    for payload in (data, gzip.compress(data), b"", b"one line, no newline"):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(payload))))
        plain = gzip.decompress(payload) if payload.startswith(b"\x1f\x8b") else payload
        first, more = read_head(Input("-"), 1000), read_head(Input("-"), 60000)  # twice: still nothing lost
        assert plain.startswith(first) and plain.startswith(more) and len(more) >= len(first)
        assert b"".join(b for b, _ in iter_byte_chunks(Input("-"))) == plain


def test_a_large_input_in_a_known_format_passes_the_probe(tmp_path, monkeypatch, capsys):
    from logpipe import ingest

    monkeypatch.setattr(ingest, "PROBE_MIN_BYTES", 64 << 10)
    log = write_log(tmp_path / "good.log", gen_lines(300, seed=9))
    code, _, err = run(monkeypatch, capsys, "ingest", log, "--data", tmp_path / "data")
    assert code == 0, err
    (entry,) = check_consistent(tmp_path / "data")["inputs"]
    assert entry["read"] == 300 and entry["parsed"] > 280


@pytest.mark.parametrize("on_error, shown", [("skip", False), ("warn", True)])
def test_on_error_skip_and_warn(tmp_path, monkeypatch, capsys, on_error, shown):
    code, _, err = run(monkeypatch, capsys, "ingest", MALFORMED, "--data", tmp_path / "data",
                       "--max-reject-ratio", "1", "--on-error", on_error)
    assert code == 0
    assert (f"{MALFORMED}:" in err) == shown


def test_second_ingest_on_the_same_dataset_waits_its_turn(tmp_path, monkeypatch, capsys):
    import fcntl

    data = tmp_path / "data"
    run(monkeypatch, capsys, "ingest", GOOD, "--data", data)
    fd = os.open(data / "_ingest.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        code, _, err = run(monkeypatch, capsys, "ingest", GOOD, "--data", data, "--force")
    finally:
        os.close(fd)
    assert code == 1 and "another logpipe ingest is writing to" in err


# ---- kill -9 --------------------------------------------------------------------------------------------


# The killed ingest (`logpipe ingest`, as `python -m logpipe` runs it) with smaller groups of small
# inputs than a user's (ingest.LAUNCH_INPUTS, AHEAD_INPUTS: 16, 64): the same run, its groups begun,
# parsed and committed while later inputs are still to be read, of 21 inputs rather than 69 (a small
# input costs ~35 ms of fixed work, in the killed run or its rerun, the rows what they hold). A
# group's files are made visible a few ms apart (Dataset.publish), as long as a 64 inputs' group
# takes, so that a kill falls between its first and its last (first-visible-part).
_SMALL_GROUPS = (4, 16)
_KILLED = f"""
import time
from logpipe import dataset, ingest
ingest.LAUNCH_INPUTS, ingest.AHEAD_INPUTS = {_SMALL_GROUPS}
publish = dataset.Dataset.publish
dataset.Dataset.publish = lambda self, pairs: [publish(self, [p])[0] for p in pairs if time.sleep(0.004) is None]
from logpipe.cli import entry
entry()
"""


def _ingest_cmd(logs: Path, data: Path) -> list[str]:
    return [sys.executable, "-c", _KILLED, "ingest", str(logs), "--data", str(data), "--flush-rows", "3000"]


def _env() -> dict:
    return dict(os.environ, LOGPIPE_WORKERS="1")


def _ingest_here(logs: Path, data: Path):
    """``_ingest_cmd`` run in this process (conftest.run_logpipe): the clean run and the rerun after a
    kill, whose process is not what is tested (the killed one is)."""
    return run_logpipe(*_ingest_cmd(logs, data)[3:], env={"LOGPIPE_WORKERS": "1"})


def _wait_for(proc, cond, timeout=20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if cond():
            return
        time.sleep(0.005)


def _committed(data: Path) -> int:
    try:
        return sum(e.get("state") == "complete" for e in manifest(data)["inputs"])
    except (OSError, ValueError):
        return 0


def _has_pending(data: Path) -> bool:
    try:
        return any(e["state"] == "pending" for e in manifest(data)["inputs"])
    except (OSError, ValueError):
        return False


KILL_POINTS = {
    "first-hidden-part": lambda d: bool(list(d.glob("date=*/.*.tmp"))),
    "first-visible-part": lambda d: bool(list(d.glob("date=*/*.parquet"))),
    "second-input-committed": lambda d: (d / "_manifest.json").exists()
    and sum(e["state"] == "complete" for e in manifest(d)["inputs"]) >= 2,
    "0.2s-into-the-first-input": None,
    "merging-small-files": lambda d: bool(list(d.glob("date=*/.merged-*.tmp"))),  # (at the end: ingest's merge)
    "merging-reject-files": lambda d: bool(list(d.glob("_rejects/.merged-*.tmp"))),  # (after the part files')
}


@pytest.fixture(scope="module")
def kill_inputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("kill")
    logs = base / "logs"
    # More small inputs than the killed ingest keeps in flight (its AHEAD_INPUTS): the first group of
    # them is committed while the rest are still to be read, so that every kill point falls mid-run,
    # not in the moments between the last commit and the exit. The first three are written in several parts.
    lines = gen_lines(3 * 4000 + 18 * 100, seed=10)
    sizes = [4000] * 3 + [100] * 18
    assert len(sizes) > _SMALL_GROUPS[1] and _SMALL_GROUPS[1] // _SMALL_GROUPS[0] == AHEAD_INPUTS // LAUNCH_INPUTS
    for i, n in enumerate(sizes):
        at = sum(sizes[:i])
        write_log(logs / f"proxy-{i:02}.log", lines[at:at + n])
    clean = base / "clean"
    assert _ingest_here(logs, clean).returncode == 0
    return logs, clean, keys(clean)


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_then_rerun_equals_a_clean_run(tmp_path, kill_inputs, point):
    logs, _clean, want = kill_inputs
    data = tmp_path / "data"
    proc = subprocess.Popen(_ingest_cmd(logs, data), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cond = KILL_POINTS[point]
    if cond is None:
        _wait_for(proc, lambda: _has_pending(data))
        time.sleep(0.2)
    else:
        _wait_for(proc, lambda: cond(data))
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the ingest finished before the kill point: make the input bigger"
    if data.exists() and (data / "_manifest.json").exists():
        # what a reader sees right after the kill: whole inputs only, never a line twice
        seen = keys(data)
        assert len(seen) == len(set(seen))
        assert set(seen) <= set(want)
    done = _ingest_here(logs, data)
    assert done.returncode == 0, done.stderr
    check_consistent(data)
    assert keys(data) == want
    assert reject_keys(data) == reject_keys(_clean)


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_stops_the_workers_quietly(tmp_path):
    """A terminal's Ctrl-C reaches the whole process group: the worker processes leave the stop to
    logpipe's own process (no traceback of theirs), which drops what was in flight and exits 130."""
    logs = tmp_path / "logs"
    lines = gen_lines(3000, seed=100)  # (3,000 a file, not 6,000: the run is stopped after ~4 of them)
    for i in range(40):  # 32 small inputs or more: the pool's lanes parse them; each its own content
        write_log(logs / f"pod-{i:02}.log", lines[i * 75:] + lines[:i * 75])
    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "logpipe", *_ingest_cmd(logs, data)[3:]]  # (its workers forked first thing)
    proc = subprocess.Popen(cmd, env=dict(os.environ, LOGPIPE_WORKERS="2"), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    _wait_for(proc, lambda: _committed(data) >= 4)  # the worker process is at work by then
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "logpipe: interrupted" in err
    check_consistent(data)  # no pending entry, no hidden file left behind


@pytest.mark.slow
def test_ctrl_c_drops_the_input_in_flight_and_prints_the_summary(tmp_path, kill_inputs):
    logs, _clean, want = kill_inputs
    data = tmp_path / "data"
    proc = subprocess.Popen(_ingest_cmd(logs, data), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _wait_for(proc, lambda: bool(list(data.glob("date=*/.*.tmp"))))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate()
    assert proc.returncode == 130, err
    assert out == ""
    assert "stopped before its end, not ingested" in err and "rows written" in err
    if data.exists():  # (a run that committed nothing leaves no dataset: test_data_dir_mistakes.py)
        check_consistent(data)  # no pending entry, no hidden file left behind
    assert _ingest_here(logs, data).returncode == 0
    assert keys(data) == want


def test_the_note_on_late_rows_counts_them_after_a_compaction_merged_the_runs_files(tmp_path, monkeypatch, capsys):
    """`logpipe compact` run while an ingest runs may merge (and delete) the files of the inputs it
    committed before the ingest's note on late rows reads them: that ingest ended with an internal
    error (FileNotFoundError), exit 1, its own compaction not done. The note counts the inputs' own
    rows of the merged files (not the other inputs' there)."""
    import datetime as dt

    from logpipe import ingest
    from logpipe.dataset import Dataset, compact_dataset
    from test_report import waypoint_lines

    def log(name: str, at: dt.datetime, n: int) -> Path:
        (tmp_path / name).write_text("".join(waypoint_lines("api.example.com", at, n)))
        return tmp_path / name

    utc, data = dt.timezone.utc, tmp_path / "d"
    days = [log(f"d{d}.log", dt.datetime(2025, 3, d, 12, tzinfo=utc), 30) for d in (1, 2, 5)]  # (2 files of 03-01, 03-02)
    code, _, err = run(monkeypatch, capsys, "ingest", *days, "--data", data)
    assert code == 0, err
    real = ingest.print_summary

    def then_compact(*args, **kwargs):  # (after the commits, before the note: as `logpipe compact` meanwhile)
        real(*args, **kwargs)
        compact_dataset(Dataset(data), min_files=2, across=True)

    monkeypatch.setattr(ingest, "print_summary", then_compact)
    late = [log(f"late{d}.log", dt.datetime(2025, 3, d, tzinfo=utc), 20) for d in (1, 2)]  # 00:00 to 00:19
    code, _, err = run(monkeypatch, capsys, "ingest", *late, "--data", data)
    assert code == 0, err
    assert len(list(data.glob("date=2025-03-0[12]/*.parquet"))) == 2  # (each day's files merged: 2 inputs' rows in each)
    assert "logpipe: note: 40 of this run's rows (2025-03-01 00:00 to 2025-03-02 00:19 UTC)" in err, err


def test_the_summary_counts_one_file_as_one(tmp_path, monkeypatch, capsys):
    """`rows written 12 in 1 files`: one file is `1 file` (the stream says `1 part file`)."""
    code, _, err = run(monkeypatch, capsys, "ingest", SAMPLES / "istio-1.8.log", "--data", tmp_path / "d")
    assert code == 0, err
    assert re.search(r"rows written \d+ in 1 file to ", err), err


def test_rows_older_than_the_datasets_last_day_are_said_with_the_window_that_reports_them(tmp_path, monkeypatch, capsys):
    """A pod's log shipped days late lands before the default anomalies window (the data's last
    24 h): the ingest says how many of its rows, and the --since/--until that report them; an
    input that straddles that day's start counts only its rows before it. A next day's ingest says nothing."""
    import datetime as dt

    from test_report import waypoint_lines

    def log(name: str, host: str, at: dt.datetime, n: int) -> Path:
        (tmp_path / name).write_text("".join(waypoint_lines(host, at, n)))
        return tmp_path / name

    utc, data = dt.timezone.utc, tmp_path / "d"
    code, _, err = run(monkeypatch, capsys, "ingest", log("d4.log", "api.example.com", dt.datetime(2025, 3, 4, tzinfo=utc), 60),
                       log("d5.log", "api.example.com", dt.datetime(2025, 3, 5, tzinfo=utc), 60), "--data", data)
    assert code == 0 and "note" not in err  # (the last row: 03-05 00:59; a day before it: 03-04 00:59)
    late = log("late.log", "late.example.net", dt.datetime(2025, 3, 2, tzinfo=utc), 400)  # 00:00 to 06:39
    straddles = log("span.log", "api.example.com", dt.datetime(2025, 3, 3, 23, 30, tzinfo=utc), 120)  # 89 rows before
    code, _, err = run(monkeypatch, capsys, "ingest", late, straddles, "--data", data)
    assert code == 0
    notes = [ln for ln in err.splitlines() if "note" in ln]
    assert notes == ["logpipe: note: 489 of this run's rows (2025-03-02 00:00 to 2025-03-04 00:58 UTC) are older than"
                     " the dataset's last day before it; the default anomalies window (the data's last 24 h) leaves them"
                     " out: report them with --since 2025-03-02T00:00Z --until 2025-03-04T00:59Z"]

    def late_findings(*window: str) -> list:
        code, out, _ = run(monkeypatch, capsys, "report", "anomalies", "--data", data, "-o", "json", *window)
        assert code == 0
        return [f for f in json.loads(out)["findings"] if f["destination"] == "late.example.net"]

    assert late_findings() == []  # what the note is about
    found = late_findings(*notes[0].split("report them with ")[1].split())
    assert [(f["kind"], f["evidence"]["requests"]) for f in found] == [("new_destination", 400)]
    code, _, err = run(monkeypatch, capsys, "ingest", log("d6.log", "api.example.com", dt.datetime(2025, 3, 6, tzinfo=utc), 60),
                       "--data", data)
    assert code == 0 and "note" not in err
