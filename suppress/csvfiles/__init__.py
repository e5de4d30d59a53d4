"""Reading CSV files the way people actually save them.

A marketer's file comes from Excel as often as from a script: in Finland Excel writes semicolons,
and either UTF-8 with a byte-order mark or Windows-1252; "Unicode text" is UTF-16. This package
finds the encoding and the separator (or takes the ones the user names), reads the header, and
hands out rows keyed by lower-cased column names with their line numbers, so that every refusal
can point at a line. It knows nothing about what the columns mean.

The file as a whole is refused with a CsvError (``errors``); its rows come out as the shapes in
``records``. The encoding is found, or a named one checked, against the whole file in
``encodings``; the separator is sniffed from the header, or named, in ``separators``. The tests
for a plain line, that no field is padded with white space to strip, one line at a time or all of
a chunk's at once, are in ``padding``; ``CsvFile`` (``reading``) opens the file, reads the header
and hands out the rows, the records and the raw chunks that ``clean`` reads.
"""

from suppress.csvfiles.encodings import detect_encoding, text_encoding
from suppress.csvfiles.errors import CsvError
from suppress.csvfiles.padding import OTHER_WHITE_SPACE, padded_lines, unpadded
from suppress.csvfiles.reading import CsvFile
from suppress.csvfiles.records import CsvRecord, CsvRow, RawChunk
from suppress.csvfiles.separators import separator_named, sniff_separator

__all__ = [
    "OTHER_WHITE_SPACE",
    "CsvError",
    "CsvFile",
    "CsvRecord",
    "CsvRow",
    "RawChunk",
    "detect_encoding",
    "padded_lines",
    "separator_named",
    "sniff_separator",
    "text_encoding",
    "unpadded",
]
