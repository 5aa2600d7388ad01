"""A stream's lines that ``logpipe ingest`` stored in the dataset: not stored again.

``logpipe ingest <(kubectl logs …)``, then ``kubectl logs -f … | logpipe stream``: kubectl prints the
container's whole current log first (up to 10 MiB), every line the ingest stored. The streams' line
hashes (replayguard.py) do not know an ingest's lines, and the dataset does not keep the raw lines, so
a line is looked up by its record: a row of the ingest's files with the same values in every column
the line's text gives (``CONTENT_COLUMNS``: the 24 base columns and ztunnel's, not the provenance ones:
source, line number, pod, container, time received, layout), the same line parsed again. Only rows that
name one event are asked about (``replayguard.single_events``: a start time with a fraction of a second
and a request id, or a TCP line's client address and port), so two real requests that print the same
line are never merged; the same request logged by two proxies (one request id, one millisecond) differs
in its upstream cluster, addresses and duration.

Where: the ingests' files only, as the manifest lists them (complete entries' ``parts``, merged files
included): a stream's own rows are known by their hashes already, and the manifest gives each ingested
input's time range (``min_time``/``max_time``), so a row outside every range (a live stream, past
the ingest's last line) costs nothing, and a backlog's rows read only the files of the inputs whose
range overlaps theirs, and in them (polars' scan with a filter on start_time) only the row groups whose
statistics do. Measured, a 10,000-line backlog batch against a dataset of 995,045 ingested rows (20
files): 20 ms with polars, 32 ms with DuckDB (10 ms and 28 ms on 9 identifying columns only). The
manifest is read again only when it changed (a new inode: it is replaced whole).

Rejects: a line an ingest rejected is kept in its reject files with its text; a stream's reject whose
text has a time to the fraction of a second (``replayguard.TIMED_FINE``: an agent's line) is looked up
among the hashes of the ingests' rejects' texts with such a time, read once (and again when an ingest
adds reject files): 8 bytes a reject, in memory.
"""
from __future__ import annotations

import bisect
import datetime as dt
import os

from .schema import BASE_FIELDS, WORKLOAD_FIELDS

CONTENT_COLUMNS = [f.name for f in BASE_FIELDS + WORKLOAD_FIELDS]
# A date and time with a fraction of a second (replayguard.TIMED_FINE without what Rust's regex lacks:
# a superset, the lines a stream may ask about).
FINE_TIME = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d[.,]\d"


class Ingested:
    """What the complete ingests of ``dataset`` stored, as the manifest lists it: ``stored`` (rows)
    and ``rejected`` (reject texts). ``refresh`` takes in a manifest changed since."""

    def __init__(self, dataset):
        self.dataset = dataset
        self._stat: tuple | None = None
        # an input's time range, its row files as the manifest names them (under the dataset's root: a
        # path is joined only for the files a look-up reads; 18,000 entries' ~0.1 s of pathlib joins
        # on every refresh before)
        self.spans: list[tuple[dt.datetime, dt.datetime, list[str]]] = []
        self.entries: list[dict] = []  # (the manifest entries of ``spans``, in order)
        self.lo = self.hi = None  # (the earliest and latest ingested start time)
        self._union: list[list] = []
        self._starts: list = []  # (the spans' starts, and their ends, each sorted: ``holders``)
        self._ends: list = []
        self.reject_files: frozenset[str] = frozenset()  # (as the manifest names them, as ``spans``' files)
        self._reject_hashes = None  # (polars Series: loaded on the first ask, for ``_loaded_rejects``)
        self._loaded_rejects: frozenset[str] | None = None
        self.refresh()

    def refresh(self, force: bool = False) -> None:
        try:
            st = os.stat(self.dataset.manifest_path)
        except OSError:
            return
        stat = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stat == self._stat and not force:
            return
        entries = self.dataset.entries()
        self._stat = stat
        self.entries = [e for e in entries if e.get("min_time") and e.get("max_time") and e.get("parts")]
        self.spans = [(dt.datetime.fromisoformat(e["min_time"]), dt.datetime.fromisoformat(e["max_time"]), e["parts"])
                      for e in self.entries]
        self._ranges()
        self.reject_files = frozenset(p for e in entries for p in e.get("rejects") or ())

    def _ranges(self) -> None:
        """``lo``, ``hi`` and ``_union`` of ``spans``: sorted once and swept (18,000 spans ~15 ms; a
        ``_merge`` each took ~40)."""
        union: list[list] = []  # (the spans' union: sorted, disjoint ranges, for ``holders``)
        for a, b in sorted((s[0], s[1]) for s in self.spans):
            if union and a <= union[-1][1]:
                union[-1][1] = max(union[-1][1], b)
            else:
                union.append([a, b])
        self._union = union
        self.lo = union[0][0] if union else None
        self.hi = union[-1][1] if union else None
        # (the spans' starts and ends, each sorted: how many hold a time, by two bisections, ``holders``)
        self._starts = sorted(s[0] for s in self.spans if s[0] <= s[1])
        self._ends = sorted(s[1] for s in self.spans if s[0] <= s[1])

    def _merge(self, a, b) -> None:
        """``[a, b]`` into ``_union``, kept sorted and disjoint."""
        u = self._union
        i = bisect.bisect_left(u, a, key=lambda r: r[0])
        if i > 0 and u[i - 1][1] >= a:
            i -= 1
            a, b = u[i][0], max(b, u[i][1])
        j = i
        while j < len(u) and u[j][0] <= b:
            b = max(b, u[j][1])
            j += 1
        u[i:j] = [[a, b]]

    def add(self, entry: dict) -> None:
        """An entry the caller (an ingest: it holds the ingest lock) committed since: taken in without
        reading the manifest again (a run of 600 small inputs commits it 38 times)."""
        if entry.get("min_time") and entry.get("max_time") and entry.get("parts"):
            self.entries.append(entry)
            self.spans.append((dt.datetime.fromisoformat(entry["min_time"]), dt.datetime.fromisoformat(entry["max_time"]),
                               entry["parts"]))
            a, b = self.spans[-1][:2]
            self.lo, self.hi = min(self.lo or a, a), max(self.hi or b, b)
            self._merge(a, b)
            if a <= b:
                bisect.insort(self._starts, a)
                bisect.insort(self._ends, b)

    def holders(self, text: bytes) -> int | None:
        """How many ingested inputs' time ranges hold a date and time of ``text`` (lines not parsed yet;
        ISO 8601, UTC unless it says its offset, as the parser reads a start time): the most for any of
        its times, 0 when none does; None when it holds none that can be read. Without parsing (~15 ms
        for any few lines: the parser's set-up), a new input is told apart by its times (~0.1 ms for 64 KB)."""
        import re

        most = None
        for m in re.finditer(rb"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?)(Z|[+-]\d\d:?\d\d)?", text):
            try:
                t = dt.datetime.fromisoformat(m.group(1).replace(b",", b".").decode()[:26])
                if m.group(2) not in (None, b"Z"):
                    t = t.replace(tzinfo=dt.datetime.fromisoformat("2000-01-01T00:00:00" + m.group(2).decode()).tzinfo)
            except ValueError:
                return None
            t = t.astimezone(dt.timezone.utc) if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)
            # (the spans that start at or before t, less those that ended before it, which all started
            # before it: each span's start is not after its end. A sum over every span took ~18,000
            # comparisons a time, ~200 times a 64 KB head)
            held = bisect.bisect_right(self._starts, t) - bisect.bisect_left(self._ends, t)
            most = max(most or 0, held)
        return most

    def stored(self, rows, entry: dict | None = None) -> list[bool]:
        """Per row of ``rows`` (records, each with a start time), whether an ingest stored a row with
        its values in every ``CONTENT_COLUMNS`` (with ``entry``, a manifest entry: in its files). A file
        gone meanwhile (merged by a compaction): the manifest is read again and the look-up made again."""
        if self.lo is None or not rows.num_rows:
            return [False] * rows.num_rows
        only = None if entry is None else set(entry.get("parts") or ())
        try:
            return self._stored(rows, only)
        except lookup_errors():
            if only is not None:
                raise
            self.refresh(force=True)
            return self._stored(rows)

    def _stored(self, rows, only: set[str] | None = None) -> list[bool]:
        import polars as pl
        import pyarrow.compute as pc

        span = pc.min_max(rows.column("start_time")).as_py()  # (a live stream's every batch: after the ingests' last)
        if span["max"] is None or span["max"] < self.lo or span["min"] > self.hi:
            return [False] * rows.num_rows
        asked = pl.from_arrow(rows.select(CONTENT_COLUMNS))
        times = asked.get_column("start_time")
        inside = times.is_between(self.lo, self.hi)
        if not inside.any():  # (rows before and after the ingests' times, none within)
            return [False] * rows.num_rows
        lo, hi = times.filter(inside).min(), times.filter(inside).max()
        files = sorted({str(self.dataset.root / f) for a, b, parts in self.spans if a <= hi and b >= lo for f in parts
                        if only is None or f in only})
        if not files:
            return [False] * rows.num_rows
        key = pl.struct(CONTENT_COLUMNS).hash()  # (both sides hashed by this process: the same values, the same hash)
        have = (pl.scan_parquet(files).select(CONTENT_COLUMNS)
                .filter(pl.col("start_time").is_between(lo, hi)
                        & pl.col("start_time").is_in(times.filter(inside).unique().implode()))
                .select(key.alias("h")).collect().get_column("h"))
        if not have.len():
            return [False] * rows.num_rows
        return (inside & asked.select(key.is_in(have.implode())).to_series()).to_list()

    def rejected(self, raws: list[str]) -> list[bool]:
        """Per text, whether an ingest kept a reject of that text (one with a time to the fraction
        of a second: the only ones asked about)."""
        import polars as pl

        if not raws or not self.reject_files:
            return [False] * len(raws)
        if self._loaded_rejects != self.reject_files:
            try:
                self._load_rejects()
            except lookup_errors():
                self.refresh(force=True)
                self._load_rejects()
        return pl.Series(raws, dtype=pl.String).hash().is_in(self._reject_hashes.implode()).to_list()

    def _load_rejects(self) -> None:
        import polars as pl

        files = sorted(str(self.dataset.root / p) for p in self.reject_files)
        self._reject_hashes = (pl.scan_parquet(files).select("raw").filter(pl.col("raw").str.contains(FINE_TIME))
                               .select(pl.col("raw").hash()).collect().to_series().unique())
        self._loaded_rejects = self.reject_files


def lookup_errors() -> tuple:
    """What a look-up in the dataset's files may raise: a file gone or damaged."""
    import polars as pl

    return OSError, pl.exceptions.PolarsError
