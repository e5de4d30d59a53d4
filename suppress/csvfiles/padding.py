"""Whether a plain line has a field padded with white space to strip: tested a line at a
time, or found among all of a chunk's lines at once, for less than testing each."""

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate, chain, count, islice
from operator import add

# What ``str.strip`` takes off besides the space (the characters of ``str.isspace``); none of
# them is printable.
OTHER_WHITE_SPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


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
