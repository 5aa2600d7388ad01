"""What logpipe derives once and keeps in its cache directory (``native.cache_dir``): JSON files, not
pickles (nothing is run on load), each named by what it was derived from.

A file is ``<kind>-<version>-<key>.json``: ``version`` is a hash of the source of the module that
derives and reads it (a changed module derives afresh, and its first save removes the files of the
earlier one), ``key`` a hash of what it was derived from. A file that cannot be read, written or
trusted only means the thing is derived again here. Users: the token DFAs (``dfa.py``) and the
built-in grammars' rules and terminals (``grammarstore.py``).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

MISSING = object()  # load(): nothing stored (or nothing usable)


def source_version(module_file: str) -> str:
    """A short hash of a module's source, "" when it cannot be read (imported from a zip, say):
    then nothing is stored."""
    try:
        return hashlib.sha256(Path(module_file).read_bytes()).hexdigest()[:12]
    except OSError:
        return ""


class Stored:
    """One derived thing's file in the cache directory."""

    def __init__(self, kind: str, version: str, derived_from: str):
        self.kind, self.version = kind, version
        self.name = f"{kind}-{version}-{hashlib.sha256(derived_from.encode()).hexdigest()[:32]}.json"

    def _directory(self) -> Path | None:
        from . import native

        return native.cache_dir() if self.version else None

    def load(self):
        """The stored JSON value, or ``MISSING``."""
        directory = self._directory()
        if directory is None:
            return MISSING
        try:
            return json.loads((directory / self.name).read_text())
        except (OSError, ValueError):
            return MISSING

    def save(self, data) -> None:
        directory = self._directory()
        if directory is None:
            return
        try:
            fd, tmp = tempfile.mkstemp(prefix=self.name + ".", dir=directory)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
            os.replace(tmp, directory / self.name)  # atomic: a concurrent save writes the same bytes
            for old in directory.glob(f"{self.kind}-*.json"):  # an earlier module's
                if not old.name.startswith(f"{self.kind}-{self.version}-"):
                    old.unlink(missing_ok=True)
        except OSError:
            pass
