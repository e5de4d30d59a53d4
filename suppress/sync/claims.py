"""Claiming the outbox's due rows, a batch at a time and oldest first, within a share of the
outbox (a range of ids) so that the threads of one worker never claim the same row.

On PostgreSQL several workers may run at once: each claims with ``FOR UPDATE SKIP LOCKED`` and
holds its rows until their outcomes commit.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, and_, bindparam, literal_column, or_, select

from suppress.database import Prepared, raw_cursor
from suppress.models import SyncState, db
from suppress.providers.syncing import PENDING


@dataclass(frozen=True)
class Share:
    """The outbox rows one of a pass's concurrent pushers claims: ids past ``after``, up to
    ``through`` (None: no end). Shares never overlap, which keeps the threads of one worker
    apart even on SQLite, where ``FOR UPDATE`` locks nothing. They are ranges of ids, which the
    primary key holds in order: a share by id modulo, which no index holds, made PostgreSQL
    read and sort every pending row for each batch (70 ms a batch at 100,000)."""

    after: int = 0
    through: int | None = None


WHOLE = Share()


def pending_row() -> Any:
    """The row is pending, with the status as a literal: SQLite uses its index of pending rows
    (``PENDING_ROW``) only so, and PostgreSQL, which has none, weighs the pending rows' share
    from its statistics, which decides between walking the primary key from a claim's first id
    and reading the whole table, also in a statement prepared once."""
    return SyncState.__table__.c.status == literal_column(f"'{PENDING}'")


def due_row(now: Any) -> Any:
    state = SyncState.__table__.c
    return and_(pending_row(), or_(state.next_attempt_at.is_(None), state.next_attempt_at <= now))


# A claimed row: id, email, scope, reason, action, attempts.
Claimed = tuple[int, str | None, str, str, str, int]


def claim(destination_id: int, limit: int, now: datetime, share: Share = WHOLE) -> list[Claimed]:
    """Pending rows due now, oldest first, locked against other workers on PostgreSQL.

    The driver's own tuples, not ORM objects nor even SQLAlchemy rows: a batch is a thousand
    of them, and its outcomes are written back set-based (``outcomes.record``), so the session never
    needs to track them. A pass claims past the last id it claimed (the share's ``after``
    moves on): PostgreSQL may walk the primary key in id order while its statistics still say
    every row is pending, and from the start that walk would step over every row accepted so
    far (a tenth of a second a batch at 60,000).
    """
    values = {
        "destination_id": destination_id,
        "now": now,
        "after": share.after,
        "through": share.through,
        "limit": limit,
    }
    return execute(_CLAIMS[share.through is not None], values)


def execute(statement: Prepared, values: Mapping[str, Any]) -> list[Any]:
    """Run ``statement`` in the session's transaction, on a raw cursor of its connection (see
    ``database.raw_cursor``); the rows it returns, as the driver's tuples."""
    connection = db.session.connection()
    cursor = raw_cursor(connection.connection, connection.dialect)
    try:
        cursor.execute(
            statement.compiled(connection.dialect).sql,
            statement.parameters(connection.dialect, values),
        )
        return cursor.fetchall() if cursor.description is not None else []
    finally:
        cursor.close()


def _claim_statement(bounded: bool) -> Any:
    state = SyncState.__table__.c
    query = (
        select(state.id, state.email, state.scope, state.reason, state.action, state.attempts)
        .where(
            state.destination_id == bindparam("destination_id", type_=Integer),
            due_row(bindparam("now", type_=state.next_attempt_at.type)),
            state.id > bindparam("after", type_=Integer),
        )
        .order_by(state.id)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True)
    )
    if bounded:
        query = query.where(state.id <= bindparam("through", type_=Integer))
    return query


# By whether the share has an end; compiled once per dialect.
_CLAIMS = {bounded: Prepared(_claim_statement(bounded)) for bounded in (False, True)}
