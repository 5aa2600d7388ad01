"""An ingest into a dataset of many inputs: ``ingest._Known`` (what an input may be known by, indexed)
finds what a scan of every entry per input found (the scans ``_Run`` made before it), the same
entries in the same order, as entries come and go and gain heads."""
from __future__ import annotations

import random

from conftest import SAMPLES

from logpipe.ingest import _Known, _text_of


class _Scans:
    """The list ``_Run.known`` was, and its scans (as ``_Run`` made them)."""

    def __init__(self, entries):
        self.known = list(entries)

    def add(self, e):
        self.known.append(e)

    def remove(self, ids):
        self.known = [e for e in self.known if e["id"] not in ids]

    def sizes(self):
        return [e["size"] for e in self.known] + [e["content_size"] for e in self.known if e.get("content_size")]

    def by_bytes(self, size, full, prefixes):
        return ([e for e in self.known if (e["size"], e["hash"]) == (size, full)],
                [e for e in self.known if 0 < e["size"] < size and prefixes.get(e["size"]) == e["hash"]])

    def by_text(self, size, full, prefixes):
        return ([e for e in self.known if _text_of(e) == (size, full)],
                [e for e in self.known if (t := _text_of(e))[0] and 0 < t[0] < size and prefixes.get(t[0]) == t[1]])

    def by_head(self, heads):
        mine = {tuple(h) for h in heads}
        return [e for e in self.known if e.get("heads") and tuple(e["heads"][0]) in mine]

    def prefix_sizes(self, heads):
        mine = {tuple(h) for h in heads}
        return {n for e in self.known if not heads or not e.get("heads") or tuple(e["heads"][0]) in mine
                for n in [e["size"]] + ([e["content_size"]] if e.get("content_size") else [])}

    def any_upto(self, size):
        return any(0 < e["size"] <= size or 0 < (e.get("content_size") or 0) <= size for e in self.known)

    def gain_heads(self, e, heads):
        self.known = [dict(x, heads=heads) if x is e and "heads" not in x else x for x in self.known]

    def timed(self):
        return any(e.get("max_time") for e in self.known)


def _entry(rnd: random.Random, n: int) -> dict:
    """An entry of few sizes and hashes, so that many share them (in several of the index's keys)."""
    e = {"id": f"{n:012x}", "path": f"/logs/{n}.log", "size": rnd.choice([0, 10, 20, 30, 40]),
         "hash": rnd.choice("abc"), "compression": rnd.choice(["plain", "plain", "gzip", "zstd"])}
    if e["compression"] != "plain" and rnd.random() < 0.7:
        e["content_size"], e["content_hash"] = rnd.choice([10, 20, 30, 50]), rnd.choice("abc")
    if rnd.random() < 0.5:
        e["heads"] = [[rnd.choice([5, 6]), rnd.choice("xy")], [9, "z"]]
    if rnd.random() < 0.3:
        e["max_time"] = "2024-01-01T00:00:00+00:00"
    return e


def _same(known: _Known, ref: _Scans, rnd: random.Random) -> None:
    def ids(found):
        return [e["id"] for e in found]

    assert ids(known) == ids(ref.known) and len(known) == len(ref.known)
    assert set(known.sizes) == set(ref.sizes()) and sum(known.sizes.values()) == len(ref.sizes())
    assert bool(known.timed) == ref.timed()
    for _ in range(5):
        size, full = rnd.choice([10, 20, 30, 40, 50]), rnd.choice("abc")
        prefixes = {n: rnd.choice("abc") for n in rnd.sample([0, 10, 20, 30, 40, 50], 4)}
        prefixes[size] = full  # (``fingerprint`` gives the whole file's hash as its own size's too)
        for got, want in zip(known.same_grown(known.bytes, size, full, prefixes)
                             + known.same_grown(known.text, size, full, prefixes),
                             ref.by_bytes(size, full, prefixes) + ref.by_text(size, full, prefixes)):
            assert ids(got) == ids(want)
        heads = [[rnd.choice([5, 6]), rnd.choice("xy")] for _ in range(2)]
        assert ids(known.by_head(heads)) == ids(ref.by_head(heads))
        for some in (heads, []):
            assert set(known.prefix_sizes(some)) == ref.prefix_sizes(some)
        assert known.any_upto(size) == ref.any_upto(size)


def test_known_finds_what_scans_found_in_their_order():
    rnd = random.Random(3)
    n = 0
    for _ in range(20):
        start = [_entry(rnd, n := n + 1) for _ in range(30)]
        known, ref = _Known(e for e in start), _Scans(start)
        _same(known, ref, rnd)
        for _ in range(60):
            op = rnd.random()
            if op < 0.4:  # a stand-in, or an entry committed
                e = _entry(rnd, n := n + 1)
                known.add(e)
                ref.add(e)
            elif op < 0.7 and ref.known:  # committed (its stand-in gone), replaced by --force; one not known
                ids = {rnd.choice(ref.known)["id"] for _ in range(rnd.randint(1, 3))} | {"nosuchentry"}
                known.remove(ids)
                ref.remove(ids)
            elif ref.known:  # skipped as the same as an entry of no heads: the entry gains this run's
                e = rnd.choice(ref.known)
                heads = [[rnd.choice([5, 6]), rnd.choice("xy")]] if rnd.random() < 0.8 else []
                had = e.get("heads", "none")
                known.gain_heads(e, heads)
                ref.gain_heads(e, heads)
                # (a copy of it gains them: the entry is the manifest's, which is read-only and not written so)
                assert known.entries[e["id"]]["heads"] is (heads if had == "none" else had)
                assert e.get("heads", "none") is had
            _same(known, ref, rnd)


def test_known_is_empty_of_removed_entries():
    """Every key of an entry removed goes with it (no look-up finds it, its sizes are not prefix sizes)."""
    rnd = random.Random(5)
    entries = [_entry(rnd, n) for n in range(50)]
    known = _Known(entries)
    known.gain_heads(entries[0], [[5, "x"]])
    known.remove([e["id"] for e in entries])
    assert not known.entries and not (known.bytes or known.text or known.head) and not known.sizes and not known.headless and known.timed == 0


def test_a_manifest_that_lists_an_input_twice_is_a_clear_error(tmp_path):
    """A manifest edited or joined by hand that lists one input's entry twice: ingest says so and
    how to mend it (it was an internal error, a ValueError of the index), and writes nothing."""
    import json

    from click.testing import CliRunner

    from logpipe.cli import cli
    from logpipe.errors import DatasetError

    log = tmp_path / "a.log"
    log.write_text((SAMPLES / "waypoint-egress-1.23.log").read_text())
    data = tmp_path / "data"
    assert CliRunner().invoke(cli, ["ingest", str(log), "--data", str(data)]).exit_code == 0
    manifest = data / "_manifest.json"
    doc = json.loads(manifest.read_text())
    doc["inputs"].append(dict(doc["inputs"][0]))
    manifest.write_text(json.dumps(doc))
    other = tmp_path / "b.log"
    other.write_text(log.read_text() + log.read_text())
    r = CliRunner().invoke(cli, ["ingest", str(other), "--data", str(data)], standalone_mode=False)
    assert isinstance(r.exception, DatasetError), r.output  # (exit 1, the message on one line: exits.run)
    assert str(r.exception) == (f"{manifest} lists input {doc['inputs'][0]['id']} twice (edited or joined by hand?);"
                                " remove one of the two entries of that id, or restore the manifest")
    assert json.loads(manifest.read_text()) == doc


def test_an_entry_of_the_manifest_gains_heads_as_a_copy(tmp_path):
    """``_Known`` holds the manifest's entries as ``Dataset.read_manifest`` shares them (read-only): an
    entry found by heads it had none of gains them in a copy, and the manifest's stays as written."""
    from logpipe.dataset import Dataset

    ds = Dataset(tmp_path / "d", create=True)
    ds.update_manifest(lambda m: m["inputs"].append({"id": "e1", "path": "a.log", "size": 10, "hash": "a",
                                                     "compression": "plain", "state": "complete"}))
    known = _Known(ds.entries())
    (e,) = known.same_grown(known.bytes, 10, "a", {})[0]
    known.gain_heads(e, [[5, "x"]])
    assert [x["id"] for x in known.by_head([[5, "x"]])] == ["e1"] and "heads" not in ds.entries()[0]
