"""The command line: a thin click group over the library. Errors become one line and an exit code
(0 ok, 1 error, 2 usage, 130 Ctrl-C; ``logpipe/exits.py``); ``--debug`` shows the traceback. Heavy
libraries are imported inside the commands so that ``logpipe --help`` starts fast."""
from __future__ import annotations

import gc
import os
import sys

import click

from . import alloc, exits

ON_ERROR = click.Choice(["skip", "warn", "fail"])
DEFAULT_DATA = "./logpipe-data"
PARQUET_DASH = "- is stdout, which takes -o parquet into a pipe or a redirect only"  # (render.parquet_out)


def format_options(f):
    """--format-string / --format-file / --grammar: the mesh's own layout (logpipe/layouts.py)."""
    f = click.option("--grammar", "grammar_file", type=click.Path(dir_okay=False), metavar="FILE.lark",
                     callback=_given, help="A Lark grammar with one start rule (e.g. from `logpipe grammar --from-format`).")(f)
    f = click.option("--format-file", type=click.Path(dir_okay=False), metavar="FILE", callback=_given,
                     help="File with the format string, or Istio MeshConfig/ConfigMap/Telemetry YAML holding it.")(f)
    return click.option("--format-string", metavar="FORMAT", callback=_given,
                        help="The mesh's Envoy access-log format string (or JSON format object); "
                             "lines are tried against it first, then the built-in layouts.")(f)


def _format_parser(format_string, format_file, grammar_file):
    """The parser of the format options (``layouts.parser_from_options``), the format's notes said."""
    from .layouts import parser_from_options

    parser = parser_from_options(format_string, format_file, grammar_file)
    for note in getattr(parser.custom, "notes", None) or ():
        click.echo(f"logpipe: note: {note}", err=True)
    return parser


def _given(ctx, param, value):
    """An empty format option is an error, not the built-in layouts without a word: it is what
    ``--format-string "$(cat my-format.txt)"`` passes when the file is missing or empty."""
    if value is not None and not value.strip():
        if param.name == "format_string":
            raise click.BadParameter("it is empty (a $(cat FILE) of a missing or empty file?); give the "
                                     "mesh's access-log format, or --format-file FILE")
        raise click.BadParameter("it is empty; give the path of the file")
    return value


def out_option(help_text: str, dash: str = "- is stdout"):
    """--out FILE, where ``-`` is stdout (as ``stream --alerts-out -``), not a file named ``-``."""
    return click.option("--out", "out_path", type=click.Path(dir_okay=False, allow_dash=True), metavar="FILE",
                        callback=lambda ctx, param, value: None if value == "-" else value,
                        help=f"{help_text} ({dash}).")


class _Number(click.FloatRange):
    """A number of seconds or a ratio: ``nan`` and ``inf`` are refused (they passed FloatRange's
    bounds, and --window nan was an internal error, --flush-seconds nan a stream that never flushed)."""

    name = "number"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class _Window(_Number):
    """``stream --window``: more than 0. ``--window 0`` deduplicated nothing and turned failure_burst
    off unsaid (its N failures must fall within the window: they would have to share one timestamp)."""

    def convert(self, value, param, ctx):
        try:
            zero = float(value) == 0
        except (TypeError, ValueError):
            zero = False
        if zero:
            self.fail("0 would turn failure_burst off (the window is also the burst's: its N failures would "
                      "have to share one timestamp); give a positive number of seconds, e.g. 1", param, ctx)
        return super().convert(value, param, ctx)


class _DataDir(click.Path):
    """``--data``: a directory. A file given (a log: ``report inventory --data access.log``) was click's
    ``Directory '…' is a file``; now it says what to give: the dataset, where the file is one's
    (``dataset.near_dataset``), the log as ``--input FILE`` (query, report) or as ingest's argument."""

    def __init__(self):
        super().__init__(file_okay=False)

    def convert(self, value, param, ctx):
        if os.path.isfile(value):
            from .dataset import near_dataset

            said = f"{value} is a file, not a dataset directory"
            command = ctx.command if ctx is not None else None
            if near := near_dataset(value):
                said += f"; {near}"
            elif command is not None and any(p.name == "inputs" for p in command.params):
                said += f"; to read a log file without a dataset, give --input {value}"
            elif command is not None and command.name == "ingest":
                said += f"; the logs are ingest's arguments: `logpipe ingest {value} --data DIR`"
            self.fail(said, param, ctx)
        return super().convert(value, param, ctx)


def data_option(f):
    return click.option(
        "--data", "data_dir", envvar="LOGPIPE_DATA", default=DEFAULT_DATA, show_default=True,
        type=_DataDir(), help="Dataset directory (or $LOGPIPE_DATA).",
    )(f)


class _Group(click.Group):
    # click maps a broken pipe to exit 1 inside its own main(); lift it out first so that
    # `logpipe … | head` is a quiet exit 0 (DESIGN.md: Unix manners). Ctrl-C likewise: click's main
    # writes a blank line before `logpipe: interrupted` (exits.Interrupted).
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise exits.PipeClosed() from None
        except KeyboardInterrupt:
            raise exits.Interrupted() from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
@out_option("Write to this file", PARQUET_DASH)
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False),
              help="Write rejects as ndjson to this file instead of stderr.")
@click.option("--on-error", type=ON_ERROR, default="warn", show_default=True,
              help="On a rejected line: skip silently, warn on stderr, or fail (exit 1).")
@click.option("--max-warnings", type=click.IntRange(min=0), default=20, show_default=True, help="Cap on reject warnings printed.")
@format_options
def parse(files, fmt, out_path, rejects_path, on_error, max_warnings, format_string, format_file, grammar_file):
    """Parse access-log lines (FILES, or - for stdin) into records on stdout.

    Rejected lines go to stderr as SOURCE:LINE: REASON; the last line on stderr counts them.
    """
    from .lanes import boot_pool

    _batch_collector()
    paths = list(files) or ["-"]
    pool, found = boot_pool(paths, ingest=False)  # the workers boot while this process imports polars and pyarrow
    try:
        from .pipeline import parse_to_output

        parser = _format_parser(format_string, format_file, grammar_file)
        _compiler_note()
        parse_to_output(paths, fmt=fmt, out_path=out_path, rejects_path=rejects_path, parser=parser,
                        on_error=on_error, max_warnings=max_warnings, pool=pool, found=found)
    finally:
        if pool is not None:
            pool.close()


def _compiler_note() -> None:
    """Say once per machine that there is no C compiler for logpipe/cut.c (logpipe/native.py)."""
    from .native import compiler_note

    note = compiler_note()
    if note:
        click.echo(note, err=True)


# ---- commands of other stages register below --------------------------------------------------------


# ---- stream, replay, compact ------------------------------------------------------------------------


# `kubectl get pods -A -o json`: report, query and stream name the clients' workloads (source_workload).
pods_option = click.option("--pods", "pods_path", type=click.Path(dir_okay=False),
                           help="`kubectl get pods -A -o json` output: name sources by workload (source_workload) where known.")


@cli.command()
@data_option
@click.option("--flush-rows", type=int, default=10_000, show_default=True, metavar="N",
              help="Write a part file after N lines (at most 20000)...")
@click.option("--flush-seconds", type=_Number(min=0, min_open=True), default=2.0, show_default=True, metavar="S",
              help="...or S seconds after a batch's first line, whichever comes first.")
@click.option("--tee", is_flag=True, help="Also write the parsed records to stdout as ndjson.")
@click.option("--alerts", "alerts_format", type=click.Choice(["text", "ndjson"]), default="text", show_default=True,
              help="Alert format: text lines on stderr, or ndjson (to stdout unless --alerts-out).")
@click.option("--alerts-out", type=click.Path(dir_okay=False, allow_dash=True), metavar="FILE",
              help="Append alerts to FILE (- for stdout).")
@click.option("-q", "--quiet", is_flag=True, help="No alerts (the summary is still printed).")
@click.option("--window", "window_seconds", type=_Window(min=0, min_open=True), default=300.0, show_default=True,
              metavar="S",
              help="The alerts' window, in event time, for both: a repeated alert for one destination (one "
                   "destination and client for blocked_attempt and authz_denial, one source for a scan) waits "
                   "S seconds, and a failure burst (--burst) or a scan is counted within S seconds.")
@click.option("--burst", "burst_threshold", type=click.IntRange(min=1), default=5, show_default=True, metavar="N",
              help="Alert when one destination has N 5xx/failure-flag responses within the window (--window).")
@click.option("--source", default="<stdin>", show_default=True, help="Source name recorded on each row.")
@click.option("--max-warnings", type=click.IntRange(min=0), default=20, show_default=True,
              help="Malformed lines shown on stderr (all go to the rejects table).")
@click.option("--keep-replayed", is_flag=True,
              help="Store lines an earlier stream into this dataset, or this one, already stored (what `kubectl "
                   "logs -f` prints again when restarted or reconnected); by default they are counted as replayed "
                   "and skipped.")
@pods_option
@format_options
def stream(data_dir, flush_rows, flush_seconds, tee, alerts_format, alerts_out, quiet, window_seconds,
           burst_threshold, source, max_warnings, keep_replayed, pods_path, format_string, format_file, grammar_file):
    """Watch a live log on stdin: rows into the dataset as they arrive, alerts on stderr.

    \b
      kubectl logs -f -n istio-egress deploy/waypoint --prefix --timestamps | logpipe stream
      logpipe replay sample_logs/sidecar-outbound-1.22.log --speed 20x | logpipe stream

    Alerts: new destination, passthrough egress, blocked attempts, RBAC/ext_authz denials,
    5xx/failure bursts, destination scans (one source reaching 10 new IP addresses within the
    window). Ctrl-C flushes the open batch, prints the summary and exits 130.
    """
    # The 300 MiB memory bound was measured with 2 polars threads; each thread adds its own buffers
    # (set before polars is first imported; the user's own POLARS_MAX_THREADS wins).
    os.environ.setdefault("POLARS_MAX_THREADS", "2")
    from .stream import StreamOptions, Streamer

    from .errors import UsageError

    if quiet and alerts_out:
        raise UsageError("--quiet turns the alerts off, so --alerts-out would stay empty; give one of them")
    if quiet and pods_path:
        raise UsageError("--quiet turns the alerts off, so --pods would name no alert's client; give one of them")
    custom = format_string or format_file or grammar_file
    parser = _format_parser(format_string, format_file, grammar_file) if custom else None
    _compiler_note()
    if sys.stdin is None:  # (started with stdin closed: `<&-`)
        raise UsageError("stdin is closed: pipe access-log lines in, e.g. kubectl logs -f … | logpipe stream")
    if sys.stdin.isatty():
        click.echo("logpipe: reading access-log lines from the terminal; pipe a log in, e.g. "
                   "kubectl logs -f … | logpipe stream (Ctrl-D ends)", err=True)
    opts = StreamOptions(flush_rows=flush_rows, flush_seconds=flush_seconds, tee=tee, alerts=not quiet,
                         alerts_format=alerts_format, alerts_out=alerts_out, window_seconds=window_seconds,
                         burst_threshold=burst_threshold, source=source, max_warnings=max_warnings,
                         keep_replayed=keep_replayed, pods=pods_path)
    code = Streamer(data_dir, opts, parser=parser).run()
    if code:
        sys.exit(code)  # 130 SIGINT, 143 SIGTERM (click would swallow an Exit code here)


@cli.command()
@click.argument("file")
@click.option("--speed", default="1x", show_default=True, help="Pace factor: 10x is ten times faster; max: no pauses.")
@click.option("--max-sleep", type=_Number(min=0), default=2.0, show_default=True, metavar="S",
              help="Longest pause between two lines, in seconds after scaling.")
@format_options
def replay(file, speed, max_sleep, format_string, format_file, grammar_file):
    """Write a log FILE to stdout at the pace it was written (by START_TIME), for demos.

    \b
      logpipe replay sample_logs/waypoint-egress-1.23.log --speed 10x | logpipe stream
    """
    from .replay import parse_speed, replay_file

    # (no default parser here: --speed max reads no times, so it imports neither polars nor pyarrow)
    custom = format_string or format_file or grammar_file
    try:
        replay_file(file, sys.stdout.buffer, speed=parse_speed(speed), max_sleep=max(0.0, max_sleep),
                    parser=_format_parser(format_string, format_file, grammar_file) if custom else None)
    except BrokenPipeError:  # `| head`: a quiet exit 0 (click would turn EPIPE into exit 1)
        exits.quiet_broken_pipe()


@cli.command()
@data_option
@click.option("--min-files", type=click.IntRange(min=1), default=8, show_default=True, metavar="N",
              help="Merge a day directory's (or _rejects/') small files (under 122,880 rows) when it holds at least N.")
def compact(data_dir, min_files):
    """Merge the many small part files (and reject files) that streams and ingests of many small
    inputs leave into fewer, larger ones (whichever input or stream wrote them; `ingest --force`
    still replaces one input's rows)."""
    from .dataset import Dataset, compact_dataset

    ds = Dataset(data_dir)
    before, rejects_before, merged = len(ds.row_files()), len(ds.reject_files()), {}
    compact_dataset(ds, min_files=max(2, min_files), across=True, merged=merged, waiting=lambda: click.echo(
        f"logpipe: waiting for the queries reading {data_dir} to finish", err=True))
    said = (f"compacted {data_dir}: {before} row files before, {len(ds.row_files())} after "
            f"({merged.get('parts', [0])[0]} merged)")
    if rejects_before:
        said += f"; {rejects_before} reject files before, {len(ds.reject_files())} after"
    click.echo(said, err=True)


# ---- ingest -----------------------------------------------------------------------------------------


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@data_option
@click.option("--force", is_flag=True, help="Re-ingest inputs already in the dataset, replacing their rows.")
@click.option("--on-error", type=ON_ERROR, default="warn", show_default=True,
              help="On a malformed line: skip silently, warn on stderr, or fail (stop, exit 1).")
@click.option("--max-reject-ratio", type=_Number(min=0), default=0.1, show_default=True, metavar="R",
              help="Fail an input (not ingested, exit 1) when more than R of its lines are malformed (noise not counted); "
                   "an input of 4 MB or more (or stdin) whose first lines are mostly malformed fails on those. 1: never.")
@click.option("--max-warnings", type=click.IntRange(min=0), default=20, show_default=True, help="Cap on malformed-line warnings printed.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: only when stderr is a terminal).")
@click.option("--flush-rows", type=click.IntRange(min=1), default=122_880, show_default=True, metavar="N",
              help="An input parsed whole (a file under 48 MB, or any with LOGPIPE_WORKERS=1): write a part "
                   "file every N rows (per day; in a worker process, also every ~16 MB of input). A larger "
                   "input is split among the workers, which write one file per part (~16 MB of a plain "
                   "file, ~8 MB of stdin or a compressed one).")
@format_options
def ingest(paths, data_dir, force, on_error, max_reject_ratio, max_warnings, progress, flush_rows,
           format_string, format_file, grammar_file):
    """Ingest log archives (files, directories, globs, .gz/.zst/.bz2, tar and zip archives, - for
    stdin, a pipe such as <(kubectl logs …)) into the Parquet dataset at --data, once each.

    \b
      logpipe ingest /var/log/istio/ --data logpipe-data
      duckdb -c "select count(*) from read_parquet('logpipe-data/date=*/*.parquet', hive_partitioning=true)"

    An input already ingested (same content, any name) is skipped; one that grew ingests only the
    new lines; --force replaces its rows (stdin or a pipe has no identity: each run adds it again). Rejected
    lines go to DATA/_rejects/, per-input counts to DATA/_manifest.json. The summary is printed on
    stderr. A format given with --format-string/--format-file/--grammar is remembered in the
    manifest and used by later ingests into the same dataset that give none.
    """
    from .lanes import boot_pool

    alloc.setup(this_process=True)  # before polars and pyarrow are imported: this process parses too
    _batch_collector()
    # the workers boot while this process imports polars and pyarrow (not for a rerun: ingested_before)
    pool, found = boot_pool(list(paths), rerun_of=None if force else data_dir)
    try:
        from .ingest import ingest_paths

        custom = format_string or format_file or grammar_file
        parser = _format_parser(format_string, format_file, grammar_file) if custom else None
        _compiler_note()
        ingest_paths(list(paths), data_dir, force=force, on_error=on_error, max_reject_ratio=max_reject_ratio,
                     max_warnings=max_warnings, progress=progress, flush_rows=flush_rows, parser=parser, pool=pool,
                     found=found)
    finally:
        if pool is not None:
            pool.close()


# ---- custom formats: grammar, formats, detect ----------------------------------------------------------


@cli.command()
@click.option("--from-format", "format_string", metavar="FORMAT",
              help="An Envoy access-log format string (meshConfig.accessLogFormat).")
@click.option("--format-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="A file holding the format string, or Istio MeshConfig/ConfigMap/Telemetry YAML.")
def grammar(format_string, format_file):
    """Print the Lark grammar logpipe compiles from an Envoy format string.

    \b
      logpipe grammar --from-format '[%START_TIME%] %REQ(:METHOD)% %RESPONSE_CODE% %REQ(X-B3-TRACEID)%' > my.lark
      logpipe parse --grammar my.lark access.log

    Operators logpipe knows land in its columns; others become extra columns named after them.
    """
    from .errors import UsageError
    from .formatfile import read_format_file
    from .formats import grammar_from_format

    if bool(format_string) == bool(format_file):
        raise UsageError("give the format with --from-format 'FORMAT' or --format-file FILE (one of them)")
    fmt = format_string or read_format_file(format_file)
    if isinstance(fmt, dict):
        raise UsageError("that is a JSON format: it maps keys, not a line syntax, so it needs no grammar;"
                         " pass it to parse with --format-file or --format-string as it is")
    click.echo(grammar_from_format(fmt), nl=False)


@cli.command()
def formats():
    """List the built-in layouts: name, Istio/Envoy versions, format string."""
    from .formats import BUILTIN_LAYOUTS

    width = max(map(len, BUILTIN_LAYOUTS))
    for name, (versions, fmt) in BUILTIN_LAYOUTS.items():
        click.echo(f"{name:<{width}}  {versions}\n{'':<{width}}  {fmt}")


@cli.command()
@click.argument("files", nargs=-1, required=True)
@format_options
def detect(files, format_string, format_file, grammar_file):
    """Say which layouts FILES hold (or - for stdin), with line counts per file."""
    from .layouts import detect_layouts

    parser = _format_parser(format_string, format_file, grammar_file)
    for source, layout, lines in detect_layouts(list(files), parser):
        click.echo(f"{source}\t{layout}\t{lines}")


def main() -> None:
    exits.finish(exits.run(cli))


# Commands that read, and write only to stdout or a file they close: after them nothing is left to do
# at exit (ingest, stream and compact, which write a dataset, exit as Python does).
FAST_EXIT_COMMANDS = frozenset({"parse", "query", "report", "detect", "formats", "grammar", "replay"})


def entry() -> None:
    """The ``logpipe`` command (and ``python -m logpipe``): ``main``, then, after a command of
    FAST_EXIT_COMMANDS or --help, out without Python's teardown (``exits.fast_exit``). Tests call
    ``main``, which exits as usual."""
    exits.fast_exit(main, FAST_EXIT_COMMANDS)


def _batch_collector() -> None:
    """Python's collector as ingest's and parse's processes run it (``alloc.GC_THRESHOLDS``; forked
    workers inherit it): their start-up (polars, pyarrow, the grammars) makes ~100k objects and few
    cycles, over which the default thresholds ran ~130 collections, ~30 ms before the first line was
    parsed. Not for ``stream``: its micro-batches leave cycles behind, and with these thresholds its
    memory grew past its 300 MiB bound (tests/test_stream.py's soak)."""
    gc.set_threshold(*alloc.GC_THRESHOLDS)


from .cli_reports import query, report  # noqa: E402  (they use this module's options)

cli.add_command(report)
cli.add_command(query)
