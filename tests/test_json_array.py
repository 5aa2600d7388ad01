"""A JSON array of records (``gcloud logging read --format=json``, indented; any CLI's array) reads as
JSON lines, one line an element (``unpack._Document``): the same records, numbered by element."""
from __future__ import annotations

import gzip
import io
import json

import pytest
from conftest import SAMPLES, parse_file, parse_text, read_lines, run_logpipe, stream_in_two_reads

from logpipe import unpack

RECORDS = [json.loads(x) for x in read_lines(SAMPLES / "collector-records.log")]


def lines_of(objs) -> list[str]:
    return [json.dumps(o, separators=(",", ":"), ensure_ascii=False) for o in objs]


def without_source(rows):
    return [{k: v for k, v in r.items() if k != "source"} for r in rows]


@pytest.mark.parametrize("indent", [2, None], ids=["indented", "one-line"])
def test_an_array_reads_as_its_elements_as_json_lines(tmp_path, indent):
    """Each element is the line it would be in a JSON-lines file: the same records and rejects, the
    element's number its line number; a gzip of it too."""
    path = tmp_path / "entries.json"
    path.write_text(json.dumps(RECORDS, indent=indent) + "\n", encoding="utf-8")
    want = parse_text(lines_of(RECORDS))
    got = parse_file(path)
    assert without_source(got[0]) == without_source(want[0]) and len(want[0]) > 10
    assert [(r["line_number"], r["raw"], r["class"]) for r in got[1]] == \
        [(r["line_number"], r["raw"], r["class"]) for r in want[1]]
    gz = tmp_path / "entries.json.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert without_source(parse_file(gz)[0]) == without_source(want[0])


def test_elements_across_the_reader_s_pieces(tmp_path, monkeypatch):
    """Thousands of elements read in pieces far smaller than an element: every one read whole, once."""
    monkeypatch.setattr(unpack, "READ_STEP", 97)
    objs = [dict(RECORDS[1], log=RECORDS[1]["log"].replace("/get", f"/get/{i}")) for i in range(3000)]
    path = tmp_path / "many.json"
    path.write_text(json.dumps(objs, indent=1), encoding="utf-8")
    records, rejects = parse_file(path)
    assert rejects == [] and [r["path"] for r in records] == [f"/get/{i}" for i in range(3000)]
    assert [r["line_number"] for r in records] == list(range(1, 3001))


@pytest.mark.parametrize("text,lines", [
    ("[]\n", []),
    ("[\n]", []),
    ('[{"a": 1}, 1, "x"]', ['{"a":1}', '1', '"x"']),
    ('[{"a": 1},\n {"b": [2, 3]}]\ntrailing text\n', ['{"a":1}', '{"b":[2,3]}', 'trailing text']),
    ('[\n  {"a": 1},\n  {"b": 2', ['{"a":1}', '{"b": 2']),  # cut short: the rest as it is
    ('[{"a": 1}, {"b": oops}, {"c": 3}]', ['{"a":1}', '{"b": oops}, {"c": 3}]']),  # damaged: the rest as it is
])
def test_what_is_not_an_element_is_kept_as_it_is(tmp_path, text, lines):
    """An empty array has no lines; what is not the array's next element (a cut or damaged file,
    text after the array) is given as it is, to be rejected as any line is: nothing is lost."""
    with unpack.unpack(io.BufferedReader(io.BytesIO(text.encode())))[0] as stream:
        got = stream.read().decode().splitlines()
    assert got == lines


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16"])
def test_an_array_with_a_byte_order_mark(tmp_path, codec):
    """An array PowerShell saved (``Out-File``: UTF-16, or UTF-8 with a mark) reads as its elements."""
    path = tmp_path / "entries.json"
    path.write_text(json.dumps(RECORDS[-2:], indent=2), encoding=codec)
    records, rejects = parse_file(path)
    assert rejects == [] and [r["line_number"] for r in records] == [1, 2]


@pytest.mark.parametrize("head,kind", [
    (b"[\n  {\n", "json-array"), (b'[{"a":1}]', "json-array"), (b"[ ]", "json-array"), (b"[", "json-array"),
    (b"[2025-01-30T10:53:24.085Z] ", "plain"), (b"[pod/wp-1/istio-proxy] ", "plain"),
    (b"[2025-02-03 08:08:15.071][16]", "plain"), (b'{"log":"x"}', "plain"), (b"[[1]]", "plain"),
])
def test_an_array_is_told_from_access_lines_by_its_first_bytes(head, kind):
    assert unpack.detect_compression(head) == kind


def test_the_cli_reads_an_array_from_a_file_and_from_stdin(tmp_path):
    """``logpipe parse`` of ``gcloud logging read --format=json``'s output, a file or piped."""
    path = tmp_path / "gcloud.json"
    entries = [r for r in RECORDS if "insertId" in r]  # (Cloud Logging's)
    path.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    # (in this process, conftest.run_logpipe; stdin read in one process, as a small input is)
    by_file = run_logpipe("parse", "-o", "ndjson", path)
    piped = run_logpipe("parse", "-o", "ndjson", "-", input=path.read_text(), env={"LOGPIPE_WORKERS": "1"})
    for run in (by_file, piped):
        assert run.returncode == 0, run.stderr
        assert run.stderr.strip().splitlines()[-1] == "read 2, parsed 2, rejected 0 (noise 0, malformed 0)"
        assert [json.loads(x)["pod"] for x in run.stdout.splitlines()] == \
            ["waypoint-7d9f8b6c4-x2k8p", "egress-gateway-6f7d9c-q2w3e"]


@pytest.mark.parametrize("codec", ["utf-8", "utf-16"])
def test_stream_reads_an_array_on_its_stdin(tmp_path, codec):
    """``logpipe stream`` fed an array (its "[" alone in the first read; or UTF-16 with its mark, as
    PowerShell pipes it) writes its elements' rows."""
    err = stream_in_two_reads(tmp_path / "d", json.dumps(RECORDS[-2:], indent=2).encode(codec), 1)
    assert "lines read 2, parsed 2, rejected 0 (noise 0, malformed 0)" in err
