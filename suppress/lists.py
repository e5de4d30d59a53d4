"""Mailing lists, who is on them and on what basis: the register that links and imports refer to.

A contact import adds subscriptions and never takes back a person's own decision: an address
that left the list, or is suppressed in any way that covers the list (itself, or its domain), is
skipped and left as it is; an older row never replaces a newer status. Every refused row is
reported with its line number, and no message here holds an address in clear.
"""

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from itertools import islice
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from suppress.addresses import (
    CONSUMER,
    CONSUMER_DOMAINS,
    ROLE_LOCAL_PARTS,
    InvalidAddress,
    classify,
    domain_of,
    normalise_and_hash,
)
from suppress.config import LANGUAGES
from suppress.domains import DomainRule, DomainRules
from suppress.models import (
    ADDRESS_KINDS,
    AUDIENCES,
    BASES,
    GLOBAL_SCOPE,
    Address,
    AuditEntry,
    MailingList,
    Subscription,
    Suppression,
    db,
    utcnow,
)
from suppress.suppressions import domain_rules

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
# Hashes per IN (...) list: well inside SQLite's and PostgreSQL's limits on bound parameters.
IN_CLAUSE_SIZE = 5_000
CONSENT_RECORD = ("consent_at", "consent_source", "consent_text_version")
# What an import may set on an address, besides its kind; a blank cell keeps what is stored.
ADDRESS_DETAILS = ("role_note", "language", "relationship_ended_at")
LOADED_ADDRESS_COLUMNS = (
    "id",
    "email_hash",
    "email",
    "kind",
    "restricted",
    *CONSENT_RECORD,
    *ADDRESS_DETAILS,
)
WRITTEN_ADDRESS_COLUMNS = ("kind", *CONSENT_RECORD, *ADDRESS_DETAILS)


class ListError(ValueError):
    """A list that cannot be created as asked; the message says why."""


def create_list(
    slug: str,
    name: str,
    description: str | None = None,
    *,
    audience: str = "b2b",
    similar_products: bool = False,
) -> MailingList:
    """Add a list; its slug becomes a suppression scope, so it is checked like one."""
    if audience not in AUDIENCES:
        raise ListError(f"unknown audience {audience!r}: use {' or '.join(AUDIENCES)}")
    if not SLUG.fullmatch(slug) or slug == GLOBAL_SCOPE:
        raise ListError(
            f"invalid list slug {slug!r}: use 1-64 lower-case letters, digits, '-' or '_', "
            f"not {GLOBAL_SCOPE!r}"
        )
    if db.session.scalar(select(MailingList.id).where(MailingList.slug == slug)) is not None:
        raise ListError(f"a list with the slug {slug!r} already exists")
    mailing_list = MailingList(
        slug=slug,
        name=name.strip() or slug,
        description=description,
        audience=audience,
        similar_products=similar_products,
    )
    db.session.add(mailing_list)
    db.session.flush()
    return mailing_list


def find_list(slug: str) -> MailingList:
    mailing_list = db.session.scalar(select(MailingList).where(MailingList.slug == slug))
    if mailing_list is None:
        raise ListError(f"no mailing list with the slug {slug!r}")
    return mailing_list


def kind_of(normalised: str) -> str:
    """The address's kind (R-FI-2), with the operator's extra role names and consumer domains."""
    config = current_app.config
    return classify(
        normalised,
        ROLE_LOCAL_PARTS | config["ROLE_LOCAL_PARTS"],
        CONSUMER_DOMAINS | config["CONSUMER_DOMAINS"],
    )


def ensure_address(email: str) -> Address:
    """The Address row of ``email``, created on first use; safe when two requests race."""
    normalised, digest = normalise_and_hash(email)
    query = select(Address).where(Address.email_hash == digest)
    address = db.session.scalar(query)
    if address is not None:
        return address
    address = Address(**_new_address(normalised, digest))
    try:
        with db.session.begin_nested():
            db.session.add(address)
    except IntegrityError:
        return db.session.scalars(query).one()
    return address


def _new_address(normalised: str, digest: str) -> dict[str, Any]:
    """What a first sight of an address stores: the same for a link and an import."""
    return {
        "email": normalised,
        "email_hash": digest,
        "domain": domain_of(normalised),
        "kind": kind_of(normalised),
    }


@dataclass(frozen=True)
class ListSummary:
    slug: str
    name: str
    audience: str
    similar_products: bool
    subscribed: int
    unsubscribed: int


def list_summaries(slug: str | None = None) -> list[ListSummary]:
    """Every list (or the one named) with its subscriber counts, by slug."""
    status = Subscription.status
    query = (
        select(
            MailingList.slug,
            MailingList.name,
            MailingList.audience,
            MailingList.similar_products,
            func.count(case((status == "subscribed", 1))),
            func.count(case((status == "unsubscribed", 1))),
        )
        .outerjoin(Subscription, Subscription.list_id == MailingList.id)
        .group_by(MailingList.id)
        .order_by(MailingList.slug)
    )
    if slug is not None:
        query = query.where(MailingList.slug == slug)
    return [ListSummary(*row) for row in db.session.execute(query)]


def subscribers_by_basis(mailing_list: MailingList) -> dict[str | None, int]:
    """How many subscribed addresses rest on each basis (None: no basis recorded)."""
    query = (
        select(Subscription.basis, func.count())
        .where(Subscription.list_id == mailing_list.id, Subscription.status == "subscribed")
        .group_by(Subscription.basis)
    )
    return dict(db.session.execute(query).all())


def suppressed_on(mailing_list: MailingList) -> int:
    """Active suppressions in the list's own scope (global ones are counted elsewhere)."""
    query = select(func.count()).where(
        Suppression.scope == mailing_list.slug,
        or_(Suppression.expires_at.is_(None), Suppression.expires_at > utcnow()),
    )
    return db.session.scalar(query) or 0


class ContactRefused(ValueError):
    """A contact row that cannot be imported; the message says why, never the address."""


@dataclass
class ContactImportReport:
    """What a contact import did with its rows."""

    subscribed: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    rejected: int = 0


@dataclass
class Contact:
    """One usable row of a contact file; ``at`` is when it speaks for (consent, else import)."""

    line: int
    email: str
    digest: str
    basis: str | None
    kind: str | None
    at: datetime
    details: dict[str, Any]


def import_contacts(
    mailing_list: MailingList,
    records: Iterable[tuple[int, Mapping[str, str]]],
    *,
    source: str,
    actor: str,
    batch_size: int,
    on_reject: Callable[[int, str], None],
    on_skip: Callable[[int, str], None],
) -> ContactImportReport:
    """Subscribe the rows of a contact file to ``mailing_list``, a batch per commit.

    Each batch reads its addresses, suppressions and subscriptions in a few queries and writes
    them back with one statement per kind of change; the domain suppressions are read once.
    One audit entry records the import.
    """
    report = ContactImportReport()
    now = utcnow()
    domains = domain_rules(mailing_list.slug)
    contacts = _contacts(records, now, report, on_reject)
    while batch := [*islice(contacts, batch_size)]:
        _import_batch(mailing_list, batch, source, domains, report, on_reject, on_skip)
        db.session.commit()
    db.session.add(
        AuditEntry(
            actor=actor,
            action="subscription.import",
            scope=mailing_list.slug,
            detail={"source": source, **asdict(report)},
        )
    )
    db.session.commit()
    return report


def _contacts(
    records: Iterable[tuple[int, Mapping[str, str]]],
    now: datetime,
    report: ContactImportReport,
    on_reject: Callable[[int, str], None],
) -> Iterator[Contact]:
    for line, record in records:
        try:
            yield contact_of(line, record, now)
        except (InvalidAddress, ContactRefused) as error:
            report.rejected += 1
            on_reject(line, str(error))


def contact_of(line: int, record: Mapping[str, str], now: datetime) -> Contact:
    """The row as a Contact, or ContactRefused saying which cell is wrong."""
    cell = lambda name: (record.get(name) or "").strip() or None  # noqa: E731
    email, digest = normalise_and_hash(record.get("email") or "")
    basis, kind, language = cell("basis"), cell("kind"), cell("language")
    if basis is not None and basis.lower() not in BASES:
        raise ContactRefused(f"unknown basis {basis!r}: use one of {', '.join(BASES)}")
    if kind is not None and kind.lower() not in ADDRESS_KINDS:
        raise ContactRefused(f"unknown kind {kind!r}: use one of {', '.join(ADDRESS_KINDS)}")
    if language is not None and language.lower() not in LANGUAGES:
        raise ContactRefused(f"unknown language {language!r}: use one of {', '.join(LANGUAGES)}")
    consent_at = _moment(cell("consent_at"), "consent_at")
    if consent_at is not None and consent_at > now:
        raise ContactRefused("consent_at is in the future")
    if consent_at is None and (cell("consent_source") or cell("consent_text_version")):
        raise ContactRefused("a consent_source or consent_text_version needs its consent_at")
    details = {
        "consent_at": consent_at,
        "consent_source": cell("consent_source"),
        "consent_text_version": cell("consent_text_version"),
        "role_note": cell("role_note"),
        "language": language and language.lower(),
        "relationship_ended_at": _moment(cell("relationship_ended_at"), "relationship_ended_at"),
    }
    return Contact(
        line,
        email,
        digest,
        basis and basis.lower(),
        kind and kind.lower(),
        consent_at or now,
        details,
    )


def _moment(text: str | None, column: str) -> datetime | None:
    """An ISO 8601 date or time; UTC unless it says otherwise."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError:
            raise ContactRefused(f"{column} {text!r} is not an ISO 8601 date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _import_batch(
    mailing_list: MailingList,
    batch: list[Contact],
    source: str,
    domains: DomainRules,
    report: ContactImportReport,
    on_reject: Callable[[int, str], None],
    on_skip: Callable[[int, str], None],
) -> None:
    digests = {contact.digest for contact in batch}
    addresses = _addresses_by_hash(digests)
    suppressed = _suppressions_by_hash(digests, mailing_list.slug)
    subscriptions = _subscriptions_by_hash(addresses, mailing_list.id)
    stored_addresses = {digest: dict(state) for digest, state in addresses.items()}
    stored_subscriptions = {digest: dict(state) for digest, state in subscriptions.items()}
    for contact in batch:
        address = addresses.get(contact.digest) or _new_address(contact.email, contact.digest)
        merged = _merged(address, contact)
        problem = _problem(contact, merged)
        if problem:
            report.rejected += 1
            on_reject(contact.line, problem)
            continue
        subscription = subscriptions.get(contact.digest)
        suppression = suppressed.get(contact.digest)
        rule = domains.covering(contact.email) if domains else None
        why = _why_skipped(contact, address, subscription, suppression, rule)
        if why:
            report.skipped += 1
            on_skip(contact.line, why)
            continue
        addresses[contact.digest] = merged
        if subscription is None:
            report.subscribed += 1
            subscriptions[contact.digest] = {
                "status": "subscribed",
                "basis": contact.basis,
                "source": source,
                "subscribed_at": contact.at,
                "updated_at": contact.at,
            }
        elif contact.basis is None or contact.basis == subscription["basis"]:
            report.unchanged += 1
        else:
            report.updated += 1
            subscription.update(basis=contact.basis, source=source, updated_at=contact.at)
    _write_addresses(addresses, stored_addresses)
    _write_subscriptions(mailing_list.id, subscriptions, stored_subscriptions, addresses)


def _merged(address: Mapping[str, Any], contact: Contact) -> dict[str, Any]:
    """The address as the row would leave it: blank cells keep what is stored, and a consent
    record replaces the stored one only when it is at least as recent."""
    merged = dict(address)
    merged["kind"] = contact.kind or address["kind"]
    consent_at = contact.details["consent_at"]
    if consent_at is not None and (
        address.get("consent_at") is None or consent_at >= address["consent_at"]
    ):
        merged.update({name: contact.details[name] for name in CONSENT_RECORD})
    for name in ADDRESS_DETAILS:
        if contact.details[name] is not None:
            merged[name] = contact.details[name]
    return merged


def _problem(contact: Contact, address: Mapping[str, Any]) -> str | None:
    """Why the row breaks a rule on lawful basis (R-GDPR-2, R-FI-1, R-FI-2), if it does."""
    consumer = address["kind"] == CONSUMER
    if contact.basis == "consent" and consumer:
        missing = [name for name in CONSENT_RECORD if not address.get(name)]
        if missing:
            return (
                "a consumer's consent must be demonstrable: "
                f"no {', '.join(missing)} in the row or on record"
            )
    if contact.basis == "b2b_role":
        if consumer:
            return "basis b2b_role does not apply to a consumer address"
        if not address.get("role_note"):
            return "basis b2b_role needs a role_note saying how the mail concerns the job"
    return None


def _why_skipped(
    contact: Contact,
    address: Mapping[str, Any],
    subscription: Mapping[str, Any] | None,
    suppression: tuple[str, str] | None,
    domain_rule: DomainRule | None,
) -> str | None:
    """Why the row must not change the subscription: the person's own or a standing decision."""
    if suppression is not None:
        scope, reason = suppression
        return f"suppressed in {scope} ({reason})"
    if domain_rule is not None:
        return f"suppressed by {domain_rule}"
    if "id" in address and address["email"] is None:
        return "the address was erased"
    if address.get("restricted"):
        return "processing of the address is restricted (GDPR Art. 18)"
    if subscription is None:
        return None
    if subscription["status"] == "unsubscribed":
        return f"unsubscribed from the list on {subscription['updated_at']:%F}"
    if subscription["updated_at"] > contact.at:
        return f"the list holds a newer status, from {subscription['updated_at']:%F %H:%M} UTC"
    return None


def _chunks(values: Collection[Any]) -> Iterator[list[Any]]:
    listed = [*values]
    for start in range(0, len(listed), IN_CLAUSE_SIZE):
        yield listed[start : start + IN_CLAUSE_SIZE]


def _addresses_by_hash(digests: Collection[str]) -> dict[str, dict[str, Any]]:
    columns = [getattr(Address, name) for name in LOADED_ADDRESS_COLUMNS]
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(digests):
        for row in db.session.execute(select(*columns).where(Address.email_hash.in_(chunk))):
            found[row.email_hash] = row._asdict()
    return found


def _suppressions_by_hash(digests: Collection[str], slug: str) -> dict[str, tuple[str, str]]:
    """The active suppression that covers each address on the list; global first."""
    found: dict[str, tuple[str, str]] = {}
    active = or_(Suppression.expires_at.is_(None), Suppression.expires_at > utcnow())
    for chunk in _chunks(digests):
        query = select(Suppression.email_hash, Suppression.scope, Suppression.reason).where(
            Suppression.email_hash.in_(chunk),
            Suppression.scope.in_([GLOBAL_SCOPE, slug]),
            active,
        )
        for digest, scope, reason in db.session.execute(query):
            if digest not in found or scope == GLOBAL_SCOPE:
                found[digest] = (scope, reason)
    return found


def _subscriptions_by_hash(
    addresses: Mapping[str, Mapping[str, Any]], list_id: int
) -> dict[str, dict[str, Any]]:
    hash_of = {address["id"]: digest for digest, address in addresses.items()}
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(hash_of):
        query = select(
            Subscription.id,
            Subscription.address_id,
            Subscription.status,
            Subscription.basis,
            Subscription.source,
            Subscription.updated_at,
        ).where(Subscription.list_id == list_id, Subscription.address_id.in_(chunk))
        for row in db.session.execute(query):
            found[hash_of[row.address_id]] = row._asdict()
    return found


def _write_addresses(
    addresses: Mapping[str, dict[str, Any]], stored: Mapping[str, Mapping[str, Any]]
) -> None:
    """Insert the new addresses and update the changed ones, then give every one its id."""
    new = [address for address in addresses.values() if "id" not in address]
    if new:
        now = utcnow()
        rows = [{**_blank_address(), **address, "created_at": now} for address in new]
        _insert_many(Address, rows)
        for digest, state in _addresses_by_hash([row["email_hash"] for row in new]).items():
            addresses[digest]["id"] = state["id"]
    changed = [
        {"b_id": address["id"], **{f"b_{name}": address[name] for name in WRITTEN_ADDRESS_COLUMNS}}
        for digest, address in addresses.items()
        if digest in stored and _differs(address, stored[digest], WRITTEN_ADDRESS_COLUMNS)
    ]
    if changed:
        db.session.execute(_UPDATE_ADDRESS, changed)


def _insert_many(model: Any, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` in one executemany, skipping any a concurrent import inserted first."""
    postgres = db.session.get_bind().dialect.name == "postgresql"
    statement = (postgresql if postgres else sqlite).insert(model).on_conflict_do_nothing()
    db.session.execute(statement, rows)


def _blank_address() -> dict[str, Any]:
    """Every column an import writes, so that each row of one insert has the same keys."""
    return {
        "restricted": False,
        "sent_count": 0,
        "open_count": 0,
        "click_count": 0,
        **dict.fromkeys((*CONSENT_RECORD, *ADDRESS_DETAILS)),
    }


def _differs(new: Mapping[str, Any], old: Mapping[str, Any], names: Iterable[str]) -> bool:
    return any(new.get(name) != old.get(name) for name in names)


def _write_subscriptions(
    list_id: int,
    subscriptions: Mapping[str, Mapping[str, Any]],
    stored: Mapping[str, Mapping[str, Any]],
    addresses: Mapping[str, Mapping[str, Any]],
) -> None:
    """Insert the new subscriptions and update those a newer row changed."""
    new = [
        {"address_id": addresses[digest]["id"], "list_id": list_id, **subscription}
        for digest, subscription in subscriptions.items()
        if "id" not in subscription
    ]
    if new:
        _insert_many(Subscription, new)
    changed = [
        {"b_id": subscription["id"], **{f"b_{name}": subscription[name] for name in _SET}}
        for digest, subscription in subscriptions.items()
        if "id" in subscription and _differs(subscription, stored[digest], _SET)
    ]
    if changed:
        db.session.execute(_UPDATE_SUBSCRIPTION, changed)


def _update_by_id(table: Any, names: Iterable[str]) -> Any:
    """An UPDATE of ``names`` by primary key, for executemany (bound names must differ from
    column names, hence the prefix)."""
    return (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values({name: bindparam(f"b_{name}", type_=table.c[name].type) for name in names})
    )


_SET = ("basis", "source", "updated_at")
_UPDATE_ADDRESS = _update_by_id(Address.__table__, WRITTEN_ADDRESS_COLUMNS)
_UPDATE_SUBSCRIPTION = _update_by_id(Subscription.__table__, _SET)
