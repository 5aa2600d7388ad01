"""The fast path generated from the grammar (``parse.Parser.parse_series``, step 3): which of a
batch's text lines each layout takes, and their columns.

Layout after layout, in the order a line is tried, polars runs the layout's whole-line regex
(compiled from ``access.lark``, a DFA without captures) over the lines left; the lines it matches
are cut into their columns by the layout's split plan (``logpipe/splitplan.py``: at their quotes
and spaces, planned from the same grammar, cut by ``cut.c``), or, when free text holds a quote, read
by the capture regex. Most lines are the first layout's: before the regexes, the checked cut
(``_take_checked``) cuts every line with the plans of the first layouts, checking each token with a
DFA of its own regex (``logpipe/dfa.py``), and the lines it takes skip the regexes; the later layouts
seen in a sample of the first large batch (``_sample_layouts``), and those a batch has many lines
of, join it. Two lines glued together are rejected on the way (``exact.reject_glued``)."""
from __future__ import annotations

import functools

import polars as pl

from . import exact as _exact
from . import grammar as _grammar
from . import splitplan as _splitplan
from . import subfields as _subfields

# A layout's split plan (logpipe/splitplan.py) costs a few ms per batch however few its lines; the
# whole-line capture regex costs ~2x more per line. Below this many lines of a layout in a batch
# (a stream's micro-batch, a rare layout among others) the capture regex is cheaper.
SPLIT_MIN_ROWS = 1000
# The columns of a line that its row keeps beside the parsed ones (with_provenance).
PROVENANCE = ("line_number", "raw", "prefix_len", "pod", "container", "received_at")
# A batch with this many lines of a later layout (read by its whole-line regex) makes the checked cut
# try the layouts up to that one in the next batches (FastPath._take_checked): a mixed batch then costs
# one cut and one typing, not a second group that is typed apart and sorted in (~50 µs a line of it).
# Its plans and DFAs cost ~15 ms per layout once.
CHECKED_MIN_ROWS = 16
# Before a parser's first large batch, the layouts of this many of its lines (spread over it) set the
# layouts of the checked cut (FastPath._sample_layouts): a lane's first batch is cut once, not layout
# by layout (~0.2 s more on the first 16 MB of `make bench`'s file, which has three layouts).
SAMPLE_LINES = 2048


class FastPath:
    """The layouts' regexes and split plans, and what this parser learned of its batches' layouts."""

    def __init__(self, books, types: "_splitplan.Types", head_rx: str, split: bool = True) -> None:
        # The text layouts in the order a line is tried: (name, whole-line regex, rulebook). A plan is
        # read from the grammar when a batch first has SPLIT_MIN_ROWS lines of its layout (~5 ms
        # each: `logpipe parse` of a few lines never needs one); split=False keeps every line on the
        # whole-line regex (tests compare them).
        self.layouts = [(name, book.compile(name), book) for name, book in books]
        self.split = split
        # The checked cut tries the first ``checked`` layouts' plans (``_take_checked``): the first
        # layout's, and those up to a later one whose lines a batch has many of (CHECKED_MIN_ROWS).
        self.checked = 1
        self.sampled = False  # (_sample_layouts: once, at the first batch of SPLIT_MIN_ROWS lines)
        # The columns cut.c types as it cuts (numbers, times: ``nativecut.Types``).
        self.types = types
        # "[START_TIME] \"", from the grammar: a line holding two is two lines glued together. The
        # text every match of it ends with ('] "'): the checked cut leaves a line where it ends at
        # two quotes to that check, so the check need not read the lines the cut takes.
        self.head_rx = head_rx
        glue = _literal_suffix(head_rx)
        self.glue = glue if glue.endswith('"') else ""

    def split_plan(self, layout: str, book: "_grammar.Rulebook | None" = None) -> "_splitplan.SplitPlan | None":
        """The split plan of a text layout (None with ``split=False``, or when its grammar cannot be
        read by splitting), read from the grammar on first use."""
        book = book or next(b for name, _, b in self.layouts if name == layout)
        return _plan_of(book, layout) if self.split else None

    def checked_plans(self) -> tuple:
        """The plans of the first ``self.checked`` layouts that the checked cut runs together."""
        plans = []
        for name, _, book in self.layouts[:self.checked]:
            plan = self.split_plan(name, book)
            if plan is None:
                break
            plans.append(plan)
        return _splitplan.checkable(tuple(plans), self.types)

    def take_lines(self, text: pl.DataFrame, n: int, cut: list, frames: list, rejects: list[dict]) -> pl.DataFrame:
        """The lines of ``text`` (a batch of ``n`` lines) that a layout takes: those its split plan
        cuts into ``cut`` (frame, its nulled columns), the rest into ``frames``; glued lines become
        ``rejects``. Returns the lines no layout took."""
        glued = False
        if not self.glue:  # the cut cannot leave the lines that may be glued to the check: it reads all
            text, glued = _exact.reject_glued(text, self.head_rx, rejects), True
        if not self.sampled and text.height >= SPLIT_MIN_ROWS:
            self._sample_layouts(text["body"])
        for i, (name, compiled, book) in enumerate(self.layouts):
            if text.height == 0:
                break
            if i == 0 and text.height >= SPLIT_MIN_ROWS:  # most lines are the first layouts': ask the cut
                text = self._take_checked(text, cut)  # (it leaves those that may be glued)
            if not glued:
                text, glued = _exact.reject_glued(text, self.head_rx, rejects), True
            if text.height == 0:
                break
            hit = text["body"].str.contains(f"^{compiled.pattern}$")  # a DFA: no captures yet
            if not hit.any():
                continue
            got, text = text.filter(hit), text.filter(~hit)
            if i >= self.checked and got.height >= CHECKED_MIN_ROWS and n >= SPLIT_MIN_ROWS:
                self.checked = i + 1  # this layout's lines are many here: the checked cut tries it next time
            plan = self.split_plan(name, book) if got.height >= SPLIT_MIN_ROWS else None
            if plan is not None:
                easy, split = _splitplan.cut(plan, got["body"], self.types)
                if split is not None:
                    cut.append((with_provenance(got.filter(easy), split, name), self.types.nulled(plan)))
                    got = got.filter(~easy)
            if got.height:  # quotes inside free text: the whole-line regex reads them
                frames.append(with_provenance(got, _extract(got, compiled), name))

        if not glued and text.height:
            text = _exact.reject_glued(text, self.head_rx, rejects)
        return text

    def _sample_layouts(self, body: pl.Series) -> None:
        """Before the first large batch's cut: the layouts of SAMPLE_LINES lines spread over it. The
        checked cut then tries every layout up to the last one seen, as later batches would once
        this one had many of its lines (``CHECKED_MIN_ROWS``), and the batch is cut once."""
        self.sampled = True
        step = max(1, body.len() // SAMPLE_LINES)
        left = body.gather_every(step)
        for i, (_, compiled, _) in enumerate(self.layouts):
            if left.len() == 0:
                break
            hit = left.str.contains(f"^{compiled.pattern}$")
            if i >= self.checked and hit.any():
                self.checked = i + 1
            left = left.filter(~hit)

    def _take_checked(self, text: pl.DataFrame, frames: list) -> pl.DataFrame:
        """The lines of ``text`` that the split plans of the first ``self.checked`` layouts cut into
        tokens that each match their regex (``splitplan.cut_layouts``), each by the first layout
        whose plan does: they match that layout's whole-line regex, whose DFA (~0.74 µs a line) they
        skip, and no earlier layout's. Returns the other lines."""
        plans = self.checked_plans()
        got = _splitplan.cut_layouts(plans, text["body"], self.types, self.glue) if plans else None
        if got is None or got[1] is None:
            return text
        easy, split, layouts, doubt = got
        if doubt is not None and doubt.max():  # (a line with more quotes than an earlier layout)
            easy, split, layouts = self._clear_doubt(text["body"], easy, split, layouts, doubt)
            if split is None:
                return text
        taken = text.select(PROVENANCE).filter(easy)  # (not the lines' text: the rows do not keep it)
        frames.append((with_provenance(taken, split, layouts if layouts is not None else plans[0].layout),
                       _splitplan.nulled(plans, self.types)))
        return text.filter(~easy)

    def _clear_doubt(self, body: pl.Series, easy: pl.Series, split: pl.DataFrame, layouts: pl.Series,
                     doubt: pl.Series) -> tuple:
        """``cut_layouts``' lines less those an earlier layout's whole-line regex takes (bit k of a
        line's ``doubt``: layout k may, with quotes inside its free text); they go back to ``text``."""
        rows = (doubt > 0).arg_true()  # (of the cut lines: only these are asked)
        at = easy.arg_true().gather(rows)
        texts, bits = body.gather(at), doubt.gather(rows)
        taken = pl.repeat(False, rows.len(), dtype=pl.Boolean, eager=True)
        for k, (_, compiled, _) in enumerate(self.layouts[:doubt.max().bit_length()]):
            ask = (bits // (1 << k)) % 2 == 1
            if ask.any():
                hit = texts.filter(ask).str.contains(f"^{compiled.pattern}$")
                taken = taken.scatter(ask.arg_true().filter(hit), True)
        if not taken.any():
            return easy, split, layouts
        easy = easy.scatter(at.filter(taken), False)
        if not easy.any():
            return easy, None, None
        keep = pl.repeat(True, split.height, dtype=pl.Boolean, eager=True).scatter(rows.filter(taken), False)
        return easy, split.filter(keep), layouts.filter(keep)


def with_provenance(df: pl.DataFrame, columns: pl.DataFrame, layout: "str | pl.Series") -> pl.DataFrame:
    """``columns`` of ``df``'s lines, with their provenance and their layout (a name, or one per line)."""
    keep = df.select(PROVENANCE)
    layout = pl.lit(layout) if isinstance(layout, str) else layout
    return pl.concat([keep, columns], how="horizontal").with_columns(layout.alias("log_format"))


def _extract(df: pl.DataFrame, compiled) -> pl.DataFrame:
    groups = df["body"].str.extract_groups(f"^{compiled.pattern}$").struct.unnest()
    return groups.select(_subfields.coalesce(g).alias(out) for out, g in compiled.groups.items())


def _literal_suffix(regex: str) -> str:
    """The text every match of ``regex`` ends with: its trailing literal characters (through groups)."""
    import re._constants as C
    import re._parser as P

    out: list[str] = []

    def walk(items) -> bool:  # whether all of items were literal
        for op, av in reversed(list(items)):
            if op is C.LITERAL:
                out.append(chr(av))
            elif op is C.SUBPATTERN and not av[1] and not av[2]:
                if not walk(av[3]):
                    return False
            else:
                return False
        return True

    walk(P.parse(regex))
    return "".join(reversed(out))


@functools.lru_cache(maxsize=64)
def _plan_of(book: "_grammar.Rulebook", layout: str) -> "_splitplan.SplitPlan | None":
    """A layout's split plan, read from its grammar once per process (~3-10 ms): every parser of the
    grammar shares it (a worker's, rebuilt from its parent's options, and the one it prepared)."""
    return _splitplan.build(book, layout)
