"""What a batch of a contact import reads, a few queries for the whole batch: the addresses, the
suppressions that cover them on the list, and their subscriptions to it.
"""

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from sqlalchemy import or_, select

from suppress.lists.contacts import ADDRESS_DETAILS, CONSENT_RECORD
from suppress.models import GLOBAL_SCOPE, Address, Subscription, Suppression, db, utcnow

# Hashes per IN (...) list: well inside SQLite's and PostgreSQL's limits on bound parameters.
IN_CLAUSE_SIZE = 5_000
LOADED_ADDRESS_COLUMNS = (
    "id",
    "email_hash",
    "email",
    "kind",
    "restricted",
    *CONSENT_RECORD,
    *ADDRESS_DETAILS,
)


def _chunks(values: Collection[Any]) -> Iterator[list[Any]]:
    listed = [*values]
    for start in range(0, len(listed), IN_CLAUSE_SIZE):
        yield listed[start : start + IN_CLAUSE_SIZE]


def addresses_by_hash(digests: Collection[str]) -> dict[str, dict[str, Any]]:
    columns = [getattr(Address, name) for name in LOADED_ADDRESS_COLUMNS]
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(digests):
        for row in db.session.execute(select(*columns).where(Address.email_hash.in_(chunk))):
            found[row.email_hash] = row._asdict()
    return found


def suppressions_by_hash(digests: Collection[str], slug: str) -> dict[str, tuple[str, str]]:
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


def subscriptions_by_hash(
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
