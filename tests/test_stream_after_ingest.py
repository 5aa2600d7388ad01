"""A stream does not store again what `logpipe ingest` stored (logpipe/ingested.py): `logpipe ingest`
of yesterday's log, then `kubectl logs -f … | logpipe stream`, whose backlog is that log again."""
from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import SAMPLES, run_logpipe
from test_stream import access_line, dataset_rejects, dataset_rows, run_stream_on, stream_cli, summary

AGENT = "2025-01-30T10:54:16.279513Z\tinfo\txdsproxy connected to upstream XDS server"  # (a reject, µs: one event)
SAMPLE = [x for x in (SAMPLES / "waypoint-egress-1.23.log").read_text().splitlines() if x.strip()] + [AGENT]
# the next hour's traffic, alike but for its times: new lines (among them the same authz denial)
LATER = [x.replace("2025-01-30T10:5", "2025-01-30T11:5") for x in SAMPLE]


def ingest(data: Path, lines: list[str], tmp_path: Path, *args: str) -> None:
    log = tmp_path / f"in{len(list(tmp_path.glob('in*')))}.log"
    log.write_text("".join(x + "\n" for x in lines))
    got = run_logpipe("ingest", str(log), "--data", str(data), *args)
    assert got.returncode == 0, got.stderr


def test_a_stream_skips_the_lines_an_ingest_stored(tmp_path):
    """The backlog an ingest stored is counted as replayed: no row, no reject, no alert of it; the new
    lines after it are stored and alerted on. Its lines' hashes are kept, as the stream's own."""
    data = tmp_path / "data"
    ingest(data, SAMPLE, tmp_path)
    ingested = dataset_rows(data).num_rows
    assert ingested == len(SAMPLE) - 1 and dataset_rejects(data).num_rows == 1
    run = stream_cli(data, input="".join(x + "\n" for x in SAMPLE + LATER).encode())
    err = tmp_path / "err"
    err.write_bytes(run.stderr)
    assert run.returncode == 0, run.stderr.decode()
    s = summary(err)
    assert s["replayed"] == len(SAMPLE), s["text"]
    assert s["parsed"] == len(LATER) - 1 and s["rejected"] == 1, s["text"]
    assert dataset_rows(data).num_rows == ingested + len(LATER) - 1
    assert sorted(dataset_rejects(data).column("raw").to_pylist()) == sorted([AGENT, LATER[-1]])
    # alerts only of the new lines (the denial at line 17 of the sample: again at 17 + len(SAMPLE))
    alerted = [int(n) for n in re.findall(r"^alert .*\(<stdin>:(\d+)\)$", s["text"], re.M)]
    assert alerted and min(alerted) > len(SAMPLE), s["text"]
    # the stream kept the hashes of the ingested lines it skipped too: 8 bytes a timed line
    assert sum(f.stat().st_size for f in (data / "_stream").glob("*.seen")) == 8 * (len(SAMPLE) + len(LATER))


def test_only_lines_that_name_one_event_are_looked_up(tmp_path):
    """Envoy's default format's TCP lines hold no request id and no client address: two connections
    in one millisecond print the same line, so one an ingest stored is stored again by the stream; the
    HTTP lines (a request id each) are not."""
    tcp = ['[2025-01-30T10:00:01.250Z] "- - -" 0 - 0 0 0 - "-" "-" "-" "-" "192.0.2.7:443"',
           '[2025-01-30T10:00:02.500Z] "- - -" 0 - 0 0 0 - "-" "-" "-" "-" "192.0.2.8:443"']
    log = [access_line(1), tcp[0], access_line(2), tcp[1]]
    data = tmp_path / "data"
    ingest(data, log, tmp_path)
    s = run_stream_on(data, log, tmp_path)
    assert s["replayed"] == 2 and s["parsed"] == 2, s["text"]
    paths = dataset_rows(data).column("path").to_pylist()
    assert paths.count("/item/1") == paths.count("/item/2") == 1 and len(paths) == 6


def test_a_line_without_a_fraction_of_a_second_or_request_id_is_stored_again(tmp_path):
    """Under a format in whole seconds with no request id, the same line twice may be two requests
    (two probes of /healthz): the stream stores it though an ingest stored it."""
    fmt = "%START_TIME(%Y-%m-%dT%H:%M:%S)% %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %DOWNSTREAM_REMOTE_ADDRESS%"
    probes = ["2025-01-30T10:00:01 GET /healthz 200 10.0.0.1:5000", "2025-01-30T10:00:02 GET /healthz 200 10.0.0.1:5000"]
    data = tmp_path / "data"
    ingest(data, probes, tmp_path, "--format-string", fmt)
    s = run_stream_on(data, probes, tmp_path, "--format-string", fmt)
    assert s["parsed"] == 2 and s["replayed"] == 0, s["text"]
    assert dataset_rows(data).num_rows == 4


def test_a_stream_after_an_ingest_of_other_lines_stores_its_own(tmp_path, monkeypatch):
    """A dataset whose ingests hold other lines (or none): everything the stream reads is stored, and
    rows after the ingests' last start time read no row file (a live stream pays nothing; the
    ingests' rejects are read once, for the agent's line)."""
    import polars as pl

    data = tmp_path / "data"
    ingest(data, SAMPLE, tmp_path)
    scans = []
    real = pl.scan_parquet
    monkeypatch.setattr(pl, "scan_parquet", lambda files, **kw: scans.extend(files) or real(files, **kw))
    s = run_stream_on(data, LATER, tmp_path)
    assert s["parsed"] == len(LATER) - 1 and s["replayed"] == 0, s["text"]
    # the same request ids an hour before the ingest's lines: inside no input's range either
    earlier = [x.replace("2025-01-30T10:5", "2025-01-30T09:5") for x in SAMPLE]
    assert run_stream_on(data, earlier, tmp_path)["replayed"] == 0
    assert scans and not [f for f in scans if "/date=" in f]
    # and --keep-replayed stores the ingested backlog anyway
    ingest(tmp_path / "kept", SAMPLE, tmp_path)
    s = run_stream_on(tmp_path / "kept", SAMPLE, tmp_path, "--keep-replayed")
    assert s["parsed"] == len(SAMPLE) - 1 and s["replayed"] == 0


def test_an_ingested_file_merged_meanwhile_is_found_in_the_merged_file(tmp_path):
    """A compaction that merges an ingest's files after the stream read the manifest: the look-up
    fails on the file gone, reads the manifest again and looks in the merged file."""
    import pyarrow.compute as pc

    from logpipe.dataset import Dataset
    from logpipe.ingested import Ingested

    data = tmp_path / "data"
    ingest(data, SAMPLE, tmp_path)
    ds = Dataset(data)
    known = Ingested(ds)
    rows = dataset_rows(data)
    rows = rows.filter(pc.is_valid(rows.column("start_time")))
    (entry,) = ds.entries()
    (part,) = entry["parts"]
    merged = str(Path(part).with_name("merged-0.parquet"))
    (data / part).rename(data / merged)  # (as a compaction: the file renamed, then the manifest)

    def swap(m):
        m["inputs"][0]["parts"] = [merged]

    ds.update_manifest(swap)
    assert json.loads((data / "_manifest.json").read_text())["inputs"][0]["parts"] == [merged]
    assert known.stored(rows) == [True] * rows.num_rows
