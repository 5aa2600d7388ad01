"""The README's `$ logpipe …` examples whose output no other test compares (tests/test_query.py has the
"Five questions" tables and registry_only, tests/test_report.py `make demo`'s reports): each command
is run as the README gives it (a shell pipe as its parts), and the lines the README shows are lines it
prints, in order; a line cut with `…` is one that starts so, a `…` alone leaves lines out. The figures
of time and speed (`7.5 kB in 0.22 s, 0.03 MB/s`) are the machine's, not compared."""
import json
import re
import shlex

import pytest

from conftest import ROOT, run_logpipe

README = (ROOT / "README.md").read_text(encoding="utf-8")
_SPEED = re.compile(r"in [\d.]+ s, [\d.]+ MB/s")


def shown(cmd: str, nth: int = 1) -> list[str]:
    """The lines the README shows after its nth `$ CMD` (up to the next `$ ` line or the block's end)."""
    after = README.split(f"\n$ {cmd}\n", nth)
    assert len(after) == nth + 1, f"README has no example `$ {cmd}` (its {nth})"
    block = after[nth].split("\n```", 1)[0]
    return [line.rstrip() for line in ("\n" + block).split("\n$ ", 1)[0].splitlines() if line.strip()]


def assert_shows(cmd: str, out: str, nth: int = 1) -> None:
    lines = [_SPEED.sub("in T s, R MB/s", line.rstrip()) for line in out.splitlines()]
    at = 0
    for line in shown(cmd, nth):
        if line.strip() == "…":
            continue
        line = _SPEED.sub("in T s, R MB/s", line)
        start, cut, _ = line.partition("…")
        found = [i for i in range(at, len(lines)) if (lines[i].startswith(start) if cut else lines[i] == line)]
        assert found, f"README's `$ {cmd}` shows a line it does not print (in this order): {line!r}\n{out}"
        at = found[0] + 1


def logpipe(cmd: str, cwd, input=None):
    """`$ logpipe …` of the README in cwd (sample_logs/ linked there), its exit status checked; a
    stream's stdin ``input`` (it reads its fd 0, not click's input: test_stream.stream_cli)."""
    args = shlex.split(cmd, comments=True)
    assert args[0] == "logpipe"
    if args[1] == "stream":
        from test_stream import stream_cli

        assert args[2] == "--data"
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(cwd)
            r = stream_cli(args[3], *args[4:], input=input)
    else:
        r = run_logpipe(*args[1:], cwd=cwd, input=input, text=False)
    assert r.returncode in (0, 1), r.stderr
    return r


@pytest.fixture
def here(tmp_path):
    (tmp_path / "sample_logs").symlink_to(ROOT / "sample_logs")
    return tmp_path


def test_a_split_line_joined_example(here):
    """What it reads: the CRI node file's line over 16 KiB is one row (its jq line), and the summary."""
    cmd = ("logpipe parse sample_logs/cri-node.log -o ndjson 2>/dev/null | jq -r 'select(.line_number == 20) | "
           "\"\\(.line_number) \\(.path | length) \\(.received_at)\"'")
    r = logpipe("logpipe parse sample_logs/cri-node.log -o ndjson", here)
    got = [f"{row['line_number']} {len(row['path'])} {row['received_at']}"
           for row in map(json.loads, r.stdout.decode().splitlines()) if row["line_number"] == 20]
    assert got == shown(cmd)
    assert r.stderr.decode().splitlines()[-1:] == shown("logpipe parse sample_logs/cri-node.log -o ndjson 2>&1 >/dev/null | tail -1")


def test_parse_malformed_example(here):
    cmd = "logpipe parse sample_logs/malformed.log > /dev/null"
    assert_shows(cmd, logpipe(cmd.split(" >")[0], here).stderr.decode())


def test_ingest_examples_and_the_rejects_view(here):
    """Ingest: the first run's summary, the second's (all skipped), and the rejects view's example."""
    cmd = "logpipe ingest sample_logs/ --data my-data --max-reject-ratio 1"
    for nth in (1, 2):
        assert_shows(cmd, logpipe(cmd, here).stderr.decode(), nth)
    cmd = ('logpipe query --data my-data --sql "select source, line_number, reason from rejects order by 1, 2 limit 2"'
           " --max-width 50")
    r = logpipe(cmd + " -o table", here)  # (-o table: a terminal's default)
    assert [line.rstrip() for line in r.stdout.decode().splitlines()] == shown(cmd)


def test_query_error_examples(here):
    """The Query section's three refusals, each its one line (the tables above them are
    tests/test_query.py's)."""
    (here / "logpipe-data").mkdir()
    logpipe("logpipe ingest sample_logs/waypoint-egress-1.23.log --data logpipe-data", here)
    cmds = ['logpipe query --sql "select * from acces_log"', 'logpipe query --sql "select raw from access_log"',
            """logpipe query --sql "select * from read_csv('/etc/passwd')\""""]
    for cmd in cmds:
        r = logpipe(cmd, here)
        assert r.returncode == 1
        assert_shows(cmd, r.stderr.decode())


def test_stream_examples(here):
    """Stream: the incident day replayed into a stream over the baseline week (its alerts shown, their
    count), then what a stream counts as replayed: its own lines again, another stream's, an ingest's."""
    cmd = "logpipe ingest sample_logs/scenario/baseline-week.log --data live"
    assert shown(cmd) == [] and logpipe(cmd, here).returncode == 0
    replay = logpipe("logpipe replay sample_logs/scenario/incident-day.log --speed max", here).stdout
    cmd = ("logpipe replay sample_logs/scenario/incident-day.log --speed max | "
           "logpipe stream --data live --flush-seconds 2")
    r = logpipe(cmd.split(" | ")[1], here, input=replay)
    assert_shows(cmd, r.stderr.decode())

    log = (here / "sample_logs" / "waypoint-egress-1.23.log").read_bytes()
    three = b"".join((here / "sample_logs" / "tcp-and-ipv6.log").read_bytes().splitlines(keepends=True)[:3])
    cmd = "logpipe stream --data live -q < sample_logs/waypoint-egress-1.23.log"
    assert_shows(cmd, logpipe("logpipe stream --data live -q", here, input=log).stderr.decode())
    for data in ("live", "yday"):
        if data == "yday":
            cmd = "logpipe ingest sample_logs/waypoint-egress-1.23.log --data yday"
            assert_shows(cmd, logpipe(cmd, here).stderr.decode())
        cmd = (f"(cat sample_logs/waypoint-egress-1.23.log; head -3 sample_logs/tcp-and-ipv6.log) | "
               f"logpipe stream --data {data} -q")
        assert_shows(cmd, logpipe(f"logpipe stream --data {data} -q", here, input=log + three).stderr.decode())
    cmd = "(for i in 1 2 3; do cat sample_logs/waypoint-egress-1.23.log; done) | logpipe stream --data loop -q"
    assert_shows(cmd, logpipe("logpipe stream --data loop -q", here, input=log * 3).stderr.decode())


def test_the_anomalies_json_keys_are_the_ones_the_readme_names(here):
    """README's stable JSON of the anomalies names each key a finding has: `source_ips` (a finding of
    one client's IPs, beside its `source`) was left out of it."""
    text = " ".join(README.split())
    shape = text.split("`json` (stable: `{", 1)[1].split(" inventory `{", 1)[0]
    named = set(re.findall(r'"([a-z_]+)"', shape)) | set(re.findall(r"`([a-z_]+)` in a finding", shape))
    r = logpipe("logpipe report anomalies --input sample_logs/scenario/ -o json", here)
    doc = json.loads(r.stdout)
    keys = set(doc) | {key for finding in doc["findings"] for key in finding}
    assert "source_ips" in keys and keys - named == set()
