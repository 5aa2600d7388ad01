"""How a logpipe command ends (``cli.main``, ``cli.entry``): its exit status from what it raised
(0 ok, 1 error, 2 usage, 130 Ctrl-C; an error is one line, ``--debug`` shows its traceback), a quiet
exit 0 when stdout's reader went away (`| head`), multiprocessing's resource tracker reaped, and,
after a command that only reads, out without Python's teardown."""
from __future__ import annotations

import gc
import os
import sys

import click

from .errors import LogpipeError, interrupted, no_space, out_of_memory


class PipeClosed(Exception):
    """stdout's reader went away (`| head`)."""


class Interrupted(Exception):
    """Ctrl-C, lifted out of the command before click's main sees it: click writes a blank line on
    stderr for a KeyboardInterrupt (to end a terminal's ``^C`` echo), before `logpipe: interrupted`,
    on a terminal or not; an interrupted ingest's summary, or its progress bar's clean-up on a
    terminal (which erases the ``^C`` with the bar), has ended that line already."""


_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # (click 8.2 and later)


def run(group: click.Group) -> int:
    """Run the command line's command with ``group``; its exit status (its output written, its
    errors said)."""
    args = sys.argv[1:]
    debug = "--debug" in args
    if debug:  # (an option of the group, taken after the command too: `logpipe stream … --debug`)
        args = ["--debug", *(a for a in args if a != "--debug")]
    try:
        group.main(args, standalone_mode=False, prog_name="logpipe")
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("logpipe: interrupted", err=True)
        return 130
    except click.UsageError as e:  # a bad flag or argument: one line, as logpipe's own errors (not click's four)
        if isinstance(e, _NO_ARGS_IS_HELP):  # (`logpipe` alone: the help)
            e.show()
            return e.exit_code
        path = e.ctx.command_path if e.ctx is not None else "logpipe"
        if path == "logpipe":  # (an option's missing value is found before the command's context is made)
            path = next((f"logpipe {a}" for a in args if a in group.commands), path)
        said = " ".join(e.format_message().split()).rstrip(".")  # (click's "Choose from:" list on lines of its own)
        click.echo(f"logpipe: error: {said} (see `{path} --help`)", err=True)
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except LogpipeError as e:
        if debug:
            raise
        click.echo(f"logpipe: error: {e}", err=True)
        return e.exit_code
    except (BrokenPipeError, PipeClosed):
        quiet_broken_pipe()
        return 0
    except (KeyboardInterrupt, Interrupted):
        click.echo("logpipe: interrupted", err=True)
        return 130
    except Exception as e:  # a bug: one line, and the way to see more
        if interrupted(e):  # (Ctrl-C that a lock's wait turned into another error)
            click.echo("logpipe: interrupted", err=True)
            return 130
        if debug:
            raise
        if full := no_space(e):  # (a disk that filled up under a write no command names better: not a bug)
            click.echo(f"logpipe: error: {full}; free space, then run the command again", err=True)
            return 1
        if memory := out_of_memory(e):  # (a report's table or sort past DuckDB's bound: not a bug either)
            click.echo(f"logpipe: error: {memory}", err=True)
            return 1
        click.echo(f"logpipe: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", err=True)
        return 1
    return 0


def finish(code: int) -> None:
    """Exit with ``code``, the command done."""
    _stop_resource_tracker()
    # Python's exit collects every object the process made (polars, pyarrow, the grammars): ~0.08 s,
    # a fifth of `logpipe parse` of a few lines. Everything is written and closed by now; frozen
    # objects are left to the operating system.
    gc.freeze()
    sys.exit(code)


def fast_exit(main, commands: frozenset) -> None:
    """``main()``, then, after a command of ``commands`` or --help, when nothing is left running (no
    other thread, no child process), out without Python's teardown of its modules and their
    libraries (polars, pyarrow, lark: ~30 ms, a tenth of ``logpipe parse`` of a few lines; ~4% of its
    instructions). Output is flushed first; ``logging`` (which some libraries use) is shut down as at
    exit."""
    try:
        main()
    except SystemExit as e:
        command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
        if (command is None or command in commands) and (e.code is None or isinstance(e.code, int)) \
                and _nothing_running():
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):  # a closed pipe: what main said of it stands
                    pass
            if "logging" in sys.modules:
                sys.modules["logging"].shutdown()
            if "logpipe.archives" in sys.modules:  # (its atexit step, which os._exit skips)
                sys.modules["logpipe.archives"].remove_unpacked()
            os._exit(e.code or 0)
        raise


def _nothing_running() -> bool:
    import threading

    if threading.active_count() > 1:
        return False
    mp = sys.modules.get("multiprocessing")
    return mp is None or not mp.active_children()


def _stop_resource_tracker() -> None:
    """Stop and reap multiprocessing's resource tracker, when the worker processes started one. It
    would outlive this process by design, left to PID 1 to reap: in a container whose PID 1 does not
    reap (no ``--init``), every run with workers would leave a zombie process behind. Only here, in
    the command's own process: stopping it cleans up whatever is still registered with it, which in
    a program using logpipe as a library may be the program's own. (``_stop`` is CPython's own,
    private; without it the tracker is left as before.)"""
    tracking = sys.modules.get("multiprocessing.resource_tracker")
    tracker = getattr(tracking, "_resource_tracker", None)
    if getattr(tracker, "_fd", None) is None or not hasattr(tracker, "_stop"):
        return
    try:
        tracker._stop()
    except (OSError, RuntimeError):
        pass


def quiet_broken_pipe() -> None:
    # stdout's reader went away (`| head`): point stdout at /dev/null so the final flush is silent.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
