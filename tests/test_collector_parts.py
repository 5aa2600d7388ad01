"""A line over 16 KiB that the container runtime split, as a log collector's records of its parts when
its reader did not join them (Fluent Bit's CRI parser keeps the tag as ``_p``, Fluentd's cri parser as
``logtag``; docker's fluentd log driver marks ``partial_last``): joined into the line, as a node file's
parts are (``envelopes.join_record_parts``), or, where the last part is not there, one reject each
saying so; never a row of half a line."""
from __future__ import annotations

import datetime as dt
import functools
import json

from conftest import SAMPLES, parse_text, read_lines, run_logpipe

from logpipe.envelopes import RECORD_PARTIAL

UTC = dt.timezone.utc
POD, CONTAINER = "waypoint-7d9f8b6c4-x2k8p", "istio-proxy"
SHORT = read_lines(SAMPLES / "waypoint-egress-1.23.log")[0]
# (an access line of over 16 KiB: a long query string, a character other than ASCII in it)
LONG = SHORT.replace('"GET /get ', '"GET /get?q=' + "a" * 16383 + "€" + "b" * 20000 + " ", 1)


def times(k: int) -> str:
    return f"2025-01-30T10:53:24.{326000321 + k:09d}Z"


def fluent_bit(text: str, tag: str, k: int = 0, pod: str = POD, stream: str = "stdout") -> str:
    return json.dumps({"time": times(k), "stream": stream, "_p": tag, "log": text,
                       "kubernetes": {"pod_name": pod, "container_name": CONTAINER}}, ensure_ascii=False)


def cut(line: str, size: int = 16384) -> list[str]:
    """``line`` in parts of ``size`` characters, as a runtime cuts it (at a byte count: the same here)."""
    return [line[k:k + size] for k in range(0, len(line), size)]


def alone(line: str) -> dict:
    """``line``'s record parsed alone, without where and when it was read (a copy: the parse is done
    once a line, ~20 ms for LONG, and the comparisons below ask for it once a key of every record)."""
    return dict(_alone(line))


@functools.lru_cache(maxsize=None)
def _alone(line: str) -> dict:
    return {k: v for k, v in parse_text([line])[0][0].items() if k not in ("line_number", "received_at", "pod", "container")}


def test_fluent_bit_s_records_of_a_split_line_are_joined():
    """Fluent Bit's records of the parts (``_p`` P, P, F), another pod's record and the other stream's
    between them: one row, the line read whole as alone, on its first part's line, with the last part's
    time; the later parts counted as joined (they were each a reject: "column 16385: …" and "not an
    access line"). The same inside Fluent Bit's file output (``tag: [time, record]``)."""
    parts = cut(LONG)
    assert len(parts) == 3
    other = fluent_bit(SHORT, "F", 9, pod="wp-2")
    lines = [fluent_bit(parts[0], "P", 0), other, fluent_bit("an agent's line", "F", 1, stream="stderr"),
             fluent_bit(parts[1], "P", 2), fluent_bit(parts[2], "F", 3), fluent_bit(SHORT, "F", 4)]
    for wrap in (lambda x: x, lambda x: f"kube.var.log.containers.x.log: [1738234404.326000, {x}]"):
        records, rejects, batch = parse_text(map(wrap, lines))
        assert [(r["line_number"], r["pod"], r["received_at"].microsecond) for r in records] == [
            (1, POD, 326000), (2, "wp-2", 326000), (6, POD, 326000)]
        assert {k: v for k, v in records[0].items() if k in alone(LONG)} == alone(LONG)
        assert len(records[0]["path"]) > 36000 and "€" in records[0]["path"]
        assert [(r["line_number"], r["class"]) for r in rejects] == [(3, "noise")]
        assert batch.joined == 2 and batch.read == 6


def test_fluentd_s_cri_and_docker_driver_records_of_a_split_line_are_joined():
    """Fluentd's cri parser's records (``logtag`` P, then F) and docker's fluentd log driver's (as
    Fluentd's forward input gets them: ``partial_message``, ``partial_id``, ``partial_ordinal``,
    ``partial_last``; docker's own records of a line, which were no collector's record: "JSON object is
    not an access-log record") each one row of the whole line."""
    parts = cut(LONG)
    cri = [json.dumps({"stream": "stdout", "logtag": "F" if k == len(parts) - 1 else "P", "log": p, "time": times(k),
                       "kubernetes": {"pod_name": POD, "container_name": CONTAINER}}) for k, p in enumerate(parts)]
    docker = [json.dumps({"container_id": "3f9a" * 16, "container_name": "/istio-proxy", "source": "stdout", "log": p,
                          **({"partial_message": "true"} if k < len(parts) - 1 else {}), "partial_id": "9c1e",
                          "partial_ordinal": str(k + 1), "partial_last": str(k == len(parts) - 1).lower()})
              for k, p in enumerate(parts)]
    whole = json.dumps({"container_id": "3f9a" * 16, "container_name": "/istio-proxy", "source": "stdout", "log": SHORT})
    records, rejects, batch = parse_text(cri + docker + [whole])
    assert rejects == []
    assert [(r["line_number"], r["pod"]) for r in records] == [(1, POD), (4, None), (7, None)]
    assert all({k: v for k, v in r.items() if k in alone(LONG)} == alone(LONG) for r in records[:2])
    assert batch.joined == 4


def test_two_containers_docker_driver_parts_that_interleave_are_joined_each_to_its_own():
    """docker's fluentd log driver names no pod or container a record's reader sees (pod and container
    null), so two containers' parts of one stream were one run: the first line's first part, the
    other's, then the first's last glued into one reject ("a second access line starts here"), the
    other's last part a reject too, 4 records counted as joined. Each record names its container_id."""
    parts = cut(LONG)

    def driver(cid: str, k: int, pid: str) -> str:
        return json.dumps({"container_id": cid * 16, "container_name": "/" + cid, "source": "stdout", "log": parts[k],
                           "partial_message": "true", "partial_id": pid, "partial_ordinal": str(k + 1),
                           "partial_last": str(k == len(parts) - 1).lower()})

    lines = [driver(cid, k, pid) for k in range(len(parts)) for cid, pid in (("3f9a", "9c1e"), ("77bb", "1d2f"))]
    records, rejects, batch = parse_text(lines)
    assert rejects == []
    assert [r["line_number"] for r in records] == [1, 2] and batch.joined == 4
    assert all({k: v for k, v in r.items() if k in alone(LONG)} == alone(LONG) for r in records)


def test_a_part_whose_last_part_is_not_there_is_one_reject_saying_so():
    """A split line's first parts at a batch's end (the agent still writing, a file cut short): each one
    malformed reject saying so, as the record was written; a part of another pod's or stream's line is
    not taken for the last part; the count adds up."""
    parts = cut(LONG)
    lines = [fluent_bit(parts[0], "P"), fluent_bit(parts[1], "P", 1), fluent_bit(SHORT, "F", 2, pod="wp-2"),
             fluent_bit(parts[2], "F", 3, stream="stderr")]
    records, rejects, batch = parse_text(lines)
    assert [r["line_number"] for r in records] == [3]
    assert [(r["line_number"], r["class"], r["reason"], r["raw"]) for r in rejects[:2]] == [
        (1, "malformed", RECORD_PARTIAL, lines[0]), (2, "malformed", RECORD_PARTIAL, lines[1])]
    assert batch.read == len(records) + len(rejects) + batch.blank + batch.joined


def test_a_last_part_that_is_empty_ends_the_line_and_a_quote_in_the_text_is_no_tag():
    """A line of exactly 16 KiB: its last part's text is empty (a blank record alone), joined all the same;
    a line whose text says ``"_p":"P"`` (escaped in the record) is no part."""
    line = SHORT.replace('"GET /get ', '"GET /get?q=' + "a" * (16384 - len(SHORT.encode()) - 3) + " ", 1)
    assert len(line.encode()) == 16384
    quoted = SHORT.replace('"curl/8.11.1"', '"curl \\"_p\\":\\"P\\""')
    records, rejects, batch = parse_text([fluent_bit(line, "P"), fluent_bit("", "F", 1), fluent_bit(quoted, "F", 2)])
    assert [r["line_number"] for r in records] == [1, 3] and batch.joined == 1 and batch.blank == 0
    assert [r["class"] for r in rejects] == []


def test_the_summary_counts_the_joined_parts(tmp_path):
    """``logpipe parse``'s summary: the later parts counted as joined, as a node file's are."""
    parts = cut(LONG)
    path = tmp_path / "records.log"
    path.write_text("\n".join([fluent_bit(parts[0], "P"), fluent_bit(parts[1], "P", 1), fluent_bit(parts[2], "F", 2),
                               fluent_bit(SHORT, "F", 3)]) + "\n")
    run = run_logpipe("parse", path, "-o", "ndjson")
    assert "read 4, parsed 2, rejected 0 (noise 0, malformed 0), joined 2" in run.stderr, run.stderr


def test_a_split_istio_json_line_is_joined_and_read_as_json():
    """A line of Istio's JSON encoding over 16 KiB: its first part starts as a record would (``{``), and
    is no record of its own (half an object); joined, it is read as Istio's encoding (each part was a
    reject: invalid JSON)."""
    obj = json.loads(read_lines(SAMPLES / "istio-json-1.24.log")[0])
    obj["path"] = "/get?q=" + "a" * 20000
    parts = cut(json.dumps(obj))
    records, rejects, batch = parse_text([fluent_bit(parts[0], "P"), fluent_bit(parts[1], "F", 1)])
    assert [(r["line_number"], r["log_format"], r["path"]) for r in records] == [(1, "istio_json", obj["path"])]
    assert rejects == [] and batch.joined == 1


def _across(kind: str) -> list[str]:
    """Short records, a split line's records (the other stream's record between its parts), short
    records, of ``kind``: Fluent Bit's ``_p``, Fluentd's ``logtag``, docker's fluentd driver's ``partial_last``."""
    parts = cut(LONG)

    def record(text: str, k: int, last: bool, stream: str = "stdout") -> str:
        if kind == "fluent_bit":
            return fluent_bit(text, "F" if last else "P", k, stream=stream)
        if kind == "fluentd":
            return json.dumps({"stream": stream, "logtag": "F" if last else "P", "log": text, "time": times(k),
                               "kubernetes": {"pod_name": POD, "container_name": CONTAINER}})
        return json.dumps({"container_id": "3f9a" * 16, "container_name": "/istio-proxy", "source": stream, "log": text,
                           "partial_id": "9c1e", "partial_last": str(last).lower()})

    return [record(SHORT, k, True) for k in range(3)] + [
        record(parts[0], 3, False), record("agent says hi", 4, True, "stderr"), record(parts[1], 5, False),
        record(parts[2], 6, True)] + [record(SHORT, k, True) for k in range(7, 9)]


def test_a_split_line_s_records_across_a_batch_s_end_are_joined(tmp_path, monkeypatch):
    """The readers keep a split line's records in one batch, as a node file's parts (parse_lines' batches
    of each size, ingest's chunks of a plain and of a compressed file, `logpipe stream`'s batches of 2
    lines): joined, where each part across a batch's end was a reject ("column 16385: …", RECORD_PARTIAL)."""
    import gzip
    import io

    import duckdb
    from test_stream import stream_cli

    from logpipe import ingest, pipeline
    from logpipe.parse import parse_lines

    for kind in ("fluent_bit", "fluentd", "docker"):
        lines = _across(kind)
        for size in range(1, len(lines) + 1):
            batches = list(parse_lines(lines, batch_size=size))
            assert [sum(getattr(b, k) for b in batches) for k in ("joined", "read")] == [2, 9], (kind, size)
            assert sum(b.records.num_rows for b in batches) == 6 and sum(b.rejects.num_rows for b in batches) == 1
    text = "\n".join(_across("fluent_bit")) + "\n"
    (tmp_path / "fb.log").write_text(text)
    (tmp_path / "fb.log.gz").write_bytes(gzip.compress(text.encode()))
    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 24 << 10)  # (the parts end at ~35 and ~52 KB)
    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    for name in ("fb.log", "fb.log.gz"):
        data = tmp_path / f"data-{name}"
        summary = ingest.ingest_paths([str(tmp_path / name)], str(data), err=io.StringIO(), progress=False)
        assert (summary.counts.joined, summary.rows, summary.counts.malformed) == (2, 6, 0), name
        assert duckdb.sql(f"select max(length(path)) from read_parquet('{data}/date=*/*.parquet')").fetchall()[0][0] > 36000
    run = stream_cli(tmp_path / "s", "--flush-rows", "2", "-q", input=text.encode())  # (in this process: fd 0 a file)
    assert run.returncode == 0, run.stderr
    assert "lines read 9, parsed 6, rejected 1 (noise 1, malformed 0), joined 2" in run.stderr.decode(), run.stderr


def test_a_split_line_s_records_with_no_last_part_are_one_reject_each_whatever_the_batches():
    """Parts whose last part never comes (the input ends) are each one reject saying so, whatever the
    batch size; a run of parts longer than a batch is held back within bounds (parse_lines: two batches
    and 64 lines), then given as rejects, not held to the input's end."""
    from logpipe.parse import parse_lines

    parts = cut(LONG)
    lines = [fluent_bit(SHORT, "F", 0), fluent_bit(parts[0], "P", 1), fluent_bit(parts[1], "P", 2)]
    for size in (1, 2, 3):
        rejects = [r for b in parse_lines(lines, batch_size=size) for r in b.rejects.to_pylist()]
        assert [(r["line_number"], r["reason"]) for r in rejects] == [(2, RECORD_PARTIAL), (3, RECORD_PARTIAL)]
    taken = []

    def endless():
        for k in range(10_000):
            taken.append(k)
            yield fluent_bit(parts[0], "P", k)

    first = next(parse_lines(endless(), batch_size=10))
    assert first.rejects.num_rows > 0 and len(taken) <= 2 * 10 + 64 + 1
