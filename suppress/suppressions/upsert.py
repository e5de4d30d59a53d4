"""The one write statement, ``INSERT ... ON CONFLICT DO UPDATE ... WHERE``, for address and
domain suppressions alike, on SQLite and PostgreSQL: a repeat keeps the first ``created_at``; a
stronger reason (``STRENGTH``: a complaint after an unsubscribe) replaces a weaker one; a lapsed
suppression starts afresh.

It builds statements and never runs one: each writer binds its own rows and writes its own
audit entry (``audit``), so that the rule for repeats is stated once.
"""

from sqlalchemy import (
    ColumnElement,
    Dialect,
    Insert,
    Select,
    Table,
    and_,
    bindparam,
    case,
    literal_column,
    or_,
)
from sqlalchemy.dialects import postgresql, sqlite

from suppress.models import Suppression

# Ordered weakest first: a repeat with a later reason in this list replaces the earlier one.
STRENGTH = (
    "soft_bounced",
    "imported",
    "manual",
    "unsubscribed",
    "objected",
    "bounced",
    "complained",
    "erased",
)
WRITTEN_COLUMNS = (
    "email_hash",
    "email",
    "scope",
    "reason",
    "source",
    "note",
    "created_at",
    "expires_at",
)


def _strength(column: ColumnElement[str]) -> ColumnElement[int]:
    """A reason's rank in STRENGTH, in SQL literals (a fixed vocabulary) so only row data binds."""
    return case(
        *(
            (column == literal_column(f"'{reason}'"), literal_column(str(rank)))
            for rank, reason in enumerate(STRENGTH)
        ),
        else_=literal_column("-1"),
    )


def upsert(
    dialect: Dialect,
    rows: Select | None = None,
    *,
    table: Table = Suppression.__table__,
    key: tuple[str, str] = ("email_hash", "scope"),
    columns: tuple[str, ...] = WRITTEN_COLUMNS,
) -> Insert:
    """The one write statement: insert, or strengthen or renew what is there, else nothing.

    The row comes from bound values, or from ``rows``, a query yielding ``columns`` (which
    lets one statement check what it writes, or read it from another table). Domain
    suppressions name their own ``table``, unique ``key`` and ``columns``.
    """
    insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
    statement = insert(table).inline()
    if rows is None:
        statement = statement.values({name: bindparam(name) for name in columns})
    else:
        statement = statement.from_select(columns, rows)
    new, old = statement.excluded, table.c
    lapsed = and_(old.expires_at.is_not(None), old.expires_at <= new.created_at)
    return statement.on_conflict_do_update(
        index_elements=[old[name] for name in key],
        set_={
            "reason": new.reason,
            "source": new.source,
            "note": new.note,
            "expires_at": new.expires_at,
            "created_at": case((lapsed, new.created_at), else_=old.created_at),
        },
        where=or_(_strength(new.reason) > _strength(old.reason), lapsed),
    )
