"""Storing a request's events once each: one INSERT that skips the events stored before (the
provider's event id is unique per provider) and hands back the new ones, the only ones the
rules and the counters act on, so that a repeated delivery changes nothing.

The same statement settles the machine verdicts left to the stored deliveries
(``engagement.early_open``), which saves a query per request.
"""

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Dialect, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.expression import Executable, FromClause

from suppress.database import Bulk, DirectTransaction
from suppress.events.engagement import count_engagement, early_open, engagement_update, tallies
from suppress.events.rows import COLUMNS, Row
from suppress.models import Event as StoredEvent
from suppress.models import UTCDateTime

_TABLE = StoredEvent.__table__
_VALUES = itemgetter(*COLUMNS)
# What the new events hand on to the counting, besides what the request needs back.
_COUNTED = ("provider_event_id", "machine", "email_hash", "type", "occurred_at")


def ready(dialect: Dialect, rows: Sequence[Row]) -> list[tuple[str, list[Any]]]:
    """The INSERT's statements and parameters for ``rows``, ready before a transaction."""
    return _INSERT.ready(dialect, [(*_VALUES(row.values), row.early_since) for row in rows])


def store(
    transaction: DirectTransaction, ready: list[tuple[str, list[Any]]], rows: Sequence[Row]
) -> list[Row]:
    """Run the ``ready`` INSERT of ``rows`` and count the new ones' engagement; the rows not
    stored before, in order, each event once, with their final ``machine``.

    On PostgreSQL the INSERT moves the register's counters itself, in a data-modifying WITH:
    one statement, one round trip. SQLite has no INSERT inside WITH, and one more statement
    there costs next to nothing.
    """
    stored = {event_id: bool(machine) for event_id, machine in transaction.run_bulk(ready)}
    new = []
    for row in rows:
        machine = stored.pop(row.values["provider_event_id"], None)
        if machine is not None:
            row.values["machine"] = machine
            new.append(row)
    if transaction.dialect.name != "postgresql":
        count_engagement(transaction, new)
    return new


def _insert(dialect: Dialect, incoming: FromClause) -> Executable:
    insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
    chosen = [early_open(incoming) if name == "machine" else incoming.c[name] for name in COLUMNS]
    # SQLite reads "FROM incoming ON CONFLICT" as a join without a WHERE clause between them.
    rows = select(*chosen).where(true())
    statement = (
        insert(_TABLE)
        .from_select(COLUMNS, rows)
        .on_conflict_do_nothing(index_elements=["provider", "provider_event_id"])
    )
    if dialect.name != "postgresql":
        return statement.returning(_TABLE.c.provider_event_id, _TABLE.c.machine)
    new = statement.returning(*(_TABLE.c[name] for name in _COUNTED)).cte("new")
    counted = engagement_update(tallies(new).c).cte("counted")
    return select(new.c.provider_event_id, new.c.machine).add_cte(counted)


_INSERT = Bulk(
    {**{name: _TABLE.c[name].type for name in COLUMNS}, "early_since": UTCDateTime()}, _insert
)
