"""A CSV file's encoding: guessed from its bytes, or a named one, and checked against the
whole file before anything is read."""

import codecs
from pathlib import Path

from suppress.csvfiles.errors import CsvError

CHUNK_BYTES = 1 << 20


def detect_encoding(path: Path) -> str:
    """UTF-16 or UTF-8 (with or without BOM) when the bytes say so, else Windows-1252.

    The whole file is decoded once up front, so a bad byte deep in a large file is found before
    anything is written, rather than halfway through an import.
    """
    with path.open("rb") as stream:
        head = stream.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return checked(path, "utf-16")
    try:
        return checked(path, "utf-8-sig")
    except CsvError:
        return checked(path, "cp1252", fallback_of="UTF-8")


def checked(path: Path, encoding: str, fallback_of: str | None = None) -> str:
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
