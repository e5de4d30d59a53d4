"""CsvFile: an open CSV file, its header read and checked, and its rows handed out one by one
(``rows``, ``records``) or a chunk at a time (``raw_chunks``), a plain line left unsplit."""

import csv
from bisect import bisect
from collections.abc import Iterator
from itertools import chain, compress, islice, repeat
from operator import and_, eq, gt, not_
from pathlib import Path
from types import TracebackType
from typing import Self

from suppress.csvfiles.encodings import checked, detect_encoding
from suppress.csvfiles.errors import CsvError
from suppress.csvfiles.padding import unpadded
from suppress.csvfiles.records import CsvRecord, CsvRow, RawChunk
from suppress.csvfiles.separators import sniff_separator

RECORDS_PER_CHUNK = 1_000


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
            self.encoding = checked(self.path, encoding) if encoding else detect_encoding(self.path)
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
