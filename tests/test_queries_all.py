"""Every .sql file under queries/ runs: the views when a connection is made, every named query with
its declared defaults against a dataset built from sample_logs/. A file added to queries/ (by anyone)
is a new test case here without editing this file."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from logpipe.resources import resource_dir

QUERIES = resource_dir("queries")
SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
NAMED = sorted(p for p in QUERIES.rglob("*.sql") if p.relative_to(QUERIES).parts[0] != "views")
VIEWS = sorted((QUERIES / "views").glob("*.sql"))


def _id(p: Path) -> str:
    return p.relative_to(QUERIES).as_posix()


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    from logpipe.db import connect
    from logpipe.pipeline import parse_to_tables

    records, rejects, _ = parse_to_tables([str(SAMPLES)])
    root = tmp_path_factory.mktemp("data")
    days = pc.fill_null(pc.strftime(records["start_time"], "%Y-%m-%d"), "unknown")
    for day in pc.unique(days).to_pylist():
        (root / f"date={day}").mkdir()
        pq.write_table(records.filter(pc.equal(days, day)), root / f"date={day}" / "part-0.parquet")
    (root / "_rejects").mkdir()
    pq.write_table(rejects, root / "_rejects" / "part-0.parquet")
    c = connect(root)
    yield c
    c.close()


def test_there_are_queries():
    assert NAMED and VIEWS
    names = [p.stem for p in NAMED]
    assert len(names) == len(set(names)), "two query files share a name; `logpipe query NAME` needs unique names"


@pytest.mark.parametrize("path", VIEWS, ids=_id)
def test_view_file_is_one_statement(con, path):
    statements = con.extract_statements(path.read_text(encoding="utf-8"))
    assert len(statements) == 1 and statements[0].type.name == "CREATE"


@pytest.mark.parametrize("view", ["access_log", "egress", "rejects"])
def test_view_answers(con, view):
    from logpipe.queries import run_query

    assert run_query(con, f"SELECT count(*) AS n FROM {view}").column("n")[0].as_py() > 0


@pytest.mark.parametrize("path", NAMED, ids=_id)
def test_named_query_runs_with_defaults(con, path):
    from logpipe.queries import load_queries, run_query

    q = load_queries()[path.stem]
    assert q.path.resolve() == path.resolve()
    assert q.title and q.title != q.name, f"{path}: first comment line should be a title"
    used = set(con.extract_statements(q.sql)[0].named_parameters)
    assert used <= set(q.params), f"{path}: declare {sorted(used - set(q.params))} with -- @param NAME DEFAULT"
    table = run_query(con, q, {})
    assert isinstance(table, pa.Table) and table.num_columns > 0
    assert len(set(table.column_names)) == table.num_columns, "duplicate column names"
    if q.extra.get("group") == "anomalies":  # (`logpipe query NAME` runs these too, without a report's options)
        from logpipe import reports

        assert table.column_names[:6] == list(reports.FINDING_KEYS)
        assert set(table["kind"].to_pylist()) <= {path.stem}
        assert set(table["severity"].to_pylist()) <= set(reports.SEVERITIES)


def test_every_distinct_list_has_an_order():
    """A DISTINCT aggregate of texts without ORDER BY comes out in any order (DuckDB's hash
    aggregation): `"waypoint,registered"` one run, `"registered,waypoint"` the next, so a report's
    JSON changed between runs over the same data."""
    import re

    def calls(text: str):
        for start in (m.start() for m in re.finditer(r"string_agg\(DISTINCT ", text)):
            depth = 0
            for end in range(start, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0 and text[end] == ")":
                    yield text[start:end + 1]
                    break

    loose = [f"{p.relative_to(QUERIES)}: {call}" for p in sorted(QUERIES.rglob("*.sql"))
             for call in calls(p.read_text()) if "ORDER BY" not in call]
    assert loose == []
