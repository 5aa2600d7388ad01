"""`--data` given the wrong thing (the directory that holds the dataset, a directory or file inside one,
a log file), and what a failed ingest into a new `--data` leaves: each says where the dataset is, or
what to give, in one line."""
from __future__ import annotations

import shutil

import pytest

from conftest import SAMPLES, run_logpipe

BAD_LINE = '[2025-03-08T10:00:00.000Z] "GET /x HTTP/1.1" garbage\n'  # (malformed: response_code)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A working directory holding a log and ``logpipe-data``: a dataset of it, with a rejected line."""
    work = tmp_path_factory.mktemp("hh6")
    log = work / "access.log"
    log.write_text((SAMPLES / "istio-1.5.log").read_text() + BAD_LINE)
    r = run_logpipe("ingest", log, "--data", work / "logpipe-data", "--max-reject-ratio", "1")
    assert r.returncode == 0, r.stderr
    return work


def _error(r) -> str:
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    return r.stderr


def test_the_directory_that_holds_the_dataset_names_it(work):
    """``--data .`` in the directory that holds ``./logpipe-data`` was told to ingest ``.`` (its logs,
    and the dataset's own Parquet files) into a NEW_DIR."""
    r = run_logpipe("query", "--data", ".", "top_destinations", cwd=work)
    assert _error(r) == ("logpipe: error: . holds no logpipe data (no date=*/*.parquet files); a dataset is at "
                         "logpipe-data: give --data logpipe-data\n")


@pytest.mark.parametrize("inside", ["day", "_rejects"])
def test_a_directory_inside_a_dataset_names_the_dataset(work, inside):
    """A day directory, or ``_rejects/``: its Parquet files were called other files, maybe logs to ingest."""
    data = work / "logpipe-data"
    given = next(data.glob("date=*")) if inside == "day" else data / "_rejects"
    assert any(given.glob("*.parquet"))
    r = run_logpipe("report", "inventory", "--data", given)
    assert _error(r).endswith(f"; a dataset is at {data}: give --data {data}\n")
    # given relative, the dataset is named as the user would type it
    r = run_logpipe("compact", "--data", given.relative_to(work), cwd=work)
    assert _error(r).endswith("; a dataset is at logpipe-data: give --data logpipe-data\n")


def test_a_directory_holding_several_datasets_names_them(work, tmp_path):
    for name in ("prod", "staging"):
        (tmp_path / name).mkdir()
        shutil.copy(work / "logpipe-data" / "_manifest.json", tmp_path / name)
    r = run_logpipe("query", "--data", tmp_path, "--sql", "select 1")
    assert _error(r).endswith(f"; datasets are at {tmp_path / 'prod'}, {tmp_path / 'staging'}: give --data one of "
                              "them\n")


def test_a_directory_of_logs_is_still_advised_to_be_ingested(work):
    r = run_logpipe("query", "--data", SAMPLES / "scenario", "--sql", "select 1")
    assert "make a dataset of them with `logpipe ingest" in _error(r) and "a dataset is at" not in r.stderr


@pytest.mark.parametrize("command", [["report", "inventory"], ["query", "top_destinations"]])
def test_a_log_file_as_data_points_to_input(work, command):
    """click said ``Directory '…/access.log' is a file``: the report and query read a log as --input FILE."""
    log = work / "access.log"
    r = run_logpipe(*command, "--data", log)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert (f"--data': {log} is a file, not a dataset directory; to read a log file without a dataset, give "
            f"--input {log} (see") in r.stderr


def test_a_file_inside_a_dataset_as_data_names_the_dataset(work):
    data = work / "logpipe-data"
    part = next(data.glob("date=*/*.parquet"))
    r = run_logpipe("query", "--data", part, "--sql", "select 1")
    assert r.returncode == 2 and f"is a file, not a dataset directory; a dataset is at {data}: give --data {data} (" \
        in r.stderr, r.stderr


def test_a_failed_ingest_into_a_new_directory_leaves_no_dataset(tmp_path):
    """Every input over --max-reject-ratio: nothing ingested, yet it left a dataset of no input, which a
    report read as one of empty logs (exit 0, its note pointing at a rejects view of 0 rows). Now there
    is none: a report says so (exit 1). In a directory that was there (empty), it leaves it empty."""
    bad = tmp_path / "bad.log"
    bad.write_text(BAD_LINE)
    new, there = tmp_path / "new", tmp_path / "there"
    there.mkdir()
    for data in (new, there):
        r = run_logpipe("ingest", bad, "--data", data)
        assert r.returncode == 1 and "too many malformed lines" in r.stderr, r.stderr
        # (after the summary's "rows written 0 in 0 files to DIR": what became of DIR)
        assert f"\nnothing stored: no dataset left at {data}\n" in r.stderr, r.stderr
    assert not new.exists() and list(there.iterdir()) == []
    r = run_logpipe("report", "inventory", "--data", new)
    assert r.returncode == 1 and f"no dataset at {new};" in r.stderr, r.stderr


def test_a_failed_ingest_into_an_existing_dataset_keeps_it(work, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(work / "logpipe-data", data)
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    bad = tmp_path / "bad.log"
    bad.write_text(BAD_LINE.replace("/x", "/y"))
    assert run_logpipe("ingest", bad, "--data", data).returncode == 1
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


def test_the_empty_reports_note_names_the_rejects_view_only_where_it_holds_lines(tmp_path):
    """A dataset of an empty log: its rejects view holds nothing, which the note said would say why."""
    empty, bad = tmp_path / "empty.log", tmp_path / "bad.log"
    empty.write_text("")
    bad.write_text(BAD_LINE)
    for log, why in ((empty, "(its logs were empty)"),
                     (bad, "(every line of its logs was rejected: its rejects view says why)")):
        data = tmp_path / log.stem
        assert run_logpipe("ingest", log, "--data", data, "--max-reject-ratio", "1").returncode == 0
        r = run_logpipe("report", "inventory", "--data", data, "-o", "json")
        assert r.returncode == 0 and f"logpipe: note: the dataset holds no records {why}, so the report is empty\n" \
            == r.stderr, r.stderr


def test_a_new_dataset_with_empty_directories_alone_is_discarded_and_one_with_a_file_kept(tmp_path):
    """The lanes may have made a day's directory (or _rejects/) before the run failed: empty, they hold
    nothing and go with the dataset (a run with workers left them as often as not, and its empty dataset
    stayed); a file anywhere in them (hidden ones too) keeps the dataset."""
    from logpipe.dataset import Dataset

    ds = Dataset(tmp_path / "new", create=True)
    (ds.root / "date=2025-03-08" / "sub").mkdir(parents=True)
    (ds.root / "_rejects").mkdir()
    assert ds.discard_if_empty() and not ds.root.exists()
    ds = Dataset(tmp_path / "kept", create=True)
    (ds.root / "date=2025-03-08").mkdir()
    (ds.root / "date=2025-03-08" / ".part-1.parquet.tmp").write_bytes(b"x")
    assert not ds.discard_if_empty() and (ds.root / "_manifest.json").is_file()


@pytest.mark.parametrize("command", ["ingest", "stream"])
@pytest.mark.parametrize("inside", ["sub", "date=2025-03-08"])
def test_a_new_dataset_inside_a_dataset_is_refused(work, command, inside):
    """ingest (and stream) into a directory inside a dataset made a dataset there, quietly (a mistyped
    --data, almost always: the rows meant for the outer one went elsewhere): refused, naming the dataset."""
    target = work / "logpipe-data" / inside
    r = run_logpipe(command, *([SAMPLES / "istio-1.5.log"] if command == "ingest" else []), "--data", target,
                    input="" if command == "stream" else None)
    assert _error(r) == (f"logpipe: error: {target} is inside the dataset {work / 'logpipe-data'}: give --data "
                         f"{work / 'logpipe-data'} to add to it, or a directory outside it for a dataset of its own\n")
    assert not (target / "_manifest.json").exists()
