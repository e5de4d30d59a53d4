"""What reading a CSV file hands out: a row by column, a record as its raw fields, or a chunk
of rows column by column; a row that cannot be read carries its problem and its line number."""

from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass(frozen=True)
class CsvRow:
    """One data row: its values by column, or the problem that keeps it from being read."""

    line: int
    values: dict[str, str] | None
    problem: str | None = None


class CsvRecord(NamedTuple):
    """One data row as its raw fields (a tuple: ``clean`` makes millions), or the problem.

    ``fields`` is empty when the row could not be split at all. ``text`` is the row's line as
    read, without its line end, when the row is plain: one line with no quote character, the
    header's width and no field to strip (see ``unpadded``). Writing ``fields`` with the file's
    separator gives that text again, and stripping them changes nothing.
    """

    line: int
    fields: list[str]
    problem: str | None = None
    text: str | None = None


@dataclass
class RawChunk:
    """Rows read together as cheaply as can be, column by column: row ``i`` is on line
    ``lines[i]``; a plain row (see CsvRecord) comes unsplit as ``texts[i]``, never empty, and
    so may one with a field to strip (``CsvFile.raw_chunks``); any other has ``texts[i]`` ""
    and ``others[i]``, its fields as read and its problem (or None)."""

    lines: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    others: dict[int, tuple[list[str], str | None]] = field(default_factory=dict)
