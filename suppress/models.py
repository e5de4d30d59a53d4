"""The database tables, as SQLAlchemy 2.0 typed models.

This module only describes data; what the data means (when a row may be written, what a
suppression blocks) lives in the domain modules that import it, never the other way round.
Every schema change here comes with an Alembic migration in ``migrations/``.
"""

from datetime import UTC, datetime
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from suppress.vocabulary import BOUNCE_CLASSES, EVENT_TYPES

GLOBAL_SCOPE = "global"

REASONS = (
    "unsubscribed",
    "complained",
    "bounced",
    "soft_bounced",
    "objected",
    "manual",
    "imported",
    "erased",
)
ADDRESS_KINDS = ("b2b", "consumer", "role")
AUDIENCES = ("b2b", "consumer")
SUBSCRIPTION_STATUSES = ("subscribed", "unsubscribed")
# The lawful basis a subscription rests on (RULES.md R-GDPR-1); NULL when none was recorded,
# which ``clean`` drops as ``no_basis``.
BASES = ("consent", "customer_relationship", "b2b_role", "legitimate_interest")
# The digests a partner's opt-out file may hold, of normalised addresses.
HASH_ALGORITHMS = ("md5", "sha256", "sha512")
# What a destination should hold for one suppression: the suppression, or its lift.
SYNC_ACTIONS = ("suppress", "lift")
# Where that stands: not yet accepted by the provider, accepted, or refused for good.
SYNC_STATUSES = ("pending", "accepted", "refused")
# The predicate of the outbox's index of pending rows on SQLite, as SQL.
PENDING_ROW = "status = 'pending'"
# The key of an index's ``info`` naming the only dialect it is created on (``only_on``).
ONLY_ON = "only_on"
# Stable constraint names, so that migrations (and SQLite's batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python on every database.

    SQLite has no time zones and would hand back naive values while PostgreSQL hands back aware
    ones; storing naive UTC and re-attaching UTC on the way out gives one behaviour on both.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)

    def bind_processor(self, dialect: Any) -> Any:
        """On SQLite, the text SQLAlchemy's DateTime stores, made in one step: a webhook batch
        binds thousands of times, and the two-stage default is a tenth of its cost."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        return utc_text


def utc_text(value: datetime | None) -> str | None:
    """An aware time as naive UTC text: what SQLite stores, and what PostgreSQL reads back as
    the same ``timestamp`` (a JSON document of rows carries times this way)."""
    if value is None:
        return None
    if value.tzinfo is UTC:  # nearly every value: the text without its "+00:00"
        return value.isoformat(" ", "microseconds")[:-6]
    if value.tzinfo is None:
        raise ValueError("naive datetime: pass an aware UTC datetime")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)


class Address(db.Model):
    """A person's (or a role mailbox's) address and what the register keeps about it.

    ``email`` becomes NULL when the person is erased; ``email_hash`` stays, because a
    suppression must still match the address if it ever comes back in an import.
    """

    __tablename__ = "addresses"
    __table_args__ = (CheckConstraint(_in("kind", ADDRESS_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    domain: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_source: Mapped[str | None] = mapped_column(String(200))
    consent_text_version: Mapped[str | None] = mapped_column(String(100))
    restricted: Mapped[bool] = mapped_column(default=False)
    # Why mail to this work address concerns the person's duties (R-FI-2), for basis b2b_role.
    role_note: Mapped[str | None] = mapped_column(Text)
    # When the customer relationship behind basis customer_relationship ended (R-FI-1).
    relationship_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The language the person reads (fi, sv, en), for the pages their links open.
    language: Mapped[str | None] = mapped_column(String(8))
    sent_count: Mapped[int] = mapped_column(default=0)
    open_count: Mapped[int] = mapped_column(default=0)
    click_count: Mapped[int] = mapped_column(default=0)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last *active* contact (a human click, not an open): prospects are kept from it
    # (RULES.md R-RET-2).
    last_active_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MailingList(db.Model):
    """A list people subscribe to; its slug is the scope of a list-level suppression."""

    __tablename__ = "mailing_lists"
    __table_args__ = (CheckConstraint(_in("audience", AUDIENCES), name="audience"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    # Who the list is for (R-FI-5): a b2b list must not carry consumer addresses.
    audience: Mapped[str] = mapped_column(String(16), default="b2b", server_default="b2b")
    # Whether the list markets the products a customer bought or similar ones, so that a
    # customer relationship stands in for consent (R-FI-1, the §200 exception).
    similar_products: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Subscription(db.Model):
    """An address on a list: whether it is subscribed, on what basis, since when, from where.

    ``updated_at`` is when the status was last decided; an import never replaces a status with
    one older than that.
    """

    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("address_id", "list_id"),
        CheckConstraint(_in("status", SUBSCRIPTION_STATUSES), name="status"),
        CheckConstraint(_in("basis", BASES), name="basis"),
        Index("ix_subscriptions_list_id_status", "list_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    address_id: Mapped[int] = mapped_column(ForeignKey("addresses.id"))
    list_id: Mapped[int] = mapped_column(ForeignKey("mailing_lists.id"))
    status: Mapped[str] = mapped_column(String(16))
    basis: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(200))
    subscribed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SuppressionTerms:
    """What every suppression records, of an address or of a domain: where it applies (scope
    ``global`` or a list's slug), why, who or what made it, since when and until when."""

    scope: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)

    def is_active(self, now: datetime | None = None) -> bool:
        return self.expires_at is None or self.expires_at > (now or utcnow())


class Suppression(SuppressionTerms, db.Model):
    """One address that must not be mailed, everywhere (scope ``global``) or on one list.

    A suppression stands on its own hash: it needs no Address row, so it survives erasure and
    can be imported for addresses the register has never seen.
    """

    __tablename__ = "suppressions"
    __table_args__ = (
        UniqueConstraint("email_hash", "scope"),
        CheckConstraint(_in("reason", REASONS), name="reason"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(320))


class HashedSuppression(db.Model):
    """A hash of an address that must not be mailed, from a partner's or an affiliate
    network's opt-out file: the address itself was never given, so it is never stored.

    ``digest`` is lower-case hex of the normalised address under ``algorithm``.
    """

    __tablename__ = "hashed_suppressions"
    __table_args__ = (
        UniqueConstraint("algorithm", "digest"),
        CheckConstraint(_in("algorithm", HASH_ALGORITHMS), name="algorithm"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(8))
    digest: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DomainSuppression(SuppressionTerms, db.Model):
    """A domain, or every subdomain of one, that must not be mailed, everywhere (scope
    ``global``) or on one list: a competitor, or a company that asked for no mail to its staff.

    ``pattern`` is ``example.fi`` (that domain only) or ``*.example.fi`` (its subdomains only),
    in the normal form of ``domains.normalise_pattern``.
    """

    __tablename__ = "domain_suppressions"
    __table_args__ = (
        UniqueConstraint("pattern", "scope"),
        CheckConstraint(_in("reason", REASONS), name="reason"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # A domain name of at most 253 characters, after "*.".
    pattern: Mapped[str] = mapped_column(String(255))


class AuditEntry(db.Model):
    """An append-only record of who changed what, when and why.

    ``email_hash`` ties an entry to an address without keeping the address in clear.
    """

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    email_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    scope: Mapped[str | None] = mapped_column(String(64))
    why: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Event(db.Model):
    """One thing an ESP reported about one recipient, in the vocabulary of DESIGN §5.

    Keyed by the address hash, not the address, so the event log holds no address in clear and
    survives the person's erasure only as a hash. ``machine`` marks opens and clicks made by
    privacy proxies and security scanners, which never count as engagement.
    """

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("provider", "provider_event_id"),
        CheckConstraint(_in("type", EVENT_TYPES), name="type"),
        CheckConstraint(_in("bounce_class", BOUNCE_CLASSES), name="bounce_class"),
        # The one secondary index: every event costs a write per index, and a webhook batch
        # stores thousands. Per-address questions (soft bounces, deliveries, exports) use it.
        Index("ix_events_email_hash_type_occurred_at", "email_hash", "type", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(16))
    raw_type: Mapped[str] = mapped_column(String(100))
    email_hash: Mapped[str | None] = mapped_column(String(64))
    bounce_class: Mapped[str | None] = mapped_column(String(8))
    diagnostic: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    list_ref: Mapped[str | None] = mapped_column(String(255))
    list_slug: Mapped[str | None] = mapped_column(String(64))
    campaign: Mapped[str | None] = mapped_column(String(255))
    url: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(Text)
    machine: Mapped[bool] = mapped_column(default=False)
    sender_domain: Mapped[str | None] = mapped_column(String(255))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Destination(db.Model):
    """A marketing tool's account the sync job keeps in step with the suppression list.

    ``target`` is the provider's own name for the scope (a Mailgun domain, a SendGrid
    unsubscribe group, a Postmark message stream, a Mailchimp audience); ``list_slug`` names our
    list whose suppressions it carries besides the global ones. Credentials are never stored
    here: they come from ``SUPPRESS_DEST_<NAME>_*`` or ``SUPPRESS_<PROVIDER>_*``.
    """

    __tablename__ = "destinations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    provider: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(255))
    list_slug: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The newest suppression id seen by the last planning pass: newer rows are not yet planned.
    planned_through: Mapped[int] = mapped_column(default=0, server_default="0")
    planned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pulled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The ``changed_at`` of its oldest pending outbox row (NULL: none), or an earlier moment,
    # never a later one: /healthz reads the lag here rather than from the outbox, which on
    # PostgreSQL has no index of pending rows (see ``SyncState``). Kept by ``sync``.
    oldest_pending_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def only_on(dialect: str, index: Index) -> Index:
    """``index``, created on ``dialect``'s databases only, and saying so in its ``info`` for
    the migrations' autogenerate to read (``migrations.made_on``)."""
    index.info[ONLY_ON] = dialect
    return index.ddl_if(dialect=dialect)


class SyncState(db.Model):
    """What one destination holds, or must be told, about one suppression: the outbox item.

    One row per destination, address and scope. The planner sets ``action`` and ``reason`` to
    what the suppression list says and the status to ``pending`` whenever they differ from what
    the destination accepted; a worker pushes pending rows and records the provider's answer.
    ``email`` is kept so that a lift can still name the address after its suppression is gone.
    """

    __tablename__ = "sync_states"
    __table_args__ = (
        UniqueConstraint("destination_id", "email_hash", "scope"),
        CheckConstraint(_in("action", SYNC_ACTIONS), name="action"),
        CheckConstraint(_in("status", SYNC_STATUSES), name="status"),
        # A worker claims a destination's pending rows oldest first. On SQLite an index holds
        # them by id; a query uses it only by naming the status as a literal (``PENDING_ROW``),
        # as SQLite matches no bound value to the predicate.
        only_on(
            "sqlite",
            Index("ix_sync_states_pending", "destination_id", "id", sqlite_where=text(PENDING_ROW)),
        ),
        # PostgreSQL has no index on the status, and a large plan fills a page only half:
        # recording an outcome then writes the row's new version beside the old one and no
        # index entry (a HOT update), a third of the work of a new version in every index
        # (1,000 rows: 2.6 ms against 8.5 ms). Its claims walk the primary key from the last
        # id claimed, and the planner finds the pending rows' share in its statistics.
        {"postgresql_with": {"fillfactor": 50}},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Deliberately no foreign key: a large plan inserts every row at once, and checking each
    # against ``destinations`` was a third of planning 100,000 rows on PostgreSQL (0.5 s of
    # 1.6 s). ``sync.remove_destination`` deletes a destination's rows in its own transaction.
    destination_id: Mapped[int]
    email_hash: Mapped[str] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(320))
    scope: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(8))
    detail: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    # When the suppression list first wanted this (the sync lag is measured from it).
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditIsAppendOnly(RuntimeError):
    """Raised when code tries to change or delete an audit entry through the ORM."""


@event.listens_for(Session, "before_flush")
def _keep_audit_append_only(session: Session, flush_context: Any, instances: Any) -> None:
    touched = [obj for obj in (*session.dirty, *session.deleted) if isinstance(obj, AuditEntry)]
    if touched:
        raise AuditIsAppendOnly("audit entries cannot be changed or deleted")
