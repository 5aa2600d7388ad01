"""The record: the one place logpipe's columns and their Arrow types are declared.

Base column names are the keys of Istio's JSON access-log encoding (FORMATS.md a.3), so a user who
switches ``accessLogEncoding`` sees the same names. Derived columns carry their parent's name.
Every path (text layouts, JSON, ztunnel, custom formats, fast path, Lark path) yields exactly
``RECORD_SCHEMA`` (custom formats may append extra string columns after it).
"""
from __future__ import annotations

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")

# Columns whose text is an address (``ip:port``, ``[v6]:port``, ``envoy://…/ip:port``): each gets
# ``<name>_ip`` and ``<name>_port`` derived columns.
ADDRESS_COLUMNS = (
    "upstream_host",
    "upstream_local_address",
    "downstream_local_address",
    "downstream_remote_address",
)

# The 24 base columns, in Istio's text-format order.
BASE_FIELDS = [
    pa.field("start_time", TIMESTAMP),
    pa.field("method", pa.string()),
    pa.field("path", pa.string()),
    pa.field("protocol", pa.string()),
    pa.field("response_code", pa.int32()),
    pa.field("response_flags", pa.list_(pa.string())),
    pa.field("response_code_details", pa.string()),
    pa.field("connection_termination_details", pa.string()),
    pa.field("upstream_transport_failure_reason", pa.string()),
    pa.field("bytes_received", pa.int64()),
    pa.field("bytes_sent", pa.int64()),
    pa.field("duration", pa.int64()),
    pa.field("upstream_service_time", pa.int64()),
    pa.field("x_forwarded_for", pa.string()),
    pa.field("user_agent", pa.string()),
    pa.field("request_id", pa.string()),
    pa.field("authority", pa.string()),
    pa.field("upstream_host", pa.string()),
    pa.field("upstream_cluster", pa.string()),
    pa.field("upstream_local_address", pa.string()),
    pa.field("downstream_local_address", pa.string()),
    pa.field("downstream_remote_address", pa.string()),
    pa.field("requested_server_name", pa.string()),
    pa.field("route_name", pa.string()),
]

DERIVED_FIELDS = [
    pa.field("upstream_cluster_direction", pa.string()),
    pa.field("upstream_cluster_port", pa.int32()),
    pa.field("upstream_cluster_subset", pa.string()),
    pa.field("upstream_cluster_host", pa.string()),
    *[
        f
        for name in ADDRESS_COLUMNS
        for f in (pa.field(f"{name}_ip", pa.string()), pa.field(f"{name}_port", pa.int32()))
    ],
]

# ztunnel (ambient L4) rows carry the workload identities of both ends (FORMATS.md e).
WORKLOAD_FIELDS = [
    pa.field("direction", pa.string()),
    pa.field("src_workload", pa.string()),
    pa.field("src_namespace", pa.string()),
    pa.field("src_identity", pa.string()),
    pa.field("dst_workload", pa.string()),
    pa.field("dst_namespace", pa.string()),
    pa.field("dst_identity", pa.string()),
    pa.field("dst_service", pa.string()),
    pa.field("error", pa.string()),
]

PROVENANCE_FIELDS = [
    pa.field("log_format", pa.string()),
    pa.field("source", pa.string()),
    pa.field("line_number", pa.int64()),
    pa.field("pod", pa.string()),
    pa.field("container", pa.string()),
    pa.field("received_at", TIMESTAMP),
]

RECORD_SCHEMA = pa.schema(BASE_FIELDS + DERIVED_FIELDS + WORKLOAD_FIELDS + PROVENANCE_FIELDS)
COLUMNS = RECORD_SCHEMA.names
# The list columns (response_flags): "-" there is an empty list, not null (records.type_columns).
LIST_COLUMNS = frozenset(f.name for f in RECORD_SCHEMA if pa.types.is_list(f.type))


def view_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with its strings as Arrow string views and its lists of them as large lists, as
    polars hands them out: the rows ingest's lanes write to Parquet as they are, without a cast to
    ``schema`` (~0.2 µs a row). Parquet has one type for both, so the files read back as ``schema``
    (``parts._write_hidden`` stores no Arrow schema in them)."""
    def view(t: pa.DataType) -> pa.DataType:
        if pa.types.is_string(t):
            return pa.string_view()
        if pa.types.is_list(t) and pa.types.is_string(t.value_type):
            return pa.large_list(pa.string_view())
        return t
    return pa.schema([f.with_type(view(f.type)) for f in schema], metadata=schema.metadata)

REJECT_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("line_number", pa.int64()),
        pa.field("raw", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("class", pa.string()),  # "noise" or "malformed"
        pa.field("column", pa.int32()),  # 1-based column where parsing failed, when known
    ]
)

REJECT_CLASSES = ("noise", "malformed")
