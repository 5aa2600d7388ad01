"""A node's container log files, as containerd and CRI-O write them (the CRI logging format, what
node log agents tail under /var/log/pods/ and /var/log/containers/): ``<RFC3339Nano> <stream> <tag> <line>``,
and as docker's json-file driver writes them (``{"log":"<line>\\n","stream":…,"time":…}``).

The tag is F for a whole line and P for a part of a line the runtime split (over 16 KiB); the
parts are rejects saying so (docker's parts: a log text without its newline). A prefix with nothing
after it is a blank line, not a reject."""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import subprocess
import sys

import pytest
from conftest import SAMPLES, parse_text, read_lines

from logpipe.collectors import DOCKER_PARTIAL, DOCKER_PARTIAL_END, PARTIAL, PARTIAL_END
from logpipe.parse import default_parser

UTC = dt.timezone.utc
STAMP = "2025-01-30T10:53:24.326000321Z"
ACCESS = [x for x in read_lines(SAMPLES / "waypoint-egress-1.23.log") if x.startswith("[")][:8]


def cri(line: str, stream: str = "stdout", tag: str = "F") -> str:
    return f"{STAMP} {stream} {tag} {line}"


def docker(line: str, stream: str = "stdout", end: str = "\n") -> str:
    return json.dumps({"log": line + end, "stream": stream, "time": STAMP}, separators=(",", ":"))


@pytest.mark.parametrize("wrap", ["cri", "docker"])
@pytest.mark.parametrize("sample", ["waypoint-egress-1.23.log", "tcp-and-ipv6.log", "istio-json-1.24.log",
                                    "ztunnel.log", "ztunnel-json.log", "noise-mixed.log", "malformed.log"])
def test_a_sample_in_a_node_file_reads_as_without_it(sample, wrap):
    """Every layout, JSON, ztunnel, noise and malformed line, in a node's file (CRI or docker's
    json-file): the same records (plus the runtime's time as received_at) and the same rejects (with
    the CRI prefix, columns shifted by it), the blank lines blank."""
    lines = read_lines(SAMPLES / sample)
    bare, bare_rejects, bare_batch = parse_text(lines)
    how = cri if wrap == "cri" else docker
    records, rejects, batch = parse_text([how(x, "stderr" if k % 5 == 4 else "stdout") for k, x in enumerate(lines)])
    assert batch.blank == bare_batch.blank
    shift = len(cri("")) if wrap == "cri" else 0
    for r in records:
        assert r.pop("received_at") == dt.datetime(2025, 1, 30, 10, 53, 24, 326000, tzinfo=UTC)
    for r in bare:
        r.pop("received_at")
    assert records == bare
    assert [(r["line_number"], r["class"]) for r in rejects] == [(r["line_number"], r["class"]) for r in bare_rejects]
    for got, want in zip(rejects, bare_rejects):
        if want["column"] is not None and got["reason"] != want["reason"]:
            assert got["column"] == want["column"] + shift
        if wrap == "docker" and not want["raw"].startswith('{"log":'):  # (one wrapper is unwrapped, not two)
            assert got["reason"] == want["reason"] and got["column"] == want["column"]  # the text's, columns and all


def test_the_parts_of_a_split_line_are_rejects_that_say_so():
    """A line over 16 KiB: P parts, then the F part that ends it. Each part is a malformed reject
    naming the split (never a row, even where a part's cut would read as a shorter layout)."""
    long = ACCESS[0].replace('"GET /get ', '"GET /get?t=' + "x" * 17000 + " ", 1)
    assert len(long) > 16384
    head, mid, tail = long[:16384], long[16384:16390], long[16390:]
    whole = read_lines(SAMPLES / "envoy-default.log")[0]  # a part that alone reads as a line
    assert parse_text([whole])[0][0]["log_format"] == "envoy"
    lines = [cri(ACCESS[2]), cri(head, tag="P"), cri(mid, tag="P"), cri(tail), cri(ACCESS[3]),
             cri(whole, tag="P"), cri(' "-"'), cri(ACCESS[4])]
    records, rejects, batch = parse_text(lines)
    assert [r["line_number"] for r in records] == [1, 5, 8]
    assert [(r["line_number"], r["class"], r["reason"]) for r in rejects] == [
        (2, "malformed", PARTIAL), (3, "malformed", PARTIAL), (4, "malformed", PARTIAL_END.format(3)),
        (6, "malformed", PARTIAL), (7, "malformed", PARTIAL_END.format(6)),
    ]
    assert batch.parsed + batch.rejected + batch.blank == len(lines)


def test_the_parts_of_a_line_docker_split_are_rejects_that_say_so():
    """docker's json-file: each part but the last has a log text without its newline. The parts are
    malformed rejects that say so, never rows (a part that alone reads as a line too)."""
    long = ACCESS[0].replace('"GET /get ', '"GET /get?t=' + "x" * 17000 + " ", 1)
    whole = read_lines(SAMPLES / "envoy-default.log")[0]
    lines = [docker(ACCESS[2]), docker(long[:16384], end=""), docker(long[16384:]), docker(ACCESS[3]),
             docker(whole, end=""), docker(' "-"'), docker(ACCESS[4]), docker("", end="\n")]
    records, rejects, batch = parse_text(lines)
    assert [r["line_number"] for r in records] == [1, 4, 7] and batch.blank == 1
    assert [(r["line_number"], r["class"], r["reason"]) for r in rejects] == [
        (2, "malformed", DOCKER_PARTIAL), (3, "malformed", DOCKER_PARTIAL_END.format(2)),
        (5, "malformed", DOCKER_PARTIAL), (6, "malformed", DOCKER_PARTIAL_END.format(5)),
    ]
    assert rejects[0]["raw"] == lines[1]  # (a reject keeps the line as written)


def test_json_with_a_log_key_that_is_not_docker_s_stays_what_it_was():
    """Only docker's own entries (a log text, stdout or stderr, a time) are unwrapped."""
    for line in ('{"log":"[x] y","level":"info","msg":"m"}', '{"log":5,"stream":"stdout","time":"t"}'):
        _, rejects, _ = parse_text([line])
        assert rejects[0]["class"] in ("noise", "malformed")
    _, rejects, _ = parse_text(['{"log":"' + ACCESS[0].replace('"', '\\"') + '","stream":"stdout"}'])  # (no time)
    assert rejects[0]["reason"] == "docker json-file log wrapper, not an access line"


def test_the_last_part_in_the_next_batch_is_judged_as_any_line():
    """The parts of a split line in two batches (a stream's slices): the second batch does not know
    the line before it was a part, so its F part is judged as a line (here: not an access line)."""
    parser = default_parser()
    first = parser.parse_batch([cri(ACCESS[0]), cri(ACCESS[1][:60], tag="P")])
    second = parser.parse_batch([cri(ACCESS[1][60:]), cri(ACCESS[2])], first_line=3)
    assert first.parsed == 1 and first.rejects.column("reason").to_pylist() == [PARTIAL]
    assert second.parsed == 1 and second.rejects.column("class").to_pylist() == ["noise"]


@pytest.mark.parametrize("prefix", [f"{STAMP} stdout F ", f"{STAMP} stderr F ", f"{STAMP} ", f"{STAMP}  ",
                                    "[pod/waypoint-7d9f8b6c4-x2k8p/istio-proxy] ",
                                    f"[pod/waypoint-7d9f8b6c4-x2k8p/istio-proxy] {STAMP} ", "egress-1  | ",
                                    f"{STAMP} stdout F \t"])
def test_a_prefix_and_nothing_else_is_a_blank_line(prefix):
    """A container's blank line, as a collector or the runtime writes it (its prefix, then nothing):
    blank, as the same line without the prefix is, not a reject."""
    records, rejects, batch = parse_text([cri(ACCESS[0]), prefix, ACCESS[1]])
    assert (len(records), rejects, batch.blank) == (2, [], 1)


def test_two_words_and_a_space_stay_a_reject():
    """stern's prefix is two names and a space each: a line of two words and a space could be one,
    so it is not taken for a blank line (it stays noise, with its reason)."""
    records, rejects, batch = parse_text(["connection reset ", ACCESS[0]])
    assert batch.blank == 0 and [r["class"] for r in rejects] == ["noise"]


def test_the_sample_node_file_reads_whole():
    """sample_logs/cri-node.log (a waypoint's istio-proxy container log as containerd writes it:
    istio-agent on stderr, access lines on stdout, a blank line): every access line a row with the
    runtime's time, the agent's lines noise."""
    lines = read_lines(SAMPLES / "cri-node.log")
    records, rejects, batch = parse_text(lines)
    assert (batch.parsed, batch.blank) == (sum(" stdout F [" in x for x in lines), 1)
    assert {r["class"] for r in rejects} == {"noise"}
    assert all(r["received_at"] > r["start_time"] for r in records)


@pytest.mark.parametrize("where", [
    "var/log/pods/istio-egress_waypoint-7d9f8b6c4-x2k8p_6c7b2f0e-1d2c-4b7a-9f3e-0a1b2c3d4e5f/istio-proxy/0.log",
    "var/log/pods/istio-egress_waypoint-7d9f8b6c4-x2k8p_6c7b2f0e-1d2c-4b7a-9f3e-0a1b2c3d4e5f/istio-proxy/"
    "1.log.20250130-105324.gz",
    "var/log/containers/waypoint-7d9f8b6c4-x2k8p_istio-egress_istio-proxy-" + "3f" * 32 + ".log",
])
def test_a_node_log_file_names_the_pod_and_container(tmp_path, where):
    """Read where kubelet keeps it (or a copy of that tree), a node's container log names its pod and
    container, which land in every record whose line names none (a kubectl prefix's stay)."""
    body = "\n".join([cri(ACCESS[0]), "[pod/other-1/app] " + ACCESS[1], ACCESS[2]]) + "\n"
    path = tmp_path / where
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(body.encode()) if where.endswith(".gz") else body.encode())
    run = subprocess.run([sys.executable, "-m", "logpipe", "parse", str(path), "-o", "csv"],
                         capture_output=True, text=True, timeout=120, check=True)
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert [(r["pod"], r["container"]) for r in rows] == [
        ("waypoint-7d9f8b6c4-x2k8p", "istio-proxy"), ("other-1", "app"), ("waypoint-7d9f8b6c4-x2k8p", "istio-proxy")]
    assert rows[0]["received_at"] and not rows[2]["received_at"]


@pytest.mark.parametrize("kinds", [("cri",), ("kubectl",), ("both",), ("timestamps",), ("stern",), ("compose",),
                                   ("cri", "timestamps"), ("kubectl", "cri")])
def test_a_batch_of_one_kind_of_prefix_reads_as_with_the_whole_regex(kinds, monkeypatch):
    """A large batch whose prefixed lines are all of one kind is read with that kind's regex alone
    (``Collectors._one_kind``); the same records as with the regex of every kind, and a batch that
    mixes kinds (CRI and bare times: a CRI line also starts like a bare time) takes the whole regex."""
    from logpipe import fastpath
    from logpipe.collectors import Collectors

    shapes = {"cri": f"{STAMP} stdout F ", "kubectl": "[pod/waypoint-1/istio-proxy] ", "timestamps": f"{STAMP} ",
              "both": f"[pod/waypoint-1/istio-proxy] {STAMP} ", "stern": "waypoint-1 istio-proxy ",
              "compose": "egress-1  | "}
    lines = [shapes[kinds[k % len(kinds)]] + ACCESS[k % len(ACCESS)] for k in range(fastpath.SPLIT_MIN_ROWS + 200)]
    lines[::7] = ACCESS * (len(lines[::7]) // len(ACCESS)) + ACCESS[: len(lines[::7]) % len(ACCESS)]  # (some bare)
    chosen = []
    one_kind = Collectors._one_kind
    monkeypatch.setattr(Collectors, "_one_kind", lambda self, prefixed: chosen.append(one_kind(self, prefixed)) or chosen[-1])
    got = default_parser().parse_batch(lines)
    assert (chosen[0][0] == default_parser().collectors.prefix_rx) == (len(kinds) > 1)  # (one kind: its own regex)
    monkeypatch.setattr(Collectors, "_one_kind", lambda self, prefixed: (self.prefix_rx, self.groups))
    want = default_parser().parse_batch(lines)
    assert got.records.to_pylist() == want.records.to_pylist() and got.rejected == want.rejected == 0


def test_docker_entries_are_read_as_json_reads_them():
    """``collectors._docker_fields`` cuts an entry where its keys are and replaces the escapes an
    access line has, leaving any other entry or escape to JSON's path queries: on texts of quotes,
    backslashes, tabs, control characters, & < >, non-ASCII, \\u2028 and "\\u0026" as text, written as
    docker writes them (Go's HTML-safe escapes), as Python's json writes them, and in other shapes
    (more keys, another order), the same log text, stream and time as json.loads."""
    import random

    import polars as pl

    from logpipe import collectors

    rng = random.Random(11)
    alphabet = ['a', ' ', '"', "\\", "\t", "\r", "&", "<", ">", "/", "é", "€", "\x01", "\u2028", "u", "0", "2", "6",
                "n", "{", ":", ",", '","stream":"']
    lines = []
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) + ("\n" if rng.random() < 0.9 else "")
        shape = rng.random()
        if shape < 0.5:  # as docker writes it
            quoted = json.dumps(text, ensure_ascii=False).replace("&", "\\u0026").replace("<", "\\u003c") \
                .replace(">", "\\u003e").replace("\u2028", "\\u2028")
            lines.append('{"log":' + quoted + ',"stream":"stdout","time":"2025-01-30T10:53:24.326000321Z"}')
        elif shape < 0.8:
            lines.append(json.dumps({"log": text, "stream": "stderr", "time": "2025-01-30T10:53:24Z"},
                                    separators=(",", ":"), ensure_ascii=rng.random() < 0.5))
        else:
            lines.append(json.dumps({"log": text, "time": "t", "stream": "stdout", "attrs": {"k": "v"}}, separators=(",", ":")))
    body = pl.Series(lines)
    text, stream, time = collectors._docker_fields(body, body.str.starts_with('{"log":'))
    want = [(o["log"], o["stream"], o["time"]) for o in map(json.loads, lines)]
    assert list(zip(text.to_list(), stream.to_list(), time.to_list())) == want
