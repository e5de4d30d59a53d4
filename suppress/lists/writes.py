"""What a batch of a contact import writes back: one statement per kind of change, an insert
that skips what a concurrent import inserted first and an executemany update by id.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.dialects import postgresql, sqlite

from suppress.lists.contacts import ADDRESS_DETAILS, CONSENT_RECORD
from suppress.lists.lookups import addresses_by_hash
from suppress.models import Address, Subscription, db, utcnow

WRITTEN_ADDRESS_COLUMNS = ("kind", *CONSENT_RECORD, *ADDRESS_DETAILS)


def write_addresses(
    addresses: Mapping[str, dict[str, Any]], stored: Mapping[str, Mapping[str, Any]]
) -> None:
    """Insert the new addresses and update the changed ones, then give every one its id."""
    new = [address for address in addresses.values() if "id" not in address]
    if new:
        now = utcnow()
        rows = [{**_blank_address(), **address, "created_at": now} for address in new]
        _insert_many(Address, rows)
        for digest, state in addresses_by_hash([row["email_hash"] for row in new]).items():
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


def write_subscriptions(
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
