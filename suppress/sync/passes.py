"""A pass of the sync job over the destinations: each is planned, then pushed, and a
destination the provider fails keeps the error for the next pass to clear.

On SQLite a file lock lets one worker run at a time; on PostgreSQL workers run side by side,
kept apart by their claims.
"""

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import current_app

from suppress.config import ConfigError
from suppress.models import Destination, db, utcnow
from suppress.providers.api import ApiError
from suppress.providers.syncing import PENDING
from suppress.sync.destinations import (
    account_for,
    all_destinations,
    find_destination,
    status_counts,
)
from suppress.sync.outcomes import Report
from suppress.sync.planning import plan
from suppress.sync.pushing import push_pending

log = logging.getLogger(__name__)


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
