"""The split plan's native cut (logpipe/cut.c, built and loaded by logpipe/native.py): the same
columns as polars' cut on the lines where a plan's reading is easy to get wrong, its build and cache,
and the fallback to polars when there is no C compiler. (tests/test_splitplan.py runs all its
tests both ways; the differential test runs the native cut against Lark.)"""
from __future__ import annotations

import os
import shutil

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import run_logpipe
from logpipe import grammar, native, splitplan
from logpipe.parse import Parser

LINE = ('[2025-01-30T10:53:24.085Z] "GET /search?q=blue shoes HTTP/1.1" 200 UF,URX via_upstream - "-" 0 254 237 236 '
        '"-" "Mozilla/5.0 (X11; Linux)" "6f2e" "httpbin.org" "[2001:db8::10]:443" inbound-vip|80|http|httpbin.org '
        "10.244.0.18:39682 240.240.0.2:80 10.244.0.24:45748 - default")

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler: cut.c cannot be built")


@pytest.fixture(scope="module")
def plan():
    return splitplan.build(grammar.load_builtin("access"), "istio_1_9")


def both(plan, body: pl.Series, monkeypatch):
    """(native, polars) results of ``splitplan.cut``."""
    monkeypatch.setenv("LOGPIPE_NATIVE", "1")
    assert native.library() is not None, native.why_not
    fast = splitplan.cut(plan, body)
    monkeypatch.setenv("LOGPIPE_NATIVE", "0")
    slow = splitplan.cut(plan, body)
    return fast, slow


def assert_same(plan, lines: list[str], monkeypatch, sliced: slice | None = None):
    body = pl.Series(lines, dtype=pl.String)
    if sliced is not None:
        body = body[sliced]
    (easy, got), (easy2, want) = both(plan, body, monkeypatch)
    assert easy.to_list() == easy2.to_list()
    assert (got is None) == (want is None)
    if got is not None:
        assert got.columns == want.columns
        assert got.to_dicts() == want.to_dicts()
    return easy, got


def variant(**changes) -> str:
    line = LINE
    for old, new in changes.values():
        line = line.replace(old, new, 1)
    return line


def test_views_short_long_and_unicode(plan, monkeypatch):
    """Texts of up to 12 bytes live inside their view, longer ones in the column's own buffer: both
    sides of that edge, empty free text, and multi-byte characters."""
    lines = [
        LINE,
        variant(ua=('"Mozilla/5.0 (X11; Linux)"', '"abcdefghijkl"')),  # 12 bytes
        variant(ua=('"Mozilla/5.0 (X11; Linux)"', '"abcdefghijklm"')),  # 13 bytes
        variant(ua=('"Mozilla/5.0 (X11; Linux)"', '""')),
        variant(path=("/search?q=blue shoes", "/ünïcødé/路径 with spaces"),
                ua=('"Mozilla/5.0 (X11; Linux)"', '"naïve-客户端/1.0 ✓"')),
    ]
    easy, got = assert_same(plan, lines, monkeypatch)
    assert easy.all()
    assert got["user_agent"].to_list() == ["Mozilla/5.0 (X11; Linux)", "abcdefghijkl", "abcdefghijklm", "", "naïve-客户端/1.0 ✓"]
    assert got["path"][4] == "/ünïcødé/路径 with spaces"
    assert got["downstream_remote_address_ip"].to_list() == ["10.244.0.24"] * 5


def test_lines_the_plan_does_not_cut(plan, monkeypatch):
    """A quote inside free text (one quote more or fewer than the layout's) is left to the capture
    regex, also when it sits between lines that are cut."""
    lines = [LINE, variant(ua=('"Mozilla/5.0 (X11; Linux)"', '"say "hi" now"')), LINE,
             variant(xff=('"-" "Mozilla', '"- "Mozilla')), LINE]
    easy, got = assert_same(plan, lines, monkeypatch)
    assert easy.to_list() == [True, False, True, False, True]
    assert got.height == 3


def test_a_slice_of_a_batch(plan, monkeypatch):
    """Lines that start inside a larger buffer (a filtered or sliced batch) cut the same."""
    lines = [variant(rid=('"6f2e"', f'"{i:04d}-request-id"')) for i in range(40)]
    easy, got = assert_same(plan, lines, monkeypatch, slice(7, 31))
    assert got["request_id"].to_list() == [f"{i:04d}-request-id" for i in range(7, 31)]


def test_no_line_cut(plan, monkeypatch):
    easy, got = assert_same(plan, ['"a" "b"', 'no quotes at all'], monkeypatch)
    assert got is None and not easy.any()


def test_without_a_compiler_polars_cuts(monkeypatch, tmp_path):
    """No C compiler: library() is None and says why; parsing gives the same rows."""
    monkeypatch.setenv("LOGPIPE_NATIVE", "1")
    with_native = Parser().parse_batch([LINE] * 3).records.to_pylist()
    monkeypatch.setattr(native, "_LIB", None)
    monkeypatch.setattr(native, "_TRIED", False)
    monkeypatch.setattr(native, "_FAILED", None)
    monkeypatch.setenv("LOGPIPE_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-cc")
    assert native.library() is None
    assert "no C compiler (no-such-cc)" in native.why_not
    assert Parser().parse_batch([LINE] * 3).records.to_pylist() == with_native


@pytest.fixture(scope="module")
def fresh_build(tmp_path_factory):
    """cut.c built once into an empty $LOGPIPE_CACHE of its own (a compile is the costly part of these
    tests): (that directory, the library). A test that changes the directory works on a copy."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOGPIPE_CACHE", str(cache))
        built = native._build()
    return cache, built


def test_build_into_the_cache(monkeypatch, tmp_path, fresh_build):
    """The library is built into $LOGPIPE_CACHE, named by a hash of cut.c, and found there next time."""
    cache, built = fresh_build
    assert built.parent == cache and built.name.startswith("cut-") and built.suffix == ".so"
    assert [p.name for p in cache.iterdir()] == [built.name]  # no temporary file left
    shutil.copytree(cache, tmp_path, dirs_exist_ok=True)
    built = tmp_path / built.name
    monkeypatch.setenv("LOGPIPE_CACHE", str(tmp_path))
    with monkeypatch.context() as mp:
        mp.setenv("CC", "no-such-cc")  # found in the cache: no compiler needed
        assert native._build() == built
        assert native._load(built).logpipe_cut is not None
    (tmp_path / "cut-0123456789abcdef.so").write_bytes(b"an earlier build")
    monkeypatch.setattr(native, "SOURCE", tmp_path / "cut.c")  # a changed cut.c: built anew, the old one goes
    # (a source of one function: its compile, not the real cut.c's ~1 s of CPU; this build is not loaded)
    (tmp_path / "cut.c").write_text("int logpipe_changed(void) { return 1; }\n")
    rebuilt = native._build()
    assert rebuilt != built and sorted(p.name for p in tmp_path.glob("*.so")) == [rebuilt.name]


def test_disabled(monkeypatch):
    monkeypatch.setenv("LOGPIPE_NATIVE", "0")
    assert native.library() is None and native.why_not == "LOGPIPE_NATIVE=0"


PLAN = splitplan.build(grammar.load_builtin("access"), "istio_1_9")
WORD = st.text(alphabet='-[]|:.aZ09é路\t', max_size=14)  # no space, no quote
FREE = st.text(alphabet=' -[]|:.aZ09é路', max_size=30)


@st.composite
def plan_shaped(draw):
    """A line of PLAN's shape (its quotes, and per segment its tokens and spaces) with random tokens,
    sometimes with a space or quote too many or too few."""
    segments = []
    for seg in PLAN.segments:
        words = [draw(WORD) for _ in seg.left]
        if seg.free is not None:
            words.append(draw(FREE))
        words += [draw(WORD) for _ in seg.right]
        segments.append(" ".join(words))
    line = '"'.join(segments)
    if draw(st.booleans()):
        at = draw(st.integers(0, len(line)))
        line = line[:at] + draw(st.sampled_from([" ", '"', ""])) + line[at + draw(st.integers(0, 1)):]
    return line


ANY_LINE = st.one_of(st.text(alphabet=' "-[]|:.aZ09é路\t', max_size=160), plan_shaped())


# (~3,000 lines either way: 60 batches of up to 100, not 120 of up to 50 nor 300 of up to 20; a cut's
# cost is mostly per batch)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ANY_LINE, min_size=1, max_size=100))
def test_arbitrary_lines_are_cut_safely(plan, monkeypatch, lines):
    """Any text (cut.c is only given lines a layout's regex accepts, but must be safe on any): a
    line is cut only when it holds the plan's number of quotes, and every token is a piece of it."""
    (easy, columns), (easy2, columns2) = both(plan, pl.Series(lines, dtype=pl.String), monkeypatch)
    for line, ok, ok2 in zip(lines, easy.to_list(), easy2.to_list()):
        assert not ok or ok2 and line.count('"') == plan.quotes  # polars: the quote count alone
    if columns is not None:
        kept = [line for line, ok in zip(lines, easy.to_list()) if ok]
        assert columns.height == len(kept)
        for name in ("method", "path", "response_flags", "user_agent", "request_id", "route_name"):
            for line, value in zip(kept, columns[name].to_list()):
                assert value is None or value in line
        # where cut.c cuts a line, its reading is the one polars gives (the unique one)
        mine = columns2.filter(easy.filter(easy2))
        assert [{k: v for k, v in r.items() if k in ("method", "path", "response_flags", "user_agent",
                 "request_id", "route_name", "bytes_sent")} for r in mine.to_dicts()] == \
               [{k: v for k, v in r.items() if k in ("method", "path", "response_flags", "user_agent",
                 "request_id", "route_name", "bytes_sent")} for r in columns.to_dicts()]


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 4079, 4080, 4081, 100_003])
def test_count_newlines(monkeypatch, size):
    """The parent's line count of a file range (iter_file_ranges): natively equal to bytes.count,
    across cut.c's block and vector edges, a range that ends before the buffer does, and a buffer
    that grows afterwards (the count holds no export of it)."""
    import random

    monkeypatch.setenv("LOGPIPE_NATIVE", "1")
    rng = random.Random(size)
    buf = bytearray(rng.choice(b"ab\n\n\n") for _ in range(size + 7))
    assert native.count_newlines(buf, size) == buf.count(b"\n", 0, size)
    buf.extend(b"\n" * 300)
    assert native.count_newlines(buf, len(buf)) == buf.count(b"\n")


def test_a_library_in_a_directory_others_can_write_is_not_loaded(monkeypatch, tmp_path, fresh_build):
    """A library is code this process runs: one in a directory other users can write (a shared
    /tmp) could have been planted there, so it is neither loaded nor built there."""
    _cache, built = fresh_build
    assert oct(built.stat().st_mode & 0o777) == "0o700"
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    (shared / built.name).write_bytes(built.read_bytes())  # "planted"
    monkeypatch.setenv("LOGPIPE_CACHE", str(shared))
    with pytest.raises(native._BuildError, match="this user's alone"):
        native._build()


def test_without_a_compiler_the_cli_says_so_once(tmp_path, monkeypatch):
    """No C compiler: `logpipe parse` (and ingest, stream) notes it once per machine, before the work
    (the summary stays the last line on stderr), and gives the same records. (Each run in this
    process as in a new one: cut.c not yet tried.)"""
    env = {"LOGPIPE_CACHE": str(tmp_path / "cache"), "CC": "no-such-cc", "LOGPIPE_NATIVE": "1"}
    log = tmp_path / "a.log"
    log.write_text(LINE + "\n")
    runs = []
    for _ in range(2):
        for name, value in (("_LIB", None), ("_TRIED", False), ("_FAILED", None)):
            monkeypatch.setattr(native, name, value)
        runs.append(run_logpipe("parse", log, "-o", "ndjson", env=env))
    first, second = (r.stderr.splitlines() for r in runs)
    assert first[0].startswith("logpipe: note: no C compiler (no-such-cc)") and "said once" in first[0]
    assert first[-1] == "read 1, parsed 1, rejected 0 (noise 0, malformed 0)"
    assert second == first[1:]
    assert runs[0].stdout == runs[1].stdout and runs[0].returncode == runs[1].returncode == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.none(), st.sampled_from(["", "-", "a", "10.0.0.1", "x" * 12, "y" * 13, "é" * 9,
                                                      "inbound-vip|80|http|httpbin.org"]),
                          st.text(max_size=30)), max_size=300))
def test_dictionary_codes_give_back_every_text(values):
    """native.dictionary (cut.c's logpipe_dict): row i holds the text of row firsts[codes[i]],
    distinct texts are numbered as they first appear, and a null is a text of its own."""
    series = pl.Series(values, dtype=pl.String)
    codes, firsts = native.dictionary(native.library(), series)
    assert series.gather(firsts).gather(codes).to_list() == values
    assert series.gather(firsts).to_list() == list(dict.fromkeys(values))
    assert codes.to_list() == [list(dict.fromkeys(values)).index(v) for v in values]


def test_dictionary_of_a_slice_and_of_many_distinct_texts():
    series = pl.Series([f"10.244.{i % 700}.{i % 251}:{i}" for i in range(20000)] + [None, "a"] * 50)
    codes, firsts = native.dictionary(native.library(), series)
    assert series.gather(firsts).gather(codes).to_list() == series.to_list()
    assert firsts.len() == series.n_unique()
    part = series.slice(5, 300)
    got = native.dictionary(native.library(), part)
    assert got is None or part.gather(got[1]).gather(got[0]).to_list() == part.to_list()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["", ":", "a:", ":b", "10.0.0.1:80", "[fe80::1]:8080", "x" * 13,
                                                      "y" * 12 + ":" + "z" * 12, "é:ü:9", "envoy://a/10.1.2.3:443"]),
                          st.text(st.sampled_from("ab:é1 "), max_size=30)), max_size=200), st.integers(0, 5))
def test_split_at_the_last_separator_as_polars_reads_it(values, start):
    """native.split_last (cut.c's logpipe_split_last): before and after the last ':' as
    subfields.read_tail's polars reading gives them (a text without one all before it, nothing
    after it; a null null), short and long texts, in a slice too."""
    series = pl.Series(values, dtype=pl.String).slice(start)
    got = native.split_last(native.library(), series, ":")
    if got is None:  # (a slice whose validity starts at a bit offset: not read natively)
        return
    last = series.str.extract(":([^:]*)$")
    head = series.str.slice(0, series.str.len_chars() - last.str.len_chars() - 1)
    assert got[0].to_list() == head.to_list() and got[1].to_list() == last.to_list()


def test_dictionary_reads_short_texts_by_their_length_and_long_ones_whole():
    """Short texts are hashed and compared as the view's two words, masked to their length: bytes
    after a text in its view (zero by Arrow's rule, but not relied on) change nothing. Long texts
    that share their length and first bytes (the view's prefix) are still told apart."""
    import struct

    import pyarrow as pa

    views = b"".join(struct.pack("<i12s", len(t), t + pad) for t, pad in
                     [(b"ab", b"\x01" * 10), (b"ab", b"\x07" * 10), (b"ac", bytes(10)), (b"", b"\xff" * 12),
                      (b"", bytes(12)), (b"abcd", b"z" * 8), (b"abcd", bytes(8))])
    series = pl.from_arrow(pa.Array.from_buffers(pa.string_view(), 7, [None, pa.py_buffer(views), pa.py_buffer(b"-")]))
    codes, firsts = native.dictionary(native.library(), series)
    assert codes.to_list() == [0, 0, 1, 2, 2, 3, 3] and firsts.to_list() == [0, 2, 3, 5]
    texts = [p + s for n in range(12, 22) for p in ("a" * n,) for s in ("x", "y")] + ["a" * 12 + "x"] * 3
    series = pl.Series(texts)
    codes, firsts = native.dictionary(native.library(), series)
    assert series.gather(firsts).gather(codes).to_list() == texts and firsts.len() == len(set(texts))


def test_dictionary_probe_stops_at_texts_that_hardly_repeat():
    """With a probe, a column whose first rows hold too many distinct texts (client ports) is not
    read further (SPREAD); one that repeats is read whole, as without a probe."""
    lib = native.library()
    spread = pl.Series([f"10.0.0.1:{i}" for i in range(5000)])
    assert native.dictionary(lib, spread, probe=2048, ratio=2) is native.SPREAD
    assert native.dictionary(lib, spread, probe=2048, ratio=1)[1].len() == 5000  # (at most one each)
    repeats = pl.Series([f"10.0.0.{i % 900}" for i in range(5000)])
    codes, firsts = native.dictionary(lib, repeats, probe=2048, ratio=2)
    want = native.dictionary(lib, repeats)
    assert codes.to_list() == want[0].to_list() and firsts.to_list() == want[1].to_list()
    assert native.dictionary(lib, pl.Series([f"{i}" for i in range(1025)] * 2), probe=2048, ratio=2) is native.SPREAD
    assert native.dictionary(lib, pl.Series([f"{i}" for i in range(1024)] * 2), probe=2048, ratio=2) is not native.SPREAD


def _read_lines(body: bytes):
    """polars' read_lines of ``body``: its lines, or None when it refuses it (not UTF-8)."""
    try:
        return pl.read_lines(body)["line"].to_list() if body else []
    except pl.exceptions.ComputeError:
        return None


PIECES = st.sampled_from([b"\n", b"a", b" ", b"\t", "\u3000".encode(), "\u00a0".encode(), b"x" * 12, b"y" * 13,
                          b"\x00", "é".encode(), "€".encode(), "𝄞".encode(), b"\xff", b"\xc0\xaf", b"\xed\xa0\x80",
                          b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80", LINE.encode()])


@settings(max_examples=400, deadline=None)
@given(st.lists(PIECES, max_size=40))
def test_lines_cut_as_polars_read_lines_cuts_them(pieces):
    """``native.lines`` (views into the bytes, no copy) gives polars' read_lines' lines, and None
    exactly where read_lines refuses the bytes (invalid UTF-8: overlong, surrogate, past U+10FFFF,
    cut short, a stray continuation byte), whatever the lines' lengths around the 12 bytes a view
    holds inline and the 16 bytes the ASCII check reads at a time."""
    body = b"".join(pieces)
    got = native.lines(native.library(), body)
    want = _read_lines(body)
    assert (got[0].to_list() if got is not None else None) == want
    if got is not None:  # "no line may be blank" only when none is; a NUL byte anywhere is told
        assert got[1] or not any(line.strip() == "" for line in want)
        assert got[2] == (b"\x00" in body)


def test_lines_of_a_batch_are_views_into_its_bytes():
    body = "\n".join([LINE, "", "é" * 20, "short"]).encode() + b"\n"
    got, odd, nul = native.lines(native.library(), body)
    assert got.to_list() == [LINE, "", "é" * 20, "short"] and got.name == "line" and odd and not nul
    # a NUL byte (a hole in the file), whether inside the 16 bytes read at a time or past them
    for at in (0, 5, 15, 16, 17, len(body) - 2):
        assert native.lines(native.library(), body[:at] + b"\x00" + body[at:])[2]
    assert native.lines(native.library(), b"ok\n\xff\n") is None
    # a line can be blank only when it starts with white space, a control byte or a non-ASCII one
    assert [native.lines(native.library(), text.encode())[1] for text in
            ("[a]\n{b}\nc\n", "[a]\n \n", "[a]\n\u3000\n", "[a]\n\x1c\n", "x\n\n")] == [False, True, True, True, True]
