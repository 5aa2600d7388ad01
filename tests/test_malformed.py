"""One test per line of sample_logs/malformed.log: the line is rejected, with the class and a reason
that names what is wrong and where (the reasons a user reads on stderr).

tests/malformed.expect.tsv says, per line, what is wrong in words; REASONS below says what
logpipe must answer. ``anchor`` is a phrase of the .tsv description, so that a reordered sample is
caught rather than silently checked against the wrong line.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from conftest import SAMPLES, parse_text, read_lines, run_logpipe

LOG = SAMPLES / "malformed.log"
EXPECT = Path(__file__).parent / "malformed.expect.tsv"

# line: (anchor in the .tsv description, class, phrases the reason must contain)
REASONS = {
    1: ("truncated", "malformed", ["after upstream_service_time", "the line ends there", "13 of 24 fields"]),
    2: ("2OO", "malformed", ["response_code expected INT, got '2OO'"]),
    3: ("closing quote", "malformed", ["""expected '"' after protocol"""]),
    4: ("2024-13-45", "malformed", ["start_time", "2024-13-45"]),
    5: ("abc", "malformed", ["bytes_sent expected INT or '-', got 'abc'"]),
    6: ("extra field", "malformed", ["unexpected text after route_name", "got ' default'"]),
    7: ("field count", "malformed", ["the line ends there", "18 of 24 fields"]),
    8: ("mid-quote", "malformed", ["""expected '"' after user_agent""", "the line ends there"]),
    9: ("no closing ]", "malformed", ["expected ']' after start_time"]),
    10: ("unquoted", "malformed", ["""expected '"' before upstream_transport_failure_reason"""]),
    11: ("-12", "malformed", ["duration expected INT or '-', got '-12'"]),
    12: ("truncated mid-key", "malformed", ["invalid JSON"]),
    13: ('"OK"', "malformed", ["response_code", "OK"]),
    14: ("glued", "malformed", ["a second access line starts here"]),
    15: ("2025/02/03", "malformed", ["start_time expected ISO_TIME, got '2025/02/03'"]),
    16: ("2 parts", "malformed", ["expected ' ' before protocol"]),
}


def expectations() -> list[tuple[int, str]]:
    with EXPECT.open(encoding="utf-8", newline="") as f:
        return [(int(row["line_number"]), row["what_is_wrong"]) for row in csv.DictReader(f, delimiter="\t")]


@pytest.fixture(scope="module")
def rejects():
    records, rejects, _ = parse_text(read_lines(LOG), "malformed.log")
    assert not records, f"malformed lines parsed as records: {[r['line_number'] for r in records]}"
    return {r["line_number"]: r for r in rejects}


def test_every_line_has_an_expectation():
    lines = [i for i, text in enumerate(read_lines(LOG), 1) if text.strip()]
    described = [n for n, _ in expectations()]
    assert described == lines, "malformed.expect.tsv should describe every line of malformed.log, in order"
    missing = sorted(set(described) - set(REASONS))
    assert not missing, f"add the expected reason of malformed.log lines {missing} to REASONS"


@pytest.mark.parametrize("line, what", expectations(), ids=lambda v: str(v) if isinstance(v, int) else "")
def test_malformed_line_reason(rejects, line, what):
    anchor, cls, phrases = REASONS[line]
    assert anchor.lower() in what.lower(), f"malformed.log:{line} is now '{what}': update REASONS"
    assert line in rejects, f"malformed.log:{line} ({what}) was not rejected"
    r = rejects[line]
    assert r["class"] == cls
    for phrase in phrases:
        assert phrase in r["reason"], f"reason {r['reason']!r} lacks {phrase!r}"
    # A reason that starts at a column agrees with the reject's column.
    m = re.match(r"column (\d+):", r["reason"])
    if m:
        assert r["column"] == int(m.group(1))
        assert 1 <= r["column"] <= len(r["raw"]) + 1


@pytest.mark.parametrize("line", [n for n, _ in expectations()], ids=str)
def test_malformed_text_lines_keep_lark_context(rejects, line):
    """A text line that breaks mid-way names its closest layout and keeps Lark's expected terminals."""
    r = rejects[line]
    if r["raw"].startswith("[") and "closest layout" in r["reason"]:
        assert re.search(r"closest layout istio_1_9\b", r["reason"])
        assert "Lark: column" in r["reason"]
        # What Lark expected, as the line reads it: "expected ']'", not "expected RSQB" (nor DQ, SP).
        assert not re.search(r"\b(RSQB|DQ|SP)\b", r["reason"]), r["reason"]


def test_lark_is_asked_about_an_inputs_first_lines_only(monkeypatch):
    """Lark's context costs ~5 ms a line: only malformed lines among an input's first
    LARK_CONTEXT_LINES lines get it, however the input is cut into batches; every other one is still
    a malformed reject with its diagnosis."""
    from logpipe import exact, grammar
    from logpipe.parse import default_parser

    # (a limit of 20, not exact.py's 100: the rule is the same, read at each batch, and each line
    # below it asks Lark twice, ~5 ms a time; 20 is not a multiple of the batches of 7 below either)
    LARK_CONTEXT_LINES = 20
    monkeypatch.setattr(exact, "LARK_CONTEXT_LINES", LARK_CONTEXT_LINES)
    calls = []
    real = grammar.Rulebook.parse
    monkeypatch.setattr(grammar.Rulebook, "parse", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    body = read_lines(LOG)[4]  # bytes_sent is abc
    n = 3 * LARK_CONTEXT_LINES
    _, rejects, batch = parse_text([body] * n)
    assert batch.read == n and len(rejects) == n and len(calls) == LARK_CONTEXT_LINES
    assert all(r["class"] == "malformed" and "bytes_sent expected INT or '-', got 'abc'" in r["reason"] for r in rejects)
    assert ["Lark:" in r["reason"] for r in rejects] == [True] * LARK_CONTEXT_LINES + [False] * (n - LARK_CONTEXT_LINES)
    assert len({r["column"] for r in rejects}) == 1
    # the same lines in batches of 7: the same reasons
    cut = [r for k in range(0, n, 7)
           for r in default_parser().parse_batch([body] * min(7, n - k), "-", k + 1).rejects.to_pylist()]
    assert cut == rejects


def test_a_custom_formats_malformed_lines_ask_lark_among_the_first_lines_only(monkeypatch):
    """The same rule for a given format (layouts.CustomLayout.take_lines): Lark (~0.5 ms a line) for
    malformed lines among the first LARK_CONTEXT_LINES, the format's diagnosis after them, whatever
    the batches; a line that departs at its start, nothing of the format in it (diagnose.tells), is
    handed back as noise without asking Lark."""
    from logpipe import exact, grammar, layouts

    LARK_CONTEXT_LINES = 20  # (not exact.py's 100, as in the test above)
    monkeypatch.setattr(exact, "LARK_CONTEXT_LINES", LARK_CONTEXT_LINES)
    parser = layouts.parser_from_spec("text:[%START_TIME%] %REQ(:METHOD)% %RESPONSE_CODE% \"%REQ(X-B3-TRACEID)%\"")
    calls = []
    real = grammar.Rulebook.parse
    monkeypatch.setattr(grammar.Rulebook, "parse", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    good = '[2024-07-18T16:13:58.198Z] GET 200 "abc"'
    lines = [good if k % 3 else good.replace("200", "2OO") for k in range(3 * LARK_CONTEXT_LINES)]
    lines[-1] = "2024-07-18 16:13:58 INFO not an access line"
    batch = parser.parse_batch(lines)
    rejects = batch.rejects.to_pylist()
    bad = [r for r in rejects if r["class"] == "malformed"]
    assert batch.parsed == 2 * LARK_CONTEXT_LINES - 1 and len(bad) == LARK_CONTEXT_LINES
    assert [r["class"] for r in rejects if r["line_number"] == len(lines)] == ["noise"]
    early = [r for r in bad if r["line_number"] <= LARK_CONTEXT_LINES]
    assert len(calls) == len(early)
    late = [r for r in bad if r["line_number"] > LARK_CONTEXT_LINES]
    assert late and all(r["reason"] == "does not follow the given format: column 32: response_code expected INT, "
                        "got '2OO'" and r["column"] == 32 for r in late)
    # the first ones: the same diagnosis (where the line departs from the format), then Lark's word
    assert all(r["reason"].startswith("does not follow the given format: column 32: response_code expected INT, "
                                      "got '2OO' (Lark: column ") and r["column"] == 32 for r in early)
    # the same lines in batches of 7: the same reasons
    cut = [r for k in range(0, len(lines), 7)
           for r in parser.parse_batch(lines[k:k + 7], "-", k + 1).rejects.to_pylist()]
    assert cut == rejects


@pytest.mark.parametrize("line, prefix", [
    ("[pod/waypoint-7d9f/istio-proxy] ", 33),
    ("2025-02-03T09:15:09.901234567Z ", 32),
])
def test_columns_count_the_prefix(line, prefix):
    """A prefixed line's columns count from the start of the whole line, prefix included."""
    body = read_lines(LOG)[4]  # bytes_sent is abc
    _, bare, _ = parse_text([body])
    _, prefixed, _ = parse_text([line + body])
    assert prefixed[0]["column"] == bare[0]["column"] + len(line)
    assert f"column {bare[0]['column'] + len(line)}:" in prefixed[0]["reason"]
    assert len(line) + 1 == prefix


@pytest.mark.parametrize("text", [
    "hello world",
    "172.18.0.2 - - [03/May/2024 09:12:44] \"GET /service/2 HTTP/1.1\" 200 -",
    " * Serving Flask app 'service'",
])
def test_lines_that_start_like_no_layout_are_noise(text):
    _, rejects, _ = parse_text([text])
    assert rejects[0]["class"] == "noise"
    assert "not an access line" in rejects[0]["reason"]
    assert "Envoy's and Istio's text layouts start with '['" in rejects[0]["reason"]


@pytest.mark.parametrize("tail", ['" "' * 2000, '"x" ' * 1500, "a" * 3000])
def test_pathological_lines_are_diagnosed_from_the_grammar_alone(tail):
    """Lark's Earley parser is cubic on lines full of quotes (minutes for one line); such lines and
    over-long ones get the grammar diagnosis without Lark's context, so one line cannot stall a run."""
    line = '[2025-02-03T09:15:09.901Z] "GET /x HTTP/1.1" 200 - via_upstream - "-" 0 254 237 236 ' + tail
    _, rejects, _ = parse_text([line])
    (r,) = rejects
    assert r["class"] == "malformed"
    assert "closest layout istio_1_9" in r["reason"] and "Lark:" not in r["reason"]
    assert r["reason"].startswith(f"column {r['column']}:")


YEAR_ZERO = ('[0000-12-09T13:40:07.513Z] "GET / HTTP/1.1" 200 - via_upstream - "-" 0 1 2 3 "-" "-" "-" "a" '
             '"1.2.3.4:80" outbound|80||a 1.1.1.1:1 2.2.2.2:2 3.3.3.3:3 - -')


@pytest.mark.parametrize("line, text", [
    (YEAR_ZERO, "0000-12-09T13:40:07.513Z"),
    ('{"start_time":"-2024-12-09T13:40:07.513Z","response_code":200}', "-2024-12-09T13:40:07.513Z"),
    ('{"start_time":"10000-01-01T00:00:00Z","response_code":200}', "10000-01-01T00:00:00Z"),
])
def test_times_no_reader_can_hold_are_rejected(line, text):
    """polars reads year 0 and signed years; a record holding one broke every later step (ingest's
    date range: an internal error). Such a time is an invalid value, like 2024-13-45."""
    records, rejects, _ = parse_text([line])
    assert records == [] and rejects[0]["reason"] == f"invalid value: start_time: cannot read {text}"


def test_ingest_rejects_year_zero_instead_of_failing(tmp_path):
    log = tmp_path / "y0.log"
    log.write_text(YEAR_ZERO + "\n")
    p = run_logpipe("ingest", log, "--data", tmp_path / "d", "--max-reject-ratio", "1")
    assert p.returncode == 0 and "internal error" not in p.stderr, p.stderr
    assert "lines read 1, parsed 0, rejected 1 (noise 0, malformed 1)" in p.stderr


def test_diagnosis_from_shared_steps_equals_each_layout_searched_alone():
    """diagnose_line takes what an earlier layout found within the steps it shares with a later one
    (steps.shared_steps); each layout searched alone from its first step (match_steps) gives the same
    departure: lines of every sample cut at every tenth column, and with a byte changed there."""
    import dataclasses
    import random

    from conftest import sample_files

    from logpipe import diagnose, steps
    from logpipe.parse import TEXT_LAYOUTS, Parser

    access = Parser().access

    def alone(body):  # diagnose_line as it was: every layout searched from its first step
        real = steps.shared_steps
        steps.shared_steps = lambda *a: 0
        try:
            return diagnose.diagnose_line(access, body, TEXT_LAYOUTS)
        finally:
            steps.shared_steps = real

    rng = random.Random(4)
    # (the first 6 of each sample: the first 150 of all were of the first 10 samples alone)
    lines = [x for p in sample_files() if p.suffix == ".log" for x in [y for y in read_lines(p) if y.startswith("[")][:6]]
    assert len(lines) > 100
    bodies = [x[:k] for x in lines for k in range(1, len(x), 10)]
    bodies += [b[:-1] + rng.choice('x 0"-[]:|') for b in bodies if b]
    assert steps.shared_steps(access, TEXT_LAYOUTS[0], TEXT_LAYOUTS[1]) > 10  # (the shortcut is taken)
    for body in dict.fromkeys(bodies):  # (each distinct body once: prefixes of lines alike repeat)
        got, want = diagnose.diagnose_line(access, body, TEXT_LAYOUTS), alone(body)
        assert (got and dataclasses.astuple(got)) == (want and dataclasses.astuple(want)), body


def test_an_address_without_its_port_is_said_so():
    from logpipe.parse import Parser

    line = next(x for x in (SAMPLES / "waypoint-egress-1.23.log").read_text().splitlines() if " 10.244.0.18:" in x)
    port = line.split(" 10.244.0.18:")[1].split(" ")[0]
    bad = line.replace(f" 10.244.0.18:{port} ", " 10.244.0.18 ", 1)
    (r,) = Parser().parse_batch([bad]).rejects.to_pylist()
    col = bad.index(" 10.244.0.18 ") + 2
    assert r["reason"].startswith(f"column {col}: upstream_local_address expected an address with its port "
                                  "(IP:PORT, [IPv6]:PORT), got '10.244.0.18', no port (closest layout istio_1_9")


# istio-agent's crash on stderr, as Go's runtime prints it (noise.lark's go_panic cites the source);
# trimmed paths (-trimpath) and GOROOT's, a Go 1.23+ fatal error's header, and a wrapper's exit.
GO_PANIC = [
    "panic: runtime error: invalid memory address or nil pointer dereference",
    "[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x1c5b3a4]",
    "goroutine 1 [running]:",
    "istio.io/istio/pkg/istio-agent.(*Agent).Run(0xc000a1c000, {0x2d4f1e8, 0xc0004b2140})",
    "\tistio.io/istio/pkg/istio-agent/agent.go:412 +0x344",
    "github.com/spf13/cobra.(*Command).execute(0xc000a0e300, {0xc000a0a000, 0xf, 0xf})",
    "\tgithub.com/spf13/cobra@v1.8.1/command.go:985 +0xaca",
    "main.main()",
    "\t/usr/local/go/src/runtime/proc.go:267 +0x1c5",
    "goroutine 42 [chan receive, 3 minutes]:",
    "created by istio.io/istio/pkg/istio-agent.(*Agent).Run in goroutine 1",
    "panic: close of closed channel [recovered]",
    "\tpanic: close of closed channel",
    "fatal error: concurrent map writes",
    "goroutine 7 gp=0xc000102a80 m=4 mp=0xc000100008 [running]:",
    "...additional frames elided...",
    "exit status 2",
]
PREFIXES = ["", "[pod/egress-7d9f/istio-proxy] ", "2025-02-03T09:15:09.901234567Z ",
            "2025-02-03T09:15:09.901234567Z stderr F ", "egress-7d9f istio-proxy ",
            "istio-system egress-7d9f istio-proxy ", "[egress-7d9f istio-proxy] ", "egress-1  | "]


@pytest.mark.parametrize("prefix", PREFIXES, ids=repr)
def test_a_go_panic_dump_is_noise_and_a_truncated_access_line_is_not(prefix):
    """Every line of a Go crash dump is noise that says so, after any prefix (stern's words included:
    "goroutine 1 [running]:" reads as one); an access line cut short after the same prefix stays
    malformed, one that ends in a ")" as a Go frame does too."""
    from logpipe.exact import NOISE_RULES

    cut = read_lines(LOG)[0]  # truncated
    paren = ('[2025-02-03T09:15:09.901Z] "GET http://a.example/f(x) HTTP/1.1" 200 - via_upstream - "-" 0 1 2 3 '
             '"-" "Mozilla/5.0 (X11)')
    _, rejects, _ = parse_text([prefix + x for x in GO_PANIC + [cut, paren]])
    got = {r["line_number"]: (r["class"], r["reason"]) for r in rejects}
    assert [got[n] for n in range(1, len(GO_PANIC) + 1)] == [("noise", NOISE_RULES["go_panic"])] * len(GO_PANIC)
    assert [got[n][0] for n in (len(GO_PANIC) + 1, len(GO_PANIC) + 2)] == ["malformed", "malformed"]


@pytest.mark.parametrize("prefix", PREFIXES, ids=repr)
def test_a_go_panic_dump_is_noise_under_a_format_that_starts_with_the_method(prefix):
    """A given format that starts with %REQ(:METHOD)% (any token) reads two fields of a Go frame or
    "goroutine 1 [running]:" (a method, a path); a line a noise rule takes must follow it for one
    field more (parse.CLAIM_FIELDS), and go_panic takes these lines past a stern prefix's words: the
    claim looks at them as the noise rules do (exact.noise_hits), so they stay noise."""
    from logpipe.exact import NOISE_RULES
    from logpipe.parse import Parser

    parser = Parser(custom="text:%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL% %RESPONSE_CODE%")
    rows, rejects, _ = parse_text([prefix + x for x in GO_PANIC] + [prefix + "GET /x HTTP/1.1 2OO"], parser=parser)
    assert not rows
    got = {r["line_number"]: (r["class"], r["reason"]) for r in rejects}
    assert [got[n] for n in range(1, len(GO_PANIC) + 1)] == [("noise", NOISE_RULES["go_panic"])] * len(GO_PANIC)
    assert got[len(GO_PANIC) + 1][0] == "malformed"


@pytest.mark.parametrize("fast", [True, False])
def test_a_line_of_words_is_noise_under_a_format_that_starts_with_the_method_and_path(fast):
    """%REQ(:METHOD)% takes any token and %REQ(:PATH)% any text, so any two words follow such a format
    for two fields (parse.CLAIM_FIELDS): a startup line such as "listening on :15000" was its malformed
    line. What a line follows of a format must tell it from another program's (a protocol, a number, a
    time, a literal that is not a space: steps.telling_steps), so those are noise again; an access line
    of the format cut short (after its protocol, or its response code) is still its malformed line."""
    from logpipe.parse import Parser

    parser = Parser(custom="text:%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL% %RESPONSE_CODE% %BYTES_SENT% %DURATION%",
                    fast=fast)
    words = ["listening on :15000", "Envoy started", "starting proxy agent", "2024/01/02 10:00:00 starting"]
    cut = ["GET /x HTTP/1.1 2OO", "GET /api/v1/items?page=2 HTTP/1.1 200 12", "POST /a b HTTP/2",
           'GET /a"b HTTP/1.1 2OO']  # (a quote: free text may hold it, where the diagnosis stops; Lark decides)
    rows, rejects, _ = parse_text(words + cut + ["GET /x HTTP/1.1 200 12 5"], parser=parser)
    assert [r["path"] for r in rows] == ["/x"]
    got = [(r["class"], r["reason"].split(":")[0]) for r in sorted(rejects, key=lambda r: r["line_number"])]
    assert got == [("noise", "not an access line")] * len(words) + [("malformed", "does not follow the given format")] * len(cut)


@pytest.mark.parametrize("fast", [True, False])
def test_a_line_of_no_layout_under_a_given_format_names_where_it_departs_from_that_format(fast):
    """Under a given format, a line that starts like no built-in layout was said to break where
    "Envoy's and Istio's text layouts start with '['": the built-in layouts' start, not the user's format. Its reason
    now says where it departs from the given format and what that expected there (its column is the
    reject's), then the built-in layouts' start; under a JSON format, that a line of it is a JSON object."""
    from logpipe.parse import Parser

    parser = Parser(custom="text:%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL% %RESPONSE_CODE%", fast=fast)
    _, rejects, _ = parse_text(["GET /b", "hello"], parser=parser)
    got = [(r["class"], r["column"], r["reason"]) for r in sorted(rejects, key=lambda r: r["line_number"])]
    assert got == [
        ("noise", 7, "not an access line: matches neither the given format (column 7: expected ' ' before protocol, "
                     "the line ends there (2 of 4 fields)) nor a built-in layout (column 1: Envoy's and Istio's text layouts start with "
                     "'[', got 'GET /b')"),
        ("noise", 6, "not an access line: matches neither the given format (column 6: expected ' ' before path, "
                     "the line ends there (1 of 4 fields)) nor a built-in layout (column 1: Envoy's and Istio's text layouts start with "
                     "'[', got 'hello')")]
    parser = Parser(custom='json:{"m": "%REQ(:METHOD)%", "c": "%RESPONSE_CODE%"}', fast=fast)
    _, rejects, _ = parse_text(["GET /b"], parser=parser)
    assert [r["reason"] for r in rejects] == [
        "not an access line: matches neither the given JSON format (a JSON object) nor a built-in layout "
        "(column 1: Envoy's and Istio's text layouts start with '[', got 'GET /b')"]


def test_a_given_format_s_noise_reason_is_the_same_from_a_format_file_and_a_dataset_s_remembered_format(tmp_path):
    """--format-file, and a later stream into a dataset that remembers its format (manifest
    format_spec), say of a line of no layout what --format-string does."""
    from click.testing import CliRunner

    from logpipe.cli import cli

    fmt = "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL% %RESPONSE_CODE%"
    (tmp_path / "fmt.txt").write_text(fmt + "\n")
    (tmp_path / "a.log").write_text("GET /a HTTP/1.1 200\nGET /b\n")
    want = "not an access line: matches neither the given format (column 7:"
    runner = CliRunner()
    for args in (["parse", "--format-string", fmt], ["parse", "--format-file", str(tmp_path / "fmt.txt")]):
        got = runner.invoke(cli, [*args, str(tmp_path / "a.log")])
        assert got.exit_code == 0, got.output
        assert f"a.log:2: noise: {want}" in got.stderr
    data = str(tmp_path / "data")
    got = runner.invoke(cli, ["ingest", str(tmp_path / "a.log"), "--format-string", fmt, "--data", data])
    assert got.exit_code == 0, got.output
    from test_stream import stream_cli  # (in this process: the stream's reading of the dataset's format)

    got = stream_cli(tmp_path / "data", input=b"GET /c HTTP/1.1 200\nGET /b\n")
    assert got.returncode == 0, got.stderr
    reasons = runner.invoke(cli, ["query", "--data", data, "-o", "csv",
                                  "--sql", "SELECT reason FROM rejects ORDER BY source, line_number"]).output
    assert reasons.count(want) == 2, reasons


@pytest.mark.parametrize("fast", [True, False])
def test_a_line_of_words_is_not_read_past_a_stern_prefix_in_its_reason(fast):
    """stern's prefix is two words ("<pod> <container> "), so "listening on :15000" read as pod
    "listening", container "on", and its reason said column 14, got ':15000'. Where what follows such a
    prefix starts like no access line, the reason is of the line as written, from its column 1 (under a
    given format too); stern's prefix before an access line that breaks still counts (its column is
    past it), as does kubectl's before any line."""
    from logpipe.parse import Parser

    access = '[2025-02-04T17:31:12.958Z] "GET /x HTTP/1.1" 2OO'
    lines = ["listening on :15000", "waypoint-1 istio-proxy " + access, "[pod/w/c] hello"]
    _, rejects, _ = parse_text(lines, parser=Parser(fast=fast))
    got = [(r["class"], r["column"], r["reason"]) for r in sorted(rejects, key=lambda r: r["line_number"])]
    assert got[0] == ("noise", 1, "not an access line: column 1: Envoy's and Istio's text layouts start with '[', got 'listening on :15000'")
    assert got[1][:2] == ("malformed", len("waypoint-1 istio-proxy ") + access.index("2OO") + 1)
    assert got[2] == ("noise", 11, "not an access line: column 11: Envoy's and Istio's text layouts start with '[', got 'hello'")
    parser = Parser(custom="text:%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL% %RESPONSE_CODE%", fast=fast)
    _, rejects, _ = parse_text(lines[:1], parser=parser)
    assert [(r["column"], r["reason"]) for r in rejects] == [
        (14, "not an access line: matches neither the given format (column 14: protocol expected PROTOCOL or '-', "
             "got ':15000') nor a built-in layout (column 1: Envoy's and Istio's text layouts start with '[', got 'listening on :15000')")]
