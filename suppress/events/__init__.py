"""Recording what the ESPs report: dedupe, store, and apply the rules of DESIGN §5.

``record_events`` commits one transaction per call, so a webhook answers 2xx only once every
event of its request is committed, and a retry after a failure stores each event once. The
work is set-based, whatever the number of events: one INSERT finds which are new (``store``),
one UPDATE counts the human ones (``engagement``), and only the new events that carry a rule
change suppressions (``rules``), so a repeated delivery changes nothing.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from suppress.database import direct_dialect, direct_transaction
from suppress.events import store
from suppress.events.engagement import judge_machines
from suppress.events.history import events_for, exported_events
from suppress.events.rows import row_of
from suppress.events.rules import Rules, acted_on, apply_rules
from suppress.models import utcnow
from suppress.providers.delivery import Event

__all__ = ["Recorded", "Rules", "events_for", "exported_events", "record_events"]


@dataclass
class Recorded:
    """What one request's events came to: how many arrived, and how many were new."""

    received: int = 0
    stored: int = 0


def record_events(provider: str, events: Sequence[Event], rules: Rules) -> Recorded:
    """Store ``events`` once each and apply the rules to the new ones, in one transaction
    that has committed when this returns.

    What the events decide by themselves, and the INSERT's parameters, are settled before the
    transaction: SQLite admits one writer at a time, and its writer's turn (see
    ``direct_transaction``) is then held for the statements alone.
    """
    received_at = utcnow()
    rows = [row_of(provider, event, received_at) for event in events]
    judge_machines(rows, rules.machine_open_window)
    inserts = store.ready(direct_dialect(), rows)
    # Without a rule to apply, the events are stored by a single statement on PostgreSQL.
    with direct_transaction(one_statement=not acted_on(rows)) as transaction:
        new = store.store(transaction, inserts, rows)
        apply_rules(transaction, provider, new, rules)
    return Recorded(received=len(rows), stored=len(new))
