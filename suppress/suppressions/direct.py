"""The busy paths, on a direct transaction (``database.direct_transaction``) instead of the
session: the one-click link (``suppress_by_link``), and a webhook request's events, however many,
in one statement and their audit entries in one more (``suppress_hashed``, ``lift_unsubscribes``).

The same rows, rule for repeats and audit entries as ``writes``, in as few statements as can be,
so that a burst of one-click POSTs or events spends its time on little else. Nothing here
commits: the transaction's owner does, before it answers 2xx.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Delete,
    Dialect,
    Insert,
    bindparam,
    delete,
    literal_column,
    null,
    or_,
    select,
    tuple_,
)
from sqlalchemy.sql.expression import FromClause

from suppress.database import Bulk, DirectTransaction, Prepared
from suppress.models import GLOBAL_SCOPE, Address, MailingList, Suppression, utcnow
from suppress.suppressions.audit import DIRECT_AUDIT_INSERT, HASHED_AUDIT, audit_entry
from suppress.suppressions.terms import check_reason
from suppress.suppressions.upsert import WRITTEN_COLUMNS, upsert


def suppress_by_link(
    transaction: DirectTransaction, address_id: int, list_id: int, *, reason: str, source: str
) -> bool:
    """Suppress the address an unsubscribe link names, on its list (``list_id`` 0: everywhere).

    The one-click path: one statement reads the address and list by id and writes the
    suppression, and one more writes the audit entry, so that a burst of one-click POSTs
    spends its time on little else. False when the address or list no longer exists, and
    then nothing is written. Works for an erased address too: the hash is kept for this.
    """
    check_reason(reason)
    values = {"address_id": address_id, "list_id": list_id, "reason": reason, "source": source}
    upsert = _LINK_UPSERT_TO_LIST if list_id else _LINK_UPSERT_EVERYWHERE
    written = transaction.run(upsert, **values, created_at=utcnow()).fetchone()
    if written is None:
        exists_query = _LINK_LIST_EXISTS if list_id else _LINK_ADDRESS_EXISTS
        return transaction.run(exists_query, **values).fetchone() is not None
    email_hash, scope, added = written
    action = "suppression.add" if added else "suppression.update"
    entry = audit_entry(source, action, email_hash, scope, reason, source)
    transaction.run(DIRECT_AUDIT_INSERT, **entry)
    return True


@dataclass(frozen=True)
class Hashed:
    """A suppression wanted for an address already normalised and hashed (webhook events)."""

    email: str
    email_hash: str
    reason: str
    scope: str = GLOBAL_SCOPE
    expires_at: datetime | None = None


def suppress_hashed(
    transaction: DirectTransaction, wanted: Sequence[Hashed], *, source: str
) -> int:
    """``suppress`` on a direct transaction for addresses already normalised and hashed, each
    address and scope at most once; how many rows were written, each with its audit entry.

    One statement writes every row and one more their audit entries, however many there are
    (a row for a scope that does not exist is skipped). Each address and scope at most once:
    PostgreSQL refuses an upsert that would change one row twice.
    """
    if not wanted:
        return 0
    now = utcnow()
    rows = [
        (
            hashed.email_hash,
            hashed.email,
            hashed.scope,
            check_reason(hashed.reason),
            source,
            None,
            now,
            hashed.expires_at,
        )
        for hashed in wanted
    ]
    dialect = transaction.dialect
    written = transaction.run_bulk(_HASHED_UPSERT.ready(dialect, rows))
    # A row keeps its first ``created_at`` unless this upsert added it (or renewed a lapsed one).
    added_at = _HASHED_UPSERT.bound(dialect, "created_at", now)
    actions = {
        (digest, scope): "suppression.add" if created_at == added_at else "suppression.update"
        for digest, scope, created_at in written
    }
    entries = [
        (now, source, actions[row[0], row[2]], row[0], row[2], row[3], source)
        for row in rows
        if (row[0], row[2]) in actions
    ]
    transaction.run_bulk(HASHED_AUDIT.ready(dialect, entries))
    return len(entries)


def lift_unsubscribes(
    transaction: DirectTransaction, wanted: Sequence[Hashed], *, actor: str
) -> int:
    """Undo unsubscribes, and only unsubscribes, on a direct transaction: what a provider's
    re-subscribe event may do (a complaint, bounce or objection stays); how many were lifted,
    each with its audit entry. One statement lifts them all, one more writes the entries."""
    if not wanted:
        return 0
    keys = [(hashed.email_hash, hashed.scope) for hashed in wanted]
    lifted = {
        (digest, scope): source
        for digest, scope, source in transaction.run_bulk(
            _LIFT_UNSUBSCRIBES.ready(transaction.dialect, keys)
        )
    }
    now = utcnow()
    entries = [
        (now, actor, "suppression.lift", *key, "unsubscribed", lifted[key])
        for key in keys
        if key in lifted
    ]
    transaction.run_bulk(HASHED_AUDIT.ready(transaction.dialect, entries))
    return len(entries)


def _hashed_upsert(dialect: Dialect, incoming: FromClause) -> Insert:
    """The upsert of the ``incoming`` rows whose scope is global or names a list."""
    known = or_(
        incoming.c.scope == literal_column(f"'{GLOBAL_SCOPE}'"),
        incoming.c.scope.in_(select(MailingList.slug)),
    )
    rows = select(*(incoming.c[name] for name in WRITTEN_COLUMNS)).where(known)
    columns = Suppression.__table__.c
    return upsert(dialect, rows).returning(columns.email_hash, columns.scope, columns.created_at)


def _lift_unsubscribes(dialect: Dialect, incoming: FromClause) -> Delete:
    columns = Suppression.__table__.c
    return (
        delete(Suppression)
        .where(
            tuple_(columns.email_hash, columns.scope).in_(
                select(incoming.c.email_hash, incoming.c.scope)
            ),
            columns.reason == literal_column("'unsubscribed'"),
        )
        .returning(columns.email_hash, columns.scope, columns.source)
    )


_HASHED_UPSERT = Bulk(
    {name: Suppression.__table__.c[name].type for name in WRITTEN_COLUMNS}, _hashed_upsert
)
_LIFT_UNSUBSCRIBES = Bulk(
    {name: Suppression.__table__.c[name].type for name in ("email_hash", "scope")},
    _lift_unsubscribes,
)


def _written_columns(created_at: ColumnElement[Any]) -> tuple[ColumnElement[Any], ...]:
    """What a link's upsert hands back: the row's key, and whether it was newly added."""
    columns = Suppression.__table__.c
    return (columns.email_hash, columns.scope, columns.created_at == created_at)


def _link_upsert(to_list: bool) -> Prepared:
    """The upsert of a link's address, reading the address and the list by their ids."""
    columns = Suppression.__table__.c
    created_at = bindparam("created_at", type_=columns.created_at.type)
    scope = MailingList.slug if to_list else literal_column(f"'{GLOBAL_SCOPE}'")
    rows = select(
        Address.email_hash,
        Address.email,
        scope,
        bindparam("reason", type_=columns.reason.type),
        bindparam("source", type_=columns.source.type),
        null(),
        created_at,
        null(),
    ).where(Address.id == bindparam("address_id"))
    if to_list:
        rows = rows.join(MailingList, MailingList.id == bindparam("list_id"))
    return Prepared(lambda dialect: upsert(dialect, rows).returning(*_written_columns(created_at)))


_LINK_UPSERT_TO_LIST = _link_upsert(to_list=True)
_LINK_UPSERT_EVERYWHERE = _link_upsert(to_list=False)
_LINK_ADDRESS_EXISTS = Prepared(select(Address.id).where(Address.id == bindparam("address_id")))
_LINK_LIST_EXISTS = Prepared(
    select(Address.id)
    .join(MailingList, MailingList.id == bindparam("list_id"))
    .where(Address.id == bindparam("address_id"))
)
