"""Edge cases of custom formats as Envoy renders them: the part of a customised %START_TIME(…)% that is
wrong, metadata values, and other operators' values as Envoy's source writes them."""
from __future__ import annotations

import functools

import pytest

from logpipe import layouts
from logpipe.parse import Parser


@functools.lru_cache(maxsize=None)
def parser(fmt: str, fast: bool = True) -> Parser:
    return Parser(custom=layouts.layout_from_format(fmt), fast=fast)


def rows(p: Parser, lines: list[str]):
    batch = p.parse_batch(lines, "t.log")
    return batch.records.to_pylist(), batch.rejects.to_pylist()


# ---- a time that is no time: the part that is wrong -----------------------------------------------------

@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("spec, text, column, why", [
    ("%Y-%m-%dT%H:%M:%S", "2024-13-45T10:00:00", 7, "month 13 (%m) is not 01-12"),
    ("%Y-%m-%dT%H:%M:%S", "2024-04-31T10:00:00", 10, "day 31 (%d) is past the end of 2024-04 (30 days)"),
    ("%Y-%m-%dT%H:%M:%S", "2023-02-29T10:00:00", 10, "day 29 (%d) is past the end of 2023-02 (28 days)"),
    ("%d/%b/%Y:%H:%M:%S %z", "01/Mar/2025:24:00:00 +0000", 14, "hour 24 (%H) is not 00-23"),
    ("%Y-%m-%dT%H:%M:%E3S", "2025-03-01T10:61:00.123", 16, "minute 61 (%M) is not 00-59"),
    # (an offset, %Ez, printed "Z": read as the seconds' number, a ValueError that stopped the parse)
    ("%Y-%m-%dT%H:%M:%S%Ez", "2024-04-31T10:00:00Z", 10, "day 31 (%d) is past the end of 2024-04 (30 days)"),
])
def test_a_time_with_a_part_no_time_has_is_rejected_naming_that_part(fast, spec, text, column, why):
    """A customised %START_TIME(…)% whose month is 13 was rejected as 'start_time: cannot read
    2024-13-45T10:00:00', no column: which part is wrong was left to the reader. The reason names it
    and the specifier that printed it, and the reject's column is that part's in the line."""
    fmt = f"[%START_TIME({spec})%] %RESPONSE_CODE%"
    got, rejects = rows(parser(fmt, fast), [f"[{text}] 200"])
    assert got == [] and len(rejects) == 1
    assert rejects[0]["reason"] == f"invalid value: start_time: {why} in {text!r}, read with %START_TIME({spec})%"
    assert rejects[0]["column"] == column
    assert rejects[0]["raw"][column - 1:].startswith(text[column - 2:column])


@pytest.mark.parametrize("fast", [True, False])
def test_a_wrong_time_s_column_is_the_line_s_in_a_collector_s_record_or_after_a_prefix(fast):
    """The column is counted in the access line as the other rejects' are: in a Fluent Bit record's
    text (it was counted in the record: 16 for the line's 7), after a node file's CRI prefix (its
    length added), for a custom format's time and a built-in layout's alike."""
    import json

    text = "[2024-13-05T10:00:00] 200"
    builtin = ('[2024-13-03T09:12:40.747Z] "GET / HTTP/1.1" 200 - via_upstream - "-" 0 5 3 2 "-" "curl" "id" '
               '"h" "10.0.0.1:80" outbound|80||h 10.0.0.2:4000 10.0.0.1:80 10.0.0.3:5000 - default')
    cri = "2025-01-30T10:53:24.326Z stdout F "
    for p, line in [(parser("[%START_TIME(%Y-%m-%dT%H:%M:%S)%] %RESPONSE_CODE%", fast), text), (Parser(fast=fast), builtin)]:
        record = json.dumps({"log": line + "\n", "stream": "stdout", "time": "2025-01-30T10:53:24.326Z"})
        _, rejects = rows(p, [line, record, cri + line])
        assert [r["reason"][:40] for r in rejects] == ["invalid value: start_time: month 13 (%m)"] * 3
        assert [r["column"] for r in rejects] == [7, 7, len(cri) + 7]


def test_a_json_format_s_time_names_its_wrong_part_too():
    fmt = '{"t":"%START_TIME(%Y-%m-%d %H:%M:%S)%","c":"%RESPONSE_CODE%"}'
    line = '{"t":"2024-13-05 10:00:00","c":200}'
    got, rejects = rows(parser(fmt), [line, '{"t":"2024-12-05 10:00:00","c":200}'])
    assert len(got) == 1 and [r["line_number"] for r in rejects] == [1]
    assert rejects[0]["reason"].startswith("invalid value: start_time: month 13 (%m) is not 01-12 in")
    assert rejects[0]["column"] == line.index("13") + 1


def test_a_time_that_does_not_fit_its_spec_at_all_keeps_its_reason():
    """A time of no part out of range that still does not read (an epoch past any year) is left to
    records.py's 'cannot read'."""
    _, rejects = rows(parser("[%START_TIME(%s)%] %RESPONSE_CODE%"), ["[99999999999999999] 200"])
    assert len(rejects) == 1 and "start_time: cannot read 99999999999999999" in rejects[0]["reason"]


# ---- metadata: a string value as Envoy meant it ----------------------------------------------------------

@pytest.mark.parametrize("fast", [True, False])
def test_a_metadata_string_value_is_stored_without_envoy_s_old_json_quotes(fast):
    """Envoy before 1.19 wrote a %DYNAMIC_METADATA(NS:KEY)% string value as JSON ("abc"), since then as
    it is (abc: envoyproxy/envoy PR #16736); the column held '"abc"' for the first. An object stays JSON."""
    fmt = '[%START_TIME%] %RESPONSE_CODE% %DYNAMIC_METADATA(ns:key)% "%UPSTREAM_METADATA(istio:x)%"'
    lines = ['[2024-01-05T10:00:00.000Z] 200 "abc" ""v1""', '[2024-01-05T10:00:00.000Z] 200 abc "v1"',
             '[2024-01-05T10:00:00.000Z] 200 "a\\"b" "-"', '[2024-01-05T10:00:00.000Z] 200 {"a":"b"} "{}"']
    got, rejects = rows(parser(fmt, fast), lines)
    assert rejects == []
    assert [(r["dynamic_metadata_ns_key"], r["upstream_metadata_istio_x"]) for r in got] == [
        ("abc", "v1"), ("abc", "v1"), ('a"b', None), ('{"a":"b"}', "{}")]


def test_a_json_format_s_metadata_string_value_loses_its_quotes_too():
    """Envoy before 1.19's json_format wrote the JSON-quoted string as a JSON string ("\\"abc\\"")."""
    fmt = '{"t":"%START_TIME%","c":"%RESPONSE_CODE%","k":"%DYNAMIC_METADATA(ns:key)%","h":"%REQ(X-Q)%"}'
    got, _ = rows(parser(fmt), ['{"t":"2024-01-05T10:00:00.000Z","c":200,"k":"\\"abc\\"","h":"\\"q\\""}'])
    assert got[0]["dynamic_metadata_ns_key"] == "abc" and got[0]["x_q"] == '"q"'  # (a header's quotes are its own)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("time, column, why", [
    ("2024-13-03T09:12:40.747Z", 7, "month 13 (%m) is not 01-12"),
    ("2024-02-30T09:12:40.747Z", 10, "day 30 (%d) is past the end of 2024-02 (29 days)"),
    ("2024-05-03T24:12:40.747Z", 13, "hour 24 (%H) is not 00-23"),
])
def test_a_built_in_layout_s_time_names_its_wrong_part_at_its_column(fast, time, column, why):
    """A line of Istio's/Envoy's own layouts whose %START_TIME% has month 13 was rejected as 'start_time:
    cannot read 2024-13-03T…', no column, while a custom format's named the part (time_fault)."""
    line = (f'[{time}] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" '
            '"209cea95-9e33-474d-aa50-3d4366f9cb8d" "locations" "10.0.2.1:80"')
    batch = Parser(fast=fast).parse_batch([line, line.replace(time, "2024-05-03T09:12:40.747Z")], "t.log")
    rejects = batch.rejects.to_pylist()
    assert batch.records.num_rows == 1 and len(rejects) == 1
    assert rejects[0]["reason"] == (f"invalid value: start_time: {why} in {time!r}, read as ISO-8601 "
                                    "(%Y-%m-%dT%H:%M:%E*S%Ez)")
    assert rejects[0]["column"] == column


# ---- filter state: a value as Envoy serialized it ---------------------------------------------------------

@pytest.mark.parametrize("fast", [True, False])
def test_a_typed_filter_state_s_json_string_is_stored_as_the_string_plain_as_it_is(fast):
    """%FILTER_STATE(KEY)% and KEY:TYPED write the object's proto as JSON (MessageToJsonString: a string
    "abc" with its quotes), KEY:PLAIN its serializeAsString text and KEY:FIELD:F the field's, as they
    are (Envoy's FilterStateFormatter::format). The typed columns held '"abc"'; a plain value's own
    quotes are its own."""
    fmt = ('[%START_TIME%] %FILTER_STATE(a)% %FILTER_STATE(b:TYPED)% "%FILTER_STATE(c:PLAIN)%" '
           '%UPSTREAM_FILTER_STATE(d)% %FILTER_STATE(e:FIELD:ip)%')
    lines = ['[2024-01-05T10:00:00.000Z] "x" "spiffe://a/b" ""q"" "h" "10.0.0.1"',
             '[2024-01-05T10:00:00.000Z] {"k":"v"} - "q" 7 -']
    got, rejects = rows(parser(fmt, fast), lines)
    assert rejects == []
    cols = ["filter_state_a", "filter_state_b", "filter_state_c", "upstream_filter_state_d", "filter_state_e_ip"]
    assert [[r[c] for c in cols] for r in got] == [["x", "spiffe://a/b", '"q"', "h", '"10.0.0.1"'],
                                                  ['{"k":"v"}', None, "q", "7", None]]
