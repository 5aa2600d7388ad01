"""render.py: every output format on a small hostile table, escaping, JSON conventions, Parquet."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logpipe import render as render_module
from logpipe.errors import UsageError
from logpipe.render import (
    FORMATS,
    display_width,
    escape_control,
    iter_json_lines,
    render_table,
    write_parquet,
)
from logpipe.jsonout import to_jsonable


@pytest.fixture(autouse=True, params=["native", "arrow"])
def json_rows_by(request, monkeypatch):
    """JSON rows assembled by cut.c (logpipe/native.py) and by Arrow kernels: the same text."""
    monkeypatch.setenv("LOGPIPE_NATIVE", "1" if request.param == "native" else "0")
    if request.param == "native":
        from logpipe import native

        if native.library() is None:
            pytest.skip(f"cut.c not built: {native.why_not}")
    return request.param

UTC = dt.timezone.utc
TS = pa.timestamp("us", tz="UTC")
ANSI_UA = "\x1b[31mred\x1b[0m\x1b[2J"
BIDI_UA = "curl/\u202eexe.txt"
LONG_PATH = "/v1/" + "a" * 96
WIDE = "漢字テスト"


def sample_table() -> pa.Table:
    return pa.table(
        {
            "start_time": pa.array(
                [
                    dt.datetime(2024, 7, 18, 16, 13, 58, 198000, tzinfo=UTC),
                    dt.datetime(2024, 7, 18, 16, 13, 58, 198123, tzinfo=UTC),
                    None,
                    dt.datetime(2024, 7, 18, 16, 14, 0, tzinfo=UTC),
                ],
                TS,
            ),
            "method": ["GET", "POST", None, "GET"],
            "path": [LONG_PATH, "/a|b", "/x", None],
            "response_code": pa.array([200, 503, None, 0], pa.int32()),
            "response_flags": pa.array([[], ["UF", "URX"], None, ["NR"]], pa.list_(pa.string())),
            "bytes_sent": pa.array([1234, 0, None, 98765432109], pa.int64()),
            "user_agent": [ANSI_UA, BIDI_UA, f"{WIDE} bot", "curl/8.0\nX-Injected: 1"],
        }
    )


EXPECTED_ROWS = [
    {
        "start_time": "2024-07-18T16:13:58.198Z",
        "method": "GET",
        "path": LONG_PATH,
        "response_code": 200,
        "response_flags": [],
        "bytes_sent": 1234,
        "user_agent": ANSI_UA,
    },
    {
        "start_time": "2024-07-18T16:13:58.198123Z",
        "method": "POST",
        "path": "/a|b",
        "response_code": 503,
        "response_flags": ["UF", "URX"],
        "bytes_sent": 0,
        "user_agent": BIDI_UA,
    },
    {
        "start_time": None,
        "method": None,
        "path": "/x",
        "response_code": None,
        "response_flags": None,
        "bytes_sent": None,
        "user_agent": f"{WIDE} bot",
    },
    {
        "start_time": "2024-07-18T16:14:00.000Z",
        "method": "GET",
        "path": None,
        "response_code": 0,
        "response_flags": ["NR"],
        "bytes_sent": 98765432109,
        "user_agent": "curl/8.0\nX-Injected: 1",
    },
]


def render(data, fmt: str, **kwargs) -> str:
    out = io.StringIO()
    render_table(data, fmt, out, **kwargs)
    return out.getvalue()


# ---- every format ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_and_ends_with_newline(fmt):
    text = render(sample_table(), fmt)
    assert text.endswith("\n")


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_accepts_every_input_kind(fmt):
    table = sample_table()
    expected = render(table, fmt)
    batches = table.to_batches(max_chunksize=1)
    assert render(pa.RecordBatchReader.from_batches(table.schema, batches), fmt) == expected
    assert render(iter(batches), fmt) == expected
    assert render(table.combine_chunks().to_batches()[0], fmt) == expected


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_input_with_schema(fmt):
    schema = sample_table().schema
    assert render(iter([]), fmt, schema=schema) == render(schema.empty_table(), fmt)


@pytest.mark.parametrize("fmt", ["table", "markdown"])
@pytest.mark.parametrize("tty", [False, None])
def test_human_formats_carry_no_control_characters(fmt, tty):
    text = render(sample_table(), fmt, tty=tty, max_width=200)
    body = text.replace("\n", "")  # our own line ends are the only line breaks allowed
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in body)
    assert "\u202e" not in text
    assert len(text.splitlines()) == 2 + sample_table().num_rows  # header, separator, rows
    assert r"\x1b[31mred\x1b[0m\x1b[2J" in text
    assert r"curl/\u202eexe.txt" in text
    assert r"curl/8.0\nX-Injected: 1" in text


def test_table_tty_header_is_the_only_escape_sequence():
    text = render(sample_table(), "table", tty=True, max_width=200)
    header, rest = text.split("\n", 1)
    assert header.startswith("\x1b[1mstart_time") and header.endswith("\x1b[0m")
    assert "\x1b" not in rest


# ---- escape_control --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain text é 漢", "plain text é 漢"),
        ("\x1b[2J", r"\x1b[2J"),
        ("a\nb\rc\td", r"a\nb\rc\td"),
        ("\x00\x07\x7f", r"\x00\x07\x7f"),
        ("\x85\x9b", r"\x85\x9b"),  # C1: NEL and CSI
        ("\u202a\u202b\u202c\u202d\u202e", r"\u202a\u202b\u202c\u202d\u202e"),
        ("\u2066\u2067\u2068\u2069", r"\u2066\u2067\u2068\u2069"),
        ("\u200e\u200f\u061c\u2028", r"\u200e\u200f\u061c\u2028"),
        ("C:\\path", "C:\\path"),  # backslashes are left alone
    ],
)
def test_escape_control(raw, escaped):
    assert escape_control(raw) == escaped


@given(st.text())
def test_escape_control_leaves_nothing_dangerous(s):
    out = escape_control(s)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in out)
    assert not any(c in out for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


# ---- table -----------------------------------------------------------------------------------


def test_table_layout_header_separator_and_cut():
    lines = render(sample_table(), "table").splitlines()
    assert lines[0].split() == sample_table().column_names
    assert set(lines[1].replace(" ", "")) == {"-"}
    path_cell = next(w for w in lines[2].split() if w.startswith("/v1/"))
    assert path_cell.endswith("…") and display_width(path_cell) == 40  # default cap
    assert "/a|b" in lines[3]


@pytest.mark.parametrize("max_width", [1, 5, 12, 120])
def test_table_max_width_caps_every_cell(max_width):
    table = pa.table({"path": [LONG_PATH, "short"], "ua": [WIDE * 20, "x"]})
    for line in render(table, "table", max_width=max_width).splitlines():
        for cell in line.split("  "):
            assert display_width(cell.strip()) <= max_width
    if max_width == 120:
        assert LONG_PATH in render(table, "table", max_width=max_width)


def test_table_numbers_right_aligned_and_wide_characters_aligned():
    table = pa.table({"ua": [WIDE, "ascii", "é́"], "n": pa.array([5, 12345, None], pa.int64())})
    lines = render(table, "table").splitlines()
    # the number column is last and right-aligned: every line with a number ends at the same column
    assert display_width(lines[2]) == display_width(lines[3]) == display_width(lines[1])
    assert lines[2].endswith("    5") and lines[3].endswith("12345")


def test_table_streams_with_widths_from_the_first_rows(monkeypatch):
    monkeypatch.setattr(render_module, "CHUNK_ROWS", 2)
    monkeypatch.setattr(render_module, "WIDTH_SAMPLE_ROWS", 2)
    table = pa.table({"n": [1, 2, 1234567], "s": ["ab", "cd", "longer text"]})
    lines = render(table, "table").splitlines()
    assert lines[-1].startswith("1234567") and lines[-1].endswith("l…")  # numbers are never cut


@pytest.mark.parametrize(
    ("s", "width"), [("abc", 3), ("漢字", 4), ("e\u0301", 1), ("", 0), ("a漢b", 4)]
)
def test_display_width(s, width):
    assert display_width(s) == width


# ---- markdown --------------------------------------------------------------------------------


def markdown_parser():
    """CommonMark with GFM tables and raw HTML on (markdown-it-py comes with rich)."""
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark").enable("table")


def markdown_cells(text: str) -> list[list[str]]:
    """The cell texts a GitHub-style renderer sees."""
    tokens = markdown_parser().parse(text)
    rows, row = [], None
    for t in tokens:
        if t.type == "tr_open":
            row = []
        elif t.type == "inline" and row is not None:
            row.append("".join(c.content for c in t.children if c.type == "text"))
        elif t.type == "tr_close":
            rows.append(row)
            row = None
    return rows


def test_markdown_escapes_pipes_and_keeps_the_grid():
    text = render(sample_table(), "markdown")
    assert r"/a\|b" in text
    assert text.splitlines()[1] == "| --- | --- | --- | ---: | --- | ---: | --- |"
    rows = markdown_cells(text)
    assert len(rows) == 1 + sample_table().num_rows
    assert all(len(r) == sample_table().num_columns for r in rows)
    assert rows[2][2] == "/a|b"


@pytest.mark.parametrize(
    "value",
    [
        "a|b",
        "a\\|b",
        "trailing\\",
        "C:\\path\\*",
        "<script>alert(1)</script>",
        "<https://evil.example>",
        "&#x202e;x &amp;",
        "x*y*`z` _u_ ~~s~~",
        "[click](https://evil.example)",
    ],
)
def test_markdown_cell_renders_as_its_value(value):
    text = render(pa.table({"v": [value], "n": [1]}), "markdown")
    assert markdown_cells(text)[1] == [value, "1"]
    html = markdown_parser().render(text)
    assert "<script>" not in html and "\u202e" not in html


@pytest.mark.parametrize("value", ["abc|defg", "abc<defg", "ab\\|cdefg", "a`b`cdefg", "&#x202e;x"])
def test_markdown_cell_cut_by_max_width_is_cut_then_escaped(value):
    """--max-width cuts a cell's text, then escapes it: `abc|defg` cut to 5 is `abcd…`, read so; it
    was escaped first, `abc\\|defg`, then cut to `abc\\…`, which read `abc\\…`, a backslash it has not."""
    text = render(pa.table({"v": [value]}), "markdown", max_width=5)
    assert markdown_cells(text)[1] == [value[:4] + "…"]


def test_markdown_report_service_entry_heading_is_escaped():
    """The anomalies report's markdown heads a ServiceEntry with its destination, a log value: it is
    escaped as a table's cell is (it had control characters escaped alone: a host of `<img …>` was
    raw HTML, `[x](…)` a link)."""
    from logpipe.reports import render_text

    host = "<img src=x onerror=alert(1)>[x](https://evil.example)*y*"
    finding = {"severity": "high", "kind": "unregistered_egress", "source": "shop/web", "destination": host,
               "evidence": {"requests": 3, "service_entry": "kind: ServiceEntry\n"}, "advice": "register it"}
    doc = {"window": {"start": None, "end": None, "requests": 3},
           "baseline": {"start": None, "end": None, "requests": 0, "source": "none"}, "findings": [finding]}
    out = io.StringIO()
    render_text(doc, "anomalies", out, markdown=True)
    tokens = markdown_parser().parse(out.getvalue())
    headings = [tokens[i + 1] for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h2"]
    assert [h.content for h in headings] and [
        "".join(c.content for c in h.children if c.type == "text") for h in headings] == [f"ServiceEntry for {host}"]
    assert "<img" not in markdown_parser().render(out.getvalue())


@pytest.mark.parametrize("n, said", [(1, "1 finding: 1 high"), (2, "2 findings: 2 high"), (0, "0 findings")])
def test_the_anomalies_text_counts_its_findings_in_words(n, said):
    """The anomalies report's count line: one finding is "1 finding" (it was "1 findings")."""
    from logpipe.reports import render_text

    finding = {"severity": "high", "kind": "new_destination", "source": "shop/web", "destination": "x.example",
               "evidence": {"requests": 3}, "advice": "check it"}
    doc = {"window": {"start": None, "end": None, "requests": 3},
           "baseline": {"start": None, "end": None, "requests": 0, "source": "none"}, "findings": [finding] * n}
    out = io.StringIO()
    render_text(doc, "anomalies", out)
    assert f"\n{said}\n" in out.getvalue()


# ---- csv / tsv -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "delimiter"), [("csv", ","), ("tsv", "\t")])
def test_delimited_round_trip(fmt, delimiter):
    rows = list(csv.reader(io.StringIO(render(sample_table(), fmt)), delimiter=delimiter))
    assert rows[0] == sample_table().column_names
    expected = [
        [
            "" if v is None else ",".join(v) if isinstance(v, list) else str(v)
            for v in row.values()
        ]
        for row in EXPECTED_ROWS
    ]
    assert rows[1:] == expected  # data is exact: no escaping of control characters in CSV


# ---- json / ndjson ---------------------------------------------------------------------------


def test_ndjson_one_object_per_line():
    lines = render(sample_table(), "ndjson").splitlines()
    assert [json.loads(line) for line in lines] == EXPECTED_ROWS
    assert all(line.isascii() for line in lines)


def test_json_is_one_array():
    assert json.loads(render(sample_table(), "json")) == EXPECTED_ROWS
    assert json.loads(render(sample_table().schema.empty_table(), "json")) == []


def test_iter_json_lines_matches_ndjson():
    assert "\n".join(iter_json_lines(sample_table())) + "\n" == render(sample_table(), "ndjson")


def test_json_floats_binary_and_other_types():
    table = pa.table(
        {
            "f": [1.0, float("nan"), float("inf"), 0.1, None],
            "b": pa.array([b"\xff\x00ok", b"", None, b"x", b"y"]),
            "d": pa.array([dt.date(2024, 7, 18)] * 5, pa.date32()),
            "ok": [True, False, None, True, True],
            "tags": pa.array([["é", None], [], None, ["a\"b"], ["x"]], pa.list_(pa.string())),
            "s": pa.array([{"k": 1}] * 5, pa.struct([("k", pa.int64())])),
        }
    )
    rows = [json.loads(line) for line in iter_json_lines(table)]
    assert [r["f"] for r in rows] == [1.0, None, None, 0.1, None]
    assert isinstance(rows[0]["f"], float)
    assert [r["b"] for r in rows] == ["\\xff\x00ok", "", None, "x", "y"]
    assert rows[0]["d"] == "2024-07-18"
    assert [r["ok"] for r in rows] == [True, False, None, True, True]
    assert [r["tags"] for r in rows] == [["é", None], [], None, ['a"b'], ["x"]]
    assert rows[0]["s"] == {"k": 1}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (3, 3),
        (True, True),
        (1.5, 1.5),
        (float("nan"), None),
        (float("-inf"), None),
        (b"\xffA", "\\xffA"),
        (dt.datetime(2024, 7, 18, 16, 13, 58, 198000, tzinfo=UTC), "2024-07-18T16:13:58.198Z"),
        (dt.datetime(2024, 7, 18, 16, 13, 58, 198001, tzinfo=UTC), "2024-07-18T16:13:58.198001Z"),
        (dt.datetime(2024, 7, 18, 18, 13, 58, tzinfo=dt.timezone(dt.timedelta(hours=2))),
         "2024-07-18T16:13:58.000Z"),
        (dt.datetime(2024, 7, 18, 16, 13, 58), "2024-07-18T16:13:58.000"),  # naive: no Z
        (dt.date(2024, 7, 18), "2024-07-18"),
        (dt.timedelta(milliseconds=1500), 1.5),
        (pa.MonthDayNano([1, 3, 1_500_000_000]), "P1M3DT1.5S"),
        (pa.MonthDayNano([0, 0, -2_000_000_000]), "P0M0DT-2S"),
        ([1, None, [b"x"]], [1, None, ["x"]]),
        ({"a": float("nan")}, {"a": None}),
    ],
)
def test_to_jsonable(value, expected):
    assert to_jsonable(value) == expected


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "Europe/Paris"])
def test_timestamp_units_and_zones_are_iso_like_to_jsonable(unit, tz):
    moments = [dt.datetime(2024, 7, 18, 16, 13, 58, 198000), dt.datetime(1969, 12, 31, 23, 59, 59)]
    arr = pa.array(moments, pa.timestamp("us")).cast(pa.timestamp(unit, tz=tz), safe=False)
    got = [json.loads(line)["t"] for line in iter_json_lines(pa.table({"t": arr}))]
    assert got == [to_jsonable(v) for v in arr.to_pylist()]


# Arrow kernels handle plain columns and Python handles the rest: both must give the same text,
# and so must cut.c's row assembler (logpipe_json_lines), which every test here runs with and without.
# 100 tables of up to 20 rows a path (~1,000 rows of each column kind): hypothesis tries each
# strategy's edge values (empty, NUL, surrogate-free non-ASCII, the int64 and datetime bounds, NaN and
# the infinities) in its first examples, and seeds afresh on every run, so runs add up; the extremes
# are also tested outright (test_to_jsonable, test_native_json_numbers_and_times_equal_arrow).
json_text = st.text(st.characters(codec="utf-8"), max_size=12)
plain_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
any_text = st.one_of(json_text, plain_text)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.none() | any_text, min_size=1, max_size=20).flatmap(
        lambda strs: st.tuples(
            st.just(strs),
            st.lists(st.none() | st.lists(plain_text, max_size=3), min_size=len(strs), max_size=len(strs)),
            st.lists(st.none() | st.integers(-(2**63), 2**63 - 1), min_size=len(strs), max_size=len(strs)),
            st.lists(st.none() | st.floats(), min_size=len(strs), max_size=len(strs)),
            st.lists(
                st.none() | st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(9999, 1, 1)),
                min_size=len(strs),
                max_size=len(strs),
            ),
        )
    )
)
def test_json_lines_equal_json_dumps(columns):
    strs, lists, ints, floats, times = columns
    table = pa.table(
        {
            "s": pa.array(strs, pa.string()),
            "l": pa.array(lists, pa.list_(pa.string())),
            "i": pa.array(ints, pa.int64()),
            "f": pa.array(floats, pa.float64()),
            "t": pa.array(times, TS),
        }
    )
    expected = [json.dumps(to_jsonable(row), separators=(",", ":")) for row in table.to_pylist()]
    assert list(iter_json_lines(table)) == expected


# ---- streaming -------------------------------------------------------------------------------


class ClosedPipe(io.StringIO):
    """A reader that went away (``| head``) after the first write."""

    def write(self, s):
        if self.tell():
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(s)


@pytest.mark.parametrize("fmt", FORMATS)
def test_broken_pipe_propagates(fmt):
    big = pa.concat_tables([sample_table()] * 5000).combine_chunks()
    with pytest.raises(BrokenPipeError):
        render_table(big, fmt, ClosedPipe())


@pytest.mark.parametrize("fmt", FORMATS)
def test_output_is_flushed_while_streaming(fmt, monkeypatch):
    class Counting(io.StringIO):
        flushes = 0

        def flush(self):
            self.flushes += 1

    # (chunks of 256 rows, not CHUNK_ROWS' 4096: the same chunks of a sixteenth of the rows; more
    # rows than the table format sizes its columns from, WIDTH_SAMPLE_ROWS)
    monkeypatch.setattr(render_module, "CHUNK_ROWS", 256)
    rows = pa.concat_tables([sample_table()] * 400).combine_chunks()
    assert rows.num_rows > render_module.WIDTH_SAMPLE_ROWS
    out = Counting()
    render_table(rows, fmt, out)
    assert out.flushes >= 4  # one batch of 1,600 rows: several chunks, each flushed


def test_unknown_format():
    with pytest.raises(UsageError, match="html"):
        render(sample_table(), "html")


# ---- parquet ---------------------------------------------------------------------------------


def test_parquet_round_trip_without_leftovers(tmp_path):
    path = tmp_path / "part-0.parquet"
    write_parquet(sample_table(), path)
    assert pq.read_table(path).equals(sample_table())
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    assert os.listdir(tmp_path) == ["part-0.parquet"]
    write_parquet(sample_table().slice(0, 1), str(path))  # replaces
    assert pq.read_table(path).num_rows == 1
    assert os.listdir(tmp_path) == ["part-0.parquet"]


def test_parquet_from_batches(tmp_path):
    table = pa.concat_tables([sample_table()] * 10)
    path = tmp_path / "x.parquet"
    write_parquet(iter(table.to_batches(max_chunksize=3)), path)
    assert pq.read_table(path).equals(table)


def test_parquet_failure_leaves_old_file_and_no_temp(tmp_path):
    path = tmp_path / "x.parquet"
    write_parquet(sample_table(), path)

    def failing():
        yield sample_table().to_batches()[0]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_parquet(failing(), path)
    assert os.listdir(tmp_path) == ["x.parquet"]
    assert pq.read_table(path).equals(sample_table())


def test_null_item_of_a_list_reads_null_in_human_and_delimited_formats():
    """A list's null item is `null` (as a struct cell's null reads), not an empty item that reads as
    an empty string's: ['a', None, ''] was `a,,` like ['a', '', '']; a null cell stays empty. In a
    batch of two columns or more, which cut.c writes when built, as in one that Python does."""
    lists = pa.array([["a", None, ""], ["a", "", ""], None, [None]], pa.list_(pa.string()))
    table = pa.table({"l": lists, "n": [1, 2, 3, 4]})
    assert render(table, "csv").splitlines() == ["l,n", "\"a,null,\",1", "\"a,,\",2", ",3", "null,4"]
    assert render(table.select(["l"]), "csv").splitlines() == ["l", "\"a,null,\"", "\"a,,\"", '""', "null"]
    assert render(table, "tsv").splitlines()[1:] == ["a,null,\t1", "a,,\t2", "\t3", "null\t4"]
    assert [line.split()[0] for line in render(table, "table").splitlines()[2:]] == ["a,null,", "a,,", "3", "null"]
    assert markdown_cells(render(table, "markdown"))[1:] == [["a,null,", "1"], ["a,,", "2"], ["", "3"], ["null", "4"]]


def test_float_text_in_human_formats():
    text = render(pa.table({"f": [1.5, math.nan, None], "n": [1, 2, 3]}), "csv")
    assert text.splitlines() == ["f,n", "1.5,1", "nan,2", ",3"]


@pytest.mark.parametrize("json_rows_by", ["native"], indirect=True)
def test_native_json_rows_equal_arrow_on_awkward_columns(monkeypatch, json_rows_by):
    """Controls, DEL, quotes, backslashes, non-ASCII and non-BMP text, nulls, empty strings, string
    view / large string / dictionary columns, lists of them (null items, null lists), and a slice of
    a batch: the same bytes both ways."""
    from logpipe.jsonout import NativeRows, json_line_batches

    texts = ["plain", "", None, 'q"uote', "back\\slash", "".join(map(chr, range(0, 32))) + "\x7f",
             "naïve 路径 ✓", "emoji 😀 𝄞", "\u2028\u2029", "a\tb\nc"] * 3
    table = pa.table({
        "s": pa.array(texts, pa.string()),
        "view": pa.array(texts, pa.string_view()),
        "large": pa.array(texts, pa.large_string()),
        "dict": pa.array(texts, pa.string()).dictionary_encode(),
        "n": pa.array(range(len(texts)), pa.int64()),
        "flags": pa.array([["UF", "URX"] if i % 3 else ([] if i % 2 else None) for i in range(len(texts))],
                          pa.list_(pa.string())),
        "items": pa.array([[t, None, "é"] if i % 2 else [t] for i, t in enumerate(texts)], pa.list_(pa.string())),
        "no_lists": pa.nulls(len(texts), pa.list_(pa.string())),  # (null is longer than [])
    })
    batch = table.combine_chunks().to_batches()[0].slice(3, 20)
    got = {}
    for mode in ("1", "0"):
        monkeypatch.setenv("LOGPIPE_NATIVE", mode)
        got[mode] = [a.to_pylist() for a in json_line_batches(batch.schema, [batch], end="}\n")]
    assert got["1"] == got["0"]
    assert [json.loads(x) for x in got["1"][0]] == batch.to_pylist()
    monkeypatch.setenv("LOGPIPE_NATIVE", "1")
    keys = ["{\"s\":"]
    bad = pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(b"\0\0\0\0\2\0\0\0"), pa.py_buffer(b"\xc3(")])
    assert NativeRows.of(keys, pa.record_batch([bad], names=["s"]), "}").lines(0, 1) is None  # not UTF-8
    late = pa.array([253402300800 * 10**6], pa.timestamp("us"))  # year 10000: Arrow renders it
    assert NativeRows.of(["{\"t\":"], pa.record_batch([late], names=["t"]), "}").lines(0, 1) is None


@pytest.mark.parametrize("json_rows_by", ["native"], indirect=True)
def test_native_json_numbers_and_times_equal_arrow(monkeypatch, json_rows_by):
    """cut.c writes 32- and 64-bit ints and times in µs from their values (not Arrow's text of them):
    the extremes, nulls, whole seconds and milliseconds (3 digits of fraction), times before 1970 and
    at both ends of years 1 to 9999, with and without a time zone, in a slice: the same bytes as
    Arrow's, and as Python's json module."""
    from logpipe.jsonout import columns, json_line_batches

    us = [0, None, 1, -1, 999, 1000, -1000, 198000, 1721319238198000, 1721319238198123, -86400 * 10**6 - 1,
          -62135596800 * 10**6, 253402300799 * 10**6 + 999999, 951782400 * 10**6, -2208988800 * 10**6 + 5]
    ints = [0, None, -1, 1, 2**31 - 1, -(2**31), 10, -10, 123456789, 7, 100, 99, 42, -42, 5]
    table = pa.table({
        "i32": pa.array(ints, pa.int32()),
        "i64": pa.array([None if v is None else v * 2**32 + 17 for v in ints[:-2]] + [2**63 - 1, -(2**63)], pa.int64()),
        "t": pa.array(us, pa.timestamp("us", tz="UTC")),
        "naive": pa.array(us, pa.timestamp("us")),
        "zone": pa.array(us, pa.timestamp("us", tz="Europe/Paris")),
    })
    for batch in (table.to_batches()[0], table.to_batches()[0].slice(2, 11)):
        kinds = [kind for _, kind in columns(batch)]
        assert kinds == ["number", "number", "ts", "ts", "ts"]
        got = {}
        for mode in ("1", "0"):
            monkeypatch.setenv("LOGPIPE_NATIVE", mode)
            got[mode] = [a.to_pylist() for a in json_line_batches(batch.schema, [batch], end="}")]
        assert got["1"] == got["0"]
        in_utc = batch.set_column(4, "zone", batch["zone"].cast(pa.timestamp("us", tz="UTC")))  # (Python's
        # datetime cannot hold 9999-12-31 in Paris)
        assert [json.loads(x) for x in got["1"][0]] == [to_jsonable(r) for r in in_utc.to_pylist()]


def test_times_past_year_9999_or_before_year_1_keep_their_digits():
    """A query can compute times no record holds (``start_time + interval 8000 year``): Arrow writes
    their years with more or other digits, and every format still shows the whole date, with its T."""
    t = pa.array([253402300800 * 10**6, -62135596801 * 10**6 + 5000], TS)  # 10000-01-01, year 0
    table = pa.table({"t": t})
    assert [json.loads(line)["t"] for line in render(table, "ndjson").splitlines()] == \
        ["10000-01-01T00:00:00.000Z", "0000-12-31T23:59:59.005Z"]
    assert render(table, "csv").splitlines()[1:] == ["10000-01-01T00:00:00.000Z", "0000-12-31T23:59:59.005Z"]


# Text the csv module quotes, or not: its delimiters, quotes, both line ends, tabs, non-ASCII.
csv_text = st.text(st.sampled_from([*'ab ,;"\t\r\n\'|', "é", "路", "😀", "\x00", "\x7f"]), max_size=10)


@pytest.mark.parametrize("json_rows_by", ["native"], indirect=True)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.none() | csv_text, st.none() | st.lists(st.none() | csv_text, max_size=3),
                          st.none() | st.integers(-(2**63), 2**63 - 1), st.none() | st.floats(),
                          st.none() | st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(9999, 1, 1))),
                min_size=1, max_size=30), st.integers(0, 3), st.sampled_from(["csv", "tsv"]))
def test_delimited_rows_by_cut_c_equal_the_csv_module(monkeypatch, json_rows_by, rows, start, fmt):
    """csv and tsv rows written by cut.c (``logpipe_delimited_lines``) are the bytes Python's csv module
    writes from the same cells: quoting, doubled quotes, nulls, lists joined by ',', ints, times, floats
    (given to C as text), a slice of a batch, one column (left to the module: its empty field is "")."""
    s, l, i, f, t = (list(c) for c in zip(*rows))
    table = pa.table({"s": pa.array(s, pa.string()), "l": pa.array(l, pa.list_(pa.string())),
                      "i": pa.array(i, pa.int64()), "i32": pa.array([None if v is None else v % 2**31 for v in i], pa.int32()),
                      "f": pa.array(f, pa.float64()), "t": pa.array(t, TS), "naive": pa.array(t, pa.timestamp("us"))})
    batch = table.combine_chunks().to_batches()[0].slice(min(start, len(rows) - 1))
    for data in (batch, batch.select(["s"])):
        got = {}
        for mode in ("1", "0"):
            monkeypatch.setenv("LOGPIPE_NATIVE", mode)
            with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as out:
                render_table(data, fmt, out)
                out.seek(0)
                got[mode] = out.read()
        assert got["1"] == got["0"]


@pytest.mark.parametrize("tz", [None, "UTC", "+05:30"])
def test_iso_texts_by_python_equal_iso_array(tz, monkeypatch):
    """A short column of times is made text by Python (no pyarrow.compute for a small table); a long
    one, or one with a time outside Python's years, by Arrow: the same texts."""
    from logpipe import jsonout

    us = [0, 1721319238198000, 1721319238000000, 1721319238123456, -1, -62135596800000000,
          253402300799999999, None, 951782400000000]
    arr = pa.array(us, pa.timestamp("us", tz))
    by_arrow = jsonout.iso_array(arr).to_pylist()
    assert jsonout.iso_texts(arr) == by_arrow
    assert by_arrow[1] == ("2024-07-18T16:13:58.198Z" if tz else "2024-07-18T16:13:58.198")
    monkeypatch.setattr(jsonout, "ISO_BY_PYTHON_ROWS", 0)
    assert jsonout.iso_texts(arr) == by_arrow
    far = pa.array([253402300799999999 + 10**12, 0], pa.timestamp("us"))  # year 10000: not Python's
    monkeypatch.setattr(jsonout, "ISO_BY_PYTHON_ROWS", 1000)
    assert jsonout.iso_texts(far) == jsonout.iso_array(far).to_pylist()


def test_yaml_writes_a_columns_documents_one_after_another():
    """-o yaml: each value of a one-column text result is a YAML document, after `---` (a document
    that ends in a newline gets no second one); nulls are no document; other results are refused."""
    docs = pa.table({"doc": ["a: 1", None, "b:\n  - 2\n", "c: 3"]})
    assert render(docs, "yaml") == "---\na: 1\n---\nb:\n  - 2\n---\nc: 3\n"
    assert render(docs.slice(1, 1), "yaml") == ""
    with pytest.raises(UsageError, match="2 columns"):
        render(pa.table({"a": ["x"], "b": ["y"]}), "yaml")
    with pytest.raises(UsageError, match="a column of int64"):
        render(pa.table({"n": [1]}), "yaml")


def test_parquet_is_written_behind_its_batches(tmp_path, monkeypatch):
    """The writes run on a thread of their own while the next rows are made (``_write_behind``), in
    order; a write that fails is raised here, and the file is not left."""
    import threading

    import logpipe.render as render_mod

    monkeypatch.setattr(render_mod, "ROW_GROUP_ROWS", 3)
    writers, real = [], pq.ParquetWriter.write_table

    def write_table(self, table, *args, **kwargs):
        writers.append(threading.current_thread().name)
        if table.num_rows == 2:  # (the second file's)
            raise OSError("the disk went away")
        return real(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", write_table)
    table = pa.concat_tables([sample_table()] * 10)
    path = tmp_path / "x.parquet"
    write_parquet(iter(table.to_batches(max_chunksize=3)), path)
    assert pq.read_table(path).equals(table)
    assert len(writers) > 2 and set(writers) == {"logpipe-parquet-writer"}

    with pytest.raises(OSError, match="the disk went away"):
        write_parquet(iter([*table.to_batches(max_chunksize=3)[:3], table.slice(0, 2).to_batches()[0]]),
                      tmp_path / "y.parquet")
    assert os.listdir(tmp_path) == ["x.parquet"]


def test_an_out_path_that_is_no_file_is_written_through_and_a_link_stays(tmp_path):
    """``--out`` through render.atomic_file: a pipe (``--out >(gzip > r.gz)``, /dev/stdout, /dev/null)
    is written to as it is, not replaced by a file renamed over it (as root, ``--out /dev/stdout``
    replaced the link in /dev with a file); a link to a file keeps being a link, its file replaced."""
    import os
    import stat
    import threading

    from logpipe.render import atomic_file

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()), daemon=True)
    reader.start()
    with atomic_file(fifo, "x", encoding="utf-8") as f:
        f.write("through\n")
    reader.join(timeout=10)
    assert got == [b"through\n"] and stat.S_ISFIFO(os.stat(fifo).st_mode)
    real, link = tmp_path / "real.json", tmp_path / "link.json"
    real.write_text("old\n")
    link.symlink_to(real)
    with atomic_file(link, "x", encoding="utf-8") as f:
        f.write("new\n")
    assert link.is_symlink() and real.read_text() == "new\n" and link.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "pipe", "real.json"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="descriptors as paths: /proc/self/fd")
def test_an_out_path_that_names_a_descriptor_of_a_file_is_written_to_as_it_is(tmp_path):
    """``--out /dev/stdout >> FILE``: /dev/stdout links to /proc/self/fd/1, which links to FILE, a
    file: the links were followed and FILE replaced, what ``>>`` had gathered in it lost (and the
    shell's descriptor left on the old file). It is written to as it is, appended to."""
    from logpipe.render import atomic_file

    shell = tmp_path / "gathered.txt"
    shell.write_text("earlier\n")
    fd = os.open(shell, os.O_WRONLY | os.O_APPEND)  # (the shell's `>> gathered.txt`)
    try:
        inode = os.stat(shell).st_ino
        for path in (f"/proc/self/fd/{fd}", f"/dev/fd/{fd}"):
            with atomic_file(path, "x", encoding="utf-8") as f:
                f.write(f"from {path}\n")
    finally:
        os.close(fd)
    assert shell.read_text() == f"earlier\nfrom /proc/self/fd/{fd}\nfrom /dev/fd/{fd}\n"
    assert os.stat(shell).st_ino == inode and sorted(p.name for p in tmp_path.iterdir()) == ["gathered.txt"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="descriptors as paths: /proc/self/fd")
def test_an_out_path_that_cannot_be_opened_as_it_is_is_one_clear_error():
    """``--out /dev/stdout`` where stdout is a socket (a service's journal): Linux opens no socket by
    its path (ENXIO), which was `internal error: OSError`; it is a usage error that says so."""
    import socket

    from logpipe.render import atomic_file

    a, b = socket.socketpair()
    path = f"/proc/self/fd/{a.fileno()}"
    with a, b, pytest.raises(UsageError) as e:
        with atomic_file(path, "x", encoding="utf-8") as f:
            f.write("never\n")
    assert str(e.value) == f"cannot write {path}: No such device or address; choose another --out"


@pytest.mark.parametrize("fmt", ["csv", "tsv", "table", "markdown"])
def test_an_interval_is_its_duration_as_text_not_the_json_of_it(fmt):
    """DuckDB's INTERVAL (``max(start_time) - min(start_time)``) comes to Python as pa.MonthDayNano, a
    tuple: its text cells were the JSON of its duration, quotes and all (`"P0M3DT1.5S"`, tripled in csv)."""
    span = pa.MonthDayNano([0, 3, 1_500_000_000])
    table = pa.table({"span": pa.array([span], pa.month_day_nano_interval()),
                      "spans": pa.array([[span, span]], pa.list_(pa.month_day_nano_interval()))})
    buf = io.StringIO()
    render_table(table, fmt, buf)
    if fmt in ("csv", "tsv"):
        rows = list(csv.reader(io.StringIO(buf.getvalue()), delimiter="," if fmt == "csv" else "\t"))
        assert rows[1] == ["P0M3DT1.5S", "P0M3DT1.5S,P0M3DT1.5S"]
    else:
        assert '"' not in buf.getvalue() and buf.getvalue().count("P0M3DT1.5S") == 3
