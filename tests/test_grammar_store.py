"""The built-in grammars as stored once Lark has read them (logpipe/grammarstore.py): the same
rules, terminals, regexes and exact parses as Lark's reading, without Lark reading the grammar."""
from __future__ import annotations

import pytest

from logpipe import grammar, grammarstore
from logpipe.resources import resource_dir

GRAMMARS = {**grammar.GRAMMAR_FILES, "ztunnel": ["ztunnel_line", "ztunnel_head", "ztunnel_pair"]}
LINE = ('[2024-07-18T16:13:58.198Z] "GET /get HTTP/1.1" 200 - via_upstream - "-" 0 252 260 259 "-" '
        '"curl/8.7.1" "8d80cec6-8fc1-40de-8bc7-19716f173bbd" "httpbin.org" "3.234.9.11:80" '
        'inbound-vip|80|http|httpbin.org 10.244.0.24:41160 240.240.0.2:80 10.244.0.18:41548 - default')


@pytest.fixture
def store_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGPIPE_CACHE", str(tmp_path))
    return tmp_path


def _load(name: str) -> grammar.Rulebook:
    return grammar.load_file(resource_dir("grammars") / f"{name}.lark", tuple(GRAMMARS[name]))


def _terminal(t) -> tuple:
    return str(t.name), type(t.pattern).__name__, t.pattern.value, t.pattern.flags, t.pattern.raw, t.priority


@pytest.mark.parametrize("name", sorted(GRAMMARS))
def test_a_stored_grammar_reads_as_lark_reads_it(store_dir, name):
    first = _load(name)  # read by Lark, then stored
    assert first._read is not None and len(list(store_dir.glob("grammar-*.json"))) == 1
    stored = _load(name)
    assert stored._read is None  # Lark has not read it
    assert list(stored._ebnf) == list(first._ebnf) and stored._ebnf == first._ebnf
    assert stored._terms == first._terms
    assert sorted(map(_terminal, stored._term_defs.values())) == sorted(map(_terminal, first._term_defs.values()))
    for start in GRAMMARS[name]:
        for subfields in (True, False):
            a, b = stored.compile(start, subfields=subfields), first.compile(start, subfields=subfields)
            assert (a.pattern, a.groups) == (b.pattern, b.groups)
    assert stored._read is None  # the regexes need no Lark


def test_a_parser_from_stored_grammars_reads_none_until_an_exact_parse(store_dir):
    from logpipe.parse import Parser

    first = _load("access")
    book = _load("access")
    assert book.parse(LINE, "access_line") == first.parse(LINE, "access_line")
    assert book._read is not None  # read for the exact parse
    try:
        grammar.load_builtin.cache_clear()
        Parser()  # (stores the other built-in grammars)
        grammar.load_builtin.cache_clear()
        parser = Parser()
        assert parser.parse_batch([LINE]).records.num_rows == 1
        assert all(book._read is None for book in (parser.access, parser.prefix, parser.noise))
    finally:
        grammar.load_builtin.cache_clear()


def test_a_changed_or_damaged_store_is_read_by_lark_again(store_dir, tmp_path_factory):
    text = (resource_dir("grammars") / "access.lark").read_text()
    starts = GRAMMARS["access"]
    key = grammarstore.stored(text, starts, resource_dir("grammars")).name
    assert grammarstore.stored(text + "\n// x", starts, resource_dir("grammars")).name != key
    assert grammarstore.stored(text, starts[:-1], resource_dir("grammars")).name != key
    other = tmp_path_factory.mktemp("grammars")
    for f in resource_dir("grammars").glob("*.lark"):
        (other / f.name).write_text(f.read_text())
    assert grammarstore.stored(text, starts, other).name == key
    (other / "common.lark").write_text((other / "common.lark").read_text() + "\n// an imported file changed\n")
    assert grammarstore.stored(text, starts, other).name != key

    _load("access")
    (path,) = store_dir.glob("grammar-*.json")
    for damaged in ('{"terminals": [["SP"]], "rules": []}', '{"rules"', "[]", '{"terminals": [], "rules": [["x", ["?"]]]}',
                    '{"terminals": [], "rules": [["x", ["tree"]]]}'):
        path.write_text(damaged)
        book = _load("access")
        assert book._read is not None  # Lark read it again, and stored it again
        assert _load("access")._read is None


def test_a_grammar_outside_the_builtin_directory_is_not_stored(store_dir, tmp_path_factory):
    other = tmp_path_factory.mktemp("mine")
    for f in resource_dir("grammars").glob("*.lark"):
        (other / f.name).write_text(f.read_text())
    grammar.load_file(other / "prefix.lark", ("line_prefix",))
    assert not list(store_dir.glob("grammar-*.json"))
