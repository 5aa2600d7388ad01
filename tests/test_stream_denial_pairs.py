"""A connection ztunnel's policy refused is two lines when both nodes' ztunnels are read (the client's
401, the destination's inbound refusal), one denial in the reports (denials.sql pairs them). A stream's
authz_denial alert read each check's rows alone: when `kubectl logs -f` printed the two lines in
different flushes, the connection was two denials, an alert and a count too many. Its checks keep the
recent ztunnel lines (alerts.PAIR_SECONDS), so that the count its alerts say is the report's."""
from __future__ import annotations

import pytest

from conftest import close_shared_rules, shared_rules, stream_in_two_reads
from logpipe import alerts
from logpipe.parse import default_parser
from test_denials import DENY, UNAUTHORIZED, _zt_client, _zt_server, run

# two connections refused, each logged by both nodes (the server's clock 0.6 s behind, then 0.3 s ahead)
PAIRS = [_zt_client("53:40.000001", 47100, UNAUTHORIZED), _zt_server("53:39.400001", 51234, DENY),
         _zt_client("53:45.000001", 47101, UNAUTHORIZED), _zt_server("53:45.300001", 51234, DENY)]
# test_denials' five denials of eight lines: three 401s near one inbound refusal, two pairs
MANY = [_zt_client("53:40.000001", 47100, UNAUTHORIZED), _zt_client("53:40.500001", 47101, UNAUTHORIZED),
        _zt_server("53:40.600001", 51234, DENY), _zt_client("53:41.000001", 47102, UNAUTHORIZED),
        _zt_client("54:00.000001", 47103, UNAUTHORIZED), _zt_client("54:00.900001", 47104, UNAUTHORIZED),
        _zt_server("54:00.200001", 51234, DENY), _zt_server("54:01.000001", 51234, DENY)]


@pytest.fixture(scope="module", autouse=True)
def _close_shared_connections():
    yield
    close_shared_rules()


def counts(lines: list[str], cuts: list[int], window: float = 1e-4) -> list[int]:
    """The counts of the authz_denial alerts of ``lines`` checked in pieces cut before the lines of
    ``cuts`` (a window of 0.1 ms: each denial its own alert, so their counts add up to the denials)."""
    rules = shared_rules(window_seconds=window)  # (its DuckDB connection made once: ~0.2 s of each call's ~0.9)
    got, at = [], 0
    for end in [*cuts, len(lines)]:
        if end > at:
            got += rules.check(default_parser().parse_batch(lines[at:end], "<stdin>", at + 1).records)
        at = end
    return [a.count for a in got if a.kind == "authz_denial"]


def report_denials(tmp_path, lines: list[str]) -> int:
    (tmp_path / "zt.log").write_text("".join(x + "\n" for x in lines))
    return sum(f["evidence"]["denials"] for f in run("report", "anomalies", inputs=(tmp_path / "zt.log",))["findings"]
               if f["kind"] == "authz_denial")


def test_a_refusals_two_lines_in_two_checks_are_one_denial():
    # (it was [1, 1, 1, 1]: each line a denial of its own check)
    assert counts(PAIRS, [1, 2, 3]) == [1, 1]
    assert counts(PAIRS, [1]) == [1, 1]  # (the 401 alone, then its inbound line with the next pair: [1, 2])
    assert counts(PAIRS, []) == [1, 1]
    # the inbound line first
    assert counts([PAIRS[1], PAIRS[0], PAIRS[3], PAIRS[2]], [1, 2, 3]) == [1, 1]


@pytest.fixture(scope="module")
def many_reported(tmp_path_factory) -> int:
    """The report's denials of MANY, run once for every cut (the same lines, the same report: ~1.2 s a run)."""
    return report_denials(tmp_path_factory.mktemp("many"), MANY)


@pytest.mark.parametrize("cuts", [[], list(range(1, 8)), [2], [3, 6], [5]])
def test_the_alerts_count_what_the_report_counts_however_the_lines_are_cut(many_reported, cuts):
    assert many_reported == 5
    assert sum(counts(MANY, cuts)) == 5


def test_the_lines_kept_are_of_the_last_pair_seconds_and_at_most_pair_rows(monkeypatch):
    """A line past twice PAIR_SECONDS of the newest (event time) is no longer paired: its partner
    arriving later is a denial of its own; past PAIR_ROWS lines the oldest go."""
    late = [PAIRS[0], PAIRS[2].replace("53:45.", "53:50."), PAIRS[1]]  # (53:40's inbound line after a 401 10 s later)
    assert counts(late, [1, 2]) == [1, 1, 1]
    assert counts([PAIRS[0], PAIRS[2], PAIRS[1]], [1, 2]) == [1, 1]  # (5 s: between PAIR_SECONDS and twice it)
    monkeypatch.setattr(alerts, "PAIR_SECONDS", 10)
    assert counts(late, [1, 2]) == [1, 1]
    monkeypatch.setattr(alerts, "PAIR_ROWS", 1)
    assert counts(late, [1, 2]) == [1, 1, 1]


def test_the_stream_alerts_once_on_a_refusal_whose_lines_came_in_two_flushes(tmp_path):
    """End to end: the 401 read and flushed alone, its inbound line after; --window 1 makes the next
    pair's alert count what came since (it said `2 requests`: the inbound line counted again)."""
    data = tmp_path / "ds"
    err = stream_in_two_reads(data, "".join(x + "\n" for x in PAIRS).encode(), len(PAIRS[0]) + 1, "--window", "1",
                              "--flush-rows", "1", "--flush-seconds", "0.1", until=lambda: any(data.glob("*/*.parquet")))
    said = [x for x in err.splitlines() if x.startswith("alert ")]
    assert [x.split(": ")[1].split(" from ")[0] for x in said] == ["1 request", "1 request"], err
    assert report_denials(tmp_path, PAIRS) == 2
