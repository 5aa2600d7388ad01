"""How ingest's processes get memory: allocator settings, measured with `make bench` (1M lines).

Three allocators serve a process: glibc malloc (Python, and Arrow once it is told to use it), polars'
jemalloc, and Arrow's own pool (mimalloc). Their defaults suit a long-lived server, not a process that
allocates and frees the same ~100 MiB batch after batch:

* Arrow's pool and the 10 s purge of freed pages by polars' jemalloc cost a worker page faults (~1/3
  of its system time): glibc malloc for Arrow and a 30 s purge took ingest ~5% faster and the
  process tree ~10% smaller.
* glibc gives each allocation over 128 KiB-32 MiB (a task's bytes, Arrow's column buffers) pages of
  its own and hands them back when freed, so every batch faulted its memory in afresh (~300k page
  faults at 1M lines). Served from the heap and kept there, they are reused: ~0.3 s less system
  time at 1M lines, the same peak (the heap holds what one batch needs).

Environment variables are read when a process starts (glibc, jemalloc) or imports pyarrow (Arrow), so
``setup`` sets them (the user's own win) before worker processes start and before this process
imports polars and pyarrow; glibc's two thresholds are also set in this process with ``mallopt``.
"""
from __future__ import annotations

import os

ENV = {
    "ARROW_DEFAULT_MEMORY_POOL": "system",
    "_RJEM_MALLOC_CONF": "dirty_decay_ms:30000,muzzy_decay_ms:30000",
    "MALLOC_MMAP_THRESHOLD_": str(64 << 20),
    "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
}
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
# Python's cyclic collector in ingest's and parse's processes (cli._batch_collector, lanes._freeze): a
# generation-0 collection every 100k allocations, not 700. Start-up makes ~100k objects and few
# cycles (modules, grammars): the default ran ~130 collections over them (~30 ms before the first
# line is parsed), and a batch makes few objects. Ingest of the bench's 1M lines: wall 0.975, CPU
# 0.972 (10 pairs).
GC_THRESHOLDS = (100_000, 50, 100)


def setup(this_process: bool = False) -> None:
    """Set ENV for processes started from now on; with ``this_process``, also for this one (call it
    before polars and pyarrow are imported)."""
    for name, value in ENV.items():
        os.environ.setdefault(name, value)
    if this_process:
        _mallopt()


def _mallopt() -> bool:
    """Set glibc's thresholds in this process; whether it could (glibc)."""
    import ctypes

    try:
        # the symbols already in this process (libc's among them): ctypes.util.find_library("c") would
        # run a subprocess (~25 ms before the workers could start)
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt  # glibc only (musl has none): elsewhere the defaults stay
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, int(os.environ["MALLOC_MMAP_THRESHOLD_"]))) and \
        bool(mallopt(M_TRIM_THRESHOLD, int(os.environ["MALLOC_TRIM_THRESHOLD_"])))
