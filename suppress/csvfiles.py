"""Reading CSV files the way people actually save them.

A marketer's file comes from Excel as often as from a script: in Finland Excel writes semicolons,
and either UTF-8 with a byte-order mark or Windows-1252; "Unicode text" is UTF-16. This module
finds the encoding and the separator (or takes the ones the user names), reads the header, and
hands out rows keyed by lower-cased column names with their line numbers, so that every refusal
can point at a line. It knows nothing about what the columns mean.
"""

import codecs
import csv
from bisect import bisect, bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate, chain, compress, count, islice, repeat
from operator import add, and_, eq, gt, not_
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self

CHUNK_BYTES = 1 << 20
RECORDS_PER_CHUNK = 1_000
SEPARATORS = ",;\t|"
# What ``str.strip`` takes off besides the space (the characters of ``str.isspace``); none of
# them is printable.
OTHER_WHITE_SPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# What a user may call a separator besides the character itself; "\t" is what a shell passes
# for a tab typed as an escape.
SEPARATOR_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|"}


class CsvError(ValueError):
    """The file as a whole cannot be read; the message says what to fix."""


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


def detect_encoding(path: Path) -> str:
    """UTF-16 or UTF-8 (with or without BOM) when the bytes say so, else Windows-1252.

    The whole file is decoded once up front, so a bad byte deep in a large file is found before
    anything is written, rather than halfway through an import.
    """
    with path.open("rb") as stream:
        head = stream.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _checked(path, "utf-16")
    try:
        return _checked(path, "utf-8-sig")
    except CsvError:
        return _checked(path, "cp1252", fallback_of="UTF-8")


def _checked(path: Path, encoding: str, fallback_of: str | None = None) -> str:
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            try:
                text = decoder.decode(chunk)
            except UnicodeError as error:  # a named codec may raise the base class
                where = offset + getattr(error, "start", 0)
                tried = f"{fallback_of} nor {encoding}" if fallback_of else encoding
                raise CsvError(
                    f"the file is not text in {tried}: undecodable byte at offset {where}; "
                    "save it as CSV UTF-8"
                ) from None
            if "\x00" in text:
                raise CsvError(
                    "the file holds NUL characters, so it is not CSV text "
                    "(a workbook? save it as CSV UTF-8)"
                )
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeError:
            raise CsvError(f"the file ends in the middle of a {encoding} character") from None
    return encoding


def separator_named(name: str) -> str:
    """The separator ``name`` stands for: one of SEPARATORS, or its name in SEPARATOR_NAMES."""
    separator = SEPARATOR_NAMES.get(name.strip().lower(), name)
    if len(separator) != 1 or separator not in SEPARATORS:
        raise CsvError(
            f"unknown separator {name!r}: use , ; | or a tab, or comma, semicolon, tab or pipe"
        )
    return separator


def text_encoding(name: str) -> str:
    """``name`` if it is a Python codec for text (``utf-8``, ``cp1252``, ``latin-1``, ...):
    not a name Python does not know, nor a bytes-to-bytes codec such as ``base64``."""
    try:
        "email".encode(name).decode(name)
    except (LookupError, UnicodeError):
        raise CsvError(
            f"unknown encoding {name!r}: use a Python codec name such as utf-8, cp1252 or latin-1"
        ) from None
    return name


def sniff_separator(header_line: str) -> str:
    """The separator that splits the header most: a one-column file has none, so a comma."""
    counts = {separator: header_line.count(separator) for separator in SEPARATORS}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def white_space_but_spaces(text: str) -> bool:
    """Whether ``text`` holds white space other than the space: a search for each such
    character, each a pass in C, and refused at once for a character beyond the text's
    widest (most of them, in a text of Latin-1)."""
    return any(map(text.__contains__, OTHER_WHITE_SPACE))


def unpadded(separator: str) -> Callable[[str], bool]:
    """A test for a plain row's text: that no field starts or ends with white space (what
    ``str.strip`` takes off). In a line whose only white space is spaces (any printable one)
    only spaces at the ends or next to a separator remain to look for; a line with a tab or
    the like anywhere counts as padded, to be split and stripped."""
    left, right = f"{separator} ", f" {separator}"
    tab = not separator.isprintable()

    def test(text: str) -> bool:
        fields = text.replace(separator, "") if tab else text
        return (
            (fields.isprintable() or not white_space_but_spaces(fields))
            and text[0] != " "
            and text[-1] != " "
            and left not in text
            and right not in text
        )

    return test


def padded_lines(joined: str, texts: list[str], separator: str) -> list[int]:
    """The rows read unsplit that have a field to strip (``texts``, which ``joined`` holds one
    a line), most often a few, found without testing each: only the lines with white space
    other than spaces, or a space at an end or beside a separator, may have one. Those are
    looked for in all the texts at once, joined by separators; line by line only when there
    are many."""
    plain = unpadded(separator)
    flat = joined.replace("\n", separator)
    marks = (f"{separator} ", f" {separator}", *OTHER_WHITE_SPACE.replace(separator, ""))
    many = len(texts) // 4
    places = [*islice(_places(flat, marks), many + 1)]
    if len(places) > many:
        return [index for index, text in enumerate(texts) if text and not plain(text)]
    ends = [*map(add, accumulate(map(len, texts)), count())]  # each text's end in ``flat``
    near = {0, len(texts) - 1, *(bisect_left(ends, at) for at in chain.from_iterable(places))}
    return [index for index in sorted(near) if (text := texts[index]) and not plain(text)]


def _places(text: str, marks: Iterable[str]) -> Iterator[tuple[int, int]]:
    """Where each of ``marks`` is found in ``text``: its first and last character."""
    for mark in marks:
        at = text.find(mark)
        while at >= 0:
            yield at, at + len(mark) - 1
            at = text.find(mark, at + 1)


def _other(
    fields: list[str], problem: str | None, width: int
) -> tuple[list[str], str | None] | None:
    """A row that is not plain, its problem found, or None for a blank one."""
    if problem is not None:
        return fields, problem
    if not fields or fields == [""]:
        return None
    if len(fields) != width:
        if len(fields) < width or any(field.strip() for field in fields[width:]):
            return fields, f"{len(fields)} fields where the header has {width}"
        fields = fields[:width]
    return fields, None


def _without(chunk: RawChunk, blank: list[int]) -> RawChunk:
    """The chunk without the rows at the positions ``blank`` (in order), the others moved up."""
    kept = bytearray(b"\x01") * len(chunk.lines)
    for position in blank:
        kept[position] = 0
    return RawChunk(
        [*compress(chunk.lines, kept)],
        [*compress(chunk.texts, kept)],
        {position - bisect(blank, position): other for position, other in chunk.others.items()},
    )


class CsvFile:
    """An open CSV file with a header; iterate ``rows()`` once.

    ``separator`` and ``encoding``, when given, replace the guesses; a named encoding is still
    checked against the whole file before anything is read.
    """

    def __init__(
        self, path: str | Path, *, separator: str | None = None, encoding: str | None = None
    ) -> None:
        self.path = Path(path)
        try:
            self.size = self.path.stat().st_size
            self.encoding = (
                _checked(self.path, encoding) if encoding else detect_encoding(self.path)
            )
            self._stream = self.path.open(encoding=self.encoding, newline="")
        except OSError as error:
            raise CsvError(f"cannot read {self.path}: {error.strerror}") from None
        # A byte-order mark read as text under a named UTF encoding is not part of the header.
        first_line = self._stream.readline().removeprefix("\ufeff")
        if not first_line.strip():
            self._stream.close()
            raise CsvError("the file is empty: the first line must be a header such as 'email'")
        self.separator = separator or sniff_separator(first_line)
        header = next(csv.reader([first_line], delimiter=self.separator))
        # As written, for outputs that keep the file's own column names.
        self.header = [name.strip() for name in header]
        self.columns = [name.lower() for name in self.header]
        self._check_header()
        self._quoted_lines = _HandedBack(self._stream)
        self._reader = csv.reader(self._quoted_lines, delimiter=self.separator)

    def _check_header(self) -> None:
        duplicates = sorted({name for name in self.columns if self.columns.count(name) > 1})
        if duplicates:
            self._stream.close()
            raise CsvError(f"the header names a column twice: {', '.join(duplicates)}")

    def require(self, column: str) -> None:
        if column not in self.columns:
            found = ", ".join(repr(name) for name in self.columns)
            raise CsvError(f"no {column!r} column in the header (found {found})")

    @property
    def bytes_read(self) -> int:
        """How far into the file reading has got, for progress bars."""
        return self._stream.buffer.tell()

    def rows(self) -> Iterator[CsvRow]:
        columns = self.columns
        for line, fields, problem, _ in self.records():
            if problem is not None:
                yield CsvRow(line, None, problem)
            else:
                yield CsvRow(line, dict(zip(columns, fields, strict=True)))

    def records(self) -> Iterator[CsvRecord]:
        """Every row that is not blank, as read; a row of the wrong width carries its problem.

        Line numbers count physical lines and name a row's last one.
        """
        separator = self.separator
        for chunk in self.raw_chunks(RECORDS_PER_CHUNK):
            for position, (line, text) in enumerate(zip(chunk.lines, chunk.texts, strict=True)):
                if text:
                    yield CsvRecord(line, text.split(separator), None, text)
                else:
                    yield CsvRecord(line, *chunk.others[position])

    def raw_chunks(self, size: int, *, padded_unsplit: bool = False) -> Iterator[RawChunk]:
        """``records()`` as RawChunks of at most ``size`` rows: for reading a million rows,
        where splitting every line and handing out each row on its own cost more than the
        reading.

        A plain line is not taken apart at all (the csv module would only split it); a line
        with a quote character goes to the csv module, which reads on while a quoted field
        spans lines. A line with a field to strip is split here: whoever strips it needs the
        fields anyway, and every other line can be used as it is. With ``padded_unsplit`` it
        comes unsplit too, for whoever takes the texts apart to tell: a ``clean`` finds them
        all at once (``padded_lines``), for less than testing each line here.
        """
        line = 1  # the header
        while texts := [*islice(self._stream, size)]:
            chunk = self._split_at_once(texts, line, padded_unsplit)
            if chunk is None:
                chunk, line = self._split_one_by_one(texts, line, padded_unsplit)
            else:
                line += len(texts)
            if chunk.lines:
                yield chunk

    def _split_at_once(self, texts: list[str], line: int, padded_unsplit: bool) -> RawChunk | None:
        """The rows of ``texts``, the lines after ``line``, told apart a test at a time over all
        of them, each a loop in C; None when a record runs on past a line's end (or the csv
        module refuses one), for ``_split_one_by_one`` to read.

        Most lines of a long file are plain: only the others are handed to the csv module,
        together, with a blank line after them that comes back as a record of its own unless
        a quoted field left open swallows it.
        """
        if max(map(len, texts)) > csv.field_size_limit():
            return None
        bodies = [*map(str.rstrip, texts, repeat("\r\n"))]
        others = [
            *compress(range(len(texts)), map(not_, self._plain(texts, bodies, padded_unsplit)))
        ]
        reader = csv.reader([*map(texts.__getitem__, others), "\n"], delimiter=self.separator)
        try:
            records = [*reader]
        except csv.Error:
            return None
        if reader.line_num != len(records):
            return None
        chunk = RawChunk([*range(line + 1, line + 1 + len(texts))], bodies)
        blank = []
        for position, fields in zip(others, records, strict=False):  # but the blank line's
            bodies[position] = ""
            other = _other(fields, None, len(self.columns))
            if other is None:
                blank.append(position)
            else:
                chunk.others[position] = other
        return _without(chunk, blank) if blank else chunk

    def _plain(self, texts: list[str], bodies: list[str], padded_unsplit: bool) -> list[bool]:
        """Whether each line is plain (see CsvRecord), a line with a field to strip counting
        as plain when it is to come ``padded_unsplit``."""
        separator, separators = self.separator, len(self.columns) - 1
        plain = [*map(eq, map(str.count, bodies, repeat(separator)), repeat(separators))]
        if not separators:  # a line of one field: plain when not blank
            plain = [*map(and_, plain, map(bool, bodies))]
        # True > False: plain and without a quote character.
        plain = [*map(gt, plain, map(str.__contains__, texts, repeat('"')))]
        if not padded_unsplit:
            test = unpadded(separator)
            plain = [flag and test(body) for flag, body in zip(plain, bodies, strict=True)]
        return plain

    def _split_one_by_one(
        self, texts: list[str], line: int, padded_unsplit: bool
    ) -> tuple[RawChunk, int]:
        """The rows of ``texts`` read a line at a time, a quoted field running on into the
        lines after them if need be; and the number of the last line read."""
        width, separator = len(self.columns), self.separator
        separators = width - 1
        plain = unpadded(separator)
        longest = csv.field_size_limit()
        chunk = RawChunk()
        add_line, add_text = chunk.lines.append, chunk.texts.append
        lines = iter(texts)
        self._quoted_lines.source = chain(lines, self._stream)
        for text in lines:
            line += 1
            if '"' not in text and len(text) <= longest:
                body = text.rstrip("\r\n")
                if body and body.count(separator) == separators and (padded_unsplit or plain(body)):
                    add_line(line)
                    add_text(body)
                    continue
                fields, problem = body.split(separator), None
            else:
                fields, problem, line = self._quoted(text, line)
            other = _other(fields, problem, width)
            if other is not None:
                chunk.others[len(chunk.lines)] = other
                add_line(line)
                add_text("")
        return chunk, line

    def _quoted(self, text: str, line: int) -> tuple[list[str], str | None, int]:
        """The csv module's fields from ``text`` and the lines its quoted fields span, and the
        number of the last line read."""
        self._quoted_lines.hand_back(text)
        before = self._reader.line_num
        try:
            fields = next(self._reader)
        except csv.Error as error:
            return [], f"unreadable CSV: {error}", line + self._reader.line_num - before - 1
        return fields, None, line + self._reader.line_num - before - 1

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _HandedBack:
    """The lines for the csv reader: first the line handed back, then the further lines a
    quoted field runs on to, from ``source``."""

    def __init__(self, source: Iterator[str]) -> None:
        self.source = source
        self._held: str | None = None

    def hand_back(self, line: str) -> None:
        self._held = line

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> str:
        held, self._held = self._held, None
        return next(self.source) if held is None else held
