"""Parsing edge cases: %E*S times of a whole second, :N truncation, counts past an int's range, the
field a malformed cluster breaks, JSON values of a method, protocol and long flags, a grammar's
signed count rule."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from logpipe import formats, layouts
from logpipe.parse import Parser

UTC = dt.timezone.utc
LINE = ('[2025-03-01T10:00:00.123Z] "GET /a HTTP/1.1" 200 - via_upstream - "-" 0 {sent} 5 4 "-" "curl/8" "id-1" '
        '"a.example" "10.0.0.1:80" {cluster} 10.0.0.2:4000 10.0.0.3:80 10.0.0.4:5000 - default')


def parsed(parser: Parser, lines: list[str]):
    batch = parser.parse_batch(lines, "t.log")
    return batch.records.to_pylist(), [r["reason"] for r in batch.rejects.to_pylist()]


@pytest.mark.parametrize("fast", [True, False])
def test_e_star_s_of_a_whole_second_has_no_dot(fast):
    """absl's FormatTime, which renders %START_TIME(…)%, prints %E*S's fraction without its trailing
    zeros and, for a whole second, with no "." at all (cctz time_zone_format_test.cc: "05"): that line
    was noise ("expected a year")."""
    parser = Parser(custom=layouts.layout_from_format("%START_TIME(%Y-%m-%dT%H:%M:%E*S)% %RESPONSE_CODE%"), fast=fast)
    got, rejects = parsed(parser, ["2025-03-01T10:00:05 200", "2025-03-01T10:00:05.5 200",
                                   "2025-03-01T10:00:05.000 200", "2025-03-01T10:00:05.x 200"])
    assert [r["start_time"] for r in got] == [dt.datetime(2025, 3, 1, 10, 0, 5, us, tzinfo=UTC) for us in (0, 500000, 0)]
    assert len(rejects) == 1


def test_e0s_is_seconds_alone():
    parser = Parser(custom=layouts.layout_from_format("%START_TIME(%Y-%m-%dT%H:%M:%E0S)% %RESPONSE_CODE%"))
    got, rejects = parsed(parser, ["2025-03-01T10:00:05 200"])
    assert rejects == [] and got[0]["start_time"] == dt.datetime(2025, 3, 1, 10, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize("fast", [True, False])
def test_a_truncated_text_is_never_longer_than_its_n(tmp_path, fast):
    """%REQ(USER-AGENT):10% logs at most 10 characters: a longer value is no line of the format."""
    fmt = '%RESPONSE_CODE% "%REQ(USER-AGENT):10%" %UPSTREAM_TRANSPORT_FAILURE_REASON%:5'
    assert formats.parse_format(fmt)[2].limit == 10
    (tmp_path / "g.lark").write_text(formats.grammar_from_format(fmt))
    for layout in (layouts.layout_from_format(fmt), layouts.layout_from_options(grammar_file=str(tmp_path / "g.lark"))):
        got, rejects = parsed(Parser(custom=layout, fast=fast),
                              ['200 "curl/8.1" -:5', '200 "Mozilla/5.0 (X11)" -:5', '200 "-" -:5'])
        assert [r["user_agent"] for r in got] == ["curl/8.1", None]
        assert rejects == ["invalid value: user_agent: 17 bytes, longer than the 10 %REQ(USER-AGENT):10% "
                           "truncates it to ('Mozilla/5.0 (X11)')"]
        # Envoy cuts N bytes, maybe within a character, whose byte reads as backslashreplace's \xc3
        # (4 characters, 1 byte); 6 two-byte characters are 12 bytes, which :10 never logs
        got, rejects = parsed(Parser(custom=layout, fast=fast), ['200 "curl/8.1\\xc3" -:5', '200 "éééééé" -:5'])
        assert [r["user_agent"] for r in got] == ["curl/8.1\\xc3"]
        assert [r.split(",")[0] for r in rejects] == ["invalid value: user_agent: 12 bytes"]


@pytest.mark.parametrize("fast", [True, False])
def test_counts_past_an_int_s_range_are_rejected_as_such(fast):
    lines = [LINE.format(sent=n, cluster="outbound|80||a.example") for n in (2**63 - 1, 2**63, 10**23)]
    lines.append(json.dumps({"start_time": "2025-03-01T10:00:00.123Z", "method": "GET", "response_code": 2**31,
                             "bytes_sent": 2**64, "upstream_cluster": "outbound|80||a.example"}))
    got, rejects = parsed(Parser(fast=fast), lines)
    assert [r["bytes_sent"] for r in got] == [2**63 - 1]
    top = "(at most 9223372036854775807: the column is a 64-bit int)"
    assert rejects == [f"invalid value: bytes_sent: {2**63} is out of range {top}",
                       f"invalid value: bytes_sent: {10**23} is out of range {top}",
                       f"invalid value: response_code: {2**31} is out of range (at most 2147483647: the column is a 32-bit int)"]


@pytest.mark.parametrize("cluster, got", [("outbound|443|_", "outbound|443|_"), ("outbound|4x3||a", "outbound|4x3||a"),
                                          ("outbound|443||a.example;;", "outbound|443||a.example;;")])
def test_a_malformed_cluster_is_the_cluster_s_fault(cluster, got):
    """A cluster whose start reads as a name ("outbound") broke at its '|': the reason blamed the
    separator after it (expected ' ' before upstream_local_address, got '|443|_ …')."""
    _, (reason,) = parsed(Parser(), [LINE.format(sent=5, cluster=cluster)])
    assert reason.startswith("column 125: upstream_cluster expected a cluster name (") and f"got {got!r}" in reason


def test_json_method_protocol_and_long_flags_have_their_text_shapes():
    base = {"start_time": "2025-03-01T10:00:00.123Z", "method": "GET", "protocol": "HTTP/1.1", "response_code": 200}
    lines = [json.dumps({**base, **kv}) for kv in ({}, {"method": "GET /x"}, {"protocol": "http 1.1"},
                                                    {"method": "-", "protocol": "-"})]
    got, rejects = parsed(Parser(), lines)
    assert [(r["method"], r["protocol"]) for r in got] == [("GET", "HTTP/1.1"), (None, None)]
    assert rejects == ["invalid value: key \"method\" expected METHOD or '-', got 'GET /x'",
                       "invalid value: key \"protocol\" expected PROTOCOL or '-', got 'http 1.1'"]
    layout = layouts.layout_from_format('{"t":"%START_TIME%","f":"%RESPONSE_FLAGS_LONG%"}')
    got, rejects = parsed(Parser(custom=layout), [json.dumps({"t": base["start_time"], "f": f}) for f in
                                                  ("UpstreamConnectionFailure,UpstreamRetryLimitExceeded", "uf, x", "-")])
    assert [r["response_flags"] for r in got] == [["UF", "URX"], []]
    assert rejects == ["invalid value: key \"f\" (response_flags) expected FLAGS_LONG or '-', got 'uf, x'"]


@pytest.mark.parametrize("rule, count", [("INT | DASH", True), ("(INT | DASH)", True), ("INT", True),
                                         ("INT | DASH | DASH INT", False), ("DASH? INT", False)])
def test_a_grammar_s_count_column_reads_no_sign(tmp_path, rule, count):
    """A rule that reads "-1" (``DASH INT``) is text, as ``DASH? INT`` was: no Envoy count is negative."""
    (tmp_path / "g.lark").write_text("%import .common (SP, INT, DASH, WORD)\ncustom: response_code SP attempts\n"
                                     f"response_code: INT\nattempts: {rule}\n")
    layout = layouts.layout_from_options(grammar_file=str(tmp_path / "g.lark"))
    assert (layout.counts == {"attempts"}) is count
    got, _ = parsed(Parser(custom=layout), ["200 -1", "200 7"])
    assert [r["attempts"] for r in got] == ([7] if count else ["-1", "7"])
