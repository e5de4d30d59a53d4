"""The suppression rules of DESIGN §5, applied to a request's new events together.

A hard bounce suppresses globally (``bounced``); a complaint suppresses globally
(``complained``); an unsubscribe suppresses on its list, or globally when the provider names no
list we know; a re-subscribe lifts only an unsubscribe; the third soft bounce within the window
with no delivery in between suppresses for a while (``soft_bounced``); a bounce caused by the
sender's own set-up (RULES.md R-MBP-6) suppresses nobody.

Each event's action is decided first, with one batch of reads for the whole request; the
actions then run in rounds, the n-th action on an address and scope in round n, so that a
request holding several events for one address ends exactly as if they had come one by one,
while the usual request (each address once) is a single round: one batch of writes and one of
audit entries (``suppressions.suppress_hashed``).
"""

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, literal_column, select

from suppress import suppressions
from suppress.database import DirectTransaction, Prepared
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
    """
    bounces = [
        row
        for row in acting
        if row.values["type"] == "bounced" and row.values["bounce_class"] not in ("hard", "policy")
    ]
    if not bounces:
        return set()
    windows = [
        _window(row.values["email_hash"], row.values["occurred_at"], rules) for row in bounces
    ]
    counts = transaction.run_each(_SOFT_BOUNCES, windows)
    return {
        row.values["provider_event_id"]
        for row, found in zip(bounces, counts, strict=True)
        if found[0][0] >= rules.soft_bounce_limit
    }


def _window(digest: str, until: datetime, rules: Rules) -> dict[str, Any]:
    return {"email_hash": digest, "since": until - rules.soft_bounce_window, "until": until}


def _known_lists(transaction: DirectTransaction, acting: list[Row]) -> set[str]:
    """The lists named by the unsubscribes and re-subscribes that exist here."""
    named = sorted(
        {row.values["list_slug"] for row in acting if row.values["type"] in LISTED} - {None}
    )
    if not named:
        return set()
    found = transaction.run_each(_LIST_SLUG, [{"slug": slug} for slug in named])
    return {slug for rows in found for (slug,) in rows}


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


_LAST_DELIVERY = (
    select(func.max(StoredEvent.occurred_at))
    .where(
        StoredEvent.email_hash == bindparam("email_hash"),
        StoredEvent.type == literal_column("'delivered'"),
    )
    .scalar_subquery()
)
_SOFT_BOUNCES = Prepared(
    select(func.count()).where(
        StoredEvent.email_hash == bindparam("email_hash"),
        StoredEvent.type == literal_column("'bounced'"),
        StoredEvent.bounce_class == literal_column("'soft'"),
        StoredEvent.occurred_at > bindparam("since", type_=StoredEvent.occurred_at.type),
        StoredEvent.occurred_at <= bindparam("until", type_=StoredEvent.occurred_at.type),
        func.coalesce(StoredEvent.occurred_at > _LAST_DELIVERY, True),
    )
)
_LIST_SLUG = Prepared(select(MailingList.slug).where(MailingList.slug == bindparam("slug")))
