"""What counts as a refusal (queries/egress/denied.sql, queries/anomalies/authz_denial.sql, and the
error shares' is_error.sql), on tests/logs/denials.log: a waypoint's 403 that httpbin itself answered
(via_upstream), a waypoint's RBAC 403, a 1.8-format sidecar 403 (no response_code_details), and
ztunnel's lines (text and JSON) with a policy rejection, a policy change and a connection failure."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from logpipe.cli import cli

LOG = Path(__file__).resolve().parent / "logs" / "denials.log"


def run(*args) -> list | dict:
    r = CliRunner().invoke(cli, [*args, "--input", str(LOG), "-o", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def denied() -> dict:
    return {(row["source_ip"], row["destination"]): row for row in run("query", "denied")}


def test_a_403_the_destination_answered_is_no_refusal(denied):
    """httpbin's /status/403 through the waypoint (details via_upstream) was the provider's answer."""
    assert ("10.244.0.24", "httpbin.org") not in denied


def test_a_mesh_403_and_a_403_of_unknown_details_are_refusals(denied):
    assert denied["10.244.1.41", "httpbin.org"]["denied_by"] == "rbac"
    assert denied["10.244.1.23", "api.partner.example"]["denied_by"] == "http 403"  # (1.8: no details logged)
