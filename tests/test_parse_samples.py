"""Every sample log against its golden records (tests/golden/<sample>.ndjson), and the count law
read = parsed + rejected + blank, line by line.

Update the golden files with ``pytest tests/test_parse_samples.py --update-golden`` and review the
diff (``git diff tests/golden``) before committing: a changed line is a changed parse.
"""
from __future__ import annotations

import functools
import hashlib
import json

import pytest
from conftest import GOLDEN, read_lines, sample_files, sample_id

from logpipe.batches import Counts
from logpipe.parse import default_parser
from logpipe.schema import COLUMNS, REJECT_CLASSES
from logpipe.sources import Input

SAMPLES = sample_files()


@functools.lru_cache(maxsize=None)
def parse_sample(path):
    """Parse a sample the way `logpipe parse` reads it (decompression included), one batch per chunk;
    once for the three tests of each sample (they only read the batches)."""
    from logpipe.pipeline import parse_input

    batches = [b for b, _ in parse_input(Input(str(path), label=sample_id(path)), default_parser(), workers=1)]
    return batches, sum(b.read for b in batches)


# Large samples (generated scenarios) keep every reject but only every RECORD_STRIDE-th record in
# full, plus a summary with a digest of all records, so the golden files stay reviewable as diffs.
LARGE_SAMPLE_LINES = 400
RECORD_STRIDE = 50


def golden_rows(batches, total: int) -> list[dict]:
    """Records (non-null columns only, in schema order) and rejects, in line order."""
    from logpipe.jsonout import to_jsonable

    rows, digest, formats = [], hashlib.sha256(), {}
    large = total > LARGE_SAMPLE_LINES
    for b in batches:
        for r in b.records.to_pylist():
            row = {k: to_jsonable(r[k]) for k in COLUMNS if r[k] is not None and r[k] != []}
            digest.update(json.dumps(row, sort_keys=True).encode())
            formats[row.get("log_format")] = formats.get(row.get("log_format"), 0) + 1
            if not large or row["line_number"] % RECORD_STRIDE == 1:
                rows.append(row)
        for r in b.rejects.to_pylist():
            rows.append({"line_number": r["line_number"], "reject": r["class"], "reason": r["reason"],
                         "column": r["column"]})
    rows.sort(key=lambda r: r["line_number"])
    if large:
        rows.insert(0, {"line_number": 0, "summary": {"lines": total, "formats": dict(sorted(formats.items())),
                                                      "records_sha256": digest.hexdigest()}})
    return rows


def test_there_are_samples():
    assert len(SAMPLES) >= 10, "sample_logs/ should hold a sample of every kind of log"


@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_every_line_ends_as_a_row_a_reject_or_blank(path):
    """... or as a part of a split line joined to its first part's row (cri-node.log, docker-json-file.log)."""
    batches, total = parse_sample(path)
    counts = Counts()
    for b in batches:
        counts.add(b)
    assert counts.read == total
    assert counts.read == counts.parsed + counts.rejected + counts.blank + counts.joined
    numbers = [n for b in batches for n in b.records.column("line_number").to_pylist()]
    numbers += [n for b in batches for n in b.rejects.column("line_number").to_pylist()]
    joined = [n for b in batches for n in b.joined_lines]
    assert len(numbers + joined) == len(set(numbers + joined)), "a line became two rows/rejects"
    assert len(numbers) == total - counts.blank - counts.joined
    assert set(numbers) <= set(range(1, total + 1))
    for b in batches:
        for r in b.rejects.to_pylist():
            assert r["class"] in REJECT_CLASSES
            assert r["reason"], f"line {r['line_number']} rejected without a reason"
            assert r["source"] == sample_id(path)
        assert set(b.records.column("source").to_pylist()) <= {sample_id(path)}


@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_golden_records(path, update_golden):
    batches, total = parse_sample(path)
    got = golden_rows(batches, total)
    golden = GOLDEN / f"{sample_id(path)}.ndjson"
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in got)
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
        return
    assert golden.exists(), f"no golden file for {sample_id(path)}: run pytest --update-golden and review it"
    want = [json.loads(line) for line in golden.read_text(encoding="utf-8").splitlines()]
    by_line = {r["line_number"]: r for r in want}
    for row in got:
        assert row == by_line.get(row["line_number"]), f"{sample_id(path)}:{row['line_number']} differs from golden"
    assert len(got) == len(want)


def test_no_golden_file_without_a_sample():
    """A golden file whose sample was renamed or deleted is stale."""
    names = {f"{sample_id(p)}.ndjson" for p in SAMPLES}
    stale = [p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*.ndjson") if p.relative_to(GOLDEN).as_posix() not in names]
    assert not stale, f"golden files without a sample: {stale} (delete them)"


@pytest.mark.parametrize("path", [p for p in SAMPLES if "malformed" not in p.name and "noise" not in p.name],
                         ids=sample_id)
def test_access_samples_have_no_malformed_lines(path):
    """Sample files of access lines may carry noise, but every access line in them parses."""
    batches, _ = parse_sample(path)
    malformed = [r for b in batches for r in b.rejects.to_pylist() if r["class"] == "malformed"]
    assert not malformed, malformed[:3]


def test_layout_is_detected_per_line_in_a_mixed_file():
    """During an upgrade one file mixes versions: each line keeps the layout it has alone."""

    alone = {}
    for path in SAMPLES:
        lines = read_lines(path)[:40]
        for r in default_parser().parse_batch(lines).records.to_pylist():
            alone.setdefault(r["log_format"], lines[r["line_number"] - 1])
    assert len(alone) >= 8, sorted(alone)
    mixed = [line for _ in range(3) for line in alone.values()]
    b = default_parser().parse_batch(mixed)
    assert b.parsed == len(mixed)
    assert b.records.column("log_format").to_pylist() == [f for _ in range(3) for f in alone]


def test_records_as_string_views_are_the_records():
    """``parse_chunk(views=True)`` (ingest's lanes: ``schema.view_schema``, written without a cast)
    gives the records of ``parse_chunk``, as string views: every sample file, one chunk each."""
    from logpipe.schema import RECORD_SCHEMA, view_schema

    parser = default_parser()
    for path in SAMPLES:
        if path.suffix != ".log":
            continue
        body = path.read_bytes()
        plain, views = parser.parse_chunk(body, path.name), parser.parse_chunk(body, path.name, views=True)
        assert views.records.schema.equals(view_schema(RECORD_SCHEMA)), path
        assert views.records.cast(RECORD_SCHEMA).equals(plain.records), path
        assert views.rejects.equals(plain.rejects) and (views.read, views.blank) == (plain.read, plain.blank)
