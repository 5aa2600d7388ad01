"""`tail -f` of several files: its header (noise.lark's ``tail_header``, ``==> FILE <==``) says which
file the lines after it come from, up to the next header. When FILE is a node's container log
(``collectors.node_log_names``: ``/var/log/pods/NAMESPACE_POD_UID/CONTAINER/0.log``), it names the
pod and container of those lines, which a CRI line does not name itself:

    tail -F /var/log/pods/*/istio-proxy/0.log | logpipe stream

Only an input that starts with a header (tail's output of several files does) is read so: its lines
are numbered and cut into batches as any input's, so a header names the lines after it in its batch,
and the header in effect where a batch starts is the reader's to carry (``Parser.parse_series(header=)``,
"" at the input's start, None for any other input; ``ParsedBatch.header``): a sequential reader
passes each batch's on to the next, the workers' byte ranges get theirs from the parent's reading
of the file (``sources.iter_file_ranges``), and a file read on from where an earlier ingest stopped
gets the one before that point (``header_at``). The header line itself is noise, as before.

`kubectl cluster-info dump` is read so too (noise.lark's ``kubectl_log_mark``): on stdout, and in
``--output-directory``'s ``NAMESPACE/POD/logs.txt``, it writes ``==== START logs for container C of pod
NAMESPACE/POD ====`` before a container's log and ``==== END logs for container … ====`` after it
(kubernetes/kubectl pkg/cmd/clusterinfo/clusterinfo_dump.go), so its marks are headers: a START names
the pod and container of the lines after it, an END names none. An input that starts with a START, or
with the dump's first document (``DUMP_START``: its nodes, indented JSON), is read so; there the lines
under no START (before the first, after an END) are the dump's resource JSON, noise (``RESOURCES``).
The marks, like tail's headers, are noise rejects (their own reasons), so a dump's every line is a row,
a reject or a blank one. An END that kubectl wrote onto a log's last line (no newline: ``GLUED_END``)
is cut off it and ends the section after it. A line that a section, a tail header's file or a bundle's
path names the container of, a container not a proxy's, is noise where no layout reads it (``PROXIES``,
``TailHeads.quiet``): most of a whole cluster's dump.

The readers' part (bytes: ``first_header``, ``last_header``, ``header_at``) imports no polars: the
parent reads inputs before its workers start.
"""
from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

from .unpack import detect_compression

if TYPE_CHECKING:
    import polars as pl

    from .sources import Input

# What a reader of bytes looks for (the grammar's start of a header, TailHeads checks it): an input
# is looked at only when it starts with one, as tail's output of several files does, or with
# `kubectl cluster-info dump`'s first document (DUMP_START).
LOOK = b"==> "
START_LOOK, END_LOOK = b"==== START logs for container ", b"==== END logs for container "
LOOKS = (LOOK, START_LOOK, END_LOOK)
# The dump's first document on stdout: its nodes, as kubectl's JSON printer writes them ({, then
# "kind": "NodeList" first, indented); its --output-directory's nodes.json starts so too, but holds no
# START (sources.document_of leaves such a file out).
DUMP_START = re.compile(rb'[ \t\r\n]*\{[ \t\r\n]*"kind"[ \t]*:[ \t]*"NodeList"')
HEADER_SCAN = 1 << 20
# kubectl writes a container's log as it gets it, then its END mark: a log that does not end in a
# newline has the mark on its last line ("…last line==== END logs for container C of pod NS/POD ====");
# the line is the container's last, the mark ends the section there (TailHeads.fill, _last_header_start).
GLUED_END = re.compile(rb"==== END logs for container [a-z0-9][a-z0-9.-]* of pod [a-z0-9][a-z0-9.-]*/[a-z0-9][a-z0-9.-]* ====\Z")
# The containers whose log is a proxy's access log: Istio names its proxy's container istio-proxy in
# a sidecar, a gateway and a waypoint (older istioctl installs' gateways: their deployment's name),
# ztunnel's is istio-proxy or ztunnel; Envoy Gateway's and Contour's Envoy is envoy. Another
# container's lines that no layout reads (coredns' "[INFO] 10.244.0.5:41234 - …", an app's own log)
# are noise in a section, a tail header's file or a bundle's path that names it (``TailHeads.quiet``),
# not malformed: a whole-cluster dump was refused over --max-reject-ratio for them. A container of
# another name whose lines parse in the batch is a proxy too: its broken lines stay malformed.
PROXIES = frozenset({"istio-proxy", "istio-ingressgateway", "istio-egressgateway", "ztunnel", "envoy"})
# The reason of such a line (noise)
OTHER_CONTAINER = "a line of container {}'s log (not a proxy's: no layout reads it), not an access line"
# The reason of a dump's line under no START (noise: its nodes, events, pods, … as indented JSON)
RESOURCES = ("kubectl cluster-info dump's resource JSON (outside its ==== START/END logs for container ==== "
             "sections), not an access line")


def first_header(body: "bytes | bytearray") -> str | None:
    """"" when ``body``, an input's first bytes, starts like `tail -f`'s header or `kubectl
    cluster-info dump`'s output (then its headers name the lines after them: ``TailHeads``), else None."""
    head = bytes(body[:len(START_LOOK)])
    return "" if head.startswith(LOOK) or head == START_LOOK or DUMP_START.match(body) else None


def last_header(body: "bytes | bytearray", end: int | None = None) -> str | None:
    """The last line of ``body[:end]`` that starts like a header (``LOOKS``), or None."""
    end = len(body) if end is None else end
    k = _last_header_start(body, end)
    if k is None:
        return None
    stop = body.find(b"\n", k, end)
    return bytes(body[k:stop if stop >= 0 else end]).rstrip(b"\r").decode("utf-8", "replace")


def _last_header_start(body: "bytes | bytearray", end: int) -> int | None:
    found = None
    for look in LOOKS:
        at = end
        while (k := body.rfind(look, 0, at)) >= 0:
            if k == 0 or body[k - 1] == 0x0A or look == END_LOOK and _ends_line(body, k, end):
                found = k if found is None else max(found, k)
                break
            at = k
    return found


def _ends_line(body: "bytes | bytearray", k: int, end: int) -> bool:
    """Whether the END mark at ``body[k:]`` runs to its line's end (``GLUED_END``: kubectl wrote it
    onto a container's last line, one without a newline)."""
    stop = body.find(b"\n", k, end)
    return GLUED_END.match(bytes(body[k:stop if stop >= 0 else end]).rstrip(b"\r")) is not None


def header_at(inp: "Input", offset: int) -> str | None:
    """The header line in effect at ``offset`` of a plain file read with its headers (``first_header``:
    the last before it; "" for none: a dump's resource JSON before its first START), or None (at the
    start too: the first bytes tell, ``first_header``): where a read on from ``offset`` starts (ingest
    of a grown file)."""
    if offset <= 0 or inp.is_stream or detect_compression(_head(inp.path)) != "plain":
        return None
    with open(inp.path, "rb") as f:
        if first_header(f.read(256)) is None:
            return None
        pos = offset
        while pos > 0:  # back a block at a time: the lines that start in [lo, pos)
            lo = max(0, pos - HEADER_SCAN)
            base = max(0, lo - 1)  # (the byte before tells whether a line starts at lo)
            f.seek(base)
            block = f.read(min(offset, pos + len(START_LOOK) - 1) - base)  # (a look that starts before pos, whole)
            if lo:
                block = (b"\n" if block[:1] == b"\n" else b"x") + block[1:]
            k = _last_header_start(block, len(block))
            while k is not None and base + k >= pos:  # (one the later block holds)
                k = _last_header_start(block, k)
            if k is not None:
                f.seek(base + k)
                return f.readline().rstrip(b"\r\n").decode("utf-8", "replace")
            pos = lo
    return ""


def _head(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(64)


class TailHeads:
    """The headers of ``noise`` (a Rulebook with ``tail_header`` and ``kubectl_log_mark``): which
    lines they name."""

    def __init__(self, noise) -> None:
        self.rx = noise.regex("tail_header")
        self.head, self.tail = _literal_ends(noise, "tail_header")
        self.mark_rx = noise.regex("kubectl_log_mark")
        assert LOOK.decode() == self.head, "the readers' look for a header is the grammar's start of one"
        assert all(re.match(self.mark_rx, f"{m.decode()}c of pod n/p ====") for m in LOOKS[1:]), \
            "the readers' looks for a dump's marks are the grammar's start of one"
        assert GLUED_END.search(b"x==== END logs for container c-1 of pod n/p.2 ====") \
            and not GLUED_END.search(b"==== END logs for container C of pod n/p ===="), "GLUED_END is the grammar's END mark"

    def file(self, line: str | None) -> str | None:
        """The file header ``line`` names, or None when it is no header (or None)."""
        import polars as pl

        if line is None or not line.startswith(self.head) or not pl.Series([line]).str.contains(self.rx)[0]:
            return None
        return line[len(self.head):len(line) - len(self.tail)]

    def _section(self, mark: str) -> "tuple[tuple[str, str] | None, bool]":
        """The pod and container the header ``mark`` names (or None), and whether the lines under it
        are a dump's resource JSON: under no header yet ("") or after a dump's END."""
        if mark == "" or mark.startswith(END_LOOK.decode()):
            return None, True
        if mark.startswith(START_LOOK.decode()):  # (its words, as kubectl_log_mark took them: no space in a name)
            words = mark.split(" ")
            return (words[8].split("/", 1)[1], words[5]), False
        file = self.file(mark)
        return (_names(file) if file is not None else None), False

    def fill(self, df: "pl.DataFrame", header: str, rejects: list[dict]) -> "tuple[pl.DataFrame, str]":
        """``df``'s lines (``body``) with the pod and container their header names where their
        prefix named none, but those under no header (a dump's resource JSON: ``RESOURCES``), which
        become noise ``rejects``; ``header``: the header line in effect before the first line ("":
        none yet; a reader's look, so the grammar is asked here). Returns the lines and the header
        line in effect after them."""
        import polars as pl

        df, glued = self._unglue(df)
        body = df["body"]
        is_head = body.str.starts_with(self.head) | body.str.starts_with("==== ")
        if is_head.any():
            is_head = is_head & (body.str.contains(self.rx) | body.str.contains(self.mark_rx))
        if glued is not None:  # (its line is its section's last: the mark is in effect after it)
            after = pl.select(pl.when(is_head).then(body).when(glued.is_not_null()).then(glued)
                              .forward_fill().fill_null(header)).to_series()
            marks = pl.select(pl.when(glued.is_not_null()).then(after.shift(1).fill_null(header))
                              .otherwise(after)).to_series()
            return self._fill_marks(df, is_head, marks, rejects), after[-1]
        if not is_head.any():
            names, outside = self._section(header)
            if outside:
                return _resources(df, rejects), header
            if names is None:
                return df, header
            return df.with_columns(pl.col("pod").fill_null(names[0]), pl.col("container").fill_null(names[1])), header
        marks = pl.select(pl.when(is_head).then(body).forward_fill().fill_null(header)).to_series()
        return self._fill_marks(df, is_head, marks, rejects), body.filter(is_head)[-1]

    def _fill_marks(self, df: "pl.DataFrame", is_head: "pl.Series", marks: "pl.Series",
                    rejects: list[dict]) -> "pl.DataFrame":
        """``fill``'s lines, each under its header line ``marks``."""
        sections = {m: self._section(m) for m in marks.unique().to_list()}
        outside = ~is_head & marks.is_in([m for m, (_, out) in sections.items() if out])
        if outside.any():
            df, marks = _resources(df, rejects, outside), marks.filter(~outside)
        return _named(df, marks, {m: names for m, (names, _) in sections.items()})

    def _unglue(self, df: "pl.DataFrame") -> "tuple[pl.DataFrame, pl.Series | None]":
        """``df`` with the END mark kubectl wrote onto a line (``GLUED_END``) cut off its line and body,
        and the marks cut off (null for the other lines), or None when no line holds one."""
        import polars as pl

        body = df["body"]
        end = END_LOOK.decode()
        maybe = body.str.contains(end, literal=True) & ~body.str.starts_with(end)
        if not maybe.any():
            return df, None
        rx = f"{self.mark_rx.removesuffix('$')[1:]}$"  # (the grammar's mark, at the line's end)
        at = pl.select(pl.when(maybe).then(body.str.find(rx))).to_series()
        if at.is_null().all():
            return df, None
        glued = pl.select(pl.when(at.is_not_null()).then(body.str.slice(at))).to_series()
        at = pl.select(pl.when(glued.str.starts_with(end)).then(at)).to_series()  # (an END, not a START)
        glued = pl.select(pl.when(at.is_not_null()).then(glued)).to_series()
        if at.is_null().all():
            return df, None
        cut = [pl.when(at.is_not_null()).then(pl.col(c).str.slice(0, pl.col(c).str.len_chars() - glued.str.len_chars()))
               .otherwise(pl.col(c)).alias(c) for c in ("line", "body")]
        return df.with_columns(cut), glued

    def quiet(self, rejects: list[dict], df: "pl.DataFrame", records, source: str) -> None:
        """The malformed ``rejects`` of ``df``'s lines that a section, a tail header or the input's path
        (``source``) says are of a container not a proxy's (``PROXIES``; not one whose lines are
        ``records``' rows either) become noise (``OTHER_CONTAINER``)."""
        import polars as pl

        from .records import _reject

        bad = {r["line_number"] for r in rejects if r["class"] == "malformed"}
        if not bad:
            return
        named = _names(source) or (None, None)
        lines = df.select("line_number", *(pl.coalesce(c, pl.lit(n, pl.String)) for c, n in zip(("pod", "container"), named)))
        lines = lines.filter(pl.col("line_number").is_in(list(bad)) & pl.col("container").is_not_null()
                             & ~pl.col("container").is_in(list(PROXIES)))
        if not lines.height:
            return
        parsed = set(zip(records.column("pod").to_pylist(), records.column("container").to_pylist()))
        which = {ln: c for ln, p, c in lines.iter_rows() if (p, c) not in parsed}
        for k, r in enumerate(rejects):
            if r["class"] == "malformed" and r["line_number"] in which:
                rejects[k] = _reject(r["line_number"], r["raw"], OTHER_CONTAINER.format(which[r["line_number"]]), "noise")


def _resources(df: "pl.DataFrame", rejects: list[dict], which: "pl.Series | None" = None) -> "pl.DataFrame":
    """``df`` but its lines ``which`` (all: None), a dump's resource JSON, each a noise reject."""
    from .records import _reject

    taken = df if which is None else df.filter(which)
    rejects.extend(_reject(ln, raw, RESOURCES, "noise") for ln, raw in taken.select("line_number", "raw").iter_rows())
    return df.clear() if which is None else df.filter(~which)


def _named(df: "pl.DataFrame", marks: "pl.Series", named: "dict[str, tuple[str, str] | None]") -> "pl.DataFrame":
    """``df`` with each line's pod and container those its header (``marks``) names (``named``),
    where it had none."""
    import polars as pl

    keys = [m for m, n in named.items() if n is not None]
    if not keys:
        return df
    pods = pl.Series([named[m][0] for m in keys], dtype=pl.String)
    containers = pl.Series([named[m][1] for m in keys], dtype=pl.String)
    return df.with_columns(
        pl.coalesce(pl.col("pod"), marks.replace_strict(keys, pods, default=None)).alias("pod"),
        pl.coalesce(pl.col("container"), marks.replace_strict(keys, containers, default=None)).alias("container"),
    )


def _names(path: str) -> "tuple[str, str] | None":
    from .collectors import node_log_names  # (polars: a lane's)

    return node_log_names(path)


def _literal_ends(book, rule: str) -> tuple[str, str]:
    """The literal texts rule ``rule`` (one expansion) starts and ends with."""
    (expansion,) = book._ebnf[rule].children
    ends = []
    for item in (expansion.children[0], expansion.children[-1]):
        lit = item.children[0]
        if getattr(lit, "data", None) != "literal" or not str(lit.children[0]).startswith('"'):
            raise ValueError(f"rule {rule} must start and end with a literal text")
        ends.append(ast.literal_eval(str(lit.children[0])))
    return ends[0], ends[1]
