"""Planning a destination's outbox, its ``SyncState`` rows.

Planning compares the suppression list with them in two set-based statements: what a
destination lacks (or holds with another reason) becomes pending, and what it holds that is no
longer suppressed becomes a pending lift (or a refused one where the provider cannot lift). A
plan that made rows pending lowers the destination's oldest pending moment (``health``).
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    Text,
    and_,
    bindparam,
    delete,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from suppress.models import Destination, Suppression, SyncState, db
from suppress.providers import PROVIDERS
from suppress.providers.syncing import ACCEPTED, PENDING, REFUSED
from suppress.sync.destinations import scopes_of
from suppress.sync.health import lower_oldest_pending

# A plan that makes this many rows pending refreshes PostgreSQL's statistics of the outbox.
ANALYZE_AFTER_ROWS = 10_000
# Its statistics target then: 300 rows sampled per unit.
ANALYZE_SAMPLE_TARGET = 10


def active(now: datetime) -> Any:
    return or_(Suppression.expires_at.is_(None), Suppression.expires_at > now)


def plan(destination: Destination, now: datetime) -> int:
    """Bring the outbox in step with the suppression list; the number of rows made pending."""
    on_postgresql = db.session.get_bind().dialect.name == "postgresql"
    if on_postgresql and not _has_statistics("suppressions"):
        # Right after a large import PostgreSQL knows nothing of the list and expects a handful
        # of suppressions from each statement's filter: it then looks the outbox up once per
        # suppression instead of joining the two (0.5 s a statement at 100,000, not 0.2 s).
        _analyze("suppressions")
    newest = db.session.scalar(select(func.max(Suppression.id))) or 0
    # Lifts first: the rows the suppressions then make pending are all still suppressed, and
    # looking each of them up again for a lift cost a third of a large plan.
    planned = _plan_lifts(destination, now)
    planned += _plan_suppressions(destination, now)
    if planned:
        lower_oldest_pending(destination, now)
    if planned >= ANALYZE_AFTER_ROWS and on_postgresql:
        # The outbox has outgrown what PostgreSQL knows of it. Left to autovacuum, the next
        # pass may plan its join on a table believed nearly empty: a nested loop over every
        # row, hours on 100,000 rows instead of a second.
        _analyze("sync_states")
    destination.planned_through = newest
    destination.planned_at = now
    db.session.flush()
    return planned


def _has_statistics(table: str) -> bool:
    return bool(
        db.session.scalar(
            text(
                "SELECT EXISTS (SELECT FROM pg_stats"
                " WHERE schemaname = current_schema() AND tablename = :table)"
            ),
            {"table": table},
        )
    )


def _analyze(table: str) -> None:
    """Refresh PostgreSQL's statistics of ``table`` from a sample of 3,000 rows: that tells its
    size and spread as well as the default 30,000 for planning a join, and took 12 ms instead
    of 95-125 ms at 100,000 rows. Autovacuum's own ANALYZE refines the figures later."""
    db.session.execute(text(f"SET LOCAL default_statistics_target = {ANALYZE_SAMPLE_TARGET}"))
    db.session.execute(text(f"ANALYZE {table}"))


def _plan_suppressions(destination: Destination, now: datetime) -> int:
    """Pending rows for every active suppression the destination lacks or holds differently,
    written by the database itself: a hundred thousand new suppressions never pass through
    Python.

    An address erased before it was ever pushed cannot be named to the provider any more: its
    row is refused at once, so that the gap is on record rather than silent.
    """
    dialect = db.session.get_bind().dialect.name
    given = {"destination": destination.id, "scopes": scopes_of(destination), "now": now}
    if dialect != "postgresql":
        # One statement per status: SQLite's upsert costs it no more than a plain insert, and
        # an UPDATE of the rows held otherwise would compare the lists a second time.
        db.session.execute(_PLAN_UPSERTS[dialect][REFUSED], given)
        return db.session.execute(_PLAN_UPSERTS[dialect][PENDING], given).rowcount
    replanned = db.session.execute(_REPLAN, given).rowcount
    _plan_new(REFUSED, given)
    return replanned + _plan_new(PENDING, given)


def _plan_new(status: str, given: Mapping[str, Any]) -> int:
    """Insert the rows with ``status`` that the outbox lacks, on PostgreSQL; the number
    inserted.

    A plain INSERT, as the rows are known to be missing: an upsert's speculative insertion cost
    PostgreSQL a third more for 100,000 new rows. Only another worker planning the same
    destination at the same moment can have added one since; the insert then fails as a whole
    and the upsert, which leaves that worker's rows as they are, runs instead.
    """
    try:
        with db.session.begin_nested():
            return db.session.execute(_PLAN_INSERTS[status], given).rowcount
    except IntegrityError:
        return db.session.execute(_PLAN_UPSERTS["postgresql"][status], given).rowcount


ERASED_DETAIL = "erased before it was pushed: the address is no longer known"


def _lacking(status: str, *, or_held_otherwise: bool) -> Any:
    """The outbox rows to plan, as a SELECT: with ``pending``, those of the active suppressions
    with an address that the destination lacks (or, ``or_held_otherwise``, holds with another
    action or reason); with ``refused``, those of the erased ones it lacks."""
    held = SyncState.__table__.alias("held")
    now = bindparam("now", type_=SyncState.__table__.c.changed_at.type)
    destination_id = bindparam("destination", type_=Integer)
    erased = Suppression.email.is_(None)
    lacked = held.c.id.is_(None)
    if status == REFUSED:
        wanted = and_(erased, lacked)
    elif or_held_otherwise:
        otherwise = or_(held.c.action != "suppress", held.c.reason != Suppression.reason)
        wanted = and_(~erased, or_(lacked, otherwise))
    else:
        wanted = and_(~erased, lacked)
    joined = Suppression.__table__.outerjoin(
        held,
        and_(
            held.c.destination_id == destination_id,
            held.c.email_hash == Suppression.email_hash,
            held.c.scope == Suppression.scope,
        ),
    )
    settled = status == REFUSED
    return (
        select(
            destination_id,
            Suppression.email_hash,
            Suppression.scope,
            Suppression.email,
            Suppression.reason,
            literal("suppress"),
            literal(status),
            literal(ERASED_DETAIL if settled else None, Text),
            literal(0),
            now,
            now if settled else null(),
        )
        .select_from(joined)
        .where(Suppression.scope.in_(bindparam("scopes", expanding=True)), active(now), wanted)
        # In the order of the outbox's unique index, so that a large plan appends to it rather
        # than writing all over it (a third less work on SQLite for 100,000 new rows).
        .order_by(Suppression.email_hash, Suppression.scope)
    )


# The columns a planning SELECT yields, in its order; the first three are the row's identity.
PLANNED_COLUMNS = (
    "destination_id",
    "email_hash",
    "scope",
    "email",
    "reason",
    "action",
    "status",
    "detail",
    "attempts",
    "changed_at",
    "done_at",
)


def _plan_insert(status: str) -> Any:
    """Write the rows the outbox lacks (PostgreSQL)."""
    lacking = _lacking(status, or_held_otherwise=False)
    statement = postgresql.insert(SyncState.__table__).from_select(PLANNED_COLUMNS, lacking)
    # An INSERT's rowcount is read only when asked for (SQLAlchemy, "preserve_rowcount").
    return statement.execution_options(preserve_rowcount=True)


def _plan_upsert(insert: Any, status: str) -> Any:
    """Write planned rows unless the outbox holds the same action and reason already (a
    worker may have accepted it since the plan was read, or planned it meanwhile)."""
    planned = _lacking(status, or_held_otherwise=True)
    statement = insert(SyncState.__table__).from_select(PLANNED_COLUMNS, planned)
    identity, written = PLANNED_COLUMNS[:3], PLANNED_COLUMNS[3:]
    state, new = SyncState.__table__.c, statement.excluded
    upsert = statement.on_conflict_do_update(
        index_elements=[state[name] for name in identity],
        set_={**{name: new[name] for name in written}, "next_attempt_at": None},
        where=or_(state.action != new.action, state.reason != new.reason),
    )
    return upsert.execution_options(preserve_rowcount=True)


_PLAN_INSERTS = {status: _plan_insert(status) for status in (PENDING, REFUSED)}
_PLAN_UPSERTS = {
    name: {status: _plan_upsert(insert, status) for status in (PENDING, REFUSED)}
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}


def _replan() -> Any:
    """Make pending again the rows the destination holds with another action or reason than
    the suppression list now has (PostgreSQL)."""
    state = SyncState.__table__
    now = bindparam("now", type_=state.c.changed_at.type)
    return (
        update(state)
        .where(
            state.c.destination_id == bindparam("destination", type_=Integer),
            state.c.email_hash == Suppression.email_hash,
            state.c.scope == Suppression.scope,
            Suppression.scope.in_(bindparam("scopes", expanding=True)),
            Suppression.email.is_not(None),
            active(now),
            or_(state.c.action != "suppress", state.c.reason != Suppression.reason),
        )
        .values(
            email=Suppression.email,
            reason=Suppression.reason,
            action="suppress",
            status=PENDING,
            detail=None,
            attempts=0,
            changed_at=now,
            next_attempt_at=None,
            done_at=None,
        )
    )


_REPLAN = _replan()


def _plan_lifts(destination: Destination, now: datetime) -> int:
    """Lifts for what the destination accepted and the list no longer holds; rows never
    accepted are simply forgotten."""
    still_suppressed = exists().where(
        Suppression.email_hash == SyncState.email_hash,
        Suppression.scope == SyncState.scope,
        active(now),
    )
    mine = and_(SyncState.destination_id == destination.id, SyncState.action == "suppress")
    can_lift = PROVIDERS[destination.provider].CAN_LIFT
    lifted = db.session.execute(
        update(SyncState)
        .where(mine, SyncState.status == ACCEPTED, ~still_suppressed)
        .values(
            action="lift",
            status=PENDING if can_lift else REFUSED,
            detail=None if can_lift else "the provider's API cannot lift a suppression",
            attempts=0,
            changed_at=now,
            next_attempt_at=None,
            done_at=None if can_lift else now,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.execute(
        delete(SyncState)
        .where(mine, SyncState.status != ACCEPTED, ~still_suppressed)
        .execution_options(synchronize_session=False)
    )
    return lifted if can_lift else 0
