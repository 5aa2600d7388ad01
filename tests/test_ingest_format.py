"""`logpipe ingest --format-string`: custom formats land in the dataset, and the dataset remembers them."""
import json
import subprocess
import sys

import duckdb
import pytest
from conftest import run_logpipe

FORMAT = ('[%START_TIME%] %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %DURATION% "%REQ(X-B3-TRACEID)%" '
          '%UPSTREAM_CLUSTER% %DOWNSTREAM_REMOTE_ADDRESS%')
LINES_A = [
    '[2025-01-30T10:53:24.085Z] GET /get 200 12 "80f198ee56343ba8" outbound|443||api.github.com; 10.244.0.24:45748',
    '[2025-01-30T10:53:25.085Z] POST /v1/charges 503 40 "80f198ee56343ba9" PassthroughCluster 10.244.0.25:45748',
]
LINE_B = '[2025-01-30T10:53:26.085Z] GET /x 200 12 "90f198ee56343ba8" outbound|443||api.github.com 10.244.0.24:45749'


def ingest(*args, cwd):
    return run_logpipe("ingest", *args, cwd=cwd)


def rows(data):
    return duckdb.sql(
        f"select line_number, method, path, response_code, x_b3_traceid, upstream_cluster, upstream_cluster_host "
        f"from read_parquet('{data}/date=*/*.parquet', union_by_name=true) order by start_time").fetchall()


def test_custom_format_is_ingested_and_remembered(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text("\n".join(LINES_A) + "\n")
    r = ingest("--format-string", FORMAT, str(logs), "--data", "ds", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "parsed 2, rejected 0" in r.stderr
    got = rows(tmp_path / "ds")
    assert got == [
        (1, "GET", "/get", 200, "80f198ee56343ba8", "outbound|443||api.github.com", "api.github.com"),
        (2, "POST", "/v1/charges", 503, "80f198ee56343ba9", "PassthroughCluster", None),
    ]
    manifest = json.loads((tmp_path / "ds" / "_manifest.json").read_text())
    assert manifest["format_spec"]

    # A later archive, ingested without naming the format, is read with the remembered one.
    (logs / "b.log").write_text(LINE_B + "\n")
    r = ingest(str(logs), "--data", "ds", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "remembered" in r.stderr
    assert len(rows(tmp_path / "ds")) == 3


def test_without_the_format_the_lines_are_malformed(tmp_path):
    (tmp_path / "a.log").write_text("\n".join(LINES_A) + "\n")
    r = ingest("a.log", "--data", "ds", cwd=tmp_path)
    assert r.returncode == 1
    assert "malformed 2" in r.stderr


def test_stream_uses_the_format_the_dataset_remembers(tmp_path):
    (tmp_path / "a.log").write_text("\n".join(LINES_A) + "\n")
    assert ingest("--format-string", FORMAT, "a.log", "--data", "ds", cwd=tmp_path).returncode == 0
    from test_stream import stream_cli

    r = stream_cli(tmp_path / "ds", "--quiet", input=(LINE_B + "\n").encode())  # (in this process)
    assert r.returncode == 0, r.stderr
    assert b"parsed 1, rejected 0" in r.stderr
    assert [row[4] for row in rows(tmp_path / "ds")] == ["80f198ee56343ba8", "80f198ee56343ba9", "90f198ee56343ba8"]


def test_a_wrong_time_first_format_fails_the_ingest_not_passes_as_noise(tmp_path):
    """A format that starts with an unbracketed %START_TIME% makes its lines look like another
    program's (time, space, word) and like kubectl --timestamps' prefix: a line that follows it for
    two fields and then breaks is its malformed line (parse.CLAIM_FIELDS), so a format given with two
    fields swapped fails --max-reject-ratio; an istio-agent line among them is still noise."""
    lines = [f"2025-03-01T10:00:0{k}.123Z api.example.com GET 200" for k in range(8)]
    lines.append("2025-03-01T10:00:09.123456Z\tinfo\tads\tADS: new connection for node:sidecar~10.0.0.1")
    (tmp_path / "a.log").write_text("\n".join(lines) + "\n")
    right = "%START_TIME% %REQ(:AUTHORITY)% %REQ(:METHOD)% %RESPONSE_CODE%"
    r = ingest("--format-string", right, "a.log", "--data", "ok", cwd=tmp_path)
    assert r.returncode == 0 and "parsed 8, rejected 1 (noise 1, malformed 0)" in r.stderr, r.stderr
    wrong = "%START_TIME% %REQ(:AUTHORITY)% %RESPONSE_CODE% %REQ(:METHOD)%"
    r = ingest("--format-string", wrong, "a.log", "--data", "ds", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "rejected 9 (noise 1, malformed 8)" in r.stderr
    assert "a.log:1: malformed: does not follow the given format: column " in r.stderr


@pytest.mark.parametrize("fast", [True, False])
def test_istio_agent_lines_are_noise_under_a_tab_separated_format(fast):
    """Under ``%START_TIME%\t%REQ(X-REQUEST-ID)%\t…`` an istio-agent line (time, tab, level, tab)
    follows the format for two fields, its level read as the request id: it was malformed, counted
    against --max-reject-ratio. A line a noise rule takes must follow the format for one field more."""
    from logpipe.layouts import parser_from_options

    parser = parser_from_options("%START_TIME%\t%REQ(X-REQUEST-ID)%\t%RESPONSE_CODE%\t%DURATION%")
    if not fast:
        from logpipe.parse import Parser

        parser = Parser(custom=parser.custom, fast=False)
    batch = parser.parse_batch([
        "2023-05-01T10:00:00.000000Z\tinfo\txdsproxy connected to upstream XDS server: istiod.istio-system.svc:15012",
        "2024-07-18T16:13:58.198Z\t8d80cec6\t200\t12",
        "2024-07-18T16:13:58.198Z\t8d80cec6\t200\tx12",
    ], "a.log")
    assert batch.records.column("request_id").to_pylist() == ["8d80cec6"]
    assert [(r["line_number"], r["class"]) for r in batch.rejects.to_pylist()] == [(1, "noise"), (3, "malformed")]


def test_a_new_format_replacing_the_remembered_one_is_said(tmp_path):
    (tmp_path / "a.log").write_text("\n".join(LINES_A) + "\n")
    assert ingest("--format-string", FORMAT, "a.log", "--data", "ds", cwd=tmp_path).returncode == 0
    r = ingest("--format-string", FORMAT, "a.log", "--data", "ds", cwd=tmp_path)
    assert "remembered format is replaced" not in r.stderr  # (the same one)
    r = ingest("--format-string", FORMAT + " %BYTES_SENT%", "a.log", "--data", "ds", cwd=tmp_path)
    assert "note: the dataset's remembered format is replaced by the one given" in r.stderr
    assert "skipped as already ingested 1" in r.stderr


def test_a_wrong_format_is_said_with_where_its_lines_depart_from_it(tmp_path):
    """Lines of a tab-separated format read under another format: each noise reject said only
    "istio-agent/Envoy log line" (time, tab, method as its level, tab), and ingest's warning told the
    user to give a format with --format-string, which they had. Both now say where the line departs
    from the format given."""
    tsv = "%START_TIME%\t%REQ(:METHOD)%\t%RESPONSE_CODE%\t%UPSTREAM_HOST%"
    (tmp_path / "a.log").write_text("".join(f"2025-01-30T10:53:2{i}.085Z\tGET\t200\t192.0.2.7:443\n" for i in range(3)))
    r = ingest("--format-string", "ts=%START_TIME% " + tsv, "a.log", "--data", "ds", cwd=tmp_path)
    assert r.returncode == 0 and "parsed 0, rejected 3 (noise 3" in r.stderr
    (warning,) = [x for x in r.stderr.splitlines() if "warning" in x]
    assert warning.startswith("logpipe: warning: a.log: no access line among its 3 lines, none follows the given "
                              "format; line 1: istio-agent/Envoy log line")
    assert "(nor does it follow the given format: column 1: expected 'ts=' before start_time, got '2025-" in warning
    # (the `logpipe parse` it names repeats the format given, shell-quoted: it said "with the same format option")
    assert warning.endswith("Is the format the proxies'? `logpipe parse --format-string "
                            "'ts=%START_TIME% %START_TIME%\t%REQ(:METHOD)%\t%RESPONSE_CODE%\t%UPSTREAM_HOST%' a.log` shows each line's reason")
    r = run_logpipe("parse", "--format-string", "ts=%START_TIME% " + tsv, "a.log", cwd=tmp_path)
    assert r.stderr.count("nor does it follow the given format: column 1: expected 'ts='") == 3
    r = run_logpipe("parse", "--format-string", tsv, "a.log", "-o", "ndjson", cwd=tmp_path)
    assert "parsed 3, rejected 0" in r.stderr  # (the right format reads them)


@pytest.mark.parametrize("how", ["--format-string", "--format-file", "remembered"])
def test_the_hint_of_a_format_over_the_reject_ratio_repeats_the_format(tmp_path, how):
    """Over --max-reject-ratio under a format given, the error's `logpipe parse a.log` read the lines
    with the built-in layouts, not the format (pasted, it showed other reasons than the ingest's).
    The hint repeats the format option given (shell-quoted), or the format the dataset remembers, and
    pasted as written it reads the lines as the ingest did."""
    import shlex

    fmt = '[%START_TIME%] %REQ(:METHOD)% %RESPONSE_CODE% "%REQ(USER-AGENT)%" it\'s'
    (tmp_path / "f.txt").write_text(fmt + "\n")
    (tmp_path / "a.log").write_text('[2025-01-30T10:53:21.085Z] GET 2OO "curl/8.5.0" it\'s\n')
    option = ["--format-file", "f.txt"] if how == "--format-file" else ["--format-string", fmt]
    if how == "remembered":
        (tmp_path / "ok.log").write_text('[2025-01-30T10:53:20.085Z] GET 200 "curl/8.5.0" it\'s\n')
        assert ingest(*option, "ok.log", "--data", "ds", cwd=tmp_path).returncode == 0
        option = []
    r = ingest(*option, "a.log", "--data", "ds", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    hint = r.stderr.split("check the format with `", 1)[1].split("`", 1)[0]
    given = "--format-file f.txt" if how == "--format-file" else f"--format-string {shlex.quote(fmt)}"
    assert hint == f"logpipe parse {given} a.log"
    assert "(is the format the proxies'?), or raise --max-reject-ratio" in r.stderr
    shown = subprocess.run(hint.replace("logpipe parse", f"{sys.executable} -m logpipe parse"), shell=True,
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "a.log:1: malformed: does not follow the given format: column 32: response_code expected INT" \
        in shown.stderr, shown.stderr


def test_the_hint_of_a_stdin_probe_under_a_format_repeats_it(tmp_path):
    """stdin whose first lines are mostly malformed under the format given: its hint's `logpipe parse`
    repeats the format (it said "give the format with --format-string", which the user had)."""
    fmt = "%START_TIME%\t%REQ(:METHOD)%\t%RESPONSE_CODE%"
    r = run_logpipe("ingest", "--format-string", fmt, "-", "--data", "ds", cwd=tmp_path,
                    input="2025-01-30T10:53:21.085Z\tGET\t2OO\n" * 300)
    assert r.returncode == 1, r.stderr
    assert ("not read further. Is the format the proxies'? `… | head | logpipe parse --format-string "
            "'%START_TIME%\t%REQ(:METHOD)%\t%RESPONSE_CODE%'` says why (--max-reject-ratio 1") in r.stderr, r.stderr
