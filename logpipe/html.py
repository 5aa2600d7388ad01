"""``logpipe report … -o html``: one self-contained HTML file that works offline.

Charts are Vega-Lite specs rendered to SVG at build time by vl-convert (the Vega project's own
renderer, packaged as a Python wheel with no browser or Node): the SVG is inlined, so the page needs
no JavaScript and no CDN, and the look matches any Vega-Lite chart an operator already knows. The
specs are embedded too, as JSON in a ``<script type="application/json">`` block with ``<``, ``>`` and
``&`` written as ``\\u003c`` …, so a host name or user agent holding ``</script>`` stays data.

Every value from the logs is HTML-escaped (``html.escape``) before it reaches the page; SVG text is
escaped by the renderer and checked again here (no ``<script`` may survive inside a chart).
"""
from __future__ import annotations

import datetime as dt
import html as _html
import json
import re
from typing import Any

from .errors import LogpipeError

TOP_DESTINATIONS = 8
PALETTE = {"critical": "#7f1d1d", "high": "#dc2626", "medium": "#d97706", "low": "#0891b2", "info": "#6b7280"}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1240px;
color:#111827;padding:0 16px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb}
.meta{color:#4b5563}.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
figure{margin:0;border:1px solid #e5e7eb;border-radius:6px;padding:8px;overflow:auto}
figcaption{font-weight:600;margin-bottom:4px}
table{border-collapse:collapse;width:100%;font-size:12.5px;margin-bottom:12px}
th,td{border-bottom:1px solid #e5e7eb;padding:4px 6px;text-align:left;vertical-align:top}
td.ev{overflow-wrap:anywhere;min-width:260px}
th{background:#f9fafb;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
.sev{white-space:nowrap;display:inline-block;border-radius:4px;color:#fff;padding:0 6px;font-weight:600;font-size:11px}
pre{background:#f3f4f6;padding:6px;border-radius:4px;white-space:pre-wrap;margin:4px 0}
.counts span{margin-right:12px}.wide{overflow-x:auto}
.legend{color:#4b5563;font-size:12.5px;margin-bottom:12px}.legend dd{margin:0 0 4px 16px}
.nw{white-space:nowrap}.kv{margin:0}.kv dt{display:inline;color:#4b5563}.kv dd{display:inline;margin:0}
figure svg{max-width:100%;height:auto}.summary{color:#4b5563;font-size:12.5px;margin:4px 0 0}
@media (max-width:900px){.grid{grid-template-columns:1fr}}
@media (max-width:700px){.findings thead{display:none}.findings tr,.findings td{display:block}
.findings tr{border-bottom:1px solid #e5e7eb;padding:4px 0}.findings td{border:0;padding:2px 6px}
.findings td.ev{min-width:0}.findings td[data-label]::before{content:attr(data-label) ": ";color:#4b5563}}
@media print{@page{size:landscape;margin:10mm}body{margin:0;max-width:none;padding:0;font-size:11px}
.grid{grid-template-columns:1fr 1fr}figure,.wide{overflow:visible}figure,tr{break-inside:avoid}
th{position:static}table{font-size:9.5px}td,th{overflow-wrap:break-word;padding:3px 4px}td.ev{min-width:0}}
"""


def escape(value: Any) -> str:
    """A value as HTML text: lists joined by ``, ``, datetimes ISO, None empty; always escaped."""
    from .jsonout import to_jsonable

    if value is None:
        return ""
    v = to_jsonable(value)
    if isinstance(v, list):
        v = ", ".join("" if x is None else (json.dumps(x) if isinstance(x, dict) else str(x)) for x in v)
    elif isinstance(v, dict):
        v = json.dumps(v, ensure_ascii=False)
    return _html.escape(str(v), quote=True)


def script_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element: ``<``, ``>``, ``&`` and U+2028/9 as ``\\uXXXX``."""
    from .jsonout import to_jsonable

    text = json.dumps(to_jsonable(data), ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _svg(spec: dict) -> str:
    try:
        import vl_convert as vlc
    except ImportError:
        # (not `pip install 'logpipe[report]'`: PyPI's logpipe is another project; this one installs from its
        # checkout, where `make demo` gives .venv the report extra)
        raise LogpipeError("the HTML report needs vl-convert-python; install it with `pip install vl-convert-python` "
                           "(or `pip install -e '.[report]'` in logpipe's checkout)") from None
    svg = vlc.vegalite_to_svg(spec)
    start = svg.find("<svg")
    svg = svg[start:] if start >= 0 else svg
    if "<script" in svg.lower() or "<foreignobject" in svg.lower():  # the renderer escapes text; be sure
        raise LogpipeError("a chart came out with markup from the data in it; please report this bug")
    return svg


# The ids Vega's SVG renderer gives a legend's gradient and a clipped mark's clip path, and the
# references to them: numbered by counters of the renderer's process (the second page one process
# draws says gradient_1 where the first said gradient_0).
_SVG_ID = re.compile(r'(?<=id=")(?:gradient_|clip)\d+(?=")|(?<="url\(#)(?:gradient_|clip)\d+(?=\)")')


def _page_ids(svg: str) -> str:
    """The page's charts' SVG with its renderer ids numbered by their first use in the page: the
    same data gives the same bytes however many charts the process drew before (distinct ids stay
    distinct: inline SVGs share the page's ids)."""
    ids: dict[str, str] = {}

    def number(m: re.Match) -> str:
        old = m.group(0)
        if old not in ids:
            ids[old] = f"{'gradient_' if old.startswith('gradient_') else 'clip'}{len(ids)}"
        return ids[old]

    # (in tags alone: a label's text keeps a `"` as it is, and a log value may read id="clip3"; an
    # attribute's `<`, `>` and `"` are escaped, so a tag is all that lies between a `<` and a `>`)
    return re.sub(r"<[^<>]*>", lambda tag: _SVG_ID.sub(number, tag.group(0)), svg)


# ---- chart data: presentation aggregates over the egress view ------------------------------------


def _bucket(span: dt.timedelta | None) -> str:
    span = span if span is not None else dt.timedelta(days=1)
    return "1 hour" if span <= dt.timedelta(days=3) else "6 hours" if span <= dt.timedelta(days=15) else "1 day"


_CHART_WHERE = ("WHERE start_time >= coalesce($lo, '-infinity'::TIMESTAMPTZ) "
                "AND start_time < coalesce($hi, 'infinity'::TIMESTAMPTZ)")


def _chart_bounds(window) -> dict:
    """The charts' rows' bounds, $lo and $hi of _CHART_WHERE: the baseline's start (else the window's) and
    the window's end, None where open."""
    lo = window.baseline_start if window and window.baseline_start else window.start if window else None
    return {"lo": lo, "hi": window.end if window else None}


def chart_bucket(con, window) -> str:
    """The time charts' interval ("1 hour", "6 hours", "1 day"), by their span: the window's ends, else
    (an end --since/--until leave open: the inventory's, all the data) the first or last egress request's
    time. An open end was read as a span of a day: the scenario's inventory (8 days) drew 947 hourly
    points where its anomalies page, of the same rows, drew 220 of 6 hours."""
    p = _chart_bounds(window)
    start, end = p["lo"], p["hi"]
    if start is None or end is None:
        first, last = con.sql(f"SELECT min(start_time), max(start_time) FROM egress {_CHART_WHERE}", params=p).fetchall()[0]
        start, end = start or first, end or last
    return _bucket(end - start if start is not None and end is not None else None)


def chart_data(con, window, params: dict[str, str] | None = None) -> dict[str, list[dict]]:
    """Rows for the four charts, over the baseline and the window together (context matters).
    The error share is error_spike's: failed (queries/views/is_failure.sql, error_spike's failure
    flags) over the egress that is not blocked (a blocked attempt is policy at work, not a failure).
    Each chart's rows come in a total order (its key columns break every tie), so the same data gives
    the same SVG, byte for byte: the bytes chart had no ORDER BY and the pairs chart's ties (and so
    which of them its LIMIT kept) none, so they followed DuckDB's hash tables: the scenario's logs,
    shuffled, drew the bytes chart's bars in another order."""
    from .queries import failure_flags

    p = _chart_bounds(window)
    where = _CHART_WHERE

    def rows(sql: str, **more) -> list[dict]:
        return con.sql(sql, params={**p, **more}).to_arrow_table().to_pylist()

    bucket = chart_bucket(con, window)
    top = f"""top AS (SELECT destination FROM egress {where} GROUP BY 1 ORDER BY count(*) DESC, 1
              LIMIT {TOP_DESTINATIONS})"""
    return {
        "requests": rows(f"""WITH {top}
            SELECT time_bucket(INTERVAL '{bucket}', start_time) AS t, destination, count(*) AS requests
            FROM egress {where} AND destination IN (SELECT destination FROM top) GROUP BY ALL ORDER BY 1, 2"""),
        "errors": rows(f"""SELECT time_bucket(INTERVAL '{bucket}', start_time) AS t,
                round(avg(CASE WHEN is_failure(response_code, response_flags, $failure_flags, error) THEN 1.0 ELSE 0.0 END), 4)
                      AS error_share,
                count(*) AS requests
            FROM egress {where} AND egress_kind <> 'blocked' GROUP BY ALL ORDER BY 1""",
            failure_flags=",".join(failure_flags(params))),
        "pairs": rows(f"""WITH {top}
            SELECT client_named(source_workload, source_ip) AS source, destination, count(*) AS requests
            FROM egress {where} AND destination IN (SELECT destination FROM top) GROUP BY ALL
            ORDER BY requests DESC, source, destination LIMIT 200"""),
        "bytes": rows(f"""SELECT destination, 'up (sent)' AS direction, CAST(sum(bytes_received) AS BIGINT) AS bytes
            FROM egress {where} GROUP BY 1
            UNION ALL SELECT destination, 'down (received)', CAST(sum(bytes_sent) AS BIGINT) FROM egress {where} GROUP BY 1
            ORDER BY destination, direction DESC"""),
    }


# The time charts' x: a UTC scale, as the page's other times are. A temporal field's default scale is
# local time, the renderer's process's (TZ): a report made under TZ=America/New_York drew its ticks and
# the window-start rule's day 5 hours off the header's UTC times, and was another file.
TIME_AXIS = {"field": "t", "type": "temporal", "scale": {"type": "utc"}, "title": "time (UTC)"}


def log_ticks(values: list[int]) -> list[int]:
    """The pairs chart's legend values on its log scale: 1, 2, 5, 10, 20, 50, … within the counts, and
    their least and greatest. Left to Vega, a log scale's legend ticks only its powers of ten: counts of
    3 to 80 had one tick, 10."""
    lo, hi = min(values, default=1), max(values, default=1)
    steps = sorted({m * 10**e for e in range(len(str(hi)) + 1) for m in (1, 2, 5)} | {lo, hi})
    ticks = [v for v in steps if lo <= v <= hi]
    if len(ticks) > 6:  # (five or six ticks read; more crowd the legend): powers of ten, and the ends
        ticks = sorted({lo, hi} | {v for v in ticks if str(v).strip("0") == "1"})
    return ticks


def chart_specs(data: dict[str, list[dict]], window) -> dict[str, dict]:
    from .jsonout import to_jsonable

    base = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "width": 400, "height": 220,
            # (aria off: Vega labelled each point, bar and cell, 276 aria-labels on the scenario's page;
            # a chart is one figure, labelled by its caption, its numbers in the text beside it)
            "config": {"font": "sans-serif", "axis": {"labelLimit": 180}, "aria": False}}
    rule = []
    if window and window.start:
        rule = [{"mark": {"type": "rule", "strokeDash": [4, 3], "color": "#6b7280"},
                 "data": {"values": [{"t": to_jsonable(window.start)}]}, "encoding": {"x": TIME_AXIS}}]
    totals: dict[str, int] = {}
    for r in data["bytes"]:
        totals[r["destination"]] = totals.get(r["destination"], 0) + (r["bytes"] or 0)
    top_bytes = sorted(totals, key=lambda d: (-totals[d], str(d)))[:10]
    return {
        "requests": {**base, "description": "Requests per destination over time (dashed: window start)", "layer": [
            {"mark": {"type": "line", "point": True}, "data": {"values": to_jsonable(data["requests"])},
             "encoding": {"x": TIME_AXIS,
                          "y": {"field": "requests", "type": "quantitative"},
                          "color": {"field": "destination", "type": "nominal"}}}, *rule]},
        "errors": {**base, "description": "Error share over time (5xx and failure flags)", "layer": [
            {"mark": {"type": "area", "line": True, "color": "#dc2626", "opacity": 0.5},
             "data": {"values": to_jsonable(data["errors"])},
             "encoding": {"x": TIME_AXIS,
                          "y": {"field": "error_share", "type": "quantitative", "axis": {"format": "%"},
                                "title": "error share"}}}, *rule]},
        "pairs": {**base, "description": "Source → destination (requests)", "height": {"step": 18},
                  "data": {"values": to_jsonable(data["pairs"])}, "mark": "rect",
                  "encoding": {"x": {"field": "destination", "type": "nominal", "axis": {"labelAngle": -35}},
                               "y": {"field": "source", "type": "nominal"},
                               "color": {"field": "requests", "type": "quantitative", "scale": {"type": "log"},
                                         "legend": {"values": log_ticks([r["requests"] for r in data["pairs"]])}},
                               "tooltip": [{"field": "source"}, {"field": "destination"}, {"field": "requests"}]}},
        "bytes": {**base, "description": "Top destinations by bytes", "height": {"step": 20}, "width": 300,
                  "data": {"values": to_jsonable([r for r in data["bytes"] if r["destination"] in top_bytes])},
                  "mark": "bar", "transform": [{"calculate": "datum.bytes / 1e6", "as": "MB"}],
                  # (in MB, as the text's advice and the ingest's summary say sizes: the axis read
                  # 600,000,000 bytes, its ticks nine digits long)
                  "encoding": {"y": {"field": "destination", "type": "nominal", "sort": top_bytes, "title": None},
                               "x": {"field": "MB", "type": "quantitative", "stack": "zero",
                                     "title": "MB (10⁶ bytes)"},
                               "color": {"field": "direction", "type": "nominal"}}},
    }


def chart_summaries(data: dict[str, list[dict]], bucket: str, top: int = 5) -> dict[str, str]:
    """Each chart's numbers in a line of text (escaped HTML), its alternative for a screen reader and a
    printed page: the busiest destinations, the error share's peak (in an interval of ``bucket``,
    chart_bucket's: 'the most in one interval, at 12:00' said neither that 12:00 began 6 hours of it
    nor why it was lower than error_spike's hour), the busiest pairs, the most bytes."""
    def counted(totals: dict, shown=lambda v: f"{v:,}") -> str:
        best = sorted(totals.items(), key=lambda kv: (-kv[1], str(kv[0])))[:top]
        return "; ".join(f"{escape(k)} {shown(v)}" for k, v in best) or "none"

    requests: dict = {}
    for r in data["requests"]:
        requests[r["destination"]] = requests.get(r["destination"], 0) + r["requests"]
    errors = data["errors"]
    total = sum(r["requests"] for r in errors)
    if total:
        peak = max(errors, key=lambda r: (r["error_share"], r["requests"]))
        failed = sum(r["error_share"] * r["requests"] for r in errors)
        error_text = (f"{percent(failed / total)} of {total:,} requests failed; the most in one interval of "
                      f"{bucket}, {percent(peak['error_share'])}, from {escape(_when_utc(peak['t']))}.")
    else:
        error_text = "No requests."
    pairs = {f"{r['source']} \u2192 {r['destination']}": r["requests"] for r in data["pairs"]}
    sizes: dict = {}
    for r in data["bytes"]:
        sizes[r["destination"]] = sizes.get(r["destination"], 0) + (r["bytes"] or 0)
    return {
        "requests": f"Requests in all, the busiest destinations: {counted(requests)}.",
        "errors": error_text,
        "pairs": f"The busiest pairs: {counted(pairs)}.",
        "bytes": f"Bytes up and down, the most: {counted(sizes, size)}.",
    }


def _when_utc(t) -> str:
    from .reports import _when

    return _when(t) if isinstance(t, dt.datetime) else str(t)


# ---- the page --------------------------------------------------------------------------------------


_ISO_TIME = re.compile(r"(\d{4}-\d\d-\d\dT)(\d\d:\d\d:\d\d(?:\.\d+)?Z)")


def is_bytes(name: str) -> bool:
    """A column or evidence key that counts bytes (bytes_up, largest_request_bytes, …)."""
    return name.startswith("bytes_") or name.endswith("_bytes")


def is_port(name: str) -> bool:
    """A column that holds a port (the inventory's port, destination_port, …): a number that names,
    not counts, shown as logged: 8443, not 8,443."""
    return name == "port" or name.endswith("_port")


def is_share(name: str) -> bool:
    """A column that holds a share of 0 to 1 (the inventory's error_share): shown as a percentage."""
    return name.endswith("_share")


def percent(v: float) -> str:
    """A share as a percentage, one decimal: 0.2345 is 23.5%, as the error chart's axis says it."""
    return f"{v:.1%}"


def size(n: int | float) -> str:
    """Bytes in decimal units with one decimal, as the advice and the ingest's summary say them: 531.7 MB."""
    for unit, d in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= d:
            return f"{n / d:,.1f}\u00a0{unit}"  # (no-break space: a narrow column broke 208.4 over kB)
    return f"{n:g}\u00a0B"


def _value(v: Any, key: str = "") -> str:
    """A JSON-ready value (of evidence ``key``) as escaped HTML: bytes in MB, the exact count beside
    them; an ISO time breakable only at its T; a list joined by ``, ``.
    (A table of 9-digit byte counts read as noise, and a time wrapped at its hyphens, ``2025-03-``
    over ``01T02:36:01.132Z``.)"""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and is_bytes(key):
        return f"{size(v)} ({v} bytes)" if abs(v) >= 1000 else size(v)
    if isinstance(v, (int, float)) and not isinstance(v, bool) and is_share(key):
        return percent(v)
    text = escape(v)
    return _ISO_TIME.sub(r"<span class=nw>\1</span><wbr><span class=nw>\2</span>", text)


def _table(table) -> str:
    from .jsonout import to_jsonable

    if table.num_rows == 0:
        return "<p>(none)</p>"
    import pyarrow as pa

    numeric = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type) for f in table.schema]
    # (<wbr>: a narrow column's name breaks after its underscores, error_<wbr>share, not anywhere)
    head = "".join(f"<th scope=col>{escape(n).replace('_', '_<wbr>')}</th>" for n in table.column_names)
    body = []
    for row in table.to_pylist():
        cells = []
        for (name, v), num in zip(row.items(), numeric):
            v = to_jsonable(v)
            if num and v is not None and is_bytes(name):
                cells.append(f"<td class=num title='{v} bytes'>{size(v)}</td>")
            elif num and v is not None and is_share(name):  # (0.2345 read as a count, not 23.5%)
                cells.append(f"<td class=num title='{v}'>{percent(v)}</td>")
            elif num:
                cells.append(f"<td class=num>{f'{v:,}' if isinstance(v, int) and not is_port(name) else escape(v)}</td>")
            else:
                cells.append(f"<td>{_value(v)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<div class=wide><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def _legend(legend: list[tuple[str, str]]) -> str:
    """What the table's columns mean (its query's ``-- @column`` lines), folded under it."""
    if not legend:
        return ""
    items = "".join(f"<dt><code>{escape(c)}</code></dt><dd>{escape(m)}</dd>" for c, m in legend)
    return f"<details class=legend><summary>Columns</summary><dl>{items}</dl></details>"


def _evidence(evidence: Any) -> str:
    """A finding's evidence, a line for each key: as one run of ``key=value`` words it wrapped
    anywhere, a time or a request id broken over two lines."""
    from .jsonout import to_jsonable
    from .reports import evidence_items

    if not isinstance(evidence, dict):
        return escape(to_jsonable(evidence))
    return "<dl class=kv>" + "".join(f"<div><dt>{escape(k)}</dt> <dd>{_value(v, k)}</dd></div>"
                                     for k, v in evidence_items(evidence)) + "</dl>"


def _findings(doc: dict[str, Any]) -> str:
    from .reports import severity_counts

    f_all = doc["findings"]
    counts = "".join(f'<span><span class=sev style="background:{PALETTE[s]}">{s}</span> {n}</span>'
                     for s, n in severity_counts(f_all).items())
    rows = []
    for f in f_all:
        yaml = f["evidence"].get("service_entry") if isinstance(f["evidence"], dict) else None
        extra = f"<pre>{escape(yaml)}</pre>" if yaml else ""
        # (data-label: a narrow window shows each finding as a block of lines, headed so: no header row)
        rows.append(
            f'<tr><td><span class=sev style="background:{PALETTE[f["severity"]]}">{escape(f["severity"])}</span></td>'
            f"<td>{escape(f['kind'])}</td><td data-label=source>{escape(f['source'])}</td>"
            f"<td data-label=destination>{escape(f['destination'])}</td>"
            f"<td class=ev>{_evidence(f['evidence'])}</td><td>{escape(f['advice'])}{extra}</td></tr>")
    table = ("<table class=findings><thead><tr><th scope=col>severity</th><th scope=col>kind</th>"
             "<th scope=col>source</th><th scope=col>destination</th><th scope=col>evidence</th>"
             f"<th scope=col>advice</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
             if rows else "<p>No findings.</p>")
    return f"<h2>Findings ({len(f_all)})</h2><p class=counts>{counts}</p>{table}"


def render_html(doc: dict[str, Any], name: str, *, con, window, params: dict[str, str] | None = None) -> str:
    """The whole page for report ``name`` (an anomalies page also carries the inventory)."""
    from .reports import _when, inventory_span, run_report

    parts = []
    data = chart_data(con, window, params)
    specs = chart_specs(data, window)
    said = chart_summaries(data, chart_bucket(con, window))
    # (each chart one figure, named by its caption, its numbers said in the text under it; the SVG
    # hidden from the accessibility tree, which had a label for every point of it)
    figures = _page_ids("".join(
        f"<figure id=chart-{k} aria-labelledby=chart-{k}-caption aria-describedby=chart-{k}-summary>"
        f"<figcaption id=chart-{k}-caption>{escape(s['description'])}</figcaption>"
        f"{_svg(s).replace('<svg', '<svg aria-hidden=true', 1)}"
        f"<p class=summary id=chart-{k}-summary>{said[k]}</p></figure>" for k, s in specs.items()))
    meta = ""
    if name == "anomalies":
        w, b = doc["window"], doc["baseline"]
        meta = (f"<p class=meta>Window {escape(_when(w['start']))} to {escape(_when(w['end']))} ({w['requests']} egress "
                f"requests), compared with the baseline {escape(_when(b['start']))} to {escape(_when(b['end']))} "
                f"({b['requests']} requests, {escape(b['source'])}).</p>")
        if b.get("note"):  # (a short baseline: the text's and the JSON's note, reports._short_baseline)
            meta += f"<p class=meta><strong>Note:</strong> {escape(b['note'])}.</p>"
        parts.append(_findings(doc))
        from .reports import Window

        inventory = run_report(con, "inventory", window=Window(window.baseline_start, window.end, None, None))
        # (its tables are of the baseline and the window together, as the charts are, which they did not
        # say: they read as the window's alone; the ends as the header shows them)
        span = inventory_span({"window": {"start": b["start"], "end": w["end"]}})
        parts.append(f"<h2>Inventory</h2><p class=meta>The tables below cover the baseline and the window "
                     f"together, as the charts do: {escape(span)}.</p>")
    else:
        # (the window, as the text says it: a page of --since/--until read as one of all the data)
        meta = f"<p class=meta>Window {escape(inventory_span(doc))}.</p>"
        inventory = doc
    for _qname, title, table, legend in inventory["_sections"]:
        parts.append(f"<h2>{escape(title)}</h2>{_table(table)}{_legend(legend) if table.num_rows else ''}")
    title = "Egress anomalies" if name == "anomalies" else "Egress inventory"
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>logpipe: {title}</title><style>{CSS}</style></head><body>"
        f"<h1>logpipe: {title}</h1>{meta}<div class=grid>{figures}</div>{''.join(parts)}"
        f"<script type=application/json id=chart-specs>{script_json(specs)}</script>"
        "</body></html>\n"
    )
