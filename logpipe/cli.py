"""The command line: a thin click group over the library. Errors become one line and an exit code
(0 ok, 1 error, 2 usage, 130 Ctrl-C); ``--debug`` shows the traceback. Heavy libraries are imported
inside the commands so that ``logpipe --help`` starts fast."""
from __future__ import annotations

import os
import sys

import click

from .errors import LogpipeError

ON_ERROR = click.Choice(["skip", "warn", "fail"])
DEFAULT_DATA = "./logpipe-data"


def data_option(f):
    return click.option(
        "--data", "data_dir", envvar="LOGPIPE_DATA", default=DEFAULT_DATA, show_default=True,
        type=click.Path(file_okay=False), help="Dataset directory (or $LOGPIPE_DATA).",
    )(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="logpipe")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Envoy and Istio access logs into typed records, Parquet and DuckDB.

    \b
      logpipe parse access.log -o ndjson        lines to records
      logpipe ingest logs/ --data DIR           archives to a Parquet dataset
      kubectl logs -f … | logpipe stream        live egress watch
      logpipe query --sql "select …"            SQL over the dataset
      logpipe report inventory                  egress inventory
    """
    ctx.obj = {"debug": debug}


# ---- parse ----------------------------------------------------------------------------------------


@cli.command()
@click.argument("files", nargs=-1)
@click.option("-o", "--output", "fmt", type=click.Choice(["ndjson", "csv", "table", "parquet"]),
              help="Output format (default: table on a terminal, else ndjson).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Write to this file (required for parquet).")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False),
              help="Write rejects as ndjson to this file instead of stderr.")
@click.option("--on-error", type=ON_ERROR, default="warn", show_default=True,
              help="On a rejected line: skip silently, warn on stderr, or fail (exit 1).")
@click.option("--max-warnings", type=int, default=20, show_default=True, help="Cap on reject warnings printed.")
def parse(files, fmt, out_path, rejects_path, on_error, max_warnings):
    """Parse access-log lines (FILES, or - for stdin) into records on stdout.

    Rejected lines go to stderr as SOURCE:LINE: REASON; the last line on stderr counts them.
    """
    from .pipeline import parse_to_output

    parse_to_output(list(files) or ["-"], fmt=fmt, out_path=out_path, rejects_path=rejects_path,
                    on_error=on_error, max_warnings=max_warnings)


# ---- commands of other stages register below --------------------------------------------------------


def main() -> None:
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False, prog_name="logpipe")
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("logpipe: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except LogpipeError as e:
        if debug:
            raise
        click.echo(f"logpipe: error: {e}", err=True)
        sys.exit(e.exit_code)
    except BrokenPipeError:
        _quiet_broken_pipe()
        sys.exit(0)
    except KeyboardInterrupt:
        click.echo("logpipe: interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # a bug: one line, and the way to see more
        if debug:
            raise
        click.echo(f"logpipe: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", err=True)
        sys.exit(1)
    sys.exit(0)


def _quiet_broken_pipe() -> None:
    # stdout's reader went away (`| head`): point stdout at /dev/null so the final flush is silent.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
