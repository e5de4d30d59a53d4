"""Mailing lists: the scopes that list-level suppressions and subscriptions refer to."""

import re

from sqlalchemy import select

from suppress.models import GLOBAL_SCOPE, MailingList, db

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
