"""records.read_times: Arrow's ISO-8601 cast where it reads a time as polars' TIME_FORMAT does, polars
elsewhere; the same times (and nulls) as polars alone, for every text."""
from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pyarrow as pa
import pytest

from logpipe.records import ISO_SHAPE, TIME_FORMAT, read_times

DIGITS = "0123456789"
ZONES = ["Z", "+00:00", "-00:00", "+05:30", "+0530", "-1200", "+14:00", "+23:59", "-23:59", "+24:00", "+12:60",
         "+00:99", "+05", "z", "-99"]


def polars_times(texts: list) -> list:
    return pl.Series("t", texts, dtype=pl.String).str.to_datetime(
        TIME_FORMAT, time_unit="us", time_zone="UTC", strict=False).cast(pl.Int64).to_list()


def arrow_reads(texts: list[str]) -> list[bool]:
    """Whether read_times takes each text, alone, by Arrow's cast (the fast path): the shape checked
    for all of them in one polars call (per text, as a column of one), the cast per text."""
    return [shaped and _arrow_casts(text)
            for text, shaped in zip(texts, pl.Series(texts, dtype=pl.String).str.contains(ISO_SHAPE).to_list())]


def _arrow_casts(text: str) -> bool:
    try:
        pa.array([text]).cast(pa.timestamp("us", "UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def near_iso(rng: random.Random) -> str:
    """A time of years 1-9999 in ISO-8601, often with one field pushed out of range (month 13, hour
    24, second 60, February 30, year 0), a 1-6 digit fraction or none, and an offset, valid or not."""
    t = dt.datetime(1, 1, 1) + dt.timedelta(seconds=rng.randint(0, 315537897599))
    parts = [f"{t.year:04d}", "-", f"{t.month:02d}", "-", f"{t.day:02d}", "T",
             f"{t.hour:02d}", ":", f"{t.minute:02d}", ":", f"{t.second:02d}"]
    if rng.random() < 0.8:
        parts.append("." + "".join(rng.choice(DIGITS) for _ in range(rng.randint(1, 6))))
    parts.append(rng.choice(ZONES))
    if rng.random() < 0.25:
        i = rng.randrange(len(parts))
        if parts[i].isdigit():
            parts[i] = rng.choice(["60", "24", "00", "13", "29", "30", "31", "99", "0000"])
    return "".join(parts)


def wild(rng: random.Random) -> str:
    """Texts off the shape: a space or 't' for 'T', 7-9 digit fractions, no seconds, date only."""
    text = near_iso(rng)
    how = rng.randrange(5)
    if how == 0:
        return text.replace("T", rng.choice([" ", "t"]), 1)
    if how == 1:
        return text[:19] + "." + "".join(rng.choice(DIGITS) for _ in range(rng.randint(7, 9))) + "Z"
    if how == 2:
        return text[:16] + "Z"
    if how == 3:
        return text[:10]
    return text[:rng.randrange(len(text))]


def test_each_text_reads_as_polars_alone():
    rng = random.Random(20261129)
    texts = [near_iso(rng) for _ in range(3000)] + [wild(rng) for _ in range(1000)]
    by_arrow = arrow_reads(texts)
    fast = [t for t, a in zip(texts, by_arrow) if a]
    assert len(fast) > 1500, "the fuzz must exercise Arrow's path"
    assert len(fast) < len(texts) - 500, "and polars' path"
    # each text that Arrow reads alone is read in one column of them (Arrow reads such a column
    # whole, each text as alone: ~0.7 ms a call saved); each other one alone, as a column of one
    assert read_times(pl.Series("t", fast)).cast(pl.Int64).to_list() == polars_times(fast)
    slow = [t for t, a in zip(texts, by_arrow) if not a]
    got = [read_times(pl.Series("t", [t])).cast(pl.Int64)[0] for t in slow]
    assert got == polars_times(slow)


@pytest.mark.parametrize("texts", [
    ["2024-07-18T16:13:58.198Z", "2024-07-18T16:13:59.001Z", None],  # Envoy's %START_TIME%: Arrow
    ["2024-02-29T00:00:00.000Z", "2024-01-01T00:00:00.000+05:30", "2024-01-01T05:30:00-0530"],
    ["2024-07-18T16:13:58.198Z", "2024-12-31T23:59:60.000Z"],  # a leap second: polars reads it, Arrow not
    ["2024-07-18T16:13:58.198Z", "2023-02-29T00:00:00.000Z"],  # no such day: null (a reject)
    ["2024-07-18T16:13:58.198Z", "2024-07-18 16:13:58.198Z"],  # Arrow would read the space; polars not
    ["2024-07-18T16:13:58.123456789Z", "2024-07-18T16:13:58Z"],  # nanoseconds: polars truncates
    ["0000-01-01T00:00:00.000Z"],  # both read year 0 (type_columns then rejects it: TIME_RANGE)
    [None, None],
])
def test_a_column_reads_as_polars_alone(texts):
    got = read_times(pl.Series("start_time", texts, dtype=pl.String))
    assert got.dtype == pl.Datetime("us", "UTC") and got.name == "start_time"
    assert got.cast(pl.Int64).to_list() == polars_times(texts)
