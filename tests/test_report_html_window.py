"""The HTML inventory says which window it covers, and its time charts' buckets fit the data's
span when --since/--until leave an end open (all the data)."""
from __future__ import annotations

import datetime as dt
import io

import pytest

from logpipe import html, reports

from test_report import SCENARIO, report_db, write_dataset

pytest.importorskip("vl_convert")

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def inventory_db(tmp_path_factory):
    data = write_dataset([SCENARIO / "baseline-week.log", SCENARIO / "incident-day.log"], tmp_path_factory.mktemp("d"))
    with report_db(data, report="inventory") as (con, _floor):
        yield con


def _times(data: dict) -> set[dt.datetime]:
    return {r["t"] for chart in ("requests", "errors") for r in data[chart]}


def test_the_inventorys_charts_of_all_the_data_bucket_by_its_span(inventory_db):
    """The scenario's 8 days, all the data (no window end): 6-hour buckets, as its anomalies page
    (baseline and window, the same 8 days) draws them. An open end was taken for a day's span:
    hourly, 947 points in the requests chart where the anomalies page had 220."""
    data = html.chart_data(inventory_db, reports.inventory_window(inventory_db))
    times = _times(data)
    assert {t.hour % 6 for t in times} == {0} and len({t.hour for t in times}) == 4, sorted(times)[:6]
    assert len(data["requests"]) == 220
    # --since alone: the span is from it to the last egress request (a day and a bit: hourly)
    since = dt.datetime(2025, 3, 7, 12, tzinfo=UTC)
    data = html.chart_data(inventory_db, reports.inventory_window(inventory_db, since=since))
    assert len({t.hour for t in _times(data)}) == 24 and min(_times(data)) == since


@pytest.mark.parametrize("since,until,says", [
    (None, None, "Window all the data."),
    (dt.datetime(2025, 3, 8, tzinfo=UTC), None, "Window 2025-03-08 00:00 UTC to the end."),
    (None, dt.datetime(2025, 3, 8, 12, tzinfo=UTC), "Window the start to 2025-03-08 12:00 UTC."),
])
def test_the_html_inventory_says_its_window(inventory_db, since, until, says):
    """As the text and JSON do: a page of --since 2025-03-08 said nothing of it, and read as all the data."""
    window = reports.inventory_window(inventory_db, since, until)
    doc = reports.run_report(inventory_db, "inventory", window=window)
    page = html.render_html(doc, "inventory", con=inventory_db, window=window)
    assert f"<p class=meta>{says}</p>" in page
    out = io.StringIO()  # (the text's words, from the same place)
    reports.render_text(doc, "inventory", out)
    assert f"window   {says[len('Window '):-1]}\n" in out.getvalue()


@pytest.fixture(scope="module")
def anomalies_db(tmp_path_factory):
    data = write_dataset([SCENARIO / "baseline-week.log", SCENARIO / "incident-day.log"], tmp_path_factory.mktemp("d"))
    with report_db(data, report="anomalies") as (con, _floor):
        yield con


@pytest.mark.parametrize("options, says", [
    ({}, "2025-03-01 00:14 UTC to 2025-03-08 23:58 UTC"),  # (the header's: the first and last egress request)
    ({"since": dt.datetime(2025, 3, 8, 12, tzinfo=UTC), "until": dt.datetime(2025, 3, 8, 18, tzinfo=UTC)},
     "2025-03-01 00:14 UTC to 2025-03-08 18:00 UTC"),
])
def test_the_anomalies_pages_inventory_says_it_covers_the_baseline_too(anomalies_db, options, says):
    """The anomalies page's inventory tables are of the baseline and the window together (as its
    charts), from the baseline's start to the window's end as the header shows them. They said nothing
    of it and read as the window's, under a header that names the window and the baseline apart."""
    window = reports.resolve_window(anomalies_db, **options)
    doc = reports.run_report(anomalies_db, "anomalies", window=window)
    page = html.render_html(doc, "anomalies", con=anomalies_db, window=window)
    assert (f"<h2>Inventory</h2><p class=meta>The tables below cover the baseline and the window together, as the "
            f"charts do: {says}.</p>") in page
    assert page.index("<h2>Inventory</h2>") < page.index("<h2>External destinations</h2>")
