"""The anomalies' findings are in a total order: findings tied on severity, kind, destination and
source (one kind's rows of a pair, with other evidence) are listed by their evidence, then their
advice, however the queries' rows came, so the same data gives the same report, byte for byte (users
diff and commit reports). The sort stopped at the source: such findings kept the queries' order."""
from __future__ import annotations

import datetime as dt
import io

import pyarrow as pa

from logpipe import queries, reports

NO_WINDOW = reports.Window(None, None, None, None)  # (no bounds: run_report counts no request, reads no data)

# Findings of one severity, kind, destination and source: they differ in evidence, then (the last
# two) in advice alone. Their order by the whole key is this one.
TIED = [
    {"kind": "new_destination", "severity": "high", "source": "10.0.0.1", "destination": "api.example.com",
     "evidence": {"port": 443, "requests": 3}, "advice": "b"},
    {"kind": "new_destination", "severity": "high", "source": "10.0.0.1", "destination": "api.example.com",
     "evidence": {"port": 443, "requests": 7}, "advice": "a"},
    {"kind": "new_destination", "severity": "high", "source": "10.0.0.1", "destination": "api.example.com",
     "evidence": {"port": 8443, "requests": 1}, "advice": "a"},
    {"kind": "new_destination", "severity": "high", "source": "10.0.0.1", "destination": "api.example.com",
     "evidence": {"port": 8443, "requests": 1}, "advice": "b"},
]
OTHER = {"kind": "new_destination", "severity": "critical", "source": "10.0.0.9", "destination": "x.example.com",
         "evidence": {"port": 443, "requests": 1}, "advice": "z"}


def _report(monkeypatch, rows: list[dict]) -> dict:
    """The anomalies report whose first section's query answers ``rows`` (in that order), the others none."""
    schema = pa.schema([("kind", pa.string()), ("severity", pa.string()), ("source", pa.string()),
                        ("destination", pa.string()),
                        ("evidence", pa.struct([("port", pa.int64()), ("requests", pa.int64())])),
                        ("advice", pa.string())])
    first = reports.report_queries("anomalies")[0]

    def fake_run_query(con, q, params=None, given=None, **_):
        return pa.Table.from_pylist(rows if q is first or q.name == first.name else [], schema=schema)

    monkeypatch.setattr(queries, "run_query", fake_run_query)
    return reports.run_report(None, "anomalies", window=NO_WINDOW)


def test_tied_findings_are_ordered_by_evidence_then_advice(monkeypatch):
    doc = _report(monkeypatch, [TIED[3], TIED[1], OTHER, TIED[2], TIED[0]])
    assert doc["findings"] == [OTHER, *TIED]


def test_the_queries_row_order_changes_no_byte_of_the_report(monkeypatch):
    """Every order of the same rows gives the same JSON and text."""
    outputs = set()
    for rows in ([*TIED, OTHER], [OTHER, *reversed(TIED)], [TIED[2], TIED[0], OTHER, TIED[3], TIED[1]]):
        doc = _report(monkeypatch, rows)
        text = io.StringIO()
        reports.render_text(doc, "anomalies", text)
        outputs.add((reports.to_json(doc), text.getvalue()))
    assert len(outputs) == 1


def test_evidence_of_dates_and_none_sorts(monkeypatch):
    """Evidence of values JSON has no type for (datetimes) and findings of no source or destination
    (None) sort too: the key is the evidence's JSON text."""
    when = dt.datetime(2025, 1, 30, tzinfo=dt.timezone.utc)
    rows = [{"kind": "k", "severity": "low", "source": None, "destination": None, "evidence": {"at": when + dt.timedelta(hours=h)},
             "advice": "a"} for h in (2, 0, 1)]
    schema = pa.schema([("kind", pa.string()), ("severity", pa.string()), ("source", pa.string()),
                        ("destination", pa.string()), ("evidence", pa.struct([("at", pa.timestamp("us", "UTC"))])),
                        ("advice", pa.string())])
    first = reports.report_queries("anomalies")[0]
    monkeypatch.setattr(queries, "run_query", lambda con, q, params=None, given=None, **_: pa.Table.from_pylist(
        rows if q.name == first.name else [], schema=schema))
    doc = reports.run_report(None, "anomalies", window=NO_WINDOW)
    assert [f["evidence"]["at"].hour for f in doc["findings"]] == [0, 1, 2]
