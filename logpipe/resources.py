"""Find the files logpipe ships: ``grammars/`` and ``queries/``.

In a checkout (or an editable install) they sit at the repository's top level, next to the
``logpipe`` package; in a wheel they are installed inside the package (pyproject.toml's
force-include). One lookup serves both, and a test checks each.
"""
from __future__ import annotations

from pathlib import Path

from .errors import LogpipeError

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The directory ``grammars`` or ``queries``, wherever this installation keeps it."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise LogpipeError(f"logpipe's {name}/ directory is missing from this installation; reinstall logpipe")
