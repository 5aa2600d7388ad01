"""Logs read back from Grafana Loki with ``logcli query`` (and ``--tail``): its default output puts
the entry's time and the stream's labels before each line (``prefix.lark``'s ``logcli_prefix``);
the labels name the pod and container, the time is ``received_at``. (``-o jsonl`` is a record of a
line: tests/test_collector_records.py.)"""
from __future__ import annotations

import datetime as dt
import json

import pytest
from conftest import SAMPLES, parse_file, parse_text, read_lines, run_logpipe, stream_in_two_reads

UTC = dt.timezone.utc
LINE = read_lines(SAMPLES / "waypoint-egress-1.23.log")[0]
JSON_LINE = read_lines(SAMPLES / "istio-json-1.24.log")[0]
ZTUNNEL = next(x for x in read_lines(SAMPLES / "ztunnel.log") if "\taccess\t" in x)
STAMP = "2025-01-30T11:53:24+01:00"  # logcli's RFC3339, in the local zone (here +01:00)
WHEN = dt.datetime(2025, 1, 30, 10, 53, 24, tzinfo=UTC)


def logcli(labels: str, line: str = LINE, width: int = 0, stamp: str = STAMP) -> str:
    """A line as logcli prints it: time, labels padded to ``width``, line."""
    return f"{stamp} {labels.ljust(width)} {line}"


# labels as logcli prints them (sorted, Go-quoted) -> the pod and container they name
LABELS = [
    ('{container="istio-proxy", pod="wp-1"}', "wp-1", "istio-proxy"),
    ('{app="a", container="istio-proxy", job="istio-egress/waypoint", pod="wp-2", stream="stdout"}', "wp-2", "istio-proxy"),
    ('{app="a", container="istio-proxy", namespace="istio-egress"}', None, "istio-proxy"),
    ('{job="x", pod="wp-4"}', "wp-4", None),
    ('{pod="wp-5"}', "wp-5", None),
    ('{k8s_container_name="istio-proxy", k8s_pod_name="wp-6", service_name="waypoint"}', "wp-6", "istio-proxy"),
    ('{app="a \\"quoted\\", pod=\\"not-this\\"", pod="wp-7"}', "wp-7", None),
    ('{app="x, container=\\"not-this\\""}', None, None),
    ('{filename="/var/log/pods/istio-egress_wp-9_0d3c/istio-proxy/0.log", pod="wp-9"}', "wp-9", None),
    ("{}", None, None),
    ('{pod="Not_A_Pod_Name"}', None, None),
]


@pytest.mark.parametrize("labels,pod,container", LABELS, ids=[x[0][:40] for x in LABELS])
def test_the_labels_name_the_pod_and_container(labels, pod, container):
    """Each arrangement of labels (names before, between and after pod and container, OTLP's names,
    quotes and look-alikes inside a value, none): the line reads as alone, with its pod, container
    and time (the local zone's time in UTC); padded or not (query pads to the longest labels,
    --tail does not)."""
    alone = parse_text([LINE])[0][0]
    for width in (0, 120):
        records, rejects, _ = parse_text([logcli(labels, width=width)])
        assert rejects == []
        got = records[0]
        assert (got.pop("pod"), got.pop("container"), got.pop("received_at")) == (pod, container, WHEN)
        assert got == {k: v for k, v in alone.items() if k not in ("pod", "container", "received_at")}


def test_each_kind_of_line_after_the_labels():
    """Istio's JSON encoding, ztunnel's access line, an agent's log line (noise, its column counted
    in the whole line), an empty line (the labels and padding alone, or without the padding an editor
    may strip: blank), in one batch with kubectl's prefixes (one regex for every kind of prefix)."""
    lines = [logcli('{pod="gw-1"}', JSON_LINE, width=30), logcli('{pod="ztunnel-4xk9q"}', ZTUNNEL, width=30),
             logcli('{pod="wp-1"}', "2025-01-30T10:53:14.918572Z\tinfo\txdsproxy\tconnected to upstream XDS server",
                    width=30),
             logcli('{pod="wp-1"}', "", width=30), f'{STAMP} {{pod="wp-1"}}', f"[pod/wp-2/istio-proxy] {LINE}"]
    records, rejects, batch = parse_text(lines)
    assert [(r["line_number"], r["log_format"], r["pod"]) for r in records] == [
        (1, "istio_json", "gw-1"), (2, "ztunnel", "ztunnel-4xk9q"), (6, "istio_1_9", "wp-2")]
    assert [(r["line_number"], r["class"], r["raw"]) for r in rejects] == [(3, "noise", lines[2])]
    assert batch.blank == 2


def test_the_sample_of_logcli_output():
    """sample_logs/loki-logcli.log (``logcli query`` of two namespaces, newest first, +01:00): every
    access line a row with its pod and container, the agent's and an app's lines noise, an empty
    line blank."""
    records, rejects, batch = parse_text(read_lines(SAMPLES / "loki-logcli.log"))
    assert len(records) == 11 and batch.blank == 1 and [r["class"] for r in rejects] == ["noise", "noise"]
    assert all(r["pod"] and r["container"] == "istio-proxy" and r["received_at"] for r in records)
    assert {r["log_format"] for r in records} == {"istio_1_9", "istio_json", "ztunnel"}
    for r in records:  # logcli's time is the entry's, to the second, after the access line's start
        assert dt.timedelta(0) <= r["received_at"] - r["start_time"].replace(microsecond=0) < dt.timedelta(seconds=2)


def test_logcli_jsonl_and_its_default_output_read_alike():
    """The same entries as ``-o jsonl`` prints them (Go's RFC3339Nano time): the same records, but
    for the time's fraction."""
    entries = [('{container="istio-proxy", pod="wp-1"}', {"container": "istio-proxy", "pod": "wp-1"}, LINE),
               ('{pod="gw-1"}', {"pod": "gw-1"}, JSON_LINE)]
    text, _, _ = parse_text([logcli(labels, line, width=40) for labels, _, line in entries])
    jsonl, _, _ = parse_text([json.dumps({"labels": labels, "line": line, "timestamp": "2025-01-30T11:53:24.5+01:00"})
                              for _, labels, line in entries])
    for a, b in zip(text, jsonl):
        assert b.pop("received_at") - a.pop("received_at") == dt.timedelta(milliseconds=500)
        assert a == b


def _compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def test_fluent_bit_records_as_loki_lines_read_as_the_lines_they_hold():
    """Fluent Bit's loki output writes each record as the entry's line, as JSON (``line_format json``,
    its default), so ``logcli query -o jsonl`` prints a record inside a record: read as the line the
    inner one holds, its pod, container and time first, Loki's labels and time where it names none, as
    logcli's default output of the same entries is read (it was a noise reject: "docker json-file log
    wrapper"). An agent's line inside is noise for what it is."""
    kubernetes = {"pod_name": "wp-1", "namespace_name": "istio-egress", "container_name": "istio-proxy"}
    inner = [_compact({"time": "2025-01-30T10:53:24.326000321Z", "stream": "stdout", "_p": "F", "log": LINE,
                       "kubernetes": kubernetes}),
             _compact({"stream": "stdout", "_p": "F", "log": JSON_LINE}),
             _compact({"time": "2025-01-30T10:53:24.326000321Z", "stream": "stderr", "_p": "F",
                       "log": "2025-01-30T10:53:14.918572Z\tinfo\txdsproxy\tconnected to upstream XDS server",
                       "kubernetes": kubernetes})]
    labels = {"job": "fluent-bit", "pod": "wp-2", "container": "istio-proxy"}
    jsonl = [_compact({"labels": labels, "line": x, "timestamp": "2025-01-30T11:53:24.5+01:00"}) for x in inner]
    records, rejects, _ = parse_text(jsonl)
    assert [(r["line_number"], r["log_format"], r["pod"], r["container"], r["received_at"]) for r in records] == [
        (1, "istio_1_9", "wp-1", "istio-proxy", dt.datetime(2025, 1, 30, 10, 53, 24, 326000, tzinfo=UTC)),
        (2, "istio_json", "wp-2", "istio-proxy", dt.datetime(2025, 1, 30, 10, 53, 24, 500000, tzinfo=UTC))]
    assert [(r["line_number"], r["class"], r["raw"]) for r in rejects] == [(3, "noise", jsonl[2])]
    assert "istio-agent" in rejects[0]["reason"]
    bare, _, _ = parse_text([LINE, JSON_LINE])
    for a, b in zip(records, bare):  # (the access line read as it is alone)
        assert {k: v for k, v in a.items() if k not in ("pod", "container", "received_at")} == \
            {k: v for k, v in b.items() if k not in ("pod", "container", "received_at")}
    text, _, _ = parse_text([logcli('{container="istio-proxy", job="fluent-bit", pod="wp-2"}', x, stamp=STAMP)
                             for x in inner[:1]])
    assert [(r["pod"], r["received_at"]) for r in text] == [(r["pod"], r["received_at"]) for r in records[:1]]


def loki_response(*streams, status: str = "success") -> str:
    """A Loki query API response of log streams, as Loki writes it (compact): (labels, values) each."""
    return _compact({"status": status, "data": {"resultType": "streams", "result": [
        {"stream": labels, "values": values} for labels, values in streams], "stats": {"summary": {"totalLinesProcessed": 4}}}})


def test_a_loki_query_api_response_reads_as_its_entries(tmp_path):
    """``curl …/loki/api/v1/query_range`` saved: each response (one a line) is its entries, each read as
    ``logcli query -o jsonl`` prints it: its stream's labels name the pod and container, its time (ns
    since the epoch) is ``received_at``; numbered by entry, in the response's order (it was one
    malformed reject of the whole response: "JSON object is not an access-log record"). An entry's
    third item (Loki 3's structured metadata) is left alone; a response of no log streams (a metric
    query's) stays a line, a reject as before. From a file, gzip'd on stdin, ``ingest`` (the manifest
    says loki-json) and ``stream``."""
    agent = "2025-01-30T10:53:14.918572Z\tinfo\txdsproxy\tconnected to upstream XDS server"
    first = loki_response(
        ({"container": "istio-proxy", "namespace": "istio-egress", "pod": "wp-1"},
         [["1738234404326000321", LINE], ["1738234403000000000", agent, {"structuredMetadata": {"trace_id": "x"}}]]),
        ({"container": "istio-proxy", "pod": "gw-1"}, [["1738234404500000000", JSON_LINE], ["1738234404000000000", ""]]))
    matrix = _compact({"status": "success", "data": {"resultType": "matrix", "result": []}})
    path = tmp_path / "loki.json"
    path.write_text(first + "\n" + loki_response(({"pod": "wp-2"}, [["1738234405000000000", LINE]])) + "\n" + matrix + "\n")
    records, rejects = parse_file(path)
    assert [(r["line_number"], r["log_format"], r["pod"], r["container"], r["received_at"]) for r in records] == [
        (1, "istio_1_9", "wp-1", "istio-proxy", dt.datetime(2025, 1, 30, 10, 53, 24, 326000, tzinfo=UTC)),
        (3, "istio_json", "gw-1", "istio-proxy", dt.datetime(2025, 1, 30, 10, 53, 24, 500000, tzinfo=UTC)),
        (5, "istio_1_9", "wp-2", None, dt.datetime(2025, 1, 30, 10, 53, 25, tzinfo=UTC))]
    assert [(r["line_number"], r["class"]) for r in rejects] == [(2, "noise"), (6, "malformed")]
    assert json.loads(rejects[0]["raw"]) == {"labels": {"container": "istio-proxy", "namespace": "istio-egress",
                                                        "pod": "wp-1"}, "line": agent,
                                             "timestamp": "2025-01-30T10:53:23.000000000Z"}
    bare, _, _ = parse_text([LINE, JSON_LINE])
    for a, b in zip(records, bare):  # (the access line read as it is alone)
        assert {k: v for k, v in a.items() if k not in ("pod", "container", "received_at", "line_number", "source")} == \
            {k: v for k, v in b.items() if k not in ("pod", "container", "received_at", "line_number", "source")}
    import gzip

    run = run_logpipe("parse", "-", "-o", "ndjson", input=gzip.compress(path.read_bytes()), text=False)
    assert b"read 6, parsed 3, rejected 2 (noise 1, malformed 1), blank 1" in run.stderr
    run = run_logpipe("ingest", path, "--data", tmp_path / "d", "--max-reject-ratio", "1")  # (the matrix's line)
    assert run.returncode == 0 and "lines read 6, parsed 3, rejected 2" in run.stderr, run.stderr
    (entry,) = json.loads((tmp_path / "d" / "_manifest.json").read_text())["inputs"]
    assert entry["compression"] == "loki-json"
    err = stream_in_two_reads(tmp_path / "s", path.read_bytes(), 5)
    assert "lines read 6, parsed 3, rejected 2 (noise 1, malformed 1), blank 1" in err


def test_an_indented_loki_response_reads_as_its_entries(tmp_path):
    """A response as ``curl … | jq .`` (2 spaces) or ``python -m json.tool`` (4) saves it, whose ``"data"``
    starts past the file's first 32 bytes: read as the compact one is (it was one reject a line of it,
    "not an access line"); a metric query's is one reject, its compact JSON; an indented response cut
    short (the file's end) is its lines as they are, rejects, none lost. From a file, and ``stream``
    fed its first bytes alone (the "{" and its first key: the next read says what the file is)."""
    streams = ({"container": "istio-proxy", "pod": "wp-1"}, [["1738234404326000321", LINE], ["1738234404500000000", JSON_LINE]])
    compact = loki_response(streams)
    matrix = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    for indent in (2, 4):
        pretty = json.dumps(json.loads(compact), indent=indent)
        path = tmp_path / f"loki{indent}.json"
        path.write_text(pretty + "\n" + json.dumps(matrix, indent=indent) + "\n" + compact + "\n")
        records, rejects = parse_file(path)
        assert [(r["line_number"], r["log_format"], r["pod"], r["container"]) for r in records] == [
            (1, "istio_1_9", "wp-1", "istio-proxy"), (2, "istio_json", "wp-1", "istio-proxy"),
            (4, "istio_1_9", "wp-1", "istio-proxy"), (5, "istio_json", "wp-1", "istio-proxy")]
        assert records[0]["received_at"] == dt.datetime(2025, 1, 30, 10, 53, 24, 326000, tzinfo=UTC)
        assert [(r["line_number"], json.loads(r["raw"])) for r in rejects] == [(3, matrix)]
        cut = pretty.split("\n")[:-3]  # (its last lines not written yet)
        path.write_text(compact + "\n" + "\n".join(cut) + "\n")
        records, rejects = parse_file(path)
        assert [r["line_number"] for r in records] == [1, 2]
        assert [r["raw"] for r in rejects] == cut
        path.write_text("\n".join(cut))  # (no newline after the last line)
        _, rejects = parse_file(path)
        assert [r["raw"] for r in rejects] == cut
    pretty = json.dumps(json.loads(compact), indent=2) + "\n"
    err = stream_in_two_reads(tmp_path / "s", pretty.encode(), 14, pause=0, drained=True)  # (a read of its own)
    assert "lines read 2, parsed 2" in err, err
