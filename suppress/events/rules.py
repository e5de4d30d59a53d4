"""The suppression rules of DESIGN §5, applied to a request's new events together.

A hard bounce suppresses globally (``bounced``); a complaint suppresses globally
(``complained``); an unsubscribe suppresses on its list, or globally when the provider names no
list we know; a re-subscribe lifts only an unsubscribe; the third soft bounce within the window
with no delivery in between suppresses for a while (``soft_bounced``); a bounce caused by the
sender's own set-up (RULES.md R-MBP-6) suppresses nobody.

Each event's action is decided first, with two reads for the whole request (the soft bounces
that add up, the lists named); the actions then run in rounds, the n-th action on an address
and scope in round n, so that a request holding several events for one address ends exactly as
if they had come one by one, while the usual request (each address once) is a single round:
one statement writing every suppression and one their audit entries
(``suppressions.suppress_hashed``), however many events the request holds.
"""

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Dialect, Select, func, literal_column, select, true
from sqlalchemy.sql.expression import FromClause

from suppress import suppressions
from suppress.database import Bulk, DirectTransaction
from suppress.events.rows import Row
from suppress.models import GLOBAL_SCOPE, MailingList
from suppress.models import Event as StoredEvent

log = logging.getLogger(__name__)

ACTING = frozenset({"bounced", "complained", "unsubscribed", "resubscribed"})
LISTED = frozenset({"unsubscribed", "resubscribed"})


@dataclass(frozen=True)
class Rules:
    """The settings the rules read, taken from the app's configuration."""

    soft_bounce_limit: int
    soft_bounce_window: timedelta
    soft_bounce_suppression: timedelta
    machine_open_window: timedelta

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Rules":
        return cls(
            soft_bounce_limit=config["SOFT_BOUNCE_LIMIT"],
            soft_bounce_window=timedelta(days=config["SOFT_BOUNCE_WINDOW_DAYS"]),
            soft_bounce_suppression=timedelta(days=config["SOFT_BOUNCE_SUPPRESSION_DAYS"]),
            machine_open_window=timedelta(seconds=config["MACHINE_OPEN_SECONDS"]),
        )


@dataclass(frozen=True)
class _Action:
    """What one event does: suppress ``wanted``, or (``lift``) undo an unsubscribe."""

    wanted: suppressions.Hashed
    lift: bool = False


def acted_on(rows: Sequence[Row]) -> list[Row]:
    """The rows whose events a rule acts on."""
    return [row for row in rows if row.email and row.values["type"] in ACTING]


def apply_rules(
    transaction: DirectTransaction, provider: str, rows: Sequence[Row], rules: Rules
) -> None:
    """The suppression rules for the new events ``rows``, in order."""
    acting = acted_on(rows)
    if not acting:
        return
    source = f"webhook:{provider}"
    worn_out = _soft_bounces_add_up(transaction, acting, rules)
    lists = _known_lists(transaction, acting)
    actions = [_action(provider, row, rules, worn_out, lists) for row in acting]
    for turn in _rounds([action for action in actions if action is not None]):
        wanted = [action.wanted for action in turn if not action.lift]
        suppressions.suppress_hashed(transaction, wanted, source=source)
        lifted = [action.wanted for action in turn if action.lift]
        suppressions.lift_unsubscribes(transaction, lifted, actor=source)


def _action(
    provider: str, row: Row, rules: Rules, worn_out: set[str], lists: set[str]
) -> _Action | None:
    values, email = row.values, row.email
    kind, bounce_class = values["type"], values["bounce_class"]
    hashed = {"email": email, "email_hash": values["email_hash"]}
    if kind == "complained":
        return _Action(suppressions.Hashed(**hashed, reason="complained"))
    if kind == "bounced" and bounce_class == "hard":
        return _Action(suppressions.Hashed(**hashed, reason="bounced"))
    if kind == "bounced" and bounce_class == "policy":
        log.warning(
            "sender-side rejection reported by %s (message %s): check the sending domain's "
            "authentication; no one was suppressed",
            provider,
            values["message_id"],
        )
        return None
    if kind == "bounced":
        if values["provider_event_id"] not in worn_out:
            return None
        until = values["occurred_at"] + rules.soft_bounce_suppression
        return _Action(suppressions.Hashed(**hashed, reason="soft_bounced", expires_at=until))
    # An unsubscribe from a list we do not know is honoured everywhere, so none is lost.
    scope = values["list_slug"] if values["list_slug"] in lists else GLOBAL_SCOPE
    wanted = suppressions.Hashed(**hashed, reason="unsubscribed", scope=scope)
    return _Action(wanted, lift=kind == "resubscribed")


def _soft_bounces_add_up(
    transaction: DirectTransaction, acting: list[Row], rules: Rules
) -> set[str]:
    """The bounces (by event id) that are at least the limit-th soft bounce within the window
    since the last delivery: one full mailbox or a greylisting server must not suppress anyone.
    One statement counts for every bounce of the request.
    """
    soft = [
        row.values
        for row in acting
        if row.values["type"] == "bounced" and row.values["bounce_class"] not in ("hard", "policy")
    ]
    window = rules.soft_bounce_window
    windows = [
        (
            values["provider_event_id"],
            values["email_hash"],
            values["occurred_at"] - window,
            values["occurred_at"],
        )
        for values in soft
    ]
    counted = transaction.run_bulk(_SOFT_BOUNCES.ready(transaction.dialect, windows))
    return {event_id for event_id, count in counted if count >= rules.soft_bounce_limit}


def _known_lists(transaction: DirectTransaction, acting: list[Row]) -> set[str]:
    """The lists named by the unsubscribes and re-subscribes that exist here, in one query."""
    named = {row.values["list_slug"] for row in acting if row.values["type"] in LISTED} - {None}
    slugs = [(slug,) for slug in named]
    found = transaction.run_bulk(_LIST_SLUGS.ready(transaction.dialect, slugs))
    return {slug for (slug,) in found}


def _rounds(actions: list[_Action]) -> list[list[_Action]]:
    """The actions in order, the n-th on an address and scope in the n-th round."""
    rounds: list[list[_Action]] = []
    seen: Counter[tuple[str, str]] = Counter()
    for action in actions:
        key = (action.wanted.email_hash, action.wanted.scope)
        if seen[key] == len(rounds):
            rounds.append([])
        rounds[seen[key]].append(action)
        seen[key] += 1
    return rounds


def _soft_bounce_counts(dialect: Dialect, incoming: FromClause) -> Select:
    """Each incoming bounce's id, and the soft bounces to its address in its window after the
    address's last delivery (itself included: the INSERT storing it came first)."""
    events, delivered = StoredEvent.__table__, StoredEvent.__table__.alias("delivered")
    last_delivery = (
        select(func.max(delivered.c.occurred_at))
        .where(
            delivered.c.email_hash == incoming.c.email_hash,
            delivered.c.type == literal_column("'delivered'"),
        )
        .correlate(incoming)
        .scalar_subquery()
    )
    count = (
        select(func.count())
        .where(
            events.c.email_hash == incoming.c.email_hash,
            events.c.type == literal_column("'bounced'"),
            events.c.bounce_class == literal_column("'soft'"),
            events.c.occurred_at > incoming.c.since,
            events.c.occurred_at <= incoming.c.until,
            func.coalesce(events.c.occurred_at > last_delivery, true()),
        )
        .correlate(incoming)
        .scalar_subquery()
    )
    return select(incoming.c.provider_event_id, count)


_SOFT_BOUNCES = Bulk(
    {
        "provider_event_id": StoredEvent.__table__.c.provider_event_id.type,
        "email_hash": StoredEvent.__table__.c.email_hash.type,
        "since": StoredEvent.__table__.c.occurred_at.type,
        "until": StoredEvent.__table__.c.occurred_at.type,
    },
    _soft_bounce_counts,
)
_LIST_SLUGS = Bulk(
    {"slug": MailingList.__table__.c.slug.type},
    lambda dialect, incoming: select(MailingList.slug).where(
        MailingList.slug.in_(select(incoming.c.slug))
    ),
)
