"""An operator's damaged and troubled inputs: each read as far as it can be, the same whichever way it
comes (a file, stdin), each error one line naming the input, and the dataset consistent after it."""
from __future__ import annotations

import gzip

from test_ingest import GOOD, check_consistent, rows, run


def _bad_crc(data: bytes) -> bytes:
    """``data`` gzipped, its CRC-32 (the trailer's first 4 bytes) wrong: every byte decodes, the
    check at its end fails."""
    packed = bytearray(gzip.compress(data))
    packed[-8] ^= 0xFF
    return bytes(packed)


def test_a_gzip_with_a_bad_crc_on_stdin_keeps_its_lines_as_the_file_does(tmp_path, monkeypatch, capsys):
    """`cat bad.gz | logpipe ingest -` of a small gzip whose CRC fails: its lines are kept and the
    damage said, as `logpipe ingest bad.gz` does. (The 8 KB look at stdin's head read it with one
    read of 8 KB, which dropped all it had decoded when it met the CRC: `after 0 bytes of content`,
    no line ingested.)"""
    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    text = GOOD.read_bytes()
    bad = tmp_path / "bad.log.gz"
    bad.write_bytes(_bad_crc(text))
    lines = text.count(b"\n")
    for name, args, stdin in (("file", [bad], None), ("stdin", ["-"], bad.read_bytes())):
        data = tmp_path / f"data-{name}"
        code, _, err = run(monkeypatch, capsys, "ingest", *args, "--data", data, stdin=stdin)
        assert code == 1, err
        assert f"archive is corrupt or truncated after {len(text)} bytes of content (BadGzipFile: CRC check" in err, err
        assert f"the complete lines before that point were kept ({lines} lines read)" in err, err
        assert rows(data) == lines and check_consistent(data)["inputs"][0]["error"]

