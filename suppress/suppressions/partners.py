"""Partners' opt-out lists, kept as hashes of normalised addresses: imported from a file a batch
per commit, and matched by hashing the addresses of a file to clean with each algorithm present.

The addresses behind the hashes stay unknown, and nothing here writes a suppression row: a match
is reported with the list's source, for ``clean`` to reject.
"""

import csv
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from itertools import chain

from sqlalchemy import exists, select
from sqlalchemy.dialects import postgresql, sqlite

from suppress.csvfiles import sniff_separator
from suppress.models import HASH_ALGORITHMS, AuditEntry, HashedSuppression, db, utcnow
from suppress.suppressions.bulk import ImportReport, batches
from suppress.suppressions.lookups import BULK_IN_CLAUSE_SIZE
from suppress.suppressions.terms import SuppressionError

# Hex digits per digest, by algorithm: a line of another length is not a hash of that kind.
HEX_LENGTHS = {"md5": 32, "sha256": 64, "sha512": 128}
# Rows per multi-row INSERT of hashes (four values each): within both databases' limits.
HASH_INSERT_ROWS = 1_000
# Header names under which a CSV file of hashes may carry them, besides the algorithm's name.
HASH_COLUMNS = ("hash", "digest", "email_hash")
_HEX = re.compile(r"[0-9a-f]+")


def import_hashed_suppressions(
    lines: Iterable[str],
    algorithm: str,
    source: str,
    on_reject: Callable[[int, str], None],
    *,
    actor: str | None = None,
    batch_size: int = 20_000,
) -> ImportReport:
    """Store a partner's opt-out hashes of normalised addresses; the addresses stay unknown.

    ``lines`` is the file's text, one hash per line, or a CSV file whose header names the
    column (``hash``, ``digest``, ``email_hash`` or the algorithm's name). Hex in either case,
    surrounding blanks ignored; a line that is not a hash of ``algorithm`` goes to
    ``on_reject`` with its line number. Written a batch per commit, a repeat left as it is;
    one audit entry records the import.
    """
    if algorithm not in HEX_LENGTHS:
        raise SuppressionError(f"unknown algorithm {algorithm!r}: use {', '.join(HASH_ALGORITHMS)}")
    report = ImportReport()
    table = HashedSuppression.__table__
    insert = (
        postgresql.insert if db.session.get_bind().dialect.name == "postgresql" else sqlite.insert
    )
    fixed = {"algorithm": algorithm, "source": source, "created_at": utcnow()}
    digests = _hash_values(lines, algorithm, report, on_reject)
    for batch in batches(({**fixed, "digest": digest} for digest in digests), batch_size):
        for start in range(0, len(batch), HASH_INSERT_ROWS):
            rows = batch[start : start + HASH_INSERT_ROWS]
            statement = (
                insert(table)
                .values(rows)
                .on_conflict_do_nothing(index_elements=[table.c.algorithm, table.c.digest])
                .returning(table.c.id)
            )
            written = len(db.session.execute(statement).all())
            report.written += written
            report.unchanged += len(rows) - written
        db.session.commit()
    db.session.add(
        AuditEntry(
            actor=actor or source,
            action="hashed_suppression.import",
            detail={"source": source, "algorithm": algorithm, **report.__dict__},
        )
    )
    db.session.commit()
    return report


def _hash_values(
    lines: Iterable[str],
    algorithm: str,
    report: ImportReport,
    on_reject: Callable[[int, str], None],
) -> Iterator[str]:
    """The lower-case digests of the file, from its only column or the one its header names."""
    length = HEX_LENGTHS[algorithm]
    stripped = (line.rstrip("\r\n") for line in lines)
    first = next(stripped, "")
    reader = csv.reader(chain([first], stripped), delimiter=sniff_separator(first))
    column = 0
    for fields in reader:
        line = reader.line_num
        cells = [field.strip() for field in fields]
        if not any(cells):
            continue
        if line == 1 and column == 0 and not _is_hex(cells[0].lower(), length):
            names = [cell.lower() for cell in cells]
            found = [name for name in (algorithm, *HASH_COLUMNS) if name in names]
            if found:
                column = names.index(found[0])
                continue
        value = cells[column].lower() if column < len(cells) else ""
        if not _is_hex(value, length):
            report.rejected += 1
            on_reject(line, _why_not_a_hash(value, algorithm, length))
            continue
        yield value


def _is_hex(value: str, length: int) -> bool:
    return len(value) == length and _HEX.fullmatch(value) is not None


def _why_not_a_hash(value: str, algorithm: str, length: int) -> str:
    if not value:
        return f"no {algorithm} hash"
    if _HEX.fullmatch(value) is None:
        return f"not a hexadecimal {algorithm} hash"
    return f"{len(value)} hex digits where {algorithm} has {length}"


def hashed_matches(normalised_addresses: Iterable[str]) -> dict[str, str]:
    """For the (already normalised) addresses a partner's hash list holds, its source.

    Only the algorithms present in the table are tried, each hash looked up in chunks through
    the unique index.
    """
    present = hash_algorithms_present()
    if not present:
        return {}
    candidates = [*normalised_addresses]
    found: dict[str, str] = {}
    for algorithm in present:
        digest_of = getattr(hashlib, algorithm)
        by_digest = {
            digest_of(address.encode()).hexdigest(): address
            for address in candidates
            if address not in found
        }
        listed = [*by_digest]
        for start in range(0, len(listed), BULK_IN_CLAUSE_SIZE):
            query = select(HashedSuppression.digest, HashedSuppression.source).where(
                HashedSuppression.algorithm == algorithm,
                HashedSuppression.digest.in_(listed[start : start + BULK_IN_CLAUSE_SIZE]),
            )
            for digest, source in db.session.execute(query):
                found[by_digest[digest]] = source
    return found


def hash_algorithms_present() -> list[str]:
    """The algorithms with at least one stored hash: one query of an index probe each."""
    probes = [
        exists().where(HashedSuppression.algorithm == algorithm) for algorithm in HASH_ALGORITHMS
    ]
    present = db.session.execute(select(*probes)).one()
    return [algorithm for algorithm, there in zip(HASH_ALGORITHMS, present, strict=True) if there]
