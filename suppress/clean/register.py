"""What the register says about a send list's addresses beyond suppression: restriction, and
for a list the lawful basis, consent and audience (R-GDPR-1, R-GDPR-8, R-FI-1, R-FI-5)."""

from collections.abc import Callable
from itertools import chain
from typing import NamedTuple

from flask import current_app
from sqlalchemy import Connection, and_, select

from suppress.addresses import CONSUMER, CONSUMER_DOMAINS, ROLE_LOCAL_PARTS, classify
from suppress.models import Address, MailingList, Subscription, db
from suppress.suppressions import BULK_IN_CLAUSE_SIZE, DIGEST_KEY_BYTES

RESTRICTED = "processing of the address is restricted (GDPR Art. 18)"


class Known(NamedTuple):
    """What the register holds about one address, for the rules after suppression."""

    consumer: bool
    consent: bool
    restricted: bool
    basis: str | None


# An address the register has never seen: no consent, no restriction, no subscription.
STRANGE_CONSUMER = Known(consumer=True, consent=False, restricted=False, basis=None)
STRANGER = Known(consumer=False, consent=False, restricted=False, basis=None)


def rule_broken(address: Known, mailing_list: MailingList) -> tuple[str | None, str]:
    """The first rule after suppression that the address breaks, with the detail to show."""
    if address.restricted:
        return "restricted", RESTRICTED
    slug = mailing_list.slug
    if mailing_list.audience == CONSUMER and address.basis is None:
        return "no_basis", f"no subscription with a lawful basis on {slug}"
    if address.consumer and not address.consent and not mailing_list.similar_products:
        why = f"{slug} is not a similar-products list"
        return "no_consent", f"consumer address without a consent record; {why}"
    if address.consumer and mailing_list.audience != CONSUMER:
        return "wrong_audience", f"consumer address on the b2b list {slug}"
    return None, ""


def classifier() -> Callable[[str], str]:
    """``lists.kind_of`` with the configuration read once, not once per row."""
    config = current_app.config
    roles = ROLE_LOCAL_PARTS | config["ROLE_LOCAL_PARTS"]
    consumers = CONSUMER_DOMAINS | config["CONSUMER_DOMAINS"]
    return lambda normalised: classify(normalised, roles, consumers)


def restricted(connection: Connection, digests: list[bytes] | None = None) -> set[bytes]:
    """The digest keys of the restricted addresses among ``digests``, or of all of them (few:
    restriction is a person's request, GDPR Art. 18)."""
    query = select(Address.email_hash).where(Address.restricted)
    if digests is None:
        hashes = connection.scalars(query)
    else:
        listed = [digest.hex() for digest in digests]
        hashes = chain.from_iterable(
            connection.scalars(
                query.where(Address.email_hash.in_(listed[start : start + BULK_IN_CLAUSE_SIZE]))
            )
            for start in range(0, len(listed), BULK_IN_CLAUSE_SIZE)
        )
    return {bytes.fromhex(digest)[:DIGEST_KEY_BYTES] for digest in hashes}


def known_addresses(digests: set[str], mailing_list: MailingList) -> dict[str, Known]:
    """What the register holds about the addresses it knows, with the list's basis."""
    subscribed = and_(
        Subscription.address_id == Address.id,
        Subscription.list_id == mailing_list.id,
        Subscription.status == "subscribed",
    )
    base = select(
        Address.email_hash,
        Address.kind,
        Address.consent_at.is_not(None),
        Address.restricted,
        Subscription.basis,
    ).outerjoin(Subscription, subscribed)
    listed = [*digests]
    found: dict[str, Known] = {}
    for start in range(0, len(listed), BULK_IN_CLAUSE_SIZE):
        query = base.where(Address.email_hash.in_(listed[start : start + BULK_IN_CLAUSE_SIZE]))
        for digest, kind, consent, restricted, basis in db.session.execute(query):
            found[digest] = Known(kind == CONSUMER, bool(consent), bool(restricted), basis)
    return found
