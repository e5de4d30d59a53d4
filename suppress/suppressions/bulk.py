"""Suppressions in bulk: an import of a file's rows, handed straight to the driver a batch at a
time, and the export of every active suppression, streamed in hash order.

Unlike a single write, an import commits, batch by batch, and one audit entry records it as a
whole; an export reads in chunks, in constant memory.
"""

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from typing import Any

from sqlalchemy import select

from suppress.addresses import InvalidAddress, normalise_and_hash
from suppress.database import Prepared, raw_cursor
from suppress.models import GLOBAL_SCOPE, AuditEntry, Suppression, db, utcnow
from suppress.suppressions.terms import (
    SuppressionError,
    active,
    check_reason,
    check_scope,
    known_scopes,
)
from suppress.suppressions.upsert import upsert


@dataclass
class ImportReport:
    """What an import did: rows written (new or strengthened), rows already covered, refusals."""

    written: int = 0
    unchanged: int = 0
    rejected: int = 0


def import_suppressions(
    records: Iterable[tuple[int, Mapping[str, str]]],
    *,
    source: str,
    actor: str,
    batch_size: int,
    on_reject: Callable[[int, str], None],
) -> ImportReport:
    """Write rows of ``email`` (+ optional ``scope``, ``reason``, ``note``), a batch per commit.

    ``records`` yields ``(line number, row)``; a row that cannot be used is passed to
    ``on_reject`` with its line and the reason, and the import goes on. One audit entry records
    the import as a whole; each row carries the import as its ``source``.
    """
    report = ImportReport()
    dialect = db.session.get_bind().dialect
    compiled = _BULK_UPSERT.compiled(dialect)
    as_parameters = itemgetter(*compiled.names)
    to_column = Suppression.__table__.c.created_at.type.dialect_impl(dialect).bind_processor(
        dialect
    )
    created_at = to_column(utcnow()) if to_column else utcnow()
    fixed = {"source": source, "created_at": created_at, "expires_at": None}
    rows = _valid_rows(records, known_scopes(), fixed, report, on_reject)
    for batch in batches(rows, batch_size):
        cursor = raw_cursor(db.session.connection().connection, dialect)
        cursor.executemany(compiled.sql, [as_parameters(row) for row in batch])
        report.written += cursor.rowcount
        report.unchanged += len(batch) - cursor.rowcount
        cursor.close()
        db.session.commit()
    db.session.add(
        AuditEntry(
            actor=actor,
            action="suppression.import",
            detail={"source": source, **report.__dict__},
        )
    )
    db.session.commit()
    return report


def _valid_rows(
    records: Iterable[tuple[int, Mapping[str, str]]],
    scopes: Collection[str],
    fixed: Mapping[str, Any],
    report: ImportReport,
    on_reject: Callable[[int, str], None],
) -> Iterator[dict[str, Any]]:
    for line, record in records:
        try:
            email, digest = normalise_and_hash(record.get("email") or "")
            scope = check_scope(record.get("scope") or GLOBAL_SCOPE, scopes)
            reason = check_reason(record.get("reason") or "imported")
        except (InvalidAddress, SuppressionError) as error:
            report.rejected += 1
            on_reject(line, str(error))
            continue
        yield {
            **fixed,
            "email_hash": digest,
            "email": email,
            "scope": scope,
            "reason": reason,
            "note": record.get("note") or None,
        }


def batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(rows)
    while batch := [*islice(iterator, size)]:
        yield batch


# Bulk imports hand rows straight to the driver's ``executemany``: SQLAlchemy's per-row
# parameter processing would otherwise cost more than the database's own work.
_BULK_UPSERT = Prepared(upsert)


def active_suppressions(scope: str | None, *columns: Any) -> Iterator[Any]:
    """Rows of ``columns`` for every active suppression (in ``scope`` if given), hash order.

    Streamed in chunks so that an export of millions of rows runs in constant memory; the hash
    order puts every scope of one address side by side.
    """
    query = select(*columns).where(active(utcnow()))
    if scope is not None:
        query = query.where(Suppression.scope == scope)
    query = query.order_by(Suppression.email_hash, Suppression.scope)
    yield from db.session.execute(query.execution_options(yield_per=10_000))
