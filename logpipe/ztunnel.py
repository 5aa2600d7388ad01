"""ztunnel (Istio ambient L4) access lines to records: text style and ``LOG_FORMAT=json``.

Syntax lives in ``grammars/ztunnel.lark``: the line's head, and one ``key=value`` pair. The pairs
vary by version and connection, so a batch's lines are cut into their pairs with the regex compiled
from the pair rule (``ztunnel_pair``: left to right, as the grammar reads them, so a quoted value
that holds ``key=…`` text is one value), and each known key takes its first pair's value. The values map onto the record
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
    "bytes_sent": "__sent",  # (the reporting side's workload's: see _bytes)
    "bytes_recv": "__recv",
    "duration": "duration",
    "error": "error",
}
MESSAGES = ("connection complete", "connection failed")
# The reason a `connection opened` line (debug level) is noise, text (noise.lark) or JSON alike.
OPENED = ("ztunnel's connection opened line (debug level), not an access line: "
          "the same connection's connection complete line is its record")


@functools.lru_cache(maxsize=None)
def rules():
    from . import grammar as _grammar
    from .resources import resource_dir

    book = _grammar.load_file(resource_dir("grammars") / "ztunnel.lark",
                              ("ztunnel_line", "ztunnel_head", "ztunnel_pair"))
    return book, book.regex("ztunnel_line"), f"^{book.compile('ztunnel_head').pattern}", book.compile("ztunnel_pair").pattern


def take_lines(parser, df: pl.DataFrame, frames: list, rejects: list) -> pl.DataFrame:
    """Parse the ztunnel access lines of ``df`` into ``frames`` (malformed ones into ``rejects``);
    return the other lines."""
    from .records import _reject

    book, line_rx, head_rx, pair_rx = rules()
    is_head = df["body"].str.contains(head_rx)
    if not is_head.any():
        return df
    is_line = df["body"].str.contains(line_rx) & is_head
    zt = df.filter(is_line)
    if zt.height:
        frame = zt.select(
            "line_number", "raw", "prefix_len", "pod", "container", "received_at",
            pl.col("body").str.extract(f"^({book.compile('start_time', 'start_time').pattern})", 1).alias("start_time"),
        ).hstack(_pair_values(zt.select("line_number", "body"), pair_rx))
        frames.append(parser.values.split(_finish(frame, "ztunnel")))
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


def _pair_values(lines: pl.DataFrame, pair_rx: str) -> pl.DataFrame:
    """For each line (``line_number``, ``body``), the value of each key of KEYS (its first pair's),
    as the record column it maps to; null when the line has no such pair."""
    pairs = lines.select("line_number", pl.col("body").str.extract_all(pair_rx).alias("pair")).explode("pair")
    # a key holds no "=" (ZT_KEY): the value is what follows the first one
    pairs = pairs.select("line_number", pl.col("pair").str.splitn("=", 2).struct.rename_fields(["key", "value"]))
    pairs = pairs.unnest("pair").filter(pl.col("key").is_in(list(KEYS)))
    value = pl.col("value")
    wide = pairs.group_by("line_number", maintain_order=True).agg(
        value.filter(pl.col("key") == k).first().alias(k) for k in KEYS)
    got = lines.select("line_number").join(wide, on="line_number", how="left", maintain_order="left")
    return got.select(_unquote(pl.col(k).cast(pl.String)).alias(column) for k, column in KEYS.items())


def _unquote(value: pl.Expr) -> pl.Expr:
    """A Debug-quoted value ("…" with backslash escapes) as its text; bare values as they are."""
    inner = value.str.slice(1, value.str.len_chars() - 2)
    inner = pl.when(inner.str.contains("\\", literal=True)).then(
        inner.map_elements(unescape, return_dtype=pl.String, skip_nulls=True)).otherwise(inner)
    return pl.when(value.str.starts_with('"') & value.str.ends_with('"')).then(inner).otherwise(value)


# Rust's Debug escapes, as ztunnel's text lines quote a value (its `error` holds other programs' text):
# \n \r \t \0, \u{…} of any other control, and the quote or backslash itself.
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "0": "\0"}
_ESCAPE = re.compile(r"\\(?:u\{([0-9a-fA-F]{1,6})\}|(.))", re.S)


def unescape(text: str) -> str:
    """A Debug-quoted value's inside as its text: ``line1\\nline2`` is two lines, ``\\u{1b}`` ESC."""
    if "\\" not in text:
        return text

    def one(m: re.Match) -> str:
        if m.group(1) is not None:
            code = int(m.group(1), 16)
            return chr(code) if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else m.group(0)
        return _ESCAPES.get(m.group(2), m.group(2))

    return _ESCAPE.sub(one, text)


# ztunnel's bytes_sent is what the reporting side's own workload sent (src/proxy/metrics.rs "unflips"
# its counters for the log; src/copy.rs counts downstream→upstream as recv): the client's upload on an
# outbound line, the server's response on an inbound one. The record's are Envoy's: bytes_received from
# the client (up), bytes_sent to it (down).
def _bytes(direction, sent, recv):
    """(bytes_received, bytes_sent) of the record from a JSON line's direction and its two counts
    (``_finish`` writes the same rule as a polars expression, for a batch of text lines)."""
    return (recv, sent) if direction != "outbound" else (sent, recv)


def _finish(frame: pl.DataFrame, kind: str) -> pl.DataFrame:
    outbound = pl.col("direction") == "outbound"
    return frame.with_columns(
        pl.when(outbound).then(pl.col("__sent")).otherwise(pl.col("__recv")).alias("bytes_received"),
        pl.when(outbound).then(pl.col("__recv")).otherwise(pl.col("__sent")).alias("bytes_sent"),
        pl.coalesce(pl.col("__hbone"), pl.col("upstream_host")).alias("downstream_local_address"),
        pl.col("duration").str.strip_suffix("ms"),
        pl.lit("0").alias("response_code"),
        pl.lit("-").alias("response_flags"),  # none: an empty list, as on an Envoy line
        pl.lit(kind).alias("log_format"),
    ).drop("__hbone", "__sent", "__recv")


# ---- LOG_FORMAT=json ---------------------------------------------------------------------------------


def is_access_event(obj: dict) -> bool:
    """A ztunnel JSON line of the ``access`` target that completes (or fails) a connection."""
    target = obj.get("scope", obj.get("target"))
    message = obj.get("message", obj.get("msg"))
    return target == "access" and message in MESSAGES and ("src.addr" in obj or "dst.addr" in obj)


def is_opened_event(obj: dict) -> bool:
    """A ztunnel JSON line of the ``access`` target that opens a connection (debug level: ``OPENED``)."""
    return obj.get("scope", obj.get("target")) == "access" and obj.get("message", obj.get("msg")) == "connection opened"


def json_fields(obj: dict) -> dict:
    from .jsonlog import _json_text

    out = {col: _json_text(obj.get(key)) for key, col in KEYS.items()}
    hbone = out.pop("__hbone")
    out["bytes_received"], out["bytes_sent"] = _bytes(out["direction"], out.pop("__sent"), out.pop("__recv"))
    out["downstream_local_address"] = hbone or out["upstream_host"]
    if out["duration"] and out["duration"].endswith("ms"):
        out["duration"] = out["duration"][:-2]
    out["response_code"] = "0"
    out["response_flags"] = "-"
    out["start_time"] = _json_text(obj.get("time", obj.get("timestamp")))
    return out
