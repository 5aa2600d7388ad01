"""logpipe stream / replay / compact: real subprocesses fed through a pipe while they run, where the
process is what is tested (lines landing while it runs, signals, a closed stdout or stdin, a pipe's
reads, memory); the command run by click in this process (``stream_cli``: its stdin a file) where
only what it reads and writes is.

Every stream test checks the bookkeeping from the summary line on stderr against the dataset on disk:
``read = parsed + rejected + blank``, rows in the dataset = parsed, rejects in the dataset = rejected,
and each stored row is the line that was written under its line number.
"""
from __future__ import annotations

import functools
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, SAMPLES, close_shared_rules, run_logpipe, sample_files, sample_id, shared_rules
from logpipe.alerts import AlertRules
from logpipe.errors import UsageError
from logpipe.exact import LARK_CONTEXT_LINES
from logpipe.replay import parse_speed, replay_file

COMPRESSED = (".gz", ".zst", ".bz2")
PLAIN_SAMPLES = [p for p in sample_files() if not p.name.endswith(COMPRESSED)]  # stdin is read as sent
LOGPIPE = [sys.executable, "-m", "logpipe"]
SUMMARY_RE = re.compile(
    r"lines read (\d+), parsed (\d+), rejected (\d+) \(noise (\d+), malformed (\d+)\)(?:, blank (\d+))?(?:, joined (\d+))?(?:, replayed (\d+) \(stored already\))?\n"
    r"rows written (\d+) in \d+ part files? to "
)


# ---- helpers ---------------------------------------------------------------------------------------


def access_line(i: int, dest: str = "api.stripe.com", code: int = 200, flags: str = "-", second: int | None = None) -> str:
    """A waypoint-style default-format line whose request id carries ``i``."""
    s = i if second is None else second
    ts = f"2025-01-30T10:{(s // 60) % 60:02d}:{s % 60:02d}.{i % 1000:03d}Z"
    return (f'[{ts}] "GET /item/{i} HTTP/1.1" {code} {flags} via_upstream - "-" 0 254 12 11 "-" "curl/8.11.1" '
            f'"req-{i:09d}" "{dest}" "192.0.2.10:443" outbound|443||{dest} 10.244.0.18:39682 240.240.0.2:443 '
            f"10.244.0.24:45748 - default")


def mixed_lines(n: int, start: int = 1) -> list[str]:
    """Access lines with a malformed line every 37th and a blank line every 53rd."""
    out = []
    for i in range(start, start + n):
        if i % 53 == 0:
            out.append("")
        elif i % 37 == 0:
            out.append(f"garbage line {i} that is no access log")
        else:
            out.append(access_line(i))
    return out


@functools.lru_cache(maxsize=1)
def many_mixed_lines(n: int) -> tuple[str, ...]:
    """``mixed_lines(n)``, made once for the tests that feed a stream that many (read only: ~0.25 s each)."""
    return tuple(mixed_lines(n))


@pytest.fixture(scope="module", autouse=True)
def _close_shared_connections():
    yield
    close_shared_rules()


def start_stream(data: Path, *args: str, stdout=subprocess.DEVNULL, err: Path) -> subprocess.Popen:
    # (SIGINT as by default: a suite run as a script's `… &` job has it ignored, which a stream keeps)
    return subprocess.Popen([*LOGPIPE, "stream", "--data", str(data), *args], stdin=subprocess.PIPE,
                            stdout=stdout, stderr=open(err, "wb"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def row_files(data: Path) -> list[Path]:
    return sorted(data.glob("date=*/*.parquet"))


def read_dir(files: list[Path]) -> pa.Table | None:
    for _ in range(5):  # a compaction may swap files between listing and reading
        try:
            tables = [pq.ParquetFile(f).read() for f in files]  # (a file each: lighter than read_table's dataset path)
            return pa.concat_tables(tables, promote_options="permissive") if tables else None
        except FileNotFoundError:
            time.sleep(0.1)
    raise AssertionError("dataset files kept vanishing")


def dataset_rows(data: Path) -> pa.Table | None:
    return read_dir(row_files(data))


def stream_file(path: Path, data: Path) -> tuple[int, str]:
    """Run a Streamer in this process on ``path`` as its stdin: (exit code, stderr)."""
    import io

    from logpipe.stream import StreamOptions, Streamer

    err = io.StringIO()
    fd = os.open(path, os.O_RDONLY)
    try:
        code = Streamer(str(data), StreamOptions(alerts=False, flush_rows=5000), stdin_fd=fd, stderr=err).run()
    finally:
        os.close(fd)
    return code, err.getvalue()


class Run:
    def __init__(self, returncode: int, stdout: bytes, stderr: bytes):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def stream_cli(data: Path, *args: str, input: bytes, said: bool = False) -> Run:
    """``logpipe stream --data DATA ARGS`` run by click in this process, ``input`` its stdin (a file
    it reads to its end, as a pipe's writer closing it): its options, output and exit code as the
    command gives them, without a process's start (~0.5 s of CPU: polars, pyarrow, the grammars).
    With ``said``, run as the command line runs it (conftest's run_logpipe: exits.run), its errors
    said on stderr and its exit status theirs, not raised."""
    import tempfile

    from click.testing import CliRunner

    from logpipe import stream
    from logpipe.cli import cli

    with tempfile.TemporaryFile() as f:
        f.write(input)
        f.seek(0)

        class FromFile(stream.Streamer):
            def __init__(self, *a, **kw):
                super().__init__(*a, **{**kw, "stdin_fd": f.fileno()})

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(stream, "Streamer", FromFile)
            # (the command sets POLARS_MAX_THREADS for its process: restored after)
            env = {"POLARS_MAX_THREADS": os.environ.get("POLARS_MAX_THREADS")}
            if said:
                run = run_logpipe("stream", "--data", data, *args, env=env, text=False)
                return Run(run.returncode, run.stdout, run.stderr)
            got = CliRunner().invoke(cli, ["stream", "--data", str(data), *args], catch_exceptions=False, env=env)
    return Run(got.exit_code, got.stdout_bytes, got.stderr_bytes)


def dataset_rejects(data: Path) -> pa.Table | None:
    return read_dir(sorted((data / "_rejects").glob("*.parquet")))


def count_rows(data: Path) -> int:
    t = dataset_rows(data)
    return 0 if t is None else t.num_rows


def wait_for(predicate, timeout: float, step: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = predicate()
        if got:
            return got
        time.sleep(step)
    return predicate()


def summary(err: Path) -> dict:
    text = err.read_text(errors="replace")
    m = SUMMARY_RE.search(text)
    assert m, f"no summary on stderr:\n{text[-2000:]}"
    read, parsed, rejected, noise, malformed, blank, joined, replayed, written = (int(x or 0) for x in m.groups())
    return dict(read=read, parsed=parsed, rejected=rejected, noise=noise, malformed=malformed, blank=blank,
                joined=joined, replayed=replayed, written=written, text=text)


def check_nothing_lost(data: Path, err: Path, sent: list[str]) -> dict:
    """The bookkeeping invariants, and every stored line is the line sent under that number."""
    s = summary(err)
    assert s["read"] == s["parsed"] + s["rejected"] + s["blank"] + s["joined"], s["text"][-500:]
    rows, rejects = dataset_rows(data), dataset_rejects(data)
    n_rows = 0 if rows is None else rows.num_rows
    n_rej = 0 if rejects is None else rejects.num_rows
    assert n_rows == s["parsed"] == s["written"]
    assert n_rej == s["rejected"]
    numbers = set()
    if rows is not None:
        for ln, rid in zip(rows.column("line_number").to_pylist(), rows.column("request_id").to_pylist()):
            assert f'"{rid}"' in sent[ln - 1], f"row {ln} is not the line sent"
            numbers.add(ln)
    if rejects is not None:
        for ln, raw in zip(rejects.column("line_number").to_pylist(), rejects.column("raw").to_pylist()):
            # The last line read before a signal may be cut short: then it is a prefix of the line sent.
            assert sent[ln - 1] == raw or (ln == s["read"] and sent[ln - 1].startswith(raw)), f"reject {ln}"
            numbers.add(ln)
    blanks = {i + 1 for i in range(s["read"]) if not sent[i].strip()}
    assert numbers | blanks == set(range(1, s["read"] + 1))
    assert not numbers & blanks
    return s


class Writer(threading.Thread):
    """Feeds lines into a process's stdin in small random chunks until told to stop or the pipe breaks."""

    def __init__(self, proc: subprocess.Popen, lines: list[str], seed: int = 0, pause: float = 0.002,
                 close_at_end: bool = False):
        super().__init__(daemon=True)
        self.proc, self.lines, self.pause, self.close_at_end = proc, lines, pause, close_at_end
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.sent = 0

    def run(self) -> None:
        try:
            i = 0
            while i < len(self.lines) and not self.stop.is_set():
                k = self.rng.randint(1, 40)
                chunk = "".join(line + "\n" for line in self.lines[i:i + k]).encode()
                self.proc.stdin.write(chunk)
                self.proc.stdin.flush()
                i += k
                self.sent = i
                if self.pause:
                    time.sleep(self.rng.uniform(0, self.pause))
            if self.close_at_end:
                self.proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass


def finish(proc: subprocess.Popen, timeout: float = 30) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


# ---- streaming for real ------------------------------------------------------------------------------


def test_rows_land_within_flush_seconds_while_stream_is_open(tmp_path):
    data, err = tmp_path / "data", tmp_path / "err"
    flush = 0.5
    proc = start_stream(data, "--flush-seconds", str(flush), "--quiet", err=err)
    sent = [access_line(i) for i in range(1, 31)]
    try:
        proc.stdin.write((sent[0] + "\n").encode())
        proc.stdin.flush()
        assert wait_for(lambda: count_rows(data) == 1, 20), "the first line never landed"
        for start, stop in ((1, 10), (10, 30)):  # two more bursts, each must land on its own
            proc.stdin.write("".join(x + "\n" for x in sent[start:stop]).encode())
            proc.stdin.flush()
            t0 = time.monotonic()
            assert wait_for(lambda: count_rows(data) == stop, flush + 3), f"rows 1..{stop} not visible"
            assert time.monotonic() - t0 < flush + 1.5
            assert proc.poll() is None, "the stream must still be running"
        # `logpipe query` sees the live rows while the stream runs (in this process: the stream's is the one tested).
        q = run_logpipe("query", "--data", data, "--sql", "select count(*) as n from access_log", "-o", "csv")
        assert q.returncode == 0 and q.stdout.split() == ["n", "30"], q.stderr
        assert proc.poll() is None
        proc.stdin.close()
        assert finish(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    s = check_nothing_lost(data, err, sent)
    assert s["read"] == 30


def planted_lines() -> list[str]:
    """Sample traffic plus planted events: repeated blocked attempts to one host (one alert), a
    failure burst, an RBAC denial, passthrough egress."""
    base = (SAMPLES / "sidecar-outbound-1.22.log").read_text().splitlines()
    blackhole = next(x for x in base if "BlackHoleCluster" in x)
    waypoint = (SAMPLES / "waypoint-egress-1.23.log").read_text().splitlines()
    denial = next(x for x in waypoint if "rbac_access_denied" in x)
    burst = [access_line(9000 + k, dest="flaky.example", code=503, flags="UF,URX", second=100 + k) for k in range(6)]
    # (three attempts more, each from another client port: the same line again is the log printed again)
    again = [blackhole.replace(":51022 ", f":5103{k} ") for k in range(3)]
    assert again[0] != blackhole
    return base + again + burst + [denial]


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("planted")
    data, err = tmp / "data", tmp / "err"
    lines = planted_lines()
    text = "".join(x + "\n" for x in lines).encode()
    run = stream_cli(data, "--flush-rows", "7", input=text)
    assert run.returncode == 0, run.stderr.decode()
    (tmp / "err").write_bytes(run.stderr)
    return {"data": data, "err": err, "lines": lines, "stderr": run.stderr.decode()}


@pytest.mark.parametrize("kind, destination", [
    ("new_destination", "api.stripe.com"),
    ("new_destination", "checkip.amazonaws.com"),
    ("unregistered_egress", "checkip.amazonaws.com"),
    ("unregistered_egress", "203.0.113.50"),
    ("blocked_attempt", "198.51.100.77"),
    ("blocked_attempt", "crypto-miner.example"),
    ("authz_denial", "httpbin.org"),
    ("failure_burst", "flaky.example"),
])
def test_alerts_for_planted_events(planted_run, kind, destination):
    text_alerts = [x for x in planted_run["stderr"].splitlines() if x.startswith("alert ")]
    hits = [x for x in text_alerts if x.split(" ")[2:4] == [kind, destination + ":"]]
    assert len(hits) == 1, f"want one {kind} alert for {destination}:\n" + "\n".join(text_alerts)
    assert re.match(r"alert \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z ", hits[0])  # with its event time


def test_planted_run_dedups_and_keeps_internal_traffic_quiet(planted_run):
    stderr = planted_run["stderr"]
    alerts = [x for x in stderr.splitlines() if x.startswith("alert ")]
    assert not [a for a in alerts if "svc.cluster.local" in a]  # in-mesh traffic is not egress
    assert sum(" blocked_attempt 198.51.100.77:" in a for a in alerts) == 1  # 4 attempts, one alert
    s = summary(planted_run["err"])
    assert s["read"] == len(planted_run["lines"]) == s["parsed"]
    assert f"alerts {len(alerts)}" in stderr


def test_known_destinations_are_not_new_on_the_next_run_and_ndjson_alerts(planted_run, tmp_path):
    # The first run's dataset knows every destination: a second stream announces none as new. (The
    # same lines again: --keep-replayed, else they are replayed lines, neither stored nor alerted on.)
    alerts = tmp_path / "alerts.ndjson"
    again = stream_cli(planted_run["data"], "--alerts", "ndjson", "--alerts-out", str(alerts), "--keep-replayed",
                       input="".join(x + "\n" for x in planted_run["lines"]).encode())
    assert again.returncode == 0, again.stderr.decode()
    assert not again.stdout and "alert " not in again.stderr.decode()
    found = [json.loads(x) for x in alerts.read_text().splitlines()]
    kinds = {a["kind"] for a in found}
    assert "new_destination" not in kinds
    assert {"blocked_attempt", "unregistered_egress", "authz_denial", "failure_burst"} <= kinds
    for a in found:
        assert a["time"].endswith("Z") and a["destination"] and a["message"] and a["evidence"] and a["count"] >= 1


@pytest.mark.parametrize("gap_seconds, window, alerts", [(10, 300, 1), (400, 300, 2), (10, 5, 2)])
def test_alert_dedup_window_is_event_time(gap_seconds, window, alerts):
    from logpipe.parse import default_parser

    blackhole = next(x for x in (SAMPLES / "sidecar-outbound-1.22.log").read_text().splitlines()
                     if "BlackHoleCluster" in x and "198.51.100.77" in x)
    later = blackhole.replace("14:04:56", f"14:{4 + (56 + gap_seconds) // 60:02d}:{(56 + gap_seconds) % 60:02d}")
    rules = shared_rules(window_seconds=window)
    got = []
    for n, line in enumerate([blackhole, later], 1):  # two micro-batches
        got += rules.check(default_parser().parse_batch([line], "<stdin>", n).records)
    assert [a.kind for a in got] == ["blocked_attempt"] * alerts


@pytest.mark.parametrize("access, warned", [(True, False), (False, True)])
def test_a_stream_with_no_access_line_says_so_once(tmp_path, access, warned):
    """Another container's log (kubectl logs -f without -c istio-proxy): after NO_ACCESS_LINES lines
    and not one an access line, one warning; an access line among them (a proxy's start-up prints
    ~100 lines of istio-agent's first) keeps it quiet."""
    from logpipe.stream import NO_ACCESS_LINES

    lines = [f"2024-07-18T16:13:58.{i % 1000:03d}Z INFO handled request id={i}" for i in range(NO_ACCESS_LINES + 20)]
    lines[NO_ACCESS_LINES - 1] = access_line(1) if access else lines[NO_ACCESS_LINES - 1]
    src = tmp_path / "in.log"
    src.write_text("".join(x + "\n" for x in lines + lines))
    code, err = stream_file(src, tmp_path / "data")
    assert code == 0
    assert err.count("no access line among the first") == (1 if warned else 0), err


def test_a_scan_is_one_alert_not_two_per_address():
    """One pod reaching 40 new IPs through PassthroughCluster within two minutes (five micro-batches
    of 8: the scan's 10th IP in the second, its first 8 in the first) was 80 alerts (new_destination
    and unregistered_egress per IP): now the first few, then one destination_scan, then quiet for the
    window; another pod's new destination is still alerted on."""
    from logpipe.alerts import SCAN_DESTINATIONS
    from logpipe.parse import default_parser

    tcp = next(x for x in (SAMPLES / "sidecar-outbound-1.22.log").read_text().splitlines()
               if "PassthroughCluster" in x and "203.0.113.50:5432" in x)
    lines = [tcp.replace("203.0.113.50", f"203.0.113.{100 + k}").replace("14:02:20", f"14:02:{20 + k}")
             for k in range(40)]
    other = lines[-1].replace("203.0.113.139", "198.51.100.9").replace("10.244.1.12:45987", "10.244.1.99:45987")
    rules = shared_rules(window_seconds=300)
    got = []
    for k in range(0, 40, 8):  # (a check costs ~70 ms whatever its rows: 8 a check, not 4)
        got += rules.check(default_parser().parse_batch(lines[k:k + 8], "<stdin>", k + 1).records)
    got += rules.check(default_parser().parse_batch([other], "<stdin>", 41).records)
    kinds = [a.kind for a in got]
    assert kinds.count("destination_scan") == 1
    assert kinds.count("new_destination") == SCAN_DESTINATIONS  # (the scan's first 9, the other pod's 1)
    # (the scan's first 9, before it was recognised at its 10th, as had they come line by line; the other pod's 1)
    assert kinds.count("unregistered_egress") == SCAN_DESTINATIONS
    assert len(got) <= 2 * SCAN_DESTINATIONS + 1
    scan = next(a for a in got if a.kind == "destination_scan")
    assert scan.message.startswith(f"10.244.1.12 reached {SCAN_DESTINATIONS} IP addresses not seen before")
    assert got[-1].evidence["source_ip"] == "10.244.1.99"


def test_a_blocked_scan_is_one_alert_too():
    """A mesh that allows only registered hosts blocks a scan (BlackHoleCluster): it was one
    blocked_attempt per address and no destination_scan; the scan message lists IPs by number."""
    from logpipe.alerts import SCAN_DESTINATIONS
    from logpipe.parse import default_parser

    blackhole = next(x for x in (SAMPLES / "sidecar-outbound-1.22.log").read_text().splitlines()
                     if "BlackHoleCluster" in x and "198.51.100.77" in x)
    lines = [blackhole.replace("198.51.100.77", f"198.51.100.{k}").replace("14:04:56", f"14:04:{10 + k}")
             for k in range(1, 26)]
    rules = shared_rules(window_seconds=300)
    got = []
    for k in range(0, 25, 5):
        got += rules.check(default_parser().parse_batch(lines[k:k + 5], "<stdin>", k + 1).records)
    kinds = [a.kind for a in got]
    assert kinds.count("destination_scan") == 1 and kinds.count("blocked_attempt") < SCAN_DESTINATIONS
    assert "new_destination" not in kinds
    scan = next(a for a in got if a.kind == "destination_scan")
    assert "(198.51.100.1, 198.51.100.2, 198.51.100.3, 198.51.100.4, 198.51.100.5, …)" in scan.message


def cut_lines() -> list[str]:
    """A scan of 12 IPs through PassthroughCluster, pastebin from three sources then again past the
    window, blocked attempts, RBAC denials, one past the window, and a failure burst."""
    tcp = next(x for x in (SAMPLES / "sidecar-outbound-1.22.log").read_text().splitlines()
               if "PassthroughCluster" in x and "203.0.113.50:5432" in x)
    scan = [tcp.replace("203.0.113.50", f"203.0.113.{100 + k}").replace("14:02:20", f"14:02:{20 + k}")
            for k in range(12)]
    paste = incident_line('"pastebin.com"')
    pastes = [paste.replace(" 10.244.2.21:", f" 10.244.2.{21 + k % 2}:") for k in range(3)] + [
        paste.replace("T11:00:", "T11:10:")]
    blocked = [incident_line("crypto-miner.example", when) for when in ("05:01:10", "05:01:11", "05:11:00")]
    denied = [incident_line("deny-httpbin-post", when) for when in ("15:00:20", "15:00:21", "15:10:00")]
    failed = [incident_line('" 503 ', f"14:03:{10 + k:02d}") for k in range(6)]
    return [*scan[:6], *pastes[:2], *blocked[:2], *scan[6:], *denied, *failed, pastes[2], blocked[2], pastes[3]]


POD_FLUSH = 200  # (lines a check, as a stream's --flush-rows: a check costs ~70 ms whatever its rows)


def alerts_in_checks_of(size: int, lines: list[str]) -> list:
    """The alerts of ``lines`` in checks of ``size`` lines each, by one rules (as a stream's flushes,
    each its own check)."""
    from logpipe.parse import default_parser

    rules = shared_rules(window_seconds=300)
    return [a for k in range(0, len(lines), size)
            for a in rules.check(default_parser().parse_batch(lines[k:k + size], "<stdin>", k + 1).records)]


@functools.lru_cache(maxsize=1)
def pods_backlogs() -> tuple[str, ...]:
    """The incident day's lines as `kubectl logs -f -l … --prefix` prints two pods' backlogs, one pod's
    after the other's (its even lines pod q8w2n's, its odd ones pod x2k8p's): out of time order."""
    lines = (SAMPLES / "scenario" / "incident-day.log").read_text(encoding="utf-8").splitlines()
    return tuple(f"[pod/waypoint-7d9f8b6c4-{pod}/istio-proxy] {line}" for k, pod in ((0, "q8w2n"), (1, "x2k8p"))
                 for line in lines[k::2])


@functools.lru_cache(maxsize=1)
def pod_by_pod_alerts() -> tuple:
    """The alerts of ``pods_backlogs`` in checks of POD_FLUSH lines: made once for the two tests that
    read them (4 checks, ~0.3 s of CPU). Read only."""
    return tuple(alerts_in_checks_of(POD_FLUSH, list(pods_backlogs())))


def test_two_pods_backlogs_one_after_the_other_raise_no_more_alerts():
    """`kubectl logs -f -l … --prefix` prints each pod's backlog on its own schedule: one pod's lines
    can come after another's later ones, by more than the window. An event is quiet near any earlier
    alert of its key by event time, not only the last one (the incident day's lines of two pods, one
    pod's then the other's, raised 93 alerts against 68 in time order), and an alert's "since its
    last alert (T)" names an alert before it, never a later one."""
    from collections import Counter

    lines = (SAMPLES / "scenario" / "incident-day.log").read_text(encoding="utf-8").splitlines()
    in_time = Counter(a.kind for a in alerts_in_checks_of(POD_FLUSH, lines))
    pod_by_pod = pod_by_pod_alerts()
    assert all(Counter(a.kind for a in pod_by_pod)[k] <= n for k, n in in_time.items()), (in_time, pod_by_pod)
    assert sum(Counter(a.kind for a in pod_by_pod).values()) >= sum(in_time.values()) * 0.9  # (still alerts)
    for a in pod_by_pod:
        m = re.search(r"since its last alert \(([^)]+)\)", a.message)
        assert m is None or m.group(1) < a.time.isoformat(timespec="milliseconds").replace("+00:00", "Z"), a.message


def test_a_backlogs_flushes_are_checked_together_and_alert_as_each_alone(tmp_path, monkeypatch):
    """A backlog's flushes (lines read and waiting) are checked for alerts together, up to ALERT_ROWS
    rows (a check's DuckDB queries cost ~20 ms each whatever their rows: 200k bench lines 6.1 → 3.8 s),
    and raise the alerts, in the order, that a check of each flush alone raised: here two pods'
    backlogs one after the other, out of time order from one flush to the next (a check sorts its
    alerts by event time, each flush's among themselves). Each flush is still its own part file."""
    from logpipe.stream import StreamOptions, Streamer

    lines = list(pods_backlogs())
    each = [a.to_json() for a in pod_by_pod_alerts()]  # (the flushes' alerts, a check each, as the stream made them)
    assert [json.loads(a)["time"] for a in each] != sorted(json.loads(a)["time"] for a in each)  # (out of order)
    checks = []
    check = AlertRules.check
    monkeypatch.setattr(AlertRules, "check", lambda self, records, *a, **k: checks.append(records.num_rows)
                        or check(self, records, *a, **k))
    log = tmp_path / "backlog.log"
    log.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    fd = os.open(log, os.O_RDONLY)
    try:
        streamer = Streamer(str(tmp_path / "data"), StreamOptions(flush_rows=POD_FLUSH, alerts_format="ndjson"),
                            stdin_fd=fd, stdout=out, stderr=err)
        assert streamer.run() == 0, err.getvalue()
    finally:
        os.close(fd)
    assert out.getvalue().splitlines() == each
    assert len(checks) <= 2 and sum(checks) == len(lines)  # (its 4 flushes: 4 checks before)
    assert streamer.parts_written == 4 and count_rows(tmp_path / "data") == len(lines)


def passthrough_at(minutes: list[int], pod: str) -> list[str]:
    """pastebin.com through PassthroughCluster at these minutes of 2025-03-08, as ``pod`` printed it."""
    import datetime as dt

    line = incident_line('"pastebin.com"')
    start = dt.datetime(2025, 3, 8)
    return [f"[pod/waypoint-{pod}/istio-proxy] [{start + dt.timedelta(minutes=m):%Y-%m-%dT%H:%M:%S}.{k % 1000:03d}Z"
            + line[25:] for k, m in enumerate(minutes)]


@pytest.mark.parametrize("every", [1, 15])  # (steady traffic; an alert each time, each its own span)
def test_a_long_backlog_after_another_pods_raises_no_alert_again(every):
    """Two pods' 17 hours of passthrough lines, one pod's after the other's (`kubectl logs -l …
    --prefix`): the second pod's events are all near the first pod's alerts. Only the latest 64 alert
    times of a key were kept, the earliest forgotten, so the second pod's early events alerted again:
    with traffic each minute, at every event (an alert a minute; its own time was the earliest, so
    forgotten at once). Now steady traffic is one span, and past ALERT_SPANS spans the closest two
    are joined: none is forgotten."""
    from logpipe.alerts import ALERT_SPANS
    from logpipe.parse import default_parser

    minutes = list(range(0, 17 * 60, every))
    assert every == 1 or len(minutes) > ALERT_SPANS
    a, b = passthrough_at(minutes, "a"), passthrough_at(minutes, "b")
    rules = shared_rules(window_seconds=300)
    got = [x for k in range(0, 2 * len(minutes), 500)
           for x in rules.check(default_parser().parse_batch((a + b)[k:k + 500], "<stdin>", k + 1).records)]
    assert [x.evidence["pod"] for x in got if x.evidence["pod"] != "waypoint-a"] == []
    unregistered = [x for x in got if x.kind == "unregistered_egress"]
    assert len(unregistered) == (17 * 12 if every == 1 else len(minutes))
    since = [re.search(r"since its last alert \(([^)]+)\)", x.message) for x in unregistered]
    assert since[0] is None and [m.group(1) for m in since[1:]] == [
        x.time.isoformat(timespec="milliseconds").replace("+00:00", "Z") for x in unregistered[:-1]]


def test_alerts_do_not_depend_on_how_the_lines_are_cut():
    """The same lines, line by line, in batches of 5 and in one batch, raise the same alerts (kinds,
    destinations, counts, messages, lines). In one batch, a scan recognised at its 10th address
    silenced the passthrough alerts of the nine before it (its source was scanning for the whole
    batch); an alert's count was its batch's rows (a denial 10 minutes after the first, in one batch,
    was no second alert)."""
    from logpipe.alerts import SCAN_DESTINATIONS
    from logpipe.parse import default_parser

    lines = cut_lines()
    records = default_parser().parse_batch(lines, "<stdin>", 1).records  # (the rows cut, not the lines: a parse each costs ~15 ms)
    got = {}
    for size in (1, 5, len(lines)):
        rules = shared_rules(window_seconds=300)
        alerts = [a for k in range(0, len(lines), size) for a in rules.check(records.slice(k, size))]
        got[size] = sorted((a.evidence["line_number"], a.kind, a.destination, a.count, a.message) for a in alerts)
    assert got[1] == got[5] == got[len(lines)]
    kinds = [k for _, k, *_ in got[1]]
    assert kinds.count("destination_scan") == 1 and kinds.count("failure_burst") == 1
    scan_ips = [d for _, k, d, *_ in got[1] if k == "unregistered_egress" and d.startswith("203.0.113.")]
    assert len(scan_ips) == SCAN_DESTINATIONS - 1
    # (the second alert of each counts the requests since the first, its own included, and says so)
    again = {(k, d): (c, m) for _, k, d, c, m in got[1] if " since its last alert (2025-03-08T" in m}
    assert {key: c for key, (c, _) in again.items()} == {
        ("unregistered_egress", "pastebin.com"): 3, ("blocked_attempt", "crypto-miner.example"): 2,
        ("authz_denial", "httpbin.org"): 2}
    assert again[("unregistered_egress", "pastebin.com")][1].startswith(
        "3 requests through PassthroughCluster (no ServiceEntry) since its last alert (2025-03-08T11:00:25.297Z) "
        "from 2 sources (10.244.2.21 ×2, 10.244.2.22)")


def test_blocked_attempts_and_denials_are_per_source():
    """A second workload trying a blocked destination within the window is alerted on (it was folded
    into the first workload's alert); the same workload again is not."""
    from logpipe.parse import default_parser

    blackhole = next(x for x in (SAMPLES / "sidecar-outbound-1.22.log").read_text().splitlines()
                     if "BlackHoleCluster" in x and "198.51.100.77" in x)
    again = blackhole.replace("14:04:56", "14:05:10")
    other = again.replace("10.244.1.12:51022", "10.244.2.40:51022")
    rules = shared_rules(window_seconds=300)
    got = []
    for n, line in enumerate([blackhole, again, other], 1):
        got += rules.check(default_parser().parse_batch([line], "<stdin>", n).records)
    assert [(a.kind, a.evidence["source_ip"]) for a in got] == [
        ("blocked_attempt", "10.244.1.12"), ("blocked_attempt", "10.244.2.40")]


def test_a_failure_burst_is_failures_close_in_event_time_whatever_their_order():
    """Several pods' lines come out of time order (kubectl logs -l … --prefix): four failures 10 minutes
    apart from one pod, then four as far apart from another, two hours earlier, are no burst; five
    within seconds are one, in either order."""
    from logpipe.parse import default_parser

    failed = next(x for x in (SAMPLES / "scenario" / "incident-day.log").read_text().splitlines()
                  if '" 503 ' in x and "api.stripe.com" in x)
    stamp = failed[1:25]

    def at(h, m, s=0):
        return failed.replace(stamp, f"{stamp[:11]}{h:02d}:{m:02d}:{s:02d}.000Z", 1)

    rules = shared_rules(window_seconds=300, burst_threshold=5)
    spread = [at(12, m) for m in (0, 10, 20, 30)] + [at(10, m) for m in (0, 10, 20, 30)]
    assert "failure_burst" not in [a.kind for a in rules.check(default_parser().parse_batch(spread, "<stdin>").records)]
    close = [at(16, 0, s) for s in (9, 1, 7, 3, 5)]
    got = [a for a in shared_rules(window_seconds=300, burst_threshold=5).check(
        default_parser().parse_batch(close, "<stdin>").records) if a.kind == "failure_burst"]
    assert len(got) == 1 and got[0].message.startswith("5 failures within 8s")


def test_dataset_write_failure_is_one_clear_error(tmp_path, monkeypatch):
    import io

    from logpipe.errors import DatasetError
    from logpipe.stream import StreamOptions, Streamer

    fd = os.open(SAMPLES / "sidecar-outbound-1.22.log", os.O_RDONLY)
    err = io.StringIO()
    try:
        streamer = Streamer(str(tmp_path / "data"), StreamOptions(), stdin_fd=fd, stderr=err)

        def full(*_a, **_k):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(streamer.dataset, "stage", full)  # (its files written before they are shown)
        with pytest.raises(DatasetError, match="No space left on device.*lines from 1 on were not stored"):
            streamer.run()
    finally:
        os.close(fd)
    n = len((SAMPLES / "sidecar-outbound-1.22.log").read_text().splitlines())
    assert f"lines read {n}, parsed {n}" in err.getvalue()  # the summary still says what was read
    assert "alert " in err.getvalue() and " blocked_attempt " in err.getvalue()  # the alerts are not lost


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_an_alerts_out_file_on_a_full_disk_is_one_clear_error(tmp_path):
    """`--alerts-out FILE` on a full disk: one error naming the file and from which line nothing was
    stored, as the dataset's own write says it. It was `No space left on device; free space, then run
    the command again` (closing the file failed the same way again, and that error was the one
    shown), and the summary counted the alerts never written. (In this process, as the command line
    runs it: the file is opened, written and closed by the Streamer, the error said by exits.run.)"""
    run = stream_cli(tmp_path / "data", "--alerts-out", "/dev/full",
                     input=(SAMPLES / "waypoint-egress-1.23.log").read_bytes(), said=True)
    err = run.stderr.decode()
    assert run.returncode == 1
    assert err.rstrip().splitlines()[-1] == (
        "logpipe: error: cannot write the alerts to --alerts-out /dev/full (No space left on device); lines from 1"
        " on were not stored: free space, then run the stream again"), err
    assert "\nalerts 0\n" in err and count_rows(tmp_path / "data") == 0


@pytest.mark.slow
@pytest.mark.parametrize("signum, code, flush_rows, seed", [
    # (a part size each: the seeds' random choice among the three had given all three 50, and a
    # stream of 50-row parts is the dearest: the lines read ahead when the signal comes are flushed
    # 50 at a time, each flush an alert check and a part file)
    (signal.SIGINT, 130, 50, 1),
    (signal.SIGTERM, 143, 500, 2),
    (signal.SIGHUP, 129, 5000, 3),  # (the terminal or ssh session closed)
])
def test_signal_at_a_random_point_loses_no_line(tmp_path, signum, code, flush_rows, seed):
    rng = random.Random(seed)
    data, err = tmp_path / "data", tmp_path / "err"
    sent = many_mixed_lines(100_000)
    proc = start_stream(data, "--flush-rows", str(flush_rows), "--flush-seconds", "0.3", err=err)
    writer = Writer(proc, sent, seed=seed)
    writer.start()
    try:
        assert wait_for(lambda: row_files(data), 20), "nothing landed"  # (a part file holds rows)
        time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signum)
        assert finish(proc) == code
    finally:
        writer.stop.set()
        if proc.poll() is None:
            proc.kill()
    writer.join(5)
    s = check_nothing_lost(data, err, sent)
    assert 0 < s["read"] <= writer.sent
    assert f"stopped by {signal.Signals(signum).name}" in s["text"]
    assert "Traceback" not in s["text"]


def test_a_second_ctrl_c_stops_at_once_and_says_what_was_not_stored(tmp_path):
    """The first Ctrl-C stores what was read ahead (a backlog in 50-row parts: seconds), and says so; a
    second one was ignored. Now it ends the stream at once (130), saying from which line on nothing was
    stored; the dataset holds every line before it, none after (once the next stream has finished a
    batch that was being shown), and each line under its number."""
    data, err = tmp_path / "data", tmp_path / "err"
    sent = many_mixed_lines(100_000)
    proc = start_stream(data, "--flush-rows", "50", "--flush-seconds", "0.3", err=err)
    writer = Writer(proc, sent, pause=0)
    writer.start()
    try:
        assert wait_for(lambda: row_files(data), 20), "nothing landed"
        proc.send_signal(signal.SIGINT)
        assert wait_for(lambda: "Ctrl-C again stops at once" in err.read_text(), 10), err.read_text()
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        assert finish(proc, timeout=20) == 130
        took = time.monotonic() - t0
    finally:
        writer.stop.set()
        if proc.poll() is None:
            proc.kill()
    writer.join(5)
    text = err.read_text()
    m = re.search(r"logpipe: stopped at once by a second Ctrl-C: lines from (\d+) on were not stored", text)
    assert m and took < 3, (took, text[-1000:])
    assert "Traceback" not in text and not SUMMARY_RE.search(text)
    assert stream_cli(data, "-q", input=b"").returncode == 0  # (finishes a batch being shown: replayguard)
    rows, rejects = dataset_rows(data), dataset_rejects(data)
    stored = dict(zip(rows.column("line_number").to_pylist(), rows.column("request_id").to_pylist()))
    assert all(f'"{rid}"' in sent[n - 1] for n, rid in stored.items())
    numbers = set(stored) | set(rejects.column("line_number").to_pylist() if rejects is not None else [])
    first = int(m.group(1))
    assert numbers | {i + 1 for i in range(first - 1) if not sent[i].strip()} == set(range(1, first))
    assert first - 1 < writer.sent  # (lines were read and not stored: the second Ctrl-C's loss)


def test_nohup_keeps_a_stream_running_through_the_hangup(tmp_path):
    """`nohup … | nohup logpipe stream … &` ignores SIGHUP, so that the stream outlives the logout; the
    stream put its own handler in its place and stopped on it (129). A signal it was started ignoring
    stays ignored: the lines after the hangup are stored, and EOF ends it (0)."""
    data, err = tmp_path / "data", tmp_path / "err"
    proc = subprocess.Popen([*LOGPIPE, "stream", "--data", str(data), "-q", "--flush-seconds", "0.2"],
                            stdin=subprocess.PIPE, stderr=open(err, "wb"),
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # (as nohup does)
    try:
        proc.stdin.write((access_line(1) + "\n").encode())
        proc.stdin.flush()
        assert wait_for(lambda: count_rows(data) == 1, 20), err.read_text()
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert proc.poll() is None, err.read_text()
        proc.stdin.write((access_line(2) + "\n").encode())
        proc.stdin.close()
        assert finish(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert summary(err)["written"] == 2 and "stopped by" not in err.read_text()


def test_eof_keeps_partial_last_line_invalid_utf8_and_a_1mb_line(tmp_path):
    data = tmp_path / "data"
    bad_utf8 = access_line(2).encode().replace(b"curl/8.11.1", b"curl/\xff\xfe8.11.1")
    huge = b"x" * (1 << 20)
    last = access_line(5).encode()  # no newline after it
    payload = access_line(1).encode() + b"\n" + bad_utf8 + b"\n" + huge + b"\n" + access_line(4).encode() + b"\n" + last
    run = stream_cli(data, "--quiet", input=payload)  # (what it reads: the signal and soak tests' pipes cut lines anywhere)
    assert run.returncode == 0, run.stderr.decode()
    (tmp_path / "err").write_bytes(run.stderr)
    s = summary(tmp_path / "err")
    assert (s["read"], s["parsed"], s["rejected"]) == (5, 4, 1)
    rows = dataset_rows(data).sort_by("line_number")
    assert rows.column("line_number").to_pylist() == [1, 2, 4, 5]
    assert rows.column("user_agent").to_pylist()[1] == "curl/\\xff\\xfe8.11.1"
    assert rows.column("request_id").to_pylist()[-1] == "req-000000005"
    rej = dataset_rejects(data)
    assert rej.column("line_number").to_pylist() == [3]
    assert len(rej.column("raw")[0].as_py()) == 1 << 20


@pytest.mark.parametrize("writes, lines", [
    ([b"\xef\xbb", b"\xbfone\ntwo\n"], [b"one", b"two"]),  # a UTF-8 mark, in two reads: dropped
    ([b"\xef\xbb\xbfone\n\xef\xbb\xbftwo\n"], [b"one", b"\xef\xbb\xbftwo"]),  # only the stream's first bytes
    ([b"\xef\xbb", b"x\n"], [b"\xef\xbbx"]),  # not a mark: kept
    ([b"\xef"], [b"\xef"]),  # the stream ends inside what could have been one: kept
    ([b"\xff", b"\xfe" + "one\n".encode("utf-16-le"), "two\n".encode("utf-16-le")[:3],
      "two\n".encode("utf-16-le")[3:]], [b"one", b"two"]),  # UTF-16, its mark and a character split
    ([b"\xfe\xff" + "one\nt\u00e9\n".encode("utf-16-be"), b"x"], [b"one", "t\u00e9".encode(), b"\\x78"]),  # an odd last byte
    (["one\n".encode("utf-32")], [b"one"]),
    ([b"\x00" * 5000, b"\x00" * 3, b"one\n\x00two\n"], [b"one", b"\x00two"]),  # a hole at the start: no line's
    ([b"\x00" * 9, b"\xef\xbb\xbfone\n"], [b"one"]),  # (then a mark)
])
def test_a_byte_order_mark_at_the_start_of_stdin_is_not_part_of_a_line(writes, lines):
    """``logpipe stream``'s reader drops a byte-order mark (a Windows tool's) before the first line,
    and reads UTF-16 or UTF-32 text as UTF-8, as a file's is read (``unpack.py``), and nothing else;
    so it drops a hole (NUL bytes: copytruncate's) at the start, a later line's is the parser's."""
    import queue

    from logpipe.linereader import LineReader

    r, w = os.pipe()
    got: queue.Queue = queue.Queue()
    reader = LineReader(r, got, threading.Event())
    reader.start()
    for data in writes:
        os.write(w, data)
        time.sleep(0.05)  # (each its own read)
    os.close(w)
    reader.join(10)
    os.close(r)
    out = []
    while True:
        item = got.get_nowait()
        if not isinstance(item, list):
            break
        out += item
    assert out == lines


def test_tee_into_head_ends_quietly_after_flushing(tmp_path):
    data, err = tmp_path / "data", tmp_path / "err"
    sent = many_mixed_lines(100_000)  # (it stops after ~3,200: head leaves at the first flush's first row)
    proc = start_stream(data, "--tee", "--quiet", "--flush-rows", "500", stdout=subprocess.PIPE, err=err)
    head = subprocess.Popen(["head", "-1"], stdin=proc.stdout, stdout=subprocess.PIPE)
    proc.stdout.close()  # head alone holds the read end
    writer = Writer(proc, sent, pause=0)
    writer.start()
    try:
        first = head.communicate(timeout=30)[0]
        assert finish(proc) == 0
    finally:
        writer.stop.set()
        if proc.poll() is None:
            proc.kill()
    writer.join(5)
    record = json.loads(first)
    assert record["line_number"] == 1 and record["request_id"] == "req-000000001"
    s = check_nothing_lost(data, err, sent)
    assert s["read"] < len(sent)  # it stopped because the reader left, not at EOF
    assert "stopped: stdout closed" in s["text"]
    assert "Traceback" not in s["text"] and "Broken pipe" not in s["text"]


def test_alerts_out_whose_reader_went_away_ends_with_the_summary(tmp_path):
    """`--alerts-out >(notify)` whose reader exits: the stream stores what it read and ends as `--tee |
    head` does, with its summary naming what closed. It ended with no summary at all (closing the
    file flushed the alerts it held into the closed pipe again: BrokenPipeError) and said nothing."""
    lines = (SAMPLES / "scenario" / "incident-day.log").read_text(encoding="utf-8").splitlines()[:100]
    r, w = os.pipe()
    os.close(r)  # (its reader gone before the first alert)
    try:
        run = stream_cli(tmp_path / "data", "--alerts-out", f"/dev/fd/{w}",
                         input="".join(x + "\n" for x in lines).encode())
    finally:
        os.close(w)
    err = tmp_path / "err"
    err.write_bytes(run.stderr)
    s = summary(err)
    assert run.returncode == 0 and f"; stopped: --alerts-out /dev/fd/{w} closed" in s["text"], s["text"]
    assert s["read"] == s["parsed"] and s["parsed"] == count_rows(tmp_path / "data") > 0



def test_stderr_whose_reader_went_away_ends_the_stream_as_stdout_does(tmp_path):
    """`kubectl logs -f … | logpipe stream 2>&1 | head`: a malformed line's warning into a stderr
    whose reader left raised BrokenPipeError from the middle of a batch, so that batch and every later
    line were not stored (and kubectl got a broken pipe). Now the stream stores what it read and ends
    (0), as when the reader of its alerts or --tee goes away."""
    from logpipe.stream import StreamOptions, Streamer

    sent = [access_line(i)[:120] if i % 37 == 0 else access_line(i) for i in range(1, 401)]  # (cut short: malformed)
    log = tmp_path / "in.log"
    log.write_text("".join(x + "\n" for x in sent))
    r, w = os.pipe()
    os.close(r)  # (its reader gone before the first warning)
    err = open(w, "w", encoding="utf-8", buffering=1)  # (as sys.stderr: line-buffered)
    fd = os.open(log, os.O_RDONLY)
    try:
        s = Streamer(str(tmp_path / "data"), StreamOptions(alerts=False, flush_rows=50), stdin_fd=fd, stderr=err)
        code = s.run()
    finally:
        os.close(fd)
        err.close()
    c = s.counts
    assert code == 0 and s.pipe_closed and s.closed_out == "stderr"
    assert c.read == c.parsed + c.rejected + c.blank and c.malformed > 0
    assert s.rows_written == c.parsed == count_rows(tmp_path / "data") > 0
    assert dataset_rejects(tmp_path / "data").num_rows == c.rejected



def test_a_terminal_that_hung_up_ends_the_stream_with_its_lines_stored(tmp_path):
    """The ssh session closed: the stream's SIGHUP stores its open batch, but its stderr is a terminal
    that hung up, where a write fails with EIO (not EPIPE): a malformed line's message raised it from
    the batch, which was lost, exit 1. Now it ends as for a closed pipe."""
    import errno

    from logpipe.stream import StreamOptions, Streamer

    class HungUp(io.StringIO):
        def write(self, text):
            raise OSError(errno.EIO, "Input/output error")

    sent = [access_line(i)[:120] if i % 37 == 0 else access_line(i) for i in range(1, 201)]
    log = tmp_path / "in.log"
    log.write_text("".join(x + "\n" for x in sent))
    fd = os.open(log, os.O_RDONLY)
    try:
        s = Streamer(str(tmp_path / "data"), StreamOptions(flush_rows=50), stdin_fd=fd, stderr=HungUp())
        code = s.run()  # (the alerts too go to stderr: text, the default)
    finally:
        os.close(fd)
    c = s.counts
    assert code == 0 and s.pipe_closed and s.closed_out == "stderr" and c.malformed > 0
    assert s.rows_written == c.parsed == count_rows(tmp_path / "data") > 0
    assert dataset_rejects(tmp_path / "data").num_rows == c.rejected


def vm_kib(pid: int, field: str = "VmRSS") -> int | None:
    """A memory field of a process from /proc (VmRSS, VmHWM, RssAnon …), in KiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
    return int(m.group(1)) if m else None


@pytest.mark.slow
def test_soak_memory_stays_flat_and_bounded(tmp_path):
    data, err = tmp_path / "data", tmp_path / "err"
    n = 100_000  # 20 flushes of --flush-rows: enough to see memory flat or growing from one to the next
    dests = ["api.stripe.com", "httpbin.org", "api.github.com", "s3.amazonaws.com"]
    sent = [access_line(i, dest=dests[i % 4], code=200 if i % 11 else 503) for i in range(1, n + 1)]
    proc = start_stream(data, "--flush-rows", "5000", err=err)
    writer = Writer(proc, sent, pause=0, close_at_end=True)
    samples: list[int] = []
    peaks: list[int] = []
    writer.start()
    try:
        give_up = time.monotonic() + 240  # a loaded 2-core box takes ~5 s; never hang the suite
        while proc.poll() is None:
            assert time.monotonic() < give_up, "the soak stream did not finish"
            # The process's own memory is its anonymous pages. VmRSS also counts the file-backed
            # pages of polars/pyarrow/duckdb's shared libraries, which depend on the page cache (a
            # freshly installed venv maps ~50 MiB more of them): shared and reclaimable, not ours.
            anon, hwm = vm_kib(proc.pid, "RssAnon"), vm_kib(proc.pid, "VmHWM")
            if anon and hwm:
                samples.append(anon)
                peaks.append(hwm)
            time.sleep(0.1)
        assert proc.returncode == 0, err.read_text()[-2000:]
    finally:
        writer.stop.set()
        if proc.poll() is None:
            proc.kill()
    writer.join(5)
    s = check_nothing_lost(data, err, sent)
    assert s["read"] == n
    assert len(samples) > 10
    peak = max(samples) / 1024
    hwm = max(peaks) / 1024  # the kernel's high-water mark of all resident pages, libraries included
    print(f"RssAnon samples {len(samples)}, peak {peak:.0f} MiB; VmHWM {hwm:.0f} MiB")
    assert peak < 300, f"anonymous memory peaked at {peak:.0f} MiB"
    assert hwm < 400, f"resident memory (libraries included) peaked at {hwm:.0f} MiB"
    third = len(samples) // 3
    early, late = max(samples[third:2 * third]) / 1024, max(samples[2 * third:]) / 1024
    assert late < early + 40, f"anonymous memory grew from {early:.0f} to {late:.0f} MiB"
    assert max(pq.ParquetFile(f).metadata.num_rows for f in row_files(data)) <= 5_000  # --flush-rows caps a part


@functools.lru_cache(maxsize=None)
def sample_batches(path: Path) -> tuple:
    """A sample's batches as `logpipe parse`/`ingest` read it (parse_input), made once for the two
    tests that read every sample's (~0.75 s of CPU for them all). Read only."""
    from logpipe.pipeline import parse_input
    from logpipe.sources import Input

    return tuple(batch for batch, _end in parse_input(Input(str(path))))


@pytest.mark.parametrize("path", PLAIN_SAMPLES, ids=sample_id)
def test_every_sample_streams_like_parse(path, tmp_path):
    """In-process over each sample (kubectl/stern prefixes, JSON, ztunnel, noise, malformed lines):
    the stream's counts equal a batch parse of the file, and the dataset holds exactly them. (Without
    alerts: their DuckDB connection was ~70% of each run; test_every_sample_passes_the_alert_rules
    gives every sample's rows to them, with one connection.)"""
    import io

    from logpipe.batches import Counts
    from logpipe.stream import StreamOptions, Streamer

    want = Counts()
    for batch in sample_batches(path):  # what `logpipe parse`/`ingest` read
        want.add(batch)
    data, err = tmp_path / "data", io.StringIO()
    fd = os.open(path, os.O_RDONLY)
    try:
        code = Streamer(str(data), StreamOptions(flush_rows=1000, alerts=False), stdin_fd=fd, stderr=err,
                        stdout=io.StringIO()).run()
    finally:
        os.close(fd)
    assert code == 0
    (tmp_path / "err").write_text(err.getvalue())
    s = summary(tmp_path / "err")
    assert (s["read"], s["parsed"], s["noise"], s["malformed"], s["blank"], s["joined"]) == (
        want.read, want.parsed, want.noise, want.malformed, want.blank, want.joined)
    assert count_rows(data) == s["parsed"]
    rejects = dataset_rejects(data)
    assert (0 if rejects is None else rejects.num_rows) == s["rejected"]


def test_every_sample_passes_the_alert_rules():
    """Every sample's rows (each layout's columns, JSON's, ztunnel's) checked by one AlertRules, in
    slices of ALERT_ROWS as the stream's micro-batches are (``Streamer._alert``): no error (the stream
    would turn alerts off on one). The rows of one schema together: a check costs ~50 ms whatever its
    rows, a connection (another schema's) ~0.15 s."""
    from logpipe.stream import ALERT_ROWS

    by_schema: dict = {}
    for path in PLAIN_SAMPLES:
        for batch in sample_batches(path):
            by_schema.setdefault(batch.records.schema, []).append(batch.records)
    rules = shared_rules(window_seconds=300)
    try:
        alerts, rows = [], 0
        for batches in by_schema.values():
            table = pa.Table.from_batches(batches)
            for start in range(0, table.num_rows, ALERT_ROWS):
                alerts += rules.check(table.slice(start, ALERT_ROWS))
            rows += table.num_rows
    finally:
        rules.close()
    assert rows > 1000 and {"blocked_attempt", "unregistered_egress", "new_destination"} <= {a.kind for a in alerts}


def test_a_compressed_stdin_is_read_as_ingest_reads_it(tmp_path):
    """`cat access.log.gz | logpipe stream`: gzip (two members, as `cat a.gz b.gz` makes), bz2 and zstd
    (two frames) are decompressed as they come; a gzip cut short keeps its lines so far, with a
    warning; damaged data is a read error (exit 1); a zip or tar is refused (give its path to ingest)."""
    import bz2
    import gzip

    import tarfile
    import zipfile

    import zstandard

    zstd = zstandard.ZstdCompressor()

    def zipped(data: bytes) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            zf.writestr("access.log", data)
        return out.getvalue()

    def tarred(data: bytes) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            info = tarfile.TarInfo("access.log")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        return out.getvalue()

    text = (SAMPLES / "waypoint-egress-1.23.log").read_bytes()
    n = text.count(b"\n")
    for name, data, code, rows, said in [
        ("two.gz", gzip.compress(text[:2000]) + gzip.compress(text[2000:]), 0, n, None),
        ("a.bz2", bz2.compress(text), 0, n, None),
        ("cut.gz", gzip.compress(text)[:600], 0, None, "stdin's gzip data ended before its end"),
        ("two.zst", zstd.compress(text[:2000]) + zstd.compress(text[2000:]), 0, n, None),
        ("cut.zst", zstd.compress(text)[:300], 0, None, "stdin's zstd data ended before its end"),
        ("bad.gz", gzip.compress(text)[:200] + b"garbage" * 40, 1, None, "its gzip data is damaged"),
        ("a.zip", zipped(text), 1, 0, "stdin is a zip archive, not a log: give its path to `logpipe ingest`"),
        ("a.tgz", gzip.compress(tarred(text)), 1, 0, "stdin is a tar archive, not a log"),
        # binary (it was read as lines: holes and noise rejects, exit 0), as ingest refuses a binary file
        ("a.parquet", b"PAR1\x15\x04\x15\x10\x15\x14L\x15\x02\x15\x00\x12\x00\x00" + text[:500], 1, 0,
         "stdin is binary (NUL bytes no hole explains), not a text log"),
        ("u16.log", text.decode().encode("utf-16-le"), 1, 0, "stdin is binary"),
    ]:
        src = tmp_path / name
        src.write_bytes(data)
        got, err = stream_file(src, tmp_path / f"data-{name}")
        assert got == code, err
        if rows is not None:
            assert count_rows(tmp_path / f"data-{name}") == rows, err
        assert said is None or said in err, err
        assert code or "noise 0" in err, err  # (no compressed bytes read as lines)


# ---- a restarted stream: lines an earlier one stored (logpipe/replayguard.py) ------------------------


def run_stream_on(data: Path, lines: list[str], tmp_path: Path, *args: str) -> dict:
    err = tmp_path / f"err{len(list(tmp_path.glob('err*')))}"
    run = stream_cli(data, "--quiet", *args, input="".join(x + "\n" for x in lines).encode())
    err.write_bytes(run.stderr)
    assert run.returncode == 0, err.read_text()
    return summary(err)


def test_a_restarted_stream_does_not_store_the_replayed_backlog_again(tmp_path):
    """kubectl logs -f prints the whole log again when restarted: the lines the first run stored
    (rows, malformed) are counted as replayed; only the new ones are stored, and lines without a time
    (the garbage lines here), which may repeat, are stored again."""
    data = tmp_path / "data"
    first = mixed_lines(200) + [access_line(999)[:90]]  # (a line cut short: malformed)
    s1 = run_stream_on(data, first, tmp_path)
    assert s1["replayed"] == 0 and s1["malformed"] == 1 and s1["noise"] > 0
    second = first + mixed_lines(100, start=201)  # the backlog again, then new lines
    s2 = run_stream_on(data, second, tmp_path)
    assert s2["read"] == s2["parsed"] + s2["rejected"] + s2["blank"] + s2["joined"] + s2["replayed"]
    assert s2["replayed"] == s1["parsed"] + s1["malformed"]
    assert s2["noise"] == sum(x.startswith("garbage") for x in second)
    assert s2["parsed"] == sum(1 for x in mixed_lines(100, start=201) if x.startswith("["))
    rows, rejects = dataset_rows(data), dataset_rejects(data)
    ids = rows.column("request_id").to_pylist()
    assert len(ids) == len(set(ids)) == s1["parsed"] + s2["parsed"]
    assert rejects.num_rows == s1["rejected"] + s2["rejected"]
    assert rejects.column("raw").to_pylist().count(first[-1]) == 1
    # a third run, started with --keep-replayed, stores them all again
    s3 = run_stream_on(data, first[:50], tmp_path, "--keep-replayed")
    assert s3["replayed"] == 0 and s3["parsed"] > 0


def test_a_stream_keeps_timeless_rows_in_every_run(tmp_path):
    """A row with no time (a format without START_TIME: such lines repeat) is stored each time it
    comes, in a run and in every run."""
    fmt = "%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE%"
    timeless = ["GET /healthz 200"] * 3
    other = tmp_path / "timeless"
    assert run_stream_on(other, timeless, tmp_path, "--format-string", fmt)["parsed"] == 3
    s = run_stream_on(other, timeless, tmp_path, "--format-string", fmt)
    assert s["parsed"] == 3 and s["replayed"] == 0
    assert count_rows(other) == 6


def kubectl_loop(lines: list[str], times: int) -> list[str]:
    """What `while true; do kubectl logs -f …; done` hands a stream: the log printed again at each
    reconnect (here with one new line after each)."""
    out = []
    for k in range(times):
        out += lines + [access_line(5000 + k)]
    return out


@pytest.mark.parametrize("flush_rows", [10_000, 7])  # (the copies in one batch, and in many)
def test_a_stream_stores_the_log_kubectl_prints_again_once(tmp_path, flush_rows):
    """`while true; do kubectl logs -f …; done | logpipe stream`: each reconnect prints the whole log
    again; a line that names one event (a start time in milliseconds and a request id, or a TCP
    line's client port; an agent's line with its µs time) is stored once and the copies are counted
    as replayed. A time of .000 is in milliseconds too (its layout's other lines say so)."""
    sample = [x for x in (SAMPLES / "waypoint-egress-1.23.log").read_text().splitlines() if x.strip()]
    sample += [x for x in (SAMPLES / "tcp-and-ipv6.log").read_text().splitlines() if x.strip()]
    agent = "2025-01-30T10:53:16.279513Z\tinfo\txdsproxy connected to upstream XDS server"
    log = sample + [agent, access_line(1000), access_line(1001)[:90]]  # (.000; a line cut short: malformed)
    data = tmp_path / "data"
    s = run_stream_on(data, kubectl_loop(log, 3), tmp_path, "--flush-rows", str(flush_rows))
    assert s["read"] == s["parsed"] + s["rejected"] + s["replayed"]
    assert s["parsed"] == len(log) - 2 + 3 and s["rejected"] == 2, s["text"]
    assert s["replayed"] == 2 * len(log), s["text"]
    rows, rejects = dataset_rows(data), dataset_rejects(data)
    first_copies = [n for n in range(1, len(log) + 1) if n not in (len(log) - 2, len(log))]  # (but the rejects)
    assert sorted(rows.column("line_number").to_pylist())[:len(log) - 2] == first_copies
    assert sorted(rejects.column("raw").to_pylist()) == sorted([log[-3], log[-1]])
    # the stream's hashes hold each line once, and a restart knows them all
    assert sum(f.stat().st_size for f in (data / "_stream").glob("*.seen")) == 8 * (len(log) + 3)
    assert run_stream_on(data, log, tmp_path)["replayed"] == len(log)


def test_a_line_that_names_no_one_event_is_stored_each_time_it_comes(tmp_path):
    """Under a format in whole seconds with no request id, the same line twice is two requests
    (`GET /healthz 200` of two probes): all are stored, while the default format's lines in the same
    stream, printed again, are not. So is Envoy's default format's TCP line (no request id, no client
    address: two connections in one millisecond print it alike), and a line whose only time is kubectl
    --timestamps' (CRI-O's conmon writes one time for all the lines of a read)."""
    fmt = "%START_TIME(%Y-%m-%dT%H:%M:%S)% %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %DOWNSTREAM_REMOTE_ADDRESS%"
    probe = "2025-01-30T10:00:01 GET /healthz 200 10.0.0.1:5000"
    tcp = '[2025-01-30T10:00:01.250Z] "- - -" 0 - 0 0 0 - "-" "-" "-" "-" "192.0.2.7:443"'
    yaml = "2025-01-30T12:10:13.682034460Z       typedConfig:"
    backlog = [access_line(1), access_line(2)]
    lines = [probe, *backlog, probe, tcp, tcp, yaml, yaml, *backlog, probe]
    data = tmp_path / "data"
    s = run_stream_on(data, lines, tmp_path, "--format-string", fmt)
    assert s["parsed"] == 3 + 2 + 2 and s["noise"] == 2 and s["replayed"] == 2, s["text"]
    paths = dataset_rows(data).column("path").to_pylist()
    assert paths.count("/healthz") == 3 and paths.count("/item/1") == 1


def test_lines_alike_but_for_their_request_id_or_client_port_are_all_stored(tmp_path):
    """Two requests in the same millisecond, alike but for their request ids (or two TCP connections
    but for the client's port), are two events; the same line again is a copy."""
    a = access_line(3)
    b = a.replace("req-000000003", "req-000000004")
    tcp = ('[2025-01-30T10:00:01.250Z] "- - -" 0 - - - "-" 0 0 1 - "-" "-" "-" "-" "192.0.2.7:443" '
           "outbound|443||db.example 10.244.0.18:39682 192.0.2.7:443 10.244.0.24:45748 - -")
    tcp2 = tcp.replace(":45748", ":45750")
    data = tmp_path / "data"
    s = run_stream_on(data, [a, b, tcp, tcp2, a, b, tcp, tcp2], tmp_path)
    assert s["parsed"] == 4 and s["replayed"] == 4, s["text"]
    assert sorted(dataset_rows(data).column("request_id").drop_null().to_pylist()) == ["req-000000003", "req-000000004"]


def test_a_batchs_line_hashes_are_each_lines_hash():
    """line_hashes (one join of the digests, read as one array) gives each line's line_hash: the
    hashes the streams' files hold, little-endian blake2b-64, as before."""
    import hashlib

    from logpipe.replayguard import line_hash, line_hashes

    lines = [b"", b"x", "é\u2028".encode() * 40, *(access_line(i).encode() for i in range(50))]
    assert line_hashes(lines) == [line_hash(x) for x in lines] and line_hashes([]) == []
    assert line_hash(b"x") == int.from_bytes(hashlib.blake2b(b"x", digest_size=8).digest(), "little")


def test_keep_replayed_stores_a_runs_own_copies_too(tmp_path):
    line = access_line(7)
    assert run_stream_on(tmp_path / "a", [line, line], tmp_path)["parsed"] == 1
    s = run_stream_on(tmp_path / "b", [line, line], tmp_path, "--keep-replayed")
    assert s["parsed"] == 2 and s["replayed"] == 0


def test_a_restart_in_a_kubectl_loop_skips_both_kinds_of_copies(tmp_path):
    """Lines another stream stored are skipped whenever they come (a time is enough); the run's own
    copies only of lines that name one event; each is counted once as replayed."""
    data = tmp_path / "data"
    tcp = '[2025-01-30T10:00:01.250Z] "- - -" 0 - 0 0 0 - "-" "-" "-" "-" "192.0.2.7:443"'  # (names no one event)
    old = [access_line(1), access_line(2), tcp]
    assert run_stream_on(data, old, tmp_path)["parsed"] == 3
    new = [access_line(3), tcp.replace("01.250Z", "02.500Z")]
    s = run_stream_on(data, old + new + old + new, tmp_path)
    assert s["parsed"] == 3 and s["replayed"] == 7, s["text"]  # (tcp of the new lines: stored twice)
    assert run_stream_on(data, old + new, tmp_path)["replayed"] == 5


def test_many_restarts_never_store_the_first_backlog_again(tmp_path, monkeypatch):
    """Each restart keeps the hashes of the lines it was replayed too: past KEEP_FILES restarts (older
    files deleted) the first run's backlog is still known."""
    from logpipe import replayguard

    monkeypatch.setattr(replayguard, "KEEP_FILES", 2)
    data, log = tmp_path / "data", tmp_path / "backlog.log"
    lines = mixed_lines(60)
    for k in range(6):  # each run: the whole backlog again, and one new line
        lines.append(access_line(1000 + k))
        log.write_text("".join(x + "\n" for x in lines))
        code, err = stream_file(log, data)
        assert code == 0
    s = SUMMARY_RE.search(err)
    assert s and err.count("parsed 1,") == 1, err
    ids = dataset_rows(data).column("request_id").to_pylist()
    assert len(ids) == len(set(ids))
    assert len(list((data / "_stream").glob("*.seen"))) <= 3


def test_a_stream_knows_the_lines_a_stream_still_running_stores():
    """A new stream started while the old one still runs (another terminal): before each batch it
    takes in what the other stream stored since, so the lines both are handed are stored once."""
    import tempfile

    from logpipe.replayguard import ReplayGuard

    with tempfile.TemporaryDirectory() as root:
        old = ReplayGuard(root, "old")
        old.remember([1, 2])
        new = ReplayGuard(root, "new")
        old.remember([3])  # (stored by the old stream after the new one started)
        assert new.replayed([1, 3]) == [True, False]
        new.refresh()
        assert new.replayed([1, 2, 3, 4]) == [True, True, True, False]
        assert ReplayGuard(root, "x", look_up=False).replayed([1]) == [False]


def test_timeless_noise_is_stored_again():
    """Only lines with a time are known across runs: the debug exporter's "ScopeLogs #0" (or
    istio-agent's YAML) repeats in every run and is stored each time; an agent's line with its time
    is replayed."""
    import tempfile
    from pathlib import Path

    agent = "2025-01-30T10:53:16.279513Z\tinfo\txdsproxy connected to upstream XDS server"
    lines = ["ScopeLogs #0", "  discoveryAddress: istiod.istio-system.svc:15012", agent, access_line(5)]
    with tempfile.TemporaryDirectory() as tmp:
        data, log = Path(tmp) / "data", Path(tmp) / "in.log"
        log.write_text("".join(x + "\n" for x in lines))
        stream_file(log, data)
        code, err = stream_file(log, data)
        assert code == 0 and "parsed 0, rejected 2 (noise 2, malformed 0), replayed 2 (" in err, err
        assert sorted(dataset_rejects(data).column("raw").to_pylist()) == sorted([*lines[:2], *lines[:3]])


def test_replay_guard_files_stay_bounded(tmp_path, monkeypatch):
    from logpipe import replayguard
    from logpipe.replayguard import ReplayGuard

    monkeypatch.setattr(replayguard, "KEEP_HASHES", 10)
    monkeypatch.setattr(replayguard, "KEEP_FILES", 2)
    g = ReplayGuard(tmp_path, "a")
    for k in range(5):
        g.remember(list(range(k * 7, k * 7 + 7)))
    assert g.path.stat().st_size <= 8 * 20  # rewritten to its last 10 when it doubles
    assert ReplayGuard(tmp_path, "z").replayed([34, 25, 0]) == [True, True, False]
    assert g.repeated([34, 25, 24, 0]) == [True, True, False, False]  # (the run's own: its file's, as bounded)
    assert len(g.mine) + len(g.mine_recent) <= 2 * 10
    with open(g.path, "ab") as f:
        f.write(b"\x01\x02\x03")  # a write cut short by a crash: its whole hashes still read
    assert ReplayGuard(tmp_path, "z").replayed([34]) == [True]
    g.close()  # (its stream ended: a running stream's file is never merged, test_replayguard.py)
    for name in "bcd":
        ReplayGuard(tmp_path, name).remember([100])
        time.sleep(0.02)
    ReplayGuard(tmp_path, "e")  # keeps the newest KEEP_FILES files
    assert len(list((tmp_path / "_stream").glob("*.seen"))) == 2


def test_a_ninth_sources_backlog_stays_known(tmp_path):
    """Streams of several sources into one dataset (a stream per pod, a ztunnel per node): past
    KEEP_FILES streams' files, the oldest was deleted, so that source's restart stored its whole
    backlog again. Now the older files are merged into one, which every later stream reads."""
    from logpipe.replayguard import KEEP_FILES, ReplayGuard

    sources = KEEP_FILES + 3
    for k in range(sources):  # (each source's lines, oldest first)
        g = ReplayGuard(tmp_path, f"pod{k}")
        g.remember([1000 * k + j for j in range(5)])
        os.utime(g.path, (1_700_000_000 + k, 1_700_000_000 + k))
    for k in range(sources):  # each source restarted: its backlog is known
        assert ReplayGuard(tmp_path, f"again{k}").replayed([1000 * k, 1000 * k + 4]) == [True, True], k
    assert len(list((tmp_path / "_stream").glob("*.seen"))) <= KEEP_FILES


# ---- compact ------------------------------------------------------------------------------------------


def test_stream_compacts_its_small_parts(tmp_path):
    data = tmp_path / "data"
    sent = mixed_lines(160)
    run = stream_cli(data, "--quiet", "--flush-rows", "4", input="".join(x + "\n" for x in sent).encode())
    assert run.returncode == 0, run.stderr.decode()
    (tmp_path / "err").write_bytes(run.stderr)
    s = check_nothing_lost(data, tmp_path / "err", sent)
    said = re.search(r"in 40 part files to \S+ \(compacted (\d+)\)", s["text"])
    assert len(row_files(data)) <= 2  # 40 parts of 4 lines: merged during the run and on exit
    # (the stream's part files merged, each once: a merged file merged again in a later round is none of
    # them; it said "in 40 part files … (compacted 41)")
    assert said and int(said[1]) <= 40, s["text"]


def test_the_stream_compacts_only_its_own_parts(tmp_path, monkeypatch):
    """The stream's compaction names its own writer (its parts' prefix): another writer's parts in the
    dataset (an ingested input's) are left to `logpipe compact` and ingest (test_dataset)."""
    import io

    from logpipe import dataset
    from logpipe.stream import StreamOptions, Streamer

    asked, real = [], dataset.compact_dataset
    monkeypatch.setattr(dataset, "compact_dataset", lambda ds, **kw: asked.append(kw.get("writer")) or real(ds, **kw))
    src = tmp_path / "in.log"
    src.write_text("".join(access_line(i) + "\n" for i in range(40)))
    fd = os.open(src, os.O_RDONLY)
    try:
        streamer = Streamer(str(tmp_path / "data"), StreamOptions(alerts=False, flush_rows=4, compact_every=8),
                            stdin_fd=fd, stderr=io.StringIO())
        assert streamer.run() == 0
    finally:
        os.close(fd)
    assert asked and set(asked) == {streamer.prefix}


@pytest.mark.parametrize("every", [4, 1])  # a malformed line in each flush of 4 lines; every line malformed
def test_the_stream_merges_its_reject_files_too(tmp_path, every):
    """Each flush with a reject writes a reject file, and every connection binds them all: the stream
    merges them as it merges its part files, also when no line is an access line (no part file at all);
    its summary counts part files merged only."""
    import io

    from logpipe.stream import StreamOptions, Streamer

    data, src = tmp_path / "data", tmp_path / "in.log"
    sent = [access_line(i) if i % every else f"garbage line {i} that is no access log" for i in range(1, 41)]
    src.write_text("".join(x + "\n" for x in sent))
    err = io.StringIO()
    fd = os.open(src, os.O_RDONLY)
    try:
        code = Streamer(str(data), StreamOptions(alerts=False, flush_rows=4, compact_every=8), stdin_fd=fd,
                        stderr=err).run()
    finally:
        os.close(fd)
    assert code == 0, err.getvalue()
    # 10 reject files: the first 8 merged into 1 (compact_every 8; the 2 after them are too few to merge)
    assert len(list((data / "_rejects").glob("*.parquet"))) <= 3
    assert sorted(dataset_rejects(data).column("line_number").to_pylist()) == [
        i for i in range(1, 41) if i % every == 0]
    assert count_rows(data) == 40 - 40 // every
    said = re.search(r"in (\d+) part files to \S+(?: \(compacted (\d+)\))?", err.getvalue())
    assert said and int(said[2] or 0) <= int(said[1]), err.getvalue()


def test_a_restarted_stream_finishes_the_compaction_a_killed_one_left(tmp_path, monkeypatch):
    """A stream killed while it merged its parts (the plan recorded, an old file removed, the merged
    file still hidden) left those rows out of every query until a compaction finished the plan; the next
    stream, which may write too few parts to compact, finishes it as it starts."""
    import io

    from logpipe import compaction
    from logpipe.stream import StreamOptions, Streamer

    class Killed(BaseException):  # (not an error the stream handles: it stops there)
        pass

    def stream(lines: list[str]) -> None:
        src = tmp_path / "in.log"
        src.write_text("".join(x + "\n" for x in lines))
        fd = os.open(src, os.O_RDONLY)
        try:
            Streamer(str(data), StreamOptions(alerts=False, flush_rows=4, compact_every=8), stdin_fd=fd,
                     stderr=io.StringIO()).run()
        finally:
            os.close(fd)

    data, real, calls = tmp_path / "data", compaction._unlink, []

    def killed(path):
        calls.append(path)
        if len(calls) == 2:
            raise Killed
        real(path)

    with monkeypatch.context() as mp:
        mp.setattr(compaction, "_unlink", killed)
        with pytest.raises(Killed):
            stream([access_line(i) for i in range(32)])  # 8 parts of 4 rows: merged
    assert count_rows(data) == 28  # (one part removed, the merged file hidden)
    stream([access_line(i) for i in range(100, 102)])  # a part of 2 rows: nothing to merge
    assert count_rows(data) == 34 and json.loads((data / "_manifest.json").read_text())["compactions"] == []


def test_a_stream_sweeps_the_hidden_part_a_killed_stream_left(tmp_path):
    """kill -9 while a stream wrote a part left its hidden file, which only an ingest's recover swept (a
    stream's dataset may see none): a stream sweeps a stream's that is over a day old as it starts, not
    a fresher one (a running stream's) nor an ingest's (ingest's recover is its sweeper)."""
    import io
    import time

    from logpipe.dataset import STALE_TMP_SECONDS
    from logpipe.stream import StreamOptions, Streamer

    data = tmp_path / "data"
    day = data / "date=2024-07-18"
    day.mkdir(parents=True)
    old = time.time() - STALE_TMP_SECONDS - 60
    left = {name: day / f".{name}-0a1b.parquet.tmp" for name in ("streamdead0001g0", "streamlive0002g0", "part-e1")}
    for name, path in left.items():
        path.write_bytes(b"PAR1")
        if name != "streamlive0002g0":
            os.utime(path, (old, old))
    Streamer(str(data), StreamOptions(alerts=False), stdin_fd=os.open(os.devnull, os.O_RDONLY),
             stderr=io.StringIO()).run()
    assert sorted(p.name for p in day.glob(".*.tmp")) == [".part-e1-0a1b.parquet.tmp", ".streamlive0002g0-0a1b.parquet.tmp"]


def test_stream_never_compacts_under_a_reader(tmp_path, monkeypatch):
    """While a query reads the dataset (db.reading) the stream leaves its parts; at the end it waits
    FINAL_COMPACT_WAIT for the reader, then says it left them to `logpipe compact`."""
    import io

    from logpipe import db, stream
    from logpipe.stream import StreamOptions, Streamer

    data = tmp_path / "data"
    stream.Streamer(str(data), StreamOptions(alerts=False), stdin_fd=os.open(os.devnull, os.O_RDONLY),
                    stderr=io.StringIO()).run()  # (the dataset, so that there is a lock to hold)
    monkeypatch.setattr(stream, "FINAL_COMPACT_WAIT", 0.3)
    src = tmp_path / "in.log"
    src.write_text("".join(access_line(i) + "\n" for i in range(80)))
    err = io.StringIO()
    fd = os.open(src, os.O_RDONLY)
    try:
        with db.reading(data):
            code = Streamer(str(data), StreamOptions(alerts=False, flush_rows=4, compact_every=8), stdin_fd=fd,
                            stderr=err).run()
    finally:
        os.close(fd)
    assert code == 0, err.getvalue()
    assert "waiting up to 0.3 s for the queries reading the dataset" in err.getvalue()
    assert "compaction skipped: a query is reading the dataset" in err.getvalue()
    assert len(row_files(data)) == 20 and count_rows(data) == 80
    # `logpipe compact` waits for a reader, and says so
    with db.reading(data):
        proc = subprocess.Popen([*LOGPIPE, "compact", "--data", str(data)], stderr=subprocess.PIPE, text=True)
        said = proc.stderr.readline()
        assert said.startswith("logpipe: waiting for the queries reading") and proc.poll() is None
    assert proc.wait(timeout=60) == 0 and len(row_files(data)) == 1 and count_rows(data) == 80


def test_compact_merges_parts_and_keeps_rows(tmp_path):
    from logpipe.dataset import Dataset
    from logpipe.parse import default_parser

    data = tmp_path / "data"
    ds = Dataset(data, create=True)
    lines = mixed_lines(120)
    for k in range(0, 120, 10):
        batch = default_parser().parse_batch(lines[k:k + 10], "<stdin>", k + 1)
        ds.append(batch.records, batch.rejects, prefix="streamtest")
    before = count_rows(data)
    assert len(row_files(data)) == 12
    run = run_logpipe("compact", "--data", data)
    assert run.returncode == 0, run.stderr
    assert len(row_files(data)) == 1
    assert count_rows(data) == before
    assert "12 row files before, 1 after" in run.stderr


# ---- replay -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sample_files(), ids=sample_id)
def test_replay_writes_every_byte_and_sleeps_by_start_time(path, tmp_path):
    import io

    from logpipe.sources import Input, open_binary

    out, sleeps = io.BytesIO(), []
    n = replay_file(str(path), out, speed=10.0, max_sleep=2.0, sleep=sleeps.append)
    stream, _kind = open_binary(Input(str(path)))
    with stream:
        raw = stream.read()  # decompressed
    assert out.getvalue() == raw
    assert n == len(raw.splitlines())
    assert all(0 < s <= 2.0 for s in sleeps)


def test_replay_pace_is_scaled_and_capped(tmp_path):
    import io

    log = tmp_path / "gaps.log"
    log.write_text("\n".join([access_line(1, second=0), "noise without a time", access_line(2, second=10),
                              access_line(3, second=5), access_line(4, second=65)]) + "\n")
    sleeps: list[float] = []
    replay_file(str(log), io.BytesIO(), speed=10.0, max_sleep=2.0, sleep=sleeps.append)
    # 10 s → 1 s (the time-less line in between waits for nothing); back in time → no pause; 60 s → capped.
    assert [round(s, 2) for s in sleeps] == [1.0, 2.0]



def test_replay_paces_a_long_requests_line_by_the_latest_time(tmp_path):
    """Envoy logs a request when it ends, with its start time: a 30 s request's line comes after a
    line 10 s later. It goes out at once, and the next pause is from the latest time written (10 s),
    not from its own start: 11 - 10 = 1 s, not 11 - (-20) = 31 s."""
    import io

    log = tmp_path / "late.log"
    log.write_text("\n".join([access_line(1, second=20), access_line(2, second=30), access_line(3, second=0),
                              access_line(4, second=31)]) + "\n")
    sleeps: list[float] = []
    replay_file(str(log), io.BytesIO(), speed=1.0, max_sleep=100.0, sleep=sleeps.append)
    assert [round(s, 2) for s in sleeps] == [10.0, 1.0]

@pytest.mark.parametrize("text, want", [("10x", 10.0), ("10", 10.0), ("0.5x", 0.5), ("max", None), ("1X", 1.0)])
def test_parse_speed(text, want):
    assert parse_speed(text) == want


@pytest.mark.parametrize("text", ["fast", "-2x", "0x5", "nanx", ""])
def test_parse_speed_refuses_nonsense(text):
    with pytest.raises(UsageError):
        parse_speed(text)


def test_replay_into_stream_end_to_end(tmp_path):
    data = tmp_path / "data"
    sample = SAMPLES / "sidecar-outbound-1.22.log"
    cmd = f"{' '.join(LOGPIPE)} replay {sample} --speed max | {' '.join(LOGPIPE)} stream --data {data}"
    run = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    n = len(sample.read_text().splitlines())
    assert f"lines read {n}, parsed {n}" in run.stderr
    assert count_rows(data) == n


def test_replay_at_max_speed_imports_no_parser():
    """`replay --speed max` makes no pauses, so it reads no times: it imports neither logpipe.parse
    nor polars nor pyarrow (`-X importtime` lists the imports on stderr; ~0.3-0.5 s of CPU), and
    writes the file's bytes as they are. A paced replay reads the times with the parser."""
    sample = SAMPLES / "sidecar-outbound-1.22.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    fast = subprocess.run([sys.executable, "-X", "importtime", "-m", "logpipe", "replay", str(sample), "--speed", "max"],
                          capture_output=True, cwd=ROOT, env=env, timeout=60)
    assert fast.returncode == 0, fast.stderr
    assert fast.stdout == sample.read_bytes()
    imported = set(re.findall(r"^import time:.*\|\s+(\S+)$", fast.stderr.decode(), re.MULTILINE))
    assert "logpipe.replay" in imported and not imported & {"logpipe.parse", "polars", "pyarrow"}
    paced = subprocess.run([sys.executable, "-X", "importtime", "-m", "logpipe", "replay", str(sample), "--speed",
                            "1000000x"], capture_output=True, cwd=ROOT, env=env, timeout=60)
    assert paced.returncode == 0 and paced.stdout == fast.stdout
    assert {"logpipe.parse", "polars"} <= set(re.findall(r"\|\s+(\S+)$", paced.stderr.decode(), re.MULTILINE))


def stripe_failure(h: int, m: int, s: int, pod: str = "10.244.1.21") -> str:
    """incident-day's Stripe 503 UF,URX at 2025-03-08 h:m:s, from the pod at ``pod``."""
    failed = next(x for x in (SAMPLES / "scenario" / "incident-day.log").read_text().splitlines()
                  if '" 503 ' in x and "api.stripe.com" in x and "10.244.1.21:" in x)
    stamp = failed[1:25]
    line = failed.replace(stamp, f"{stamp[:11]}{h:02d}:{m:02d}:{s:02d}.000Z", 1)
    return line.replace(" 10.244.1.21:", f" {pod}:")


@pytest.mark.parametrize("batches", [1, 10])
def test_a_failure_burst_counts_by_event_time_when_pods_interleave(batches):
    """Two pods' lines alternating (kubectl logs -l … --prefix): pod a's five failures at 14:01:10–14,
    pod b's five at 13:01:10–14, one from each in turn. Only the last five to arrive were looked at, so
    this was no alert at all; grouped per pod it was two. Now both orders give two, in one batch or
    line by line."""
    from logpipe.parse import default_parser

    a = [stripe_failure(14, 1, 10 + k, "10.244.1.21") for k in range(5)]
    b = [stripe_failure(13, 1, 10 + k, "10.244.1.22") for k in range(5)]
    for lines in ([x for pair in zip(a, b) for x in pair], a + b):
        rules = shared_rules(window_seconds=300, burst_threshold=5)
        size = len(lines) // batches
        records = default_parser().parse_batch(lines, "<stdin>", 1).records  # (cut as rows: one parse)
        got = [al for k in range(0, len(lines), size) for al in rules.check(records.slice(k, size))
               if al.kind == "failure_burst"]
        assert sorted(al.evidence["source_ip"] for al in got) == ["10.244.1.21", "10.244.1.22"], got
        assert all(al.message.startswith("5 failures within 4s") for al in got)


def test_failure_times_stay_bounded(monkeypatch):
    """A long stream's failures: each destination keeps at most FAILURE_TIMES times, and all of them
    together at most MAX_FAILURE_TIMES (then each keeps its latest burst_threshold - 1)."""
    from logpipe import alerts
    from logpipe.parse import default_parser

    monkeypatch.setattr(alerts, "FAILURE_TIMES", 20)
    monkeypatch.setattr(alerts, "MAX_FAILURE_TIMES", 30)
    rules = shared_rules(window_seconds=1, burst_threshold=5)
    lines = [stripe_failure(10 + k // 3600, k // 60 % 60, k % 60) for k in range(0, 200, 7)]  # 7 s apart
    rules.check(default_parser().parse_batch(lines[:25], "<stdin>").records)
    assert len(rules._failures["api.stripe.com"]) == 20
    assert max(rules._failures["api.stripe.com"]).second == 48  # (the earliest went, the latest stay)
    other = [x.replace("api.stripe.com", "api.paypal.com") for x in lines[:15]]
    rules.check(default_parser().parse_batch(other, "<stdin>", 26).records)  # 35 in all: over 30
    assert rules._failure_times == 8 and [len(v) for v in rules._failures.values()] == [4, 4]
    assert max(rules._failures["api.stripe.com"]).second == 48


def incident_line(needle: str, when: str | None = None) -> str:
    """The first incident-day line holding ``needle``, at ``when`` (HH:MM:SS) if given."""
    line = next(x for x in (SAMPLES / "scenario" / "incident-day.log").read_text().splitlines() if needle in x)
    return line if when is None else line[:12] + when + line[20:]


@pytest.mark.parametrize("batches", [1, 2, 6])
def test_a_destination_tried_blocked_then_reached_is_new(batches):
    """Three block_all 502s to crypto-miner.example, then three successful waypoint requests to it from
    another workload: the blocked rows made it known, so the stream raised blocked_attempt alone while
    `report anomalies` (new_destination.sql: the window's blocked rows are no new egress) raised
    new_destination. Now the stream raises it too, at the first allowed request, however the lines are cut."""
    from logpipe.parse import default_parser

    blocked = [incident_line("crypto-miner.example", f"05:01:{10 + k:02d}") for k in range(3)]
    allowed = [incident_line('"exfil.example"', f"05:02:{10 + k:02d}").replace("exfil.example", "crypto-miner.example")
               for k in range(3)]
    lines = blocked + allowed
    rules = shared_rules(window_seconds=300)
    size = len(lines) // batches
    got = [a for k in range(0, len(lines), size)
           for a in rules.check(default_parser().parse_batch(lines[k:k + size], "<stdin>", k + 1).records)]
    assert [(a.kind, a.destination, a.count, a.evidence["source_ip"]) for a in got] == [
        ("blocked_attempt", "crypto-miner.example", 1, "10.244.3.15"),
        ("new_destination", "crypto-miner.example", 1, "10.244.1.31")]
    assert got[1].evidence["line_number"] == 4 and got[1].message.startswith("first waypoint egress")


def test_blocked_rows_leave_known_destinations_as_they_are():
    """A destination the dataset knew at the start stays known; one only ever blocked is never new."""
    from logpipe.parse import default_parser

    blocked = [incident_line("crypto-miner.example", f"05:01:{10 + k:02d}") for k in range(3)]
    rules = shared_rules(["crypto-miner.example"], window_seconds=300)
    allowed = incident_line('"exfil.example"', "05:02:10").replace("exfil.example", "crypto-miner.example")
    got = rules.check(default_parser().parse_batch(blocked, "<stdin>").records)
    got += rules.check(default_parser().parse_batch([allowed], "<stdin>", 4).records)
    assert [a.kind for a in got] == ["blocked_attempt"]
    rules = shared_rules(window_seconds=300)
    got = [a for n, line in enumerate(blocked, 1)
           for a in rules.check(default_parser().parse_batch([line], "<stdin>", n).records)]
    assert [a.kind for a in got] == ["blocked_attempt"]


def test_a_passthrough_alert_names_the_sources_it_counts():
    """Six pastebin requests from six source IPs in one batch were "6 requests from 10.244.2.21", the
    first row's source for all six. An alert counts the requests since its last alert, its own
    included (those the window kept quiet, then it): their sources are counted and the first few named
    (the rest in the ndjson evidence); one source alone reads as before."""
    from logpipe.parse import default_parser

    first = incident_line('"pastebin.com"')
    lines = [first.replace(" 10.244.2.21:44171 ", f" 10.244.2.{21 + k}:44171 ") for k in range(5)] + [
        first.replace(" 10.244.2.21:44171 ", " 10.244.2.22:44171 ")]
    later = first.replace(" 10.244.2.21:44171 ", " 10.244.2.26:44171 ").replace("T11:00:", "T11:10:")  # (past the window)
    got = shared_rules(window_seconds=300).check(default_parser().parse_batch(lines + [later], "<stdin>").records)
    assert [(a.kind, a.count) for a in got] == [("new_destination", 1), ("unregistered_egress", 1),
                                                ("unregistered_egress", 6)]
    assert got[1].message.endswith("(no ServiceEntry) from 10.244.2.21, POST /api/api_post.php 200")
    again = got[2]
    assert again.message.startswith("6 requests through PassthroughCluster (no ServiceEntry) since its last alert "
                                    f"({got[1].as_dict()['time']}) from 5 sources (10.244.2.22 ×2, 10.244.2.23, "
                                    "10.244.2.24 and 2 more); this one from 10.244.2.26, POST")
    assert again.evidence["source_count"] == 5 and again.evidence["source_ip"] == "10.244.2.26"
    assert again.evidence["sources"] == {"10.244.2.22": 2, "10.244.2.23": 1, "10.244.2.24": 1, "10.244.2.25": 1,
                                         "10.244.2.26": 1}
    assert json.loads(again.to_json())["evidence"]["sources"]["10.244.2.22"] == 2
    assert "\n" not in again.to_text() and again.to_text().endswith("(<stdin>:7)")
    one = shared_rules(window_seconds=300).check(default_parser().parse_batch([first] * 3, "<stdin>").records)
    assert [(a.kind, a.count) for a in one] == [("new_destination", 1), ("unregistered_egress", 1)]
    assert "sources" not in one[1].evidence


def test_an_authz_denial_names_its_line_as_the_other_alerts_do():
    """authz_denial's text lacked the `(<stdin>:N)` the other alerts end with, and its evidence the
    input and line number (input, line_number) theirs hold: its first denial's line now."""
    from logpipe.parse import default_parser

    quiet = incident_line('"pastebin.com"')  # (line 1: no denial)
    rbac = [incident_line("deny-httpbin-post", f"15:00:{20 + k:02d}") for k in range(2)]
    ext = incident_line(" 403 UAEX ")
    got = [a for a in shared_rules(window_seconds=300).check(
        default_parser().parse_batch([quiet, *rbac, ext], "<stdin>", 1).records) if a.kind == "authz_denial"]
    assert [(a.kind, a.destination) for a in got] == [("authz_denial", "httpbin.org"), ("authz_denial", "hooks.slack.com")]
    assert got[0].to_text().endswith("1 request from 10.244.1.41 denied by AuthorizationPolicy (Envoy RBAC) "
                                     "ns[istio-egress]-policy[deny-httpbin-post]-rule[0]; this one POST /post 403 (<stdin>:2)")
    assert got[1].to_text().endswith("denied by ext_authz; this one POST /services/T024BE7LD/B07H3J9K2/xoxb 403 UAEX (<stdin>:4)")
    for a, line in zip(got, (2, 4)):
        ev = json.loads(a.to_json())["evidence"]
        assert (ev["input"], ev["line_number"], ev["source_ip"]) == ("<stdin>", line, a.evidence["source_ip"])
        assert a.count == 1 and ev["mechanism"] == ("rbac" if line == 2 else "ext_authz")


def test_an_alert_names_the_pod_of_a_prefixed_line():
    """`kubectl logs -f -l … --prefix` interleaves several pods' lines on stdin: `(<stdin>:N)` alone did
    not say which pod printed the line (evidence had no pod); an egress row's and a denial's now do."""
    from logpipe.parse import default_parser

    a, b = "[pod/waypoint-7d9f8b6c4-x2k8p/istio-proxy] ", "[pod/waypoint-7d9f8b6c4-q8w2n/istio-proxy] "
    lines = [a + incident_line('"pastebin.com"'), b + incident_line("deny-httpbin-post"), incident_line(" 403 UAEX ")]
    got = [x for x in shared_rules(window_seconds=300).check(default_parser().parse_batch(lines, "<stdin>", 1).records)
           if x.kind != "new_destination"]
    assert [(x.kind, x.evidence["line_number"], x.evidence.get("pod")) for x in got] == [
        ("unregistered_egress", 1, "waypoint-7d9f8b6c4-x2k8p"), ("authz_denial", 2, "waypoint-7d9f8b6c4-q8w2n"),
        ("authz_denial", 3, None)]
    assert got[0].to_text().endswith("(<stdin>:1, pod waypoint-7d9f8b6c4-x2k8p)")
    assert json.loads(got[1].to_json())["evidence"]["pod"] == "waypoint-7d9f8b6c4-q8w2n"
    assert got[-1].to_text().endswith("(<stdin>:3)") and "pod" not in json.loads(got[-1].to_json())["evidence"]


@pytest.mark.parametrize("lines, parts", [(1, "1 part file to"), (0, "0 part files to")])
def test_the_summary_counts_part_files_in_good_grammar(tmp_path, lines, parts):
    run = stream_cli(tmp_path / "d", "-q", input="".join(access_line(i) + "\n" for i in range(lines)).encode())
    assert run.returncode == 0 and f"rows written {lines} in {parts} " in run.stderr.decode(), run.stderr.decode()


# ---- errors a user can make -----------------------------------------------------------------------------


@pytest.mark.parametrize("args, code, words", [
    (["stream", "--flush-rows", "0"], 2, "--flush-rows must be at least 1, not 0: a part file every N lines, e.g. "
                                         "--flush-rows 10000"),  # (it suggested --flush-seconds 2)
    (["stream", "--flush-rows", "1000000"], 2, "would hold too much in memory"),
    (["stream", "--tee", "--alerts", "ndjson"], 2, "--alerts-out FILE"),
    (["stream", "--window", "0"], 2, "0 would turn failure_burst off (the window is also the burst's"),
    (["replay", "no-such.log"], 1, "no such file"),
    (["replay", "sample_logs/istio-1.8.log", "--speed", "fast"], 2, "use a positive factor"),
    (["compact", "--data", "no-such-dataset"], 1, "logpipe ingest"),
])
def test_user_errors_are_one_line_with_the_fix(args, code, words, tmp_path, monkeypatch, capsys):
    from logpipe.cli import main

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("LOGPIPE_DATA", str(tmp_path / "d"))
    monkeypatch.setattr(sys, "argv", ["logpipe", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("logpipe: error:") and words in lines[0], err


def test_stream_help_says_what_window_governs_and_lists_every_alert():
    """--window is both the dedup wait and the burst's (and scan's) window; --window 0 is refused (it
    turned failure_burst off unsaid). The help's list of alerts lacked destination_scan."""
    run = subprocess.run([*LOGPIPE, "stream", "--help"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": "200"})
    text = " ".join(run.stdout.split())
    assert "destination scans" in text
    assert ("a repeated alert for one destination (one destination and client for blocked_attempt and authz_denial, "
            "one source for a scan) waits S seconds, and a failure burst (--burst)") in text
    assert "[default: 300.0; x>0]" in text


def test_a_stream_in_another_format_says_so_once(tmp_path):
    """Each malformed line costs ms: a stream in another format warns early, once, with the fix;
    a stream in a known format with some bad lines does not."""
    other = "".join(access_line(i).replace('" 200 ', '" 200 x-extra ', 1) + "\n" for i in range(1, 80))
    run = stream_cli(tmp_path / "a", "--quiet", "--flush-rows", "30", input=other.encode())
    err = run.stderr.decode()
    assert run.returncode == 0, err
    assert err.count("logpipe: warning:") == 1 and "--format-string" in err and "of the first" in err
    good = "".join((x.replace('" 200 ', '" 2OO ', 1) if i % 5 == 0 else x) + "\n"  # 20% malformed
                   for i, x in enumerate(mixed_lines(120)))
    run = stream_cli(tmp_path / "b", "--quiet", input=good.encode())
    assert run.returncode == 0 and "logpipe: warning:" not in run.stderr.decode()
    assert "malformed 2" in run.stderr.decode()  # (some 20-odd lines are)


def test_a_stream_in_another_format_keeps_up(tmp_path, monkeypatch):
    """Lark (ms a line) is asked only about the stream's first LARK_CONTEXT_LINES lines, as for any
    input; later malformed lines get the diagnosis alone, and every line is still a reject with its
    reason; the warning comes once."""
    from logpipe import grammar, stream

    calls = []
    real = grammar.Rulebook.parse
    monkeypatch.setattr(grammar.Rulebook, "parse", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    path = tmp_path / "other.log"
    path.write_text("".join(access_line(i).replace('" 200 ', '" 200 x-extra ', 1) + "\n" for i in range(1, 401)))
    code, err = stream_file(path, tmp_path / "data")
    assert code == 0 and err.count("logpipe: warning:") == 1
    assert len(calls) == min(2 * stream.FORMAT_CHECK_LINES, LARK_CONTEXT_LINES)
    rejects = dataset_rejects(tmp_path / "data").sort_by("line_number").to_pylist()
    assert len(rejects) == 400 and all(r["class"] == "malformed" for r in rejects)
    assert "Lark:" in rejects[0]["reason"] and "Lark:" not in rejects[-1]["reason"]
    assert all("response_flags expected" in r["reason"] for r in rejects)


def test_a_stream_of_noise_parses_in_whole_slices(tmp_path, monkeypatch):
    """A parser call has a fixed cost (~10 ms): a flush is parsed in slices of PARSE_LINES, whether
    or not the stream ever holds FORMAT_CHECK_LINES access lines; every line is still counted."""
    from logpipe import stream
    from logpipe.parse import Parser

    sizes = []
    real = Parser.parse_batch
    monkeypatch.setattr(Parser, "parse_batch", lambda self, lines, *a, **k: sizes.append(len(lines)) or real(self, lines, *a, **k))
    path = tmp_path / "noise.log"
    path.write_text("".join(f"2025-03-01T00:00:00.{i % 1000:03d}Z\tinfo\tenvoy main\tnoise line {i}\n" for i in range(2500)))
    code, err = stream_file(path, tmp_path / "data")
    assert code == 0 and "lines read 2500, parsed 0" in err
    assert sizes == [2500] and stream.PARSE_LINES > 2500


@pytest.mark.parametrize("args", [["stream", "--data", "d"], ["parse", "-"]])
def test_closed_stdin_is_one_clear_error(tmp_path, args):
    r = subprocess.run([sys.executable, "-m", "logpipe", *args], cwd=tmp_path, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, preexec_fn=lambda: os.close(0))
    assert r.returncode in (1, 2) and "stdin is closed" in r.stderr and "internal error" not in r.stderr


def test_a_no_route_block_is_named_as_denied_names_it():
    """Istio before 1.3 answered plain HTTP to an unknown host under REGISTRY_ONLY with 404 NR, no cluster
    and no route: the alert says "blocked by no route" (blocked_by.sql), not "by route None"."""
    from logpipe.parse import default_parser

    line = (SAMPLES / "istio-1.1-pre.log").read_text().splitlines()[10]
    (alert,) = shared_rules(window_seconds=300).check(default_parser().parse_batch([line], "<stdin>", 1).records)
    assert alert.kind == "blocked_attempt" and "blocked by no route;" in alert.message, alert.message


def test_a_blocked_attempt_of_a_format_with_no_destination_says_it_is_not_in_the_logs():
    """A custom format with %UPSTREAM_CLUSTER_RAW% but neither %DOWNSTREAM_LOCAL_ADDRESS% nor an upstream
    host: a BlackHoleCluster row has no destination, and its alert read "blocked_attempt -:". It names
    what is missing as the reports do (destination_named.sql), and is no new destination."""
    from logpipe.layouts import parser_from_options

    parser = parser_from_options("[%START_TIME%] %RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER_RAW% "
                                 "%DOWNSTREAM_REMOTE_ADDRESS%")
    records = parser.parse_batch(["[2025-01-30T10:53:10.085Z] 0 UH BlackHoleCluster 10.244.0.24:45748"],
                                 "<stdin>", 1).records
    (alert,) = shared_rules(window_seconds=300).check(records)
    assert alert.kind == "blocked_attempt" and alert.destination == "(destination not in the logs)"
    assert alert.to_text().startswith("alert 2025-01-30T10:53:10.085Z blocked_attempt (destination not in the logs): "
                                      "1 attempt blocked by BlackHoleCluster; from 10.244.0.24, TCP UH"), alert.to_text()


def test_alert_rules_keep_one_connection_per_schema():
    """AlertRules.check makes its DuckDB connection (views and macros, ~0.15 s) once and gives it each
    micro-batch's rows (db.replace_records); a batch of other columns (a custom format's extra ones)
    gets a connection of its own, and the rows of each batch are the ones judged."""
    import pyarrow as pa

    from logpipe.alerts import AlertRules
    from logpipe.parse import default_parser

    parse = default_parser().parse_batch
    rules = AlertRules(window_seconds=300)
    first = rules.check(parse([incident_line('"pastebin.com"')], "<stdin>", 1).records)
    con = rules._con
    second = rules.check(parse([incident_line('"exfil.example"')], "<stdin>", 2).records)
    assert rules._con is con
    assert [(a.kind, a.destination) for a in first + second] == [
        ("new_destination", "pastebin.com"), ("unregistered_egress", "pastebin.com"), ("new_destination", "exfil.example")]
    extra = parse([incident_line('"api.github.com"')], "<stdin>", 3).records
    extra = pa.Table.from_batches([extra]).append_column("x_custom", pa.array(["v"]))
    assert [(a.kind, a.destination) for a in rules.check(extra)] == [("new_destination", "api.github.com")]
    assert rules._con is not con
    rules.close()


def test_an_unregistered_egress_alert_of_a_name_that_did_not_resolve_says_so():
    """AllowAnyDynamicDNSCluster answers 503 DF when the name does not resolve: a ServiceEntry would not
    make it resolve (the report's unregistered_egress gives DNS advice then), so the alert says the
    name did not resolve, not "(no ServiceEntry)"; a name that resolves keeps its wording."""
    from logpipe.parse import default_parser

    line = ('[2025-03-08T11:00:{s:02d}.000Z] "GET /x HTTP/1.1" {code} {flags} {details} - "-" 0 0 4 - "-" "curl/8" '
            '"r{s}" "{host}" "{up}" AllowAnyDynamicDNSCluster {upl} 93.184.216.34:80 10.244.1.5:3998 - allow_any_dynamic_dns')
    lines = [line.format(s=1, code=503, flags="DF", details="dns_resolution_failure", host="nx.example.org", up="-",
                         upl="-"),
             line.format(s=2, code=200, flags="-", details="via_upstream", host="ok.example", up="192.0.2.9:80",
                         upl="10.244.1.5:4000")]
    got = {a.destination: a.message for a in shared_rules(window_seconds=300).check(
        default_parser().parse_batch(lines, "<stdin>").records) if a.kind == "unregistered_egress"}
    assert got == {
        "nx.example.org": "1 request through AllowAnyDynamicDNSCluster (DNS resolution failed, flag DF: a ServiceEntry "
                          "would not make it resolve) from 10.244.1.5, GET /x 503 DF",
        "ok.example": "1 request through AllowAnyDynamicDNSCluster (no ServiceEntry) from 10.244.1.5, GET /x 200"}


def test_known_destinations_of_a_dataset_without_rows_open_no_connection(tmp_path, monkeypatch):
    """A new dataset (or one of rejects only) has an empty egress view: its known destinations are
    none, found without a DuckDB connection (~0.15 s of each stream's start); once it holds rows, they
    are read through the egress view, blocked destinations left out."""
    from logpipe import alerts, db
    from logpipe.dataset import Dataset

    data = tmp_path / "data"
    Dataset(data, create=True)
    src = tmp_path / "in.log"
    src.write_text("not an access line\n")
    assert stream_file(src, data)[0] == 0 and dataset_rejects(data).num_rows == 1 and not row_files(data)
    connect = db.connect
    calls = []
    monkeypatch.setattr(db, "connect", lambda *a, **k: calls.append(a) or connect(*a, **k))
    assert alerts.known_destinations(data) == set() and not calls
    src.write_text("".join(incident_line(n) + "\n" for n in ('"pastebin.com"', "crypto-miner.example")))
    assert stream_file(src, data)[0] == 0
    assert alerts.known_destinations(data) == {"pastebin.com"} and len(calls) == 1


def test_a_prepared_statement_reads_each_batch_it_is_given():
    """The alerts' statements are prepared once per connection (queries.prepare_query) and run on each
    micro-batch that db.replace_records swaps in: each run reads that batch's rows, not the first's,
    and a DuckDB error of a run is a QueryError as run_query's (the stream turns alerts off on it)."""
    from logpipe import db
    from logpipe.alerts import ROWS_SQL
    from logpipe.errors import QueryError
    from logpipe.parse import default_parser
    from logpipe.queries import prepare_query, run_query

    first, second = (default_parser().parse_batch([incident_line(n)], "<stdin>").records
                     for n in ('"pastebin.com"', "crypto-miner.example"))
    con = db.connect(tables={"records": first}, uses=(ROWS_SQL,))
    flags = {"failure_flags": "UF,URX"}  # (ROWS_SQL's failing: is_failure with error_spike's flags)
    try:
        rows = prepare_query(con, ROWS_SQL, flags)
        broken = prepare_query(con, "SELECT CAST(source_ip AS INTEGER) FROM egress")
        got = []
        for batch in (first, second, first):
            db.replace_records(con, batch)
            got.append(rows().to_pylist())
            assert got[-1] == run_query(con, ROWS_SQL, flags).to_pylist()
        assert [[r["destination"] for r in g] for g in got] == [["pastebin.com"], ["crypto-miner.example"],
                                                                 ["pastebin.com"]]
        with pytest.raises(QueryError, match="^SQL error: Conversion Error"):
            broken()
    finally:
        con.close()


def test_a_stream_under_a_wrong_format_names_where_its_first_line_departs(tmp_path):
    """Under a format given, the warning of no access line named none of it and asked for
    --format-string, which was given: it names the first line's reason, which says where the line
    departs from the format."""
    import io

    from logpipe import layouts
    from logpipe.stream import NO_ACCESS_LINES, StreamOptions, Streamer

    src = tmp_path / "in.log"
    src.write_text("".join(f"2025-03-08T00:00:00.{i % 1000:03d}Z\tGET\t200\n" for i in range(NO_ACCESS_LINES + 20)))
    parser = layouts.parser_from_options(format_string="ts=%START_TIME%\t%REQ(:METHOD)%\t%RESPONSE_CODE%")
    err, fd = io.StringIO(), os.open(src, os.O_RDONLY)
    try:
        assert Streamer(str(tmp_path / "data"), StreamOptions(alerts=False), parser=parser, stdin_fd=fd, stderr=err).run() == 0
    finally:
        os.close(fd)
    (warning,) = [x for x in err.getvalue().splitlines() if "warning" in x]
    assert "none follows the given format" in warning and "line 1: istio-agent/Envoy log line" in warning
    assert "nor does it follow the given format: column 1: expected 'ts=' before start_time" in warning
    assert warning.endswith("Is the format the proxies'? `… | head | logpipe parse --format-string "
                            "'ts=%START_TIME%\t%REQ(:METHOD)%\t%RESPONSE_CODE%'` shows each line's reason")


def test_a_stream_s_mostly_malformed_lines_under_a_format_name_the_format_s_parse(tmp_path):
    """Under a format given, the warning that most of the first access lines are malformed showed
    `logpipe parse --format-… -`, for the user to fill in: it repeats the format given, shell-quoted."""
    import io

    from logpipe import layouts
    from logpipe.stream import FORMAT_CHECK_LINES, StreamOptions, Streamer

    src = tmp_path / "in.log"
    src.write_text("".join(f"2025-03-08T00:00:00.{i:03d}Z\tGET it's\t2OO\n" for i in range(FORMAT_CHECK_LINES + 20)))
    parser = layouts.parser_from_options(format_string="%START_TIME%\t%REQ(:METHOD)% it's\t%RESPONSE_CODE%")
    err, fd = io.StringIO(), os.open(src, os.O_RDONLY)
    try:
        Streamer(str(tmp_path / "data"), StreamOptions(alerts=False), parser=parser, stdin_fd=fd, stderr=err).run()
    finally:
        os.close(fd)
    (warning,) = [x for x in err.getvalue().splitlines() if "access lines are malformed" in x]
    assert ("does the format given match the proxies' (`… | head | logpipe parse --format-string "
            "'%START_TIME%\t%REQ(:METHOD)% it'\"'\"'s\t%RESPONSE_CODE%'` shows each line's reason)?") in warning, warning


def test_a_full_disk_is_said_in_the_system_s_words(tmp_path, monkeypatch):
    """A disk that fills up under the stream's write: pyarrow's OSError carries ENOSPC under a longer
    text ('Error writing bytes to file. Detail: [errno 28] …'); the one-line error says the system's
    'No space left on device' (errors.no_space), and from which line the lines were not stored."""
    import errno

    from logpipe import dataset

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(dataset.Dataset, "stage", full)
    line = (SAMPLES / "waypoint-egress-1.23.log").read_text(encoding="utf-8").splitlines()[0]
    from logpipe.errors import DatasetError

    with pytest.raises(DatasetError) as e:  # (exits.run prints it as one line, exit 1)
        stream_cli(tmp_path / "d", "--quiet", input=(line + "\n").encode())
    assert str(e.value) == (f"cannot write to {tmp_path / 'd'} (No space left on device); lines from 1 on were not "
                            "stored: free space or fix permissions, then run the stream again")


def _tried_and_reached(host: str) -> list[str]:
    """Two 503 UF,URX requests to ``host`` (legacy-partner.example's, renamed: the proxy made no
    upstream connection), then one that connected (a 200 of its)."""
    failed = [incident_line("UF,URX", f"05:01:{10 + k:02d}").replace("legacy-partner.example", host) for k in range(2)]
    ok = incident_line('"legacy-partner.example"', "05:02:10").replace("legacy-partner.example", host)
    assert " 200 " in ok and " 503 UF" in failed[0]
    return failed + [ok]


@pytest.mark.parametrize("batches", [1, 3])
def test_a_destination_tried_without_connecting_then_reached_is_told_each_once(batches):
    """As new_destination.sql reads it: a destination tried without an upstream connection (503 UF) was
    never reached, so it is not known: its first attempt is told as such (a workload tries a host nobody
    called), its next attempt is no news, and its first connected request is new (it was known after the
    first attempt, and the connection raised nothing), however the lines are cut."""
    from logpipe.parse import default_parser

    lines = _tried_and_reached("fresh.example")
    rules = shared_rules(window_seconds=300)
    size = -(-len(lines) // batches)
    got = [a for k in range(0, len(lines), size)
           for a in rules.check(default_parser().parse_batch(lines[k:k + size], "<stdin>", k + 1).records)
           if a.kind == "new_destination"]
    assert [(a.destination, a.evidence["line_number"]) for a in got] == [("fresh.example", 1), ("fresh.example", 3)]
    assert "never reached: the proxy made no upstream connection" in got[0].message
    assert "(tried before without connecting)" in got[1].message


def test_a_destination_the_dataset_only_tried_is_not_known_to_the_next_stream(tmp_path):
    """A dataset whose every request to a destination failed to connect: the next stream's further
    attempt is no news, and its first connected request is a new destination (the dataset's attempts
    made it known: no alert)."""
    from logpipe import alerts

    data = tmp_path / "data"
    failed, ok = _tried_and_reached("fresh.example")[:2], _tried_and_reached("fresh.example")[2]
    src = tmp_path / "in.log"
    src.write_text("".join(x + "\n" for x in failed))
    assert stream_file(src, data)[0] == 0
    known, unreached = alerts.seen_destinations(data)
    assert "fresh.example" in unreached and "fresh.example" not in known
    from logpipe.parse import default_parser

    rules = shared_rules(known, unreached=unreached, window_seconds=300)
    later = [failed[0].replace("05:01:10", "06:01:10"), ok.replace("05:02:10", "06:02:10")]
    got = [a for a in rules.check(default_parser().parse_batch(later, "<stdin>", 1).records) if a.kind == "new_destination"]
    assert [(a.destination, a.evidence["line_number"]) for a in got] == [("fresh.example", 2)]
