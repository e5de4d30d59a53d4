"""A CSV file's separator: sniffed from the header, or the one the user names."""

from suppress.csvfiles.errors import CsvError

SEPARATORS = ",;\t|"
# What a user may call a separator besides the character itself; "\t" is what a shell passes
# for a tab typed as an escape.
SEPARATOR_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|"}


def separator_named(name: str) -> str:
    """The separator ``name`` stands for: one of SEPARATORS, or its name in SEPARATOR_NAMES."""
    separator = SEPARATOR_NAMES.get(name.strip().lower(), name)
    if len(separator) != 1 or separator not in SEPARATORS:
        raise CsvError(
            f"unknown separator {name!r}: use , ; | or a tab, or comma, semicolon, tab or pipe"
        )
    return separator


def sniff_separator(header_line: str) -> str:
    """The separator that splits the header most: a one-column file has none, so a comma."""
    counts = {separator: header_line.count(separator) for separator in SEPARATORS}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","
