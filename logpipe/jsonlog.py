"""JSON access lines to text columns, by key: Istio's JSON encoding (``accessLogEncoding: JSON``,
FORMATS.md a.3), ztunnel's ``LOG_FORMAT=json`` (FORMATS.md e), and JSON noise (application logs).
Log collectors' records of a line (Fluent Bit, Vector, Filebeat: ``envelopes.Envelopes.envelope``)
are handed back for the parser to read the line they hold, as docker's own entries are
(``runtimes.unwrap_docker``). Values stay text here, checked by the rules a text line's fields
follow (``values.WholeValues.check``); ``logpipe/records.py`` types them.
"""
from __future__ import annotations

import ctypes
import json

import polars as pl
import pyarrow as pa

from . import arrowpl as _arrowpl
from . import native as _native
from . import ztunnel as _ztunnel
from .records import _reject, _row
from .schema import DERIVED_FIELDS, LIST_COLUMNS, RECORD_SCHEMA

PROVENANCE = ("log_format", "source", "line_number", "pod", "container", "received_at")

# Derived columns (an address's ip and port, a cluster's parts) come from their base value only,
# never from a key of the same name: else a line's value would depend on the other lines of its batch.
_JSON_KEYS = {f.name for f in RECORD_SCHEMA} - set(PROVENANCE) - {f.name for f in DERIVED_FIELDS}

# Lines read natively (``take_flat``): the keys whose text becomes a column, then keys that only
# choose the layout; a line with a STOP key goes to json.loads (ztunnel's access events are told apart
# by them, and _json_record tries ztunnel first).
FLAT_KEYS = (*sorted(_JSON_KEYS), "istio_policy_status")
STOP_KEYS = ("scope", "target", "message", "msg", "src.addr", "dst.addr")
# The keys whose "-" and empty text cut.c's reading gives as null (the record's rule, which
# records.type_columns then need not apply again): not a list (there "-" is an empty list, null is
# unknown), nor upstream_cluster, which values.WholeValues.split rewrites from what its regex captures.
NULLED_KEYS = frozenset(_JSON_KEYS - LIST_COLUMNS - {"upstream_cluster"})
# Below this many JSON lines in a batch (a stream's micro-batch), json.loads is as cheap.
FLAT_MIN_ROWS = 64


def take_lines(parser, df, rejects: list[dict], unwrapped: list | None = None) -> list[tuple]:
    """The records of the JSON lines ``df`` (``parser``'s batch: its custom layout's keys, then
    Istio's encoding, ztunnel's and JSON noise), as (frame, the columns whose "-" and empty text are
    null already); a line that is not JSON, or JSON of no known format, becomes a reject. A log
    collector's record of a line (``envelopes.Envelopes.envelope``) goes to ``unwrapped`` (line
    number, the record as written, the line, pod, container, time: rows, or frames of them), for
    the parser to read the line it holds; with no ``unwrapped`` (the lines such records held), it is
    judged as any JSON."""
    frames = []
    custom = parser.custom if getattr(parser.custom, "json_keys", None) else None  # (a JSON format)
    check = dict(keys={"log_format": custom.name, **{c: k for k, c in reversed(custom.json_keys.items())}},
                 counts=custom.counts, long_flags=custom.long_flags) if custom else {}
    taken, df, nulled = take_flat(df, parser.custom)  # read natively when it can; the rest line by line below
    if taken is not None:
        frames.append((parser.values.check(parser.values.split(taken), rejects, **check), nulled))
    if unwrapped is not None and parser.custom is None and df.height:  # (a JSON format of one's own first)
        held, df = parser.envelopes.envelopes(df)  # collectors' records, read by polars (~3 µs a line)
        if held is not None:
            unwrapped.append(held)
    rows = []
    for ln, raw, body, pod, container, received, plen in df.select(
        "line_number", "raw", "body", "pod", "container", "received_at", "prefix_len"
    ).iter_rows():
        try:
            obj = json.loads(body)
        except json.JSONDecodeError as e:  # (where in the line, as a text line's reject says it: after its prefix)
            col, why = e.pos + 1 + (plen or 0), e.msg[:-3] + " here" if e.msg.endswith(" at") else e.msg
            rejects.append(_reject(ln, raw, f"column {col}: invalid JSON: {why}", "malformed", col))
            continue
        except ValueError as e:  # (valid JSON Python will not read: an integer of over 4,300 digits)
            rejects.append(_reject(ln, raw, f"invalid JSON: {e}", "malformed"))
            continue
        kind, fields = (parser.custom and parser.custom.json_record(obj)) or _json_record(obj)
        if kind in (None, "noise") and unwrapped is not None and isinstance(obj, dict):
            held = parser.envelopes.envelope(obj)
            if held is not None:
                text, *names = held
                unwrapped.append((ln, raw, text, *(mine or theirs for mine, theirs in zip(names, (pod, container, received)))))
                continue
        if kind is None:
            why = parser.custom.json_miss(obj) if parser.custom is not None else None
            rejects.append(_reject(ln, raw, why or fields, "malformed"))
            continue
        if kind == "noise":
            rejects.append(_reject(ln, raw, fields, "noise"))
            continue
        if isinstance(obj.get("kubernetes"), dict) and parser.custom is None:  # (a collector merged its keys in)
            pod, container, received = (mine or theirs for mine, theirs in zip(parser.envelopes.metadata(obj),
                                                                                (pod, container, received)))
        rows.append(_row(fields, ln, raw, kind, pod, container, received))
    if rows:
        rows = parser.values.split(pl.DataFrame(rows, infer_schema_length=None))
        frames.append((parser.values.check(rows, rejects, **check), frozenset()))
    return frames


def _json_record(obj) -> tuple[str | None, dict | str]:
    if not isinstance(obj, dict):
        return None, "JSON value is not an object"
    if _ztunnel.is_access_event(obj):  # ztunnel LOG_FORMAT=json (FORMATS.md e)
        return "ztunnel_json", _ztunnel.json_fields(obj)
    if "start_time" in obj and ({"response_code", "upstream_cluster", "upstream_host"} & obj.keys()):
        fields = {k: _json_text(v) for k, v in obj.items() if k in _JSON_KEYS}
        if "istio_policy_status" in obj:
            kind = "istio_json_1_1" if "route_name" not in obj else "istio_json_1_3"
        elif "response_code_details" in obj:
            kind = "istio_json"
        else:
            kind = "istio_json_1_8"
        if fields.get("method") is not None and fields.get("method") == fields.get("start_time"):
            fields["method"] = None  # Istio 1.1 mapped `method` to %START_TIME% (FORMATS.md a.3)
        return kind, fields
    if _ztunnel.is_opened_event(obj):
        return "noise", _ztunnel.OPENED
    if "log" in obj and ("stream" in obj or "time" in obj):
        return "noise", "docker json-file log wrapper, not an access line"
    if "level" in obj and ({"msg", "message", "scope", "instance"} & obj.keys()):
        return "noise", "JSON application log line, not an access line"
    keys = ", ".join(list(obj)[:8])
    return None, f"JSON object is not an access-log record (keys: {keys})"


def _json_text(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
    if isinstance(v, str):
        return v
    return json.dumps(v, separators=(",", ":"))


def take_flat(df, custom=None):
    """The JSON lines of ``df`` (its ``body`` column) that cut.c reads natively, with no Python per
    line: ``(their text columns and provenance, the lines left, the columns whose "-" and empty text
    are null already)``; the first is None when cut.c is not built or takes none. A line is taken
    only where cut.c's reading (``logpipe_json_flat``: one flat object of plain values) gives exactly
    what ``json.loads`` and the record mapping give it:
    Istio's encoding (``_json_record``), or ``custom``'s keys (a JSON format, ``CustomLayout.
    json_record``). The lines left (escapes, floats, nested values, ztunnel and noise objects, too
    few of a format's keys, bad JSON) go to them."""
    json_keys = getattr(custom, "json_keys", None)
    if json_keys and len(set(json_keys.values())) == len(json_keys):
        return (*_take_custom(df, custom.name, json_keys), frozenset())
    if custom is not None and json_keys:  # two keys for one column: json_record's overwrite, in Python
        return None, df, frozenset()
    return (*_take_istio(df), NULLED_KEYS)


def _read_flat(df, keys: tuple[str, ...], stop: tuple[str, ...] = ()):
    """cut.c's reading of ``df["body"]``: ``(read, {key: 0 absent, 1 null, 2 a value, 3 a string "-"
    or ""}, {key: text})`` as polars Series (``read``: Boolean), or None when cut.c is not built, the
    batch is small, or cut.c read no line."""

    lib = _native.library()
    buffers = _native.string_buffers(df["body"]) if lib is not None and df.height >= FLAT_MIN_ROWS else None
    if buffers is None:
        return None
    lines, offsets, data = buffers
    n, known = len(lines), len(keys)
    names = [k.encode() for k in (*keys, *stop)]
    bounds = [0]
    for name in names:
        bounds.append(bounds[-1] + len(name))
    views, present, ok = pa.allocate_buffer(16 * n * known), pa.allocate_buffer(n * known), pa.allocate_buffer(n)
    sizes = (ctypes.c_int64 * known)()
    got = lib.logpipe_json_flat(data.address, offsets, n, len(names), known, b"".join(names),
                                _native.int32s(bounds), views.address, present.address, ok.address, sizes)
    if got == 0:
        return None

    def uint8s(buffer, k=0):
        return _arrowpl.series(pa.Array.from_buffers(pa.uint8(), n, [None, buffer.slice(k * n, n)]))

    texts = dict(zip(keys, _native.view_columns(lib, views, n, list(sizes), (ctypes.c_void_p * 1)(data.address))))
    return uint8s(ok) == 1, {k: uint8s(present, i) for i, k in enumerate(keys)}, texts


def _columns(taken_rows, has: dict, texts: dict, names: dict, nulled: frozenset = frozenset()) -> dict:
    """For each key some taken line holds (as a frame of json.loads' rows has a column per key of any
    row), its text as column ``names[key]``, null where the line lacks the key or it is null, and
    where it is "-" or empty in the ``nulled`` keys."""
    import polars as pl

    return {names[k]: pl.select(pl.when(has[k] == 2 if k in nulled else has[k] >= 2)
                                .then(texts[k].filter(taken_rows))).to_series().alias(names[k])
            for k in names if has[k].max() > 0}


def _take_istio(df):
    import polars as pl

    read = _read_flat(df, FLAT_KEYS, STOP_KEYS)
    if read is None:
        return None, df
    ok, has, texts = read
    # _json_record's choice, as masks: an Istio record has start_time and one of these keys.
    istio = ok & (has["start_time"] > 0) & (
        (has["response_code"] > 0) | (has["upstream_cluster"] > 0) | (has["upstream_host"] > 0))
    if not istio.any():
        return None, df
    has = {k: v.filter(istio) for k, v in has.items()}
    fields = _columns(istio, has, texts, {k: k for k in sorted(_JSON_KEYS)}, NULLED_KEYS)
    if "method" in fields and "start_time" in fields:  # Istio 1.1's method is %START_TIME% (FORMATS.md a.3)
        m, t = fields["method"], fields["start_time"]
        fields["method"] = pl.select(pl.when(m == t).then(None).otherwise(m)).to_series().alias("method")
    kind = pl.select(
        pl.when(has["istio_policy_status"] > 0)
        .then(pl.when(has["route_name"] > 0).then(pl.lit("istio_json_1_3")).otherwise(pl.lit("istio_json_1_1")))
        .when(has["response_code_details"] > 0).then(pl.lit("istio_json"))
        .otherwise(pl.lit("istio_json_1_8"))
    ).to_series().alias("log_format")
    taken = df.filter(istio).select("line_number", "raw", "pod", "container", "received_at")
    return taken.with_columns(*fields.values(), kind), df.filter(~istio)


def _take_custom(df, name: str, json_keys: dict[str, str]):
    """A JSON format's lines: those holding at least half its keys (CustomLayout.json_record)."""
    import polars as pl

    keys = tuple(json_keys)
    read = _read_flat(df, keys)
    if read is None:
        return None, df
    ok, has, texts = read
    hits = pl.select(pl.sum_horizontal(*((has[k] > 0).cast(pl.Int32) for k in keys))).to_series()
    mine = ok & (hits >= max(1, len(keys) // 2))
    # Two or more of its keys but under half (Envoy's omit_empty_values): json_record takes such a
    # line when it holds no key the format lacks, which cut.c's reading does not tell; json.loads
    # decides, as in a small batch. (Given to _take_istio, a line with Istio's key names was read as
    # Istio's encoding, its format's other keys dropped.)
    few = ok & ~mine & (hits >= 2)
    # Lines read cleanly that are not this format's: json_record gives way to _json_record there.
    istio, rest = _take_istio(df.filter(ok & ~mine & ~few))
    left = pl.concat([rest, df.filter(few | ~ok)]) if istio is not None else df.filter(~mine)
    if not mine.any():
        return istio, left
    has = {k: v.filter(mine) for k, v in has.items()}
    fields = _columns(mine, has, texts, json_keys)
    taken = df.filter(mine).select("line_number", "raw", "pod", "container", "received_at")
    taken = taken.with_columns(*fields.values(), pl.lit(name).alias("log_format"))
    return (taken if istio is None else pl.concat([taken, istio], how="diagonal_relaxed")), left
