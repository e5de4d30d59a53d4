"""A contact import: the rows of a file subscribed to a list a batch per commit, under the rules
on lawful basis (R-GDPR-2, R-FI-1, R-FI-2), never over a person's own or a standing decision.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from suppress.addresses import CONSUMER, InvalidAddress
from suppress.domains import DomainRule, DomainRules
from suppress.lists.addresses import new_address
from suppress.lists.contacts import (
    ADDRESS_DETAILS,
    CONSENT_RECORD,
    Contact,
    ContactRefused,
    contact_of,
)
from suppress.lists.lookups import addresses_by_hash, subscriptions_by_hash, suppressions_by_hash
from suppress.lists.writes import write_addresses, write_subscriptions
from suppress.models import AuditEntry, MailingList, db, utcnow
from suppress.suppressions import domain_rules


@dataclass
class ContactImportReport:
    """What a contact import did with its rows."""

    subscribed: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    rejected: int = 0


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
    addresses = addresses_by_hash(digests)
    suppressed = suppressions_by_hash(digests, mailing_list.slug)
    subscriptions = subscriptions_by_hash(addresses, mailing_list.id)
    stored_addresses = {digest: dict(state) for digest, state in addresses.items()}
    stored_subscriptions = {digest: dict(state) for digest, state in subscriptions.items()}
    for contact in batch:
        address = addresses.get(contact.digest) or new_address(contact.email, contact.digest)
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
    write_addresses(addresses, stored_addresses)
    write_subscriptions(mailing_list.id, subscriptions, stored_subscriptions, addresses)


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
