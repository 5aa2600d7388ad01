"""``--pods FILE``: who a source IP was. Reads ``kubectl get pods -A -o json`` and builds an Arrow
table of pod IP intervals that the report SQL joins on ``source_ip`` and ``start_time``.

Pod IPs are reused: when the file holds several pods with the same IP, each owns the IP from its
own start time until the next pod's start time, so a request is credited to the pod that held the
address at that moment (and to nobody when it predates every pod with that IP). Host-network pods
are skipped: their IP is the node's and says nothing about the workload.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

import pyarrow as pa

from .errors import InputError
from .unpack import read_text

POD_SCHEMA = pa.schema(
    [
        pa.field("pod_ip", pa.string()),
        pa.field("namespace", pa.string()),
        pa.field("pod_name", pa.string()),
        pa.field("service_account", pa.string()),
        pa.field("owner_kind", pa.string()),
        pa.field("owner", pa.string()),
        pa.field("workload", pa.string()),  # namespace/owner (or namespace/pod), the source label
        pa.field("valid_from", pa.timestamp("us", tz="UTC")),
        pa.field("valid_until", pa.timestamp("us", tz="UTC")),
    ]
)

_FIX = "give the output of `kubectl get pods -A -o json`"


def _time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.timezone.utc)
    except ValueError:
        return None


def _owner(meta: dict[str, Any]) -> tuple[str | None, str | None]:
    """The controlling owner; a ReplicaSet named ``<deployment>-<hash>`` (with the
    ``pod-template-hash`` label) is shown as its Deployment."""
    refs = meta.get("ownerReferences") or []
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if not ref:
        return None, None
    kind, name = ref.get("kind"), ref.get("name")
    pth = (meta.get("labels") or {}).get("pod-template-hash")
    if kind == "ReplicaSet" and name and pth and name.endswith("-" + pth):
        return "Deployment", name[: -len(pth) - 1]
    return kind, name


def pods_from_json(doc: Any) -> pa.Table:
    """``kubectl get pods -A -o json`` (a ``List`` of Pods, or one Pod) → ``POD_SCHEMA`` table."""
    if isinstance(doc, dict) and doc.get("kind") == "Pod":
        items = [doc]
    elif isinstance(doc, dict) and isinstance(doc.get("items"), list):
        items = doc["items"]
    else:
        raise InputError(f"the pods file is not a Kubernetes pod list; {_FIX}")
    rows = []
    for pod in items:
        if not isinstance(pod, dict):
            continue
        meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
        if spec.get("hostNetwork"):
            continue
        ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")] or (
            [status["podIP"]] if status.get("podIP") else [])
        start = _time(status.get("startTime")) or _time(meta.get("creationTimestamp"))
        kind, owner = _owner(meta)
        ns, name = meta.get("namespace"), meta.get("name")
        workload = f"{ns}/{owner or name}" if ns else (owner or name)
        for ip in dict.fromkeys(ips):
            rows.append({"pod_ip": ip, "namespace": ns, "pod_name": name,
                         "service_account": spec.get("serviceAccountName") or spec.get("serviceAccount"),
                         "owner_kind": kind, "owner": owner, "workload": workload,
                         "valid_from": start, "valid_until": None})
    # Each IP belongs to a pod from its start until the next pod with that IP started. Two pods of an
    # IP that started alike (or with no time at all) cannot both hold it: the one listed last does,
    # the other's interval is empty. (Both were open, and traffic's join on them gave each of the IP's
    # rows twice: its counts doubled with --pods.)
    epoch = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    rows.sort(key=lambda r: (r["pod_ip"], r["valid_from"] or epoch))
    for a, b in zip(rows, rows[1:]):
        if a["pod_ip"] == b["pod_ip"]:
            a["valid_until"] = b["valid_from"] or epoch
            if a["valid_from"] is None:
                a["valid_from"] = epoch  # ([epoch, epoch): empty, where [null, null) reads as always)
    return pa.Table.from_pylist(rows, schema=POD_SCHEMA)


def load_pods(path: str | os.PathLike[str]) -> pa.Table:
    """Read a pods JSON file; errors say what to give instead."""
    try:
        doc = json.loads(read_text(path))  # (UTF-16 too: `kubectl get pods -o json >` in PowerShell 5)
    except FileNotFoundError:
        raise InputError(f"pods file {os.fspath(path)!r} does not exist; {_FIX}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read pods file {os.fspath(path)!r} ({e}); {_FIX}") from None
    return pods_from_json(doc)


def empty_pods() -> pa.Table:
    return POD_SCHEMA.empty_table()
