"""The hash an input is known by (``dataset.HASH_ALGO``): BLAKE3's first 128 bits in a new dataset, by
each path that hashes (a small file before it is read, a large one while the workers read it, a
compressed one's text); a dataset made with SHA-256 keeps SHA-256 and still knows its inputs."""
from __future__ import annotations

import gzip
import hashlib
import io

import blake3
import pytest
from test_ingest import check_consistent, gen_lines, manifest, write_log

from logpipe import ingest, lanes


def b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest(length=16)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


@pytest.mark.parametrize("large", [False, True], ids=["hashed-before-read", "hashed-while-read"])
def test_a_new_dataset_knows_its_inputs_by_blake3(tmp_path, monkeypatch, large):
    if large:  # the workers read its ranges, the main process hashes them as it cuts them
        monkeypatch.setattr(lanes, "PARALLEL_MIN_BYTES", 64 << 10)
        monkeypatch.setenv("LOGPIPE_WORKERS", "2")
    plain = write_log(tmp_path / "a.log", gen_lines(600 if large else 20, seed=31))
    if large:
        assert plain.stat().st_size > 64 << 10
    text = write_log(tmp_path / "b.log", gen_lines(15, seed=45)).read_bytes()
    (tmp_path / "b.log.gz").write_bytes(gzip.compress(text))
    (tmp_path / "b.log").unlink()
    data = tmp_path / "data"
    while_read = []
    hash_while_read = ingest._Run.hash_while_read
    monkeypatch.setattr(ingest._Run, "hash_while_read",
                        lambda self, inp, heads: while_read.append(hash_while_read(self, inp, heads)) or while_read[-1])
    s = ingest.ingest_paths([str(plain), str(tmp_path / "b.log.gz")], str(data), err=io.StringIO(), progress=False)
    assert s.ingested == 2
    assert while_read == [large, False]  # (the path this case is for)
    entries = {e["path"].rsplit("/", 1)[-1]: e for e in manifest(data)["inputs"]}
    assert {e["hash_algo"] for e in entries.values()} == {"blake3-128"}
    a, gz = entries["a.log"], entries["b.log.gz"]
    raw = plain.read_bytes()
    assert a["hash"] == b3(raw)
    first = raw.index(b"\n") + 1
    assert a["heads"][0] == [first, b3(raw[:first])]
    assert gz["hash"] == b3((tmp_path / "b.log.gz").read_bytes())
    assert gz["content_hash"] == b3(text)


def test_a_sha256_dataset_keeps_finding_its_inputs(tmp_path, monkeypatch):
    """A dataset made when SHA-256 was the default: a rerun skips its input, a grown input adds only
    its new lines, a new input is recorded with SHA-256 too (one algorithm per dataset)."""
    lines = gen_lines(30, seed=33)
    a = write_log(tmp_path / "a.log", lines[:20])
    b = write_log(tmp_path / "b.log", gen_lines(5, seed=34))  # (another log: not a.log's start)
    data = tmp_path / "data"
    with monkeypatch.context() as m:
        m.setattr(ingest, "HASH_ALGO", "sha256-128")
        ingest.ingest_paths([str(a)], str(data), err=io.StringIO(), progress=False)
    (old,) = manifest(data)["inputs"]
    assert (old["hash_algo"], old["hash"]) == ("sha256-128", sha(a.read_bytes()))

    err = io.StringIO()
    again = ingest.ingest_paths([str(a)], str(data), err=err, progress=False)
    assert (again.ingested, again.skipped) == (0, 1), err.getvalue()
    assert "its lines were ingested already" not in err.getvalue()  # (known by its hash, not by its rows once read)

    write_log(a, lines)  # it grew: only its ten new lines are read
    err = io.StringIO()
    grown = ingest.ingest_paths([str(a), str(b)], str(data), err=err, progress=False)
    assert grown.counts.read == 10 + 5
    assert f"{a}: grew since the last ingest; read lines 21 to 30" in err.getvalue()  # (by its hash, not its rows)
    entries = check_consistent(data)["inputs"]
    assert [e["skip_bytes"] for e in entries if e["path"] == str(a)] == [0, old["size"]]
    assert {e["hash_algo"] for e in entries} == {"sha256-128"}
    assert sha(b.read_bytes()) in {e["hash"] for e in entries}
