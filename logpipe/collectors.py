"""What collectors and container runtimes put around an access line, and what it says of where the
line came from (``parse.Parser.parse_series`` calls these before and after the layouts):

* prefixes (``prefix.lark``): ``kubectl logs --prefix/--timestamps``, stern, docker compose, Loki's
  ``logcli query`` (``<time> {<labels>} ``), a node's container log file in the CRI format
  containerd and CRI-O write (``<time> stdout F ``), and Fluent Bit's and Fluentd's file outputs
  and Fluentd's stdout (``<tag>: [<time>, ``, ``<time>\t<tag>\t``, ``<time> <tag>: ``: a record of a line
  after them, ``envelopes.py``'s);
  their pod, container and time become the ``pod``, ``container`` and ``received_at`` columns, and
  a prefix with nothing after it is a blank line;
* kubelet's file names (``/var/log/pods/<namespace>_<pod>_<uid>/<container>/0.log``): the pod and
  container of lines that name none.

What a container runtime itself writes (docker's json-file entries, the parts of a line over 16 KiB
in either runtime's file) is ``logpipe/runtimes.py``'s; log collectors' JSON records of a line
(Fluent Bit, Vector, Cloud Logging, Splunk, …) are ``logpipe/envelopes.py``'s.
"""
from __future__ import annotations

import functools
import re

import polars as pl

from . import runtimes as _runtimes
from . import subfields as _subfields
from .otlp import ACCESS_START
from .runtimes import starts_with

PROVENANCE = ("pod", "container", "received_at")
_UNNAMED = re.compile(r"\(\?P<\w+>")  # a named group's opening


class Collectors:
    """The regexes of ``prefix.lark`` (its ``Rulebook``), compiled once for a parser; ``barrier``:
    the regex of a line no split line's parts are joined across (``runtimes.CriParts``)."""

    def __init__(self, book, barrier: str | None = None) -> None:
        prefix = book.compile("line_prefix")
        # The prefix, then a body that does not start with a space (prefix.lark's header says why).
        self.prefix_rx = f"^(?P<__prefix>{prefix.pattern})[^ ]"
        self.groups = prefix.groups
        # A prefix and nothing more (kubectl's, the CRI format's: a blank line of the container's) is blank.
        self.blank_rx = "^" + book.compile("blank_prefix").pattern + r"\s*$"
        # A part of a line the container runtime split (CRI tag P): joined with the parts after it,
        # or, when its last part is not in the batch, a reject (``runtimes.CriParts``).
        self.cri = _runtimes.CriParts(book, barrier)
        self.time_rx = re.compile("^" + book.compile("received_at").pattern + "$")  # (a record's time: envelopes.py)
        # The OpenTelemetry Collector's debug exporter's "Body: Str(" (prefix.lark's otel_prefix), also
        # after another prefix (kubectl logs --timestamps of the collector, its node file); it closes
        # the body with ")", on the body's line when the body does not end with a newline.
        otel = book.compile("otel_prefix").pattern
        # Its default verbosity's first record of an export, after its logger's "<time>\t<level>\t"
        # (prefix.lark's zap_prefix): a prefix only before an access line's start (otlp.ACCESS_START: "["
        # and a digit, or "{"; ztunnel's own lines start the same way: check_rx), first or after another
        # prefix. After one, both are found by a search of the prefixed lines for "Body: " or a tab (zap's
        # separator) before an access line's start: ~2.6 ms a 52k-line batch, a prefixed batch's only cost.
        zap = book.compile("zap_prefix")
        start = f"(?:{ACCESS_START.pattern})"  # (how an access line starts)
        self.otel_head, self.otel_any = f"^({otel})", f"{otel}|\\t{start}"
        self.zap_head, self.zap_time = f"^(?P<__zap>{zap.pattern}){start}", zap.groups["received_at"]
        self.closed_rx = f"^(?:{prefix.pattern})?{book.compile('otel_typed').pattern}.*\\)$"  # ("Str(", not older ones)
        # Each kind of prefix alone (line_prefix's alternatives, in order), for a batch whose prefixed
        # lines are all of one kind: its regex captures ~3x faster than all of them (split_prefix).
        names = _alternatives(book, "line_prefix")
        self.kinds = [(f"^(?P<__prefix>{kind.pattern})[^ ]", kind.groups) for kind in map(book.compile, names)]
        # Which lines have a prefix, each kind with what may follow it (one DFA walk a line, as
        # runtimes.starts_with makes it, so its groups go unnamed): a zap prefix only an access line,
        # Fluent Bit's and Fluentd's file outputs' and Fluentd's stdout's only a record (their JSON:
        # envelopes.py reads it).
        follow = {"zap_prefix": start, "fluent_bit_prefix": r"\{", "fluentd_prefix": r"\{", "fluentd_stdout_prefix": r"\{"}
        # Fluent Bit's closes its event with "]" after the record: taken off the body (split_prefix);
        # bracket_kind: the regex of a batch of that kind alone (_one_kind).
        closing = "fluent_bit_prefix"
        self.bracket_kind = self.kinds[names.index(closing)][0] if closing in names else None
        self.bracket_rx = "^" + book.compile(closing).pattern + "$" if closing in names else None
        # stern's prefix with no time after it: pod and container (and namespace), words and spaces, as
        # much as another program's line starts with ("listening on :15000"): ``bare_words``.
        self.words_rx = "^(?:" + _UNNAMED.sub("(?:", book.compile("stern_prefix").pattern) + ")$"
        self.check_rx = "^(?:" + "|".join(f"(?:{_UNNAMED.sub('(?:', book.compile(n).pattern)}){follow.get(n, '[^ ]')}"
                                          for n in names) + ")" if names else self.prefix_rx

    def split_prefix(self, df: pl.DataFrame, join: bool = True) -> tuple[pl.DataFrame, tuple[int, ...]]:
        """``df``'s lines (``line``) with their ``body`` after any prefix, its length, and the
        prefix's pod, container and time (null where it has none); the parts of a line the runtime
        split are joined first (``runtimes.CriParts.join``: the line numbers of the parts joined to
        an earlier one), unless not to ``join``."""
        has, marked = self._prefixed(df["line"])
        if has is None:
            return df.with_columns(
                pl.col("line").alias("body"),
                pl.lit(0, dtype=pl.Int64).alias("prefix_len"),
                *(pl.lit(None, dtype=pl.String).alias(c) for c in PROVENANCE),
            ), ()
        joined: tuple[int, ...] = ()
        if join:
            df, joined = self.cri.join(df)  # (a part's prefix is a prefix too: it starts with a time)
        if joined:
            has, marked = self._prefixed(df["line"])
        whole = bool(has.all())
        regex, groups = self._one_kind(df["line"] if whole else df["line"].filter(has))
        # (the lines without a prefix are not read: ztunnel's would read as zap's prefix, whatever follows)
        lines = df["line"] if whole else df.select(pl.when(has).then(pl.col("line"))).to_series()
        pre = lines.str.extract_groups(regex).struct.unnest()
        outs = [_subfields.coalesce(g).alias(out) for out, g in groups.items()]
        pre = pre.select(pl.col("__prefix"), *outs)
        for c in PROVENANCE:
            if c not in pre.columns:
                pre = pre.with_columns(pl.lit(None, dtype=pl.String).alias(c))
        plen = pre["__prefix"].str.len_chars().fill_null(0).cast(pl.Int64)
        pod, container = pre["pod"], pre["container"]
        body = pl.col("line").str.slice(plen)
        # The debug exporter's lines (the rows the search found, each read alone): its body after another
        # prefix (the pod and container that one names are the collector's, not the line's; its time
        # is when the collector printed it), and the ")" that closes a body on its line.
        received_at = pre["received_at"]
        if marked is not None:
            n, some = df.height, df["line"].gather(marked)
            rest = some.str.slice(plen.gather(marked))
            zap = rest.str.extract_groups(self.zap_head).struct.unnest()
            inner = (rest.str.extract(self.otel_head, 1).str.len_chars().fill_null(0).cast(pl.Int64)
                     + zap["__zap"].str.len_chars().fill_null(0).cast(pl.Int64))
            if (inner > 0).any():
                inner = pl.repeat(0, n, dtype=pl.Int64, eager=True).scatter(marked, inner)
                # (the other prefix's time first, as for "Body: Str(": when the line was written)
                zap_time = pl.select(pl.coalesce(*(zap[g] for g in self.zap_time))).to_series()
                zap_time = pl.repeat(None, n, dtype=pl.String, eager=True).scatter(marked, zap_time)
                received_at = pl.select(pl.coalesce(received_at, zap_time)).to_series()
                plen = plen + inner
                body = pl.col("line").str.slice(plen)
                pod, container = (pl.select(pl.when(inner > 0).then(None).otherwise(x)).to_series() for x in (pod, container))
            closed = some.str.contains(self.closed_rx)
            if closed.any():
                closed = pl.repeat(False, n, eager=True).scatter(marked, closed)
                body = pl.when(closed).then(body.str.strip_suffix(")")).otherwise(body)
        if self.bracket_rx is not None and regex in (self.prefix_rx, self.bracket_kind):
            # (Fluent Bit's "<tag>: [<time>, <record>]": the "]" after the record off; a batch of that
            # kind alone, every line's, else those whose prefix is that kind's: the prefixes that end as
            # its does, ", ", checked by its regex; on a 52k-line batch of CRI and bare times 0.3 ms, where
            # the regex on every prefix took 1.4 ms, 2% of split_prefix's 60)
            bracketed = None
            if regex != self.bracket_kind:
                bracketed = pre["__prefix"].str.ends_with(", ")
                if bracketed.any():
                    bracketed = bracketed & pre["__prefix"].str.contains(self.bracket_rx)
            if bracketed is None:
                body = body.str.strip_suffix("]")
            elif bracketed.any():
                body = pl.when(bracketed).then(body.str.strip_suffix("]")).otherwise(body)
        return df.with_columns(
            body.alias("body"),
            plen.alias("prefix_len"),
            pod.alias("pod"), container.alias("container"), received_at.alias("received_at"),
        ), joined

    def bare_words(self, df: pl.DataFrame) -> pl.Series:
        """Which lines of ``df`` (split: ``split_prefix``) had a prefix of words alone split off, stern's
        pod and container with no time (``words_rx``): another program's line starts so too, so where
        what follows it starts like no access line the words may be the line's own (exact.take_lines)."""
        prefix = pl.col("line").str.slice(0, pl.col("line").str.len_chars() - pl.col("body").str.len_chars())
        words = (pl.col("prefix_len") > 0) & pl.col("received_at").is_null() & prefix.str.contains(self.words_rx)
        return df.select(words.fill_null(False)).to_series()

    def _prefixed(self, lines: pl.Series) -> tuple:
        """Which ``lines`` have a prefix (``check_rx``; None: none has), and the rows among them that may
        hold the debug exporter's text after another prefix (a search of those), or None."""
        has = starts_with(lines, self.check_rx)
        if has is None or not has.any():
            return None, None
        whole = bool(has.all())
        prefixed = None if whole else has.arg_true()
        marks = (lines if whole else lines.gather(prefixed)).str.contains(self.otel_any)
        marks = marks.arg_true() if whole else prefixed.filter(marks)
        return has, marks if marks.len() else None

    def split_held(self, held: pl.DataFrame) -> tuple[pl.DataFrame, int]:
        """The lines collectors' records held (``envelope_lines``) with their prefixes split off as
        a line's are (``stern -o json --timestamps``; a node file's line an agent read without its
        CRI parser), the record's pod, container and time before the prefix's; and how many were a
        prefix and nothing more (blank, dropped). A part of a split line stays as it is (a reject)."""
        if not held.height:
            return held, 0
        blank = held["body"].str.contains(self.blank_rx)
        if blank.any():
            held = held.filter(~blank)
        has = starts_with(held["body"], self.prefix_rx)
        if has is None or not has.any():
            return held, int(blank.sum())
        split, _ = self.split_prefix(held.select("body").rename({"body": "line"}), join=False)
        return held.with_columns(split["body"], *(pl.coalesce(held[c], split[c]).alias(c) for c in PROVENANCE)), \
            int(blank.sum())

    def _one_kind(self, prefixed: pl.Series) -> tuple[str, dict]:
        """The regex and groups that read the prefixes of ``prefixed`` (lines that have one): those of
        the one kind every line has, when no earlier kind matches any of them (so that each line's
        reading is the one the whole regex, whose first matching alternative wins, gives); else the
        whole regex's. A check costs ~0.1–0.2 µs a prefixed line (cut.c walks it to its end); the
        capture it saves ~0.5 µs."""
        for regex, groups in self.kinds:
            hit = starts_with(prefixed, regex)
            if hit is None or not hit.any():
                continue
            return (regex, groups) if hit.all() else (self.prefix_rx, self.groups)
        return self.prefix_rx, self.groups

    def drop_blank_json(self, df: pl.DataFrame, is_json: pl.Series) -> tuple[pl.DataFrame, pl.Series, int]:
        """``drop_blank`` of the lines whose body looks like JSON after a prefix (``is_json``): a
        blank line of logcli's is its labels and nothing more, which a shorter prefix (kubectl's
        time) leaves as a body ``{…}``; and the rest of ``is_json``."""
        maybe = is_json & (df["prefix_len"] > 0)
        if not maybe.any():
            return df, is_json, 0
        blank = maybe & df["line"].str.contains(self.blank_rx)
        if not blank.any():
            return df, is_json, 0
        return df.filter(~blank), is_json.filter(~blank), int(blank.sum())

    def drop_blank(self, text: pl.DataFrame) -> tuple[pl.DataFrame, int]:
        """The lines the layouts left (``text``) but those that are a prefix and nothing more, and
        how many those were (blank lines)."""
        prefixed = text["line"].str.contains(self.blank_rx)
        if not prefixed.any():
            return text, 0
        return text.filter(~prefixed), int(prefixed.sum())


# A node's container log files name their pod and container (kubelet's layout; rotated copies
# gain a time and may be compressed): /var/log/pods/<namespace>_<pod>_<pod uid>/<container>/<n>.log
# and its link /var/log/containers/<pod>_<namespace>_<container>-<container id>.log (which an agent's tag,
# and a CloudWatch log stream EKS's Fluent Bit names after it, write "var.log.containers.<file>"); also as a tar
# archive's file ("ARCHIVE:MEMBER", logpipe/archives.py), from the tree's root or from inside it.
_POD_LOG = re.compile(r"(?:^|[/:])[a-z0-9-]+_(?P<pod>[a-z0-9][a-z0-9.-]*)_[0-9a-f-]{32,36}/(?P<container>[a-z0-9][a-z0-9-]*)"
                      r"/[0-9]+\.log(?:\.[0-9]{8}-[0-9]{6})?(?:\.gz)?$")
_CONTAINER_FILE = r"(?P<pod>[a-z0-9][a-z0-9.-]*)_[a-z0-9-]+_(?P<container>[a-z0-9][a-z0-9-]*)-[0-9a-f]{64}\.log"
_CONTAINER_LOG = re.compile(r"(?:^|[/:])" + _CONTAINER_FILE + "$")
# (first: a pod's name may hold dots; also a CloudWatch Logs export's object, <prefix>/<task>/<stream>/000000.gz)
_CONTAINER_TAG = re.compile(r"var\.log\.containers\." + _CONTAINER_FILE + r"(?:/[0-9]+\.gz)?$")
# Support bundles name them too, in a directory or as an archive's file: OpenShift's `oc adm must-gather`
# (`oc adm inspect`: namespaces/<namespace>/pods/<pod>/<container>/<container>/logs/current.log, and
# previous.log: `kubectl logs --previous`; .insecure.log when fetched without TLS checks) and `istioctl
# bug-report` (proxies/<namespace>/<pod>/istio-proxy.log: the proxy's container, sidecar, gateway,
# waypoint or ztunnel, is named istio-proxy in each; istio/istio/tools/bug-report, archive.ProxyOutputPath).
_NAME = r"[a-z0-9][a-z0-9.-]*"
_BUNDLE_LOG = re.compile(rf"(?:^|[/:])namespaces/[a-z0-9-]+/pods/(?P<pod>{_NAME})/(?P<container>[a-z0-9][a-z0-9-]*)/"
                         r"(?P=container)/logs/(?:current|previous)(?:\.insecure)?\.log$"
                         rf"|(?:^|[/:])proxies/[a-z0-9-]+/(?P<proxy_pod>{_NAME})/(?P<proxy>istio-proxy)\.log$")


@functools.lru_cache(maxsize=256)
def node_log_names(source: str) -> tuple[str, str] | None:
    """The pod and container a node's container log file is named after (``_POD_LOG``,
    ``_CONTAINER_LOG``, or as a tag writes it: ``_CONTAINER_TAG``), or a support bundle's file of a
    container's log (``_BUNDLE_LOG``), for lines whose own prefix names none; None for any other path."""
    m = _POD_LOG.search(source) or _CONTAINER_TAG.search(source) or _CONTAINER_LOG.search(source)
    if m is None and (m := _BUNDLE_LOG.search(source)) is not None:
        return (m["pod"], m["container"]) if m["pod"] else (m["proxy_pod"], m["proxy"])
    return (m["pod"], m["container"]) if m else None


def _alternatives(book, rule: str) -> list[str]:
    """The rules ``rule`` is a choice of (``a | b | c``, each one rule), in order; [] for any other
    shape (then no kind is read alone)."""
    names = []
    for expansion in book._ebnf[rule].children:
        items = getattr(expansion, "children", [])
        value = items[0] if len(items) == 1 and getattr(items[0], "data", None) == "value" else None
        symbol = value.children[0] if value is not None and len(value.children) == 1 else None
        if symbol is None or not hasattr(symbol, "is_term") or symbol.is_term:
            return []
        names.append(symbol.name)
    return names
