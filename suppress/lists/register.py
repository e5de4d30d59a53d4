"""The lists themselves: created with a slug that becomes a suppression scope, found by it, and
counted (subscribers by status and by lawful basis, suppressions in the list's scope).
"""

import re
from dataclasses import dataclass

from sqlalchemy import case, func, or_, select

from suppress.models import (
    AUDIENCES,
    GLOBAL_SCOPE,
    MailingList,
    Subscription,
    Suppression,
    db,
    utcnow,
)

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


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
