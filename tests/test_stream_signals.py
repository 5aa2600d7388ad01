"""A stream's signals after the first: a Ctrl-C stops it at once whatever came first, and says what
came first (after a SIGTERM it said "a second Ctrl-C", which no one had pressed); a SIGTERM or SIGHUP
does not, a supervisor's (its "now" is SIGKILL; the kubelet sends SIGTERM again when it restarts)."""
from __future__ import annotations

import io
import signal

import pytest

from logpipe import stream
from logpipe.stream import StreamOptions, Streamer


class Exited(Exception):
    pass


@pytest.fixture
def streamer(tmp_path, monkeypatch):
    def exit_(code):
        raise Exited(code)

    monkeypatch.setattr(stream.os, "_exit", exit_)
    return Streamer(str(tmp_path / "ds"), StreamOptions(alerts=False), stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.parametrize("first, says", [
    (signal.SIGINT, "a second Ctrl-C"),
    (signal.SIGTERM, "Ctrl-C after SIGTERM"),
    (signal.SIGHUP, "Ctrl-C after SIGHUP"),
])
def test_a_ctrl_c_after_any_signal_stops_at_once_saying_what_came_first(streamer, first, says):
    streamer._on_signal(first, None)
    streamer.stored_to = 1601
    with pytest.raises(Exited) as e:
        streamer._on_signal(signal.SIGINT, None)
    assert e.value.args == (130,)
    assert streamer._stderr.getvalue().splitlines()[-1] == (
        f"logpipe: stopped at once by {says}: lines from 1601 on were not stored (a restarted stream stores"
        " them when it is handed them again)")
    assert streamer.signal == first  # (the summary's "stopped by": never printed, but the first)


@pytest.mark.parametrize("first", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("then", [signal.SIGTERM, signal.SIGHUP])
def test_a_sigterm_or_sighup_after_the_first_signal_goes_on_storing(streamer, first, then):
    streamer._on_signal(first, None)
    said = streamer._stderr.getvalue()
    streamer._on_signal(then, None)  # (no Exited: it goes on)
    assert (streamer.signal, streamer._stderr.getvalue()) == (first, said)
