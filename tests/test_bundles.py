"""Logs as operators collect them for an incident: support bundles (OpenShift's `oc adm must-gather`,
`istioctl bug-report`), as a directory or a tarball, ingested whole: their proxies' access lines
read and named after the pod and container the bundle's path gives, their other files left out."""
from __future__ import annotations

import json
import tarfile

import pytest
from conftest import SAMPLES, read_lines, run_logpipe

WAYPOINT = [x for x in read_lines(SAMPLES / "waypoint-egress-1.23.log") if x.startswith("[")]
ZTUNNEL = read_lines(SAMPLES / "ztunnel.log")
POD = "waypoint-7d9f8b6c4-x2k8p"
MUST_GATHER = f"must-gather.local.1/quay-io-openshift-must-gather-sha256-0a1b/namespaces/istio-egress/pods/{POD}"
BUG_REPORT = "bug-report/proxies"


def _write(root, files: dict) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _by_source(data) -> dict:
    run = run_logpipe("query", "--data", data, "-o", "ndjson", "--sql",
                      "select source, pod, container, count(*) n from access_log group by all order by source")
    assert run.returncode == 0, run.stderr
    rows = [json.loads(x) for x in run.stdout.splitlines()]
    return {"/".join(r["source"].split("/")[-2:]): (r["pod"], r["container"], r["n"]) for r in rows}


@pytest.mark.parametrize("packed", [False, True])
def test_a_bundle_s_paths_name_the_pod_and_container(tmp_path, packed):
    """must-gather's current.log and previous.log (`--previous`: kept apart, each its own source) and
    bug-report's istio-proxy.log (a waypoint's, a ztunnel's) name their pod and container: their lines
    name none (must-gather's carry kubectl's time alone)."""
    stamp = "2025-01-30T10:53:24.326000321Z "
    root = tmp_path / "bundle"
    _write(root, {
        f"{MUST_GATHER}/istio-proxy/istio-proxy/logs/current.log": "".join(stamp + x + "\n" for x in WAYPOINT[:5]),
        f"{MUST_GATHER}/istio-proxy/istio-proxy/logs/previous.log": "".join(stamp + x + "\n" for x in WAYPOINT[5:7]),
        f"{BUG_REPORT}/istio-egress/{POD}/istio-proxy.log": "\n".join(WAYPOINT[7:10]) + "\n",
        f"{BUG_REPORT}/istio-system/ztunnel-4xk9q/istio-proxy.log": "\n".join(ZTUNNEL) + "\n",
    })
    given = root
    if packed:
        given = tmp_path / "bundle.tar.gz"
        with tarfile.open(given, "w:gz") as tar:
            tar.add(root, arcname=".")
    run = run_logpipe("ingest", given, "--data", tmp_path / "d")
    assert run.returncode == 0, run.stderr
    assert _by_source(tmp_path / "d") == {
        "logs/current.log": (POD, "istio-proxy", 5),
        "logs/previous.log": (POD, "istio-proxy", 2),
        f"{POD}/istio-proxy.log": (POD, "istio-proxy", 3),
        "ztunnel-4xk9q/istio-proxy.log": ("ztunnel-4xk9q", "istio-proxy", 10),
    }


@pytest.mark.parametrize("path", [
    "namespaces/istio-egress/pods/waypoint-1/istio-proxy/other/logs/current.log",  # (the container named twice)
    "namespaces/istio-egress/pods/waypoint-1/istio-proxy/istio-proxy/current.log",
    "proxies/istio-egress/waypoint-1/discovery.log",
    "logs/istio-proxy.log",
])
def test_other_paths_name_no_pod(path):
    from logpipe.collectors import node_log_names

    assert node_log_names(path) is None
