"""What ``/healthz`` reads of the sync job: each destination's lag, from the moment of its
oldest pending row, which the destination keeps. Planning lowers the moment, the end of a push
pass (or a reconcile) counts it again from the outbox.
"""

from datetime import datetime

from sqlalchemy import case, func, literal, or_, select

from suppress.models import Destination, Suppression, SyncState, db
from suppress.sync.claims import pending_row
from suppress.sync.destinations import all_destinations, scopes_of


def lower_oldest_pending(destination: Destination, moment: datetime) -> None:
    """Bring the destination's oldest pending moment down to ``moment``, in the transaction
    that made rows pending since then (every planning statement gives them the plan's time).

    Set in SQL from the value stored, not the one this session read: another worker may have
    lowered it, or counted it again, since; PostgreSQL computes it again from the newest value
    if this UPDATE waits for that worker's lock."""
    stored = Destination.oldest_pending_at
    later = or_(stored.is_(None), stored > moment)
    destination.oldest_pending_at = case((later, literal(moment, stored.type)), else_=stored)


def recount_oldest_pending(destination: Destination) -> None:
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
        .where(SyncState.destination_id == destination.id, pending_row())
        .scalar_subquery()
    )
    db.session.flush()


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
