# make demo | make test | make bench: each creates .venv and installs logpipe when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   := logpipe-data

.PHONY: demo test bench bench-ab clean compiled

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,report]'
	touch $(STAMP)

# logpipe's modules compiled to bytecode, as `pip install` does for a wheel: an editable install
# leaves that to the first import, which does not write it when PYTHONDONTWRITEBYTECODE is set (as
# on this machine), and then every process compiles every module again (~0.08 s each).
compiled: $(STAMP)
	$(BIN)/python -m compileall -q logpipe

# sample_logs/ holds deliberately malformed files (malformed.log, …): the demo keeps them, so it
# lifts --max-reject-ratio (default 0.1 would fail those inputs, exit 1) and shows a few rejects.
demo: compiled
	rm -rf $(DATA)
	$(BIN)/logpipe ingest sample_logs/ --data $(DATA) --max-reject-ratio 1 --max-warnings 5
	rm -rf logpipe-scenario
	$(BIN)/logpipe ingest sample_logs/scenario/ --data logpipe-scenario
	$(BIN)/logpipe report inventory --data logpipe-scenario -o text
	$(BIN)/logpipe report anomalies --data logpipe-scenario -o text
	$(BIN)/logpipe report anomalies --data logpipe-scenario -o html --out report.html

# Two test processes (pytest-xdist): ~4½–6½ minutes on this two-core machine, by the window (README Tests).
# --dist loadfile: a file's tests in one process, so its module fixtures (datasets, parsers, report
# connections) are built once, not once in each (the report and query files, 11 of them: 82–92 s with
# the default --dist load, 67–75 s with loadfile, worksteal 77 s); xdist hands out the files with the
# most tests first, so the two finish together (the last files are small ones).
test: compiled
	$(BIN)/python -m pytest -n 2 --dist loadfile

# make bench installs lnav and goaccess with apt-get when missing (BENCH_INSTALL=0 skips them).
bench: compiled
	BENCH_INSTALL=$${BENCH_INSTALL:-1} $(BIN)/python bench/run.py

# make bench-ab REF=<commit>: this tree's ingest against REF's, in alternating pairs (bench/ab.py).
bench-ab: compiled
	$(BIN)/python bench/ab.py $(REF)

clean:
	rm -rf $(VENV) $(DATA) logpipe-scenario report.html logpipe/__pycache__
