"""Shared fixtures and helpers: the sample logs, parsing helpers, golden files (--update-golden)."""
from __future__ import annotations

import ast
import functools
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_logs"
GOLDEN = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden", action="store_true", default=False,
        help="Rewrite tests/golden/ from the current parser output (review the diff before committing).",
    )


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")


def sample_files() -> list[Path]:
    """Every sample log, subfolders included, but not the expectation files next to them."""
    return sorted(
        p for p in SAMPLES.rglob("*")
        if p.is_file() and not p.name.endswith((".expect.tsv", ".py")) and not p.name.startswith(".")
    )


@functools.lru_cache(maxsize=1)
def _bench_generate():
    spec = importlib.util.spec_from_file_location("_logpipe_bench_generate", ROOT / "bench" / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@functools.lru_cache(maxsize=64)
def _generated(n: int, seed: int) -> tuple[str, ...]:
    return tuple(_bench_generate().generate_lines(n, seed))


def generated_lines(n: int, seed: int) -> list[str]:
    """``bench/generate.py``'s first ``n`` lines of ``seed`` (deterministic: the bench's mix of
    layouts, TCP, IPv6, noise), made once per test process: its set-up (~0.4 s: two pools of 65,536
    request-id halves) costs more than a few thousand lines, and several modules ask for the same."""
    return list(_generated(n, seed))


def sample_id(path: Path) -> str:
    return path.relative_to(SAMPLES).as_posix()


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def parser():
    """The default (fast path) parser, built once."""
    from logpipe.parse import default_parser

    return default_parser()


def read_lines(path: Path) -> list[str]:
    """A sample's lines as logpipe's sources read them (invalid UTF-8 kept as \\xNN)."""
    data = path.read_bytes()
    lines = data.decode("utf-8", "backslashreplace").split("\n")
    return lines[:-1] if data.endswith(b"\n") else lines


def parse_text(lines, source: str = "-", parser=None):
    """Parse lines in one batch; returns (records as dicts, rejects as dicts, the ParsedBatch)."""
    from logpipe.parse import default_parser

    batch = (parser or default_parser()).parse_batch(list(lines), source)
    return batch.records.to_pylist(), batch.rejects.to_pylist(), batch


def jsonable(record: dict) -> dict:
    """A record as ndjson shows it: timestamps as ISO-8601 strings."""
    from logpipe.jsonout import to_jsonable

    return {k: to_jsonable(v) for k, v in record.items()}


def build_line(layout: str, values: dict[str, str]) -> str:
    """An access line of ``layout`` built from column texts, following the grammar's own
    sequence of items (logpipe.steps.layout_steps): separators come from the grammar."""
    from logpipe import grammar, steps

    out = []
    for step in steps.layout_steps(grammar.load_builtin("access"), layout, strict=False):
        if step.field:
            out.append(values[step.field])
        elif " or " not in step.expects:  # an optional literal (the cluster's ";") is left out
            out.append(ast.literal_eval(step.expects))
    return "".join(out)


def layout_fields(layout: str) -> list[str]:
    from logpipe import grammar, steps

    return [s.field for s in steps.layout_steps(grammar.load_builtin("access"), layout) if s.field]


def dump_ndjson(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in rows)


def split_part(line: str) -> bool:
    """Whether ``line`` is a part of a line a container runtime split (CRI tag P, docker's entry
    without its newline): its row reads the joined line, not this one alone."""
    from logpipe.parse import default_parser
    from logpipe.runtimes import docker_tag

    return (default_parser().collectors.cri.tag(line) or docker_tag(line[-100:]) or ("", False))[1]


def stream_in_two_reads(data_dir, text: bytes, first: int, *args: str, pause: float = 0.3,
                        until=None, drained: bool = False) -> str:
    """``logpipe stream --data DATA_DIR ARGS`` fed ``text`` on its stdin in two writes, its first ``first``
    bytes alone (a read of their own, ``pause`` seconds before the rest, or once ``until()`` is true:
    a busy machine can take longer than any pause to start the stream; with ``drained``, once the
    stream has read them all, its stdin's pipe empty: the condition a pause stands for); checks it
    exits 0 and returns its stderr."""
    import array
    import fcntl
    import subprocess
    import sys
    import termios
    import time

    def unread() -> int:  # (bytes in the pipe: FIONREAD answers on its writing end too)
        n = array.array("i", [0])
        fcntl.ioctl(proc.stdin.fileno(), termios.FIONREAD, n)
        return n[0]

    proc = subprocess.Popen([sys.executable, "-m", "logpipe", "stream", "--data", str(data_dir), *args],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(text[:first])
    proc.stdin.flush()
    time.sleep(pause)
    deadline = time.monotonic() + 60
    while until is not None and not until() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    while drained and unread() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.stdin.write(text[first:])
    proc.stdin.close()
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 0, err
    return err


def parse_file(path) -> tuple[list[dict], list[dict]]:
    """Records and rejects of a file as ``logpipe parse`` reads it (by content: an archive, a
    document of entries), in one process."""
    from logpipe.pipeline import parse_input
    from logpipe.sources import Input

    records, rejects = [], []
    for batch, _ in parse_input(Input(str(path)), workers=1):
        records += batch.records.to_pylist()
        rejects += batch.rejects.to_pylist()
    return records, rejects


class Run:
    """A command's exit status and output, as subprocess.run's result names them."""

    def __init__(self, returncode: int, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_logpipe(*args, env: dict | None = None, input=None, text: bool = True, cwd=None) -> Run:
    """``logpipe ARGS`` in this process: the command line's own error mapping and exit status
    (``exits.run``, as ``logpipe.cli.main``), its stdin ``input`` and its stdout and stderr taken by
    click's CliRunner, in ``cwd``, ``env`` set for the run (``TMPDIR`` too: the tempfile module's cached
    directory), without a process's start (~0.5 s of CPU: polars, pyarrow, the grammars). What the
    command registers at exit (logpipe/archives.py: removing what it unpacked) runs at its end, as
    the process's exit would run it. For what a command reads and writes; a test of the process
    itself (signals, a pipe, fd 0) starts one."""
    import sys
    import tempfile
    import types

    from click.testing import CliRunner

    from logpipe import archives, exits, sources
    from logpipe.cli import cli

    at_exit = []
    with CliRunner().isolation(input=input, env=env) as (out, err, _), pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["logpipe", *map(str, args)])
        if cwd is not None:
            mp.chdir(cwd)
        if env is not None and "TMPDIR" in env:
            mp.setattr(tempfile, "tempdir", env["TMPDIR"])
        mp.setattr(archives, "_DIRS", [])  # (this run's own, as a new process's)
        for name in ("_PIPES", "_STREAMS", "_WAITING"):  # the pipes it opens and their leftovers: its own too
            mp.setattr(sources, name, {})
        mp.setattr(archives, "atexit", types.SimpleNamespace(register=lambda f, *a: at_exit.append((f, a))))
        try:
            code = exits.run(cli)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        for f, a in reversed(at_exit):
            f(*a)
        for base, reader in sources._WAITING.values():  # closed, as a process's exit would close them
            reader.close()
            base.close()
        sys.stdout.flush()
        sys.stderr.flush()
        got = out.getvalue(), err.getvalue()
    return Run(code, *(x.decode("utf-8", "replace") if text else x for x in got))


def logpipe_json(*args):
    """``logpipe ARGS -o json`` (run_logpipe) that exits 0: its answer read."""
    import json

    got = run_logpipe(*args, "-o", "json")
    assert got.returncode == 0, got.stderr
    return json.loads(got.stdout)


def ingest_clean(tmp: Path, logs: dict[str, list[str]]) -> Path:
    """``logs`` (a file name -> its lines) written in ``tmp`` and ingested into ``tmp/data`` by one
    ``logpipe ingest``, every line a row (no reject): the dataset's directory."""
    for name, lines in logs.items():
        (tmp / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    got = run_logpipe("ingest", *(tmp / name for name in logs), "--data", tmp / "data")
    assert got.returncode == 0 and "rejected 0" in got.stderr, got.stderr
    return tmp / "data"


@functools.lru_cache(maxsize=1)
def _shared_rules_class():
    from logpipe.alerts import AlertRules

    class SharedRules(AlertRules):
        """``AlertRules`` for the tests that judge rows in this process, whose DuckDB connection (its
        views, macros and prepared statements: ~0.25 s of CPU, most of such a test's) is made once per
        records' schema (``_SHARED_RULES``), not once per test. It keeps nothing of a test's: each
        check swaps in its rows and empties the table after (``db.replace_records``), and the rules'
        state is their own, in Python. (test_stream's test_alert_rules_keep_one_connection_per_schema
        checks AlertRules's own connection; a stream makes its own.)"""

        def check(self, records, runs=()):
            if self.settings is None and records.num_rows and self._con_schema != records.schema:
                shared = _SHARED_RULES.get(records.schema)
                if shared is not None:
                    self.close()
                    self._con, self._con_schema, self._queries = shared[0], records.schema, shared[1]
                    # (this test's ztunnel clients, not an earlier one's: the view an earlier one made reads them)
                    self._con.register("logpipe_seen", self.seen)
                    self._named = bool(self._con.execute(
                        "SELECT 1 FROM duckdb_views() WHERE view_name = 'client_workloads' AND temporary").fetchall())
            got = super().check(records, runs)
            if self.settings is None and self._con is not None:
                _SHARED_RULES.setdefault(self._con_schema, (self._con, self._queries))
            return got

        def close(self) -> None:  # (the shared connection stays open for the next test)
            if self._con is not None and _SHARED_RULES.get(self._con_schema, (None,))[0] is not self._con:
                self._con.close()
            self._con = self._con_schema = None
            self._queries = {}

    return SharedRules


_SHARED_RULES: dict = {}  # records' schema -> (a DuckDB connection of SharedRules, its prepared statements)


def shared_rules(*args, **kwargs):
    """``AlertRules(*args, **kwargs)`` sharing its DuckDB connection with the module's other checks
    (``_shared_rules_class``); a module that uses it closes them at its end (``close_shared_rules``)."""
    return _shared_rules_class()(*args, **kwargs)


def close_shared_rules() -> None:
    for con, _ in _SHARED_RULES.values():
        con.close()
    _SHARED_RULES.clear()


@functools.lru_cache(maxsize=1)
def _kept_pool_class():
    from logpipe import lanes

    class KeptPool(lanes.WorkerPool):
        """A pool booted once for a module (a worker process importing polars and pyarrow: ~0.5-1 s
        of CPU a boot), for the tests of what workers read and write, not of how a pool starts or
        stops: its ``close`` (an ingest's, at its end or on an error) waits for every task, as a
        pool's does, and keeps the worker processes for the next test; ``stop`` ends them."""

        def close(self) -> None:
            from concurrent.futures import ThreadPoolExecutor

            lanes = self._executor
            if lanes is not None:
                lanes._threads.shutdown(wait=True, cancel_futures=True)
                lanes._roles = iter(range(lanes.lanes))
                lanes._threads = ThreadPoolExecutor(lanes.lanes, thread_name_prefix="logpipe-lane",
                                                    initializer=lanes._role)

        def stop(self) -> None:
            super().close()

    return KeptPool


def kept_pool(workers: int = 2):
    """A started ``KeptPool`` of ``workers`` lanes (``_kept_pool_class``), the default parser's: a
    module-scoped fixture's, which calls its ``stop`` at the module's end."""
    from logpipe.parse import default_parser

    return _kept_pool_class()(default_parser(), workers).start()


def use_kept_pool(pool, monkeypatch) -> None:
    """The pool of ``pool.workers`` lanes that parse_input starts for an input it is given no pool
    for, those an ingest starts (its own, and ``ingest._spare_pool`` for its small inputs), and the
    one a command boots first thing (``lanes.boot_pool``), is ``pool``: booted once for the module,
    not at each run."""
    from logpipe import ingest, lanes, pipeline

    real = _kept_pool_class().__mro__[1]  # (lanes.WorkerPool, whatever a test patched it to)

    def make(parser, workers):
        return pool.use(parser) if workers == pool.workers else real(parser, workers)

    for module in (pipeline, ingest, lanes):
        monkeypatch.setattr(module, "WorkerPool", make)
