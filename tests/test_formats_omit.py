"""Envoy's omit_empty_values: true (SubstitutionFormatString, beside text_format / text_format_source): an
absent value is printed as empty text, not "-" (FormatterImpl::format: value_or(empty_value_string_)).
Said in a format file as Envoy's config says it; read alike by the fast path and by Lark."""
from __future__ import annotations

import pytest

from logpipe import layouts
from logpipe.formatfile import read_format_file
from logpipe.formats import OmittingFormat
from logpipe.parse import Parser

FMT = ('[%START_TIME%] %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_SENT% "%REQ(X-FORWARDED-FOR)%" %UPSTREAM_CLUSTER% '
       '%UPSTREAM_HOST% %REQ(X-B3-TRACEID)% %ROUTE_NAME%')
T = "[2024-01-05T10:00:00.000Z]"
LINES = [f'{T} 200  5 ""    ',  # (every value but the time and the code absent)
         f'{T} 200 UF 5 "1.2.3.4" outbound|80||a.b;  abc r1',
         f'{T} 0 - - "-" - 10.0.0.1:80 - -',  # (a "-" of its own is null as ever)
         f'{T}    "" BlackHoleCluster   ']
COLS = ["response_code", "response_flags", "bytes_sent", "x_forwarded_for", "upstream_cluster", "upstream_host",
        "x_b3_traceid", "route_name"]


def records(fmt: str, fast: bool, lines=LINES):
    batch = Parser(custom=layouts.layout_from_format(fmt), fast=fast).parse_batch(lines, "t.log")
    return batch.records.to_pylist(), batch.rejects.to_pylist()


def test_absent_values_are_null_on_the_fast_path_and_lark_alike():
    """`[t] 200  5 ""` was rejected: 'response_flags expected FLAGS or '-''."""
    fast, fast_rejects = records(OmittingFormat(FMT), True)
    lark, lark_rejects = records(OmittingFormat(FMT), False)
    assert fast_rejects == lark_rejects == []
    assert [[r[c] for c in COLS] for r in fast] == [
        [200, None, 5, None, None, None, None, None],
        [200, ["UF"], 5, "1.2.3.4", "outbound|80||a.b", None, "abc", "r1"],
        [0, [], None, None, None, "10.0.0.1:80", None, None],
        [None, None, None, None, "BlackHoleCluster", None, None, None]]
    assert fast == lark  # (every column, the raw line and its number too)


def test_without_it_an_empty_value_is_malformed_as_before():
    _, rejects = records(FMT, True, LINES[:1])
    assert len(rejects) == 1 and "response_flags expected FLAGS or '-'" in rejects[0]["reason"]


def test_a_format_file_says_it_as_envoy_s_config_does(tmp_path):
    path = tmp_path / "envoy.yaml"
    path.write_text(
        "access_log:\n- name: envoy.access_loggers.file\n  typed_config:\n    path: /dev/stdout\n    log_format:\n"
        f"      text_format_source:\n        inline_string: '{FMT}\\n'\n      omit_empty_values: true\n")
    fmt = read_format_file(str(path))
    assert isinstance(fmt, OmittingFormat) and fmt.startswith("[%START_TIME%]")
    layout = layouts.layout_from_options(format_file=str(path))
    got = Parser(custom=layout).parse_batch(LINES, "t.log")
    assert got.records.num_rows == 4 and got.rejects.num_rows == 0
    assert layout.spec.startswith("text_omit:")  # a dataset's manifest rebuilds it so
    again = layouts.layout_from_spec(layout.spec)
    assert Parser(custom=again).parse_batch(LINES, "t.log").records.num_rows == 4
    path.write_text(path.read_text().replace("true", "false"))
    assert not isinstance(read_format_file(str(path)), OmittingFormat)


@pytest.mark.parametrize("fast", [True, False])
def test_the_time_is_never_absent(fast):
    _, rejects = records(OmittingFormat(FMT), fast, ["[] 200 - 5 \"\" - - - -"])
    assert len(rejects) == 1
