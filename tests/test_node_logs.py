"""A node's container log files, as containerd and CRI-O write them (the CRI logging format, what
node log agents tail under /var/log/pods/ and /var/log/containers/): ``<RFC3339Nano> <stream> <tag> <line>``,
and as docker's json-file driver writes them (``{"log":"<line>\\n","stream":…,"time":…}``).

The tag is F for a whole line and P for a part of a line the runtime split (over 16 KiB); the
parts are joined into the line (docker's parts, a log text without its newline, are rejects saying so). A prefix with nothing
after it is a blank line, not a reject."""
from __future__ import annotations

import csv
import copy
import datetime as dt
import functools
import gzip
import io
import json

import pytest
from conftest import SAMPLES, parse_text, read_lines, run_logpipe

from logpipe.runtimes import DOCKER_PARTIAL, PARTIAL
from logpipe.parse import default_parser

UTC = dt.timezone.utc
STAMP = "2025-01-30T10:53:24.326000321Z"
ACCESS = [x for x in read_lines(SAMPLES / "waypoint-egress-1.23.log") if x.startswith("[")][:8]


def cri(line: str, stream: str = "stdout", tag: str = "F") -> str:
    return f"{STAMP} {stream} {tag} {line}"


def docker(line: str, stream: str = "stdout", end: str = "\n") -> str:
    return json.dumps({"log": line + end, "stream": stream, "time": STAMP}, separators=(",", ":"))


@functools.lru_cache(maxsize=None)
def parsed_sample(sample: str) -> tuple:
    """A sample's records, rejects and blank lines as it is (copy before changing them): the same for
    either wrapper."""
    records, rejects, batch = parse_text(read_lines(SAMPLES / sample))
    return records, rejects, batch.blank


@pytest.mark.parametrize("wrap", ["cri", "docker"])
@pytest.mark.parametrize("sample", ["waypoint-egress-1.23.log", "tcp-and-ipv6.log", "istio-json-1.24.log",
                                    "ztunnel.log", "ztunnel-json.log", "noise-mixed.log", "malformed.log"])
def test_a_sample_in_a_node_file_reads_as_without_it(sample, wrap):
    """Every layout, JSON, ztunnel, noise and malformed line, in a node's file (CRI or docker's
    json-file): the same records (plus the runtime's time as received_at) and the same rejects (with
    the CRI prefix, columns shifted by it), the blank lines blank."""
    lines = read_lines(SAMPLES / sample)
    bare, bare_rejects, bare_blank = copy.deepcopy(parsed_sample(sample))
    how = cri if wrap == "cri" else docker
    records, rejects, batch = parse_text([how(x, "stderr" if k % 5 == 4 else "stdout") for k, x in enumerate(lines)])
    assert batch.blank == bare_blank
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


def test_the_parts_of_a_split_line_are_joined_into_one_row():
    """A line over 16 KiB: P parts, then the F part that ends it, of one stream (the other stream's
    lines may come between). The line is read whole, on its first part's row, with its last part's
    time; the other parts count as joined. Parts of a line that alone read as a shorter layout are
    joined too."""
    long = ACCESS[0].replace('"GET /get ', '"GET /get?t=' + "x" * 17000 + " ", 1)
    assert len(long) > 16384
    head, mid, tail = long[:16384], long[16384:16390], long[16390:]
    whole = read_lines(SAMPLES / "envoy-default.log")[0]  # a part that alone reads as a line
    assert parse_text([whole])[0][0]["log_format"] == "envoy"
    agent = "2025-01-30T10:53:24.400Z\twarn\tenvoy config\tgRPC config stream closed"
    last = STAMP.replace("24.326", "25.001")
    lines = [cri(ACCESS[2]), cri(head, tag="P"), cri(agent, stream="stderr"), cri(mid, tag="P"),
             cri(tail).replace(STAMP, last), cri(ACCESS[3]), cri(whole, tag="P"), cri(' "-"'), cri(ACCESS[4])]
    records, rejects, batch = parse_text(lines)
    bare, _, _ = parse_text([long])
    assert [r["line_number"] for r in records] == [1, 2, 6, 7, 9]
    assert [(r["line_number"], r["class"]) for r in rejects] == [(3, "noise")]  # (the agent's line, between)
    assert batch.joined_lines == (4, 5, 8) and batch.joined == 3
    got = {k: v for k, v in records[1].items() if k not in ("line_number", "received_at")}
    assert got == {k: v for k, v in bare[0].items() if k not in ("line_number", "received_at")}
    assert records[1]["path"].startswith("/get?t=xxx") and len(records[1]["path"]) > 17000
    assert records[1]["received_at"] == dt.datetime(2025, 1, 30, 10, 53, 25, 1000, tzinfo=UTC)
    assert batch.parsed + batch.rejected + batch.blank + batch.joined == len(lines)


def test_a_split_line_that_does_not_read_is_one_reject_of_the_whole_line():
    """The joined line is judged whole: a malformed one is one reject, its raw the line as the
    container wrote it (the last part's prefix, then the parts' texts), judged as that line is."""
    long = ACCESS[0].replace('"GET /get ', '"GET /get?t=' + "x" * 17000 + " ", 1).replace(" 200 ", " 2OO ", 1)
    lines = [cri(long[:16384], tag="P"), cri(long[16384:])]
    records, rejects, batch = parse_text(lines)
    assert records == [] and batch.joined == 1
    (r,) = rejects
    assert (r["line_number"], r["class"], r["raw"]) == (1, "malformed", cri(long))
    _, (alone,), _ = parse_text([cri(long)])  # the same line, had the runtime not split it
    assert (r["reason"], r["column"]) == (alone["reason"], alone["column"])


def test_parts_are_joined_within_their_stream_and_without_their_last_part_are_rejects():
    """A part is joined only with its own stream's next lines (the other stream's come between, as
    lines of their own); parts whose F part is not in the batch (a file cut short) stay rejects
    naming the split."""
    long = ACCESS[0].replace('"GET /get ', '"GET /get?t=' + "x" * 17000 + " ", 1)
    lines = [cri(ACCESS[2]), cri(long[:16384], stream="stderr", tag="P"), cri(ACCESS[3]),
             cri(long[16384:], stream="stderr"), cri(long[:16384], tag="P")]
    records, rejects, batch = parse_text(lines)
    assert [r["line_number"] for r in records] == [1, 2, 3] and batch.joined_lines == (4,)
    assert len(records[1]["path"]) > 17000
    assert [(r["line_number"], r["reason"]) for r in rejects] == [(5, PARTIAL)]
    assert batch.parsed + batch.rejected + batch.blank + batch.joined == len(lines)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("runtime", ["cri", "docker"])
def test_a_split_line_s_part_after_a_byte_order_mark_is_joined(runtime, fast):
    """A node's file saved with a UTF-8 byte-order mark (the library given its first line with the mark,
    or `cat` of such files: the second one's mark in the middle of the input): the part right after the
    mark is a part (the mark is the file's, not the line's), joined with its last part into the row it is
    without the mark, on both paths, CRI's `P` line and docker's json-file entry alike (docker's was a
    malformed reject, its last part noise). Without its last part it is a reject naming the split, not
    noise, and the readers keep it in one batch with what follows (``parts_at_end`` holds it back)."""
    from logpipe.parse import Parser
    from logpipe.runtimes import parts_at_end

    parser = None if fast else Parser(fast=False)
    long = ACCESS[0].replace('"GET /get ', '"GET /get?t=' + "x" * 17000 + " ", 1)
    if runtime == "cri":
        wrap, partial = cri, PARTIAL
        lines = [cri(long[:16384], tag="P"), cri(long[16384:]), cri(ACCESS[1])]
    else:
        wrap, partial = docker, DOCKER_PARTIAL
        lines = [docker(long[:16384], end=""), docker(long[16384:]), docker(ACCESS[1])]
    want, _, _ = parse_text(lines, parser=parser)
    assert len(want) == 2 and len(want[0]["path"]) > 17000
    for before in ([], [wrap(ACCESS[2])]):  # the input's first line, or the first of a second file `cat` joined
        records, rejects, batch = parse_text(before + ["\ufeff" + lines[0]] + lines[1:], parser=parser)
        assert not rejects and batch.joined == 1
        assert [{k: v for k, v in r.items() if k != "line_number"} for r in records[len(before):]] == [
            {k: v for k, v in r.items() if k != "line_number"} for r in want]
    _, rejects, _ = parse_text([wrap(ACCESS[2]), "\ufeff" + lines[0]], parser=parser)
    assert [(r["line_number"], r["class"], r["reason"]) for r in rejects] == [(2, "malformed", partial)]
    assert rejects[0]["raw"] == "\ufeff" + lines[0]
    assert parts_at_end([wrap(ACCESS[2]), "\ufeff" + lines[0]]) == 1


def test_the_parts_of_a_line_docker_split_are_joined():
    """docker's json-file: each part but the last has a log text without its newline. The parts of
    a stream are joined into the line (the last part's time; a reject's raw the entry docker would
    have written for it whole); parts whose last part is not in the batch are rejects that say so."""
    long = ACCESS[0].replace('"GET /get ', '"GET /get?t=' + "x" * 17000 + " ", 1)
    whole = read_lines(SAMPLES / "envoy-default.log")[0]
    bad = long.replace(" 200 ", " 2OO ", 1)
    lines = [docker(ACCESS[2]), docker(long[:16384], end=""), docker("agent says hi", stream="stderr"),
             docker(long[16384:]).replace(STAMP, STAMP.replace("24.326", "25.001")), docker(ACCESS[3]),
             docker(whole, end=""), docker(' "-"'), docker(ACCESS[4]), docker("", end="\n"),
             docker(bad[:16384], end=""), docker(bad[16384:]), docker(ACCESS[5][:100], end="")]
    records, rejects, batch = parse_text(lines)
    bare, _, _ = parse_text([long])
    assert [r["line_number"] for r in records] == [1, 2, 5, 6, 8] and batch.blank == 1
    assert batch.joined_lines == (4, 7, 11)
    assert {k: v for k, v in records[1].items() if k not in ("line_number", "received_at")} == \
        {k: v for k, v in bare[0].items() if k not in ("line_number", "received_at")}
    assert records[1]["received_at"] == dt.datetime(2025, 1, 30, 10, 53, 25, 1000, tzinfo=UTC)
    assert [(r["line_number"], r["class"]) for r in rejects] == [(3, "noise"), (10, "malformed"), (12, "malformed")]
    assert json.loads(rejects[1]["raw"]) == {"log": bad + "\n", "stream": "stdout", "time": STAMP}
    assert rejects[2]["reason"] == DOCKER_PARTIAL and rejects[2]["raw"] == lines[11]
    assert batch.parsed + batch.rejected + batch.blank + batch.joined == len(lines)


@pytest.mark.parametrize("wrap", ["cri", "docker"])
def test_a_line_of_exactly_16_kib_ends_with_an_empty_last_part(wrap):
    """A line of exactly 16 KiB: its one part, then a last part with nothing in it (CRI: the prefix
    alone; docker: an entry of just its newline), which is no blank line but the line's end."""
    line = ACCESS[1].replace(" HTTP/1.1", "?q=" + "z" * (16384 - len(ACCESS[1]) - 3) + " HTTP/1.1", 1)
    assert len(line) == 16384
    lines = [cri(line, tag="P"), cri("")] if wrap == "cri" else [docker(line, end=""), docker("", end="\n")]
    records, rejects, batch = parse_text(lines + [lines[1]])  # (and then a blank line)
    assert (len(records), rejects, batch.joined, batch.blank) == (1, [], 1, 1)
    assert records[0]["path"] == parse_text([line])[0][0]["path"]


def test_json_with_a_log_key_that_is_not_a_record_of_a_line_stays_what_it_was():
    """docker's own entries (a log text, stdout or stderr, a time) and collectors' records of a line
    (a log text and a collector's key: here a stream, with no time) are unwrapped; an application's
    JSON log line with a ``log`` key, or a log that is no text, is not."""
    for line in ('{"log":"[x] y","level":"info","msg":"m"}', '{"log":5,"stream":"stdout","time":"t"}'):
        _, rejects, _ = parse_text([line])
        assert rejects[0]["class"] in ("noise", "malformed")
    _, rejects, _ = parse_text(['{"log":"' + ACCESS[0].replace('"', '\\"') + '","time":"t"}'])  # (no stream)
    assert rejects[0]["reason"] == "docker json-file log wrapper, not an access line"
    records, rejects, _ = parse_text(['{"log":"' + ACCESS[0].replace('"', '\\"') + '","stream":"stdout"}'])
    assert rejects == [] and records[0]["path"] == parse_text([ACCESS[0]])[0][0]["path"]


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


MARKED_PREFIXES = {"kubectl": "[pod/waypoint-7d9f8b6c4-x2k8p/istio-proxy] ", "cri": f"{STAMP} stdout F ",
                   "both": f"[pod/waypoint-7d9f8b6c4-x2k8p/istio-proxy] {STAMP} ", "timestamps": f"{STAMP} ",
                   "stern": "waypoint-7d9f8b6c4-x2k8p istio-proxy ", "compose": "egress-1  | ",
                   "bracket": "[waypoint-1 istio-proxy] "}


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("kind", [*MARKED_PREFIXES, "docker"])
def test_a_byte_order_mark_before_a_collector_s_prefix_is_read_past(kind, fast):
    """`cat` of collectors' files saved with a UTF-8 byte-order mark (`kubectl logs --prefix … > a.log` in
    Windows PowerShell, a node's files): the second file's mark starts a line in the middle of the input.
    The line reads as without it, its prefix's pod, container and time too, on both paths; a malformed
    one is rejected at its column in the line as written."""
    from logpipe.parse import Parser

    def wrap(line: str) -> str:
        return docker(line) if kind == "docker" else MARKED_PREFIXES[kind] + line

    parser = None if fast else Parser(fast=False)
    lines = [wrap(x) for x in ACCESS[:3]]
    want, _, _ = parse_text(lines, parser=parser)
    got, rejects, _ = parse_text(["\ufeff" + x for x in lines], parser=parser)
    assert got == want and not rejects
    bad = wrap(ACCESS[0].replace('" 200 ', '" 2OO ', 1))
    _, (r1,), _ = parse_text([bad], parser=parser)
    _, (r2,), _ = parse_text(["\ufeff" + bad], parser=parser)
    assert r2["class"] == r1["class"] == "malformed"
    assert r2["column"] == r1["column"] + (kind != "docker")  # (a docker entry's column is in its log text)


@pytest.mark.parametrize("fast", [True, False])
def test_a_byte_order_mark_before_a_line_of_a_format_that_starts_like_a_prefix(fast):
    """A given format that starts with an unbracketed %START_TIME% (kubectl --timestamps' prefix): its
    line after a mark is its line, and a malformed one is rejected at its column as written."""
    from logpipe.layouts import parser_from_options
    from logpipe.parse import Parser

    parser = parser_from_options("%START_TIME% %REQ(:METHOD)% %RESPONSE_CODE%")
    parser = parser if fast else Parser(custom=parser.custom, fast=False)
    lines = ["2025-03-01T10:00:00.123Z GET 200", "2025-03-01T10:00:00.123Z GET 2OO"]
    want, (r1,), _ = parse_text(lines, parser=parser)
    got, (r2,), _ = parse_text(["\ufeff" + x for x in lines], parser=parser)
    assert [(r["start_time"], r["method"]) for r in got] == [(r["start_time"], r["method"]) for r in want] != []
    # (the fast path's: the column of '2OO', the field that broke, at its start (diagnose.py reads a
    # last field that matched only the start of its word, '2', as that field's fault); the exact
    # path's is Lark's own, where it stopped: at 'OO')
    assert (r2["class"], r2["column"]) == (r1["class"], r1["column"] + 1) == ("malformed", 31 if fast else 32)


@pytest.mark.parametrize("fast", [True, False])
def test_a_byte_order_mark_alone_is_a_blank_line(fast):
    """A file saved with a byte-order mark and nothing more (or a mark, then a collector's blank line):
    blank, as the same line without the mark is, not noise."""
    from logpipe.parse import Parser

    lines = ["\ufeff", "\ufeff  ", "\ufeff\t", "\ufeff[pod/waypoint-1/istio-proxy] ", f"\ufeff{STAMP} stdout F ", ACCESS[0]]
    records, rejects, batch = parse_text(lines, parser=None if fast else Parser(fast=False))
    assert (len(records), rejects, batch.blank) == (1, [], 5)


def test_two_words_and_a_space_stay_a_reject():
    """stern's prefix is two names and a space each: a line of two words and a space could be one,
    so it is not taken for a blank line (it stays noise, with its reason)."""
    records, rejects, batch = parse_text(["connection reset ", ACCESS[0]])
    assert batch.blank == 0 and [r["class"] for r in rejects] == ["noise"]


def test_the_bracketed_pod_and_container_prefix():
    """"[<pod> <container>] " (FORMATS.md e), alone, with a time after it, and before nothing (blank);
    an access line's own "[<time>]" is never taken for it."""
    lines = ["[waypoint-1 istio-proxy] " + ACCESS[0], f"[waypoint-1 istio-proxy] {STAMP} " + ACCESS[1],
             "[waypoint-1 istio-proxy] ", ACCESS[2]]
    records, rejects, batch = parse_text(lines)
    assert (len(records), rejects, batch.blank) == (3, [], 1)
    assert [(r["pod"], r["container"]) for r in records] == [("waypoint-1", "istio-proxy")] * 2 + [(None, None)]
    assert records[0]["received_at"] is None and records[1]["received_at"] is not None


def test_the_sample_node_file_reads_whole():
    """sample_logs/cri-node.log (a waypoint's istio-proxy container log as containerd writes it:
    istio-agent on stderr, access lines on stdout, a blank line, a line of 17 KB in two parts with
    an agent line between them): every access line a row with the runtime's time, the agent's lines
    noise."""
    lines = read_lines(SAMPLES / "cri-node.log")
    records, rejects, batch = parse_text(lines)
    assert (batch.parsed, batch.blank, batch.joined) == (sum(" stdout P [" in x or " stdout F [" in x for x in lines), 1, 1)
    assert max(len(r["path"] or "") for r in records) > 16384
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
    run = run_logpipe("parse", path, "-o", "csv")
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert [(r["pod"], r["container"]) for r in rows] == [
        ("waypoint-7d9f8b6c4-x2k8p", "istio-proxy"), ("other-1", "app"), ("waypoint-7d9f8b6c4-x2k8p", "istio-proxy")]
    assert rows[0]["received_at"] and not rows[2]["received_at"]


@pytest.mark.parametrize("kinds", [("cri",), ("kubectl",), ("both",), ("timestamps",), ("stern",), ("compose",), ("bracket",),
                                   ("cri", "timestamps"), ("kubectl", "cri")])
def test_a_batch_of_one_kind_of_prefix_reads_as_with_the_whole_regex(kinds, monkeypatch):
    """A large batch whose prefixed lines are all of one kind is read with that kind's regex alone
    (``Collectors._one_kind``); the same records as with the regex of every kind, and a batch that
    mixes kinds (CRI and bare times: a CRI line also starts like a bare time) takes the whole regex."""
    from logpipe import fastpath
    from logpipe.collectors import Collectors

    shapes = {"cri": f"{STAMP} stdout F ", "kubectl": "[pod/waypoint-1/istio-proxy] ", "timestamps": f"{STAMP} ",
              "both": f"[pod/waypoint-1/istio-proxy] {STAMP} ", "stern": "waypoint-1 istio-proxy ",
              "compose": "egress-1  | ", "bracket": "[waypoint-1 istio-proxy] "}
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
    """``runtimes._docker_fields`` cuts an entry where its keys are and replaces the escapes an
    access line has, leaving any other entry or escape to JSON's path queries: on texts of quotes,
    backslashes, tabs, control characters, & < >, non-ASCII, \\u2028 and "\\u0026" as text, written as
    docker writes them (Go's HTML-safe escapes), as Python's json writes them, and in other shapes
    (more keys, another order: left to the collectors' records, ``envelopes.Envelopes.envelope``: null here),
    the same log text, stream and time as json.loads."""
    import random

    import polars as pl

    from logpipe import runtimes

    rng = random.Random(11)
    alphabet = ['a', ' ', '"', "\\", "\t", "\r", "&", "<", ">", "/", "é", "€", "\x01", "\u2028", "u", "0", "2", "6",
                "n", "{", ":", ",", '","stream":"']
    lines, other = [], set()
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
            other.add(len(lines))
            lines.append(json.dumps({"log": text, "time": "t", "stream": "stdout", "attrs": {"k": "v"}}, separators=(",", ":")))
    body = pl.Series(lines)
    text, stream, time = runtimes._docker_fields(body, body.str.starts_with('{"log":'))
    want = [(o["log"], o["stream"], o["time"]) if k not in other else (None, None, None)
            for k, o in enumerate(map(json.loads, lines))]
    assert list(zip(text.to_list(), stream.to_list(), time.to_list())) == want
    # an entry of another shape is a collector's record of a line: the same line is read from it
    shaped = docker(ACCESS[2])
    attrs = json.dumps({"log": ACCESS[2] + "\n", "stream": "stdout", "attrs": {"tag": "istio-proxy"}, "time": STAMP})
    assert parse_text([attrs])[0] == parse_text([shaped])[0]


def split_node_file(n: int = 400, seed: int = 5, wrap: str = "cri") -> tuple[list[str], int]:
    """A CRI (or docker json-file) file of ``n`` access lines (stdout) and agent lines (stderr), a
    fifth of the access lines over 16 KiB and split (1 to 3 parts before the last, stderr lines between
    some): its lines, and how many parts are joined to an earlier one."""
    import random

    def cri(line, stream="stdout", tag="F"):
        return globals()["cri"](line, stream, tag) if wrap == "cri" else docker(line, stream, "" if tag == "P" else "\n")

    rnd, out, joined = random.Random(seed), [], 0
    agent = "2025-01-30T10:53:24.400Z\twarn\tenvoy config\tgRPC config stream closed"
    for i in range(n):
        line = ACCESS[i % len(ACCESS)]
        if rnd.random() < 0.2:
            long = line.replace(" HTTP/1.1", "?q=" + "y" * rnd.randrange(16400, 3 * 16384) + " HTTP/1.1", 1)
            parts = [long[k:k + 16384] for k in range(0, len(long), 16384)]
            for k, part in enumerate(parts):
                out.append(cri(part, tag="P" if k < len(parts) - 1 else "F"))
                if rnd.random() < 0.3 and k < len(parts) - 1:
                    out.append(cri(agent, stream="stderr"))
            joined += len(parts) - 1
        else:
            out.append(cri(line))
        if rnd.random() < 0.1:
            out.append(cri(agent, stream="stderr"))
    return out, joined


@pytest.mark.parametrize("wrap", ["cri", "docker"])
def test_file_readers_keep_a_split_line_in_one_batch(tmp_path, wrap):
    """However a file is cut into batches (ranges for the workers, their pieces, chunks of a
    compressed file or stdin), a split line's parts fall in one: every part is joined, none is a
    reject, and the counts add up."""
    from logpipe.sources import Input, iter_byte_chunks, iter_file_ranges

    lines, joined = split_node_file(250, wrap=wrap)  # (~1.3 MB, 60 parts joined: several in each batch)
    path = tmp_path / "0.log"
    path.write_text("".join(x + "\n" for x in lines))
    (tmp_path / "0.log.gz").write_bytes(gzip.compress(path.read_bytes()))
    parser = default_parser()
    # (a body already checked is not parsed again: what is asserted of a batch is its counts and reasons,
    # not its line numbers; the gzip'd file's chunks are the plain file's at 300 KB, and some ranges and
    # pieces are chunks too: 7 parses of 1.3 MB, ~0.13 s of CPU each, become ~5.5)
    seen = {}

    def check(bodies):
        first, rows, parts = 1, 0, 0
        for body in bodies:
            key = bytes(body)
            if key not in seen:
                batch = parser.parse_chunk(body, "x", first)
                seen[key] = (batch.read, batch.parsed, batch.joined, set(batch.rejects.column("reason").to_pylist()))
            read, parsed, joined_here, reasons = seen[key]
            first += read
            rows, parts = rows + parsed, parts + joined_here
            assert not {PARTIAL, DOCKER_PARTIAL} & reasons
        assert first - 1 == len(lines) and parts == joined and rows == 250

    assert path.stat().st_size > 1 << 20
    check(body for body, _ in iter_byte_chunks(Input(str(tmp_path / "0.log.gz")), chunk_bytes=300_000))
    for size in (200_000, 300_000):  # (a batch holds several split lines: 8 MB or 16 MB as run)
        check(body for body, _ in iter_byte_chunks(Input(str(path)), chunk_bytes=size))
        ranges = [r for r, _ in iter_file_ranges(Input(str(path)), chunk_bytes=size)]
        assert len(ranges) > 3
        check(r.read() for r in ranges)
        check(piece for r in ranges for piece in r.pieces(size // 3))  # (past PIECE_SCAN: the window grows)


@pytest.mark.parametrize("wrap", ["cri", "docker"])
def test_stream_waits_for_a_split_line_s_last_part(tmp_path, wrap):
    """`tail -F 0.log | logpipe stream`: a batch flushed by rows does not cut a split line. (The
    file's lines repeat ACCESS's, each the same request again: --keep-replayed stores them all.)"""
    from test_stream import stream_cli

    lines, joined = split_node_file(60, seed=9, wrap=wrap)  # (26 parts joined)
    run = stream_cli(tmp_path / "d", "--quiet", "--flush-rows", "7", "--keep-replayed",
                     input="".join(x + "\n" for x in lines).encode())
    assert run.returncode == 0, run.stderr.decode()
    summary = [x for x in run.stderr.decode().splitlines() if x.startswith("lines read")]
    assert summary and summary[0].startswith(f"lines read {len(lines)}, parsed 60, ")
    assert summary[0].endswith(f", joined {joined}")


@pytest.mark.parametrize("wrap", ["cri", "docker"])
def test_parse_lines_keeps_a_split_line_in_one_batch(wrap):
    """The library's ``parse_lines`` in batches of any size: the same rows as one batch."""
    from logpipe import parse_lines

    lines, joined = split_node_file(40, seed=3, wrap=wrap)
    whole = parse_text(lines)[0]
    assert joined == 7 and len(whole) == 40
    for size in (1, 5, 17):
        batches = list(parse_lines([x + "\n" for x in lines], batch_size=size))
        assert sum(b.joined for b in batches) == joined
        assert [r for b in batches for r in b.records.to_pylist()] == whole


def test_tail_s_headers_are_noise_that_says_so():
    """`tail -f` of several node files (`tail -F /var/log/pods/*/istio-proxy/0.log | logpipe stream`)
    writes ``==> FILE <==`` when it turns to another file, after a blank line: noise that says what it
    is, the blank line blank, the lines between read as they are."""
    lines = ["==> /var/log/pods/istio-egress_waypoint-7d9f8b6c4-x2k8p_6c7b/istio-proxy/0.log <==", cri(ACCESS[0]),
             "", "==> /var/log/pods/istio-egress_waypoint-7d9f8b6c4-q9w8e_1a2b/istio-proxy/0.log <==", cri(ACCESS[1])]
    records, rejects, batch = parse_text(lines)
    assert [r["line_number"] for r in records] == [2, 5] and batch.blank == 1
    assert [(r["line_number"], r["class"], r["reason"]) for r in rejects] == [
        (n, "noise", "tail's header of the file it reads next (tail -f of several files), not an access line")
        for n in (1, 4)]


def test_many_small_node_files_keep_their_joined_parts_per_input(tmp_path, monkeypatch):
    """Small inputs that the workers parse in one batch (``workers._stage_inputs``) are split back per
    input (``batches.split_inputs``): each input's manifest entry counts its own joined parts."""
    from logpipe import lanes

    PARALLEL_MIN_INPUTS = 4  # (as many small inputs as take the workers: 32 in a user's run; each costs ~35 ms)
    monkeypatch.setattr(lanes, "PARALLEL_MIN_INPUTS", PARALLEL_MIN_INPUTS)
    logs = tmp_path / "pods"
    logs.mkdir()
    body = (SAMPLES / "cri-node.log").read_text()
    for k in range(PARALLEL_MIN_INPUTS + 2):
        (logs / f"{k:02d}.log").write_text(body + cri(f"agent line {k}", stream="stderr") + "\n")
    run = run_logpipe("ingest", logs, "--data", tmp_path / "d")
    assert run.returncode == 0, run.stderr
    entries = json.loads((tmp_path / "d" / "_manifest.json").read_text())["inputs"]
    assert len(entries) == PARALLEL_MIN_INPUTS + 2
    assert {(e["read"], e["parsed"], e["noise"], e["blank"], e["joined"]) for e in entries} == {(23, 13, 8, 1, 1)}


def test_no_split_line_is_joined_across_tail_s_header():
    """`tail -f` of two node files: a part of a line in one file is not joined with the next line of
    its stream in the other (after tail's header): it stays a reject, the other file's line a row."""
    from logpipe.runtimes import whole_runs

    long = ACCESS[0].replace('"GET /get ', '"GET /get?t=' + "x" * 17000 + " ", 1)
    lines = ["==> a/0.log <==", cri(long[:16384], tag="P"), "", "==> b/0.log <==", cri(ACCESS[1]),
             "", "==> a/0.log <==", cri(long[16384:])]
    records, rejects, batch = parse_text(lines)
    assert [r["line_number"] for r in records] == [5] and batch.joined == 0
    assert (rejects[1]["line_number"], rejects[1]["reason"]) == (2, PARTIAL)
    body = "".join(x + "\n" for x in lines[:5]).encode()
    assert whole_runs(body, 0, len(body)) == len(body)  # (the reader need not hold the part back either)


@pytest.mark.parametrize("cut_in", [1, 2, 3], ids=["1-byte-in", "2-bytes-in", "3-bytes-in"])
def test_a_character_cut_between_two_parts_is_whole_again(tmp_path, cut_in):
    """containerd cuts a long line at 16 KiB whatever the bytes: a UTF-8 character (3 bytes of 日, 4 of
    an emoji) may fall across two parts, each invalid UTF-8 alone. The joined line holds the character,
    not its bytes as \\xNN escapes; a literal \\xNN text away from the cut stays as it is."""
    path_text = "/" + "日本語" * 3000 + "😀" + r"\xe8" + "end"
    line = (f'[2024-03-05T06:07:08.123Z] "GET {path_text} HTTP/1.1" 200 - via_upstream - "-" 0 5 1 1 "-" "ua" '
            '"rid" "a" "10.0.0.1:80" outbound|80||a 10.0.0.2:1 10.0.0.3:80 10.0.0.4:2 - default').encode()
    first = line.index("語".encode()) + cut_in  # (a cut inside 語, then inside the emoji)
    emoji = line.index("😀".encode()) + min(cut_in, 3)
    parts = [line[:first], line[first:emoji], line[emoji:]]
    data = b"".join(b"2025-01-30T10:54:2%d.000000001Z stdout %s %s\n" % (k, b"F" if k == 2 else b"P", p)
                    for k, p in enumerate(parts))
    (tmp_path / "0.log").write_bytes(data)
    batch = default_parser().parse_chunk(data, "x", 1)
    (row,) = batch.records.to_pylist()
    assert row["path"] == path_text and batch.joined == 2


def test_no_docker_split_line_is_joined_across_tail_s_header():
    """As a CRI file's part (test_no_split_line_is_joined_across_tail_s_header), docker's part of a line
    (its log text without its newline) is not joined with the next entry of its stream after `tail -f`'s
    header, the next file's (it was: one malformed reject of both, "two lines glued together", the other
    file's line lost): the part a reject that says so, the other file's entry a row."""
    long = ACCESS[0].replace('"GET /get ', '"GET /get?t=' + "x" * 17000 + " ", 1)
    lines = ["==> a/0.log <==", docker(long[:16384], end=""), "", "==> b/0.log <==", docker(ACCESS[1])]
    records, rejects, batch = parse_text(lines)
    assert [r["line_number"] for r in records] == [5] and batch.joined == 0
    assert [(r["line_number"], r["class"]) for r in rejects] == [(1, "noise"), (2, "malformed"), (4, "noise")]
    assert rejects[1]["reason"] == DOCKER_PARTIAL
    joined, _, batch = parse_text(lines[1:2] + [docker(long[16384:])])  # (without the header: joined)
    assert [r["line_number"] for r in joined] == [1] and batch.joined == 1
