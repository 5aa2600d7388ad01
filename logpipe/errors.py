"""LogpipeError and its subclasses: the only exceptions the library raises on purpose.

The CLI turns each into one line on stderr and an exit code; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import errno
import os


class LogpipeError(Exception):
    """Something the user can fix; the message is one sentence with the fix."""

    exit_code = 1


class UsageError(LogpipeError):
    """Wrong options or arguments (exit 2)."""

    exit_code = 2


class InputError(LogpipeError):
    """An input that cannot be read (missing, unreadable, corrupt archive)."""


class InputChangedError(InputError):
    """A file that shrank or was rewritten while it was read (``logrotate``'s copytruncate): what was
    read is not one version of it, so none of it is kept."""


class DatasetError(LogpipeError):
    """A dataset that is missing or not a logpipe dataset."""


class QueryError(LogpipeError):
    """SQL that DuckDB refused, or a named query that does not exist."""


class ParamError(UsageError, QueryError):
    """A ``-p NAME VALUE`` the query cannot take: a parameter it does not have, or a value its
    parameter's type or DuckDB refuses (``-p limit abc``, ``-p since yesterday``). A bad option, so a
    usage error (exit 2), as a report's unknown ``-p`` was; a QueryError still, as it was before."""


class RejectLimitError(LogpipeError):
    """``--on-error fail`` met a reject, or ``--max-reject-ratio`` was exceeded."""


def no_space(e: BaseException) -> str | None:
    """What a write that found the disk, or the user's quota, full says (``No space left on device``),
    else None. (pyarrow's own text of it is longer: ``Error writing bytes to file. Detail: …``.)"""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return os.strerror(e.errno)
    return None


def denied(e: BaseException, under: str | None = None) -> str | None:
    """What a write that permissions (or a read-only mount) refused says (``Permission denied``,
    ``Read-only file system``), else None; given ``under``, only of a file under that directory.
    (pyarrow's error of it names its file in its text alone: ``Failed to open local file …``.) Both
    paths are made absolute first: under ``--data .`` a file's name is ``._manifest.json.tmp``, not
    ``./…`` (its refusal was an internal error)."""
    if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and (under is None or (
            e.filename is not None
            and os.path.abspath(str(e.filename)).startswith(os.path.join(os.path.abspath(str(under)), "")))):
        return os.strerror(e.errno)
    return None


def out_of_memory(e: BaseException) -> str | None:
    """What DuckDB's "Out of Memory Error" (its memory limit reached: db._bound_memory) says to the
    user, else None: DuckDB's own text (several lines, ``SET memory_limit``) names settings a logpipe
    user does not set."""
    import sys

    duckdb = sys.modules.get("duckdb")  # (not imported for it: a command that ran no DuckDB raised none)
    if duckdb is None or not isinstance(e, duckdb.OutOfMemoryException):
        return None
    from .lanes import DEFAULT_MEMORY

    given = os.environ.get("LOGPIPE_MEMORY", "").strip()
    budget = f"LOGPIPE_MEMORY={given}" if given else f"LOGPIPE_MEMORY's default of {DEFAULT_MEMORY}"
    return f"DuckDB ran out of memory within {budget}; give it more, e.g. LOGPIPE_MEMORY=4G"


def interrupted(e: BaseException) -> bool:
    """Whether ``e`` is Ctrl-C: a KeyboardInterrupt, or an error raised while one was on its way. A
    KeyboardInterrupt that lands in a lock's wait (``threading.Condition.wait``, between its release
    and its try) leaves the lock released, so the ``with`` around the wait then raises RuntimeError
    ("cannot release un-acquired lock"), the KeyboardInterrupt as its context."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__context__
    return False
