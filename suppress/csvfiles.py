"""Reading CSV files the way people actually save them.

A marketer's file comes from Excel as often as from a script: in Finland Excel writes semicolons,
and either UTF-8 with a byte-order mark or Windows-1252; "Unicode text" is UTF-16. This module
finds the encoding and the separator (or takes the ones the user names), reads the header, and
hands out rows keyed by lower-cased column names with their line numbers, so that every refusal
can point at a line. It knows nothing about what the columns mean.
"""

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self

CHUNK_BYTES = 1 << 20
SEPARATORS = ",;\t|"
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

    ``fields`` is empty when the row could not be split at all.
    """

    line: int
    fields: list[str]
    problem: str | None = None


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
        self._reader = csv.reader(self._stream, delimiter=self.separator)

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
        for line, fields, problem in self.records():
            if problem is not None:
                yield CsvRow(line, None, problem)
            else:
                yield CsvRow(line, dict(zip(columns, fields, strict=True)))

    def records(self) -> Iterator[CsvRecord]:
        """Every row that is not blank, as read; a row of the wrong width carries its problem."""
        width = len(self.columns)
        while True:
            try:
                fields = next(self._reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield CsvRecord(self._reader.line_num + 1, [], f"unreadable CSV: {error}")
                continue
            if not fields or fields == [""]:
                continue
            line = self._reader.line_num + 1  # the header line was read before the reader
            if len(fields) != width:
                if len(fields) > width and not any(field.strip() for field in fields[width:]):
                    fields = fields[:width]
                else:
                    problem = f"{len(fields)} fields where the header has {width}"
                    yield CsvRecord(line, fields, problem)
                    continue
            yield CsvRecord(line, fields)

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
