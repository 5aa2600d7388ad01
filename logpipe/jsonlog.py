"""JSON access lines to text columns, by key: Istio's JSON encoding (``accessLogEncoding: JSON``,
FORMATS.md a.3), ztunnel's ``LOG_FORMAT=json`` (FORMATS.md e), and JSON noise (application logs,
docker json-file wrappers). Values stay text here; ``logpipe/records.py`` types them.
"""
from __future__ import annotations

import json

from . import ztunnel as _ztunnel
from .schema import RECORD_SCHEMA

PROVENANCE = ("log_format", "source", "line_number", "pod", "container", "received_at")

_JSON_KEYS = {f.name for f in RECORD_SCHEMA} - set(PROVENANCE)


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
