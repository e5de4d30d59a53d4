"""The suppressions in scope packed into bytes, for matching a long file in memory, perhaps in
another process (``clean``'s worker): a digest key and a reason per fixed-width record, read in a
few passes over ranges of ids.

Reads only, on the connection it is given. Past ``IN_MEMORY_LIMIT`` rows it declines, and the file
is matched through the index (``lookups``) instead.
"""

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter

from sqlalchemy import ColumnElement, Connection, String, case, func, literal_column, select

from suppress.models import GLOBAL_SCOPE, REASONS, Suppression, utcnow
from suppress.suppressions.terms import active, in_scope_of

# Past this many suppressions, a long file is matched through the index after all: in memory
# each takes about 100 bytes.
IN_MEMORY_LIMIT = 2_000_000
# Bytes of an address's SHA-256 digest that key in-memory tables: as good as the whole digest at
# telling millions of addresses apart (a chance collision needs about 2**60 of them), in half
# the memory. Fifteen, not sixteen: such a bytes object takes 48 bytes of Python's allocator,
# one more byte would take 64.
DIGEST_KEY_BYTES = 15
# A packed suppression: its digest key, then the reason's index in REASONS.
SUPPRESSION_RECORD_BYTES = DIGEST_KEY_BYTES + 1


@dataclass(frozen=True)
class PackedSuppressions:
    """Active suppressions of a scope, packed for matching in memory, perhaps in another
    process: records of a digest key and the reason's index in REASONS
    (SUPPRESSION_RECORD_BYTES each), those of the list and those in the global scope apart."""

    list: str | None
    on_the_list: bytes
    everywhere: bytes

    def add_to(self, found: dict[bytes, tuple[str, str]]) -> None:
        """Add these to ``found`` (``{digest key: (scope, reason)}``, the key being the first
        DIGEST_KEY_BYTES of the SHA-256 digest), which may hold other parts of the same scope's
        suppressions. As in ``covering_suppressions``, the global suppression is named when
        both apply, whichever part it came in."""
        if self.on_the_list:
            on_the_list = _records(self.on_the_list, self.list or GLOBAL_SCOPE)
            found.update([(key, named) for key, named in on_the_list if key not in found])
        found.update(_records(self.everywhere, GLOBAL_SCOPE))


def packed_suppressions(
    connection: Connection, list: str | None, parts: int = 1
) -> Iterator[PackedSuppressions] | None:
    """Every active suppression in scope, read in ``parts`` passes over ranges of ids, each
    when the one before has been taken; None when the table holds more than IN_MEMORY_LIMIT
    rows. Runs on ``connection``, which may be the session's own lent to another thread while
    its owner waits, so that the file's uncommitted view is the one read.

    For matching a long file: an index lookup per address costs SQLite several microseconds
    once the table outgrows its cache. Each scope's rows come back as one string of
    fixed-width records, far cheaper to take apart than a million result rows; in parts, so
    that whoever takes them apart can start while the rest are read. A row is read once,
    whatever changes between the passes.
    """
    # Two subqueries, each answered from an end of the primary key's b-tree (one query of both
    # aggregates would make SQLite read every row). The ids bound the count from above, so the
    # rows are counted, a pass over a whole index, only when the ids span more than the limit.
    first, last = connection.execute(
        select(
            select(func.min(Suppression.id)).scalar_subquery(),
            select(func.max(Suppression.id)).scalar_subquery(),
        )
    ).one()
    if (
        first is not None
        and last - first >= IN_MEMORY_LIMIT
        and _count(connection) > IN_MEMORY_LIMIT
    ):
        return None
    return (_packed(connection, list, ids) for ids in _id_ranges(first, last, parts))


def _count(connection: Connection) -> int:
    return connection.scalar(select(func.count()).select_from(Suppression)) or 0


def _id_ranges(
    first: int | None, last: int | None, parts: int
) -> list[tuple[ColumnElement[bool], ...]]:
    """Conditions on the id that split the rows between ``first`` and ``last`` into ``parts``
    ranges: the first and last open-ended, so that together they hold every row."""
    if first is None or last is None:
        return [()]
    step = (last - first) // parts + 1
    bounds = [first + step * number for number in range(1, parts)]
    ids = Suppression.id
    lows = [(), *((ids >= bound,) for bound in bounds)]
    highs = [*((ids < bound,) for bound in bounds), ()]
    return [low + high for low, high in zip(lows, highs, strict=True)]


def _packed(
    connection: Connection, list: str | None, ids: tuple[ColumnElement[bool], ...]
) -> PackedSuppressions:
    # Only the key's hex digits come over: half the string the whole hash would make.
    key = func.substr(Suppression.email_hash, 1, 2 * DIGEST_KEY_BYTES, type_=String)
    record = key + case(
        *(
            (Suppression.reason == reason, literal_column(f"'{index:02x}'"))
            for index, reason in enumerate(REASONS)
        ),
        # Never NULL, which would drop the row from the string without a word: an unknown
        # reason (the table's check forbids one) fails loudly when unpacked instead.
        else_=literal_column("'ff'"),
    )
    in_scope = (*ids, in_scope_of(list), active(utcnow()))
    if list in (None, GLOBAL_SCOPE):
        # One scope, so one string: a second, always empty, costs a tenth of a second a million.
        everywhere = connection.scalar(select(func.aggregate_strings(record, "")).where(*in_scope))
        return PackedSuppressions(list, b"", bytes.fromhex(everywhere or ""))
    is_global = Suppression.scope == GLOBAL_SCOPE
    on_the_list, everywhere = connection.execute(
        select(
            func.aggregate_strings(case((~is_global, record)), ""),
            func.aggregate_strings(case((is_global, record)), ""),
        ).where(*in_scope)
    ).one()
    return PackedSuppressions(
        list, bytes.fromhex(on_the_list or ""), bytes.fromhex(everywhere or "")
    )


def _records(packed: bytes, scope: str) -> Iterator[tuple[bytes, tuple[str, str]]]:
    size = SUPPRESSION_RECORD_BYTES
    # Each key cut out by struct, in C: half the time of slicing the bytes record by record.
    keys = map(itemgetter(0), struct.iter_unpack(f"{size - 1}sx", packed))
    named = [(scope, reason) for reason in REASONS]
    return zip(keys, map(named.__getitem__, packed[size - 1 :: size]), strict=True)
