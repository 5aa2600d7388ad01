"""`make bench`: logpipe's throughput against baselines, on generated data, in one run.

Generates (once, deterministically) BENCH_LINES Istio lines with bench/generate.py, then times each
approach as a whole process, median of BENCH_REPEAT runs, and prints lines/s, MB/s, peak RSS and
each one's ratio to `logpipe ingest`. Peak RSS is the whole process tree's (workers included):

  logpipe ingest        text → typed, partitioned zstd Parquet with the full record and rejects
  … as 100 files        the same lines cut into 100 files in a directory (rotated logs)
  logpipe parse         text → ndjson on stdout (> /dev/null)
  … Istio JSON encoding the same requests as Istio's JSON access-log encoding (accessLogEncoding: JSON)
  … 2% truncated lines  every 50th line cut in half: each one a malformed reject with its reason
  duckdb CSV → Parquet  the stack's floor: DuckDB cuts lines at spaces/quotes into 22 text columns
                        and writes zstd Parquet, with no grammar check, typing, derived columns or rejects
  Parquet write alone   the write phase only (not a whole process): the rows `logpipe ingest` wrote,
                        read back into memory first, written again as its parts are (parts.py's
                        options, one file a part) by two processes: what any ingest with this writer
                        pays however fast its parse; with the start-up below (a Python importing
                        polars and pyarrow), the floor the targets' table sets each target beside
  exact Lark path       the grammar's Earley parser alone, per line (on BENCH_LARK_LINES lines): the
                        Lark-only path that gives logpipe's records (tests/test_differential.py)
  Lark LALR, 1 layout   the issue's Lark baseline: a hand-written LALR grammar of the 1.9+ layout
                        (quoted fields without quotes inside), a transformer in the parser building a
                        dict per line (on BENCH_LALR_LINES lines; a baseline only, not logpipe's grammar)
  python re, 1 proc     one hand-written compiled regex per line, groups into tuples (a baseline only:
  python re, 2 procs    logpipe itself has no hand-written regex; see logpipe/grammar.py)
  lnav / goaccess       when installed (BENCH_INSTALL=1 lets this script apt-get them), else skipped

Then start-up, median of BENCH_STARTUP_REPEAT runs: `logpipe --help`, `logpipe parse` of the file's
first 10 lines (-o ndjson), and, for scale, a Python that imports polars and pyarrow and exits.

Environment: BENCH_LINES (default 1000000), BENCH_REPEAT (3), BENCH_LARK_LINES (1000),
BENCH_LALR_LINES (100000), BENCH_STARTUP_REPEAT (9).
"""
from __future__ import annotations

import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
LINES = int(os.environ.get("BENCH_LINES", "1000000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
LARK_LINES = int(os.environ.get("BENCH_LARK_LINES", "1000"))
LALR_LINES = int(os.environ.get("BENCH_LALR_LINES", "100000"))
STARTUP_REPEAT = int(os.environ.get("BENCH_STARTUP_REPEAT", "9"))
STARTUP_TARGET = 0.5  # seconds (issue 4)


def data_file() -> Path:
    path = HERE / "data" / f"istio-{LINES}.log"
    if not path.exists():
        print(f"generating {LINES} lines → {path} …", file=sys.stderr)
        subprocess.run([sys.executable, str(HERE / "generate.py"), "--lines", str(LINES), "--seed", "1",
                        "--out", str(path)], check=True)
    return path


def json_file(path: Path) -> Path:
    """The access lines of ``path`` in Istio's JSON encoding (its 24 keys, numbers as numbers); its
    noise lines as they are. Written once, next to ``path``, by a process of its own (this one's
    size would count in the peak RSS of every command it starts: a child starts as its copy)."""
    out = path.with_name(path.name.replace("istio-", "istio-json-"))
    if not out.exists():
        print(f"writing {out} …", file=sys.stderr)
        subprocess.run([sys.executable, __file__, "--write-json", str(path), str(out)], check=True)
    return out


def write_json(path: Path, out: Path) -> None:
    import polars as pl

    from logpipe.parse import parse_lines
    from logpipe.schema import BASE_FIELDS

    tmp = out.with_name(out.name + ".tmp")
    with open(path, "rb") as f, open(tmp, "wb") as w:
        for batch in parse_lines(f, batch_size=200_000):
            rows = pl.from_arrow(batch.records).select(
                pl.col("start_time").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
                *(pl.col(f.name) for f in BASE_FIELDS[1:5]),
                pl.col("response_flags").list.join(",").replace("", "-"),
                *(pl.col(f.name) for f in BASE_FIELDS[6:]),
            )
            w.write(rows.write_ndjson().encode())
            w.writelines((raw + "\n").encode() for raw in batch.rejects.column("raw").to_pylist())
    tmp.rename(out)


def truncated_file(path: Path, every: int = 50) -> Path:
    """``path`` with every ``every``-th line cut in half (a malformed line), written once next to it."""
    out = path.with_name(path.name.replace("istio-", f"istio-cut{every}-"))
    if not out.exists():
        tmp = out.with_name(out.name + ".tmp")
        with open(path, "rb") as f, open(tmp, "wb") as w:
            for i, line in enumerate(f, 1):
                w.write(line[: len(line) // 2] + b"\n" if i % every == 0 else line)
        tmp.rename(out)
    return out


def run_once(cmd: list[str] | str, *, shell: bool = False, stdout=subprocess.DEVNULL) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one whole process tree: the command and every process it
    starts (logpipe's parse workers included), summed, sampled every 20 ms from /proc."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, shell=shell, stdout=stdout, stderr=subprocess.PIPE)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss_kib(proc.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    done.set()
    sampler.join()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{cmd!r} failed ({proc.returncode}): {err[-400:]}")
    # ru_maxrss is the command's own exact peak; the sampled tree sum adds its children's.
    return wall, max(usage.ru_maxrss, peak[0])


def _tree_rss_kib(root: int) -> int:
    """Resident memory (KiB) of ``root`` and all its descendants, now: found through each thread's
    ``/proc/PID/task/TID/children`` (~0.1 ms a sample), else by a scan of all of ``/proc``. The scan
    took ~1.8 ms every 20 ms, ~9% of a core: taken from logpipe's two lanes, not from the one-core
    baselines, which have the other core to spare."""
    page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
    total, frontier, seen = 0, [root], set()
    try:
        while frontier:
            pid = frontier.pop()
            if pid in seen:
                continue
            seen.add(pid)
            try:
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1]) * page_kib
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/children") as f:
                        frontier.extend(int(c) for c in f.read().split())
            except (ProcessLookupError, FileNotFoundError):
                continue  # (it ended meanwhile)
    except OSError:  # no children files (a kernel without CONFIG_PROC_CHILDREN)
        return _tree_rss_kib_scan(root)
    return total


def _tree_rss_kib_scan(root: int) -> int:
    parent: dict[int, int] = {}
    rss: dict[int, int] = {}
    page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/statm") as f:
                resident = int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        pid = int(entry)
        parent[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        rss[pid] = resident * page_kib
    tree, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        for child, ppid in parent.items():
            if ppid == p and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(rss.get(p, 0) for p in tree)


def median_run(name: str, make_cmd, repeat: int = REPEAT, **kw) -> dict:
    walls, rss = [], []
    for _ in range(repeat):
        cmd = make_cmd()
        w, r = run_once(cmd, **kw)
        walls.append(w)
        rss.append(r)
    return {"name": name, "wall": statistics.median(walls), "rss_kib": max(rss)}


BASELINE_RE = r'''
import re, sys
from multiprocessing import Pool
RX = re.compile(
    r'^\[(?P<start_time>[^\]]+)\] "(?P<method>\S+) (?P<path>.*?) (?P<protocol>\S+)" (?P<response_code>\d+) '
    r'(?P<response_flags>\S+) (?P<response_code_details>\S+) (?P<connection_termination_details>\S+) '
    r'"(?P<upstream_transport_failure_reason>.*?)" (?P<bytes_received>\d+) (?P<bytes_sent>\d+) (?P<duration>\d+) '
    r'(?P<upstream_service_time>\S+) "(?P<x_forwarded_for>.*?)" "(?P<user_agent>.*?)" "(?P<request_id>.*?)" '
    r'"(?P<authority>.*?)" "(?P<upstream_host>.*?)" (?P<upstream_cluster>\S+) (?P<upstream_local_address>\S+) '
    r'(?P<downstream_local_address>\S+) (?P<downstream_remote_address>\S+) (?P<requested_server_name>\S+) '
    r'(?P<route_name>\S+)$')
def work(lines):
    n = 0
    total = 0
    for line in lines:
        m = RX.match(line)
        if m:
            n += 1
            total += int(m.group("bytes_sent"))
    return n, total
def chunks(path, size=50000):
    buf = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            buf.append(line.rstrip("\n"))
            if len(buf) == size:
                yield buf
                buf = []
    if buf:
        yield buf
if __name__ == "__main__":
    path, procs = sys.argv[1], int(sys.argv[2])
    if procs == 1:
        print(sum(work(c)[0] for c in chunks(path)))
    else:
        with Pool(procs) as p:
            print(sum(n for n, _ in p.imap(work, chunks(path))))
'''

LARK_ONLY = r'''
import sys, itertools
from logpipe.parse import default_parser
path, n = sys.argv[1], int(sys.argv[2])
p = default_parser()
ok = 0
with open(path, encoding="utf-8", errors="backslashreplace") as f:
    for line in itertools.islice(f, n):
        try:
            p.access.parse(line.rstrip("\n"), "access_line")
            ok += 1
        except Exception:
            pass
print(ok)
'''

# The issue's own Lark figure (28.8 s per 100k lines): Lark's LALR parser with its contextual lexer and
# a transformer applied as it parses, over a grammar of the 1.9+ layout written for LALR. Envoy does
# not escape quotes in header values, so that grammar cannot read every line logpipe's does (which
# needs Earley: the exact Lark path above); other layouts and noise fail, and are counted apart.
LARK_LALR = r'''
import sys, itertools
from lark import Lark, Transformer
GRAMMAR = r"""
start: "[" TIME "]" _S QUOTED _S INT _S WORD _S WORD _S WORD _S QUOTED _S INT _S INT _S INT _S WORD _S QUOTED _S QUOTED _S QUOTED _S QUOTED _S QUOTED _S WORD _S WORD _S WORD _S WORD _S WORD _S WORD
_S: " "
TIME: /[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z/
QUOTED: /"[^"]*"/
INT: /[0-9]+/
WORD: /[^ "\n]+/
"""
NAMES = ["start_time", "request", "response_code", "response_flags", "response_code_details",
         "connection_termination_details", "upstream_transport_failure_reason", "bytes_received", "bytes_sent",
         "duration", "upstream_service_time", "x_forwarded_for", "user_agent", "request_id", "authority",
         "upstream_host", "upstream_cluster", "upstream_local_address", "downstream_local_address",
         "downstream_remote_address", "requested_server_name", "route_name"]
class Record(Transformer):
    def start(self, items):
        return dict(zip(NAMES, items))
    def INT(self, token):
        return int(token)
    def QUOTED(self, token):
        return token[1:-1]
parser = Lark(GRAMMAR, parser="lalr", lexer="contextual", transformer=Record())
path, n = sys.argv[1], int(sys.argv[2])
ok = total = 0
with open(path, encoding="utf-8", errors="backslashreplace") as f:
    for line in itertools.islice(f, n):
        try:
            record = parser.parse(line.rstrip("\n"))
        except Exception:
            continue
        ok += 1
        total += record["bytes_sent"]
print(ok)
'''

# The floor of this stack: DuckDB's C++ CSV reader cuts each line at spaces and quotes (22 text
# columns) and writes zstd Parquet on both cores. No check against the grammar, no typing, no derived
# columns, no rejects: what logpipe does on top of that is its own cost.
DUCKDB_FLOOR = r'''
import sys, duckdb
path, out = sys.argv[1], sys.argv[2]
cols = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(22))
con = duckdb.connect()
con.execute(f"""COPY (SELECT * FROM read_csv('{path}', delim=' ', quote='"', escape='', header=false,
    null_padding=true, ignore_errors=true, strict_mode=false, columns={{{cols}}}))
    TO '{out}' (FORMAT parquet, COMPRESSION zstd)""")
print(con.execute(f"select count(*) from '{out}'").fetchone()[0])
'''


# The write phase alone: the row files of a dataset, read into memory (untimed), written again as ingest
# writes its parts (parts._write_options, one file a part, its row groups) by os.cpu_count() processes.
# Prints the phase's wall seconds. (Types as read back: strings where ingest's lanes may hand string views.)
WRITE_FLOOR = r'''
import glob, os, sys, time
import pyarrow.parquet as pq
from logpipe import parts
data, out = sys.argv[1], sys.argv[2]
tables = [pq.read_table(f) for f in sorted(glob.glob(os.path.join(data, "date=*", "*.parquet")))]
procs = os.cpu_count() or 1
os.makedirs(out, exist_ok=True)
t = time.perf_counter()
children = []
for k in range(procs):
    pid = os.fork()
    if pid == 0:
        for i in range(k, len(tables), procs):
            pq.write_table(tables[i], os.path.join(out, f"{i}.parquet"), row_group_size=parts.ROW_GROUP_ROWS,
                           **parts._write_options(tables[i].schema))
        os._exit(0)
    children.append(pid)
failed = [pid for pid in children if os.waitpid(pid, 0)[1] != 0]
if failed:  # (a writer that died wrote less: its time would be too short)
    sys.exit(f"{len(failed)} writer process(es) failed")
print(time.perf_counter() - t, sum(x.num_rows for x in tables))
'''


def phase_run(name: str, cmd: list[str], repeat: int = REPEAT) -> dict:
    """A row timed by the command itself (it prints its phase's wall seconds first): median of ``repeat``."""
    walls = [float(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()[0])
             for _ in range(repeat)]
    return {"name": name, "wall": statistics.median(walls), "rss_kib": None}


def targets(results: list[dict], imports: float | None = None) -> None:
    """Issue 4's targets against this run's figures, beside the floor of any ingest with this writer:
    the write phase alone plus ``imports`` (the start-up row's Python that imports polars and pyarrow,
    which ingest's process loads before it writes a row). A target whose time is under that floor
    cannot be met with this writer and stack, however fast the parse."""
    by = {r["name"]: r["wall"] for r in results}
    ingest = by["logpipe ingest → Parquet"]
    write = by.get("Parquet write alone (rows in memory)")
    floor = None if write is None else write + (imports or 0.0)
    rows = [("≥ 500k lines/s", LINES / 500_000)]
    rows += [(f"≥ {k}x {name}", by[name] / k) for name, k in (("lnav", 3), ("python re, 1 process", 7)) if name in by]
    print(f"{'issue 4 target':36} {'needs ≤ s':>9} {'ingest s':>9}  {'met':5} {'floor s':>8}  "
          f"(floor: the write alone{' + start-up with polars, pyarrow' if imports else ''})")
    for label, need in rows:
        reach = "under the floor" if floor is not None and need < floor else ""
        print(f"{label:36} {need:9.2f} {ingest:9.2f}  {'yes' if ingest <= need else 'no':5} "
              f"{'' if floor is None else f'{floor:.2f}':>8}  {reach}")
    print()


def main() -> int:
    path = data_file()
    size_mb = path.stat().st_size / 1e6
    logpipe = str(BIN / "logpipe")
    tmp = Path(tempfile.mkdtemp(prefix="logpipe-bench-"))
    results = []
    print(f"input: {path.name}: {LINES:,} lines, {size_mb:.0f} MB; median of {REPEAT} runs; "
          f"{os.cpu_count()} cores", file=sys.stderr)
    from logpipe import native  # the bench's own venv: the library the runs below load

    print("split plans cut by: " + ("cut.c (native)" if native.library() is not None
                                    else f"polars ({native.why_not}: build cut.c with a C compiler)"), file=sys.stderr)

    results.append(median_run("cat > /dev/null (I/O floor)", lambda: ["cat", str(path)]))

    def ingest_cmd():
        out = tmp / "ds"
        shutil.rmtree(out, ignore_errors=True)
        return [logpipe, "ingest", str(path), "--data", str(out)]

    results.append(median_run("logpipe ingest → Parquet", ingest_cmd))
    write_script = tmp / "write_floor.py"
    write_script.write_text(WRITE_FLOOR)
    results.append(phase_run("Parquet write alone (rows in memory)",
                             [sys.executable, str(write_script), str(tmp / "ds"), str(tmp / "rewritten")]))
    shutil.rmtree(tmp / "rewritten", ignore_errors=True)

    # The same lines as 100 rotated files: several inputs parsed at once, committed in groups.
    # (Streamed: a large bench process would inflate the peak RSS its children report.)
    parts = tmp / "parts"
    parts.mkdir()
    step = -(-LINES // 100)
    with open(path, "rb") as f:
        for k in range(100):
            with open(parts / f"access.log.{k:03}", "wb") as out:
                out.writelines(itertools.islice(f, step))

    def ingest_dir_cmd():
        out = tmp / "ds"
        shutil.rmtree(out, ignore_errors=True)
        return [logpipe, "ingest", str(parts), "--data", str(out)]

    results.append(median_run("logpipe ingest, as 100 files", ingest_dir_cmd))
    results.append(median_run("logpipe parse -o ndjson", lambda: [logpipe, "parse", str(path), "-o", "ndjson",
                                                                   "--on-error", "skip"]))
    for name, variant in (("logpipe ingest, Istio JSON encoding", json_file(path)),
                          ("logpipe ingest, 2% truncated lines", truncated_file(path))):
        def variant_cmd(variant=variant):
            out = tmp / "ds"
            shutil.rmtree(out, ignore_errors=True)
            return [logpipe, "ingest", str(variant), "--data", str(out), "--max-reject-ratio", "1"]

        row = median_run(name, variant_cmd)
        with open(variant, "rb") as f:
            row["lines"] = sum(1 for _ in f)
        row["size_mb"] = variant.stat().st_size / 1e6
        results.append(row)
    floor_script = tmp / "duckdb_floor.py"
    floor_script.write_text(DUCKDB_FLOOR)
    results.append(median_run("duckdb CSV → Parquet (no checks)",
                              lambda: [sys.executable, str(floor_script), str(path), str(tmp / "floor.parquet")]))
    re_script = tmp / "baseline_re.py"
    re_script.write_text(BASELINE_RE)
    results.append(median_run("python re, 1 process", lambda: [sys.executable, str(re_script), str(path), "1"]))
    results.append(median_run("python re, 2 processes", lambda: [sys.executable, str(re_script), str(path), "2"]))

    # The Lark rows parse the first n lines only (a whole run would take minutes to hours).
    for name, script, n in (("exact Lark path", LARK_ONLY, LARK_LINES), ("Lark LALR, 1 layout", LARK_LALR, LALR_LINES)):
        script_path = tmp / f"lark_{len(results)}.py"
        script_path.write_text(script)
        row = median_run(f"{name} ({n:,} lines)",
                         lambda script_path=script_path, n=n: [sys.executable, str(script_path), str(path), str(n)])
        row["lines"] = n
        results.append(row)

    for tool, make in (("lnav", _lnav_cmd), ("goaccess", _goaccess_cmd)):
        if shutil.which(tool) is None and os.environ.get("BENCH_INSTALL") == "1":
            subprocess.run(["apt-get", "install", "-y", "-qq", tool], stdout=subprocess.DEVNULL)
        if shutil.which(tool) is None:
            print(f"{tool}: not installed, skipped (BENCH_INSTALL=1 make bench installs it with apt-get)",
                  file=sys.stderr)
            continue
        try:
            check = subprocess.run(make(path, tmp), shell=True, capture_output=True, text=True)
            if check.returncode != 0 or "error" in (check.stdout + check.stderr).lower()[:2000]:
                raise RuntimeError((check.stdout + check.stderr).strip()[-300:])
            results.append(median_run(tool, lambda: make(path, tmp), shell=True))
        except RuntimeError as e:
            print(f"{tool}: failed, skipped: {e}", file=sys.stderr)

    base = next(r for r in results if r["name"].startswith("logpipe ingest"))
    base_rate = LINES / base["wall"]
    print()
    print(f"{'approach':36} {'wall s':>9} {'lines/s':>11} {'MB/s':>7} {'peak RSS':>10} {'logpipe ingest is':>18}")
    for r in results:
        n = r.get("lines", LINES)
        rate = n / r["wall"]
        mbs = r.get("size_mb", size_mb * n / LINES) / r["wall"]
        ratio = base_rate / rate
        rss = "-" if r["rss_kib"] is None else f"{r['rss_kib'] / 1024:.0f}"
        print(f"{r['name']:36} {r['wall']:9.2f} {rate:11,.0f} {mbs:7.1f} {rss:>8} MiB "
              f"{ratio:15.2f}x")
    print()
    started = startup(logpipe, path, tmp)
    print()
    targets(results, started.get("python: import polars, pyarrow (scale)"))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def startup(logpipe: str, path: Path, tmp: Path) -> dict[str, float]:
    """Start-up of a command that has little to do, whole process, against STARTUP_TARGET; returns
    each row's median."""
    ten = tmp / "ten.log"
    with open(path, "rb") as f:
        ten.write_bytes(b"".join(itertools.islice(f, 10)))
    rows = [("logpipe --help", [logpipe, "--help"]),
            ("logpipe parse, 10 lines -o ndjson", [logpipe, "parse", str(ten), "-o", "ndjson"]),
            ("python: import polars, pyarrow (scale)",
             [sys.executable, "-c", "import os, polars, pyarrow; os._exit(0)"])]
    print(f"{'start-up, median of ' + str(STARTUP_REPEAT):40} {'wall s':>7} {'min':>6} {'max':>6}  target")
    medians = {}
    for name, cmd in rows:
        walls = [run_once(cmd)[0] for _ in range(STARTUP_REPEAT)]
        med = statistics.median(walls)
        verdict = "" if name.startswith("python") else \
            f"< {STARTUP_TARGET} s: {'met' if med < STARTUP_TARGET else 'NOT met'}"
        print(f"{name:40} {med:7.2f} {min(walls):6.2f} {max(walls):6.2f}  {verdict}")
        medians[name] = med
    return medians


def _lnav_cmd(path: Path, tmp: Path) -> str:
    fmt = tmp / "lnav" / "formats" / "installed" / "istio_log.json"
    fmt.parent.mkdir(parents=True, exist_ok=True)
    (tmp / "home").mkdir(exist_ok=True)  # lnav silently loads no format without a HOME
    fmt.write_text(
        '{"$schema": "https://lnav.org/schemas/format-v1.schema.json", "istio_log": {"title": "Istio",'
        ' "regex": {"std": {"pattern": "^\\\\[(?<timestamp>[^\\\\]]+)\\\\] \\"(?<method>\\\\S+) (?<path>.*?) '
        '(?<protocol>\\\\S+)\\" (?<response_code>\\\\d+) (?<response_flags>\\\\S+) (?<details>\\\\S+) (?<ctd>\\\\S+) '
        '\\"(?<utfr>.*?)\\" (?<bytes_received>\\\\d+) (?<bytes_sent>\\\\d+) (?<duration>\\\\d+) (?<ust>\\\\S+) '
        '\\"(?<xff>.*?)\\" \\"(?<ua>.*?)\\" \\"(?<request_id>.*?)\\" \\"(?<authority>.*?)\\" \\"(?<upstream_host>.*?)\\" '
        '(?<cluster>\\\\S+) (?<ula>\\\\S+) (?<dla>\\\\S+) (?<dra>\\\\S+) (?<sni>\\\\S+) (?<route>\\\\S+)$"}},'
        ' "timestamp-format": ["%Y-%m-%dT%H:%M:%S.%LZ"], "value": {"bytes_sent": {"kind": "integer"},'
        ' "response_code": {"kind": "integer"}}, "sample": [{"line": "[2024-07-18T16:13:58.198Z] \\"GET /get HTTP/1.1\\" 200 - via_upstream - \\"-\\" 0 252 260 259 \\"-\\" \\"curl/8.7.1\\" \\"8d80cec6\\" \\"httpbin.org\\" \\"3.234.9.11:80\\" inbound-vip|80|http|httpbin.org 10.244.0.24:41160 240.240.0.2:80 10.244.0.18:41548 - default"}]}}'
    )
    return (f"HOME={tmp}/home XDG_CONFIG_HOME={tmp} LNAV_HOME={tmp}/lnav lnav -n -N "
            f"-c ';SELECT count(*), sum(bytes_sent) FROM istio_log' {path}")


def _goaccess_cmd(path: Path, tmp: Path) -> str:
    # GoAccess needs a bare client IP (%h): the downstream remote address is split at its ':'.
    fmt = ('[%dT%t.%^] "%m %U %H" %s %^ %^ %^ "%^" %^ %b %T %^ "%^" "%u" "%^" "%v" "%^" %^ %^ %^ %h:%^ %^ %^')
    return (f"goaccess {path} --log-format='{fmt}' --date-format='%Y-%m-%d' --time-format='%H:%M:%S' "
            f"-o {tmp}/goaccess.json --no-progress")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write-json"]:
        write_json(Path(sys.argv[2]), Path(sys.argv[3]))
        sys.exit(0)
    sys.exit(main())
