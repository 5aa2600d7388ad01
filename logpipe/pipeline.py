"""The one place that knows the stage order: sources → parse → (batches → dataset | output)."""
from __future__ import annotations

import json
import sys
from typing import Iterator

from .errors import InputError, RejectLimitError, UsageError
from .parse import Counts, ParsedBatch, Parser, default_parser
from .sources import Input, expand_inputs, iter_chunks


def parse_input(inp: Input, parser: Parser | None = None, *, skip_bytes: int = 0,
                first_line: int = 1) -> Iterator[tuple[ParsedBatch, int]]:
    """Parse one input; yields each batch with the decompressed byte offset it ends at."""
    parser = parser or default_parser()
    line_no = first_line
    for lines, end in iter_chunks(inp, skip_bytes=skip_bytes):
        if not lines:
            continue
        yield parser.parse_batch(lines, inp.name, line_no), end
        line_no += len(lines)


def format_reject(r: dict) -> str:
    col = f", column {r['column']}" if r.get("column") else ""
    return f"{r['source']}:{r['line_number']}: {r['class']}: {r['reason']}{col}"


class RejectReporter:
    """Rejects to stderr (capped) or to an ndjson file, under an --on-error policy."""

    def __init__(self, on_error: str, max_warnings: int, path: str | None = None):
        self.on_error = on_error
        self.max_warnings = max_warnings
        self.shown = 0
        self.hidden = 0
        self.file = open(path, "w", encoding="utf-8") if path else None

    def report(self, batch: ParsedBatch) -> None:
        if not batch.rejected:
            return
        rows = batch.rejects.to_pylist()
        if self.file:
            for r in rows:
                self.file.write(json.dumps(r, ensure_ascii=False) + "\n")
        elif self.on_error != "skip":
            for r in rows:
                if self.shown < self.max_warnings:
                    print(format_reject(r), file=sys.stderr)
                    self.shown += 1
                else:
                    self.hidden += 1
        if self.on_error == "fail":
            first = rows[0]
            raise RejectLimitError(
                f"{first['source']}:{first['line_number']} was rejected ({first['reason']}) and --on-error"
                " is fail; use --on-error warn to continue past bad lines"
            )

    def close(self) -> None:
        if self.hidden:
            print(f"… {self.hidden} more rejects not shown (raise --max-warnings, or use --rejects FILE)",
                  file=sys.stderr)
        if self.file:
            self.file.close()


def parse_to_output(paths: list[str], *, fmt: str | None, out_path: str | None, rejects_path: str | None,
                    on_error: str, max_warnings: int) -> None:
    """``logpipe parse``: records to stdout (or --out), rejects to stderr, counts last."""
    from . import render

    inputs, errors = expand_inputs(paths)
    if errors and not inputs:
        raise InputError("; ".join(errors))
    for e in errors:
        print(f"logpipe: {e}", file=sys.stderr)
    if fmt is None:
        fmt = "parquet" if out_path and out_path.endswith(".parquet") else (
            "table" if sys.stdout.isatty() and not out_path else "ndjson")
    if fmt == "parquet" and not out_path:
        raise UsageError("-o parquet writes a file: add --out FILE.parquet")
    counts = Counts()
    reporter = RejectReporter(on_error, max_warnings, rejects_path)
    state = {"failed": bool(errors)}

    def records():
        for inp in inputs:
            try:
                for batch, _end in parse_input(inp):
                    counts.add(batch)
                    reporter.report(batch)
                    if batch.parsed:
                        yield batch.records
            except InputError as e:
                print(f"logpipe: error: {e}", file=sys.stderr)
                state["failed"] = True

    from .schema import RECORD_SCHEMA

    try:
        if fmt == "parquet":
            import pyarrow as pa

            render.write_parquet(pa.Table.from_batches(list(records()), schema=RECORD_SCHEMA), out_path)
        else:
            out = open(out_path, "w", encoding="utf-8", newline="") if out_path else sys.stdout
            try:
                render.render_table(records(), fmt, out, schema=RECORD_SCHEMA)
            finally:
                if out is not sys.stdout:
                    out.close()
    finally:
        reporter.close()
        print(counts.summary(), file=sys.stderr)
    failed = state["failed"]
    if failed:
        raise InputError("some inputs could not be read (see above)")
