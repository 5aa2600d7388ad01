"""Arrow's arrays handed to polars, and cast, without the slow ways pyarrow and polars offer.

``series``: ``pl.from_arrow`` of a pyarrow array goes through ``coerce_arrow`` and wraps the new
series in a frame and back: ~50 µs a call, where the cut hands over a few dozen arrays a batch.
Through the Arrow C data interface (its PyCapsules) polars takes the same buffers, zero-copy, in
~10 µs. A pyarrow array is wrapped because ``pl.Series`` sends pyarrow objects to ``from_arrow``'s
path first. ``cast`` and ``compute``: Arrow's functions without importing ``pyarrow.compute``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    import polars as pl


class _Capsules:
    """Only the Arrow C interface of a pyarrow array or chunked array: its ``__arrow_c_array__`` or
    ``__arrow_c_stream__``, whichever it has (polars asks for them by name)."""

    __slots__ = ("of",)

    def __init__(self, of):
        self.of = of

    def __getattr__(self, name: str):
        if name in ("__arrow_c_array__", "__arrow_c_stream__"):
            return getattr(self.of, name)
        raise AttributeError(name)


def series(array: pa.Array | pa.ChunkedArray, name: str = "") -> "pl.Series":
    """``array`` as a polars Series named ``name``, its buffers shared (``pl.from_arrow``'s dtypes)."""
    import polars as pl  # (here: ``cast`` serves modules that do without polars, jsonout.py)

    got = pl.Series(_Capsules(array))
    return got.alias(name) if got.name != name else got


def cast(array: pa.Array | pa.ChunkedArray, target: pa.DataType):
    """``array.cast(target)``, the same call (``pyarrow.compute.cast``: "cast" with safe options),
    without importing ``pyarrow.compute``'s Python module, which builds a wrapper for each of Arrow's
    ~300 functions (~50 ms, once a process: a sixth of `logpipe parse`'s start-up on a small file).
    Its compiled part, ``pyarrow._compute``, takes ~5 ms."""
    try:
        from pyarrow._compute import CastOptions, call_function
    except ImportError:  # (a pyarrow that moved them)
        return array.cast(target)
    return call_function("cast", [array], CastOptions.safe(target))


def compute(name: str, *args):
    """Arrow's compute function ``name`` of ``args`` with its default options (``pc.min_max``,
    ``pc.unique``…), without importing ``pyarrow.compute`` (``cast``): ingest's every batch asks for
    its days and time bounds, and that import was ~20 ms of each of its processes' start."""
    try:
        from pyarrow._compute import call_function
    except ImportError:  # (a pyarrow that moved it)
        import pyarrow.compute as pc

        return pc.call_function(name, list(args))
    return call_function(name, list(args))
