"""An address as the register first sees it: its row, created once (by a link or an import),
and its kind (R-FI-2) as the operator's configuration extends it.
"""

from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from suppress.addresses import (
    CONSUMER_DOMAINS,
    ROLE_LOCAL_PARTS,
    classify,
    domain_of,
    normalise_and_hash,
)
from suppress.models import Address, db


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
    address = Address(**new_address(normalised, digest))
    try:
        with db.session.begin_nested():
            db.session.add(address)
    except IntegrityError:
        return db.session.scalars(query).one()
    return address


def new_address(normalised: str, digest: str) -> dict[str, Any]:
    """What a first sight of an address stores: the same for a link and an import."""
    return {
        "email": normalised,
        "email_hash": digest,
        "domain": domain_of(normalised),
        "kind": kind_of(normalised),
    }
