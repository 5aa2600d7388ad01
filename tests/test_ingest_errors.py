"""An operator's damaged and troubled inputs: each read as far as it can be, the same whichever way it
comes (a file, stdin), each error one line naming the input, and the dataset consistent after it."""
from __future__ import annotations

import gzip
import io
import re
import zipfile

from test_ingest import GOOD, check_consistent, gen_lines, manifest, rows, run, write_log


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


def _zip(path, members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_a_zip_member_with_a_bad_crc_keeps_its_lines_and_the_files_after_it(tmp_path, monkeypatch, capsys):
    """A zip's file whose CRC is wrong keeps its bytes (as a gzip's are kept: every byte decoded, the
    check at the end failed), said; the zip's files after it are read, and a second run adds nothing.
    (zipfile's check raised from the read that decoded the file's last bytes, which dropped them: all
    of a small file's, recorded as an empty input; and the files after it were never read.)"""
    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    first, second = gen_lines(300, seed=5), gen_lines(200, seed=6)
    bundle = tmp_path / "bundle.zip"
    _zip(bundle, {"a.log": "".join(ln + "\n" for ln in first).encode(),
                  "b.log": "".join(ln + "\n" for ln in second).encode()})
    crc = zipfile.ZipFile(bundle).getinfo("a.log").CRC.to_bytes(4, "little")
    bundle.write_bytes(bundle.read_bytes().replace(crc, bytes(b ^ 0xFF for b in crc)))  # (local and central headers)
    data = tmp_path / "data"
    for again in (False, True):
        code, _, err = run(monkeypatch, capsys, "ingest", bundle, "--data", data)
        assert code == 1, err
        assert (f"logpipe: error: {bundle}: zip archive is corrupt, truncated or unreadable in {bundle}:a.log"
                " (BadZipFile: Bad CRC-32 for file 'a.log'); what it held before that point is read, and the archive's"
                " other files\n") in err, err
        assert ("ingested 0, skipped as already ingested 2" if again else "ingested 2, skipped") in err, err
        assert {e["path"]: e["read"] for e in check_consistent(data)["inputs"]} == \
            {f"{bundle}:a.log": 300, f"{bundle}:b.log": 200}


def test_an_encrypted_zip_member_is_said_and_the_others_are_read(tmp_path, monkeypatch, capsys):
    """A zip's encrypted file is one error that says so and how to read it; the zip's other files are
    ingested. (It ended the zip's reading, the files after it unread, and left a name of no file among
    the inputs: `bundle.zip:a.log: cannot read: No such file or directory`.)"""
    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    bundle = tmp_path / "bundle.zip"
    _zip(bundle, {"a.log": GOOD.read_bytes(), "b.log": GOOD.read_bytes() + b"\n"})
    raw = bytearray(bundle.read_bytes())
    raw[raw.index(b"PK\x03\x04") + 6] |= 1  # a.log's "encrypted" flag, in its local header and in the directory
    raw[raw.index(b"PK\x01\x02") + 8] |= 1
    bundle.write_bytes(bytes(raw))
    data = tmp_path / "data"
    code, _, err = run(monkeypatch, capsys, "ingest", bundle, "--data", data)
    assert code == 1, err
    assert (f"logpipe: error: {bundle}:a.log: encrypted, not read (the archive's other files are): extract it with its"
            " password (`unzip -P …`) and give the file\n") in err, err
    assert "No such file" not in err and "inputs 2: ingested 1, skipped as already ingested 0, errors 1\n" in err, err
    assert [e["path"] for e in check_consistent(data)["inputs"]] == [f"{bundle}:b.log"]


def test_a_zip_whose_read_fails_is_no_damaged_archive(tmp_path, monkeypatch, capsys):
    """A zip whose read fails with EIO (a failing disk, NFS: no damage of its bytes): `cannot read`,
    none of its files ingested, the next run reads them all, as a tar's (test_ingest_groups). (It was
    `zip archive is corrupt, truncated or unreadable (…Input/output error)`, its files before it kept.)"""
    import errno
    import os

    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    bundle = tmp_path / "bundle.zip"
    _zip(bundle, {"a.log": GOOD.read_bytes(), "b.log": "".join(ln + "\n" for ln in gen_lines(100, seed=5)).encode()})

    def failing(real):
        def read(self, n=-1):
            if self.name == "b.log":
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            return real(self, n)
        return read

    for method in ("read", "read1"):
        monkeypatch.setattr(zipfile.ZipExtFile, method, failing(getattr(zipfile.ZipExtFile, method)))
    data = tmp_path / "data"
    code, _, err = run(monkeypatch, capsys, "ingest", bundle, "--data", data)
    assert code == 1, err
    assert f"logpipe: error: {bundle}: cannot read: Input/output error\n" in err and "corrupt" not in err, err
    assert rows(data) == 0 and (not (data / "_manifest.json").exists() or manifest(data)["inputs"] == [])
    monkeypatch.undo()
    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    code, _, err = run(monkeypatch, capsys, "ingest", bundle, "--data", data)
    assert code == 0 and "inputs 2: ingested 2, skipped as already ingested 0\n" in err, err


def test_a_damaged_archive_file_keeps_its_complete_lines_alone(tmp_path, monkeypatch, capsys):
    """A tar.gz cut inside a file's line, and a zip whose file is damaged inside one: the file keeps
    its complete lines before the damage, not the line cut short (a malformed reject that was no line
    of the log, counted against --max-reject-ratio), as a damaged .gz keeps them; the intact archive
    in its place then adds only the lines after them. (The whole file was read again instead.)"""
    import tarfile

    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    lines = gen_lines(2000, seed=8)
    text = "".join(ln + "\n" for ln in lines).encode()
    middle = len(text) // 2
    kept = text[:middle].count(b"\n")
    assert text[middle - 1:middle] != b"\n"
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("pod.log")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    whole = out.getvalue()
    archive = tmp_path / "bundle.tar.gz"
    archive.write_bytes(gzip.compress(whole[:whole.index(text[:100]) + middle]))
    data = tmp_path / "data"
    code, _, err = run(monkeypatch, capsys, "ingest", archive, "--data", data)
    assert code == 1 and "malformed" not in err.replace("malformed 0", ""), err
    assert f"lines read {kept}, " in err and "malformed 0)\n" in err, err
    archive.write_bytes(gzip.compress(whole))
    code, _, err = run(monkeypatch, capsys, "ingest", archive, "--data", data)
    assert code == 0 and f"read lines {kept + 1} to 2000\n" in err, err
    assert sum(e["read"] for e in check_consistent(data)["inputs"]) == 2000

    bundle = tmp_path / "bundle.zip"  # its deflated data made garbage half-way: zlib's "invalid …" there
    _zip(bundle, {"pod.log": text})
    import zipfile
    import zlib

    for shift in range(0, 64 * 97, 97):  # (garbage may decode before zlib notices: the first place it does)
        raw = bytearray(bundle.read_bytes())
        at = raw.index(b"pod.log") + 7 + len(raw) // 4 + shift
        raw[at:at + 64] = b"\xff" * 64
        try:
            zipfile.ZipFile(io.BytesIO(bytes(raw))).read("pod.log")
        except zlib.error:
            break
        except zipfile.BadZipFile:  # (a CRC's fault only: the text decoded, wrong)
            continue
    bundle.write_bytes(bytes(raw))
    code, _, err = run(monkeypatch, capsys, "ingest", bundle, "--data", tmp_path / "zdata")
    assert code == 1 and f"in {bundle}:pod.log (error: Error -3 while decompressing data" in err, err
    read = manifest(tmp_path / "zdata")["inputs"][0]["read"]
    assert "malformed 0)" in err and 0 < read < 2000, err


def test_a_read_that_fails_after_an_archives_damage_names_it_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    """A damaged .gz's text is read again up to the damage (to know an intact copy by it): a read that
    fails there (EIO) is that input's `cannot read`, none of it kept, as one that fails while its lines
    are read; the other inputs are ingested, and the next run reads it. (It was `logpipe: internal error:
    OSError: [Errno 5] Input/output error`, naming no file, and the run ended there.)"""
    import errno
    import os

    from logpipe import dataset

    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    logs = tmp_path / "logs"
    logs.mkdir()
    cut = logs / "a.log.gz"
    cut.write_bytes(gzip.compress(GOOD.read_bytes() * 50)[:3000])
    other = logs / "b.log"
    other.write_text("".join(ln + "\n" for ln in gen_lines(50, seed=5)))
    real = dataset.fingerprint_stream

    def failing(stream, sizes, algo, size=None):
        if size is not None and isinstance(stream, gzip.GzipFile):  # (the reread up to the damage)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(stream, sizes, algo, size)

    monkeypatch.setattr(dataset, "fingerprint_stream", failing)
    data = tmp_path / "data"
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 1 and f"logpipe: error: {cut}: cannot read: Input/output error\n" in err, err
    assert "internal error" not in err and "inputs 2: ingested 1, skipped as already ingested 0, errors 1\n" in err, err
    assert [e["path"] for e in check_consistent(data)["inputs"]] == [str(other)]
    monkeypatch.setattr(dataset, "fingerprint_stream", real)
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 1 and f"logpipe: error: {cut}: archive is corrupt or truncated after" in err, err
    assert "inputs 2: ingested 1 (1 only up to the damage), skipped as already ingested 1, errors 1\n" in err, err
    assert check_consistent(data)["inputs"][-1]["content_hash"]


def _read_only_mount(monkeypatch, data):
    """``os.open`` as on a read-only mount for files under ``data`` (chmod does not stop root); returns
    the real ``os.open``."""
    import errno
    import os

    real_open = os.open

    def read_only_mount(path, flags, *a):
        if flags & (os.O_RDWR | os.O_WRONLY | os.O_CREAT) and str(path).startswith(str(data)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *a)

    monkeypatch.setattr(os, "open", read_only_mount)
    return real_open


def _a_dataset_and_a_new_log(tmp_path, monkeypatch, capsys):
    """A dataset of GOOD (one lane), its manifest's bytes, and a log it has not ingested."""
    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    data = tmp_path / "data"
    code, _, err = run(monkeypatch, capsys, "ingest", GOOD, "--data", data)
    assert code == 0, err
    other = tmp_path / "other.log"
    other.write_text("".join(ln + "\n" for ln in gen_lines(50, seed=5)))
    return data, (data / "_manifest.json").read_bytes(), other


def _read_only_directory(monkeypatch) -> None:
    """``dataset``'s ``open`` as in a read-only directory: its temporary files (``.tmp``) refused."""
    import errno
    import os

    from logpipe import dataset

    def read_only_directory(path, *a, **k):
        if str(path).endswith(".tmp"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return open(path, *a, **k)

    monkeypatch.setattr(dataset, "open", read_only_directory, raising=False)


def test_a_dataset_that_cannot_be_written_now_is_one_clear_error(tmp_path, monkeypatch, capsys):
    """An existing dataset on a mount made read-only since (its lock files exist, so the open of the
    first one to write fails), or whose directory was made read-only (the manifest's write fails): one
    line that names it and what to do, the dataset as it was. (Both were `logpipe: internal error:
    PermissionError: …` or `OSError: [Errno 30] …`. chmod does not stop root: the errors are made.)"""
    import os

    from logpipe import dataset

    data, before, other = _a_dataset_and_a_new_log(tmp_path, monkeypatch, capsys)
    real_open = _read_only_mount(monkeypatch, data)
    code, _, err = run(monkeypatch, capsys, "ingest", other, "--data", data)
    assert code == 1 and err == (f"logpipe: error: cannot write to dataset directory {data}: Read-only file system;"
                                 " check the path and permissions\n"), err
    monkeypatch.setattr(os, "open", real_open)

    _read_only_directory(monkeypatch)
    code, _, err = run(monkeypatch, capsys, "ingest", other, "--data", data)
    assert code == 1 and "internal error" not in err, err
    assert err.endswith(f"logpipe: error: cannot write to dataset directory {data}: Permission denied; check the path"
                        " and permissions, then run the ingest again: it reads what was not ingested\n"), err
    assert (data / "_manifest.json").read_bytes() == before
    monkeypatch.delattr(dataset, "open")
    code, _, err = run(monkeypatch, capsys, "ingest", other, "--data", data)
    assert code == 0 and "inputs 1: ingested 1" in err, err
    assert len(check_consistent(data)["inputs"]) == 2


def test_a_dataset_in_the_current_directory_that_cannot_be_written_is_one_clear_error(tmp_path, monkeypatch, capsys):
    """`--data .`: the manifest's temporary file is named ``._manifest.json.tmp``, without the ``./``
    the directory check looked for, so its refusal was `internal error: PermissionError`."""
    data, before, other = _a_dataset_and_a_new_log(tmp_path, monkeypatch, capsys)
    monkeypatch.chdir(data)

    _read_only_directory(monkeypatch)
    code, _, err = run(monkeypatch, capsys, "ingest", other, "--data", ".")
    assert code == 1 and "internal error" not in err, err
    assert err.endswith("logpipe: error: cannot write to dataset directory .: Permission denied; check the path"
                        " and permissions, then run the ingest again: it reads what was not ingested\n"), err
    assert (data / "_manifest.json").read_bytes() == before


def test_a_zip_cut_short_says_how_to_recover_its_files(tmp_path, monkeypatch, capsys):
    """A zip cut short has no directory, so none of its files is read: the error says so and how to
    get those before the cut (`zip -FF`, which scans for the files' own headers)."""
    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    bundle = tmp_path / "bundle.zip"
    _zip(bundle, {"a.log": GOOD.read_bytes(), "b.log": "".join(ln + "\n" for ln in gen_lines(100, seed=5)).encode()})
    bundle.write_bytes(bundle.read_bytes()[:-40])
    code, _, err = run(monkeypatch, capsys, "ingest", bundle, "--data", tmp_path / "data")
    assert code == 1 and err.startswith(
        f"logpipe: error: {bundle}: zip archive is corrupt, truncated or unreadable (File is not a zip file); none of"
        f" its files read: `zip -FF {bundle} --out fixed.zip` recovers those before the damage, then ingest"
        " fixed.zip\n"), err


def test_each_damaged_file_of_a_zip_is_an_error_of_its_own(tmp_path, monkeypatch, capsys):
    """Two damaged files in a zip: two errors, each on its line and counted, as two damaged archives'
    are (they were one line of two sentences, one error)."""
    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    bundle = tmp_path / "bundle.zip"
    logs = {f"{k}.log": "".join(ln + "\n" for ln in gen_lines(50, seed=5 + k)).encode() for k in range(3)}
    _zip(bundle, logs)
    raw = bundle.read_bytes()
    for name in ("0.log", "2.log"):
        crc = zipfile.ZipFile(bundle).getinfo(name).CRC.to_bytes(4, "little")
        raw = raw.replace(crc, bytes(b ^ 0xFF for b in crc))
    bundle.write_bytes(raw)
    code, _, err = run(monkeypatch, capsys, "ingest", bundle, "--data", tmp_path / "data")
    said = [ln for ln in err.splitlines() if "zip archive is corrupt" in ln]
    assert code == 1 and [f"{bundle}:{n} (BadZipFile" in ln for n, ln in zip(("0.log", "2.log"), said)] == [True, True]
    assert "inputs 5: ingested 3, skipped as already ingested 0, errors 2\n" in err, err


def test_a_directory_that_cannot_be_listed_is_said_not_skipped(tmp_path, monkeypatch, capsys):
    """A directory among the inputs' that cannot be listed (mode 700, another user's) is an error that
    names it, its files unread; the others are ingested; given itself, it is that error, not `holds no
    files`. (It was skipped without a word, exit 0. chmod does not stop root: the refusal is made.)"""
    import errno
    import os

    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    logs = tmp_path / "logs"
    (logs / "node-a").mkdir(parents=True)
    (logs / "node-b").mkdir()
    (logs / "node-a" / "a.log").write_bytes(GOOD.read_bytes())
    (logs / "node-b" / "b.log").write_text("".join(ln + "\n" for ln in gen_lines(50, seed=5)))
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path) in (str(logs / "node-b"), str(tmp_path / "locked")):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    data = tmp_path / "data"
    code, _, err = run(monkeypatch, capsys, "ingest", logs, "--data", data)
    assert code == 1, err
    assert (f"logpipe: error: {logs / 'node-b'}: cannot list its files: Permission denied (check the directory's mode"
            " and owner); none of them read\n") in err, err
    assert "inputs 2: ingested 1, skipped as already ingested 0, errors 1\n" in err, err
    assert [e["path"] for e in check_consistent(data)["inputs"]] == [str(logs / "node-a" / "a.log")]
    (tmp_path / "locked").mkdir()
    code, _, err = run(monkeypatch, capsys, "ingest", tmp_path / "locked", "--data", data)
    assert code == 1 and "cannot list its files: Permission denied" in err and "holds no files" not in err, err


def test_compact_of_a_dataset_that_cannot_be_written_is_one_clear_error(tmp_path, monkeypatch, capsys):
    """`logpipe compact` of a dataset on a read-only mount: one line that names it and what to do, not
    `internal error: PermissionError` (OSError [Errno 30] here: chmod does not stop root)."""
    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    data = tmp_path / "data"
    code, _, err = run(monkeypatch, capsys, "ingest", GOOD, "--data", data)
    assert code == 0, err
    _read_only_mount(monkeypatch, data)
    code, _, err = run(monkeypatch, capsys, "compact", "--data", data)
    assert code == 1 and err == (f"logpipe: error: cannot write to dataset directory {data}: Read-only file system;"
                                 " check the path and permissions\n"), err


def test_a_file_that_cannot_be_read_and_a_glob_into_a_directory_that_cannot_be_listed_say_why(
        tmp_path, monkeypatch, capsys):
    """A file its mode keeps from this user is `permission denied (check the file's mode and owner)`,
    as its open for `logpipe parse` says (ingest's first open, to look at its head, said `cannot read:
    Permission denied`, no fix); a glob into a directory that cannot be listed names that directory
    (it was `no file matches this pattern`: glob skips it without a word), and its other matches are
    read. (chmod does not stop root: the refusals are made.)"""
    import builtins
    import errno
    import os

    from logpipe import sources

    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    logs = tmp_path / "logs"
    for node in ("node-a", "node-b"):
        (logs / node).mkdir(parents=True)
        (logs / node / "x.log").write_text("".join(ln + "\n" for ln in gen_lines(20, seed=5 if node == "node-a" else 6)))
    locked = tmp_path / "locked.log"
    locked.write_bytes(GOOD.read_bytes())

    def refused(path):
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

    def open_(path, *a, **k):
        if os.fspath(path) == str(locked):
            raise refused(path)
        return builtins.open(path, *a, **k)

    real = os.scandir

    def scandir(path="."):
        if os.fspath(path).rstrip("/") == str(logs / "node-b"):
            raise refused(path)
        return real(path)

    monkeypatch.setattr(sources, "open", open_, raising=False)
    monkeypatch.setattr(os, "scandir", scandir)
    data = tmp_path / "data"
    code, _, err = run(monkeypatch, capsys, "ingest", locked, "--data", data)
    assert code == 1 and f"logpipe: error: {locked}: permission denied (check the file's mode and owner)\n" in err, err
    said = (f"logpipe: error: {logs / 'node-b'}: cannot list its files: Permission denied (check the directory's mode"
            " and owner); none of them read\n")
    for k, pattern in enumerate((logs / "node-b" / "*.log", logs / "*" / "*.log", logs / "**" / "*.log")):
        code, _, err = run(monkeypatch, capsys, "ingest", pattern, "--data", tmp_path / f"data{k}")
        assert code == 1 and said in err and "no file matches" not in err, err
        assert k == 0 or "inputs 2: ingested 1, skipped as already ingested 0, errors 1\n" in err, err  # (node-a's)
    code, _, err = run(monkeypatch, capsys, "ingest", tmp_path / "none" / "*.log", "--data", data)
    assert code == 1 and f"{tmp_path / 'none' / '*.log'}: no file matches this pattern" in err, err


def test_a_directory_that_cannot_be_listed_under_two_inputs_is_said_once(tmp_path, monkeypatch, capsys):
    """`logs/**` matches logs and each directory under it, and each is walked, as are a directory and
    its subdirectories given together: one that cannot be listed was said, and counted, once for each
    (`logs/**`: three errors for one directory). (chmod does not stop root: the refusal is made.)"""
    import errno
    import os

    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    logs = tmp_path / "logs"
    for node in ("node-a", "node-b"):
        (logs / node).mkdir(parents=True)
        (logs / node / "x.log").write_text("".join(ln + "\n" for ln in gen_lines(20, seed=5 if node == "node-a" else 6)))
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path).rstrip("/") == str(logs / "node-b"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    said = (f"logpipe: error: {logs / 'node-b'}: cannot list its files: Permission denied (check the directory's mode"
            " and owner); none of them read\n")
    for k, args in enumerate(([logs / "**"], [logs, logs / "*"])):
        code, _, err = run(monkeypatch, capsys, "ingest", *args, "--data", tmp_path / f"data{k}")
        assert code == 1 and err.count(said) == 1 and ", errors 1\n" in err, err


def test_stdin_given_twice_is_one_input_and_an_empty_stdin_is_an_empty_input(tmp_path, monkeypatch, capsys):
    """`logpipe ingest - -` reads stdin once: one input, as a file named twice is one (its second read
    found nothing: `inputs 2: ingested 2`, an empty `<stdin>` entry in the manifest). An empty stdin
    (`< /dev/null`) is an input of no lines, as an empty file is: ingested, nothing written."""
    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    text = GOOD.read_bytes()
    data = tmp_path / "data"
    code, _, err = run(monkeypatch, capsys, "ingest", "-", "-", "--data", data, stdin=text)
    assert code == 0 and "inputs 1: ingested 1, skipped as already ingested 0\n" in err, err
    assert [(e["path"], e["rows"]) for e in check_consistent(data)["inputs"]] == [("<stdin>", text.count(b"\n"))]
    code, _, err = run(monkeypatch, capsys, "ingest", "-", "--data", tmp_path / "empty", stdin=b"")
    assert code == 0 and "inputs 1: ingested 1, skipped as already ingested 0\n" in err, err
    assert "lines read 0, parsed 0" in err and rows(tmp_path / "empty") == 0, err


def test_a_file_given_twice_is_one_input(tmp_path, monkeypatch, capsys):
    """A file named twice (`logs logs/b.log`), or reached twice by one glob (`'logs/**'` matches logs and
    each directory under it, each walked), is one input, where it came first: it was an input each
    time, the later ones `skipped as already ingested` (`inputs 3` for two files)."""
    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    logs = tmp_path / "logs"
    (logs / "a").mkdir(parents=True)
    write_log(logs / "a" / "x.log", gen_lines(20, seed=1))
    write_log(logs / "b.log", gen_lines(20, seed=2))
    for k, args in enumerate(([str(logs / "**")], [str(logs), str(logs / "b.log")])):
        code, _, err = run(monkeypatch, capsys, "ingest", *args, "--data", tmp_path / f"d{k}")
        assert code == 0 and "inputs 2: ingested 2, skipped as already ingested 0\n" in err, (args, err)
        assert len(check_consistent(tmp_path / f"d{k}")["inputs"]) == 2


def test_recover_of_a_dataset_that_cannot_be_written_now_is_one_clear_error(tmp_path, monkeypatch, capsys):
    """A killed run left an entry to finish (pending) in a dataset whose directory is read-only now:
    `Dataset.recover`, which an ingest calls first, is the one line of any dataset that cannot be
    written, the manifest as it was. (It was `internal error: PermissionError: … ._manifest.json.tmp`.
    chmod does not stop root: the refusal is made.)"""
    import json

    import pytest

    from logpipe import dataset
    from logpipe.errors import DatasetError

    monkeypatch.setenv("LOGPIPE_WORKERS", "1")
    data = tmp_path / "data"
    code, _, err = run(monkeypatch, capsys, "ingest", GOOD, "--data", data)
    assert code == 0, err
    m = json.loads((data / "_manifest.json").read_text())
    m["inputs"][0]["state"] = "pending"  # (as a run killed before its commit leaves it: its files hidden)
    for part in m["inputs"][0]["parts"] + m["inputs"][0]["rejects"]:
        (data / part).rename((data / part).with_name(f".{(data / part).name}.tmp"))
    (data / "_manifest.json").write_text(json.dumps(m))
    before = (data / "_manifest.json").read_bytes()

    _read_only_directory(monkeypatch)
    said = f"cannot write to dataset directory {data}: Permission denied; check the path and permissions"
    with pytest.raises(DatasetError, match="^" + re.escape(said) + "$"):
        dataset.Dataset(data).recover()
    other = tmp_path / "other.log"
    other.write_text("".join(ln + "\n" for ln in gen_lines(50, seed=5)))
    code, _, err = run(monkeypatch, capsys, "ingest", other, "--data", data)
    assert code == 1 and err == f"logpipe: error: {said}\n", err
    assert (data / "_manifest.json").read_bytes() == before
    monkeypatch.delattr(dataset, "open")
    code, _, err = run(monkeypatch, capsys, "ingest", other, "--data", data)
    assert code == 0 and "inputs 1: ingested 1" in err, err
    assert [e["path"] for e in check_consistent(data)["inputs"]] == [str(other)]  # (the pending one dropped)
