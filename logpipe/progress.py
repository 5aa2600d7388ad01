"""What ``logpipe ingest`` shows: a progress bar on a terminal (notes above it), and the summary."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from .batches import Counts, plural


@dataclass
class IngestSummary:
    """What ``ingest_paths`` did; ``lines()`` is the summary printed on stderr."""

    data: str = ""
    inputs: int = 0
    ingested: int = 0
    skipped: int = 0
    failed: int = 0
    counts: Counts = field(default_factory=Counts)
    rows: int = 0
    files: int = 0
    undated: int = 0
    min_time: object = None
    max_time: object = None
    bytes: int = 0
    seconds: float = 0.0
    errors: list = field(default_factory=list)
    refused_lines: int = 0  # lines read of inputs refused over --max-reject-ratio (counted, not stored)
    damaged: int = 0  # of those skipped, damaged archives ingested before up to the damage (errors too)
    unread: int = 0  # inputs not read when a full disk stopped the run (the next run reads them)
    documents: list = field(default_factory=list)  # (name, kind) of inputs left out as no log (sources.document_of)

    def lines(self) -> list[str]:
        c = self.counts
        refused = (f"; {self.refused_lines} of them in inputs not ingested (over --max-reject-ratio), none stored"
                   if self.refused_lines else "")
        out = []
        if self.documents:  # (a bundle holds hundreds: one line, not one each)
            name, kind = self.documents[0]
            more = f" and {len(self.documents) - 1} more" if len(self.documents) > 1 else ""
            holds = "holds" if len(self.documents) == 1 else "hold"  # (records printed indented, jq's: not read)
            out.append(f"left out {plural(len(self.documents), 'input')} that {holds} no log lines (a bundle's resources and"
                       f" config dumps: indented JSON, Kubernetes YAML; log records printed indented read one a line,"
                       f" `jq -c .`): {name} ({kind}){more}")
        out += [
            f"inputs {self.inputs}: ingested {self.ingested}"
            + (f" ({len(self.errors)} only up to the damage)" if self.errors else "")
            + f", skipped as already ingested {self.skipped}"
            + (f" ({self.damaged} only up to the damage)" if self.damaged else "")
            + (f", not logs {len(self.documents)}" if self.documents else "")
            + (f", errors {self.failed}" if self.failed else "") + (f", not read {self.unread}" if self.unread else ""),
            f"lines {c.summary()}{refused}",
            f"rows written {self.rows} in {plural(self.files, 'file')} to {self.data}",
        ]
        if self.min_time is not None:
            out.append(f"date range {self.min_time:%Y-%m-%d %H:%M:%S} to {self.max_time:%Y-%m-%d %H:%M:%S} UTC"
                       + (f" ({self.undated} rows without start_time in date=unknown)" if self.undated else ""))
        mb = self.bytes / 1e6
        size = f"{mb:.1f} MB" if mb >= 1 else f"{self.bytes / 1e3:.1f} kB"
        out.append(f"{size} in {self.seconds:.2f} s, {mb / max(self.seconds, 1e-6):.2f} MB/s")
        return out


def print_summary(summary: IngestSummary, started: float, shown: int, max_warnings: int, ds, err) -> None:
    summary.seconds = time.monotonic() - started
    if shown > max_warnings:
        print(f"… {shown - max_warnings} more malformed lines not shown (ingested inputs keep them in "
              f"{ds.rejects_glob()}; raise --max-warnings to see them here)", file=err)
    for line in summary.lines():
        print(line, file=err)


class IngestProgress:
    """rich progress on a TTY (bytes and lines per input, throughput, ETA); notes above it. Off the
    TTY it only prints notes."""

    def __init__(self, err, enabled: bool | None):
        self.err = err
        self.enabled = (err.isatty() if hasattr(err, "isatty") else False) if enabled is None else enabled
        self.progress = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                       TransferSpeedColumn)

            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[lines]} lines"),
                TransferSpeedColumn(), TimeRemainingColumn(), console=Console(file=self.err), transient=True)
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.stop()

    def note(self, text: str) -> None:
        if self.progress:
            self.progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.err)

    def start(self, name: str, size: int | None):
        if not self.progress:
            return None
        base = os.path.basename(name)
        return self.progress.add_task(base if len(base) <= 32 else "…" + base[-31:], total=size, lines=0)

    def advance(self, task, done: int, lines: int) -> None:
        if self.progress and task is not None:
            self.progress.update(task, completed=done, lines=lines)

    def finish(self, task) -> None:
        if self.progress and task is not None:
            self.progress.remove_task(task)
