"""dataset.py: partitions, schema, atomic files, manifest entries, recovery after a crash; compaction.py."""
from __future__ import annotations

import datetime as dt
import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from logpipe.dataset import Dataset, fingerprint
from logpipe.parts import day_partitions, hidden_name
from logpipe.errors import DatasetError
from logpipe.schema import RECORD_SCHEMA, REJECT_SCHEMA

UTC = dt.timezone.utc


def records(times: list[dt.datetime | None], source: str = "a.log", extra: dict | None = None) -> pa.Table:
    n = len(times)
    cols = {f.name: pa.nulls(n, f.type) for f in RECORD_SCHEMA}
    cols["start_time"] = pa.array(times, RECORD_SCHEMA.field("start_time").type)
    cols["source"] = pa.array([source] * n, pa.string())
    cols["line_number"] = pa.array(range(1, n + 1), pa.int64())
    cols["response_flags"] = pa.array([[]] * n, pa.list_(pa.string()))
    table = pa.table(cols, schema=RECORD_SCHEMA)
    for name, values in (extra or {}).items():
        table = table.append_column(name, pa.array(values, pa.string()))
    return table


def rejects(n: int, source: str = "a.log") -> pa.Table:
    return pa.table({"source": [source] * n, "line_number": list(range(1, n + 1)), "raw": ["x"] * n,
                     "reason": ["bad"] * n, "class": ["malformed"] * n, "column": [None] * n}, schema=REJECT_SCHEMA)


def count_rows(ds: Dataset, where: str = "true") -> int:
    sql = f"select count(*) from read_parquet('{ds.row_glob()}', hive_partitioning=true) where {where}"
    return duckdb.sql(sql).fetchall()[0][0]


def t(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2024, 7, day, hour, tzinfo=UTC)


def test_open_missing_dataset_says_how_to_create(tmp_path):
    with pytest.raises(DatasetError, match="logpipe ingest"):
        Dataset(tmp_path / "nope")


def test_refuses_a_directory_that_is_not_a_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not a logpipe dataset"):
        Dataset(tmp_path, create=True)


def test_a_read_only_directory_is_one_clear_error(tmp_path, monkeypatch):
    # An empty directory on a read-only mount (chmod does not stop root, so os.open says it).
    import os

    real_open = os.open

    def read_only(path, flags, *a):
        if flags & os.O_CREAT:
            raise OSError(30, "Read-only file system")
        return real_open(path, flags, *a)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(DatasetError, match=f"cannot write to dataset directory {tmp_path}: Read-only file system"):
        Dataset(tmp_path, create=True)


def test_create_then_open(tmp_path):
    Dataset(tmp_path / "d", create=True)
    ds = Dataset(tmp_path / "d")
    assert json.loads((tmp_path / "d" / "_manifest.json").read_text())["format"] == "logpipe-dataset"
    assert ds.row_glob() == f"{tmp_path}/d/date=*/*.parquet"


@pytest.mark.parametrize(
    "times, expected",
    [
        ([t(18), t(18, 23), t(19, 0)], {"2024-07-18": 2, "2024-07-19": 1}),
        ([t(18), None, None], {"2024-07-18": 1, "unknown": 2}),
        ([None], {"unknown": 1}),
        # 23:30 at UTC-2 is 01:30 UTC the next day: partitions are UTC days
        ([dt.datetime(2024, 7, 18, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))], {"2024-07-19": 1}),
    ],
)
def test_append_partitions_by_utc_day(tmp_path, times, expected):
    ds = Dataset(tmp_path / "d", create=True)
    paths = ds.append(records(times))
    got = {p.parent.name.removeprefix("date="): pq.read_metadata(p).num_rows for p in paths}
    assert got == expected
    assert all(p.name.startswith("part-") and p.suffix == ".parquet" for p in paths)
    assert count_rows(ds) == len(times)
    assert not list(ds.root.rglob("*.tmp"))  # nothing left in flight


def test_files_have_the_record_schema_and_zstd(tmp_path):
    ds = Dataset(tmp_path / "d", create=True)
    (path,) = ds.append(records([t(1)]), prefix="stream")
    assert path.name.startswith("stream-")
    assert pq.read_schema(path).remove_metadata().equals(RECORD_SCHEMA)
    assert pq.read_metadata(path).row_group(0).column(0).compression == "ZSTD"


def test_unique_numbers_and_times_are_delta_coded_and_read_back(tmp_path):
    """Line numbers, times, byte counts and client ports are written DELTA_BINARY_PACKED (a faster
    write, smaller files); the other columns as before; pyarrow and DuckDB read the same values."""
    ds = Dataset(tmp_path / "d", create=True)
    table = records([t(1, h) for h in range(24)] + [t(1, 3)])
    table = table.set_column(RECORD_SCHEMA.get_field_index("bytes_sent"), "bytes_sent",
                             pa.array([7, 2**40, None, -1] + [5] * 21, pa.int64()))
    (path,) = ds.append(table)
    chunk = pq.read_metadata(path).row_group(0)
    coded = {chunk.column(i).path_in_schema for i in range(chunk.num_columns)
             if "DELTA_BINARY_PACKED" in chunk.column(i).encodings}
    assert {"line_number", "start_time", "bytes_sent", "downstream_remote_address_port"} <= coded
    assert not coded & {"response_code", "method", "upstream_cluster", "response_flags"}
    assert pq.read_table(path).select(table.column_names).equals(table)
    got = duckdb.sql(f"select bytes_sent, start_time from '{path}' order by line_number").fetchall()
    assert got == list(zip(table.column("bytes_sent").to_pylist(), table.column("start_time").to_pylist()))


def test_request_ids_are_delta_length_coded_and_read_back(tmp_path):
    """Request ids (texts of one length, unique) are written DELTA_LENGTH_BYTE_ARRAY, strings and
    string views alike; pyarrow and DuckDB read them back, nulls included."""
    from logpipe.schema import view_schema

    ds = Dataset(tmp_path / "d", create=True)
    table = records([t(1, h) for h in range(6)])
    ids = pa.array([f"8d80cec6-8fc1-40de-8bc7-19716f173bb{h}" for h in range(5)] + [None], pa.string())
    table = table.set_column(RECORD_SCHEMA.get_field_index("request_id"), "request_id", ids)
    for rows in (table, table.cast(view_schema(RECORD_SCHEMA))):
        (path,) = ds.append(rows)
        chunk = pq.read_metadata(path).row_group(0)
        at = next(i for i in range(chunk.num_columns) if chunk.column(i).path_in_schema == "request_id")
        assert "DELTA_LENGTH_BYTE_ARRAY" in chunk.column(at).encodings
        assert pq.read_table(path).column("request_id").to_pylist() == ids.to_pylist()
        got = duckdb.sql(f"select request_id from '{path}' order by line_number").fetchall()
        assert [r for r, in got] == ids.to_pylist()


def test_rows_as_string_views_are_written_as_they_are_and_read_back_as_the_record(tmp_path):
    """Ingest's lanes hand their rows over as string views (``schema.view_schema``): the files (no
    Arrow schema stored, for views and strings alike) read back as RECORD_SCHEMA, with the values of
    the same rows as strings; a batch of two days is split as one of strings is."""
    from logpipe.schema import view_schema

    rows = records([t(1), t(2), None, t(1, 3)], extra={"tenant": ["a", "b", None, "d"]})
    rows = rows.set_column(RECORD_SCHEMA.get_field_index("path"), "path", pa.array(["/a", "/" + "b" * 40, None, "-"]))
    views = rows.cast(view_schema(rows.schema))
    assert views.schema.field("path").type == pa.string_view()
    got = {}
    for name, table in (("strings", rows), ("views", views)):
        ds = Dataset(tmp_path / name, create=True)
        paths = sorted(ds.append(table), key=lambda p: p.parent.name)
        assert [p.parent.name for p in paths] == ["date=2024-07-01", "date=2024-07-02", "date=unknown"]
        assert all(b"ARROW:schema" not in (pq.read_metadata(p).metadata or {}) for p in paths)
        read = [pq.read_table(p) for p in paths]
        assert all(r.schema.remove_metadata().equals(pa.schema(list(RECORD_SCHEMA) + [pa.field("tenant", pa.string())]))
                   for r in read)
        got[name] = [r.to_pylist() for r in read]
    assert got["views"] == got["strings"] and got["views"][0][0]["path"] == "/a"


def test_extra_string_columns_are_kept_after_the_schema(tmp_path):
    ds = Dataset(tmp_path / "d", create=True)
    (path,) = ds.append(records([t(1), t(1)], extra={"tenant": ["a", "b"]}))
    schema = pq.read_schema(path)
    assert schema.names == RECORD_SCHEMA.names + ["tenant"]
    assert pq.read_table(path).column("tenant").to_pylist() == ["a", "b"]


def test_rejects_go_to_their_own_table(tmp_path):
    ds = Dataset(tmp_path / "d", create=True)
    paths = ds.append(records([t(1)]), rejects(3))
    rej = [p for p in paths if p.parent.name == "_rejects"]
    assert len(rej) == 1
    assert pq.read_schema(rej[0]).remove_metadata().equals(REJECT_SCHEMA)
    assert duckdb.sql(f"select count(*) from read_parquet('{ds.rejects_glob()}')").fetchall()[0][0] == 3
    assert count_rows(ds) == 1  # the row glob never sees rejects


def test_duckdb_reads_unknown_and_dated_partitions_together(tmp_path):
    ds = Dataset(tmp_path / "d", create=True)
    ds.append(records([t(1), None, t(2)]))
    rows = duckdb.sql(f"select date, count(*) from read_parquet('{ds.row_glob()}', hive_partitioning=true) "
                      "group by all order by 1").fetchall()
    assert [(str(d), n) for d, n in rows] == [("2024-07-01", 1), ("2024-07-02", 1), ("unknown", 1)]


def test_day_partitions_of_empty_table_is_empty():
    assert list(day_partitions(records([]))) == []


# ---- staged entries and recovery --------------------------------------------------------------------


def staged_entry(ds: Dataset, times, n_rejects=0):
    entry = ds.begin_entry({"id": "e1", "prefix": "part-e1", "path": "a.log"})
    pairs = ds.stage(records(times), rejects(n_rejects) if n_rejects else None, prefix="part-e1")
    return entry, pairs


def test_staged_files_are_invisible_until_commit(tmp_path):
    ds = Dataset(tmp_path / "d", create=True)
    entry, pairs = staged_entry(ds, [t(1), t(2)], n_rejects=1)
    assert ds.row_files() == []
    assert all(tmp.exists() and not final.exists() for tmp, final in pairs)
    done = ds.commit_entry(entry, pairs)
    assert done["state"] == "complete" and len(done["parts"]) == 2 and len(done["rejects"]) == 1
    assert count_rows(ds) == 2
    assert ds.entries()[0]["id"] == "e1"


def test_recover_drops_a_pending_entry_and_its_files(tmp_path):
    ds = Dataset(tmp_path / "d", create=True)
    _entry, pairs = staged_entry(ds, [t(1)], n_rejects=2)
    stats = ds.recover()
    assert stats["dropped"] == 1
    assert ds.entries(None) == []
    assert not any(tmp.exists() for tmp, _ in pairs)


@pytest.mark.parametrize("renamed_before_crash", [0, 1, 2])
def test_recover_rolls_a_committing_entry_forward(tmp_path, renamed_before_crash):
    ds = Dataset(tmp_path / "d", create=True)
    entry, pairs = staged_entry(ds, [t(1), t(2)], n_rejects=1)
    # What commit_entry writes before its first rename, then a crash after some renames.
    committing = dict(entry, state="committing", parts=[ds.rel(f) for _, f in pairs if "_rejects" not in str(f)],
                      rejects=[ds.rel(f) for _, f in pairs if "_rejects" in str(f)], replaces=[])
    ds.update_manifest(lambda m: m.update(inputs=[committing]))
    ds.publish(pairs[:renamed_before_crash])
    assert ds.recover()["rolled_forward"] == 1
    assert count_rows(ds) == 2
    assert [e["state"] for e in ds.entries(None)] == ["complete"]


def test_commit_replaces_old_entry_rows(tmp_path):
    ds = Dataset(tmp_path / "d", create=True)
    old = ds.begin_entry({"id": "old", "prefix": "part-old", "path": "a.log"})
    ds.commit_entry(old, ds.stage(records([t(1)] * 5), prefix="part-old"))
    new = ds.begin_entry({"id": "new", "prefix": "part-new", "path": "a.log"})
    ds.commit_entry(new, ds.stage(records([t(1)] * 5), prefix="part-new"), replaces=["old"])
    assert count_rows(ds) == 5
    assert [e["id"] for e in ds.entries(None)] == ["new"]
    assert all("part-new" in p.name for p in ds.row_files())


# ---- compaction --------------------------------------------------------------------------------------


@pytest.mark.parametrize("parts, min_files, removed", [(9, 8, 9), (7, 8, 0), (3, 2, 3)])
def test_compact_merges_one_writers_parts(tmp_path, parts, min_files, removed):
    ds = Dataset(tmp_path / "d", create=True)
    for _ in range(parts):
        ds.append(records([t(1), t(1)]), prefix="stream")
    ds.append(records([t(1)]), prefix="other")  # another writer's file is never merged in
    assert ds.compact(min_files=min_files) == removed
    assert count_rows(ds) == 2 * parts + 1
    names = [p.name for p in ds.row_files()]
    assert len(names) == (2 if removed else parts + 1)
    assert sum(n.startswith("other-") for n in names) == 1


def test_compact_on_a_full_disk_is_one_error_and_keeps_the_parts(tmp_path, monkeypatch, capsys):
    """A disk full under a write no command names better (compact, stream) was `logpipe: internal error:
    OSError: [Errno 28] …`: it is the user's to fix, said in one line (exits.run)."""
    import errno
    import sys

    from logpipe import compaction
    from logpipe.cli import main

    ds = Dataset(tmp_path / "d", create=True)
    for _ in range(8):
        ds.append(records([t(1)]), prefix="stream")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(compaction, "write_hidden_pieces", full)
    monkeypatch.setattr(sys, "argv", ["logpipe", "compact", "--data", str(ds.root)])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 1
    assert capsys.readouterr().err == "logpipe: error: No space left on device; free space, then run the command again\n"
    assert len(ds.row_files()) == 8 and count_rows(ds) == 8


def test_compact_updates_manifest_parts_of_an_entry(tmp_path):
    ds = Dataset(tmp_path / "d", create=True)
    entry = ds.begin_entry({"id": "e1", "prefix": "part-e1", "path": "a.log"})
    pairs = []
    for _ in range(4):
        pairs += ds.stage(records([t(1)]), prefix="part-e1")
    ds.commit_entry(entry, pairs)
    assert ds.compact(min_files=2) == 4
    (e,) = ds.entries()
    assert [ds.root / p for p in e["parts"]] == ds.row_files()
    assert count_rows(ds) == 4


def test_recover_finishes_an_interrupted_compaction_without_duplicates(tmp_path):
    ds = Dataset(tmp_path / "d", create=True)
    olds = [ds.append(records([t(1)]), prefix="stream")[0] for _ in range(3)]
    merged = ds.root / "date=2024-07-01" / "stream-merged.parquet"
    pq.write_table(pa.concat_tables([pq.read_table(p) for p in olds]), hidden_name(merged))
    ds.update_manifest(lambda m: m["compactions"].append({"olds": [ds.rel(p) for p in olds], "new": ds.rel(merged)}))
    olds[0].unlink()  # the crash came after the first removal
    assert ds.recover()["compactions"] == 1
    assert ds.row_files() == [merged]
    assert count_rows(ds) == 3
    assert ds.read_manifest()["compactions"] == []


# ---- compaction across inputs -------------------------------------------------------------------------


def commit_inputs(ds: Dataset, n: int, days=(1, 2), rows: int = 3, n_rejects: int = 0) -> None:
    """``n`` small inputs ``e0``…, each its own source ``in<i>.log``, with ``rows`` rows on each day of ``days``
    (and ``n_rejects`` rejects)."""
    for i in range(n):
        entry = ds.begin_entry({"id": f"e{i}", "prefix": f"part-e{i}", "path": f"in{i}.log"})
        ds.commit_entry(entry, ds.stage(records([t(d, h) for d in days for h in range(rows)], f"in{i}.log"),
                                        rejects(n_rejects, f"in{i}.log") if n_rejects else None, prefix=f"part-e{i}"))


def all_rejects(ds: Dataset) -> list[tuple]:
    return duckdb.sql(f"select source, line_number from read_parquet('{ds.rejects_glob()}') order by all").fetchall()


def all_rows(ds: Dataset) -> list[tuple]:
    return duckdb.sql(f"select source, line_number, start_time from read_parquet('{ds.row_glob()}') "
                      "order by all").fetchall()


def rows_by_input(ds: Dataset, key: str = "parts") -> dict[str, int]:
    """Each complete entry's rows by the manifest (its own files whole, its share of a shared file),
    after checking that every shared file's rows of an input are that input's (its source). ``key``
    "rejects": its rejects, likewise."""
    m = ds.read_manifest()
    shared = m.get("shared", {})
    paths = {e["id"]: e["path"] for e in m["inputs"]}
    for rel, owners in shared.items():
        sources = pq.read_table(ds.root / rel, columns=["source"]).column(0).to_pylist()
        assert len(sources) == sum(n for _, n in owners), rel
        at = 0
        for owner, n in owners:
            assert set(sources[at:at + n]) <= {paths.get(owner)} | ({"stream.log"} if owner is None else set()), rel
            at += n
    listed = {p for e in m["inputs"] for p in e[key]}
    assert listed <= {ds.rel(f) for f in (ds.row_files() if key == "parts" else ds.reject_files())}
    return {e["id"]: sum(sum(n for o, n in shared[p] if o == e["id"]) if p in shared
                         else pq.read_metadata(ds.root / p).num_rows for p in e[key])
            for e in m["inputs"] if e["state"] == "complete"}


def test_compact_across_inputs_leaves_few_files_with_the_same_rows(tmp_path):
    ds = Dataset(tmp_path / "d", create=True)
    commit_inputs(ds, 12)
    ds.append(records([t(1)] * 2, "stream.log"), prefix="stream")  # a stream's rows: no manifest entry
    before = all_rows(ds)
    assert len(ds.row_files()) == 25
    assert ds.compact(min_files=8) == 0  # one writer's parts only: none has 8
    assert ds.compact(min_files=8, across=True) == 25
    assert len(ds.row_files()) == 2  # one a day
    assert all_rows(ds) == before
    assert rows_by_input(ds) == {f"e{i}": 6 for i in range(12)}
    assert len(ds.read_manifest()["shared"]) == 2
    # merged again with new small files: the shared file's inputs stay whole
    for i in range(12, 20):
        entry = ds.begin_entry({"id": f"e{i}", "prefix": f"part-e{i}", "path": f"in{i}.log"})
        ds.commit_entry(entry, ds.stage(records([t(1, i % 24)], f"in{i}.log"), prefix=f"part-e{i}"))
    assert ds.compact(min_files=8, across=True) == 9
    assert len(ds.row_files()) == 2
    assert rows_by_input(ds) == {**{f"e{i}": 6 for i in range(12)}, **{f"e{i}": 1 for i in range(12, 20)}}


def test_a_writers_compaction_merges_its_own_parts_only(tmp_path):
    """A stream compacts its own parts (``writer``), not another writer's (an ingested input's parts,
    ~52k rows each, which a query reads as fast as merged ones); without ``writer``, every writer's."""
    ds = Dataset(tmp_path / "d", create=True)
    for prefix in ("streamAg0", "part-e1"):
        for _ in range(8):
            ds.append(records([t(1)]), prefix=prefix)
    assert ds.compact(min_files=8, writer="streamAg0") == 8
    names = sorted(f.name.rsplit("-", 1)[0] for f in ds.row_files())
    assert names == ["part-e1"] * 8 + ["streamAg0"]
    assert ds.compact(min_files=8) == 8 and len(ds.row_files()) == 2


def test_compact_across_inputs_caps_a_merged_file_and_skips_large_files(tmp_path, monkeypatch):
    from logpipe import compaction

    monkeypatch.setattr(compaction, "MERGE_ROWS", 10)
    monkeypatch.setattr(compaction, "ROW_GROUP_ROWS", 4)
    ds = Dataset(tmp_path / "d", create=True)
    commit_inputs(ds, 9, days=(1,))  # 9 files of 3 rows: 3 merged files of 9 rows
    ds.append(records([t(1)] * 4, "stream.log"), prefix="stream")  # not small: left as it is
    assert ds.compact(min_files=8, across=True) == 9
    sizes = sorted(pq.read_metadata(f).num_rows for f in ds.row_files())
    assert sizes == [4, 9, 9, 9]
    assert rows_by_input(ds) == {f"e{i}": 3 for i in range(9)}


@pytest.mark.parametrize("gone", [["e3"], ["e3", "e7"], [f"e{i}" for i in range(12)]])
def test_force_after_compaction_across_inputs_replaces_exactly_that_inputs_rows(tmp_path, gone):
    ds = Dataset(tmp_path / "d", create=True)
    commit_inputs(ds, 12)
    ds.append(records([t(1)] * 2, "stream.log"), prefix="stream")
    ds.compact(min_files=8, across=True)
    before = all_rows(ds)
    new = ds.begin_entry({"id": "new", "prefix": "part-new", "path": "in3.log"})
    ds.commit_entry(new, ds.stage(records([t(1, 20)] * 5, "again.log"), prefix="part-new"), replaces=gone)
    paths = {f"in{g[1:]}.log" for g in gone}
    assert all_rows(ds) == sorted([r for r in before if r[0] not in paths] + [("again.log", i, t(1, 20))
                                                                             for i in range(1, 6)])
    assert rows_by_input(ds) == {**{f"e{i}": 6 for i in range(12) if f"e{i}" not in gone}, "new": 5}
    m = ds.read_manifest()
    assert not any(o in gone for owners in m["shared"].values() for o, _ in owners)
    assert m["compactions"] == [] and not list(ds.root.rglob("*.tmp"))


def test_compact_across_inputs_merges_reject_files_and_force_takes_out_exactly_that_inputs(tmp_path):
    """Each input with a reject writes its own reject file (and every connection binds them all): they
    are merged as part files are, owned alike, and --force of one input rewrites the merged file
    without its rejects."""
    ds = Dataset(tmp_path / "d", create=True)
    commit_inputs(ds, 12, n_rejects=2)
    ds.append(None, rejects(3, "stream.log"), prefix="stream")  # a stream's rejects: no manifest entry
    before = all_rejects(ds)
    merged: dict = {}
    assert ds.compact(min_files=8, across=True, merged=merged) == 24 + 13
    assert merged == {"parts": [24, 2], "rejects": [13, 1]}
    (file,) = ds.reject_files()
    assert all_rejects(ds) == before and len(ds.row_files()) == 2
    assert rows_by_input(ds, "rejects") == {f"e{i}": 2 for i in range(12)}
    assert all(e["rejects"] == [ds.rel(file)] for e in ds.entries())
    new = ds.begin_entry({"id": "new", "prefix": "part-new", "path": "in3.log"})
    ds.commit_entry(new, ds.stage(records([t(1)], "again.log"), rejects(1, "again.log"), prefix="part-new"),
                    replaces=["e3"])
    assert all_rejects(ds) == sorted([r for r in before if r[0] != "in3.log"] + [("again.log", 1)])
    assert rows_by_input(ds, "rejects") == {**{f"e{i}": 2 for i in range(12) if i != 3}, "new": 1}
    assert not any(o == "e3" for owners in ds.read_manifest()["shared"].values() for o, _ in owners)


def test_a_writers_compaction_merges_its_own_reject_files(tmp_path):
    ds = Dataset(tmp_path / "d", create=True)
    for prefix in ("streamAg0", "streamBg0"):
        for _ in range(8):
            ds.append(records([t(1)]), rejects(2, f"{prefix}.log"), prefix=prefix)
    before = all_rejects(ds)
    merged: dict = {}
    assert ds.compact(min_files=8, writer="streamAg0", merged=merged) == 16
    assert merged == {"parts": [8, 1], "rejects": [8, 1]}
    assert sorted(f.name.rsplit("-", 1)[0] for f in ds.reject_files()) == ["streamAg0"] + ["streamBg0"] * 8
    assert all_rejects(ds) == before


class Killed(Exception):
    pass


def kill_at(monkeypatch, name: str, call: int) -> None:
    """A kill -9 at the ``call``-th call of compaction.py's ``name`` (``_unlink``: before it removes a
    file) or the dataset's (``publish``: after it renamed one into place): the process stops there,
    nothing after runs."""
    from logpipe import compaction

    real, calls = getattr(compaction, name, None) or getattr(Dataset, name), [0]

    def killed(*args, **kwargs):
        calls[0] += 1
        if name == "publish":
            real(*args, **kwargs)
        if calls[0] == call:
            raise Killed(f"killed at {name} #{call}")
        if name != "publish":
            return real(*args, **kwargs)

    if name == "publish":
        monkeypatch.setattr(Dataset, name, killed)
    else:
        monkeypatch.setattr(compaction, name, killed)


# killed after the plan was recorded, after one old file's removal, after the merged file's rename: a merge
# of row files, and one of reject files (inputs of rejects only: the kill comes in their merge)
@pytest.mark.parametrize("kind", ["parts", "rejects"])
@pytest.mark.parametrize("name, call", [("_unlink", 1), ("_unlink", 2), ("publish", 1)])
def test_a_crash_in_a_compaction_across_inputs_then_recover_loses_and_doubles_nothing(tmp_path, monkeypatch,
                                                                                     name, call, kind):
    ds = Dataset(tmp_path / "d", create=True)
    rows, files, each = (all_rows, ds.row_files, 3) if kind == "parts" else (all_rejects, ds.reject_files, 2)
    commit_inputs(ds, 10, days=(1,), **({} if kind == "parts" else {"rows": 0, "n_rejects": 2}))
    before = rows(ds)
    with monkeypatch.context() as mp:
        kill_at(mp, name, call)
        with pytest.raises(Killed):
            ds.compact(min_files=8, across=True)
    seen = rows(ds)
    assert len(seen) == len(set(seen)) and set(seen) <= set(before)  # a glob reader: never a row twice
    assert len(ds.read_manifest()["compactions"]) == 1
    assert ds.recover()["compactions"] == 1
    assert rows(ds) == before and len(files()) == 1
    assert rows_by_input(ds, kind) == {f"e{i}": each for i in range(10)}


# Ctrl-C as the plan is recorded, as it removes the first old file, the second, as it renames the merged one in
@pytest.mark.parametrize("name, call", [("update_manifest", 1), ("_unlink", 1), ("_unlink", 2), ("publish", 1)])
def test_ctrl_c_in_a_compactions_swap_finishes_it_first(tmp_path, monkeypatch, name, call):
    """A `logpipe compact` (or an ingest's merge) stopped by Ctrl-C in the milliseconds it swaps a merged
    file in left the plan to the next writer, and the rows of the files it had removed out of every
    query until then; it finishes the swap, then stops."""
    from logpipe import compaction

    ds = Dataset(tmp_path / "d", create=True)
    commit_inputs(ds, 10, days=(1,))
    before = all_rows(ds)
    real, calls = getattr(compaction, name, None) or getattr(Dataset, name), [0]

    def interrupted(*args, **kwargs):
        calls[0] += 1
        done = real(*args, **kwargs) if name == "update_manifest" else None  # (Ctrl-C once the manifest is written)
        if calls[0] == call:
            raise KeyboardInterrupt
        return done if name == "update_manifest" else real(*args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(Dataset if name in ("publish", "update_manifest") else compaction, name, interrupted)
        with pytest.raises(KeyboardInterrupt):
            ds.compact(min_files=8, across=True)
    assert ds.read_manifest()["compactions"] == [] and not list(ds.root.rglob("*.tmp"))
    assert all_rows(ds) == before and len(ds.row_files()) == 1
    assert rows_by_input(ds) == {f"e{i}": 3 for i in range(10)}


# A merge killed after it wrote its file, before it recorded its plan, left that hidden file (as large as a
# merge) until an ingest's recover, which a stream's dataset never runs: the next compaction or --force deletes it.
@pytest.mark.parametrize("then", ["compact", "force"])
def test_a_merge_killed_before_its_plan_was_recorded_leaves_no_hidden_file(tmp_path, monkeypatch, then):
    from logpipe.dataset import compact_dataset

    ds = Dataset(tmp_path / "d", create=True)
    commit_inputs(ds, 10, days=(1,), n_rejects=1)
    before, rejected = all_rows(ds), all_rejects(ds)

    def killed(*args, **kwargs):
        raise Killed("killed before the plan was recorded")

    with monkeypatch.context() as mp:
        mp.setattr(Dataset, "update_manifest", killed)
        with pytest.raises(Killed):
            ds.compact(min_files=8, across=True)
    assert len(list(ds.root.glob("date=*/.merged-*.tmp"))) == 1 and all_rows(ds) == before
    if then == "compact":
        compact_dataset(ds, min_files=8, across=True)
        assert len(ds.row_files()) == len(ds.reject_files()) == 1
    else:
        new = ds.begin_entry({"id": "new", "prefix": "part-new", "path": "in3.log"})
        again = ds.stage(records([t(1, h) for h in range(3)], "in3.log"), rejects(1, "in3.log"), prefix="part-new")
        ds.commit_entry(new, again, replaces=["e3"])  # (the same rows again)
    assert not list(ds.root.rglob("*.tmp"))
    assert all_rows(ds) == before and all_rejects(ds) == rejected


# killed after the rewritten shared file's plan was recorded, after its rename, after the new input's first
# file's: a file of rows merged across inputs, and one of reject files (inputs of rejects only)
@pytest.mark.parametrize("kind", ["parts", "rejects"])
@pytest.mark.parametrize("name, call", [("_unlink", 1), ("publish", 1), ("publish", 2)])
def test_a_crash_in_force_after_compaction_across_inputs_then_recover_loses_and_doubles_nothing(tmp_path, monkeypatch,
                                                                                               name, call, kind):
    ds = Dataset(tmp_path / "d", create=True)
    if kind == "parts":
        commit_inputs(ds, 10, days=(1,))
        rows, each, staged = all_rows, 3, (records([t(1, 20)] * 5, "again.log"),)
        again = [("again.log", i, t(1, 20)) for i in range(1, 6)]
    else:
        commit_inputs(ds, 10, days=(1,), rows=0, n_rejects=2)
        rows, each, staged, again = all_rejects, 2, (None, rejects(1, "again.log")), [("again.log", 1)]
    ds.compact(min_files=8, across=True)
    if kind == "rejects":
        assert len(ds.reject_files()) == 1 and not ds.row_files()
    before = rows(ds)
    new = ds.begin_entry({"id": "new", "prefix": "part-new", "path": "in3.log"})
    pairs = ds.stage(*staged, prefix="part-new")
    with monkeypatch.context() as mp:
        kill_at(mp, name, call)
        with pytest.raises(Killed):
            ds.commit_entry(new, pairs, replaces=["e3"])
    seen = rows(ds)
    assert len(seen) == len(set(seen))
    assert ds.recover()["rolled_forward"] == 1
    assert rows(ds) == sorted([r for r in before if r[0] != "in3.log"] + again)
    assert rows_by_input(ds, kind) == {**{f"e{i}": each for i in range(10) if i != 3}, "new": len(again)}
    assert ds.read_manifest()["compactions"] == []


# ---- readers against compaction (the readers' lock) ---------------------------------------------------


def test_compaction_waits_for_a_reader_and_a_reader_for_compaction(tmp_path):
    from logpipe import db
    from logpipe.dataset import compact_dataset

    ds = Dataset(tmp_path / "d", create=True)
    for _ in range(9):
        ds.append(records([t(1)]), prefix="stream")
    with db.reading(ds.root):
        assert compact_dataset(ds, min_files=8, wait=False) is None  # a query is reading: not now
        assert len(ds.row_files()) == 9
    assert compact_dataset(ds, min_files=8, wait=False) == 9
    assert len(ds.row_files()) == 1 and count_rows(ds) == 9


def test_force_replacement_waits_for_a_reader(tmp_path):
    import threading
    import time

    from logpipe import db

    ds = Dataset(tmp_path / "d", create=True)
    old = ds.begin_entry({"id": "old", "prefix": "part-old", "path": "a.log"})
    ds.commit_entry(old, ds.stage(records([t(1)] * 3), prefix="part-old"))
    new = ds.begin_entry({"id": "new", "prefix": "part-new", "path": "a.log"})
    pairs = ds.stage(records([t(1)] * 5), prefix="part-new")
    with db.reading(ds.root):
        swap = threading.Thread(target=ds.commit_entry, args=(new, pairs, ["old"]))
        swap.start()
        time.sleep(0.3)
        assert swap.is_alive() and count_rows(ds) == 3  # the reader still sees the old rows whole
    swap.join(timeout=10)
    assert not swap.is_alive() and count_rows(ds) == 5


@pytest.mark.parametrize("across", [False, True])
def test_queries_during_compactions_never_miss_or_double_rows(tmp_path, across):
    """A writer appends parts and compacts them over and over (a stream) while queries read through
    db.reading, as `logpipe query` does: every count is the rows appended so far, never fewer (a group
    deleted before its merged file is in place) or more, and no query meets a deleted file. ``across``:
    the parts are ingested inputs' too, merged across inputs (`logpipe compact`, ingest), and one
    input's rows are replaced (--force) in the shared file each round."""
    import threading
    import time

    from logpipe import db
    from logpipe.queries import run_query
    from logpipe.dataset import compact_dataset

    ds = Dataset(tmp_path / "d", create=True)
    ds.append(records([t(1)] * 4, "stream.log"), prefix="seed")
    appended = [4]
    stop = threading.Event()
    failures: list[str] = []

    def write() -> None:
        k = 0
        while not stop.is_set():
            for i in range(8):
                if across and i % 2:  # an ingested input (--force of the one before it: same rows)
                    entry = ds.begin_entry({"id": f"k{k}i{i}", "prefix": f"part-k{k}i{i}", "path": f"{k}.log"})
                    ds.commit_entry(entry, ds.stage(records([t(1)] * 4, f"{k}.log"), prefix=f"part-k{k}i{i}"),
                                    replaces=[f"k{k - 1}i{i}"] if k and i == 1 else [])
                    if k and i == 1:
                        continue
                else:
                    ds.append(records([t(1)] * 4, "stream.log"), prefix=f"stream{k}")
                appended[0] += 4
            k += 1
            compact_dataset(ds, min_files=8, across=across)

    writer = threading.Thread(target=write)
    writer.start()
    reads = 0
    try:
        # 3 s of queries, and at least 3 of them: a loaded machine (the suite's other worker, other
        # jobs) gave this thread 2 in 3 s, which failed `reads >= 3` below
        deadline, give_up = time.monotonic() + 3.0, time.monotonic() + 60
        while (time.monotonic() < deadline or reads < 3) and time.monotonic() < give_up and not failures:
            with db.reading(ds.root):
                low = appended[0]
                try:
                    con = db.connect(ds.root)
                    n = run_query(con, "SELECT count(*) FROM access_log").column(0)[0].as_py()
                except Exception as e:  # (a file deleted under the query)
                    failures.append(str(e).splitlines()[0])
                    break
                con.close()
                high = appended[0]
            reads += 1
            if not low <= n <= high + 4:  # (+4: a part published, not yet added to `appended`)
                failures.append(f"counted {n} rows, {low}..{high} were stored")
    finally:
        stop.set()
        writer.join(timeout=30)
    assert not failures, failures
    assert reads >= 3
    assert count_rows(ds) == appended[0]
    if across:
        assert ds.read_manifest()["shared"] and len(ds.row_files()) < 8
        assert sum(rows_by_input(ds).values()) == 4 * len(ds.entries())


# ---- identity --------------------------------------------------------------------------------------


def test_fingerprint_prefix_hashes_match_hashes_of_prefixes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"line 1\nline 2\n")
    b.write_bytes(b"line 1\nline 2\nline 3\n")
    size_a, hash_a, _ = fingerprint(a)
    size_b, hash_b, prefixes = fingerprint(b, [size_a, 99999, 0])
    assert (size_a, size_b) == (14, 21)
    assert prefixes[size_a] == hash_a != hash_b
    assert set(prefixes) == {size_a, size_b}


def test_fingerprint_algorithms(tmp_path):
    """New datasets hash inputs with BLAKE3 (128 bits of it); sha256-128 and blake2b-128 stay readable."""
    import hashlib

    import blake3

    from logpipe.dataset import HASH_ALGO

    f = tmp_path / "f"
    f.write_bytes(b"line 1\nline 2\n")
    assert HASH_ALGO == "blake3-128"
    assert fingerprint(f)[1] == blake3.blake3(b"line 1\nline 2\n").hexdigest(length=16)
    assert fingerprint(f, [7])[2][7] == blake3.blake3(b"line 1\n").hexdigest(length=16)
    assert fingerprint(f, algo="sha256-128")[1] == hashlib.sha256(b"line 1\nline 2\n").hexdigest()[:32]
    assert fingerprint(f, algo="blake2b-128")[1] == hashlib.blake2b(b"line 1\nline 2\n", digest_size=16).hexdigest()
    size, full, prefixes = fingerprint(f, [7], algo="blake2b-128")
    assert prefixes[7] == hashlib.blake2b(b"line 1\n", digest_size=16).hexdigest()


def test_a_blake2b_dataset_keeps_finding_its_inputs(tmp_path, monkeypatch):
    """A dataset whose entries were hashed with blake2b (before SHA-256 was the default) still skips
    an input it holds, resumes a grown one, and records new inputs with blake2b."""
    import io

    from logpipe import ingest

    line = ('[2025-01-30T10:53:24.085Z] "GET /get HTTP/1.1" 200 - via_upstream - "-" 0 254 237 236 "-" "curl/8" "id" '
            '"httpbin.org" "3.234.9.11:80" outbound|80||httpbin.org 10.0.0.1:1 3.234.9.11:80 10.0.0.2:2 - default\n')
    a, b, data = tmp_path / "a.log", tmp_path / "b.log", tmp_path / "ds"
    a.write_text(line * 3)
    b.write_text(line.replace('"id"', '"id2"') * 2)  # (another log: not a.log's first lines, which are skipped)
    with monkeypatch.context() as m:
        m.setattr(ingest, "HASH_ALGO", "blake2b-128")
        ingest.ingest_paths([str(a)], str(data), err=io.StringIO(), progress=False)
    entries = Dataset(str(data)).entries()
    assert [e["hash_algo"] for e in entries] == ["blake2b-128"]
    again = ingest.ingest_paths([str(a)], str(data), err=io.StringIO(), progress=False)
    assert again.skipped == 1
    a.write_text(line * 5)  # it grew: only the two new lines are read
    grown = ingest.ingest_paths([str(a), str(b)], str(data), err=io.StringIO(), progress=False)
    assert grown.counts.read == 2 + 2
    assert {e["hash_algo"] for e in Dataset(str(data)).entries()} == {"blake2b-128"}
