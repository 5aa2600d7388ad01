"""``logpipe replay FILE``: write a log to stdout at the pace it was written, for demos and tests.

The gap between two lines is the gap between their ``start_time`` values (read by the parser, so
every layout logpipe reads replays), divided by the speed and capped, so an overnight gap does not
stall a demo. Envoy logs a request when it ends, with the time it started, so a long request's line
comes after lines of later times: it goes out at once, and the next pause is from the latest time so
far (it was from the line's own start: a 30 s request's line added a pause of 30 s, up to
--max-sleep, at --speed 1x). Lines without a time (noise, malformed lines) go out at once. Lines are written as
the bytes they were, invalid UTF-8 included, and stdout is flushed before every pause so that a
reader such as ``logpipe stream`` sees each line when it is "written".
"""
from __future__ import annotations

import os
import time
from typing import BinaryIO, Callable, Iterator

from .errors import InputError, UsageError
from .sources import CHUNK_BYTES, Input, open_binary

BATCH_LINES = 4096


def parse_speed(text: str) -> float | None:
    """``"10x"``/``"10"``/``"0.5x"`` → factor; ``"max"`` → ``None`` (no pauses)."""
    t = text.strip().lower()
    if t in ("max", "inf", "0"):
        return None
    try:
        value = float(t[:-1] if t.endswith("x") else t)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise UsageError(f"--speed {text!r} is not a speed: use a positive factor such as 10x or 0.5x, or max")
    return value


def _iter_raw_lines(inp: Input) -> Iterator[bytes]:
    stream, _kind = open_binary(inp)
    tail = b""
    try:
        while True:
            chunk = stream.read(CHUNK_BYTES)
            if not chunk:
                break
            data = tail + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                tail = data
                continue
            tail = data[cut + 1 :]
            yield from data[: cut + 1].splitlines(keepends=True)
        if tail:
            yield tail
    finally:
        if not inp.is_stream:
            stream.close()


def replay_file(path: str, out: BinaryIO, *, speed: float | None = 1.0, max_sleep: float = 2.0,
                sleep: Callable[[float], None] = time.sleep, parser=None) -> int:
    """Write ``path`` to ``out`` at its original pace divided by ``speed``; returns lines written.
    ``speed`` None (``--speed max``): no pauses, so no times read and no parser (nor polars) needed."""
    if path != "-" and not os.path.isfile(path):
        what = "is a directory" if os.path.isdir(path) else "no such file"
        raise InputError(f"{path}: {what}; give a log file, e.g. sample_logs/waypoint-egress-1.23.log")
    inp = Input(path)
    if parser is None and speed is not None:
        from .parse import default_parser

        parser = default_parser()
    written = 0
    previous = None
    batch: list[bytes] = []

    def emit(lines: list[bytes], first: int) -> None:
        nonlocal previous
        times = {}
        if speed is not None:
            records = parser.parse_batch([x.rstrip(b"\r\n") for x in lines], inp.name, first).records
            times = dict(zip(records.column("line_number").to_pylist(), records.column("start_time").to_pylist()))
        for i, line in enumerate(lines):
            t = times.get(first + i)
            if t is not None:
                if previous is not None:
                    delay = min(max((t - previous).total_seconds() / speed, 0.0), max_sleep)
                    if delay > 0:
                        out.flush()
                        sleep(delay)
                previous = t if previous is None else max(previous, t)  # (the latest time written)
            out.write(line)
        out.flush()

    for line in _iter_raw_lines(inp):
        batch.append(line)
        if len(batch) >= BATCH_LINES:
            emit(batch, written + 1)
            written += len(batch)
            batch = []
    if batch:
        emit(batch, written + 1)
        written += len(batch)
    return written
