"""Report and query CLI polish: the HTML page is the same bytes for the same data, options a run
would ignore are refused in one line, and the exit codes of empty and unusable data."""
from __future__ import annotations

import datetime as dt
import json
import random

import pytest
from conftest import SAMPLES, run_logpipe

from logpipe import html, reports

from test_report import DAY, SCENARIO, report_db, waypoint_lines

pytest.importorskip("vl_convert")


# ---- the HTML page: the same data, the same bytes ----------------------------------------------------


def tied_lines() -> list[str]:
    """Three clients' three requests each to three hosts: pairs of equal requests, to order by name."""
    return [line.replace("10.244.1.21:56180", f"10.244.9.{c}:56180").rstrip("\n")
            for c in (3, 1, 2) for h in ("tie-c.example", "tie-a.example", "tie-b.example")
            for line in waypoint_lines(h, DAY + dt.timedelta(hours=c), 3)]


@pytest.fixture(scope="module")
def scenario_logs(tmp_path_factory):
    """The scenario's lines as written, and the same lines shuffled (one fixed order)."""
    tmp = tmp_path_factory.mktemp("order")
    lines = [x for f in ("baseline-week.log", "incident-day.log")
             for x in (SCENARIO / f).read_text(encoding="utf-8").splitlines()]
    shuffled = lines[:]
    random.Random(7).shuffle(shuffled)
    (tmp / "as-written.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp / "shuffled.log").write_text("\n".join(shuffled) + "\n", encoding="utf-8")
    return tmp / "as-written.log", tmp / "shuffled.log"


@pytest.mark.parametrize("name", ["inventory", "anomalies"])
def test_the_same_logs_in_another_order_give_the_same_html_page(scenario_logs, tmp_path, name):
    """Users diff and commit their reports: the bytes chart (no ORDER BY) drew its bars in the order
    of DuckDB's hash tables, so the scenario's lines shuffled gave another page (the inventory's
    differed at its first bar, api.github.com's before s3.amazonaws.com's)."""
    pages = []
    for log in scenario_logs:
        out = tmp_path / f"{log.stem}.html"
        r = run_logpipe("report", name, "--input", log, "-o", "html", "--out", out)
        assert r.returncode == 0, r.stderr
        pages.append(out.read_bytes())
    assert pages[0] == pages[1]


def _sort_key(chart: str, row: dict) -> tuple:
    """Each chart's total order, by every column that tells its rows apart (NULLs last)."""
    def text(v):
        return (v is None, "" if v is None else str(v))

    return {
        "requests": lambda: (row["t"], text(row["destination"])),
        "errors": lambda: (row["t"],),
        "pairs": lambda: (-row["requests"], text(row["source"]), text(row["destination"])),
        "bytes": lambda: (text(row["destination"]), row["direction"] != "up (sent)"),
    }[chart]()


def test_each_charts_rows_come_in_a_total_order(tmp_path):
    """Every chart's rows sorted by all its key columns, no two alike: ties too (the pairs chart's
    nine pairs of three requests each, whose order, and which of them its LIMIT kept, was DuckDB's).
    This fails on an unordered chart whatever order DuckDB happens to give, where comparing two runs'
    pages may pass by chance."""
    from logpipe.pipeline import parse_to_tables

    lines = tied_lines()
    random.Random(7).shuffle(lines)
    (tmp_path / "tied.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    records, rejects, _ = parse_to_tables([str(tmp_path / "tied.log")], None)
    with report_db(None, tables={"records": records, "rejects": rejects}, report="inventory") as (con, _floor):
        data = html.chart_data(con, reports.inventory_window(con))
    assert len(data["pairs"]) == 9 and {r["requests"] for r in data["pairs"]} == {3}
    assert len(data["bytes"]) == 6
    for chart, rows in data.items():
        keys = [_sort_key(chart, r) for r in rows]
        assert keys == sorted(keys), chart
        assert len(set(keys)) == len(keys), chart


# ---- options a run would ignore ------------------------------------------------------------------------


def _refused(r, text: str) -> None:
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert r.stderr == f"logpipe: error: {text}\n", r.stderr


@pytest.mark.parametrize("command,args,given", [
    (["query"], ["--cluster-domain", "corp.internal"], "--cluster-domain would be ignored: drop it"),
    (["report", "inventory"], ["--mesh-domain", "global", "--internal-cidr", "default"],
     "--mesh-domain and --internal-cidr would be ignored: drop them"),
    (["query", "destinations"], ["--format-string", "%START_TIME%"], "--format-string would be ignored: drop it"),
    (["report", "anomalies"], ["--grammar", "x.lark", "--data", "some-data"],
     "--data and --grammar would be ignored: drop them"),
])
def test_list_refuses_the_settings_formats_and_data_it_would_ignore(command, args, given):
    """--list runs nothing: the egress view's settings, a format for --input and a --data were
    ignored (exit 0, the listing on stdout), as -p and --input were before them."""
    r = run_logpipe(*command, "--list", *args)
    _refused(r, f"`logpipe {' '.join(command)} --list` runs no query and reads no logs, so {given}, or run it "
                "without --list")


def test_list_takes_logpipe_data_from_the_environment(tmp_path):
    """$LOGPIPE_DATA is the environment's, for every command: --list is no reason to unset it."""
    r = run_logpipe("query", "--list", "-o", "csv", env={"LOGPIPE_DATA": str(tmp_path / "d")})
    assert r.returncode == 0 and r.stdout.startswith("name,"), r.stderr


@pytest.mark.parametrize("args,fmt", [(["-o", "csv"], "csv"), (["--out", "rows.json"], "json"),
                                      (["-o", "ndjson"], "ndjson")])
def test_max_width_is_refused_where_nothing_is_cut(tmp_path, args, fmt):
    """--max-width cuts table and markdown cells; csv, json, … write each value whole: it was ignored."""
    r = run_logpipe("query", "--input", SAMPLES / "waypoint-egress-1.23.log", "--sql", "SELECT 'abcdefgh' AS x",
                    "--max-width", "4", *args, cwd=tmp_path)
    _refused(r, f"--max-width cuts table and markdown cells, and {fmt} writes each value whole, so --max-width "
                "would be ignored: drop it, or give -o table or -o markdown")
    assert not (tmp_path / "rows.json").exists()
    r = run_logpipe("query", "--list", "-o", "csv", "--max-width", "4")  # (the listing's table too)
    assert r.returncode == 2 and "csv writes each value whole" in r.stderr
    r = run_logpipe("query", "--input", SAMPLES / "waypoint-egress-1.23.log", "--sql", "SELECT 'abcdefgh' AS x",
                    "--max-width", "4", "-o", "markdown")
    assert r.returncode == 0 and "| abc… |" in r.stdout, r.stdout


@pytest.mark.parametrize("how", ["--sql", "--sql-file"])
def test_queries_dir_is_refused_with_ones_own_sql(tmp_path, how):
    """--queries DIR loads named queries; SQL of one's own reads none of them: it was ignored."""
    sql = tmp_path / "q.sql"
    sql.write_text("SELECT 1 AS x\n")
    r = run_logpipe("query", how, "SELECT 1 AS x" if how == "--sql" else sql, "--queries", tmp_path, "-o", "csv")
    _refused(r, f"{how} runs the SQL given, not a named query, so --queries would be ignored: drop it, or give "
                "a NAME of a query in DIR instead of the SQL")


# ---- empty and unusable data: exit 0 and exit 1 --------------------------------------------------------


@pytest.mark.parametrize("command", [["report", "inventory"], ["report", "anomalies"],
                                     ["query", "--sql", "SELECT count(*) AS n FROM access_log"]])
def test_input_logs_that_all_fail_to_parse_are_an_error(command):
    """Access lines none of which parsed (a mesh's own format, not given) are logs the run cannot
    read: exit 1 and one line, as ingest's over its reject ratio (they gave an empty answer, exit 0,
    with a warning: a nightly report of them was empty each night)."""
    r = run_logpipe(*command, "--input", SAMPLES / "malformed.log", "-o", "json")
    assert r.returncode == 1 and r.stdout == "", r.stdout
    assert r.stderr.splitlines()[-1] == (
        "logpipe: error: no line of the --input logs parsed (16 malformed); if they are your mesh's own "
        "format, give it with --format-string or --format-file (`logpipe parse FILE` shows each line's reason)")


@pytest.mark.parametrize("name", ["inventory", "anomalies"])
def test_data_of_no_egress_is_an_empty_report_exit_0(name):
    """Records that are all internal traffic (a sidecar's inbound log): the inventory is empty and
    the anomalies have only internal traffic's findings; both exit 0, as for data of no record (an
    empty window is no error for a cron job). Noise around access lines is no error either."""
    for log in ("sidecar-inbound-1.22.log", "noise-mixed.log"):
        r = run_logpipe("report", name, "--input", SAMPLES / log, "-o", "json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        if log.startswith("sidecar"):
            if name == "inventory":
                assert doc["destinations"] == [] and doc["sources"] == []
            else:
                assert doc["window"]["requests"] == 0
                assert {f["evidence"].get("scope") for f in doc["findings"]} <= {"internal"}


def test_page_ids_are_numbered_by_their_first_use_and_stay_distinct():
    """Vega numbers a gradient's and a clip path's ids by its process's counters: the page numbers
    them, in its tags alone (a label's text keeps its `"`: a log value may read so)."""
    svg = ('<svg><linearGradient id="gradient_7"/><clipPath id="clip9"/><path fill="url(#gradient_7)" '
           'clip-path="url(#clip9)"/></svg><svg><linearGradient id="gradient_8"/><path fill="url(#gradient_8)"/>'
           '<text>id="clip5" fill="url(#gradient_8)"</text></svg>')
    assert html._page_ids(svg) == (
        '<svg><linearGradient id="gradient_0"/><clipPath id="clip1"/><path fill="url(#gradient_0)" '
        'clip-path="url(#clip1)"/></svg><svg><linearGradient id="gradient_2"/><path fill="url(#gradient_2)"/>'
        '<text>id="clip5" fill="url(#gradient_8)"</text></svg>')
