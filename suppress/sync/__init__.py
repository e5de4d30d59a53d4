"""The sync job: every destination learns every suppression, and gives its own back.

A destination's outbox is its ``SyncState`` rows (``destinations`` owns the destinations and
the accounts they are reached through). A pass (``passes``) plans each outbox against the
suppression list (``planning``), then pushes it (``pushing``): rows are claimed a batch at a
time (``claims``), pushed through the provider's module, and each outcome recorded
(``outcomes``), so nothing is skipped and nothing accepted is pushed again. Each destination
keeps the moment of its oldest pending row, which ``/healthz`` reads (``health``).

Reconciling (``reconciling``) pulls a destination's own suppression lists, imports what we lack
with source ``sync:<name>``, and reports the drift both ways before it writes.
"""

from suppress.sync.destinations import (
    SyncError,
    account_for,
    add_destination,
    all_destinations,
    find_destination,
    remove_destination,
    status_counts,
    syncing_providers,
)
from suppress.sync.health import lag
from suppress.sync.outcomes import Report
from suppress.sync.passes import run
from suppress.sync.planning import plan
from suppress.sync.pushing import push_pending
from suppress.sync.reconciling import Drift, reconcile

__all__ = [
    "Drift",
    "Report",
    "SyncError",
    "account_for",
    "add_destination",
    "all_destinations",
    "find_destination",
    "lag",
    "plan",
    "push_pending",
    "reconcile",
    "remove_destination",
    "run",
    "status_counts",
    "syncing_providers",
]
