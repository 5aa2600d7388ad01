"""`make bench-ab` (bench/ab.py) runs: this tree against a commit, in pairs, and says so in one line
when it cannot."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, SAMPLES

pytestmark = pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                                reason="needs git and a checkout")


def _ab(*args, **env):
    return subprocess.run([sys.executable, str(ROOT / "bench" / "ab.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **env}, timeout=600)


def test_a_pair_against_head():
    # (one pair of ingests of 14 lines, without cut.c: each side's first run would build its own,
    # ~1 s of a compiler each; tests/test_native.py builds and checks it)
    got = _ab("HEAD", AB_PAIRS="1", AB_INPUT=str(SAMPLES / "istio-1.8.log"), LOGPIPE_NATIVE="0")
    assert got.returncode == 0, got.stderr
    assert "pair 1: this tree:" in got.stdout and "paired ratio median" in got.stdout
    listed = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True).stdout
    assert "logpipe-ab-" not in listed  # its worktree is removed


@pytest.mark.parametrize("args, env, said", [
    (["no-such-ref"], {}, "bench-ab: 'no-such-ref' is not a commit of this repository"),
    ([], {}, "usage: make bench-ab REF=<commit>"),
    (["HEAD"], {"AB_INPUT": "/no/such/input"}, "bench-ab: AB_INPUT='/no/such/input' does not exist"),
])
def test_mistakes_are_one_line(args, env, said):
    got = _ab(*args, **env)
    assert got.returncode == 2 and got.stderr.startswith(said) and len(got.stderr.strip().splitlines()) == 1


def test_each_side_runs_its_own_package(tmp_path, monkeypatch):
    """Each side imports the logpipe of its own tree, though `make bench-ab` runs in this repository
    (``python -m`` puts the working directory first on sys.path, before PYTHONPATH: both sides once
    ran this repository's package); a side that would not is refused in one line."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_logpipe_bench_ab", ROOT / "bench" / "ab.py")
    ab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ab)
    monkeypatch.chdir(ROOT)
    tree = tmp_path / "side"
    shutil.copytree(ROOT / "logpipe", tree / "logpipe", ignore=shutil.ignore_patterns("__pycache__"))
    ab._check_imports("copy", tree)  # its own copy, not ROOT's
    (tmp_path / "empty").mkdir()
    with pytest.raises(ab._Failed, match=r"^empty: runs the logpipe package at .*, not .*empty/logpipe$"):
        ab._check_imports("empty", tmp_path / "empty")  # no package there: another one would run
