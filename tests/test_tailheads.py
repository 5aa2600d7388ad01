"""`tail -f` of several node log files (``tail -F /var/log/pods/*/istio-proxy/0.log``): each header
(``==> FILE <==``) names the pod and container of the lines after it, up to the next, however the
input is cut into batches: one process or the workers' byte ranges, stdin, a stream, a file read on
where an earlier ingest stopped (logpipe/tailheads.py)."""
from __future__ import annotations

import io
import json
import os
import threading
import time

import duckdb
import pytest
from click.testing import CliRunner
from conftest import SAMPLES, parse_file

from logpipe import ingest, lanes, pipeline, workers
from logpipe.cli import cli
from logpipe.parse import Parser
from logpipe.sources import Input
from logpipe.tailheads import header_at

ACCESS = [x for x in (SAMPLES / "waypoint-egress-1.23.log").read_text().splitlines() if x.startswith("[")]
PODS = [("istio-egress", "waypoint-7d9f8b6c4-x2k8p", "0f6a2b3c-1d2e-4f50-8a9b-0c1d2e3f4a5b"),
        ("default", "sleep-5c4d7f9b8-abcde", "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d")]


def header(k: int) -> str:
    ns, pod, uid = PODS[k]
    return f"==> /var/log/pods/{ns}_{pod}_{uid}/istio-proxy/0.log <=="


def cri(line: str) -> str:
    return f"2025-01-30T10:53:24.326000321Z stdout F {line}"


def capture(sections: list[tuple[int, int]]) -> tuple[str, dict[int, str | None]]:
    """tail's output: for each (pod k, n lines) its header (a blank line before all but the first)
    and n CRI lines; and the pod each line number should get (None: no row)."""
    out, want, i = [], {}, 0
    for s, (k, n) in enumerate(sections):
        if s:
            out.append("")
        out.append(header(k))
        for _ in range(n):
            out.append(cri(ACCESS[i % len(ACCESS)]))
            want[len(out)] = PODS[k][1]
            i += 1
    return "\n".join(out) + "\n", want


SECTIONS = [(0, 5), (1, 3), (0, 1), (1, 7)]


def pods(records: list[dict]) -> dict[int, str | None]:
    return {r["line_number"]: r["pod"] for r in records}


class KeptPool(lanes.WorkerPool):
    """A pool of two lanes that an ingest's end (``close``) leaves running: the module's ingests in
    the workers share its worker process, booted once (~0.5 s of CPU each), not one per ingest."""

    def close(self) -> None:
        pass

    def shut(self) -> None:
        super().close()


@pytest.fixture(scope="module")
def pool():
    kept = KeptPool(None, 2)
    yield kept
    kept.shut()


def test_each_header_names_the_lines_after_it(tmp_path):
    text, want = capture(SECTIONS)
    path = tmp_path / "tail.log"
    path.write_text(text)
    records, rejects = parse_file(path)
    assert pods(records) == want
    assert {r["container"] for r in records} == {"istio-proxy"}
    assert [r["reason"] for r in rejects].count(
        "tail's header of the file it reads next (tail -f of several files), not an access line") == 4


def test_a_line_s_own_prefix_and_a_file_that_names_no_pod():
    """kubectl's prefix names its line's pod, whatever the header; a header of another file (not a
    node's container log) names none; an input that does not start with a header is no `tail -f`
    of several files: its header-like lines name nothing (header=None, the readers' default)."""
    p = Parser()
    lines = [header(0), f"[pod/other-1/istio-proxy] {ACCESS[1]}", cri(ACCESS[2]),
             "==> /tmp/access.log <==", cri(ACCESS[3])]
    got = pods(p.parse_batch(lines, header="").records.to_pylist())
    assert got == {2: "other-1", 3: PODS[0][1], 5: None}
    assert pods(p.parse_batch([cri(ACCESS[0])] + lines).records.to_pylist()) == {1: None, 3: "other-1", 4: None, 6: None}


@pytest.mark.parametrize("cut", [1, 2, 7, 9, 12, 15])
def test_a_header_carries_into_the_next_batches(cut):
    """A sequential reader gives each batch the header in effect after the last: the same pods as in
    one batch, wherever the batches are cut (even right after a header, or between its lines)."""
    text, want = capture(SECTIONS)
    lines = text.splitlines()
    p = Parser()
    first = p.parse_batch(lines[:cut], "x", 1, header="")  # (the reader saw the input start with one)
    second = p.parse_batch(lines[cut:], "x", cut + 1, header=first.header)
    assert pods(first.records.to_pylist() + second.records.to_pylist()) == want
    assert second.header == header(1)  # (the last of the input)


def test_small_inputs_in_the_workers_a_capture_and_a_plain_log(tmp_path, monkeypatch, pool):
    """Small inputs parsed several in a batch (workers._stage_inputs): a `tail -f` capture among
    them is read alone, its headers naming its lines; the other input's lines are named by none."""
    text, want = capture(SECTIONS)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a-tail.log").write_text(text)
    (logs / "b-plain.log").write_text("\n".join(cri(x) for x in ACCESS[:5]) + "\n")
    for k in range(40):  # (enough small inputs for the workers' batches of several)
        (logs / f"c{k:02}.log").write_text(ACCESS[k % len(ACCESS)] + "\n")
    monkeypatch.setenv("LOGPIPE_WORKERS", "2")
    data = tmp_path / "data"
    ingest.ingest_paths([str(logs)], str(data), err=io.StringIO(), progress=False, pool=pool)
    got = duckdb.sql(f"select source, line_number, pod from read_parquet('{data}/date=*/*.parquet')").fetchall()
    assert {n: pod for src, n, pod in got if src.endswith("a-tail.log")} == want
    assert {pod for src, _, pod in got if not src.endswith("a-tail.log")} == {None}


def test_workers_ranges_stdin_and_one_process_agree(tmp_path, monkeypatch, pool):
    """The workers' byte ranges (each gets the header in effect at its start from the parent's
    reading), a compressed input's chunks, stdin in one process, and chunks handed to the lanes (as
    stdin's and a compressed input's are): the same rows."""
    import gzip

    text, want = capture([(k % 2, 40 + k) for k in range(16)])  # (~250 kB: ~16 ranges of 16 kB, each a task)
    path = tmp_path / "tail.log"
    path.write_text(text)
    packed = tmp_path / "tail.log.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    monkeypatch.setattr(lanes, "PARALLEL_MIN_BYTES", 1)
    for module in (workers, pipeline):
        monkeypatch.setattr(module, "CHUNK_BYTES", 16 << 10)
    monkeypatch.setattr(workers, "STAGE_TASK_BYTES", 16 << 10)
    for log in (path, packed):
        monkeypatch.setenv("LOGPIPE_WORKERS", "2")
        data = tmp_path / f"data-{log.name}"
        summary = ingest.ingest_paths([str(log)], str(data), err=io.StringIO(), progress=False, pool=pool)
        assert summary.files > 2 or log is packed  # (the workers wrote parts of their own)
        got = dict(duckdb.sql(f"select line_number, pod from read_parquet('{data}/date=*/*.parquet')").fetchall())
        assert got == want
    stdin = CliRunner().invoke(cli, ["parse", "-", "-o", "ndjson"], input=text, env={"LOGPIPE_WORKERS": "1"})
    assert pods([json.loads(x) for x in stdin.stdout.splitlines()]) == want
    # bytes (a compressed input's, stdin's) in many chunks to the lanes: the parent gives each the
    # header before it. (Chunks of ~10 kB, not smaller: each costs a parser call, ~10 ms; the sections
    # are 13-18 kB, so chunks still start mid-section, and some hold no header, after one that holds none.)
    raw = text.encode()
    chunks, at = [], 0
    while at < len(raw):
        end = raw.index(b"\n", min(at + 10_000, len(raw) - 1)) + 1
        chunks.append((raw[at:end], end))
        at = end
    assert len(chunks) > 10
    headless = [b"\n==> " not in b"\n" + body for body, _ in chunks]
    assert any(a and b for a, b in zip(headless, headless[1:]))  # (a header carried over two chunks)
    got = [b for b, _ in workers.parse_parallel(iter(chunks), pool.use(Parser()), "x", 1)]
    assert pods([r for b in got for r in b.records.to_pylist()]) == want


def test_a_grown_capture_is_read_on_under_its_last_header(tmp_path, monkeypatch, pool):
    """Ingested, then grown: the new lines before any new header are the last header's file's
    (``tailheads.header_at`` finds it before where the first ingest stopped), in one process and in
    the workers alike."""
    text, want = capture(SECTIONS)
    more = "\n".join(cri(x) for x in ACCESS[:4]) + "\n"
    for lanes_ in ("1", "2"):
        monkeypatch.setenv("LOGPIPE_WORKERS", lanes_)
        monkeypatch.setattr(lanes, "PARALLEL_MIN_BYTES", 1)
        path = tmp_path / lanes_ / "tail.log"
        path.parent.mkdir()
        path.write_text(text)
        data = tmp_path / lanes_ / "data"
        given = pool if lanes_ == "2" else None
        ingest.ingest_paths([str(path)], str(data), err=io.StringIO(), progress=False, pool=given)
        assert header_at(Input(str(path)), len(text.encode())) == header(1)
        with open(path, "a") as f:
            f.write(more)
        s = ingest.ingest_paths([str(path)], str(data), err=io.StringIO(), progress=False, pool=given)
        assert s.counts.parsed == 4
        got = dict(duckdb.sql(f"select line_number, pod from read_parquet('{data}/date=*/*.parquet')").fetchall())
        n = len(text.splitlines())
        assert got == {**want, **{n + k: PODS[1][1] for k in range(1, 5)}}


def test_header_at_looks_back_over_blocks(tmp_path, monkeypatch):
    from logpipe import tailheads

    monkeypatch.setattr(tailheads, "HEADER_SCAN", 64)  # (blocks shorter than a line: a header across two)
    text, _ = capture(SECTIONS)
    path = tmp_path / "tail.log"
    path.write_text(text)
    raw = text.encode()
    for end in (i + 1 for i, c in enumerate(raw) if c == 0x0A):  # (byte offsets: some lines are not ASCII)
        before = [x for x in raw[:end].decode().splitlines() if x.startswith("==> ")]
        assert header_at(Input(str(path)), end) == before[-1]
    other = tmp_path / "plain.log"
    other.write_text("x\n==> /var/log/pods/a_b_c/d/0.log <==\ny\n")  # (not tail's output: it starts otherwise)
    assert header_at(Input(str(other)), other.stat().st_size) is None


def stream_in_two_writes(data, raw: bytes, first: int) -> str:
    """A stream run in this process (``Streamer``; alerts off: not what is tested), its stdin a pipe
    written twice: ``raw``'s first ``first`` bytes, then, once they are in a part file (a micro-batch of
    their own), the rest. Checks it exits 0 and returns its stderr."""
    from logpipe.stream import StreamOptions, Streamer

    r, w = os.pipe()

    def feed() -> None:
        with open(w, "wb", buffering=0) as f:
            f.write(raw[:first])
            deadline = time.monotonic() + 60
            while not any(data.glob("date=*/*.parquet")) and time.monotonic() < deadline:
                time.sleep(0.02)
            f.write(raw[first:])

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    err = io.StringIO()
    try:
        code = Streamer(str(data), StreamOptions(alerts=False, flush_seconds=0.1), stdin_fd=r, stderr=err).run()
    finally:
        writer.join(60)
        os.close(r)
    assert code == 0, err.getvalue()
    return err.getvalue()


def test_stream_carries_a_header_across_its_micro_batches(tmp_path):
    """``tail -F … | logpipe stream``: a micro-batch that starts between a header's lines gets that
    header's pod (the stream flushes after each of its two reads here)."""
    text, want = capture(SECTIONS)
    raw = text.encode()
    cut = raw.index(b"\n", raw.index(header(1).encode()) + 200) + 1  # (after the second header's first lines)
    data = tmp_path / "data"
    err = stream_in_two_writes(data, raw, cut)
    assert len(list(data.glob("date=*/*.parquet"))) >= 2, err  # (two micro-batches)
    got = dict(duckdb.sql(f"select line_number, pod from read_parquet('{data}/date=*/*.parquet')").fetchall())
    assert got == want


def test_a_capture_after_a_hole(tmp_path, monkeypatch, pool):
    """A capture copytruncated under tail (a hole before its first header, logpipe/holes.py): its
    headers still name its lines, in one process and in the workers' ranges."""
    text, want = capture([(k % 2, 30) for k in range(12)])
    path = tmp_path / "tail.log"
    with open(path, "wb") as f:
        f.seek(70_000)
        f.write(text.encode())
    assert pods(parse_file(path)[0]) == want
    monkeypatch.setattr(lanes, "PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(workers, "STAGE_TASK_BYTES", 16 << 10)
    monkeypatch.setattr(workers, "CHUNK_BYTES", 16 << 10)
    monkeypatch.setenv("LOGPIPE_WORKERS", "2")
    data = tmp_path / "data"
    assert ingest.ingest_paths([str(path)], str(data), err=io.StringIO(), progress=False, pool=pool).files > 2
    got = dict(duckdb.sql(f"select line_number, pod from read_parquet('{data}/date=*/*.parquet')").fetchall())
    assert got == want


# ---- kubectl cluster-info dump ------------------------------------------------------------------
# As kubectl writes it (pkg/cmd/clusterinfo/clusterinfo_dump.go): the nodes, then for each namespace its
# resources (indented JSON), then each pod's containers' logs between START and END marks, an error
# line where it got no log.

def _resources(kind: str, items: list[dict]) -> list[str]:
    return json.dumps({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "770"}, "items": items},
                      indent=4).splitlines()


def _pod(ns: str, name: str, containers: list[str]) -> dict:
    return {"metadata": {"name": name, "namespace": ns, "labels": {"app": name.split("-")[0]}},
            "spec": {"containers": [{"name": c, "image": f"docker.io/istio/{c}:1.23.0"} for c in containers]},
            "status": {"phase": "Running", "podIP": "10.244.0.18"}}


def _section(ns: str, pod: str, container: str, lines: list[str]) -> list[str]:
    return ([f"==== START logs for container {container} of pod {ns}/{pod} ===="] + lines
            + [f"==== END logs for container {container} of pod {ns}/{pod} ===="])


WAYPOINT, SLEEP = PODS[0][1], PODS[1][1]
REQUEST_ERROR = ('Request log error: the server rejected our request for an unknown reason '
                 '(get pods sleep-5c4d7f9b8-abcde)')


def cluster_dump(extra: int = 0) -> tuple[str, dict[int, tuple[str, str]], dict[str, int]]:
    """A saved `kubectl cluster-info dump`: its text, the pod and container each access line should
    get, and how many lines of each kind of noise it holds."""
    out: list[str] = _resources("NodeList", [{"metadata": {"name": "kind-control-plane"}, "status": {"nodeInfo": {
        "kubeletVersion": "v1.31.0", "containerRuntimeVersion": "containerd://1.7.18"}}}])
    out += _resources("EventList", [])
    out += _resources("PodList", [_pod("kube-system", "kube-proxy-x7k2p", ["kube-proxy"])])
    out += _section("kube-system", "kube-proxy-x7k2p", "kube-proxy",
                    ['I0130 10:53:20.123456       1 server_linux.go:66] "Using iptables proxy"'])
    out += _resources("EventList", [])
    out += _resources("PodList", [_pod("istio-egress", WAYPOINT, ["istio-proxy"])])
    want, i = {}, 0
    access = []
    for _ in range(3 + extra):
        access.append(ACCESS[i % len(ACCESS)])
        i += 1
    start = len(out) + 2
    out += _section("istio-egress", WAYPOINT, "istio-proxy",
                    ["2025-01-30T10:53:20.270118Z\tinfo\txdsproxy connected to upstream XDS server"] + access)
    want.update({start + 1 + k: (WAYPOINT, "istio-proxy") for k in range(len(access))})
    out += _resources("PodList", [_pod("default", SLEEP, ["sleep", "istio-proxy"])])
    out += _section("default", SLEEP, "sleep", [REQUEST_ERROR])
    start = len(out) + 2
    out += _section("default", SLEEP, "istio-proxy", [ACCESS[(i + k) % len(ACCESS)] for k in range(2 + extra)])
    want.update({start + k: (SLEEP, "istio-proxy") for k in range(2 + extra)})
    text = "\n".join(out) + "\n"
    marks = sum(x.startswith("==== ") for x in out)
    resources = sum(1 for x in out if x[:1] in "{} " or x.startswith('"'))
    return text, want, {"marks": marks, "resources": resources}


def _named(records: list[dict]) -> dict[int, tuple[str, str]]:
    return {r["line_number"]: (r["pod"], r["container"]) for r in records}


def test_a_cluster_info_dump_names_its_sections_lines(tmp_path):
    """A saved dump (stdout): each START names the pod and container of the lines after it, up to its
    END; the marks are noise as tail's headers are, the error line too, and the resource JSON around
    the sections is noise with a reason of its own: every line is a row or a reject."""
    from logpipe.exact import NOISE_RULES
    from logpipe.tailheads import RESOURCES

    text, want, n = cluster_dump()
    path = tmp_path / "cluster-info.dump"
    path.write_text(text)
    records, rejects = parse_file(path)
    assert _named(records) == want
    reasons = [r["reason"] for r in rejects]
    assert {r["class"] for r in rejects} == {"noise"}
    assert reasons.count(NOISE_RULES["kubectl_log_mark"]) == n["marks"] == 8
    assert reasons.count(NOISE_RULES["kubectl_log_error"]) == 1
    assert reasons.count(RESOURCES) == n["resources"]
    assert len(records) + len(rejects) == len(text.splitlines())  # (no blank, no joined line)


@pytest.mark.parametrize("cut", [1, 40, 95, 97, 104, 120])
def test_a_dump_s_sections_carry_into_the_next_batch(cut):
    """Cut anywhere (in the resource JSON, right after a START, between a section's lines, after an
    END), a sequential reader's batches read the dump as one batch does."""
    text, want, _ = cluster_dump()
    lines = text.splitlines()
    assert cut < len(lines)
    p = Parser()
    first = p.parse_batch(lines[:cut], "x", 1, header="")
    second = p.parse_batch(lines[cut:], "x", cut + 1, header=first.header)
    assert _named(first.records.to_pylist() + second.records.to_pylist()) == want
    whole = p.parse_batch(lines, "x", 1, header="")
    assert (sorted(first.rejects.to_pylist() + second.rejects.to_pylist(), key=lambda r: r["line_number"])
            == sorted(whole.rejects.to_pylist(), key=lambda r: r["line_number"]))


def test_ingest_reads_a_dump_and_its_output_directory(tmp_path, monkeypatch, pool):
    """`ingest` of a saved dump reads it (it starts as its nodes.json does: indented JSON, which is
    left out), in one process and in the workers' ranges; of a dump's --output-directory, each pod's
    logs.txt (its sections alone) is read and its resource files left out."""
    text, want, _ = cluster_dump(extra=60)  # (~30 kB: ranges of 4 kB start in sections and JSON alike)
    path = tmp_path / "dump" / "cluster-info.dump"
    path.parent.mkdir()
    path.write_text(text)
    nodes = tmp_path / "dir" / "nodes.json"
    nodes.parent.mkdir()
    nodes.write_text("\n".join(_resources("NodeList", [{"metadata": {"name": "kind-control-plane"}}])) + "\n")
    logs = tmp_path / "dir" / "istio-egress" / WAYPOINT / "logs.txt"
    logs.parent.mkdir(parents=True)
    logs.write_text("\n".join(_section("istio-egress", WAYPOINT, "istio-proxy", ACCESS[:4])) + "\n")
    monkeypatch.setattr(lanes, "PARALLEL_MIN_BYTES", 1)
    for module in (workers, pipeline):
        monkeypatch.setattr(module, "CHUNK_BYTES", 4 << 10)
    monkeypatch.setattr(workers, "STAGE_TASK_BYTES", 4 << 10)
    for lanes_ in ("1", "2"):
        monkeypatch.setenv("LOGPIPE_WORKERS", lanes_)
        data = tmp_path / f"data-{lanes_}"
        s = ingest.ingest_paths([str(path)], str(data), err=io.StringIO(), progress=False,
                                pool=pool if lanes_ == "2" else None)
        assert s.counts.malformed == 0 and s.counts.parsed == len(want)
        assert lanes_ == "1" or s.files > 2  # (the workers' ranges)
        got = duckdb.sql(f"select line_number, pod, container from read_parquet('{data}/date=*/*.parquet')").fetchall()
        assert {n: (p, c) for n, p, c in got} == want
    err = io.StringIO()
    data = tmp_path / "data-dir"
    s = ingest.ingest_paths([str(tmp_path / "dir")], str(data), err=err, progress=False)
    assert "nodes.json (indented JSON)" in err.getvalue()
    got = duckdb.sql(f"select line_number, pod, container from read_parquet('{data}/date=*/*.parquet')").fetchall()
    assert {n: (p, c) for n, p, c in got} == {k: (WAYPOINT, "istio-proxy") for k in range(2, 6)}


def test_ingest_s_probe_of_a_large_dump_reads_it_with_its_sections(tmp_path, monkeypatch):
    """An input of PROBE_MIN_BYTES or more (a real dump is: its resource JSON alone) is probed first:
    the probe reads its first lines as the ingest does, its nodes' JSON noise under no section, not
    malformed (it was refused: "N of its first N access lines (100%) are malformed"); so is a grown
    dump read on in its resource JSON (``header_at``)."""
    monkeypatch.setattr(ingest, "PROBE_MIN_BYTES", 1)
    text, want, _ = cluster_dump(extra=60)
    nodes = _resources("NodeList", [_pod("", f"node-{k}", ["kubelet"]) for k in range(40)])  # (its 600 lines first)
    lines = [x + "\n" for x in nodes] + text.splitlines(keepends=True)
    want = {n + len(nodes): names for n, names in want.items()}
    path = tmp_path / "cluster-info.dump"
    cut = next(k for k, x in enumerate(lines) if x.startswith("==== END")) + 1  # (then resource JSON)
    path.write_text("".join(lines[:cut]))
    data = tmp_path / "data"
    err = io.StringIO()
    s = ingest.ingest_paths([str(path)], str(data), err=err, progress=False)
    assert "are malformed" not in err.getvalue() and s.counts.malformed == 0 and s.counts.read == cut
    with open(path, "a") as f:
        f.write("".join(lines[cut:]))
    s = ingest.ingest_paths([str(path)], str(data), err=err, progress=False)
    assert "are malformed" not in err.getvalue() and s.counts.malformed == 0 and s.counts.parsed == len(want)
    got = duckdb.sql(f"select line_number, pod, container from read_parquet('{data}/date=*/*.parquet')").fetchall()
    assert {n: (p, c) for n, p, c in got} == want
    s = ingest.ingest_paths([str(path)], str(tmp_path / "fresh"), err=err, progress=False)
    assert "are malformed" not in err.getvalue() and s.counts.parsed == len(want)


def test_a_grown_dump_is_read_on_in_its_section(tmp_path):
    """A dump ingested while kubectl wrote it, then read on: the lines after where the first ingest
    stopped are of the section open there (``header_at``), or resource JSON before the first."""
    text, want, _ = cluster_dump()
    lines = text.splitlines(keepends=True)
    cut = max(want) - 2  # (lines before the last two access lines: in the sleep pod's istio-proxy section)
    path = tmp_path / "cluster-info.dump"
    path.write_text("".join(lines[:cut]))
    data = tmp_path / "data"
    ingest.ingest_paths([str(path)], str(data), err=io.StringIO(), progress=False)
    with open(path, "a") as f:
        f.write("".join(lines[cut:]))
    s = ingest.ingest_paths([str(path)], str(data), err=io.StringIO(), progress=False)
    assert s.counts.malformed == 0 and s.counts.parsed == 2
    got = duckdb.sql(f"select line_number, pod, container from read_parquet('{data}/date=*/*.parquet')").fetchall()
    assert {n: (p, c) for n, p, c in got} == want
    assert header_at(Input(str(path)), 10) == ""  # (in the nodes' JSON: under no section)


def test_stream_reads_a_dump_piped_to_it(tmp_path):
    """`kubectl cluster-info dump | logpipe stream`: its first lines ({, then "kind": "NodeList") say
    it is a dump, and a micro-batch that starts in a section gets that section's pod."""
    text, want, _ = cluster_dump()
    raw = text.encode()
    cut = raw.index(b"\n", raw.index(b"==== START logs for container istio-proxy of pod istio-egress") + 400) + 1
    data = tmp_path / "data"
    stream_in_two_writes(data, raw, cut)
    got = duckdb.sql(f"select line_number, pod, container from read_parquet('{data}/date=*/*.parquet')").fetchall()
    assert {n: (p, c) for n, p, c in got} == want


# A whole cluster's dump: every container's log, most of them no proxy's (coredns, kube-proxy, etcd, the
# controllers). As their containers write them (coredns' log plugin, klog, etcd's zap JSON).
COREDNS = [".:53", "[INFO] plugin/reload: Running configuration SHA512 = 591cf328cccc12bc490481273e738df5",
           "CoreDNS-1.11.1", "linux/amd64, go1.21.11, ae2bbc2",
           '[INFO] 10.244.0.5:41234 - 1234 "A IN istiod.istio-system.svc.cluster.local. udp 54 false 512" '
           "NOERROR qr,aa,rd 106 0.000140958s",
           "[WARNING] plugin/kubernetes: starting server with unsynced Kubernetes API",
           "[ERROR] plugin/errors: 2 8231366364163455271.4432339218372813399. HINFO: read udp "
           "10.244.0.2:35555->172.18.0.1:53: i/o timeout"]
KUBE_PROXY = ['I1202 04:45:27.123456       1 server_linux.go:66] "Using iptables proxy"',
              'E1202 04:45:27.223456       1 proxier.go:1520] "Failed to execute iptables-restore" err="exit status 1"']
ETCD = ['{"level":"info","ts":"2024-12-02T04:45:20.123957Z","caller":"etcdmain/etcd.go:73","msg":"Running: "}',
        "I1202 04:45:20.310000       1 etcd.go:120] etcd started",
        "[controller-runtime] log.SetLogger(...) was never called; logs will not be displayed."]
TRUNCATED = ACCESS[0][:90]  # (a proxy's broken access line)


def whole_cluster_dump() -> tuple[str, dict[int, tuple[str, str]], int]:
    """``cluster_dump`` with coredns', kube-proxy's and etcd's logs and a truncated istio-proxy line;
    and the line number of that line."""
    text, want, _ = cluster_dump()
    out = text.splitlines()
    k = out.index(f"==== START logs for container istio-proxy of pod istio-egress/{WAYPOINT} ====")
    others = (_section("kube-system", "coredns-7db6d8ff4d-8xk2v", "coredns", COREDNS)
              + _section("kube-system", "kube-proxy-x7k2p", "kube-proxy", KUBE_PROXY)
              + _section("kube-system", "etcd-kind-control-plane", "etcd", ETCD))
    out[k + 1:k + 1] = [TRUNCATED]
    out[k:k] = others
    shift = len(others) + 1
    want = {n + (shift if n > k else 0): names for n, names in want.items()}
    return "\n".join(out) + "\n", want, k + len(others) + 2


def test_a_whole_cluster_dump_s_other_containers_are_noise(tmp_path):
    """A line of a container that is no proxy (coredns' "[INFO] …" starts as Istio's layout does) that
    no layout reads is noise naming its container; a proxy's broken access line stays malformed."""
    from logpipe.tailheads import OTHER_CONTAINER

    text, want, broken = whole_cluster_dump()
    path = tmp_path / "cluster-info.dump"
    path.write_text(text)
    records, rejects = parse_file(path)
    assert _named(records) == want
    assert [(r["line_number"], r["class"]) for r in rejects if r["class"] != "noise"] == [(broken, "malformed")]
    reasons = [r["reason"] for r in rejects]
    assert reasons.count(OTHER_CONTAINER.format("coredns")) == 4  # (its four "[…]" lines: the others start like no layout)
    assert reasons.count(OTHER_CONTAINER.format("etcd")) == 1
    s = ingest.ingest_paths([str(path)], str(tmp_path / "data"), err=io.StringIO(), progress=False, max_reject_ratio=0.2)
    assert s.counts.malformed == 1 and s.counts.parsed == len(want)  # (1 of 6 access lines: were 5 of 10)


def test_a_container_whose_lines_parse_is_a_proxy():
    """A container of another name whose lines parse (an Envoy named "proxy") is a proxy: its broken
    line stays malformed; so is a line of a proxy's node file under a tail header, and a coredns
    file's "[INFO]" line there is noise, as a bundle path's is."""
    p = Parser()
    lines = _section("default", "edge-1", "proxy", [ACCESS[0], TRUNCATED])
    got = p.parse_batch(lines, "x", 1, header="").rejects.to_pylist()
    assert [r["class"] for r in got if r["line_number"] == 3] == ["malformed"]
    coredns = "==> /var/log/pods/kube-system_coredns-7db6d8ff4d-8xk2v_0f6a2b3c-1d2e-4f50-8a9b-0c1d2e3f4a5b/coredns/0.log <=="
    got = p.parse_batch([header(0), cri(TRUNCATED), coredns, cri(COREDNS[4])], "x", 1, header="").rejects.to_pylist()
    assert {r["line_number"]: r["class"] for r in got} == {1: "noise", 2: "malformed", 3: "noise", 4: "noise"}
    path = "must-gather/namespaces/kube-system/pods/coredns-1/coredns/coredns/logs/current.log"
    got = p.parse_batch([COREDNS[4], COREDNS[5]], path, 1).rejects.to_pylist()
    assert {r["class"] for r in got} == {"noise"}


def test_an_end_mark_on_a_log_s_last_line(tmp_path, monkeypatch, pool):
    """A log that does not end in a newline: kubectl writes its END mark onto its last line. That line
    is the container's last (a row here), and the resource JSON after it is noise, not the section's
    malformed lines; in one batch, cut after it, and in the workers' ranges (``last_header``)."""
    from logpipe.tailheads import RESOURCES, last_header

    text, want, _ = cluster_dump(extra=60)
    out = text.splitlines()
    end = f"==== END logs for container istio-proxy of pod istio-egress/{WAYPOINT} ===="
    k = out.index(end)
    out[k - 1:k + 1] = [out[k - 1] + end]
    want = {n - (n > k): names for n, names in want.items()}
    text = "\n".join(out) + "\n"
    path = tmp_path / "cluster-info.dump"
    path.write_text(text)
    records, rejects = parse_file(path)
    assert _named(records) == want and k in want
    assert {r["class"] for r in rejects} == {"noise"} and rejects[[r["line_number"] for r in rejects].index(k + 1)]["reason"] == RESOURCES
    p = Parser()
    first = p.parse_batch(out[:k], "x", 1, header="")
    assert first.header == end
    assert {r["class"] for r in p.parse_batch(out[k:], "x", k + 1, header=first.header).rejects.to_pylist()} == {"noise"}
    raw = text.encode()
    assert last_header(raw, raw.index(b"\n", raw.index(end.encode()))) == end
    monkeypatch.setattr(lanes, "PARALLEL_MIN_BYTES", 1)
    for module in (workers, pipeline):
        monkeypatch.setattr(module, "CHUNK_BYTES", 4 << 10)
    monkeypatch.setattr(workers, "STAGE_TASK_BYTES", 4 << 10)
    monkeypatch.setenv("LOGPIPE_WORKERS", "2")
    s = ingest.ingest_paths([str(path)], str(tmp_path / "data"), err=io.StringIO(), progress=False, pool=pool)
    assert s.counts.malformed == 0 and s.counts.parsed == len(want) and s.files > 2
