"""ztunnel (Istio ambient L4) access lines to records: text style and ``LOG_FORMAT=json``.

Syntax lives in ``grammars/ztunnel.lark``: the line's head, and one ``key=value`` pair. The pairs
vary by version and connection, so each known key is picked out of a batch with the regex compiled
from the pair rule (``key`` + ``=`` + ``ztunnel_value``). The values map onto the record
(FORMATS.md e; istio/ztunnel src/proxy/metrics.rs): the client is the downstream remote address; the
destination the client dialled (``dst.hbone_addr``, else ``dst.addr``) is the downstream local
address, as for a sidecar; ``dst.addr`` (the HBONE peer on 15008, or the workload) is the upstream
host. An L4 connection has no HTTP response: ``response_code`` is 0, as Envoy logs TCP (FORMATS.md b.2).
``start_time`` is the line's time, which ztunnel writes when the connection completes.
"""
from __future__ import annotations

import functools
import re

import polars as pl

# ztunnel field -> record column ("__hbone" is folded into downstream_local_address)
KEYS = {
    "src.addr": "downstream_remote_address",
    "src.workload": "src_workload",
    "src.namespace": "src_namespace",
    "src.identity": "src_identity",
    "dst.addr": "upstream_host",
    "dst.hbone_addr": "__hbone",
    "dst.service": "dst_service",
    "dst.workload": "dst_workload",
    "dst.namespace": "dst_namespace",
    "dst.identity": "dst_identity",
    "direction": "direction",
    "bytes_sent": "bytes_sent",
    "bytes_recv": "bytes_received",
    "duration": "duration",
    "error": "error",
}
MESSAGES = ("connection complete", "connection failed")


@functools.lru_cache(maxsize=None)
def _rules():
    from . import grammar as _grammar
    from .resources import resource_dir

    book = _grammar.load_file(resource_dir("grammars") / "ztunnel.lark",
                              ("ztunnel_line", "ztunnel_head", "ztunnel_value", "ztunnel_sep"))
    sep, value = book.compile("ztunnel_sep").pattern, book.compile("ztunnel_value").pattern
    keys = {k: f"(?:^|{sep}){re.escape(k)}=({value})" for k in KEYS}
    return book, book.regex("ztunnel_line"), f"^{book.compile('ztunnel_head').pattern}", keys


def take_lines(parser, df: pl.DataFrame, frames: list, rejects: list) -> pl.DataFrame:
    """Parse the ztunnel access lines of ``df`` into ``frames`` (malformed ones into ``rejects``);
    return the other lines."""
    from .records import _reject

    book, line_rx, head_rx, keys = _rules()
    is_head = df["body"].str.contains(head_rx)
    if not is_head.any():
        return df
    is_line = df["body"].str.contains(line_rx) & is_head
    zt = df.filter(is_line)
    if zt.height:
        body = pl.col("body")
        values = [_unquote(body.str.extract(rx, 1)).alias(KEYS[k]) for k, rx in keys.items()]
        frame = zt.select(
            "line_number", "raw", "prefix_len", "pod", "container", "received_at",
            body.str.extract(f"^({book.compile('start_time', 'start_time').pattern})", 1).alias("start_time"),
            *values,
        )
        frames.append(parser._split_values(_finish(frame, "ztunnel")))
    for ln, raw, text, plen in df.filter(is_head & ~is_line).select("line_number", "raw", "body", "prefix_len").iter_rows():
        from .grammar import GrammarMismatch

        try:
            book.parse(text, "ztunnel_line")
            why, col = "ztunnel access line the fast path did not take", None
        except GrammarMismatch as e:
            col = (e.column or 0) + (plen or 0)
            why = f"ztunnel access line: column {col}: {str(e).partition(': ')[2]}"
        rejects.append(_reject(ln, raw, why, "malformed", col))
    return df.filter(~is_head)


def _unquote(value: pl.Expr) -> pl.Expr:
    """A Debug-quoted value ("…" with backslash escapes) as its text; bare values as they are."""
    inner = value.str.slice(1, value.str.len_chars() - 2).str.replace_all(r"\\(.)", "$1")
    return pl.when(value.str.starts_with('"') & value.str.ends_with('"')).then(inner).otherwise(value)


def _finish(frame: pl.DataFrame, kind: str) -> pl.DataFrame:
    return frame.with_columns(
        pl.coalesce(pl.col("__hbone"), pl.col("upstream_host")).alias("downstream_local_address"),
        pl.col("duration").str.strip_suffix("ms"),
        pl.lit("0").alias("response_code"),
        pl.lit("-").alias("response_flags"),  # none: an empty list, as on an Envoy line
        pl.lit(kind).alias("log_format"),
    ).drop("__hbone")


# ---- LOG_FORMAT=json ---------------------------------------------------------------------------------


def is_access_event(obj: dict) -> bool:
    """A ztunnel JSON line of the ``access`` target that completes (or fails) a connection."""
    target = obj.get("scope", obj.get("target"))
    message = obj.get("message", obj.get("msg"))
    return target == "access" and message in MESSAGES and ("src.addr" in obj or "dst.addr" in obj)


def json_fields(obj: dict) -> dict:
    from .jsonlog import _json_text

    out = {col: _json_text(obj.get(key)) for key, col in KEYS.items()}
    hbone = out.pop("__hbone")
    out["downstream_local_address"] = hbone or out["upstream_host"]
    if out["duration"] and out["duration"].endswith("ms"):
        out["duration"] = out["duration"][:-2]
    out["response_code"] = "0"
    out["response_flags"] = "-"
    out["start_time"] = _json_text(obj.get("time", obj.get("timestamp")))
    return out
