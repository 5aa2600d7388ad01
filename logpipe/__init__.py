"""logpipe: Envoy and Istio access logs into typed Arrow/Parquet, queried with DuckDB.

Library entry points (heavy libraries are imported on first use):

    from logpipe import parse_lines
    for batch in parse_lines(open("access.log", "rb"), source="access.log"):
        batch.records   # pyarrow.RecordBatch, logpipe.schema.RECORD_SCHEMA
        batch.rejects   # pyarrow.RecordBatch, logpipe.schema.REJECT_SCHEMA

    import logpipe
    con = logpipe.connect("logpipe-data")          # DuckDB, with the views access_log, traffic, egress, rejects
    logpipe.run_query(con, logpipe.named_query("top_destinations"), {"limit": 5})   # a pyarrow.Table
    logpipe.run_query(con, "SELECT count(*) FROM egress WHERE response_code >= $code", {"code": 500})
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["parse_lines", "connect", "run_query", "named_query", "__version__"]

_WHERE = {"parse_lines": "parse", "connect": "db", "run_query": "queries", "named_query": "queries"}


def __getattr__(name):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'logpipe' has no attribute {name!r}; it offers {', '.join(__all__)}")
