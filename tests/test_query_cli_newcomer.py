"""A newcomer's `logpipe query` (and the commands around it) on a fresh dataset: what each mistake
says, in one line, with its exit status."""
from __future__ import annotations

import pytest

from conftest import SAMPLES, run_logpipe


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf3") / "data"
    r = run_logpipe("ingest", SAMPLES / "istio-1.5.log", "--data", root)
    assert r.returncode == 0, r.stderr
    return root


# ---- SQL that is not UTF-8 --------------------------------------------------------------------------


def test_an_sql_file_that_is_not_utf8_is_one_line_not_an_internal_error(data, tmp_path):
    sql = tmp_path / "latin1.sql"
    sql.write_bytes("select 1 AS n -- café\n".encode("latin-1"))
    r = run_logpipe("query", "--data", data, "--sql-file", sql)
    assert r.returncode == 2
    assert r.stderr == (f"logpipe: error: --sql-file {sql} is not UTF-8 text (byte 0xe9 at offset 20); "
                        "logpipe reads SQL as UTF-8 (iconv -t UTF-8 converts it)\n")


@pytest.mark.parametrize("option", ["--sql", "--sql-file"])
def test_sql_on_stdin_that_is_not_utf8_is_one_line(data, option):
    r = run_logpipe("query", "--data", data, option, "-", input=b"select 1 \xff", text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("logpipe: error: the SQL on stdin is not UTF-8 text (byte 0xff at offset 9)")


def test_an_sql_argument_that_is_not_utf8_is_one_line(data):
    # (an argument's bytes that are not UTF-8 reach Python as surrogates: DuckDB raised a TypeError at them)
    r = run_logpipe("query", "--data", data, "--sql", "select 1 -- caf\udce9")
    assert r.returncode == 2
    assert r.stderr.startswith("logpipe: error: --sql is not UTF-8 text (byte 0xe9 at offset 15)")


def test_utf8_sql_with_a_byte_order_mark_still_runs(data, tmp_path):
    sql = tmp_path / "bom.sql"
    sql.write_bytes("\ufeffselect 'é' AS e".encode("utf-8"))
    r = run_logpipe("query", "--data", data, "--sql-file", sql, "-o", "csv")
    assert (r.returncode, r.stdout) == (0, "e\né\n"), r.stderr


# ---- an empty --sql ---------------------------------------------------------------------------------


def test_an_empty_sql_is_said_so_not_asked_for_again(data):
    """`--sql "$(cat missing.sql)"` passes ''; it was told to give --sql, which it had."""
    r = run_logpipe("query", "--data", data, "--sql", "")
    assert (r.returncode, r.stderr) == (1, "logpipe: error: SQL error: no SQL statement to run; write a SELECT\n")
    r = run_logpipe("query", "--data", data, "--sql", "", "--queries", data)
    assert r.returncode == 2 and r.stderr.startswith("logpipe: error: --sql runs the SQL given"), r.stderr
    r = run_logpipe("query", "--list", "--sql", "")
    assert r.returncode == 2 and "drop --sql/--sql-file" in r.stderr, r.stderr


# ---- --max-warnings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["parse", "ingest"])
def test_a_negative_max_warnings_is_a_bad_option(command, tmp_path):
    """It was taken: ingest's `--max-warnings -3` said `… 3 more malformed lines not shown` of a log of
    noise alone (32 noise lines, none malformed), and parse's showed none, as 0 does, exit 0."""
    args = ["--data", tmp_path / "d"] if command == "ingest" else []
    r = run_logpipe(command, SAMPLES / "noise-mixed.log", *args, "--max-warnings", "-3")
    assert r.returncode == 2
    assert r.stderr == ("logpipe: error: Invalid value for '--max-warnings': -3 is not in the range x>=0 "
                        f"(see `logpipe {command} --help`)\n")
    assert not (tmp_path / "d").exists()


# ---- --data a directory of logs ---------------------------------------------------------------------


@pytest.mark.parametrize("command", [["query", "--sql", "select 1"], ["report", "inventory"], ["compact"]])
def test_data_that_is_a_directory_of_logs_is_not_advised_to_be_ingested_into(command, tmp_path):
    """The advice was `logpipe ingest PATH --data LOGS_DIR`, which ingest refuses (`already holds files
    that are not a logpipe dataset`): the logs are ingested into a directory of their own."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "access.log").write_bytes((SAMPLES / "istio-1.5.log").read_bytes())
    r = run_logpipe(*command, "--data", logs)
    assert r.returncode == 1
    assert f"it holds other files: if they are logs, make a dataset of them with `logpipe ingest {logs} --data " \
           "NEW_DIR`" in r.stderr
    assert f"--data {logs}`" not in r.stderr and r.stderr.count("\n") == 1
    assert run_logpipe("ingest", logs, "--data", tmp_path / "new").returncode == 0  # (as advised)


@pytest.mark.parametrize("command", [["query", "--sql", "select 1"], ["compact"]])
def test_an_empty_data_directory_is_still_advised_to_be_ingested_into(command, tmp_path):
    r = run_logpipe(*command, "--data", tmp_path)
    assert r.returncode == 1 and f"create a dataset with `logpipe ingest PATH --data {tmp_path}`" in r.stderr, r.stderr


# ---- -o parquet to stdout ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["query", "--sql", "select count(*) AS n FROM access_log"],
                                     ["parse", str(SAMPLES / "istio-1.5.log")]])
@pytest.mark.parametrize("out", [[], ["--out", "-"]])
def test_parquet_to_stdout_that_is_no_terminal_is_written_there(command, out, data):
    """`-o parquet --out -` was refused with `add --out FILE.parquet`, though --help says `- is stdout`;
    Parquet is written front to back, so a pipe or a redirect takes it."""
    import io

    import pyarrow.parquet as pq

    args = ["--data", data] if command[0] == "query" else []
    r = run_logpipe(*command, *args, "-o", "parquet", *out, text=False)
    assert r.returncode == 0, r.stderr
    table = pq.read_table(io.BytesIO(r.stdout))
    assert table.to_pylist() == [{"n": 14}] if command[0] == "query" else table.num_rows == 14


def test_parquet_to_a_terminal_is_refused(monkeypatch):
    import sys
    import types

    from logpipe import render
    from logpipe.errors import UsageError

    monkeypatch.setattr(sys, "stdout", types.SimpleNamespace(isatty=lambda: True))
    with pytest.raises(UsageError, match=r"^-o parquet is binary, not for the terminal: give --out FILE.parquet"):
        render.parquet_out(None)
    render.parquet_out("x.parquet")  # (a file: written there)


def test_an_html_report_to_a_terminal_is_refused(data, monkeypatch, capsys):
    """-o html without --out on a terminal wrote ~160 KB of markup there (-o parquet is refused so too);
    into a pipe or a file it is written."""
    import sys

    from logpipe.cli import main

    monkeypatch.setattr(sys, "argv", ["logpipe", "report", "inventory", "--data", data, "-o", "html"])
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    assert (exc.value.code, out) == (2, "") and err.splitlines() == [
        "logpipe: error: -o html is a page for a browser, not the terminal: give --out FILE.html, or redirect stdout "
        "(> report.html)"]


@pytest.mark.parametrize("n", ["0", "-5"])
def test_compact_min_files_below_one_is_a_bad_option(n, data):
    # (it was taken as 2 without a word, as 1 still is: a merge takes two files)
    r = run_logpipe("compact", "--data", data, "--min-files", n)
    assert r.returncode == 2 and "--min-files" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


@pytest.mark.parametrize("where,hint", [
    ("start_time > 'yesterday'", "write a time as '2025-03-08 14:00' (UTC; "),
    ("response_code = 'abc'", "a value does not fit its type: `logpipe query --sql 'DESCRIBE egress'` gives each column's type"),
])
def test_a_value_that_does_not_convert_is_hinted_at_as_a_value_not_a_column(data, where, hint):
    # (the hint was "`DESCRIBE egress` lists the columns", for a query whose columns were all right)
    r = run_logpipe("query", "--data", data, "--sql", f"select count(*) from egress where {where}")
    assert r.returncode == 1 and "Conversion Error" in r.stderr and hint in r.stderr, r.stderr
    assert "lists the columns" not in r.stderr and len(r.stderr.splitlines()) == 1
