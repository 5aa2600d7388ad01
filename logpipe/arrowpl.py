"""Arrow arrays into polars through the Arrow C data interface (its PyCapsules).

``pl.from_arrow`` of a pyarrow array goes through ``coerce_arrow`` and wraps the new series in a
frame and back: ~50 µs a call, where the cut hands over a few dozen arrays a batch. Through the C
interface polars takes the same buffers, zero-copy, in ~10 µs. A pyarrow array is wrapped because
``pl.Series`` sends pyarrow objects to ``from_arrow``'s path first."""
from __future__ import annotations

import polars as pl
import pyarrow as pa


class _Array:
    __slots__ = ("array",)

    def __init__(self, array: pa.Array):
        self.array = array

    def __arrow_c_array__(self, requested_schema=None):
        return self.array.__arrow_c_array__(requested_schema)


class _Stream:
    __slots__ = ("array",)

    def __init__(self, array: pa.ChunkedArray):
        self.array = array

    def __arrow_c_stream__(self, requested_schema=None):
        return self.array.__arrow_c_stream__(requested_schema)


def series(array: pa.Array | pa.ChunkedArray, name: str = "") -> pl.Series:
    """``array`` as a polars Series named ``name``, its buffers shared (``pl.from_arrow``'s dtypes)."""
    got = pl.Series(_Stream(array) if isinstance(array, pa.ChunkedArray) else _Array(array))
    return got.alias(name) if got.name != name else got
