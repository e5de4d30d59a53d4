"""The sync job: every destination learns every suppression, and gives its own back.

A destination's outbox is its ``SyncState`` rows. Planning compares the suppression list with
them in two set-based statements: what a destination lacks (or holds with another reason)
becomes pending, and what it holds that is no longer suppressed becomes a pending lift (or a
refused one where the provider cannot lift). A worker then claims pending rows a batch at a
time, pushes them through the provider's module, and records each outcome, so nothing is
skipped and nothing accepted is pushed again; where the provider takes several calls at once,
as many threads each push their own share of the outbox. On PostgreSQL several workers may run
at once: each claims with ``FOR UPDATE SKIP LOCKED`` and holds its rows until their outcomes
commit. On SQLite a file lock lets one worker run at a time. Each destination keeps the moment
of its oldest pending row, which ``/healthz`` reads: planning lowers it, the end of a pass
counts it again from the outbox.

Reconciling pulls a destination's own suppression lists, imports what we lack with source
``sync:<name>``, and reports the drift both ways before it writes.
"""

import fcntl
import logging
import math
import re
import threading
from collections.abc import Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy import (
    Dialect,
    Integer,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from suppress import suppressions
from suppress.addresses import InvalidAddress, normalise_and_hash
from suppress.config import ConfigError
from suppress.database import Prepared, raw_cursor, writer_turn
from suppress.lists import ListError, find_list
from suppress.models import (
    GLOBAL_SCOPE,
    Destination,
    Suppression,
    SyncState,
    db,
    utcnow,
)
from suppress.providers import PROVIDERS
from suppress.providers.api import ApiError
from suppress.providers.base import (
    ACCEPTED,
    PENDING,
    REFUSED,
    Account,
    Change,
    Outcome,
    Provider,
)

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,62}")
SOURCE_PREFIX = "sync:"
ACTOR = "sync"
# A change the provider could not settle waits this long before the next try, doubling per
# attempt up to the cap, so a provider that is down is not hammered by every pass.
FIRST_RETRY_DELAY = timedelta(seconds=30)
LONGEST_RETRY_DELAY = timedelta(hours=1)
# Rows per batch when importing what a destination holds and we lacked.
IMPORT_BATCH = 5_000
IN_CLAUSE_SIZE = 500
# A plan that makes this many rows pending refreshes PostgreSQL's statistics of the outbox.
ANALYZE_AFTER_ROWS = 10_000
# Its statistics target then: 300 rows sampled per unit.
ANALYZE_SAMPLE_TARGET = 10
# Shares pushed side by side for each call a provider takes at once: while one share's call is
# in flight, another records its last batch's outcomes and claims its next.
PUSHERS_PER_CALL = 2


class SyncError(ValueError):
    """A destination cannot be added, found or reached as asked."""


@dataclass
class Report:
    """What one pass did for one destination."""

    destination: str
    planned: int = 0
    accepted: int = 0
    refused: int = 0
    pending: int = 0
    lifted: int = 0
    error: str | None = None

    def add(self, other: "Report") -> None:
        """Count in what another share of the same pass settled."""
        self.accepted += other.accepted
        self.refused += other.refused
        self.pending += other.pending
        self.lifted += other.lifted


@dataclass
class Drift:
    """A destination's lists against ours: what each side holds that the other lacks."""

    destination: str
    pulled: int = 0
    # (address, our scope, reason) of each entry the destination holds and we lacked.
    theirs_only: list[tuple[str, str, str]] = field(default_factory=list)
    ours_only: int = 0
    imported: int = 0


def syncing_providers() -> dict[str, type[Provider]]:
    """The providers that have an API to push suppressions to."""
    return {slug: provider for slug, provider in PROVIDERS.items() if provider.PUSH_BATCH}


def account_for(destination: Destination, config: Mapping[str, Any]) -> Account:
    provider = PROVIDERS[destination.provider]
    settings = provider.read_api_settings(config, destination.name)
    target = destination.target or (
        settings.get(provider.TARGET_SETTING) if provider.TARGET_SETTING else None
    )
    if provider.TARGET and not target:
        raise ConfigError(
            f"destination {destination.name!r} needs a target ({provider.TARGET}): "
            f"give --target or set SUPPRESS_{provider.slug.upper()}_{provider.TARGET_SETTING}"
        )
    api = provider.api(settings, timeout=config["SYNC_TIMEOUT"], retries=config["SYNC_RETRIES"])
    return Account(
        name=destination.name,
        target=target,
        list_slug=destination.list_slug,
        settings=settings,
        api=api,
    )


def add_destination(
    name: str, provider: str, *, target: str | None = None, list_slug: str | None = None
) -> Destination:
    """A new destination, checked now so that a typo fails here rather than at 3 a.m."""
    if not NAME_PATTERN.fullmatch(name):
        raise SyncError(
            "a destination name is a lower-case letter, then letters, digits, - or _ "
            "(it becomes part of SUPPRESS_DEST_<NAME>_* variables)"
        )
    if provider not in syncing_providers():
        raise SyncError(
            f"{provider!r} has no suppression API to sync to "
            f"(these have: {', '.join(syncing_providers())})"
        )
    if db.session.scalar(select(Destination.id).where(Destination.name == name)):
        raise SyncError(f"a destination named {name!r} exists already")
    if list_slug:
        try:
            find_list(list_slug)
        except ListError as error:
            raise SyncError(str(error)) from None
    destination = Destination(name=name, provider=provider, target=target, list_slug=list_slug)
    account_for(destination, current_app.config).api.close()
    db.session.add(destination)
    db.session.flush()
    return destination


def find_destination(name: str) -> Destination:
    destination = db.session.scalar(select(Destination).where(Destination.name == name))
    if destination is None:
        raise SyncError(f"no destination named {name!r}")
    return destination


def all_destinations() -> list[Destination]:
    return list(db.session.scalars(select(Destination).order_by(Destination.name)))


def remove_destination(name: str) -> None:
    """Forget a destination and its outbox; what it already holds stays at the provider.

    The outbox rows go here, in the same transaction: no foreign key cascades them (see
    ``SyncState.destination_id``)."""
    destination = find_destination(name)
    db.session.execute(delete(SyncState).where(SyncState.destination_id == destination.id))
    db.session.delete(destination)
    db.session.flush()


def status_counts(destination: Destination) -> dict[tuple[str, str], int]:
    """Outbox rows by (action, status)."""
    rows = db.session.execute(
        select(SyncState.action, SyncState.status, func.count())
        .where(SyncState.destination_id == destination.id)
        .group_by(SyncState.action, SyncState.status)
    )
    return {(action, status): count for action, status, count in rows}


# Planning


def scopes_of(destination: Destination) -> list[str]:
    return [GLOBAL_SCOPE, destination.list_slug] if destination.list_slug else [GLOBAL_SCOPE]


def _active(now: datetime) -> Any:
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
        _lower_oldest_pending(destination, now)
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
        .where(Suppression.scope.in_(bindparam("scopes", expanding=True)), _active(now), wanted)
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
            _active(now),
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
        _active(now),
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


# Pushing


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


def _pending_row() -> Any:
    """The row is pending, with the status as a literal: SQLite uses its index of pending rows
    (``PENDING_ROW``) only so, and PostgreSQL, which has none, weighs the pending rows' share
    from its statistics, which decides between walking the primary key from a claim's first id
    and reading the whole table, also in a statement prepared once."""
    return SyncState.__table__.c.status == literal_column(f"'{PENDING}'")


def _due(now: Any) -> Any:
    state = SyncState.__table__.c
    return and_(_pending_row(), or_(state.next_attempt_at.is_(None), state.next_attempt_at <= now))


# A claimed row: id, email, scope, reason, action, attempts.
Claimed = tuple[int, str | None, str, str, str, int]


def claim(destination_id: int, limit: int, now: datetime, share: Share = WHOLE) -> list[Claimed]:
    """Pending rows due now, oldest first, locked against other workers on PostgreSQL.

    The driver's own tuples, not ORM objects nor even SQLAlchemy rows: a batch is a thousand
    of them, and its outcomes are written back set-based (``_record``), so the session never
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
    return _execute(_CLAIMS[share.through is not None], values)


def _execute(statement: Prepared, values: Mapping[str, Any]) -> list[Any]:
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
            _due(bindparam("now", type_=state.next_attempt_at.type)),
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


def push_pending(destination: Destination, account: Account, report: Report) -> None:
    """Push every due pending row until none is left or the provider fails; a failed batch
    waits for a later pass, and so does a row that turns pending again behind the pass (a
    changed reason, another worker's claim let go).

    Up to the provider's ``CONCURRENCY`` calls are in flight at once, each share of the outbox
    on its own thread: most of a batch's time is the provider's answer, and waiting for several
    at once is what lets a large backlog go out at the API's pace. There are more shares than
    calls, so that recording one batch's outcomes and claiming the next overlap other calls.

    However the pass ends, the destination's oldest pending moment is then counted again, in a
    transaction the caller commits.
    """
    failure = _push_shares(destination, account, report)
    _recount_oldest_pending(destination)
    if failure is not None:
        raise failure


def _push_shares(destination: Destination, account: Account, report: Report) -> ApiError | None:
    """Push the shares of the outbox side by side; the provider's failure, if a share met one."""
    provider = PROVIDERS[destination.provider]
    shares = _shares(destination.id, provider)
    calls = threading.Semaphore(provider.CONCURRENCY)
    if len(shares) == 1:
        try:
            _push_share(destination.id, provider, account, WHOLE, report, threading.Event(), calls)
        except ApiError as error:
            return error
        return None
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    stop = threading.Event()
    with ThreadPoolExecutor(len(shares), thread_name_prefix="sync") as pool:
        pushers = [
            pool.submit(_push_apart, app, destination.id, share, stop, calls) for share in shares
        ]
        done = [pusher.result() for pusher in pushers]
    for share_report, _ in done:
        report.add(share_report)
    return next((error for _, error in done if error is not None), None)


def _shares(destination_id: int, provider: type[Provider]) -> list[Share]:
    """``PUSHERS_PER_CALL`` shares for each call the provider takes at once, but no more than
    there are batches to push (a handful of rows goes out in one call, not one per share),
    splitting the ids due now into ranges of whole batches: a plan writes its rows with
    consecutive ids, so each range holds about as many rows as its ids, and no share ends on a
    part batch that would cost a call of its own. The last range has no end, so that it also
    takes rows planned later."""
    state = SyncState.__table__.c
    due, first, last = db.session.execute(
        select(func.count(), func.min(state.id), func.max(state.id)).where(
            state.destination_id == destination_id, _due(utcnow())
        )
    ).one()
    batches = math.ceil(due / provider.PUSH_BATCH)
    count = max(1, min(provider.CONCURRENCY * PUSHERS_PER_CALL, batches))
    if count == 1:
        return [WHOLE]
    each = math.ceil(batches / count) * provider.PUSH_BATCH
    span = last - first + 1
    ends = [first - 1 + span * rows // due for rows in range(each, due, each)]
    return [Share(after, through) for after, through in zip([0, *ends], [*ends, None], strict=True)]


def _push_apart(
    app: Flask,
    destination_id: int,
    share: Share,
    stop: threading.Event,
    calls: threading.Semaphore,
) -> tuple[Report, ApiError | None]:
    """Push one share from a thread of its own: its own app context, so its own session and
    database connection (each holds its claimed rows until their outcomes commit), and its own
    Account, as a ``requests`` session is not safe to share between threads."""
    report = Report("")
    with app.app_context():
        destination = db.session.get(Destination, destination_id)
        provider = PROVIDERS[destination.provider]
        account = account_for(destination, app.config)
        try:
            _push_share(destination_id, provider, account, share, report, stop, calls)
        except ApiError as error:
            return report, error
        finally:
            account.api.close()
    return report, None


def _push_share(
    destination_id: int,
    provider: type[Provider],
    account: Account,
    share: Share,
    report: Report,
    stop: threading.Event,
    calls: threading.Semaphore,
) -> None:
    """Claim, push and record a batch per transaction until the share is empty, the provider
    fails (``stop`` then tells the other shares to finish their call and end too) or another
    share has failed.

    A batch is claimed once one of the provider's ``calls`` is free, so that the rows a worker
    holds are the ones it is pushing, and other workers can take the rest; its outcomes are
    recorded after the call has made way for the next.
    """
    while True:
        now = utcnow()
        with calls:
            if stop.is_set():
                return
            batch = claim(destination_id, provider.PUSH_BATCH, now, share)
            if not batch:
                db.session.commit()
                return
            outcomes = _pushed(provider, account, batch, now, stop)
        share = Share(batch[-1][0], share.through)
        # The shares take turns to write: SQLite would make the others poll for its lock.
        with writer_turn():
            _record(batch, outcomes, now, report)
            db.session.commit()


def _pushed(
    provider: type[Provider],
    account: Account,
    batch: list[Claimed],
    now: datetime,
    stop: threading.Event,
) -> list[Outcome]:
    """The provider's outcomes for ``batch``; if the call fails, the batch waits for a later
    pass and ``stop`` tells the other shares to end."""
    changes = [
        Change(key, email or "", reason, scope != GLOBAL_SCOPE, action == "lift")
        for key, email, scope, reason, action, _ in batch
    ]
    try:
        return provider.push(account, changes)
    except ApiError as error:
        stop.set()
        with writer_turn():
            _postpone(batch, str(error), now)
            db.session.commit()
        raise


NO_ANSWER = "the provider did not answer for this address"


def _record(batch: list[Claimed], outcomes: list[Outcome], now: datetime, report: Report) -> None:
    """Write each row's outcome, one UPDATE per distinct outcome rather than one per row."""
    answered = {outcome.key: outcome for outcome in outcomes}
    settled: dict[tuple[str, str | None], list[int]] = {}
    unsettled: dict[str, list[Claimed]] = {}
    for row in batch:
        outcome = answered.get(row[0])
        if outcome is None or outcome.status == PENDING:
            unsettled.setdefault(outcome.detail if outcome else NO_ANSWER, []).append(row)
        else:
            settled.setdefault((outcome.status, outcome.detail), []).append(row[0])
    _count(batch, settled, unsettled, report)
    for (status, detail), ids in settled.items():
        _by_id(_SETTLE, ids, outcome=status, outcome_detail=detail, settled_at=now)
    for why, rows in unsettled.items():
        _postpone(rows, why, now)


def _count(
    batch: list[Claimed],
    settled: Mapping[tuple[str, str | None], list[int]],
    unsettled: Mapping[str, list[Claimed]],
    report: Report,
) -> None:
    """Count a batch's outcomes in ``report`` by kind, rather than row by row."""
    lifts = {row[0] for row in batch if row[4] == "lift"}
    for (status, _), ids in settled.items():
        if status != ACCEPTED:
            report.refused += len(ids)
            continue
        lifted = len(lifts.intersection(ids)) if lifts else 0
        report.lifted += lifted
        report.accepted += len(ids) - lifted
    report.pending += sum(map(len, unsettled.values()))


def _postpone(rows: list[Claimed], why: str, now: datetime) -> None:
    """Count the attempt and wait before the next, the longer the more attempts failed."""
    by_attempt: dict[int, list[int]] = {}
    for row in rows:
        by_attempt.setdefault(row[5] + 1, []).append(row[0])
    for attempts, ids in by_attempt.items():
        delay = min(FIRST_RETRY_DELAY * 2 ** (attempts - 1), LONGEST_RETRY_DELAY)
        _by_id(_POSTPONE, ids, tried=attempts, retry_at=now + delay, outcome_detail=why)


def _by_id(statement: Prepared, ids: list[int], **values: Any) -> None:
    """Run ``statement`` on the outbox rows ``ids``, all named in one bound parameter: the
    text of an array on PostgreSQL, which the server parses (psycopg dumps a list of a thousand
    numbers one by one in Python), a JSON array on SQLite. An IN list of a thousand ids would
    be rendered, and parsed by the database, afresh for every batch."""
    listed = ",".join(map(str, ids))
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    _execute(statement, {**values, "ids": f"{{{listed}}}" if postgresql else f"[{listed}]"})


def _named_ids(dialect: Dialect) -> Any:
    state = SyncState.__table__.c
    ids = bindparam("ids", type_=Text)
    if dialect.name == "postgresql":
        return state.id == any_(cast(ids, postgresql.ARRAY(Integer)))
    listed = func.json_each(ids).table_valued("value")
    return state.id.in_(select(listed.c.value))


def _on_named_ids(**values: Any) -> Prepared:
    """An UPDATE of ``values`` on the outbox rows named in ``ids``, compiled once per dialect."""
    return Prepared(
        lambda dialect: update(SyncState.__table__).where(_named_ids(dialect)).values(**values)
    )


_STATE = SyncState.__table__.c
# Recording outcomes: an accepted batch is one run of _SETTLE.
_SETTLE = _on_named_ids(
    status=bindparam("outcome", type_=_STATE.status.type),
    detail=bindparam("outcome_detail", type_=_STATE.detail.type),
    attempts=_STATE.attempts + 1,
    done_at=bindparam("settled_at", type_=_STATE.done_at.type),
    next_attempt_at=None,
)
_POSTPONE = _on_named_ids(
    attempts=bindparam("tried", type_=_STATE.attempts.type),
    next_attempt_at=bindparam("retry_at", type_=_STATE.next_attempt_at.type),
    detail=bindparam("outcome_detail", type_=_STATE.detail.type),
)


def _update_each(column: Any, keys: list[Any], *criteria: Any, **values: Any) -> None:
    """Set ``values`` on the outbox rows whose ``column`` is one of ``keys`` (and that meet
    ``criteria``), a bounded number of keys per statement."""
    for start in range(0, len(keys), IN_CLAUSE_SIZE):
        db.session.execute(
            update(SyncState)
            .where(*criteria, column.in_(keys[start : start + IN_CLAUSE_SIZE]))
            .values(**values)
            .execution_options(synchronize_session=False)
        )


@contextmanager
def one_worker() -> Iterator[None]:
    """On SQLite, one sync worker at a time (the others wait); PostgreSQL needs no lock,
    its workers claim rows with SKIP LOCKED."""
    url = db.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        yield
        return
    with Path(f"{url.database}-sync").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run(names: list[str] | None = None, *, dry_run: bool = False) -> list[Report]:
    """One pass over the destinations (all, or those named): plan, then push."""
    chosen = [find_destination(name) for name in names] if names else all_destinations()
    with one_worker():
        return [_run_one(destination, dry_run) for destination in chosen]


def _run_one(destination: Destination, dry_run: bool) -> Report:
    report = Report(destination.name)
    report.planned = plan(destination, utcnow())
    if dry_run:
        counts = status_counts(destination)
        report.pending = sum(n for (_, status), n in counts.items() if status == PENDING)
        db.session.rollback()
        return report
    db.session.commit()
    try:
        account = account_for(destination, current_app.config)
    except ConfigError as error:
        return _failed(destination, report, str(error))
    try:
        push_pending(destination, account, report)
    except ApiError as error:
        return _failed(destination, report, str(error))
    finally:
        account.api.close()
    destination.last_error = None
    db.session.commit()
    return report


def _failed(destination: Destination, report: Report, why: str) -> Report:
    report.error = why
    destination.last_error = why
    db.session.commit()
    log.warning("sync to %s stopped: %s", destination.name, why)
    return report


# The oldest pending moment


def _lower_oldest_pending(destination: Destination, moment: datetime) -> None:
    """Bring the destination's oldest pending moment down to ``moment``, in the transaction
    that made rows pending since then (every planning statement gives them the plan's time).

    Set in SQL from the value stored, not the one this session read: another worker may have
    lowered it, or counted it again, since; PostgreSQL computes it again from the newest value
    if this UPDATE waits for that worker's lock."""
    stored = Destination.oldest_pending_at
    later = or_(stored.is_(None), stored > moment)
    destination.oldest_pending_at = case((later, literal(moment, stored.type)), else_=stored)


def _recount_oldest_pending(destination: Destination) -> None:
    """Set the destination's oldest pending moment to its outbox's, once rows may have been
    settled (a push pass has ended) or made pending again with the moments they had: lowered
    only, it would keep reporting the lag of rows accepted long ago. It reads the destination's
    whole outbox, once.

    The destination's row is locked first, and the outbox read in a statement of its own. A
    worker making rows pending meanwhile lowers the moment in its own transaction: a single
    UPDATE that waited for that worker's lock would still count the rows its snapshot held
    when it started (PostgreSQL, read committed) and store a later moment than theirs. Once
    the lock is held, the next statement sees the rows of every worker that lowered the moment
    before; one that lowers it after does so from the moment stored here."""
    mine = Destination.id == destination.id
    db.session.execute(select(Destination.id).where(mine).with_for_update())
    destination.oldest_pending_at = (
        select(func.min(SyncState.changed_at))
        .where(SyncState.destination_id == destination.id, _pending_row())
        .scalar_subquery()
    )
    db.session.flush()


# Health


def lag(now: datetime) -> dict[str, float]:
    """Per destination, the age in seconds of the oldest suppression it has not accepted:
    pending rows (the moment kept on the destination, never later than its oldest pending
    row's), and suppressions newer than its last planning pass."""
    lags = {}
    for destination in all_destinations():
        oldest_pending = destination.oldest_pending_at
        oldest_unplanned = db.session.scalar(
            select(func.min(Suppression.created_at)).where(
                Suppression.id > destination.planned_through,
                Suppression.scope.in_(scopes_of(destination)),
            )
        )
        moments = [moment for moment in (oldest_pending, oldest_unplanned) if moment]
        lags[destination.name] = (now - min(moments)).total_seconds() if moments else 0.0
    return lags


# Reconciling


def reconcile(destination: Destination, *, full: bool, dry_run: bool) -> Drift:
    """Pull the destination's lists, report the drift both ways, then (unless ``dry_run``)
    import what we lack and queue again what the destination has lost.

    Without ``full`` only entries changed since the last pull are read (where the API filters
    by date): that finds what is new there, but cannot tell what went missing.
    """
    account = account_for(destination, current_app.config)
    started = utcnow()
    drift = Drift(destination.name)
    try:
        pulled = _pulled(destination, account, None if full else destination.pulled_at, drift)
    finally:
        account.api.close()
    known = _suppressed(pulled, started)
    drift.theirs_only = [
        (email, scope, reason)
        for key, (email, reason) in pulled.items()
        if key not in known
        for scope in (key[1],)
    ]
    lost = _lost(destination, pulled, started) if full else []
    drift.ours_only = len(lost)
    if dry_run:
        db.session.rollback()
        return drift
    drift.imported = _import(destination, drift.theirs_only)
    plan(destination, utcnow())
    _set_status(destination, list(pulled), ACCEPTED, started)
    _set_status(destination, lost, PENDING, started)
    # The lost rows are pending again since they were first wanted, not since now.
    _recount_oldest_pending(destination)
    destination.pulled_at = started
    db.session.commit()
    return drift


Key = tuple[str, str]


def _pulled(
    destination: Destination, account: Account, since: datetime | None, drift: Drift
) -> dict[Key, tuple[str, str]]:
    """What the destination holds: (address hash, our scope) to (address, our reason)."""
    held: dict[Key, tuple[str, str]] = {}
    for entry in PROVIDERS[destination.provider].pull(account, since):
        drift.pulled += 1
        try:
            email, digest = normalise_and_hash(entry.email)
        except InvalidAddress:
            continue
        scope = destination.list_slug if entry.on_list and destination.list_slug else GLOBAL_SCOPE
        held[digest, scope] = (email, entry.reason)
    return held


def _suppressed(keys: Collection[Key], now: datetime) -> set[Key]:
    """Which of ``keys`` the suppression list covers: in the same scope, or globally (a global
    suppression covers every list)."""
    found: set[Key] = set()
    hashes = sorted({digest for digest, _ in keys})
    for start in range(0, len(hashes), IN_CLAUSE_SIZE):
        rows = db.session.execute(
            select(Suppression.email_hash, Suppression.scope).where(
                Suppression.email_hash.in_(hashes[start : start + IN_CLAUSE_SIZE]), _active(now)
            )
        )
        found.update((digest, scope) for digest, scope in rows)
    return {key for key in keys if key in found or (key[0], GLOBAL_SCOPE) in found}


def _lost(destination: Destination, pulled: Collection[Key], now: datetime) -> list[Key]:
    """Our active suppressions for the destination whose address its lists do not hold at all.

    An address held in either scope counts: a provider that keeps one status per address (an
    audience, a stream) answers our global suppression as an entry of the destination's list.
    """
    held = {digest for digest, _ in pulled}
    rows = db.session.execute(
        select(Suppression.email_hash, Suppression.scope).where(
            Suppression.scope.in_(scopes_of(destination)),
            Suppression.email.is_not(None),
            _active(now),
        )
    )
    return [(digest, scope) for digest, scope in rows if digest not in held]


def _import(destination: Destination, entries: list[tuple[str, str, str]]) -> int:
    records = (
        (number, {"email": email, "scope": scope, "reason": reason})
        for number, (email, scope, reason) in enumerate(entries, start=1)
    )
    report = suppressions.import_suppressions(
        records,
        source=f"{SOURCE_PREFIX}{destination.name}",
        actor=ACTOR,
        batch_size=IMPORT_BATCH,
        on_reject=lambda number, why: log.info("pulled entry %d not imported: %s", number, why),
    )
    return report.written


def _set_status(destination: Destination, keys: list[Key], status: str, now: datetime) -> None:
    """Record what reconciling learnt: the destination holds ``keys`` (accepted), or has lost
    them (pending again)."""
    if not keys:
        return
    by_scope: dict[str, list[str]] = {}
    for digest, scope in keys:
        by_scope.setdefault(scope, []).append(digest)
    for scope, hashes in by_scope.items():
        _update_each(
            SyncState.email_hash,
            hashes,
            SyncState.destination_id == destination.id,
            SyncState.scope == scope,
            SyncState.action == "suppress",
            status=status,
            done_at=now if status == ACCEPTED else None,
            next_attempt_at=None,
            detail=None,
        )
