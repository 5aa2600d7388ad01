"""LogpipeError and its subclasses: the only exceptions the library raises on purpose.

The CLI turns each into one line on stderr and an exit code; ``--debug`` shows the traceback.
"""
from __future__ import annotations


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


class RejectLimitError(LogpipeError):
    """``--on-error fail`` met a reject, or ``--max-reject-ratio`` was exceeded."""
