"""Reports on a custom access-log format that logs less than Istio's: no %PROTOCOL%, no port, no
bytes, no client address. An HTTP request (it has a method and an authority) is HTTP without
%PROTOCOL% (queries/views/request_protocol.sql); a port, byte count or client the format never
logged is null (unknown), not 0 or a guess; the unregistered_egress ServiceEntry stays valid YAML with
a port placeholder the advice asks to fill in; no finding's advice is null. And error_share is one
definition (queries/views/is_error.sql): top_destinations counts a TCP connection that always fails
(code 0, UF/UH) as the inventory does."""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from logpipe.cli import cli

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT / "queries"

# No %PROTOCOL%, no port anywhere (PassthroughCluster has none, %DOWNSTREAM_LOCAL_ADDRESS% and
# %UPSTREAM_HOST% are not logged), no bytes.
NO_PROTOCOL_NO_PORT = ("[%START_TIME%] %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %DURATION% %REQ(:AUTHORITY)% "
                       "%UPSTREAM_CLUSTER% %DOWNSTREAM_REMOTE_ADDRESS%")
# Bytes, but no client address.
NO_CLIENT = "[%START_TIME%] %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %BYTES_RECEIVED% %REQ(:AUTHORITY)% %UPSTREAM_CLUSTER%"
T0 = dt.datetime(2025, 3, 1)


def _t(minutes: float) -> str:
    return f"{T0 + dt.timedelta(minutes=minutes):%Y-%m-%dT%H:%M:%S}.000Z"


def ingest(tmp_path: Path, lines: list[str], fmt: str) -> Path:
    log, data = tmp_path / "p.log", tmp_path / "data"
    log.write_text("\n".join(lines) + "\n")
    got = CliRunner().invoke(cli, ["ingest", "--format-string", fmt, str(log), "--data", str(data)])
    assert got.exit_code == 0, got.output
    return data


def query(data: Path, name: str) -> list[dict]:
    got = CliRunner().invoke(cli, ["query", name, "--data", str(data), "-o", "json"])
    assert got.exit_code == 0, got.output
    return json.loads(got.stdout)


_MADE: dict[tuple[Path, str], tuple] = {}


def made(data: Path, name: str) -> tuple:
    """Report ``name`` of ``data`` (a dataset no test changes) made once, as `logpipe report NAME`
    makes it: (its connection, window, document), kept open for the module's tests to write out (a
    report's run is most of their time; writing it out is not)."""
    from logpipe import reports

    if (data, name) not in _MADE:
        con, floor = reports.open_report_db(data, report=name)
        window = reports.inventory_window(con) if name == "inventory" else reports.resolve_window(con, window_floor=floor)
        _MADE[data, name] = con, window, reports.run_report(con, name, window=window)
    return _MADE[data, name]


@pytest.fixture(scope="module", autouse=True)
def _close_made():
    yield
    for con, _, _ in _MADE.values():
        con.close()
    _MADE.clear()


def rendered(data: Path, name: str, fmt: str) -> str:
    """``made(data, name)``'s report written as `-o FMT` writes it: json, text or html."""
    import io

    from logpipe import reports

    con, window, doc = made(data, name)
    if fmt == "json":
        return reports.to_json(doc)
    if fmt == "html":
        from logpipe.html import render_html

        return render_html(doc, name, con=con, window=window)
    out = io.StringIO()
    reports.render_text(doc, name, out)
    return out.getvalue()


def shared_report(data: Path, name: str) -> dict:
    """The JSON document of ``made(data, name)``, as `logpipe report NAME -o json` prints it."""
    return json.loads(rendered(data, name, "json"))


@pytest.fixture(scope="module")
def minimal(tmp_path_factory) -> Path:
    """A week of registered calls to api.stripe.com, then pastebin.com through PassthroughCluster."""
    lines = [f"[{_t(40 * i)}] GET /v1/charges 200 {20 + i % 7} api.stripe.com outbound|443||api.stripe.com "
             f"10.244.1.{i % 4 + 1}:5000" for i in range(300)]
    lines += [f"[{_t(12000 + j)}] POST /api/api_post.php 200 30 pastebin.com PassthroughCluster 10.244.2.21:5000"
              for j in range(5)]
    return ingest(tmp_path_factory.mktemp("minimal"), lines, NO_PROTOCOL_NO_PORT)


def findings(doc: dict, kind: str, destination: str) -> list[dict]:
    return [f for f in doc["findings"] if f["kind"] == kind and f["destination"] == destination]


def test_unregistered_egress_without_protocol_or_port(minimal):
    """It said protocol=TCP for an HTTP POST, its advice was null, and its ServiceEntry had a
    metadata without a name and `ports:` holding only `protocol: TCP` (a NULL port nulled them)."""
    (f,) = findings(shared_report(minimal, "anomalies"), "unregistered_egress", "pastebin.com")
    ev = f["evidence"]
    assert ev["protocol"] == "HTTP" and ev["port"] is None and ev["bytes_up"] is None
    assert f["advice"] and "port not in the logs" in f["advice"] and "set the port" in f["advice"]
    se = yaml.safe_load(ev["service_entry"])
    assert se["kind"] == "ServiceEntry" and se["metadata"] == {"name": "pastebin-com"}
    spec = se["spec"]
    assert spec["hosts"] == ["pastebin.com"] and spec["resolution"] == "DNS" and spec["location"] == "MESH_EXTERNAL"
    # a placeholder Istio refuses (ports are 1..65535), with a comment saying to set it
    assert spec["ports"] == [{"number": 0, "name": "http", "protocol": "HTTP"}]
    assert re.search(r"- number: 0  # the port is not in the logs: set the port", ev["service_entry"])


def test_new_destination_says_the_port_and_bytes_are_unknown(minimal):
    (f,) = findings(shared_report(minimal, "anomalies"), "new_destination", "pastebin.com")
    assert f["evidence"]["ports"] is None and f["evidence"]["bytes_up"] is None  # were [null] and 0
    assert "None" not in rendered(minimal, "anomalies", "text")


def test_inventory_without_protocol_or_bytes(minimal):
    """An HTTP request was 'TCP' (a null protocol coalesced) and bytes never logged were 0."""
    doc = shared_report(minimal, "inventory")
    by = {d["destination"]: d for d in doc["destinations"]}
    assert {d: (r["protocol"], r["port"], r["bytes_up"], r["bytes_down"]) for d, r in by.items()} == {
        "api.stripe.com": ("HTTP", 443, None, None), "pastebin.com": ("HTTP", None, None, None)}
    # without %UPSTREAM_HOST% whether TLS was originated is not known: not 'tcp'
    assert {r["transport"] for r in by.values()} == {None}
    assert {(s["bytes_up"], s["bytes_down"]) for s in doc["sources"]} == {(None, None)}
    assert {(r["bytes_up"], r["bytes_down"]) for r in query(minimal, "top_destinations")} == {(None, None)}


def test_no_advice_is_null_without_a_client_address(tmp_path):
    """volume_outlier's advice began with the source IP: a format without one nulled it."""
    lines = [f"[{_t(60 * i)}] POST /upload 200 1000 storage.example outbound|443||storage.example" for i in range(200)]
    lines += [f"[{_t(12000 + j)}] POST /upload 200 60000000 storage.example outbound|443||storage.example"
              for j in range(3)]
    data = ingest(tmp_path, lines, NO_CLIENT)
    doc = shared_report(data, "anomalies")
    (f,) = [f for f in doc["findings"] if f["kind"] == "volume_outlier"]
    assert f["advice"].startswith("A client (its address is not in the logs) uploaded ")
    assert f["source"] == "A client (its address is not in the logs)"  # (it was null, '-' in the text)
    assert all(f["advice"] for f in doc["findings"]), [f for f in doc["findings"] if not f["advice"]]
    # the inventory's source of those rows was an empty cell: it is named as the finding names it (client_named.sql)
    inventory = shared_report(data, "inventory")
    assert [(s["source"], s["destination_count"], s["destinations"]) for s in inventory["sources"]] == [
        ("A client (its address is not in the logs)", 1, ["storage.example"])]
    # and the destination's source_count counts that client (it was 0), as its sources list it
    assert [(d["source_count"], d["sources"]) for d in inventory["destinations"]] == [
        (1, ["A client (its address is not in the logs)"])]
    assert [r["source_count"] for r in query(data, "top_destinations")] == [1]  # (it was `sources`, 0)


def test_minimal_format_findings_all_have_advice(minimal):
    assert all(f["advice"] for f in shared_report(minimal, "anomalies")["findings"])


def test_a_blocked_connection_of_no_logged_destination_is_named_so(tmp_path):
    """A format with a cluster but neither %DOWNSTREAM_LOCAL_ADDRESS% nor an upstream host, authority or
    SNI: a BlackHoleCluster row has no destination. The inventory's cell was empty, its source's
    destinations ended in a comma, and the finding read "-> -" and "wants this address"; each now says
    the destination is not in the logs (destination_named.sql), the advice what to log to see it."""
    fmt = "[%START_TIME%] %RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER_RAW% %DOWNSTREAM_REMOTE_ADDRESS%"
    lines = [f"[{_t(i)}] 200 - outbound|443||api.stripe.com 10.244.0.24:45748" for i in range(5)]
    lines += [f"[{_t(2000 + i)}] 0 UH BlackHoleCluster 10.244.0.24:45748" for i in range(3)]
    data = ingest(tmp_path, lines, fmt)
    unnamed = "(destination not in the logs)"
    doc = shared_report(data, "inventory")
    assert {(d["destination"], d["egress_kind"]) for d in doc["destinations"]} == {
        ("api.stripe.com", "registered"), (unnamed, "blocked")}
    # (its count counts the destination not in the logs, as its list lists it: it said 1 beside these 2)
    assert [(s["destination_count"], s["destinations"]) for s in doc["sources"]] == [(2, ["api.stripe.com", unnamed])]
    (f,) = [f for f in shared_report(data, "anomalies")["findings"] if f["kind"] == "blocked_attempt"]
    assert f["destination"] == unnamed and f["evidence"]["attempts"] == 3
    assert "wants the address it dialled (the format logs none: add %DOWNSTREAM_LOCAL_ADDRESS% to see it)" in f["advice"]
    assert f"10.244.0.24 -> {unnamed}\n" in rendered(data, "anomalies", "text")


# ---- error_share: one definition --------------------------------------------------------------------

# A TCP destination that fails every time (code 0, UF/UH, no response), and an HTTP one with a 503
# and a 200 through PassthroughCluster (Istio's default text format).
FAILING = """\
[2025-03-12T03:14:14.724Z] "- - -" 0 UF - - "-" 0 0 5 - "-" "-" "-" "-" "203.0.113.60:5432" PassthroughCluster 10.244.1.27:52240 203.0.113.60:5432 10.244.1.27:34553 - -
[2025-03-12T03:14:15.724Z] "- - -" 0 UH - - "-" 0 0 0 - "-" "-" "-" "-" "-" PassthroughCluster - 203.0.113.60:5432 10.244.1.27:34554 - -
[2025-03-12T03:14:16.235Z] "GET /status/503 HTTP/1.1" 503 - via_upstream - "-" 0 19 3 2 "-" "curl/8.7.1" "11111111-dec8-49b5-a301-8b6c40659b3c" "web.example" "198.51.100.7:80" PassthroughCluster 10.244.1.27:41000 198.51.100.7:80 10.244.1.27:41001 - allow_any
[2025-03-12T03:14:17.235Z] "GET /ok HTTP/1.1" 200 - via_upstream - "-" 0 19 3 2 "-" "curl/8.7.1" "22222222-dec8-49b5-a301-8b6c40659b3c" "web.example" "198.51.100.7:80" PassthroughCluster 10.244.1.27:41002 198.51.100.7:80 10.244.1.27:41003 - allow_any
"""


@pytest.fixture(scope="module")
def failing(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("failing")
    (tmp / "f.log").write_text(FAILING)
    got = CliRunner().invoke(cli, ["ingest", str(tmp / "f.log"), "--data", str(tmp / "data")])
    assert got.exit_code == 0, got.output
    return tmp / "data"


def test_top_destinations_error_share_is_the_inventorys(failing):
    """top_destinations counted only response_code >= 400: 0.0 for a TCP destination failing every
    time, which the inventory called 1.0."""
    top = {r["destination"]: r["error_share"] for r in query(failing, "top_destinations")}
    inventory = {d["destination"]: d["error_share"] for d in shared_report(failing, "inventory")["destinations"]}
    assert top == {"203.0.113.60": 1.0, "web.example": 0.5}
    assert top == inventory
    # full-format TCP rows are still TCP (request_protocol reads a method or authority, not their absence)
    assert {d["destination"]: d["protocol"] for d in shared_report(failing, "inventory")["destinations"]} == {
        "203.0.113.60": "TCP", "web.example": "HTTP/1.1"}


def test_error_share_queries_share_one_default_set_of_failure_flags():
    """Both declare failure_flags (is_error.sql takes it as a parameter): with the same default."""
    default = re.compile(r"^-- @param failure_flags (\S+) ", re.M)
    flags = {p.name: default.findall(p.read_text()) for p in (QUERIES / "inventory" / "destinations.sql",
                                                              QUERIES / "egress" / "top_destinations.sql")}
    assert all(len(v) == 1 for v in flags.values()) and len({v[0] for v in flags.values()}) == 1, flags


# No %UPSTREAM_CLUSTER%: egress_kind has only upstream_host to go by.
NO_CLUSTER = ("%START_TIME(%s.%3f)%\t%REQ(:METHOD)%\t%RESPONSE_CODE%\t%RESPONSE_FLAGS%\t%REQ(:AUTHORITY)%\t"
              "%UPSTREAM_HOST%\t%DOWNSTREAM_LOCAL_ADDRESS%\t%DOWNSTREAM_REMOTE_ADDRESS%")


@pytest.mark.parametrize("fmt, blind", [(NO_CLUSTER, True), (NO_CLUSTER + "\t%UPSTREAM_CLUSTER_RAW%", False)])
def test_a_format_without_a_cluster_says_what_the_reports_cannot_tell(tmp_path, fmt, blind):
    """A connection BlackHoleCluster blocked (no upstream host) was in no row of the inventory, and a
    passthrough call counted as public_ip, in silence: the format's note says so at ingest, and the
    report's (from the rows, the format aside) at every report of the dataset."""
    cluster = "\tPassthroughCluster" if not blind else ""
    lines = [f"1741392000.000\tGET\t200\t-\tpastebin.com\t104.20.1.1:80\t104.20.1.1:80\t10.244.2.21:5000{cluster}",
             f"1741392001.000\t-\t0\tUH\t-\t-\t198.51.100.77:443\t10.244.1.23:33000{cluster and chr(9) + 'BlackHoleCluster'}"]
    log, data = tmp_path / "p.log", tmp_path / "data"
    log.write_text("\n".join(lines) + "\n")
    got = CliRunner().invoke(cli, ["ingest", "--format-string", fmt, str(log), "--data", str(data)])
    assert got.exit_code == 0 and got.stdout == ""
    said = "cannot tell registered, passthrough (unregistered) and blocked egress apart"
    assert (said in got.stderr) == blind
    for name in ("inventory", "anomalies"):
        got = CliRunner().invoke(cli, ["report", name, "--data", str(data), "-o", "json"])
        assert got.exit_code == 0 and ("no row of layout custom names an upstream cluster" in got.stderr) == blind
        if name == "inventory":
            inventory = json.loads(got.stdout)
    kinds = {r["destination"]: r["egress_kind"] for r in inventory["destinations"]}
    assert kinds == ({"pastebin.com": "public_ip"} if blind else
                     {"pastebin.com": "passthrough", "198.51.100.77": "blocked"})


# ---- a format without a client address: the unknown client is named wherever clients are ----------

NAMED_CLIENT = "A client (its address is not in the logs)"  # queries/views/client_named.sql
# Istio's text format without %DOWNSTREAM_REMOTE_ADDRESS%: every row's source_ip is null.
NO_CLIENT_FULL = ('[%START_TIME%] "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% '
                  '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "%REQ(:AUTHORITY)%" '
                  '"%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %DOWNSTREAM_LOCAL_ADDRESS%')


@pytest.fixture(scope="module")
def clientless(tmp_path_factory) -> Path:
    """A week of calls to api.stripe.com, then a day with plaintext HTTP to an unregistered host,
    a request to a bare IP, TLS handshakes that fail and blocked calls, none of them with a client
    address."""
    ok = '200 - "-" 0 100 20 "api.stripe.com" "52.1.2.3:443" outbound|443||api.stripe.com 52.1.2.3:443'
    lines = [f'[{_t(40 * i)}] "GET /v1/charges HTTP/1.1" {ok}' for i in range(300)]
    lines += [f'[{_t(12000 + j)}] "GET /page HTTP/1.1" 200 - "-" 0 100 20 "web.example" "198.51.100.7:80" '
              'PassthroughCluster 198.51.100.7:80' for j in range(3)]
    lines += [f'[{_t(12010 + j)}] "GET /x HTTP/1.1" 200 - "-" 0 100 20 "203.0.113.9" "203.0.113.9:80" '
              'PassthroughCluster 203.0.113.9:80' for j in range(2)]
    lines += [f'[{_t(12020 + j / 10)}] "GET /pay HTTP/1.1" 503 UF "TLS_error:CERTIFICATE_VERIFY_FAILED" 0 0 5 '
              '"api.bank.example" "198.51.100.9:443" outbound|443||api.bank.example 198.51.100.9:443' for j in range(12)]
    lines += [f'[{_t(12030 + j)}] "GET /b HTTP/1.1" 502 - "-" 0 0 0 "evil.example" "-" BlackHoleCluster '
              '198.51.100.66:80' for j in range(2)]
    return ingest(tmp_path_factory.mktemp("clientless"), lines, NO_CLIENT_FULL)


def test_findings_name_the_client_of_no_address(clientless):
    """The findings that list their sources (string_agg of source_ip, which skips nulls) had a null
    source when no client was logged, the text report '-'; each names the client as the inventory
    and volume_outlier's advice do (client_named.sql)."""
    doc = shared_report(clientless, "anomalies")
    kinds = {f["kind"] for f in doc["findings"]}
    assert {"new_destination", "plaintext_egress", "unregistered_egress", "direct_ip_egress", "tls_failure",
            "error_spike", "blocked_attempt"} <= kinds, kinds
    assert [(f["kind"], f["destination"]) for f in doc["findings"] if f["source"] != NAMED_CLIENT] == []
    text = rendered(clientless, "anomalies", "text")
    assert f"{NAMED_CLIENT} -> web.example\n" in text and " - -> " not in text


def test_inventory_destinations_count_the_client_of_no_address(clientless):
    """A destination reached only by clients with no logged address said sources 0 beside its
    requests; it counts them as the one source the sources table lists."""
    doc = shared_report(clientless, "inventory")
    assert [s["source"] for s in doc["sources"]] == [NAMED_CLIENT]
    assert {d["destination"]: (d["source_count"], d["sources"]) for d in doc["destinations"]} == {
        d: (1, [NAMED_CLIENT]) for d in ("api.stripe.com", "web.example", "203.0.113.9", "api.bank.example", "evil.example")}


def test_html_pair_chart_names_the_client_of_no_address(clientless):
    """The pair chart labelled such a client '?'."""
    block = re.search(r"<script type=application/json id=chart-specs>(.*?)</script>", rendered(clientless, "anomalies", "html"),
                      re.S).group(1)
    pairs = json.loads(block)["pairs"]["data"]["values"]
    assert pairs and {p["source"] for p in pairs} == {NAMED_CLIENT}
