"""Writing a cleaned file out: the sendable rows, and the rejected ones with reason and detail.

A row that comes as the text it was read as, with nothing to strip, is copied; any other is
written by the csv module, in the input's separator. A chunk is written with one call per file.
"""

import csv
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, compress
from operator import itemgetter
from types import SimpleNamespace
from typing import NamedTuple, TextIO

from suppress.csvfiles import RawChunk

REJECT_COLUMNS = ("reason", "detail")
LINK_COLUMNS = ("unsubscribe_url", "list_unsubscribe", "list_unsubscribe_post")
# The csv module's line end (its ``excel`` dialect), which a copied row gets too.
LINE_END = csv.excel.lineterminator
_ENDING = len(LINE_END)
_KEPT: tuple[str | None, str] = (None, "")


class Cleaned(NamedTuple):
    """One input row and its verdict: ``reason`` None means sendable.

    ``fields`` has the input's width; a kept row carries the three link values after them when
    links were asked for.
    """

    line: int
    fields: list[str]
    reason: str | None = None
    detail: str = ""


class CleanedChunk:
    """Rows read together and their verdicts: ``verdicts`` maps the position of every rejected
    row to its reason and detail, ``links`` that of every kept row to its link values when
    they were asked for; ``dropped`` holds the blank rows, which count as none, and
    ``padded`` the rows read as text that have a field to strip."""

    def __init__(
        self,
        raw: RawChunk,
        verdicts: dict[int, tuple[str, str]],
        links: dict[int, tuple[str, str, str]],
        *,
        dropped: set[int],
        padded: Iterable[int] = (),
        width: int,
        separator: str,
    ) -> None:
        self.raw = raw
        self.verdicts = verdicts
        self.links = links
        self.dropped = dropped
        # Written by the csv module, not copied: links added, or fields to strip.
        self.rewritten = {*links, *padded}
        self.width = width
        self.separator = separator

    def fields(self, position: int) -> list[str]:
        """A row's fields as written out: stripped, or for a malformed row fitted to the
        header."""
        text = self.raw.texts[position]
        if text:
            return [*map(str.strip, text.split(self.separator))]
        fields, problem = self.raw.others[position]
        if problem is not None:
            return [*_fitted(fields, self.width)]
        return [*map(str.strip, fields)]

    def rows(self) -> Iterator[Cleaned]:
        for position, line in enumerate(self.raw.lines):
            if position in self.dropped:
                continue
            if position in self.links:
                yield Cleaned(line, [*self.fields(position), *self.links[position]])
            else:
                reason, detail = self.verdicts.get(position, _KEPT)
                yield Cleaned(line, self.fields(position), reason, detail)

    def reasons(self) -> Counter[str | None]:
        """How many rows were kept (None) and how many rejected for each reason."""
        reasons = Counter(map(itemgetter(0), self.verdicts.values()))
        reasons[None] = len(self.raw.lines) - len(self.verdicts) - len(self.dropped)
        return reasons

    def csv_text(self) -> tuple[str, str]:
        """The kept rows, and the rejected ones with their reason and detail, as CSV in the
        input's separator and order: a row whose text is what is written copied, any other
        written by the csv module. The kept rows are picked out of all of them in one pass in
        C: most of a chunk's rows are kept and copied."""
        separator, verdicts, links, fields = self.separator, self.verdicts, self.links, self.fields
        texts, line_of = self.raw.texts, _line_writer(separator)
        kept = [*texts]
        for position in self.rewritten.union(self.raw.others).difference(verdicts, self.dropped):
            kept[position] = line_of([*fields(position), *links.get(position, ())])[:-_ENDING]
        chosen = bytearray(b"\x01") * len(texts)
        for position in chain(verdicts, self.dropped):
            chosen[position] = 0
        # The csv module's test, once a detail: thousands of rows share a few.
        unquoted = {detail: not _needs_quotes(detail, separator) for _, detail in verdicts.values()}
        rejected = [
            f"{text}{separator}{reason}{separator}{detail}{LINE_END}"
            if (text := texts[position]) and position not in self.rewritten and unquoted[detail]
            else line_of([*fields(position), reason, detail])
            for position, (reason, detail) in sorted(verdicts.items())
        ]
        return _lines(compress(kept, chosen)), "".join(rejected)


def write_cleaned(
    chunks: Iterable[CleanedChunk],
    kept: TextIO,
    rejected: TextIO,
    header: list[str],
    separator: str,
    links: bool,
) -> Counter[str | None]:
    """Write the sendable rows to ``kept`` and the others, with reason and detail, to
    ``rejected``, each under its header; how many went where, by reason."""
    line_of = _line_writer(separator)
    kept.write(line_of([*header, *(LINK_COLUMNS if links else ())]))
    rejected.write(line_of([*header, *REJECT_COLUMNS]))
    counts: Counter[str | None] = Counter()
    for chunk in chunks:
        kept_text, rejected_text = chunk.csv_text()
        kept.write(kept_text)
        rejected.write(rejected_text)
        counts.update(chunk.reasons())
    return counts


def _line_writer(separator: str) -> Callable[[Iterable[str]], str]:
    """A row as a line of CSV: the csv module's ``writerow`` hands back what its file's
    ``write`` gives, and this file's gives the line back."""
    return csv.writer(SimpleNamespace(write=str), delimiter=separator).writerow


def _lines(texts: Iterable[str]) -> str:
    """Lines without their ends as one text, each ended."""
    lines = [*texts]
    return LINE_END.join(lines) + LINE_END if lines else ""


def _needs_quotes(value: str, separator: str) -> bool:
    """Whether the csv module quotes ``value`` (QUOTE_MINIMAL): it holds the separator, the
    quote character or a line break."""
    return separator in value or '"' in value or "\n" in value or "\r" in value


def _fitted(fields: list[str], width: int) -> tuple[str, ...]:
    """A malformed row cut or padded to the header's width, so the rejects file stays a table."""
    return (*fields[:width], *[""] * (width - len(fields)))
