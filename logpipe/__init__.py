"""logpipe: Envoy and Istio access logs into typed Arrow/Parquet, queried with DuckDB.

Library entry points (heavy libraries are imported on first use):

    from logpipe import parse_lines
    for batch in parse_lines(open("access.log"), source="access.log"):
        batch.records   # pyarrow.RecordBatch, logpipe.schema.RECORD_SCHEMA
        batch.rejects   # pyarrow.RecordBatch, logpipe.schema.REJECT_SCHEMA
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["parse_lines", "connect", "__version__"]


def __getattr__(name):
    if name == "parse_lines":
        from .parse import parse_lines

        return parse_lines
    if name == "connect":
        from .db import connect

        return connect
    raise AttributeError(name)
