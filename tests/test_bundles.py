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


def test_a_bundle_s_resources_are_left_out_in_one_line(tmp_path):
    """`kubectl cluster-info dump --output-directory` writes each namespace's resources as indented JSON
    beside its pods' logs.txt, must-gather and bug-report YAML and config dumps: read as lines they were
    hundreds of malformed rejects, an error each over --max-reject-ratio (exit 1); they are left out,
    counted, said in one line, and the logs are read as before."""
    items = {"kind": "EventList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
             "items": [{"metadata": {"name": f"e{i}"}, "message": "Started container istio-proxy"} for i in range(30)]}
    pod_yaml = ("---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: w\nspec:\n  containers:\n  - name: istio-proxy\n"
                "    env:\n    - name: ISTIO_META_POD_PORTS\n      value: |-\n        [\n        ]\n")
    root = tmp_path / "dump"
    _write(root, {
        "nodes.json": json.dumps({"kind": "NodeList", "items": []}, indent=4),
        **{f"istio-egress/{kind}.json": json.dumps(dict(items, kind=kind), indent=4) for kind in ("events", "pods")},
        f"istio-egress/{POD}/logs.txt": "\n".join(WAYPOINT) + "\n",
        f"{MUST_GATHER}/{POD}.yaml": pod_yaml,
        "bug-report/proxies/istio-egress/w/config_dump": '{\n "configs": [\n  {\n   "@type": "x"\n  }\n ]\n}\n',
    })
    run = run_logpipe("ingest", root, "--data", tmp_path / "d")
    assert run.returncode == 0, run.stderr
    said = [x for x in run.stderr.splitlines() if x.startswith("left out")]
    assert said == ["left out 5 inputs that hold no log lines (a bundle's resources and config dumps: indented JSON,"
                    f" Kubernetes YAML; log records printed indented read one a line, `jq -c .`):"
                    f" {root}/bug-report/proxies/istio-egress/w/config_dump (indented JSON) and 4 more"]
    assert "inputs 6: ingested 1, skipped as already ingested 0, not logs 5" in run.stderr
    assert f"lines read {len(WAYPOINT)}, parsed {len(WAYPOINT)}, rejected 0" in run.stderr


@pytest.mark.parametrize("text", [
    '{"kind": "Pod", "apiVersion": "v1"}\n',  # (one line of JSON: read as a line)
    "[\n  {\n    \"log\": \"x\"\n  }\n]\n",  # (a JSON array: its elements' lines)
    "kind: Pod\nmetadata: {}\n",  # (no apiVersion)
    "[2025-01-30T10:53:24.085Z] \"GET / HTTP/1.1\" 200\napiVersion: v1\nkind: Pod\n",
])
def test_other_inputs_are_no_resource_document(tmp_path, text):
    from logpipe.sources import Input, document_of

    (tmp_path / "f").write_text(text)
    assert document_of(Input(str(tmp_path / "f"))) is None


def test_log_records_printed_indented_are_left_out_with_the_way_to_read_them(tmp_path):
    """`jq .` of Istio's JSON lines is one document of indented records, which logpipe does not read:
    it is left out as a bundle's resource is (it was 364 rejects and an error), and the line says how
    to make it lines. (A guard: it passes on the code before the hint too, but for the hint's words.)"""
    src = [json.loads(x) for x in (SAMPLES / "istio-json-1.24.log").read_text().splitlines() if x.startswith("{")]
    pretty = tmp_path / "pretty.json"
    pretty.write_text("".join(json.dumps(r, indent=2) + "\n" for r in src))
    run = run_logpipe("ingest", pretty, "--data", tmp_path / "d")
    assert run.returncode == 0, run.stderr
    assert "left out 1 input that holds no log lines" in run.stderr and "`jq -c .`" in run.stderr, run.stderr
