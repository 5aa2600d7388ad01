"""grammars/ and queries/ are found by one lookup (logpipe.resources.resource_dir) both from the
checkout and from an installed wheel; the wheel carries them."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES

from logpipe import grammar
from logpipe.errors import LogpipeError
from logpipe.resources import resource_dir


@pytest.mark.parametrize("name", ["grammars", "queries"])
def test_resources_are_found_from_the_checkout(name):
    found = resource_dir(name)
    assert found == ROOT / name
    assert any(found.rglob("*.lark" if name == "grammars" else "*.sql"))


@pytest.mark.parametrize("name", sorted(grammar.GRAMMAR_FILES))
def test_every_builtin_grammar_loads(name):
    book = grammar.load_builtin(name)
    assert book.source.endswith(f"{name}.lark")
    for start in grammar.GRAMMAR_FILES[name]:
        assert book.compile(start).pattern


def test_a_missing_resource_says_how_to_fix_it():
    with pytest.raises(LogpipeError, match="reinstall logpipe"):
        resource_dir("no-such-resources")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("hatchling", reason="building the wheel offline needs hatchling (pip install '.[test]')")
    out = tmp_path_factory.mktemp("wheel")
    p = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out),
         str(ROOT)],
        capture_output=True, text=True, timeout=120,
    )
    assert p.returncode == 0, p.stderr
    (whl,) = out.glob("logpipe-*.whl")
    return whl


def test_wheel_contains_grammars_and_queries(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    lark_files = {Path(n).name for n in names if n.startswith("logpipe/grammars/") and n.endswith(".lark")}
    assert {p.name for p in (ROOT / "grammars").glob("*.lark")} <= lark_files
    sql = {n.removeprefix("logpipe/") for n in names if n.startswith("logpipe/queries/") and n.endswith(".sql")}
    assert sql and sql == {p.relative_to(ROOT).as_posix() for p in (ROOT / "queries").rglob("*.sql")}
    assert "logpipe/resources.py" in names
    assert "logpipe/cut.c" in names  # built on first use where the wheel is installed (logpipe/native.py)
    assert not any(n.startswith(("tests/", "sample_logs/")) for n in names)


@pytest.mark.slow
def test_installed_wheel_finds_its_grammars(wheel, tmp_path):
    """A fresh venv holding only the wheel (dependencies borrowed from this environment through a
    .pth file, so no index is needed) finds grammars/ inside the installed package and parses."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    p = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                        str(wheel)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    code = "import logpipe; from logpipe.resources import resource_dir; print(logpipe.__file__); print(resource_dir('grammars')); print(resource_dir('queries'))"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    package, grammars, queries = out.stdout.splitlines()
    assert Path(package).parent == Path(site) / "logpipe", "the wheel's logpipe, not the checkout's"
    assert Path(grammars) == Path(site) / "logpipe" / "grammars"
    assert Path(queries) == Path(site) / "logpipe" / "queries"
    assert (Path(grammars) / "access.lark").is_file()
    parsed = subprocess.run([python, "-m", "logpipe", "parse", str(SAMPLES / "istio-1.0.log"), "-o", "ndjson"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert parsed.returncode == 0, parsed.stderr
    assert parsed.stdout.count("\n") > 5 and "rejected 0" in parsed.stderr


def test_glibc_thresholds_are_set_in_this_process(monkeypatch):
    """alloc.setup(this_process=True) reaches glibc's mallopt (through the process's own symbols, not
    a find_library subprocess); elsewhere (musl) it leaves the defaults."""
    import platform

    from logpipe import alloc

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc: mallopt is not there")
    for name, value in alloc.ENV.items():
        monkeypatch.setenv(name, value)
    assert alloc._mallopt() is True
