"""The same data gives the same rows in the same order, byte for byte, whatever order its lines came in
and however many threads read them: each query's ORDER BY orders by every column that tells two rows
apart, a finding's sample request ids break ties in time by id, and a most common value breaks ties by
the least (most_common.sql). The data below is all ties (equal counts, equal start times, equal
durations, equal uploads), read in its order with 1 thread and reversed with 2: the old queries
followed the input's order somewhere in each (the inventory's rows of one destination and port,
mode()'s protocol and transport, the sample ids, latency_outlier's single requests, …), so one of the
two orders gave other rows or another order than the other."""
from __future__ import annotations

import datetime as dt

import pytest

from test_report import DAY, write_dataset

AT, BEFORE = DAY + dt.timedelta(hours=10), DAY - dt.timedelta(days=2)
# Istio's default text format (1.9+): an HTTP request, and a TCP connection with its client's SNI.
HTTP = ('[{t}] "{method} /x {proto}" {code} - {details} - "-" {rx} 120 {ms} - "-" "curl/8" "{rid}" "{auth}" '
        '"{up}" {cluster} 10.244.0.18:38818 {dla} {dra}:56180 - {route}\n')
TCP = ('[{t}] "- - -" 0 - - - "-" 10 10 40 - "-" "-" "-" "-" "{up}" {cluster} 10.244.2.21:60757 {up} '
       '{dra}:58550 {sni} -\n')


def _t(at: dt.datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def http(auth, cluster, rids, at=AT, step=dt.timedelta(minutes=1), proto="HTTP/1.1", port=80, up_port=None,
         ms=100, rx=0, code=200, client="10.244.1.21", route=None, method="GET"):
    """One request per id of rids, step apart from at (step 0: all at once)."""
    route = route or ("allow_any" if cluster == "PassthroughCluster" else "block_all" if cluster == "BlackHoleCluster"
                      else "default")
    up = "-" if cluster == "BlackHoleCluster" else f"203.0.113.40:{up_port or port}"
    details = "via_upstream" if code == 200 else "direct_response"
    return [HTTP.format(t=_t(at + i * step), method=method, proto=proto, code=code, details=details, rx=rx, ms=ms,
                        rid=rid, auth=auth, up=up, cluster=cluster, dla=f"203.0.113.40:{port}", dra=client, route=route)
            for i, rid in enumerate(rids)]


def tcp(sni, cluster, n, at=AT):
    return [TCP.format(t=_t(at + dt.timedelta(minutes=i)), up="203.0.113.61:443", cluster=cluster, dra="10.244.2.21",
                       sni=sni) for i in range(n)]


SAME = dt.timedelta(0)
LINES = (
    http("known.example", "outbound|80||known.example", ["k-1"], at=BEFORE)
    # inventory: one destination and port left two ways, as often (egress_kind tells the rows apart)
    + http("both.example", "outbound|80||both.example", ["b-1", "b-2"])
    + http("both.example", "PassthroughCluster", ["b-3", "b-4"])
    # inventory protocol: as many HTTP/2 as HTTP/1.1 requests (the least, HTTP/1.1, is the one)
    + http("proto.example", "outbound|80||proto.example", ["p-1", "p-2"], proto="HTTP/2")
    + http("proto.example", "outbound|80||proto.example", ["p-3", "p-4"])
    # inventory transport: as many connections with an SNI (tls) as HTTP requests sent on over TLS
    # (tls-origination): tls; protocol TLS and HTTP/1.1 tie too: HTTP/1.1
    + tcp("tlsmix.example", "outbound|443||tlsmix.example", 2)
    + http("tlsmix.example", "outbound|443||tlsmix.example", ["t-1", "t-2"], port=443)
    # registry_only's protocol: HTTP/2 and HTTP/1.1 alike through PassthroughCluster
    + http("pt.example", "PassthroughCluster", ["q-1", "q-2"], proto="HTTP/2")
    + http("pt.example", "PassthroughCluster", ["q-3", "q-4"])
    # sample request ids: five requests at the same time, ids in reverse
    + http("tie.example", "PassthroughCluster", ["r-e", "r-d", "r-c", "r-b", "r-a"], step=SAME)
    + http("203.0.113.77", "PassthroughCluster", ["s-e", "s-d", "s-c", "s-b", "s-a"], step=SAME)
    # unregistered_egress and by_source: one destination on two ports, as many requests each
    + http("ports.example", "PassthroughCluster", ["u-1", "u-2"], port=8080)
    + http("ports.example", "PassthroughCluster", ["u-3", "u-4"], port=80)
    # denied: blocked on two ports alike
    + http("deny.example", "BlackHoleCluster", ["d-1", "d-2"], port=8080, code=502)
    + http("deny.example", "BlackHoleCluster", ["d-3", "d-4"], port=80, code=502)
    # latency_outlier: three single requests of the same duration (too few for a p99 of the window)
    + http("lat.example", "outbound|80||lat.example", [f"l-{i:02}" for i in range(20)], at=BEFORE)
    + http("lat.example", "outbound|80||lat.example", ["l-z", "l-y", "l-x"], ms=9000,
           at=AT + dt.timedelta(hours=3), step=dt.timedelta(minutes=-1))
    # volume_outlier: two clients uploading as much to one destination (each called it in the baseline:
    # a pair new to it would be new_destination's upload alone)
    + http("vol.example", "outbound|80||vol.example", ["v-01"], client="10.244.1.52", at=BEFORE)
    + http("vol.example", "outbound|80||vol.example", ["v-02"], client="10.244.1.51", at=BEFORE)
    + http("vol.example", "outbound|80||vol.example", ["v-1"], rx=20_000_000, client="10.244.1.52", method="POST")
    + http("vol.example", "outbound|80||vol.example", ["v-2"], rx=20_000_000, client="10.244.1.51", method="POST")
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each query's rows (as lists of dicts) from the lines in their order with 1 thread, and reversed
    with 2 (the old queries gave other rows in the first alone: the assertions below fail there; the
    four combinations cost this module 15 s of a `make test`)."""
    from logpipe.db import connect
    from logpipe.queries import load_queries, run_query

    queries = load_queries()
    names = ["destinations", "registry_only", "by_source", "denied", "new_destination", "unregistered_egress",
             "direct_ip_egress", "plaintext_egress", "latency_outlier", "volume_outlier"]
    out = {}
    for order, lines, threads in (("given", LINES, 1), ("reversed", LINES[::-1], 2)):
        tmp = tmp_path_factory.mktemp(order)
        (tmp / "egress.log").write_text("".join(lines))
        con = connect(write_dataset([tmp / "egress.log"], tmp / "data"))
        con.execute(f"SET threads = {threads}")
        out[order, threads] = {n: run_query(con, queries[n], {}).to_pylist() for n in names}
        con.close()
    return out


def _each(runs, name):
    """The query's rows of each run: (order, threads), rows."""
    return [(key, r[name]) for key, r in runs.items()]


def test_every_run_gives_the_same_rows(runs):
    for name in next(iter(runs.values())):
        first, *others = [r[name] for r in runs.values()]
        assert all(other == first for other in others), name


def test_the_inventory_orders_rows_of_one_destination_and_port_by_egress_kind(runs):
    for key, rows in _each(runs, "destinations"):
        got = [(r["destination"], r["port"], r["egress_kind"], r["requests"]) for r in rows
               if r["destination"] == "both.example"]
        assert got == [("both.example", 80, "passthrough", 2), ("both.example", 80, "registered", 2)], key


def test_a_most_common_value_breaks_ties_by_the_least(runs):
    for key, rows in _each(runs, "destinations"):
        inv = {r["destination"]: r for r in rows}
        assert inv["proto.example"]["protocol"] == "HTTP/1.1", key
        assert (inv["tlsmix.example"]["protocol"], inv["tlsmix.example"]["transport"]) == ("HTTP/1.1", "tls"), key
    for key, rows in _each(runs, "registry_only"):
        assert {r["destination"]: r["protocol"] for r in rows}["pt.example"] == "HTTP/1.1", key


def test_sample_request_ids_of_one_time_are_the_least_ids(runs):
    for name, dest, ids in (("new_destination", "tie.example", ["r-a", "r-b", "r-c"]),
                            ("unregistered_egress", "tie.example", ["r-a", "r-b", "r-c"]),
                            ("plaintext_egress", "tie.example", ["r-a", "r-b", "r-c"]),
                            ("direct_ip_egress", "203.0.113.77", ["s-a", "s-b", "s-c"])):
        for key, rows in _each(runs, name):
            (f,) = [f for f in rows if f["destination"] == dest]
            assert f["evidence"]["sample_request_ids"] == ids, (name, key)


def test_rows_that_tie_on_counts_are_ordered_by_their_other_keys(runs):
    for key, rows in _each(runs, "unregistered_egress"):
        assert [r["evidence"]["port"] for r in rows if r["destination"] == "ports.example"] == [80, 8080], key
    for key, rows in _each(runs, "by_source"):
        assert [r["destination_port"] for r in rows if r["destination"] == "ports.example"] == [80, 8080], key
    for key, rows in _each(runs, "denied"):
        assert [r["destination_port"] for r in rows if r["destination"] == "deny.example"] == [80, 8080], key
    for key, rows in _each(runs, "latency_outlier"):
        # (one finding of the destination's single requests: of equal durations, the earliest first)
        assert [f["evidence"]["sample_request_ids"] for f in rows if f["destination"] == "lat.example"] == [
            ["l-x", "l-y", "l-z"]], key
    for key, rows in _each(runs, "volume_outlier"):
        assert [f["source"] for f in rows] == ["10.244.1.51", "10.244.1.52"], key
