"""``logpipe report`` and ``logpipe query``: the commands that read a dataset (or logs parsed in
memory, ``--input``) with DuckDB and write a result. Added to the group in logpipe/cli.py, whose
conventions they follow (errors in one line, heavy libraries imported inside the commands)."""
from __future__ import annotations

import os
import sys

import click

from . import exits
from .cli import PARQUET_DASH, _format_parser, data_option, format_options, out_option, pods_option


# ---- report -----------------------------------------------------------------------------------------


def _utc_time(ctx, param, value):
    """--since/--until: ISO 8601 (``2025-01-30``, ``2025-01-30T10:00``, ``…Z``); naive means UTC."""
    if value is None:
        return None
    import datetime as dt

    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO time; write e.g. 2025-01-30 or 2025-01-30T10:00Z") from None
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def view_settings_options(f):
    """--cluster-domain / --mesh-domain / --internal-cidr: the egress view's settings (logpipe/settings.py),
    which logpipe.toml and $LOGPIPE_CLUSTER_DOMAIN / $LOGPIPE_MESH_DOMAINS / $LOGPIPE_INTERNAL_CIDRS also set;
    query and report alike."""
    f = click.option("--internal-cidr", "internal_cidrs", multiple=True, metavar="CIDR",
                     help="Internal range for the egress view (repeatable; replaces the defaults, 'default' adds "
                          "them back).")(f)
    f = click.option("--mesh-domain", "mesh_domains", multiple=True, metavar="DOMAIN",
                     help="Domain whose hosts are in the mesh besides svc.<cluster domain> (repeatable; none by "
                          "default; Istio <= 1.7 multicluster: global).")(f)
    return click.option("--cluster-domain", metavar="DOMAIN",
                        help="Cluster domain for the egress view (default cluster.local).")(f)


_TABLE_FORMATS = {".csv": "csv", ".tsv": "tsv"}  # (query's, one table: a report is several)


class _ReportFormat(click.Choice):
    """A report's -o: csv and tsv pass to the command, which says how to get its tables so."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.lower() in _TABLE_FORMATS.values():
            return value.lower()
        return super().convert(value, param, ctx)


@click.command()
@click.argument("name", type=click.Choice(["inventory", "anomalies"]))
@data_option
@click.option("-o", "--output", "fmt", type=_ReportFormat(["text", "markdown", "json", "html"]),
              help="Output format (default: from --out's suffix, .html .htm .md .txt .json; else text on a terminal, else json).")
@out_option("Write to this file instead of stdout")
@click.option("--list", "list_only", is_flag=True, help="List the report's sections and their parameters, then exit.")
@click.option("-p", "--param", "params", type=(str, str), multiple=True, metavar="KEY VALUE",
              help="Set a threshold parameter (see --list); repeatable.")
@pods_option
@click.option("--baseline-days", type=int, metavar="N", help="The first N days of the data are the baseline.")
@click.option("--baseline", "baseline_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Another dataset (older) is the baseline; this one is the window.")
@click.option("--since", callback=_utc_time, metavar="TIME", help="Window start (ISO time, UTC); before it: baseline.")
@click.option("--until", callback=_utc_time, metavar="TIME", help="Window end (ISO time, UTC, exclusive).")
@click.option("--input", "inputs", multiple=True, metavar="FILE",
              help="Report on log FILE(s) parsed in memory instead of a dataset (repeatable; - for stdin).")
@format_options
@view_settings_options
def report(name, data_dir, fmt, out_path, list_only, params, pods_path, baseline_days, baseline_dir, since, until,
           inputs, format_string, format_file, grammar_file, cluster_domain, mesh_domains, internal_cidrs):
    """Egress inventory or anomaly findings over the dataset (or over log files: --input).

    \b
      logpipe report inventory                       every external destination, every source
      logpipe report anomalies                       last 24 h of the data vs everything before
      logpipe report anomalies --baseline-days 6 -o json
      logpipe report anomalies -o html --out report.html --pods pods.json
      kubectl logs -n istio-egress deploy/waypoint | logpipe report inventory --input -

    Each section is a .sql file in queries/inventory/ or queries/anomalies/; thresholds are their
    parameters (--list shows them, -p KEY VALUE sets them, -p SECTION.KEY VALUE one section's);
    `logpipe query SECTION --list` says what a section does and what its columns mean.
    """
    from . import reports
    from .errors import UsageError

    if list_only:
        if fmt or out_path:  # (they were ignored: the text on stdout, no file written)
            raise UsageError(f"`logpipe report {name} --list` lists the sections and their parameters in text, which "
                             "-o/--out do not change: drop them")
        _refuse_with_list(f"logpipe report {name}", {"-p": params, "--input": inputs, "--pods": pods_path,
                                                     "--baseline": baseline_dir, "--baseline-days": baseline_days,
                                                     "--since": since, "--until": until})
        for section in reports.list_report(name):
            click.echo(f"{section['name']}: {section['title']}")
            _echo_params(section["params"])
        return
    if baseline_dir and (baseline_days is not None):
        raise UsageError("--baseline DIR and --baseline-days N both choose the baseline; give one of them")
    if name == "inventory" and (baseline_dir or baseline_days is not None):
        raise UsageError("the inventory has no baseline (--baseline, --baseline-days are the anomalies'); "
                         "narrow it with --since/--until")
    if fmt is None and out_path:
        fmt = _TABLE_FORMATS.get(os.path.splitext(out_path)[1].lower())
    if fmt in _TABLE_FORMATS.values():
        sections = [s["name"] for s in reports.list_report(name)]
        raise UsageError(f"a report is {len(sections)} tables, not one {fmt}: write a section's table with `logpipe "
                         f"query SECTION -o {fmt} --out FILE` (SECTION: {', '.join(sections)}; -p since/until for a "
                         "window), or the whole report with -o json")
    if fmt is None:
        fmt = _format_of(out_path, _REPORT_SUFFIXES, "text", "json")
    if fmt == "html" and not out_path and sys.stdout.isatty():  # (~160 KB of markup on the terminal)
        raise UsageError("-o html is a page for a browser, not the terminal: give --out FILE.html, or redirect "
                         "stdout (> report.html)")
    from .settings import load_settings

    _refuse_data_with_input(data_dir, inputs)
    settings = load_settings(data_dir, cluster_domain=cluster_domain, mesh_domains=mesh_domains,
                             internal_cidrs=internal_cidrs)
    tables = _input_tables(inputs, format_string, format_file, grammar_file)
    from .db import reading

    # The datasets' readers' lock (a stream's compaction waits) while their files are read, not
    # while the report is written out.
    with reading(*([] if tables is not None else [data_dir]), *([baseline_dir] if baseline_dir else [])):
        # (the inventory's two sections, but for the HTML page's charts, read the rows once each, but
        # for a dataset small enough that planning the rows' judgement twice costs more: db.SMALL_ROWS)
        con, floor = reports.open_report_db(data_dir, baseline_dir=baseline_dir, pods_path=pods_path, tables=tables,
                                            settings=settings, report=name,
                                            keep_rows=True if name != "inventory" or fmt == "html" else None)
        try:
            if name == "inventory":  # the inventory covers all the data unless --since/--until narrow it
                window = reports.inventory_window(con, since, until)
            else:
                window = reports.resolve_window(con, since=since, until=until, baseline_days=baseline_days,
                                                window_floor=floor, inputs=tables is not None)
                if tables is not None and window.baseline_source == "dataset":
                    import dataclasses

                    window = dataclasses.replace(window, baseline_source="the --input logs")
            doc = reports.run_report(con, name, params=dict(params), window=window)
            hint = reports.empty_note(con, doc, inputs=tables is not None)
            # (logs parsed with a format: the format's own note said it, _input_tables)
            blind = None if tables is not None and (format_string or format_file) else reports.cluster_note(con)
            if fmt == "html":
                from . import html

                text = html.render_html(doc, name, con=con, window=window, params=dict(params))
            elif fmt == "json":
                text = reports.to_json(doc)
            else:
                import io

                buf = io.StringIO()
                tty = fmt == "text" and not out_path and sys.stdout.isatty()
                reports.render_text(doc, name, buf, tty=tty, markdown=fmt == "markdown")
                text = buf.getvalue()
        finally:
            con.close()
    for line in (hint, blind):
        if line:
            click.echo(line, err=True)
    if out_path:
        reports.write_text_atomic(out_path, text)
        click.echo(f"logpipe: wrote {out_path}", err=True)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def _echo_params(params: list[dict]) -> None:
    """``--list``'s lines of parameters: ``    -p NAME DEFAULT  HELP``."""
    from .queries import default_text

    for p in params:
        default = "''" if p["default"] == "" else default_text(p["default"])
        click.echo(f"    -p {p['name']} {default}  {p['help']}".rstrip())


def _describe_query(q) -> None:
    """``logpipe query NAME --list``: what the query does (its title and description), its
    parameters, and what its columns mean (its ``-- @column`` lines, as a report's legend says)."""
    import textwrap

    from . import reports

    click.echo(f"{q.name}: {q.title}")
    if q.description:
        click.echo(textwrap.fill(" ".join(q.description.split()), reports.LEGEND_WIDTH, initial_indent="  ",
                                 subsequent_indent="  ", break_on_hyphens=False))
    _echo_params(reports.query_params(q))
    legend = list(q.extra.get("columns", {}).items())
    if legend:
        click.echo(reports.legend_text(legend, False), nl=False)


# ---- query ------------------------------------------------------------------------------------------

QUERY_FORMATS = ["table", "csv", "tsv", "json", "ndjson", "markdown", "yaml", "parquet"]


def _refuse_ignored(given: dict[str, object], because: str, other: str = "") -> None:
    """Options given (``given``: each one's name and value) that this run would ignore, refused in
    one line (usage error, exit 2) that says ``because`` and, in ``other``, what else to do: they
    were ignored, exit 0, and the user who typed them believed them applied."""
    from .errors import UsageError

    named = [o for o, v in given.items() if v not in (None, (), "", False)]
    if named:
        listed = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"
        raise UsageError(f"{because}, so {listed} would be ignored: drop {'them' if len(named) > 1 else 'it'}"
                         + (f", or {other}" if other else ""))


def _refuse_with_list(command: str, given: dict[str, object]) -> None:
    """Options that choose rows or shape a run (``given``) with --list: it runs no query and reads no
    logs. The egress view's settings, a format for --input and an explicit --data are among them (a
    $LOGPIPE_DATA is the environment's, not the user's word for this run)."""
    ctx = click.get_current_context()
    explicit = ctx.params["data_dir"] if (ctx.get_parameter_source("data_dir")
                                          == click.core.ParameterSource.COMMANDLINE) else None
    p = ctx.params
    _refuse_ignored({**given, "--data": explicit, "--format-string": p["format_string"],
                     "--format-file": p["format_file"], "--grammar": p["grammar_file"],
                     "--cluster-domain": p["cluster_domain"], "--mesh-domain": p["mesh_domains"],
                     "--internal-cidr": p["internal_cidrs"]},
                    f"`{command} --list` runs no query and reads no logs", "run it without --list")


def _refuse_data_with_input(data_dir, inputs) -> None:
    """``--data`` on the command line with ``--input``: the logs given are read, not the dataset, and
    ``--data`` then only finds a logpipe.toml (DATA/ or its parent); one where there is none would be
    ignored (a user who gave both believed the dataset read): refused, one line, exit 2."""
    from .settings import find_toml

    ctx = click.get_current_context()
    if inputs and ctx.get_parameter_source("data_dir") == click.core.ParameterSource.COMMANDLINE \
            and find_toml(data_dir) is None:
        _refuse_ignored({"--data": data_dir}, f"--input reads the logs given, not a dataset, and --data {data_dir} "
                        "holds no logpipe.toml to take settings from", "drop --input to read the dataset")


def _format_of(out_path: str | None, suffixes: dict[str, str], tty: str, default: str) -> str:
    """The output format -o leaves to --out's suffix: ``tty`` on a terminal, ``default`` into a pipe
    or a file of no suffix. A suffix of no format is refused, not written as ``default`` (``--out
    r.pdf`` held JSON)."""
    from .errors import UsageError

    if not out_path:
        return tty if sys.stdout.isatty() else default
    suffix = os.path.splitext(out_path)[1].lower()
    if suffix and suffix not in suffixes:
        raise UsageError(f"--out {out_path}: {suffix} is no format logpipe writes; end the name with "
                         f"{', '.join(sorted(suffixes))}, or give -o FORMAT")
    return suffixes.get(suffix, default)


_REPORT_SUFFIXES = {".html": "html", ".htm": "html", ".md": "markdown", ".txt": "text", ".json": "json"}
_OUT_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson",
                 ".md": "markdown", ".parquet": "parquet", ".txt": "table",
                 ".yaml": "yaml", ".yml": "yaml"}


@click.command()
@click.argument("name", required=False)
@click.option("--sql", "sql_text", metavar="SQL", help="Ad-hoc SQL (one SELECT); - reads it from stdin.")
@click.option("--sql-file", type=click.Path(exists=True, dir_okay=False, allow_dash=True), help="Read the SQL from FILE.")
@click.option("-p", "--param", "params", type=(str, str), multiple=True, metavar="KEY VALUE",
              help="Bind $KEY to VALUE (repeatable).")
@click.option("--list", "list_queries", is_flag=True,
              help="List the named queries with their titles and parameters; with a NAME, what that query does, "
                   "its parameters and what its columns mean.")
@data_option
@click.option("--input", "inputs", multiple=True, metavar="FILE",
              help="Query log FILE(s) parsed in memory instead of a dataset (repeatable; - for stdin).")
@format_options
@click.option("--queries", "query_dirs", multiple=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Also load named queries from DIR (repeatable; or $LOGPIPE_QUERIES).")
@pods_option
@click.option("-o", "--output", "fmt", type=click.Choice(QUERY_FORMATS),
              help="Output format (default: from --out's suffix; without --out, table on a terminal, else ndjson).")
@out_option("Write to FILE", PARQUET_DASH)
@click.option("--max-width", type=click.IntRange(min=2), default=None, metavar="N",
              help="Cut table cells to N columns (default 40).")
@view_settings_options
def query(name, sql_text, sql_file, params, list_queries, data_dir, inputs, format_string, format_file, grammar_file,
          query_dirs, pods_path, fmt, out_path, max_width, cluster_domain, mesh_domains, internal_cidrs):
    """Run SQL over the dataset: a named query (NAME, see --list) or --sql.

    \b
    Views: access_log (every row), traffic (every row, with where it went), egress (traffic leaving
    the mesh), rejects.
      logpipe query --sql "select upstream_cluster_host, count(*) from egress group by 1 order by 2 desc"
      logpipe query top_destinations -p limit 5 -o markdown
      logpipe query --input access.log --sql "select count(*) from egress"
      logpipe query service_entries --out service-entries.yaml   (review, then kubectl apply -f)
      logpipe query destinations --list   (what it does, its parameters, what its columns mean)
    """
    from .errors import UsageError

    if list_queries:
        if sql_text is not None or sql_file:
            raise UsageError("--list lists the named queries (NAME --list describes one), not SQL: "
                             "drop --sql/--sql-file")
        if name and (fmt or out_path):  # (they were ignored: the text on stdout, no file written)
            raise UsageError(f"`logpipe query {name} --list` describes the query in text, which -o/--out do not "
                             "change: drop them (they format the query's rows, and `logpipe query --list`'s table)")
        _refuse_with_list(f"logpipe query{' ' + name if name else ''}",  # (`query --list` is a table: --max-width cuts it)
                          {"-p": params, "--input": inputs, "--pods": pods_path, "--max-width": max_width if name else None})
    elif sum(x is not None for x in (name, sql_text, sql_file)) != 1:  # (`--sql ""`: given, empty, and said so)
        raise UsageError("give one query: a NAME (see `logpipe query --list`), --sql \"SELECT …\" or --sql-file FILE")
    elif not name:  # (--queries DIR loads named queries, which SQL of one's own does not read)
        _refuse_ignored({"--queries": query_dirs}, f"--{'sql' if sql_text is not None else 'sql-file'} runs the SQL given, "
                        "not a named query", "give a NAME of a query in DIR instead of the SQL")
    if "-" in inputs and (sql_text == "-" or sql_file == "-"):
        raise UsageError("stdin can carry the SQL or the log, not both: put one of them in a file")
    from .queries import find_query, list_table, load_queries, run_query

    if list_queries and name:
        _describe_query(find_query(name, load_queries(query_dirs)))
        return
    target = find_query(name, load_queries(query_dirs)) if name and not list_queries else None
    if fmt is None:  # (a named query's own `-- output:` where --out's suffix does not choose: service_entries)
        own = target.extra.get("output") if target is not None else None
        # (--max-width asks for a table's cells: into a pipe too, where ndjson is the default, it keeps
        # the table, as README's `… --max-width 50 | less` expects; it was refused there, exit 2)
        fmt = _format_of(out_path, _OUT_SUFFIXES, own or "table", own or ("table" if max_width is not None else "ndjson"))
        if fmt not in QUERY_FORMATS:
            raise UsageError(f"query {name} asks for output {fmt!r}, which logpipe does not write; give -o "
                             f"({', '.join(QUERY_FORMATS)})")
    if fmt == "parquet":
        from .render import parquet_out

        parquet_out(out_path)
    if fmt not in ("table", "markdown"):  # (the other formats write each value whole: csv, json, …)
        _refuse_ignored({"--max-width": max_width}, f"--max-width cuts table and markdown cells, and {fmt} writes "
                        "each value whole", "give -o table or -o markdown")

    if list_queries:
        listing = list_table(load_queries(query_dirs))
        _write_result(listing, fmt, out_path, max_width)
        from .render import DEFAULT_MAX_WIDTH, display_width

        # (a table cuts cells: the anomalies' thresholds, after their four window parameters, were
        # `since='' until='' baseline_start='' bas…` with no word of where to read them)
        if fmt == "table" and any(display_width(p) > (max_width or DEFAULT_MAX_WIDTH)
                                  for p in listing.column("parameters").to_pylist()):
            click.echo("logpipe: note: parameters cut to fit (--max-width N widens them); `logpipe query NAME --list` "
                       "shows one query's in full, with their help", err=True)
        return
    if not name:
        target = _sql_given(sql_text, sql_file)

    from . import reports
    from .db import connect, reading
    from .settings import load_settings

    _refuse_data_with_input(data_dir, inputs)
    settings = load_settings(data_dir, cluster_domain=cluster_domain, mesh_domains=mesh_domains,
                             internal_cidrs=internal_cidrs)
    pods = None
    if pods_path is not None:
        from .pods import load_pods

        pods = load_pods(pods_path)
    tables = _input_tables(inputs, format_string, format_file, grammar_file)
    with reading(*([] if inputs else [data_dir])):
        # (every query, named or one's own, has the clients' workloads as the reports do: source_workload,
        # by --pods, else by ztunnel's lines in the data, beside source_ip, the IP as logged)
        uses = [target if isinstance(target, str) else target.sql, reports.PODS_READS]
        if tables is not None:
            con = connect(settings=settings, tables=tables, sandbox=True, uses=uses)
        else:
            con = connect(data_dir, settings=settings, sandbox=True, uses=uses)
        try:
            reports.attach_sources(con, pods)
            table = run_query(con, target, dict(params))
        finally:
            con.close()
    _write_result(table, fmt, out_path, max_width)
    if name:
        _note_default_limit(target, dict(params), table.num_rows)
    if fmt == "yaml" and not any(table.column(0).drop_null().to_pylist()):  # (`kubectl apply -f` of it: "no objects")
        click.echo("logpipe: note: the query gave no YAML document" + (f", so {out_path} is empty" if out_path else "")
                   + (" (no destination reached through PassthroughCluster in the window)" if name == "service_entries"
                      else ""), err=True)


def _sql_given(sql_text: str | None, sql_file: str | None) -> str:
    """The SQL of ``--sql`` (``-``: stdin) or ``--sql-file`` (``-``: stdin too), read as UTF-8 (a
    byte-order mark dropped). SQL that is not UTF-8 (a file saved as Latin-1 or UTF-16) is a bad option,
    one line, exit 2: it was an internal error, a UnicodeDecodeError of the file, or DuckDB's TypeError
    at the surrogates that an argument's or stdin's bytes decode to."""
    from .errors import UsageError

    if sql_file is None and sql_text != "-":
        where, data = "--sql", os.fsencode(sql_text)  # (the argument's own bytes, surrogates undone)
    elif "-" in (sql_file, sql_text):
        where, data = "the SQL on stdin", sys.stdin.buffer.read()
    else:
        where = f"--sql-file {sql_file}"
        with open(sql_file, "rb") as f:
            data = f.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UsageError(f"{where} is not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start}); "
                         "logpipe reads SQL as UTF-8 (iconv -t UTF-8 converts it)") from None


def _note_default_limit(target, params: dict, rows: int) -> None:
    """A named query whose ``limit`` parameter, left at its default, cut its answer says so on stderr
    (``denied`` gave 50 of a week's 94 rows, to a csv file too, with no word)."""
    from .queries import bind_params

    if "limit" not in target.params or "limit" in params:
        return
    limit = bind_params(target, {}).get("limit")
    if isinstance(limit, int) and 0 < limit <= rows:
        click.echo(f"logpipe: note: {target.name} stopped at {limit} rows, its default limit; there may be more: "
                   "-p limit N shows up to N", err=True)


def _input_tables(inputs, format_string, format_file, grammar_file) -> dict | None:
    """``--input`` logs parsed in memory (with the mesh's own format when given), their summary on
    stderr: the tables for ``db.connect(tables=…)``; None without ``--input`` (the dataset is read)."""
    from .errors import InputError, UsageError

    given = next((f"--{n}" for n, v in (("format-string", format_string), ("format-file", format_file),
                                       ("grammar", grammar_file)) if v is not None), None)
    if not inputs:
        if given:
            raise UsageError(f"{given} reads --input logs; a dataset's rows were parsed when ingested (with the "
                             "format given to `logpipe ingest`, which the dataset remembers)")
        return None
    from .pipeline import parse_to_tables

    records, rejects, counts = parse_to_tables(list(inputs), _format_parser(format_string, format_file, grammar_file))
    click.echo(counts.summary(), err=True)
    # Access lines of which none parsed are logs this run cannot read, an error (exit 1) as ingest's
    # over --max-reject-ratio is: they gave an empty answer, exit 0, and a nightly job wrote an empty
    # report each night. Logs of no access line (a quiet pod's, noise alone) are an empty answer, exit 0.
    if counts.malformed and not counts.parsed:
        raise InputError(f"no line of the --input logs parsed ({counts.malformed} malformed); "
                         + ("check the format given (`logpipe parse FILE` with it shows each line's reason)" if given else
                            "if they are your mesh's own format, give it with --format-string or --format-file "
                            "(`logpipe parse FILE` shows each line's reason)"))
    return {"records": records, "rejects": rejects}


TTY_ROWS = 200  # rows a query's table shows on a terminal


def _write_result(table, fmt: str, out_path: str | None, max_width: int | None) -> None:
    from . import render

    if fmt == "parquet":
        render.write_parquet(table, out_path)
        return
    if out_path:
        with render.atomic_file(out_path, "x", encoding="utf-8", newline="") as out:
            render.render_table(table, fmt, out, max_width=max_width)
    else:
        more = 0
        if fmt == "table" and table.num_rows > TTY_ROWS and sys.stdout.isatty():  # (not a terminal flood)
            more, table = table.num_rows - TTY_ROWS, table.slice(0, TTY_ROWS)
        try:
            render.render_table(table, fmt, sys.stdout, max_width=max_width)
            sys.stdout.flush()
        except BrokenPipeError:  # `| head` went away: a quiet, successful exit (click would exit 1)
            exits.quiet_broken_pipe()
        if more:
            click.echo(f"logpipe: … {more} more rows not shown on the terminal (LIMIT them in the SQL, or see "
                       "them all with -o csv | less, or --out FILE)", err=True)
