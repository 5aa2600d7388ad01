"""The HTML report: self-contained, every log value escaped, and drawn by a real headless Chromium
(charts visible, no console message)."""
from __future__ import annotations

import html
import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from logpipe.cli import cli

from test_report import SCENARIO, write_dataset

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0"]
XSS = "<script>alert(1)</script>"
HOSTILE = [
    # An unregistered host whose name is markup, called directly: it becomes a destination, a new
    # destination, unregistered egress (with a ServiceEntry refused for the bad name) and a chart label.
    f'[2025-03-08T10:00:0{i}.000Z] "GET /x HTTP/1.1" 200 - via_upstream - "-" 0 10 5 4 "-" "{XSS}" '
    f'"9a1b2c3d-0000-4000-8000-00000000000{i}" "{XSS}" "198.51.100.9:80" PassthroughCluster 10.244.1.9:4000 '
    f'198.51.100.9:80 10.244.1.9:4001 - allow_any'
    for i in range(3)
]


def render(data: Path, out: Path, *args: str) -> str:
    r = CliRunner().invoke(cli, ["report", "anomalies", "--data", str(data), "-o", "html", "--out", str(out), *args])
    assert r.exit_code == 0, r.output
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def hostile_page(tmp_path_factory) -> Path:
    """The anomalies' HTML report of the scenario's baseline week and HOSTILE's lines the next day,
    written once: for the tests that read it, and the one a browser draws."""
    tmp = tmp_path_factory.mktemp("hostile")
    log = tmp / "hostile.log"
    log.write_text((SCENARIO / "baseline-week.log").read_text(encoding="utf-8") + "\n".join(HOSTILE) + "\n")
    render(write_dataset([log], tmp / "data"), tmp / "report.html")
    return tmp / "report.html"


@pytest.fixture(scope="module")
def hostile_html(hostile_page) -> str:
    return hostile_page.read_text(encoding="utf-8")


def test_log_values_are_escaped(hostile_html):
    assert XSS not in hostile_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile_html
    # The only <script> element is the JSON block of chart specs, and markup inside it is \u003c-escaped.
    assert hostile_html.count("<script") == 1
    block = re.search(r"<script type=application/json id=chart-specs>(.*?)</script>", hostile_html, re.S).group(1)
    assert "<" not in block and "\\u003cscript\\u003e" in block
    assert XSS in json.dumps(json.loads(block), ensure_ascii=False)


def test_self_contained(hostile_html):
    assert not re.search(r"""<(link|img|iframe)\b|\bsrc\s*=|@import|url\(\s*['"]?https?:""", hostile_html, re.I)
    assert hostile_html.count("<svg") == 4


def test_inventory_legend_folded_under_its_table(hostile_html):
    """The inventory's tables carry their columns' meanings (their queries' `-- @column` lines) in a
    <details> under each, escaped as every value is."""
    from logpipe.queries import load_queries

    assert hostile_html.count("<details class=legend><summary>Columns</summary>") == 2
    transport = load_queries()["destinations"].extra["columns"]["transport"]
    assert f"<dt><code>transport</code></dt><dd>{html.escape(transport)}</dd>" in hostile_html


# ---- a real browser --------------------------------------------------------------------------------


def png_pixels(path: Path, max_rows: int = 10**9) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes): width, height, and the first
    ``max_rows`` rows of pixel bytes."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, rows, prev, stride = zlib.decompress(idat), [], bytearray(width * bpp), width * bpp
    for y in range(min(height, max_rows)):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        # (a loop of its own for each filter: ~4 million bytes; a = left, b = up, c = up-left; 0 off the left edge)
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            line = bytearray((x + b) & 255 for x, b in zip(line, prev))
        elif f == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 255
        elif f == 4:
            for i in range(bpp):  # (a = c = 0: the predictor is b)
                line[i] = (line[i] + prev[i]) & 255
            for i in range(bpp, stride):
                a, b, c = line[i - bpp], prev[i], prev[i - bpp]
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - c - c)  # |p-a|, |p-b|, |p-c| for p = a + b - c
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def chromium(page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={tmp / 'profile'}", *extra, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")


@pytest.mark.browser
@needs_chromium
def test_console_check_can_fail(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>console.error('boom'); nope();</script></body></html>")
    msgs = console_messages(chromium(page, tmp_path, "--dump-dom").stderr)
    assert any("boom" in m for m in msgs) and any("nope" in m for m in msgs)


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_report_draws_in_chromium(tmp_path, hostile_page):
    page = hostile_page  # (a report of the scenario's week, with markup in its values)
    shot = tmp_path / "report.png"  # (one run: the DOM it dumps and its screenshot)
    dom = chromium(page, tmp_path, "--dump-dom", f"--screenshot={shot}", "--window-size=1280,2000")
    assert dom.returncode == 0 and shot.exists(), dom.stderr[-2000:]
    assert console_messages(dom.stderr) == []
    for chart in ("requests", "errors", "pairs", "bytes"):
        fig = re.search(rf"<figure id=\"?chart-{chart}\"?[ >](.*?)</figure>", dom.stdout, re.S)
        assert fig, chart
        svg = fig.group(1)
        assert re.search(r'<svg[^>]*width="[1-9]', svg) and svg.count("<path") >= 3, chart
    width, height, rows = png_pixels(shot, max_rows=800)
    assert (width, height) == (1280, 2000)
    # The chart grid (below the heading) is drawn: many non-white pixels in several colours.
    bpp = len(rows[0]) // width
    pixels = [row[i:i + 3] for row in rows[150:800:4] for i in range(0, len(row), bpp * 4)]
    inked = [p for p in pixels if min(p) < 200]
    assert len(inked) > 0.03 * len(pixels)
    assert len({p for p in inked if max(p) - min(p) > 60}) > 20  # coloured marks, not just text


# ---- as an on-call engineer reads it -----------------------------------------------------------------


@pytest.fixture(scope="module")
def scenario_page(tmp_path_factory) -> Path:
    """The anomalies' HTML report of the scenario's week and incident day (22 findings)."""
    tmp = tmp_path_factory.mktemp("scenario")
    data = write_dataset([SCENARIO / "baseline-week.log", SCENARIO / "incident-day.log"], tmp / "data")
    render(data, tmp / "report.html")
    return tmp / "report.html"


def test_the_charts_times_are_utc_whatever_the_machines_time_zone(tmp_path, scenario_page):
    """The time charts draw on a UTC scale, as the header's times are: the renderer's default is its
    process's local time, so under TZ=Asia/Kolkata the ticks and the window-start rule moved 5.5 hours
    off the header's UTC times, and the same data gave another file."""
    import os
    import sys

    data = scenario_page.parent / "data"
    out = tmp_path / "kolkata.html"
    env = {**os.environ, "TZ": "Asia/Kolkata", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, "-m", "logpipe", "report", "anomalies", "--data", str(data), "-o", "html",
                        "--out", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    page = scenario_page.read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8") == page
    # (the axes' aria-labels said "for a utc scale": charts have none now, their specs say it)
    assert page.count('"scale":{"type":"utc"},"title":"time (UTC)"') >= 2


def test_bytes_read_as_mb(scenario_page):
    """Byte counts in decimal units, as the advice says them (531.7 MB): the bytes chart's axis read
    600,000,000 and the tables' cells 586161601; the evidence keeps the exact count beside."""
    page = scenario_page.read_text(encoding="utf-8")
    specs = json.loads(re.search(r"id=chart-specs>(.*?)</script>", page, re.S).group(1))
    assert specs["bytes"]["encoding"]["x"]["field"] == "MB"
    assert "600,000,000" not in page and ">600</text>" in page
    assert "<td class=num title='586161601 bytes'>586.2\u00a0MB</td>" in page
    assert "<dt>largest_request_bytes</dt> <dd>524.3\u00a0MB (524288000 bytes)</dd>" in page
    assert "<dt>bytes_up</dt> <dd>0\u00a0B</dd>" in page


def test_evidence_is_a_line_for_each_key(scenario_page):
    """Not one run of key=value words, wrapped anywhere (a time over two lines): a line for each key,
    a time breakable at its T alone."""
    page = scenario_page.read_text(encoding="utf-8")
    ev = re.search(r"<td class=ev>(.*?)</td>", page, re.S).group(1)  # (the first: error_spike's)
    assert ev.startswith("<dl class=kv><div><dt>worst_bucket</dt> <dd><span class=nw>2025-03-08T</span><wbr>"
                         "<span class=nw>14:00:00.000Z</span></dd></div><div><dt>bucket_minutes</dt> <dd>60</dd>")
    assert "worst_bucket=" not in page


# What runs past the window's right edge (a box the page scrolls sideways in, the findings, a chart,
# the page itself), and which boxes clip what they hold (a scrolled box: print shows only its view).
MEASURE = """<script>
const w = document.documentElement.clientWidth, past = [], clipped = [];
for (const el of document.querySelectorAll(".wide, table.findings, figure, figure svg")) {
  const r = el.getBoundingClientRect();
  if (r.right > w + 1) past.push(el.tagName + " " + Math.round(r.right));
  if (getComputedStyle(el).overflowX !== "visible" && el.scrollWidth > el.clientWidth + 1) clipped.push(el.tagName);
}
if (document.documentElement.scrollWidth > w + 1) past.push("page " + document.documentElement.scrollWidth);
document.body.insertAdjacentHTML("beforeend", "<pre id=overflow>" + JSON.stringify({past, clipped}) + "</pre>");
</script>"""


def overflow(page: str, tmp: Path, width: int) -> dict[str, list[str]]:
    """What of ``page`` runs past a ``width`` px window in Chromium, and what is clipped (MEASURE)."""
    probe = tmp / "probe.html"
    probe.write_text(page.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = chromium(probe, tmp, "--dump-dom", "--hide-scrollbars", f"--window-size={width},2000")
    assert dom.returncode == 0, dom.stderr[-2000:]
    return json.loads(html.unescape(re.search(r'<pre id="overflow">(.*?)</pre>', dom.stdout, re.S).group(1)))


@pytest.mark.browser
@needs_chromium
def test_a_narrow_window_shows_the_findings_and_charts_whole(tmp_path, scenario_page):
    """At a phone's 400 px the charts take a column of their own and shrink to it, and each finding
    is a block of lines: the page ran sideways 1,000 px, the findings' evidence and advice off the
    screen, each chart cut in a scrolled box of half the width."""
    page = scenario_page.read_text(encoding="utf-8")
    assert overflow(page, tmp_path, 400)["past"] == []
    assert overflow(page, tmp_path, 1400) == {"past": [], "clipped": ["DIV"]}  # (the 20 columns of destinations scroll)


@pytest.mark.browser
@needs_chromium
def test_the_printed_page_holds_every_column_and_chart_whole(tmp_path, scenario_page):
    """Printed (or saved as PDF for the incident's ticket), a scrolled box prints what it shows: the
    destinations table lost its last 8 of 20 columns (last_seen, sources, transport, sni, …) and two
    charts their legends. The page's print rules (a landscape page, ~980 px wide within its margins)
    applied to a window of that width: no box clips what it holds. (What is wider than the page,
    Chromium's print shrinks to fit: the destinations table, ~1,100 px, prints whole.)"""
    page = scenario_page.read_text(encoding="utf-8")
    start = page.index("@media print{")
    depth, end = 0, start
    for end in range(start, len(page)):
        depth += {"{": 1, "}": -1}.get(page[end], 0)
        if depth == 0 and page[end] == "}":
            break
    rules = re.sub(r"@page\{[^}]*\}", "", page[start + len("@media print{"):end])
    assert "size:landscape" in page[start:end]
    assert overflow(page.replace("</style>", rules + "</style>", 1), tmp_path, 980)["clipped"] == []


def test_a_port_is_shown_as_logged_a_count_grouped():
    """A count reads 12,345; a port is a name, not a count: the inventory's port column read 8,443
    and 15,021 (tls_ports' own 8443)."""
    import pyarrow as pa

    from logpipe.html import _table

    page = _table(pa.table({"destination": ["api.example.com"], "port": [8443], "destination_port": [15021],
                            "requests": [12345]}))
    assert "<td class=num>8443</td><td class=num>15021</td><td class=num>12,345</td>" in page


def test_charts_are_figures_with_a_text_summary_and_shares_read_as_percentages(scenario_page):
    """Each chart is one figure, named by its caption and described by a line of text under it (its
    SVG hidden from screen readers): Vega labelled each point, 276 aria-labels on this page. A share
    reads as a percentage (error_share 0.0382 read as a count); the pairs chart's legend has ticks
    (left to Vega, its log scale's had one, 10)."""
    page = scenario_page.read_text(encoding="utf-8")
    assert "aria-label=" not in page
    assert page.count("<svg aria-hidden=true") == 4
    for k in ("requests", "errors", "pairs", "bytes"):
        assert f"aria-describedby=chart-{k}-summary" in page and f"<p class=summary id=chart-{k}-summary>" in page
    # (the chart's interval said: its peak, 6 hours from 12:00, is not error_spike's hour, 93.8% at 14:00)
    assert "3.8% of 3,138 requests failed; the most in one interval of 6 hours, 35.4%, from 2025-03-08 12:00 UTC." in page
    assert "failed_share</dt> <dd>93.8%</dd>" in page and "failed_share</dt> <dd>0.9375" not in page
    specs = json.loads(re.search(r"<script type=application/json id=chart-specs>(.*?)</script>", page).group(1))
    assert specs["pairs"]["encoding"]["color"]["legend"]["values"] == [20, 50, 100, 200, 499]


def test_log_ticks():
    from logpipe.html import log_ticks

    assert log_ticks([3, 80]) == [3, 5, 10, 20, 50, 80]
    assert log_ticks([2, 3000]) == [2, 10, 100, 1000, 3000]
    assert log_ticks([]) == [1]


def test_without_vl_convert_the_error_names_the_package_to_install(monkeypatch):
    """The HTML report's charts need vl-convert-python: without it, the error says to install that
    package (or this checkout's report extra), not `logpipe[report]`, which on PyPI is another project."""
    import sys

    from logpipe import html as report_html
    from logpipe.errors import LogpipeError

    monkeypatch.setitem(sys.modules, "vl_convert", None)  # (an import of it raises ImportError)
    with pytest.raises(LogpipeError) as e:
        report_html._svg({})
    assert "`pip install vl-convert-python`" in str(e.value) and "logpipe[report]" not in str(e.value)
