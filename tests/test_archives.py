"""Tar archives of logs (logpipe/archives.py): each file an input named ARCHIVE:MEMBER, read as that
file alone is, in every command; damaged archives keep what came before the damage; nothing is left
in $TMPDIR."""
from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard
from conftest import SAMPLES, run_logpipe

from logpipe.archives import is_tar

POD = "istio-egress_waypoint-7d9f8b6c4-x2k8p_6c7b2f0e-1d2c-4b7a-9f3e-0a1b2c3d4e5f"
MEMBERS = {
    f"node-a/var/log/pods/{POD}/istio-proxy/0.log": (SAMPLES / "cri-node.log").read_bytes(),
    f"node-a/var/log/pods/{POD}/istio-proxy/1.log.20250130-105324.gz":
        gzip.compress((SAMPLES / "waypoint-egress-1.23.log").read_bytes()),
    "node-b/sidecar.log": (SAMPLES / "sidecar-outbound-1.22.log").read_bytes(),
    "node-b/.hidden/skip.log": b"not read\n",
}
COMPRESS = {"tar": lambda b: b, "tar.gz": gzip.compress, "tar.bz2": bz2.compress,
            "tar.zst": lambda b: zstandard.ZstdCompressor().compress(b)}
# How each writes names over 100 bytes: POSIX ustar's prefix field, GNU's long-name member, pax's path record.
FORMS = {"tar": tarfile.USTAR_FORMAT, "tar.gz": tarfile.GNU_FORMAT, "tar.bz2": tarfile.PAX_FORMAT,
         "tar.zst": tarfile.GNU_FORMAT}


def make_zip(members: dict[str, bytes]) -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def make_tar(members: dict[str, bytes], link: bool = True, form: int = tarfile.GNU_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=form) as tar:
        d = tarfile.TarInfo("node-a/var")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            ln = tarfile.TarInfo("node-a/var/log/containers/waypoint_istio-egress_istio-proxy-x.log")
            ln.type, ln.linkname = tarfile.SYMTYPE, f"../pods/{POD}/istio-proxy/0.log"
            tar.addfile(ln)
    return out.getvalue()


def logpipe(*args, env=None, check=True):
    run = run_logpipe(*args, env=env)  # (in this process: conftest.run_logpipe)
    assert not check or run.returncode == 0, run.stderr
    return run


@pytest.fixture
def tmp_env(tmp_path):
    """The commands' $TMPDIR (where archives are unpacked), to see that nothing is left there."""
    where = tmp_path / "tmpdir"
    where.mkdir()
    return dict(os.environ, TMPDIR=str(where), LOGPIPE_WORKERS="1"), where


@pytest.fixture(scope="module")
def members_alone(tmp_path_factory) -> dict[str, list[dict]]:
    """`logpipe parse` of each regular member of MEMBERS, saved as a file of its own: its records, by
    member name (one command for all of them: an input's records do not depend on the others')."""
    where = tmp_path_factory.mktemp("alone")
    paths = {}
    for name, data in MEMBERS.items():
        if "/." not in name:
            paths[name] = where / name
            paths[name].parent.mkdir(parents=True, exist_ok=True)
            paths[name].write_bytes(data)
    out = logpipe("parse", *paths.values(), "-o", "ndjson", env=dict(os.environ, LOGPIPE_WORKERS="1")).stdout
    rows = [json.loads(x) for x in out.splitlines()]
    return {name: [r for r in rows if r["source"] == str(path)] for name, path in paths.items()}


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_each_file_of_a_tar_reads_as_that_file_alone(tmp_path, tmp_env, members_alone, kind):
    """`logpipe parse` of a tar (plain, gzip, bz2, zstd; long names as ustar, GNU and pax write them):
    each regular file's records and rejects as
    `logpipe parse` of that file gives them, named ARCHIVE:MEMBER, numbered from its own line 1; links,
    directories and hidden files left out; a pod log's pod and container from its path in the tree."""
    env, tmpdir = tmp_env
    archive = tmp_path / f"logs.{kind}"
    archive.write_bytes(COMPRESS[kind](make_tar(MEMBERS, form=FORMS[kind])))
    assert is_tar(str(archive))
    got = [json.loads(x) for x in logpipe("parse", archive, "-o", "ndjson", env=env).stdout.splitlines()]
    want = []
    for name, rows in members_alone.items():
        assert rows, name
        for r in rows:
            r = dict(r, source=f"{archive}:{name}")
            if "/pods/" in name:
                r["pod"], r["container"] = "waypoint-7d9f8b6c4-x2k8p", "istio-proxy"
            want.append(r)
    assert got == want
    assert {r["source"].split(":", 1)[1] for r in got} == {n for n in MEMBERS if "/." not in n}
    assert not list(tmpdir.iterdir()), "unpacked files left behind"


def test_ingest_knows_a_tars_files_by_their_content(tmp_path, tmp_env):
    """Ingested from a tar, each file is an input of the manifest; the tar again, or the same files
    unpacked into a directory, are skipped as already ingested."""
    env, tmpdir = tmp_env
    archive = tmp_path / "logs.tar.gz"
    archive.write_bytes(gzip.compress(make_tar(MEMBERS)))
    data = tmp_path / "data"
    first = logpipe("ingest", archive, "--data", data, env=env)
    assert "inputs 3: ingested 3" in first.stderr, first.stderr
    manifest = json.loads((data / "_manifest.json").read_text())
    paths = sorted(e["path"] for e in manifest["inputs"])
    assert paths == sorted(f"{archive}:{n}" for n in MEMBERS if "/." not in n)
    again = logpipe("ingest", archive, "--data", data, env=env)
    assert "ingested 0, skipped as already ingested 3" in again.stderr, again.stderr
    unpacked = tmp_path / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    plain = logpipe("ingest", unpacked, "--data", data, env=env)  # (and the link, to one of them)
    assert "ingested 0, skipped as already ingested 4" in plain.stderr, plain.stderr
    assert not list(tmpdir.iterdir())


def test_a_damaged_tar_keeps_what_came_before_the_damage(tmp_path, tmp_env):
    """A tar.gz cut short: the files before the cut are read whole, the one it cuts keeps its complete
    lines, and the error names the archive and that file (exit 1)."""
    env, tmpdir = tmp_env
    big = b"".join((SAMPLES / "waypoint-egress-1.23.log").read_bytes() for _ in range(200))
    members = {"a/first.log": (SAMPLES / "sidecar-outbound-1.22.log").read_bytes(), "a/second.log": big}
    whole = make_tar(members, link=False)
    cut = whole[: whole.index(big[:200]) + len(big) // 2]  # in the middle of second.log
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(gzip.compress(cut))
    run = logpipe("parse", archive, "-o", "ndjson", env=env, check=False)
    assert run.returncode == 1
    assert f"{archive}: tar archive is corrupt or truncated in {archive}:a/second.log" in run.stderr, run.stderr
    rows = [json.loads(x) for x in run.stdout.splitlines()]
    first = [r for r in rows if r["source"].endswith("first.log")]
    second = [r for r in rows if r["source"].endswith("second.log")]
    assert len(first) == members["a/first.log"].count(b"\n")  # (every line of it an access line)
    assert 0 < len(second) < big.count(b"\n")
    assert not list(tmpdir.iterdir())


def test_an_archive_of_no_file_says_so(tmp_path, tmp_env):
    env, _ = tmp_env
    archive = tmp_path / "dirs.tar"
    archive.write_bytes(make_tar({}, link=False))
    run = logpipe("parse", archive, env=env, check=False)
    assert run.returncode == 1 and f"{archive}: tar archive holds no files" in run.stderr, run.stderr


def test_a_log_is_not_a_tar(tmp_path):
    """Known by its header (``ustar`` and a checksum that adds up), not by a text that holds the word."""
    for path in (SAMPLES / "waypoint-egress-1.23.log", SAMPLES / "istio-json-1.24.log"):
        assert not is_tar(str(path))
    fake = tmp_path / "fake.log"
    fake.write_bytes(b"x" * 257 + b"ustar" + b"y" * 600 + b"\n")
    assert not is_tar(str(fake))


def test_the_hint_for_a_tars_file_reads_it_out_of_the_tar(tmp_path, tmp_env):
    """An archive's file over --max-reject-ratio: the command the error suggests works as written."""
    env, _ = tmp_env
    archive = tmp_path / "logs.tar"
    archive.write_bytes(make_tar({"x/malformed.log": (SAMPLES / "malformed.log").read_bytes()}, link=False))
    run = logpipe("ingest", archive, "--data", tmp_path / "d", env=env, check=False)
    assert run.returncode == 1
    hint = run.stderr.split("check the format with `", 1)[1].split("`", 1)[0]
    assert hint == f"tar -xOf {archive} x/malformed.log | logpipe parse"
    shown = subprocess.run(hint.replace("logpipe parse", f"{sys.executable} -m logpipe parse"), shell=True,
                           capture_output=True, text=True, timeout=60, cwd=Path(tmp_path))
    assert "malformed" in shown.stderr and shown.returncode == 0


def test_a_zip_reads_as_its_files(tmp_path, tmp_env):
    """A zip (as Windows and cloud consoles save bundles): each file read as alone, named ARCHIVE:MEMBER;
    a damaged member keeps what came before the damage; a zip cut short (no directory) is an error;
    a hint reads a file out of it with unzip."""
    import zipfile

    env, tmpdir = tmp_env
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in MEMBERS.items():
            zf.writestr(name, data)
        zf.writestr("x/malformed.log", (SAMPLES / "malformed.log").read_bytes())
    got = [json.loads(x) for x in logpipe("parse", archive, "-o", "ndjson", env=env).stdout.splitlines()]
    assert {r["source"] for r in got} == {f"{archive}:{n}" for n in MEMBERS if "/." not in n}
    alone = logpipe("parse", SAMPLES / "cri-node.log", "-o", "ndjson", env=env).stdout.splitlines()
    mine = [r for r in got if r["source"].endswith("/0.log")]
    assert [r["line_number"] for r in mine] == [json.loads(x)["line_number"] for x in alone]
    run = logpipe("ingest", archive, "--data", tmp_path / "d", env=env, check=False)
    assert f"`unzip -p {archive} x/malformed.log | logpipe parse`" in run.stderr, run.stderr
    big = b"".join((SAMPLES / "waypoint-egress-1.23.log").read_bytes() for _ in range(300))
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(damaged, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("big.log", big)
    raw = bytearray(damaged.read_bytes())
    raw[raw.index(big[:100]) + len(big) // 2] ^= 0x20  # a flipped bit: the CRC at its end does not add up
    damaged.write_bytes(bytes(raw))
    run = logpipe("parse", damaged, "-o", "csv", env=env, check=False)
    assert run.returncode == 1 and f"{damaged}: zip archive is corrupt, truncated or unreadable in {damaged}:big.log" \
        in run.stderr, run.stderr
    assert run.stdout.count("\n") > big.count(b"\n") // 2  # (its lines, up to the damage at least)
    cut = tmp_path / "cut.zip"
    cut.write_bytes(archive.read_bytes()[:-40])
    run = logpipe("parse", cut, env=env, check=False)
    assert run.returncode == 1 and f"{cut}: zip archive is corrupt, truncated or unreadable" in run.stderr
    assert not list(tmpdir.iterdir())


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_an_archive_on_stdin_is_refused_with_the_way_to_read_it(tmp_path, tmp_env, kind):
    """`cat logs.tar.gz | logpipe parse -`: one clear error (give the path), not its headers as noise;
    a zip's was an empty report, exit 0."""
    env, _ = tmp_env
    data = gzip.compress(make_tar(MEMBERS)) if kind == "tar" else make_zip(MEMBERS)
    run = run_logpipe("parse", "-", input=data, env=env, text=False)  # (stdin's bytes: no process needed)
    assert run.returncode == 1 and f"<stdin>: a {kind} archive: give its path instead".encode() in run.stderr, run.stderr
    assert run.stdout == b""


def test_an_archive_inside_an_archive_is_opened_too(tmp_path, tmp_env):
    """A support bundle of node tarballs (a tar of a tar.gz and a zip): each inner file is an input
    named OUTER:INNER:MEMBER; a hint for one of them parses the outer archive."""
    import zipfile

    env, tmpdir = tmp_env
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("logs/tcp.log", (SAMPLES / "tcp-and-ipv6.log").read_bytes())
        zf.writestr("logs/bad.log", (SAMPLES / "malformed.log").read_bytes())
    outer = tmp_path / "bundle.tar"
    outer.write_bytes(make_tar({"node-a.tar.gz": gzip.compress(make_tar(MEMBERS, link=False)),
                                "node-b.zip": zipped.getvalue(), "README.txt": b"a bundle\n"}, link=False))
    got = [json.loads(x) for x in logpipe("parse", outer, "-o", "ndjson", env=env, check=False).stdout.splitlines()]
    sources = {r["source"] for r in got}
    assert f"{outer}:node-b.zip:logs/tcp.log" in sources
    assert f"{outer}:node-a.tar.gz:node-b/sidecar.log" in sources
    assert any(s.startswith(f"{outer}:node-a.tar.gz:node-a/var/log/pods/") for s in sources)
    run = logpipe("ingest", outer, "--data", tmp_path / "d", env=env, check=False)
    assert f"{outer}:node-b.zip:logs/bad.log: " in run.stderr
    assert f"check the format with `logpipe parse {outer}`" in run.stderr, run.stderr
    assert not list(tmpdir.iterdir())


def test_a_file_name_that_is_not_utf8_is_shown_as_bytes(tmp_path, tmp_env):
    """A log named on another system (a Latin-1 é), on disk or in a tar: read, its name in `source`,
    the manifest and messages as \\xNN (as such bytes are kept in a line), not an internal error."""
    env, _ = tmp_env
    logs = tmp_path / "logs"
    logs.mkdir()
    name = os.fsdecode(b"caf\xe9.log")
    (logs / name).write_bytes((SAMPLES / "tcp-and-ipv6.log").read_bytes())
    archive = tmp_path / "logs.tar"
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as tar:
        tar.add(logs / name, arcname=name)
    archive.write_bytes(out.getvalue())
    for path, want in ((logs, f"{logs}/caf\\xe9.log"), (archive, f"{archive}:caf\\xe9.log")):
        rows = [json.loads(x) for x in logpipe("parse", path, "-o", "ndjson", env=env).stdout.splitlines()]
        assert rows and {r["source"] for r in rows} == {want}
    run = logpipe("ingest", logs, archive, "--data", tmp_path / "d", env=env)
    assert "ingested 1, skipped as already ingested 1" in run.stderr, run.stderr
    manifest = json.loads((tmp_path / "d" / "_manifest.json").read_text())
    assert [e["path"] for e in manifest["inputs"]] == [f"{logs}/caf\\xe9.log"]


def test_a_large_archive_is_said_on_a_terminal_as_it_is_unpacked(tmp_path, monkeypatch):
    """Unpacking a large archive takes a while before any progress bar: on a terminal, one line says
    so (and where to); not otherwise (scripts, pipes)."""
    from logpipe import sources

    archive = tmp_path / "logs.tar"
    archive.write_bytes(make_tar({"a.log": (SAMPLES / "tcp-and-ipv6.log").read_bytes()}, link=False))
    monkeypatch.setattr(sources, "UNPACK_NOTE_BYTES", 1)

    class Terminal(io.StringIO):
        def __init__(self, tty):
            super().__init__()
            self.tty = tty

        def isatty(self):
            return self.tty

    for tty in (True, False):
        err = Terminal(tty)
        monkeypatch.setattr(sys, "stderr", err)
        inputs, errors = sources.expand_inputs([str(archive)])
        assert [i.name for i in inputs] == [f"{archive}:a.log"] and not errors
        said = err.getvalue()
        assert (f"logpipe: {archive}: unpacking a tar archive of 0 MB into" in said) == tty, said


def _dead_pid() -> tuple[int, int]:
    """The pid and start time of a process that has ended (and been reaped)."""
    from logpipe.archives import _started

    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    start = _started(proc.pid)
    proc.communicate(b"")
    assert start is not None and _started(proc.pid) is None
    return proc.pid, start


def _left(where: Path, name: str) -> Path:
    d = where / name
    d.mkdir(mode=0o700)
    (d / "000000").write_bytes(b"gigabytes of a node's logs\n")
    return d


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="owners are checked in /proc")
def test_what_a_killed_run_unpacked_is_removed_by_the_next_unpacking(tmp_path, tmp_env):
    """A run killed while it held an archive's files (kill -9, the OOM killer) left its private
    directory in $TMPDIR forever; the next run that unpacks an archive removes it, and those of other
    processes gone, but not one of a live process (this one), of an unknown one touched within the
    day, another program's, or a link named like one."""
    from logpipe.archives import _owner

    env, tmpdir = tmp_env
    me, my_start, ns = _owner()
    dead, dead_start = _dead_pid()
    killed = _left(tmpdir, f"logpipe-tar-{dead}-{dead_start}-{ns}-k1ll3d_9")
    reused = _left(tmpdir, f"logpipe-tar-{me}-{my_start + 1}-{ns}-r3us3d00")  # (its pid a new process's now)
    live = _left(tmpdir, f"logpipe-tar-{me}-{my_start}-{ns}-l1v3abcd")
    elsewhere = _left(tmpdir, f"logpipe-tar-{dead}-{dead_start}-{ns + 1}-0th3rns0")  # (another container's)
    unowned_new, unowned_old = _left(tmpdir, "logpipe-tar-n3wabcd_"), _left(tmpdir, "logpipe-tar-0ldabcd_")
    elsewhere_old = _left(tmpdir, f"logpipe-tar-{dead}-{dead_start}-{ns + 1}-0th3rns1")
    for old in (unowned_old, elsewhere_old):
        os.utime(old, (os.stat(old).st_mtime - 2 * 86400,) * 2)
    others = _left(tmpdir, f"logpipe-tar-{dead}-{dead_start}-{ns}-k1ll3d_9x")  # (not logpipe's naming)
    target = _left(tmp_path, "kept")  # a link named as a dead run's directory: neither it nor its target removed
    link = tmpdir / f"logpipe-tar-{dead + 1}-{dead_start}-{ns}-l1nk0000"
    link.symlink_to(target, target_is_directory=True)
    old_link = tmpdir / "logpipe-tar-l1nk0000"
    old_link.symlink_to(target, target_is_directory=True)
    os.utime(old_link, (0, 0), follow_symlinks=False)
    logpipe("parse", SAMPLES / "cri-node.log", env=env)  # (no archive: nothing looked at)
    assert killed.exists()
    archive = tmp_path / "node.tar"
    archive.write_bytes(make_tar(MEMBERS))
    logpipe("parse", archive, env=env)
    assert not killed.exists() and not reused.exists() and not unowned_old.exists() and not elsewhere_old.exists()
    assert {p.name for p in tmpdir.iterdir()} == {p.name for p in (live, elsewhere, unowned_new, others, link, old_link)}
    assert (target / "000000").exists() and (live / "000000").exists()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="owners are checked in /proc")
def test_a_process_proc_does_not_show_is_not_taken_for_gone(tmp_path, monkeypatch):
    """/proc mounted hidepid, or its file unreadable: the owner is not known to be gone, and its
    directory is kept (only a process /proc has no entry for is gone)."""
    from logpipe import archives

    me, start, ns = archives._owner()
    dead, dead_start = _dead_pid()
    hidden = _left(tmp_path, f"logpipe-tar-{dead}-{dead_start}-{ns}-h1dd3n00")

    def unreadable(path, *a, **k):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(archives, "open", unreadable, raising=False)
    archives._remove_abandoned(str(tmp_path), (me, start, ns))
    assert hidden.exists()
    monkeypatch.undo()
    archives._remove_abandoned(str(tmp_path), (me, start, ns))
    assert not hidden.exists()
