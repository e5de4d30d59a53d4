"""Pushing a destination's outbox through its provider's module: a worker claims pending rows
a batch at a time, pushes them and records each outcome. Where the provider takes several calls
at once, as many threads each push their own share of the outbox.
"""

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from flask import Flask, current_app
from sqlalchemy import func, select

from suppress.database import writer_turn
from suppress.models import GLOBAL_SCOPE, Destination, SyncState, db, utcnow
from suppress.providers import PROVIDERS
from suppress.providers.api import ApiError
from suppress.providers.base import Provider
from suppress.providers.syncing import Account, Change, Outcome
from suppress.sync.claims import WHOLE, Claimed, Share, claim, due_row
from suppress.sync.destinations import account_for
from suppress.sync.health import recount_oldest_pending
from suppress.sync.outcomes import Report, postpone, record

# Shares pushed side by side for each call a provider takes at once: while one share's call is
# in flight, another records its last batch's outcomes and claims its next.
PUSHERS_PER_CALL = 2


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
    recount_oldest_pending(destination)
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
            state.destination_id == destination_id, due_row(utcnow())
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
            record(batch, outcomes, now, report)
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
            postpone(batch, str(error), now)
            db.session.commit()
        raise
