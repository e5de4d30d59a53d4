"""Recording what the ESPs report: dedupe, store, and apply the rules of DESIGN §5.

``record_events`` commits one transaction per call, so a webhook answers 2xx only once every
event of its request is committed, and a retry after a failure stores each event
once. The work is set-based: one multi-row INSERT per chunk of events finds which are new, and
only new events change suppressions or engagement, so a repeated delivery changes nothing.

Rules (defaults configurable): a hard bounce suppresses globally (``bounced``); a complaint
suppresses globally (``complained``); an unsubscribe suppresses on its list, or globally when
the ESP names no list we know; a re-subscribe lifts only an unsubscribe; the third soft bounce
within the window with no delivery in between suppresses for a while (``soft_bounced``); a
bounce caused by the sender's own set-up (RULES.md R-MBP-6) suppresses nobody. Opens and clicks
by machines never count as engagement, and nor does anything about a person who objected, was
erased or is restricted (R-GDPR-10).
"""

import hashlib
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    case,
    exists,
    func,
    literal_column,
    not_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from suppress import suppressions
from suppress.addresses import InvalidAddress, normalise_and_hash
from suppress.database import DirectTransaction, Prepared, direct_reads, direct_transaction
from suppress.models import GLOBAL_SCOPE, Address, MailingList, Suppression, db, utcnow
from suppress.models import Event as StoredEvent
from suppress.providers.base import Event

log = logging.getLogger(__name__)

# Sender-side rejections (RULES.md R-MBP-6): Gmail's authentication and reputation codes and
# Microsoft's 5.7.515 describe our sending domain, not the recipient's mailbox.
POLICY_CODES = re.compile(
    r"(?<![\d.])(?:4\.7\.(?:23|27|29|30|31|32)|5\.7\.(?:1|25|26|27|29|30|515))(?![\d.])"
)
# Opens and clicks fetched by privacy proxies and security scanners, not by people.
MACHINE_AGENTS = re.compile(
    r"GoogleImageProxy|YahooMailProxy|Yahoo! Slurp|Barracuda|Mimecast|Proofpoint|"
    r"SafeLinks|Microsoft Office Protection|Trend ?Micro|Symantec|Forcepoint|Cisco|"
    r"FireEye|Sophos|urldefense|bot\b|crawler|spider|HeadlessChrome|python-requests|curl/",
    re.IGNORECASE,
)
ID_LENGTH = 255
TEXT_LIMIT = 2000
# Multi-row INSERTs are compiled for these row counts; a chunk is padded up to the next one by
# repeating its last row, which the conflict clause then skips.
CHUNK_SIZES = (1, 4, 16, 64, 256)
ENGAGING = ("sent", "opened", "clicked")
COLUMNS = tuple(column.name for column in StoredEvent.__table__.c if column.name != "id")


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


@dataclass
class Recorded:
    """What one request's events came to: how many arrived, and how many were new."""

    received: int = 0
    stored: int = 0


@dataclass
class _Row:
    """An event ready to store, with the normalised address the rules need."""

    values: dict[str, Any]
    email: str | None


def record_events(provider: str, events: Sequence[Event], rules: Rules) -> Recorded:
    """Store ``events`` once each and apply the rules to the new ones, in one transaction
    that has committed when this returns.

    SQLite admits one writer at a time, so there the reads and the preparation happen before
    the writer's turn (see ``direct_transaction``), which is then held for the writes alone;
    elsewhere everything happens in the one transaction, saving a connection per request.
    """
    received_at = utcnow()
    rows = [_row(provider, event, received_at) for event in events]
    undecided = _undecided(rows)
    dialect = db.engine.dialect
    if dialect.name == "sqlite":
        if undecided:
            with direct_reads() as reads:
                _flag_early_opens(reads, provider, rows, undecided, rules)
        inserts = _inserts(rows, dialect)
        with direct_transaction() as transaction:
            new = _store(transaction, provider, inserts, rows, rules)
    else:
        with direct_transaction() as transaction:
            if undecided:
                _flag_early_opens(transaction, provider, rows, undecided, rules)
            new = _store(transaction, provider, _inserts(rows, dialect), rows, rules)
    return Recorded(received=len(rows), stored=len(new))


def _store(
    transaction: DirectTransaction,
    provider: str,
    inserts: list[tuple[Prepared, list[Any]]],
    rows: list[_Row],
    rules: Rules,
) -> list[_Row]:
    """Insert the rows, then act on the new ones; the new ones."""
    new = _insert_new(transaction, inserts, rows)
    for row in new:
        _apply(transaction, provider, row, rules)
    _count_engagement(transaction, new)
    return new


def _row(provider: str, event: Event, received_at: datetime) -> _Row:
    email, digest = _address(event.recipient)
    bounce_class = event.bounce_class
    if event.type == "bounced" and _is_policy(event.diagnostic):
        bounce_class = "policy"
    machine = event.machine
    if machine is None and event.type in ("opened", "clicked"):
        machine = bool(event.user_agent and MACHINE_AGENTS.search(event.user_agent)) or None
    values = {
        "provider": provider,
        "provider_event_id": _stable_id(event.provider_event_id),
        "type": event.type,
        "raw_type": event.raw_type[:100],
        "email_hash": digest,
        "bounce_class": bounce_class,
        "diagnostic": _clip(event.diagnostic),
        "message_id": _clip(event.message_id, ID_LENGTH),
        "list_ref": _clip(event.list_ref, ID_LENGTH),
        "list_slug": _clip(event.list_slug, 64),
        "campaign": _clip(event.campaign, ID_LENGTH),
        "url": _clip(event.url),
        "ip": _clip(event.ip, 64),
        "user_agent": _clip(event.user_agent),
        "machine": machine,
        "occurred_at": event.occurred_at,
        "received_at": received_at,
    }
    return _Row(values, email)


def _address(recipient: str | None) -> tuple[str | None, str | None]:
    """The normalised address and its hash; an address that does not parse is kept as none."""
    if not recipient:
        return None, None
    try:
        return normalise_and_hash(recipient)
    except InvalidAddress:
        return None, None


def _is_policy(diagnostic: str | None) -> bool:
    return bool(diagnostic and POLICY_CODES.search(diagnostic))


def _stable_id(provider_event_id: str) -> str:
    """The provider's id, or its hash when it is longer than the column (SES ids that carry
    the recipient): stable either way, so a retry still matches."""
    if len(provider_event_id) <= ID_LENGTH:
        return provider_event_id
    return "sha256:" + hashlib.sha256(provider_event_id.encode()).hexdigest()


def _clip(text: str | None, limit: int = TEXT_LIMIT) -> str | None:
    return text[:limit] if text else None


def _undecided(rows: list[_Row]) -> list[_Row]:
    """The opens and clicks neither the provider nor the user agent has judged; every other
    row's ``machine`` becomes a plain bool."""
    undecided = [
        row
        for row in rows
        if row.values["machine"] is None
        and row.values["type"] in ("opened", "clicked")
        and row.values["email_hash"]
    ]
    for row in rows:
        row.values["machine"] = bool(row.values["machine"])
    return undecided


def _flag_early_opens(
    reads: DirectTransaction, provider: str, rows: list[_Row], undecided: list[_Row], rules: Rules
) -> None:
    """An open or click within seconds of a delivery to the address is a proxy or scanner
    fetching the message as it arrives, not a person reading it; few providers say so."""
    digests = {row.values["email_hash"] for row in undecided}
    latest = _last_deliveries(reads, provider, digests)
    delivered = {digest: [at] for digest, at in latest.items()}
    for row in rows:
        if row.values["type"] == "delivered" and row.values["email_hash"] in digests:
            delivered.setdefault(row.values["email_hash"], []).append(row.values["occurred_at"])
    for row in undecided:
        at = row.values["occurred_at"]
        deliveries = delivered.get(row.values["email_hash"], ())
        row.values["machine"] = any(
            timedelta(0) <= at - delivery < rules.machine_open_window for delivery in deliveries
        )


def _last_deliveries(
    transaction: DirectTransaction, provider: str, digests: set[str]
) -> dict[str, datetime]:
    """The provider's latest stored delivery to each address, in one query per chunk."""
    latest = {}
    for chunk in _chunks(sorted(digests)):
        size = _padded_size(len(chunk))
        padded = chunk + [chunk[-1]] * (size - len(chunk))
        hashes = {f"email_hash_{index}": digest for index, digest in enumerate(padded)}
        cursor = transaction.run(_last_delivery_statement(size), provider=provider, **hashes)
        latest.update((digest, _as_datetime(at)) for digest, at in cursor.fetchall())
    return latest


def _as_datetime(value: Any) -> datetime:
    """A time read straight from the driver as aware UTC (SQLite hands back text)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC)


_LAST_DELIVERY_QUERIES: dict[int, Prepared] = {}


def _last_delivery_statement(size: int) -> Prepared:
    """The latest delivery to each of ``size`` addresses (``email_hash_0`` and on)."""
    if size not in _LAST_DELIVERY_QUERIES:
        hashes = [bindparam(f"email_hash_{index}") for index in range(size)]
        query = (
            select(StoredEvent.email_hash, func.max(StoredEvent.occurred_at))
            .where(
                StoredEvent.provider == bindparam("provider"),
                StoredEvent.type == literal_column("'delivered'"),
                StoredEvent.email_hash.in_(hashes),
            )
            .group_by(StoredEvent.email_hash)
        )
        _LAST_DELIVERY_QUERIES[size] = Prepared(query)
    return _LAST_DELIVERY_QUERIES[size]


def _inserts(rows: list[_Row], dialect: Any) -> list[tuple[Prepared, list[Any]]]:
    """The INSERTs storing ``rows``, each with its parameters ready: multi-row on SQLite, one
    per row on PostgreSQL (sent together, see ``DirectTransaction.run_each_returning``)."""
    if dialect.name == "postgresql":
        statement = _insert_statement(1)
        return [
            (statement, statement.in_order(dialect, [row.values[name] for name in COLUMNS]))
            for row in rows
        ]
    inserts = []
    for chunk in _chunks(rows):
        size = _padded_size(len(chunk))
        padded = chunk + [chunk[-1]] * (size - len(chunk))
        statement = _insert_statement(size)
        in_order = [row.values[name] for row in padded for name in COLUMNS]
        inserts.append((statement, statement.in_order(dialect, in_order)))
    return inserts


def _insert_new(
    transaction: DirectTransaction, inserts: list[tuple[Prepared, list[Any]]], rows: list[_Row]
) -> list[_Row]:
    """Run ``inserts``; the rows not stored before, in order, each id once."""
    if not inserts:
        return []
    if transaction.dialect.name == "postgresql":
        found = transaction.run_each_returning(inserts[0][0], [ready for _, ready in inserts])
    else:
        found = [
            stored
            for statement, ready in inserts
            for stored in transaction.run_ready(statement, ready).fetchall()
        ]
    inserted = {stored[0] for stored in found}
    new = []
    for row in rows:
        if row.values["provider_event_id"] in inserted:
            inserted.discard(row.values["provider_event_id"])
            new.append(row)
    return new


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    largest = CHUNK_SIZES[-1]
    for start in range(0, len(items), largest):
        yield items[start : start + largest]


def _padded_size(count: int) -> int:
    return next(size for size in CHUNK_SIZES if size >= count)


_INSERTS: dict[int, Prepared] = {}


def _insert_statement(size: int) -> Prepared:
    """``size`` events in one INSERT that skips those already stored and names the rest; its
    parameters are COLUMNS row after row."""
    if size not in _INSERTS:
        table = StoredEvent.__table__
        rows = [
            {name: bindparam(f"{name}_{index}", type_=table.c[name].type) for name in COLUMNS}
            for index in range(size)
        ]

        def build(dialect: Any) -> Any:
            insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
            return (
                insert(table)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["provider", "provider_event_id"])
                .returning(table.c.provider_event_id)
            )

        _INSERTS[size] = Prepared(build)
    return _INSERTS[size]


def _apply(transaction: DirectTransaction, provider: str, row: _Row, rules: Rules) -> None:
    """The suppression rules for one new event; engagement is counted for all at once."""
    values, email = row.values, row.email
    if email is None:
        return
    digest, kind, source = values["email_hash"], values["type"], f"webhook:{provider}"
    if kind == "complained":
        suppressions.suppress_hashed(transaction, email, digest, reason="complained", source=source)
    elif kind == "bounced" and values["bounce_class"] == "hard":
        suppressions.suppress_hashed(transaction, email, digest, reason="bounced", source=source)
    elif kind == "bounced" and values["bounce_class"] == "policy":
        log.warning(
            "sender-side rejection reported by %s (message %s): check the sending domain's "
            "authentication; no one was suppressed",
            provider,
            values["message_id"],
        )
    elif kind == "bounced" and _soft_bounces_add_up(transaction, digest, values, rules):
        suppressions.suppress_hashed(
            transaction,
            email,
            digest,
            reason="soft_bounced",
            source=source,
            expires_at=values["occurred_at"] + rules.soft_bounce_suppression,
        )
    elif kind == "unsubscribed":
        scope = _known_scope(transaction, values["list_slug"])
        suppressions.suppress_hashed(
            transaction, email, digest, reason="unsubscribed", source=source, scope=scope
        )
    elif kind == "resubscribed":
        scope = _known_scope(transaction, values["list_slug"])
        suppressions.lift_unsubscribe(transaction, digest, scope, actor=source)


def _soft_bounces_add_up(
    transaction: DirectTransaction, digest: str, values: Mapping[str, Any], rules: Rules
) -> bool:
    """Whether this soft bounce is at least the limit-th within the window since the last
    delivery: one full mailbox or a greylisting server must not suppress anyone."""
    until = values["occurred_at"]
    since = until - rules.soft_bounce_window
    found = transaction.run(_SOFT_BOUNCES, email_hash=digest, since=since, until=until).fetchone()
    return found[0] >= rules.soft_bounce_limit


def _known_scope(transaction: DirectTransaction, list_slug: str | None) -> str:
    """The event's list when we have it; otherwise everywhere, so no unsubscribe is lost."""
    if list_slug and transaction.run(_LIST_EXISTS, slug=list_slug).fetchone():
        return list_slug
    return GLOBAL_SCOPE


def _count_engagement(transaction: DirectTransaction, rows: list[_Row]) -> None:
    """Counters and last-seen times on the addresses in the register, human events only."""
    for kind in ENGAGING:
        human = [
            {"email_hash": row.values["email_hash"], "at": row.values["occurred_at"]}
            for row in rows
            if row.values["type"] == kind and row.email and not row.values["machine"]
        ]
        if human:
            transaction.run_many(_ENGAGEMENT[kind], human)


def events_for(digest: str, kinds: Sequence[str] | None = None, limit: int = 20) -> list[Any]:
    """An address's stored events, newest first (what stands behind its suppressions)."""
    query = select(StoredEvent).where(StoredEvent.email_hash == digest)
    if kinds:
        query = query.where(StoredEvent.type.in_(kinds))
    query = query.order_by(StoredEvent.occurred_at.desc(), StoredEvent.id.desc()).limit(limit)
    return db.session.scalars(query).all()


def exported_events(
    since: datetime | None = None, provider: str | None = None, digest: str | None = None
) -> Iterator[dict[str, Any]]:
    """Every stored event matching the filters, oldest first, as the export's records.

    The address comes from the register, so an erased person's events export without one.
    Streamed in chunks, so an export of millions of events runs in constant memory.
    """
    query = select(StoredEvent, Address.email).outerjoin(
        Address, Address.email_hash == StoredEvent.email_hash
    )
    if since is not None:
        query = query.where(StoredEvent.occurred_at >= since)
    if provider is not None:
        query = query.where(StoredEvent.provider == provider)
    if digest is not None:
        query = query.where(StoredEvent.email_hash == digest)
    query = query.order_by(StoredEvent.occurred_at, StoredEvent.id)
    for stored, email in db.session.execute(query.execution_options(yield_per=5000)):
        yield {
            "provider": stored.provider,
            "provider_event_id": stored.provider_event_id,
            "type": stored.type,
            "bounce_class": stored.bounce_class,
            "address": email,
            "occurred_at": stored.occurred_at.isoformat(),
            "machine": stored.machine,
            "list": stored.list_slug or stored.list_ref,
            "campaign": stored.campaign,
            "message_id": stored.message_id,
            "url": stored.url,
        }


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
_LIST_EXISTS = Prepared(select(MailingList.id).where(MailingList.slug == bindparam("slug")))


def _engagement_update(count: str, last_seen: str, *also: str) -> Prepared:
    """Add one to ``count`` and move ``last_seen`` (and ``also``) forward, unless the person
    objected or was erased (R-GDPR-10) or their data is restricted (Art. 18)."""
    table = Address.__table__
    at = bindparam("at", type_=table.c[last_seen].type)

    def later(column: str) -> Any:
        current = table.c[column]
        return case((current.is_(None) | (current < at), at), else_=current)

    stopped = exists().where(
        Suppression.email_hash == table.c.email_hash,
        Suppression.scope == literal_column(f"'{GLOBAL_SCOPE}'"),
        Suppression.reason.in_([literal_column("'objected'"), literal_column("'erased'")]),
    )
    statement = (
        update(table)
        .where(
            and_(
                table.c.email_hash == bindparam("email_hash"),
                not_(table.c.restricted),
                not_(stopped),
            )
        )
        .values(
            {
                count: table.c[count] + 1,
                last_seen: later(last_seen),
                **{column: later(column) for column in also},
            }
        )
    )
    return Prepared(statement)


_ENGAGEMENT = {
    "sent": _engagement_update("sent_count", "last_sent_at"),
    "opened": _engagement_update("open_count", "last_opened_at"),
    # A click on a link is an active contact; an open is not (R-RET-2).
    "clicked": _engagement_update("click_count", "last_clicked_at", "last_active_at"),
}
