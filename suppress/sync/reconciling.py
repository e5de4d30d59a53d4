"""Reconciling: pulling a destination's own suppression lists, importing what we lack with
source ``sync:<name>``, and reporting the drift both ways before it writes.
"""

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from suppress import suppressions
from suppress.addresses import InvalidAddress, normalise_and_hash
from suppress.models import GLOBAL_SCOPE, Destination, Suppression, SyncState, db, utcnow
from suppress.providers import PROVIDERS
from suppress.providers.syncing import ACCEPTED, PENDING, Account
from suppress.sync.destinations import account_for, scopes_of
from suppress.sync.health import recount_oldest_pending
from suppress.sync.planning import active, plan

log = logging.getLogger(__name__)

SOURCE_PREFIX = "sync:"
ACTOR = "sync"
# Rows per batch when importing what a destination holds and we lacked.
IMPORT_BATCH = 5_000
IN_CLAUSE_SIZE = 500


@dataclass
class Drift:
    """A destination's lists against ours: what each side holds that the other lacks."""

    destination: str
    pulled: int = 0
    # (address, our scope, reason) of each entry the destination holds and we lacked.
    theirs_only: list[tuple[str, str, str]] = field(default_factory=list)
    ours_only: int = 0
    imported: int = 0


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
    recount_oldest_pending(destination)
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
                Suppression.email_hash.in_(hashes[start : start + IN_CLAUSE_SIZE]), active(now)
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
            active(now),
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
