"""OTLP/JSON (the OpenTelemetry Collector's file exporter: one ExportLogsServiceRequest a line, many log
records in each; Istio's envoyOtelAls provider puts an access line in each record's body) reads as
one line a log record (``logpipe/otlp.py``), numbered by record, with the pod, container and time
the record's resource and times give."""
from __future__ import annotations

import datetime as dt
import io
import json
import re

import pytest
from conftest import SAMPLES, parse_file, parse_text, read_lines, run_logpipe, stream_in_two_reads

from logpipe import otlp, unpack

UTC = dt.timezone.utc
SAMPLE = SAMPLES / "otel-collector-file.jsonl"
ACCESS = read_lines(SAMPLES / "waypoint-egress-1.23.log")


def kv(key, value):
    return {"key": key, "value": value}


def request(*resources) -> str:
    """An ExportLogsServiceRequest line: ``resources`` are (pod, [body texts])."""
    return json.dumps({"resourceLogs": [
        {"resource": {"attributes": [kv("k8s.pod.name", {"stringValue": pod})]},
         "scopeLogs": [{"scope": {}, "logRecords": [{"timeUnixNano": str(1738234404085000000 + k),
                                                      "body": {"stringValue": body}} for k, body in enumerate(bodies)]}]}
        for pod, bodies in resources]}, separators=(",", ":"))


def test_a_record_s_attributes_and_times():
    """Attributes become one object of plain values (an int64 is a text in OTLP/JSON), an array or a
    key-value list stays as written; ``time`` is when the collector observed the record, else its
    own time, else none (0 is no time)."""
    got = otlp.records({"resourceLogs": [{
        "resource": {"attributes": [kv("k8s.pod.name", {"stringValue": "wp-1"}), kv("n", {"intValue": "42"})]},
        "scopeLogs": [{"logRecords": [
            {"observedTimeUnixNano": "1738234404326000321", "timeUnixNano": "1738234404085000000",
             "body": {"stringValue": "a"},
             "attributes": [kv("ok", {"boolValue": True}), kv("ratio", {"doubleValue": 0.5}),
                            kv("list", {"arrayValue": {"values": [{"stringValue": "x"}]}}), kv("empty", {})]},
            {"observedTimeUnixNano": "0", "timeUnixNano": "1738234404085000000", "body": {"stringValue": "b"}},
            {"body": {"stringValue": "c"}}]}]}]})
    assert [r.get("time") for r in got] == ["2025-01-30T10:53:24.326000321Z", "2025-01-30T10:53:24.085000000Z", None]
    assert got[0]["resource"] == {"k8s.pod.name": "wp-1", "n": 42}
    assert got[0]["attributes"] == {"ok": True, "ratio": 0.5, "list": {"arrayValue": {"values": [{"stringValue": "x"}]}},
                                    "empty": {}}
    assert got[2]["attributes"] == {} and got[2]["body"] == {"stringValue": "c"}


@pytest.mark.parametrize("obj", [{"resourceLogs": 1}, {"resourceLogs": [1]}, {"resourceLogs": [{"scopeLogs": [2]}]},
                                 {"resourceLogs": [{"scopeLogs": [{"logRecords": ["x"]}]}]}, [1], "x"])
def test_what_is_no_request_has_no_records(obj):
    assert otlp.records(obj) is None
    assert otlp.records({"resourceLogs": [{"resource": "x", "scopeLogs": [{"logRecords": [{}]}]}]}) == \
        [{"attributes": {}, "resource": {}}]


def test_the_sample_reads_as_its_access_lines():
    """Each record is the access line its body holds (its newline not part of it), numbered by
    record across the file's lines, its pod and container its resource's, its time the observed one."""
    records, rejects = parse_file(SAMPLE)
    bodies = [r["body"]["stringValue"].removesuffix("\n") for line in read_lines(SAMPLE)
              for r in otlp.records(json.loads(line))]
    bare, _, _ = parse_text(bodies)
    assert rejects == [] and len(records) == len(bodies) == 7
    assert [r["line_number"] for r in records] == list(range(1, 8))
    assert [r["pod"] for r in records] == ["waypoint-7d9f8b6c4-m4n5q"] * 4 + ["waypoint-7d9f8b6c4-x2k9z"] * 3
    assert {r["container"] for r in records} == {"istio-proxy"}
    assert records[0]["received_at"] == dt.datetime(2025, 1, 30, 10, 53, 24, 88000, tzinfo=UTC)
    skip = {"raw", "source", "pod", "container", "received_at"}
    assert [{k: v for k, v in r.items() if k not in skip} for r in records] == \
        [{k: v for k, v in r.items() if k not in skip} for r in bare]


def test_records_across_the_reader_s_pieces(tmp_path, monkeypatch):
    """Requests of many records read in pieces far smaller than a line: every record read, once, in order."""
    monkeypatch.setattr(unpack, "READ_STEP", 97)
    lines = [request(("wp-1", [ACCESS[0].replace("/get", f"/get/{i}-{k}") for k in range(50)])) for i in range(20)]
    path = tmp_path / "otlp.json"
    path.write_text("\n".join(lines), encoding="utf-8")  # (the last line without its newline)
    records, rejects = parse_file(path)
    assert rejects == [] and [r["path"] for r in records] == [f"/get/{i}-{k}" for i in range(20) for k in range(50)]
    assert [r["line_number"] for r in records] == list(range(1, 1001))


def test_what_is_no_request_is_kept_as_it_is():
    """A line cut short, or one that is no request, is given as it is (a reject as any line); a blank
    line stays blank; a request of no records has no lines."""
    good = request(("wp-1", ["a", "b"]))
    text = "\n".join([good, good[:40], "", '{"resourceLogs":[]}', '{"resourceLogs":3}', good]) + "\n"
    with unpack.unpack(io.BufferedReader(io.BytesIO(text.encode())))[0] as stream:
        got = stream.read().decode().split("\n")
    assert [json.loads(x)["body"]["stringValue"] if x.startswith('{"time"') else x for x in got] == \
        ["a", "b", good[:40], "", '{"resourceLogs":3}', "a", "b", ""]


@pytest.mark.parametrize("head,kind", [
    (b'{"resourceLogs":[{"resource"', "otlp-json"), (b'{ "resourceLogs" : [', "otlp-json"),
    (b'{"log":"x","resourceLogs":[]}', "plain"), (b'{"resourceSpans":[', "plain"), (b"[2025-01-30T10:53", "plain"),
    # the file exporter's length-prefixed messages: zstd frames, or protobuf whose first field fits
    (b"\x00\x00\x01\x2c\x28\xb5\x2f\xfd\x00", "zstd-messages"), (b"\x00\x00\x00\x1e\x0a\x1c\x0a", "otlp-proto"),
    (b"\x00\x00\x01\x00\x0a\x80\x01\x0a", "otlp-proto"), (b"\x00\x00\x00\x10\x0axyz", "plain"),
])
def test_a_request_is_told_by_its_first_bytes(head, kind):
    assert unpack.detect_compression(head) == kind


def test_ingest_and_stream_read_the_collector_s_file(tmp_path):
    """``logpipe ingest`` of the file (its manifest says otlp-json), and ``logpipe stream`` fed it on
    stdin a few bytes first (a request's first bytes in a read of their own), write its records' rows."""
    run = run_logpipe("ingest", SAMPLE, "--data", tmp_path / "d")
    assert run.returncode == 0, run.stderr
    assert "lines read 7, parsed 7, rejected 0" in run.stderr
    (entry,) = json.loads((tmp_path / "d" / "_manifest.json").read_text())["inputs"]
    assert entry["compression"] == "otlp-json"
    err = stream_in_two_reads(tmp_path / "s", SAMPLE.read_bytes(), 5)
    assert "lines read 7, parsed 7, rejected 0 (noise 0, malformed 0)" in err


def test_a_file_the_exporter_is_still_writing_is_read_again_once_grown(tmp_path):
    """The exporter's last request cut short (being written): that line is a reject, and the input's
    last line is cut, so once the file has grown it is read again whole: every record once."""
    path, data = tmp_path / "access.jsonl", tmp_path / "d"
    first, second = request(("wp-1", ACCESS[:2])), request(("wp-2", ACCESS[2:5]))
    path.write_text(first + "\n" + second[:100], encoding="utf-8")
    cli = ["ingest", path, "--data", data, "--max-reject-ratio", "1"]
    run = run_logpipe(*cli)
    assert run.returncode == 0 and "lines read 3, parsed 2, rejected 1" in run.stderr, run.stderr
    path.write_text(first + "\n" + second + "\n", encoding="utf-8")
    run = run_logpipe(*cli)
    assert run.returncode == 0 and "re-ingesting it whole" in run.stderr, run.stderr
    import duckdb

    query = f"select pod, count(*) from read_parquet('{data}/date=*/*.parquet') group by pod order by pod"
    assert duckdb.sql(query).fetchall() == [("wp-1", 2), ("wp-2", 3)]
    with open(path, "a", encoding="utf-8") as f:  # whole requests added: only they are read
        f.write(request(("wp-3", ACCESS[5:6])) + "\n")
    run = run_logpipe(*cli)
    assert run.returncode == 0 and "grew since the last ingest; read lines 6 to 6" in run.stderr, run.stderr
    assert duckdb.sql(query).fetchall() == [("wp-1", 2), ("wp-2", 3), ("wp-3", 1)]


@pytest.mark.parametrize("sample", ["waypoint-egress-1.23.log", "tcp-and-ipv6.log", "istio-json-1.24.log",
                                    "istio-json-1.1.log", "ztunnel.log", "ztunnel-json.log", "noise-mixed.log",
                                    "malformed.log", "envoy-default.log", "kubectl-prefixed.log", "cri-node.log"])
@pytest.mark.parametrize("names", ["both", "none", "resource-only-pod", "odd-pod"])
def test_records_as_prefixed_lines_read_as_their_json(sample, names, monkeypatch):
    """``as_line`` gives most records as kubectl's prefixed lines, the rest as their JSON: every
    sample line as a record's body, with a pod and container, none, only a pod, or a pod kubectl
    would not name: the same rows and the same rejects (line, class, reason but its columns) as
    every record's JSON."""
    attrs = {"both": [kv("k8s.pod.name", {"stringValue": "wp-1"}), kv("k8s.container.name", {"stringValue": "istio-proxy"})],
             "none": [], "resource-only-pod": [kv("k8s.pod.name", {"stringValue": "wp-1"})],
             "odd-pod": [kv("k8s.pod.name", {"stringValue": "WP_1"}), kv("k8s.container.name", {"stringValue": "c"})]}[names]
    bodies = read_lines(SAMPLES / sample)
    req = json.dumps({"resourceLogs": [{"resource": {"attributes": attrs}, "scopeLogs": [{"logRecords": [
        {"observedTimeUnixNano": str(1738234404326000321 + k) if k % 3 else "0", "body": {"stringValue": b + "\n"}}
        for k, b in enumerate(bodies)]}]}]})
    lines = otlp.OtlpLines()(req.encode() + b"\n", True).decode().splitlines()
    fast = parse_text(lines)
    monkeypatch.setattr(otlp, "as_line", otlp._ENCODE)
    as_json = otlp.OtlpLines()(req.encode() + b"\n", True).decode().splitlines()
    slow = fast if as_json == lines else parse_text(as_json)  # (the same lines, every record's JSON: read once)
    assert fast[0] == slow[0]
    # (a reject's columns are counted in its line as given: the prefix's length, or the JSON's, before it)
    said = lambda rejects: [(r["line_number"], r["class"], re.sub(r"column \d+", "column N", r["reason"]))  # noqa: E731
                            for r in rejects]
    assert said(fast[1]) == said(slow[1])
    assert fast[2].blank == slow[2].blank
    if names in ("both", "none") and sample == "waypoint-egress-1.23.log":
        assert sum(not x.startswith("{") for x in lines) == len(lines)  # (all as prefixed lines)


def test_a_line_longer_than_the_limit_is_given_as_it_is_never_held_whole(monkeypatch):
    """A line longer than ``OtlpLines.LIMIT`` (no request the collector writes) is given as it is, a
    piece at a time: the reader never holds more than the limit, and the requests after it are read."""
    monkeypatch.setattr(otlp.OtlpLines, "LIMIT", 1000)
    good = request(("wp-1", ["a"]))
    long = '{"resourceLogs":[' + "x" * 5000 + "]}"
    data = (good + "\n" + long + "\n" + good + "\n").encode()
    reader, out, held = otlp.OtlpLines(), b"", 0
    for i in range(0, len(data), 300):
        out += reader(data[i:i + 300])
        held = max(held, len(reader._rest))
    out += reader(b"", True)
    got = out.decode().split("\n")
    assert got[1] == long and len(got) == 4 and got[3] == ""
    assert [json.loads(got[k])["body"]["stringValue"] for k in (0, 2)] == ["a", "a"]
    assert held <= 1000 + 300


def messages(*requests: str, cut: int = 0) -> bytes:
    """The file exporter's file with ``compression: zstd``: each request zstd-compressed alone, after
    its length (4 bytes, big-endian); the last message ``cut`` bytes short."""
    import zstandard

    out = b""
    for text in requests:
        frame = zstandard.ZstdCompressor().compress(text.encode())
        out += len(frame).to_bytes(4, "big") + frame
    return out[:len(out) - cut]


def test_zstd_messages_read_as_the_json_lines_they_hold(tmp_path):
    """``compression: zstd``: the same records and rejects as the same requests as JSON lines."""
    path = tmp_path / "access.otlp"
    path.write_bytes(messages(*read_lines(SAMPLE)))
    assert unpack.detect_compression(path.read_bytes()[:unpack.HEAD_BYTES]) == "zstd-messages"
    got, want = parse_file(path), parse_file(SAMPLE)
    strip = lambda rows: [dict(r, source=None) for r in rows]  # noqa: E731
    assert strip(got[0]) == strip(want[0]) and len(got[0]) == 7 and strip(got[1]) == strip(want[1])


def test_zstd_messages_cut_short_keep_the_whole_ones_and_are_read_on_once_grown(tmp_path):
    """A message the exporter is still writing: the messages before it are read (the input says
    where it stopped); once the file has grown, the rest is read, every record once."""
    from click.testing import CliRunner
    from logpipe.cli import cli

    path, data = tmp_path / "access.otlp", tmp_path / "d"
    first, second = request(("wp-1", ACCESS[:2])), request(("wp-2", ACCESS[2:5]))
    path.write_bytes(messages(first, second, cut=10))
    run = CliRunner().invoke(cli, ["ingest", str(path), "--data", str(data)])
    assert run.exit_code == 1 and "lines read 2, parsed 2" in run.stderr, run.stderr
    assert "the file ended inside a message (the exporter may still be writing it)" in run.stderr
    run = CliRunner().invoke(cli, ["ingest", str(path), "--data", str(data)])  # not grown yet: no damaged archive
    assert run.exit_code == 0 and "access.otlp: already ingested up to where it stopped (2 lines); skipped" in run.stderr, \
        run.stderr
    path.write_bytes(messages(first, second))
    run = CliRunner().invoke(cli, ["ingest", str(path), "--data", str(data)])
    assert run.exit_code == 0 and "grew since the last ingest; read lines 3 to 5" in run.stderr, run.stderr
    import duckdb

    query = f"select pod, count(*) from read_parquet('{data}/date=*/*.parquet') group by pod order by pod"
    assert duckdb.sql(query).fetchall() == [("wp-1", 2), ("wp-2", 3)]


def test_otlp_protobuf_is_refused_with_what_to_set(tmp_path):
    """``format: proto`` (length-prefixed protobuf) is not read: one line says what to set."""
    from click.testing import CliRunner
    from logpipe.cli import cli

    path = tmp_path / "access.otlp"
    body = b"\x0a\x1c\x0a\x1a" + b"\x00" * 26  # (ExportLogsServiceRequest: field 1, resource_logs)
    path.write_bytes(len(body).to_bytes(4, "big") + body)
    assert unpack.detect_compression(path.read_bytes()[:unpack.HEAD_BYTES]) == "otlp-proto"
    said = f"{path}: OTLP protobuf (the OpenTelemetry Collector's file exporter with format: proto) is not read: " \
        "set format: json in the exporter"
    run = CliRunner().invoke(cli, ["parse", str(path)])
    assert run.exit_code != 0 and said in run.stderr
    run = CliRunner().invoke(cli, ["ingest", str(path), "--data", str(tmp_path / "d")])  # (not entered as read)
    assert run.exit_code != 0 and said + "\n" in run.stderr and "ingested 0," in run.stderr, run.stderr


def test_a_request_of_an_older_collector_names_its_scopes_instrumentation_library_logs(tmp_path):
    """OTLP/JSON before 0.15 (collectors of early 2022 wrote it) holds a resource's records under
    ``instrumentationLibraryLogs``, which a JSON receiver reads where ``scopeLogs`` is not set
    (opentelemetry-proto's logs.proto): the same records as under ``scopeLogs`` (the request's line
    gave no line at all: its records were lost, neither rows nor rejects)."""
    new = request(("wp-1", [ACCESS[0], ACCESS[1] + "\n"]), ("wp-2", ["started"]))
    old = new.replace('"scopeLogs":', '"instrumentationLibraryLogs":').replace('"scope":{},', '"instrumentationLibrary":{},')
    assert "scopeLogs" not in old
    assert otlp.records(json.loads(old)) == otlp.records(json.loads(new))
    (tmp_path / "old.jsonl").write_text(old + "\n")
    (tmp_path / "new.jsonl").write_text(new + "\n")
    got, want = parse_file(tmp_path / "old.jsonl"), parse_file(tmp_path / "new.jsonl")
    assert [len(x) for x in want] == [2, 1]
    for a, b in zip(got, want):
        assert [{k: v for k, v in r.items() if k != "source"} for r in a] == [{k: v for k, v in r.items() if k != "source"} for r in b]
