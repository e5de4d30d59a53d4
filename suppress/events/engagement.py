"""Engagement: which opens and clicks were a person's, and the counters they move.

Opens and clicks by machines never count: the provider's own verdict first, then user agents of
privacy proxies and security scanners, then the timing (an open or click within seconds of a
delivery to the address is a machine fetching the message as it arrives; few providers say
so). Nothing counts for a person who objected, was erased or is restricted (R-GDPR-10). A
request's human events are added up per address first, and the register takes them in one
statement.
"""

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Subquery,
    Update,
    and_,
    case,
    exists,
    func,
    literal_column,
    not_,
    select,
    update,
)
from sqlalchemy.sql.expression import FromClause

from suppress.database import Bulk, DirectTransaction
from suppress.events.rows import Row
from suppress.models import GLOBAL_SCOPE, Address, Suppression, UTCDateTime
from suppress.models import Event as StoredEvent

MACHINE_AGENTS = re.compile(
    r"GoogleImageProxy|YahooMailProxy|Yahoo! Slurp|Barracuda|Mimecast|Proofpoint|"
    r"SafeLinks|Microsoft Office Protection|Trend ?Micro|Symantec|Forcepoint|Cisco|"
    r"FireEye|Sophos|urldefense|bot\b|crawler|spider|HeadlessChrome|python-requests|curl/",
    re.IGNORECASE,
)
# Each engaging event type: its counter and last-seen column, and (clicks) one more column it
# moves forward: a click on a link is an active contact, an open is not (R-RET-2).
ENGAGING = {
    "sent": ("sent_count", "last_sent_at", ()),
    "opened": ("open_count", "last_opened_at", ()),
    "clicked": ("click_count", "last_clicked_at", ("last_active_at",)),
}
ENGAGED = ("opened", "clicked")


def judge_machines(rows: Sequence[Row], window: timedelta) -> None:
    """Settle every row's ``machine`` as far as the request itself tells.

    An open or click left undecided by the provider and the user agent is a machine's if a
    delivery to the address in this request came less than ``window`` before it; failing that,
    its ``early_since`` leaves the question to the provider's latest stored delivery, which the
    INSERT storing it reads (``early_open``).
    """
    undecided = []
    for row in rows:
        values = row.values
        if values["machine"] is None and values["type"] in ENGAGED:
            agent = values["user_agent"]
            if agent and MACHINE_AGENTS.search(agent):
                values["machine"] = True
            elif values["email_hash"]:
                undecided.append(row)
        values["machine"] = bool(values["machine"])
    if undecided:
        _judge_by_deliveries_here(rows, undecided, window)


def _judge_by_deliveries_here(rows: Sequence[Row], undecided: list[Row], window: timedelta) -> None:
    digests = {row.values["email_hash"] for row in undecided}
    delivered: dict[str, list[Any]] = {}
    for row in rows:
        if row.values["type"] == "delivered" and row.values["email_hash"] in digests:
            delivered.setdefault(row.values["email_hash"], []).append(row.values["occurred_at"])
    for row in undecided:
        at = row.values["occurred_at"]
        deliveries = delivered.get(row.values["email_hash"], ())
        if any(timedelta(0) <= at - delivery < window for delivery in deliveries):
            row.values["machine"] = True
        else:
            row.early_since = at - window


def early_open(incoming: FromClause) -> ColumnElement[bool]:
    """An incoming row's ``machine``: as judged, or, where ``early_since`` is set, whether the
    provider's latest stored delivery to the address came after it and not after the event.

    The provider is picked inside the aggregate, not in the WHERE clause, so that the lookup
    goes through the address's index whatever the planner knows of the table.
    """
    delivered = StoredEvent.__table__.alias("delivered")
    latest = func.max(case((delivered.c.provider == incoming.c.provider, delivered.c.occurred_at)))
    just_before = (
        select(latest)
        .where(
            delivered.c.email_hash == incoming.c.email_hash,
            delivered.c.type == literal_column("'delivered'"),
        )
        .having(and_(latest > incoming.c.early_since, latest <= incoming.c.occurred_at))
        .exists()
    )
    return case((incoming.c.early_since.is_(None), incoming.c.machine), else_=just_before)


def count_engagement(transaction: DirectTransaction, rows: Sequence[Row]) -> None:
    """Counters and last-seen times on the addresses in the register, for the human events
    among the new ``rows``: added up here, moved by one statement. (On PostgreSQL the INSERT
    storing the events does both itself, see ``tallies``.)"""
    counted: dict[str, list[Any]] = {}
    for values in (row.values for row in rows):
        kind, digest = values["type"], values["email_hash"]
        if kind in ENGAGING and digest and not values["machine"]:
            tally = counted.get(digest)
            if tally is None:
                tally = counted[digest] = [digest, *[0, None] * len(ENGAGING)]
            at, slot = values["occurred_at"], _SLOTS[kind]
            tally[slot] += 1
            if tally[slot + 1] is None or tally[slot + 1] < at:
                tally[slot + 1] = at
    if counted:
        transaction.run_bulk(_COUNTING.ready(transaction.dialect, [*counted.values()]))


def tallies(events: FromClause) -> Subquery:
    """The human events among ``events`` added up per address, as ``count_engagement`` adds
    them up: for each engaging type, a count and the latest time."""
    columns: list[ColumnElement[Any]] = [events.c.email_hash]
    for kind, (count, last_seen, _) in ENGAGING.items():
        of_kind = events.c.type == literal_column(f"'{kind}'")
        columns.append(func.count().filter(of_kind).label(count))
        columns.append(func.max(events.c.occurred_at).filter(of_kind).label(last_seen))
    human = and_(
        events.c.email_hash.is_not(None),
        not_(events.c.machine),
        events.c.type.in_([literal_column(f"'{kind}'") for kind in ENGAGING]),
    )
    return select(*columns).where(human).group_by(events.c.email_hash).subquery("tallies")


def engagement_update(tallied: Mapping[str, ColumnElement[Any]]) -> Update:
    """Add each address's counts and move its last-seen times forward, unless the person
    objected or was erased (R-GDPR-10) or their data is restricted (Art. 18).

    ``tallied`` names the tally's columns: those of ``tallies``, or parameters bound per address.
    """
    table = Address.__table__

    def later(column: str, at: ColumnElement[Any]) -> ColumnElement[Any]:
        current = table.c[column]
        return case((and_(at.is_not(None), current.is_(None) | (current < at)), at), else_=current)

    changes = {}
    for count, last_seen, also in ENGAGING.values():
        at = tallied[last_seen]
        changes[count] = table.c[count] + tallied[count]
        changes |= {column: later(column, at) for column in (last_seen, *also)}
    stopped = exists().where(
        Suppression.email_hash == table.c.email_hash,
        Suppression.scope == literal_column(f"'{GLOBAL_SCOPE}'"),
        Suppression.reason.in_([literal_column("'objected'"), literal_column("'erased'")]),
    )
    return (
        update(table)
        .where(
            table.c.email_hash == tallied["email_hash"],
            not_(table.c.restricted),
            not_(stopped),
        )
        .values(changes)
    )


# An address's tally: its hash, then a count and the latest time for each engaging type.
_TALLY = {"email_hash": String(64)} | {
    name: type_
    for count, last_seen, _ in ENGAGING.values()
    for name, type_ in ((count, Integer()), (last_seen, UTCDateTime()))
}
_SLOTS = {kind: 1 + 2 * index for index, kind in enumerate(ENGAGING)}
_COUNTING = Bulk(_TALLY, lambda dialect, incoming: engagement_update(incoming.c))
