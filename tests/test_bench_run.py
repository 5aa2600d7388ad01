"""`make bench` (bench/run.py): its peak-RSS sampler counts a process and every process under it."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT


def _bench_run():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tree_rss_counts_the_children_of_every_thread():
    """A grandchild started from a thread other than its parent's main one holds 64 MiB: the
    children files of every thread find it, as the scan of all of /proc does."""
    run = _bench_run()
    code = ("import subprocess, sys, threading, time\n"
            "kids = []\n"
            "t = threading.Thread(target=lambda: kids.append(subprocess.Popen([sys.executable, '-c', "
            "'import time; x = bytearray(64 << 20); x[::4096] = b\"1\" * len(x[::4096]); time.sleep(30)'])))\n"
            "t.start(); t.join(); print('ok', flush=True); time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ok"
        time.sleep(1.0)  # (the grandchild touches its 64 MiB)
        fast, scan = run._tree_rss_kib(proc.pid), run._tree_rss_kib_scan(proc.pid)
        assert fast >= 64 << 10
        assert abs(fast - scan) < 4 << 10
    finally:
        for task in Path(f"/proc/{proc.pid}/task").glob("*"):
            for child in (task / "children").read_text().split():
                os.kill(int(child), signal.SIGKILL)
        proc.kill()
        proc.wait()
