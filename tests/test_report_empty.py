"""A report with no egress to show says why on stderr, in one line that is true of the data: no
record at all; records of which none is egress (what they are, and what would show egress); a
window of no egress beside a baseline of some; a baseline of none. Each is a report written, exit 0
(README: the reports' exit codes). The anomalies told data of no egress at all that the baseline
was too short ("widen it"), and the inventory said nothing but (none).

Also: open_report_db closes its connection when a step after connecting fails (a bad --pods file)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from logpipe import db, reports
from logpipe.cli import cli
from logpipe.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
INBOUND = ROOT / "sample_logs" / "sidecar-inbound-1.22.log"  # a sidecar's inbound requests, and two 404 NR
OUTBOUND = ROOT / "sample_logs" / "sidecar-outbound-1.22.log"  # egress 14:02:09–14:03:18, none till 14:04:56
OLDER = ROOT / "sample_logs" / "istio-1.5.log"  # 8 egress requests, 2024-10-07

WIDEN = ("logpipe: note: the baseline holds no egress requests, so everything looks new; widen it with "
         "--baseline-days N, --since, or --baseline DIR")
SHOW_EGRESS = ("so there is no egress to report; egress is in the logs of a proxy it leaves by (an egress gateway's "
               "or waypoint's, a sidecar's outbound requests), and --mesh-domain, --internal-cidr and --cluster-domain "
               "set what counts as inside")


def run(*args):
    r = CliRunner().invoke(cli, list(args))
    assert r.exit_code == 0, r.output
    return r


def notes(r) -> list[str]:
    return [line for line in r.stderr.splitlines() if line.startswith("logpipe: note:")]


@pytest.fixture(scope="module")
def mesh_log(tmp_path_factory) -> Path:
    """The outbound sidecar's requests to the mesh's own services (*.svc.cluster.local), no other."""
    path = tmp_path_factory.mktemp("mesh") / "mesh.log"
    path.write_text("".join(line for line in OUTBOUND.open(encoding="utf-8")
                            if " outbound|" in line and "svc.cluster.local" in line), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def mesh_data(tmp_path_factory, mesh_log) -> Path:
    data = tmp_path_factory.mktemp("mesh-data") / "d"
    assert CliRunner().invoke(cli, ["ingest", str(mesh_log), "--data", str(data)]).exit_code == 0
    return data


@pytest.fixture(scope="module")
def older_data(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("older-data") / "d"
    assert CliRunner().invoke(cli, ["ingest", str(OLDER), "--data", str(data)]).exit_code == 0
    return data


@pytest.mark.parametrize("name", ["inventory", "anomalies"])
def test_inbound_records_no_egress(name):
    """A sidecar's inbound log: both reports say its records are inbound, none egress, and what shows
    egress; the anomalies no longer tell to widen the baseline (the window has no egress either)."""
    r = run("report", name, "--input", str(INBOUND), "-o", "json")
    assert notes(r) == [
        "logpipe: note: none of the --input logs' 20 records is egress (18 inbound, into the proxy's own workload; "
        f"2 to internal addresses or to no upstream: 10.244.2.7), {SHOW_EGRESS}"], r.stderr
    doc = json.loads(r.stdout)
    assert doc.get("destinations", []) == [] and doc.get("window", {}).get("requests", 0) == 0


@pytest.mark.parametrize("name", ["inventory", "anomalies"])
def test_mesh_internal_records_no_egress(mesh_data, name):
    """A dataset of calls to the mesh's services: the note names them, the most called first."""
    r = run("report", name, "--data", str(mesh_data), "-o", "text")
    assert notes(r) == [
        "logpipe: note: none of the dataset's 6 records is egress (6 to services of the mesh: "
        f"reviews.default.svc.cluster.local, ratings.default.svc.cluster.local), {SHOW_EGRESS}"], r.stderr
    assert ("(none)" if name == "inventory" else "0 findings") in r.stdout


def test_a_mesh_domain_makes_the_mesh_hosts_egress_and_the_note_goes(mesh_log):
    """What the note says of the settings holds: a cluster domain that is not theirs makes the hosts
    external, and the inventory lists them with no note."""
    r = run("report", "inventory", "--input", str(mesh_log), "--cluster-domain", "other.local", "-o", "json")
    assert notes(r) == [] and json.loads(r.stdout)["destinations"], r.stderr


def test_window_of_no_egress_beside_a_baseline_of_some():
    """--since/--until around a gap in the egress: both reports say the window holds none, and where the
    egress is (the anomalies said nothing of it, the inventory nothing but (none))."""
    window = ("--since", "2024-11-18T14:03:30Z", "--until", "2024-11-18T14:04:30Z")
    where = ("the --input logs' egress runs from 2024-11-18 14:02 UTC to 2024-11-18 14:05 UTC: give --since/--until "
             "that take in some of it")
    r = run("report", "anomalies", "--input", str(OUTBOUND), *window, "-o", "json")
    assert notes(r) == ["logpipe: note: the window holds no egress requests (the baseline holds 11), so no finding "
                        f"of egress comes of it; {where}"], r.stderr
    r = run("report", "inventory", "--input", str(OUTBOUND), *window, "-o", "json")
    assert notes(r) == [f"logpipe: note: no egress request falls in the window; {where}"], r.stderr


def test_baseline_dataset_of_egress_window_dataset_of_none(mesh_data, older_data):
    r = run("report", "anomalies", "--data", str(mesh_data), "--baseline", str(older_data), "-o", "json")
    assert notes(r) == ["logpipe: note: the window holds no egress requests (the baseline holds 8), so no finding "
                        "of egress comes of it; the window is this dataset, which holds none: `logpipe report "
                        "inventory` of it says what it holds"], r.stderr


def test_a_baseline_of_no_egress_still_says_widen_it():
    """Egress in the window alone (logs of minutes: the default baseline, before the last 24 h, is empty)."""
    r = run("report", "anomalies", "--input", str(OUTBOUND), "-o", "json")
    assert notes(r) == [WIDEN], r.stderr
    r = run("report", "inventory", "--input", str(OUTBOUND), "-o", "json")
    assert notes(r) == [], r.stderr


def test_report_of_egress_in_window_and_baseline_has_no_note():
    r = run("report", "anomalies", "--input", str(OUTBOUND), "--since", "2024-11-18T14:04:00Z", "-o", "json")
    assert notes(r) == [], r.stderr


@pytest.mark.parametrize("name", ["inventory", "anomalies"])
def test_input_of_no_access_line(tmp_path, name):
    """--input logs of no access line (istio-agent's lines): the reports' one note, with what to give."""
    agent = tmp_path / "agent.log"
    agent.write_text("2025-01-30T10:53:15.757058Z\tinfo\tads\tADS: new connection for node:waypoint-1\n")
    r = run("report", name, "--input", str(agent), "-o", "json")
    assert notes(r) == ["logpipe: note: the --input logs hold no access lines (the summary above counts what they "
                        "hold), so the report is empty; give a proxy's log (kubectl logs … -c istio-proxy)"], r.stderr


# ---- open_report_db leaves no connection open when it fails -------------------------------------------


def test_open_report_db_closes_its_connection_when_the_pods_file_is_bad(monkeypatch, tmp_path, mesh_data):
    """A --pods file that is no pod list fails after the connection is made: open_report_db closes it
    (it returned none to close, and the connection, its scratch database and its spill stayed open
    until the process ended: a library caller's, a long-lived one's)."""
    made = []
    real = db.connect

    def connect(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(db, "connect", connect)
    pods = tmp_path / "pods.json"
    pods.write_text('{"kind": "ConfigMap"}')
    with pytest.raises(InputError, match="not a Kubernetes pod list"):
        reports.open_report_db(mesh_data, pods_path=pods, report="anomalies")
    assert len(made) == 1
    with pytest.raises(Exception, match="(?i)closed"):
        made[0].execute("SELECT 1")
