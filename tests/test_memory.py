"""DuckDB's memory within LOGPIPE_MEMORY (db._bound_memory): what a report or query that needs more
says (errors.out_of_memory)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from logpipe.cli import cli

INCIDENT = Path(__file__).resolve().parent.parent / "sample_logs" / "scenario" / "incident-day.log"
ADVICE = "DuckDB ran out of memory within LOGPIPE_MEMORY=8M; give it more, e.g. LOGPIPE_MEMORY=4G"


@pytest.fixture(scope="module")
def incident(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("memory") / "d"
    assert CliRunner().invoke(cli, ["ingest", str(INCIDENT), "--data", str(out)]).exit_code == 0
    return out


def run_main(args, capsys, monkeypatch):
    from logpipe.cli import main

    monkeypatch.setattr(sys, "argv", ["logpipe", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize("args, said", [
    (["report", "anomalies", "-o", "json"], ADVICE),  # (its table of rows: DuckDB's error, raised as it is)
    (["query", "top_destinations", "-o", "json"], f"query top_destinations: {ADVICE}"),  # (run_query's QueryError)
])
def test_out_of_memory_is_one_line_that_says_to_raise_logpipe_memory(incident, args, said, capsys, monkeypatch):
    """8M leaves DuckDB 4 MiB (the scenario's incident day needs more than 12 MiB): DuckDB's "Out of
    Memory Error" (six lines naming `SET memory_limit`, as an internal error; a query's with the
    hint of a wrong name) is one line naming LOGPIPE_MEMORY, exit 1."""
    monkeypatch.setenv("LOGPIPE_MEMORY", "8M")
    code, err = run_main([*args, "--data", str(incident)], capsys, monkeypatch)
    assert (code, err.splitlines()) == (1, [f"logpipe: error: {said}"])
