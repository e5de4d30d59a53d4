"""Mailing lists and the addresses on them: the register that links and imports refer to."""

import re

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
from suppress.models import GLOBAL_SCOPE, Address, MailingList, db

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class ListError(ValueError):
    """A list that cannot be created as asked; the message says why."""


def create_list(slug: str, name: str, description: str | None = None) -> MailingList:
    """Add a list; its slug becomes a suppression scope, so it is checked like one."""
    if not SLUG.fullmatch(slug) or slug == GLOBAL_SCOPE:
        raise ListError(
            f"invalid list slug {slug!r}: use 1-64 lower-case letters, digits, '-' or '_', "
            f"not {GLOBAL_SCOPE!r}"
        )
    if db.session.scalar(select(MailingList.id).where(MailingList.slug == slug)) is not None:
        raise ListError(f"a list with the slug {slug!r} already exists")
    mailing_list = MailingList(slug=slug, name=name.strip() or slug, description=description)
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
    address = Address(
        email=normalised,
        email_hash=digest,
        domain=domain_of(normalised),
        kind=kind_of(normalised),
    )
    try:
        with db.session.begin_nested():
            db.session.add(address)
    except IntegrityError:
        return db.session.scalars(query).one()
    return address
