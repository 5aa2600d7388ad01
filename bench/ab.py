"""`make bench-ab REF=<commit>`: this work tree's `logpipe ingest` against commit REF's, in pairs.

`make bench` times each approach a few times in a row; on a shared two-core machine the same code
varies by ±15% from one minute to the next, so a change under ~10% does not show there. This script
runs both versions on the same input in alternating pairs (A B, then B A, …), so that both see the
machine as it is that minute, and prints each pair, the medians, the median of the paired ratios, and
in how many pairs this tree was faster. Whole process, as `make bench`: wall and CPU (user + system)
seconds of the process tree.

REF is checked out into a temporary git worktree (removed after), and this tree's package,
grammars and queries are copied next to it, so that both run from the same place (each side from its
own directory, and checked to import its own package first); each side has
its own LOGPIPE_CACHE, so neither removes the other's build of cut.c. One untimed run of each side first
builds its cut.c and token DFAs.

Environment: AB_PAIRS (default 8); AB_INPUT (a file or directory to ingest; default
bench/data/istio-<BENCH_LINES>.log, 1,000,000 lines, generated as `make bench` does when missing);
AB_ARGS (more arguments for `logpipe ingest`, e.g. "--max-reject-ratio 1" for sample_logs/).
"""
from __future__ import annotations

import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PAIRS = int(os.environ.get("AB_PAIRS", "8"))


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: make bench-ab REF=<commit>   (or: python bench/ab.py <commit>)", file=sys.stderr)
        return 2
    ref = argv[0]
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                         capture_output=True, text=True).stdout.strip()
    if not sha:
        print(f"bench-ab: {ref!r} is not a commit of this repository", file=sys.stderr)
        return 2
    if os.environ.get("AB_INPUT"):
        data = Path(os.environ["AB_INPUT"]).resolve()
        if not data.exists():
            print(f"bench-ab: AB_INPUT={os.environ['AB_INPUT']!r} does not exist", file=sys.stderr)
            return 2
    else:
        sys.path.insert(0, str(HERE))
        from run import data_file  # (bench/run.py: the same generated input as make bench)

        data = data_file()
    work = Path(tempfile.mkdtemp(prefix="logpipe-ab-"))
    base = work / "ref"
    try:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(base), sha], check=True)
        this = work / "this"  # a copy of this tree's package and files, uncommitted changes and all:
        for part in ("logpipe", "grammars", "queries"):  # both sides then run from the same place
            shutil.copytree(ROOT / part, this / part, ignore=shutil.ignore_patterns("__pycache__"))
        sides = {"this tree": this, f"{ref} ({sha[:8]})": base}
        for tree in sides.values():  # bytecode, as an installed logpipe has it (make compiled)
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "logpipe")], check=True,
                           stdout=subprocess.DEVNULL)
        for name, tree in sides.items():
            _check_imports(name, tree)
            _run(name, tree, data, work / "cache" / tree.name, work / "out")  # builds cut.c and the DFAs
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
        print(f"{data.name}, {PAIRS} alternating pairs: wall s / CPU s")
        for k in range(PAIRS):
            order = list(sides) if k % 2 == 0 else list(reversed(sides))
            for name in order:
                times[name].append(_run(name, sides[name], data, work / "cache" / sides[name].name, work / "out"))
            print(f"  pair {k + 1}: " + "   ".join(f"{n}: {times[n][-1][0]:.2f} / {times[n][-1][1]:.2f}" for n in sides),
                  flush=True)
        (a, at), (b, bt) = times.items()
        for what, i in (("wall", 0), ("CPU", 1)):
            ratios = [x[i] / y[i] for x, y in zip(at, bt)]
            faster = sum(r < 1 for r in ratios)
            print(f"{what}: median {statistics.median(x[i] for x in at):.2f} s ({a}) vs "
                  f"{statistics.median(y[i] for y in bt):.2f} s ({b}); paired ratio median "
                  f"{statistics.median(ratios):.3f}; {a} faster in {faster} of {len(ratios)} pairs")
    except _Failed as e:
        print(f"bench-ab: {e}", file=sys.stderr)
        return 1
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


class _Failed(Exception):
    pass


def _side(tree: Path, cache: Path | None = None) -> dict:
    """How a side's Python is run: from ``tree`` (``python -m`` puts its working directory first on
    sys.path, before PYTHONPATH: run from this repository, both sides would import its logpipe)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if cache is not None:
        env["LOGPIPE_CACHE"] = str(cache)
    return {"env": env, "cwd": str(tree)}


def _check_imports(name: str, tree: Path) -> None:
    """That side ``name`` runs the logpipe package of ``tree``, not another one."""
    found = subprocess.run([sys.executable, "-c", "import logpipe; print(logpipe.__file__)"], capture_output=True,
                           text=True, **_side(tree)).stdout.strip()
    if not found or Path(found).resolve().parent != (tree / "logpipe").resolve():
        raise _Failed(f"{name}: runs the logpipe package at {found or '(none)'}, not {tree / 'logpipe'}")


def _run(name: str, tree: Path, data: Path, cache: Path, out: Path) -> tuple[float, float]:
    """One `logpipe ingest` of ``data`` with the logpipe package of ``tree`` (side ``name``): (wall,
    CPU) seconds."""
    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "logpipe", "ingest", str(data), "--data", str(out),
                           *shlex.split(os.environ.get("AB_ARGS", ""))],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **_side(tree, cache))
    wall = time.perf_counter() - start
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.startswith("logpipe:")] or done.stderr.splitlines()
        raise _Failed(f"{name}: logpipe ingest of {data} exited {done.returncode}: {said[-1] if said else ''} "
                      f"(AB_ARGS passes it options, e.g. AB_ARGS='--max-reject-ratio 1')")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
