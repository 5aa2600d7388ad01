"""logpipe/ingested.py: the index of what ingests stored, which a stream (and an ingest's overlap
check) asks whether rows or times were stored already."""
from __future__ import annotations

import datetime as dt
import random

from logpipe.ingested import Ingested


def _bare(spans) -> Ingested:
    known = Ingested.__new__(Ingested)
    known.spans, known._union, known.lo, known.hi = list(spans), [], None, None
    known.entries, known._starts, known._ends = [], [], []
    return known


T0 = dt.datetime(2024, 7, 18, tzinfo=dt.timezone.utc)


def _random_spans(rng, most: int, lengths: list[int]) -> list[tuple]:
    """Up to ``most`` spans within T0's first 90 s, each of one of ``lengths`` seconds: overlapping,
    touching, nested, repeated or apart."""
    spans = []
    for _ in range(rng.randint(0, most)):
        a = T0 + dt.timedelta(seconds=rng.randint(0, 60))
        spans.append((a, a + dt.timedelta(seconds=rng.choice(lengths)), ["p.parquet"]))
    return spans


def test_the_union_of_spans_swept_at_once_equals_the_one_merged_span_by_span():
    """``_ranges`` (a refresh: every entry's span, sorted and swept) and ``_merge`` (an entry added
    by an ingest, span by span) give the same sorted, disjoint union, lo and hi: spans that overlap,
    touch, nest, repeat, or stand apart, in any order."""
    rng = random.Random(7)
    for _ in range(300):
        spans = _random_spans(rng, 12, [0, 0, 1, 3, 10, 30])
        swept = _bare(spans)
        swept._ranges()
        merged = _bare(spans)
        for a, b, _ in spans:
            merged._merge(a, b)
        assert swept._union == merged._union
        assert (swept.lo, swept.hi) == (min((s[0] for s in spans), default=None), max((s[1] for s in spans), default=None))
        for lo_hi, nxt in zip(swept._union, swept._union[1:]):
            assert lo_hi[1] < nxt[0]  # (disjoint, not touching: a touch is merged)


def test_how_many_spans_hold_a_time_by_two_bisections_equals_a_count_of_them():
    """``holders``' count of the spans that hold a time (the spans that start at or before it, less
    those that ended before it), as spans come from a refresh (``_ranges``) and one by one (``add``):
    a count over every span took ~18,000 comparisons a time at a long history's 18,000 entries."""
    rng = random.Random(11)
    for _ in range(200):
        spans = _random_spans(rng, 15, [0, 1, 5, 20])
        swept = _bare(spans)
        swept._ranges()
        added = _bare([])
        for a, b, parts in spans:
            added.add({"min_time": a.isoformat(), "max_time": b.isoformat(), "parts": parts})
        for s in range(-2, 90):
            t = T0 + dt.timedelta(seconds=s)
            text = t.strftime("%Y-%m-%dT%H:%M:%S.000Z").encode()
            want = sum(1 for a, b, _ in spans if a <= t <= b)
            assert swept.holders(text) == added.holders(text) == want, (spans, t)
