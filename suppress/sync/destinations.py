"""Destinations: the accounts at the ESPs that the sync job keeps in step with the suppression
list, each added, found and removed by name, and the ``Account`` its provider's API is reached
through, with the settings the configuration gives it.

A destination is checked when it is added, so that a typo fails then rather than in the night's
pass; removing it forgets its outbox, never what the provider already holds.
"""

import re
from collections.abc import Mapping
from typing import Any

from flask import current_app
from sqlalchemy import delete, func, select

from suppress.config import ConfigError
from suppress.lists import ListError, find_list
from suppress.models import GLOBAL_SCOPE, Destination, SyncState, db
from suppress.providers import PROVIDERS
from suppress.providers.base import Provider
from suppress.providers.syncing import Account

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,62}")


class SyncError(ValueError):
    """A destination cannot be added, found or reached as asked."""


def syncing_providers() -> dict[str, type[Provider]]:
    """The providers that have an API to push suppressions to."""
    return {slug: provider for slug, provider in PROVIDERS.items() if provider.PUSH_BATCH}


def account_for(destination: Destination, config: Mapping[str, Any]) -> Account:
    provider = PROVIDERS[destination.provider]
    settings = provider.read_api_settings(config, destination.name)
    target = destination.target or (
        settings.get(provider.TARGET_SETTING) if provider.TARGET_SETTING else None
    )
    if provider.TARGET and not target:
        raise ConfigError(
            f"destination {destination.name!r} needs a target ({provider.TARGET}): "
            f"give --target or set SUPPRESS_{provider.slug.upper()}_{provider.TARGET_SETTING}"
        )
    api = provider.api(settings, timeout=config["SYNC_TIMEOUT"], retries=config["SYNC_RETRIES"])
    return Account(
        name=destination.name,
        target=target,
        list_slug=destination.list_slug,
        settings=settings,
        api=api,
    )


def add_destination(
    name: str, provider: str, *, target: str | None = None, list_slug: str | None = None
) -> Destination:
    """A new destination, checked now so that a typo fails here rather than at 3 a.m."""
    if not NAME_PATTERN.fullmatch(name):
        raise SyncError(
            "a destination name is a lower-case letter, then letters, digits, - or _ "
            "(it becomes part of SUPPRESS_DEST_<NAME>_* variables)"
        )
    if provider not in syncing_providers():
        raise SyncError(
            f"{provider!r} has no suppression API to sync to "
            f"(these have: {', '.join(syncing_providers())})"
        )
    if db.session.scalar(select(Destination.id).where(Destination.name == name)):
        raise SyncError(f"a destination named {name!r} exists already")
    if list_slug:
        try:
            find_list(list_slug)
        except ListError as error:
            raise SyncError(str(error)) from None
    destination = Destination(name=name, provider=provider, target=target, list_slug=list_slug)
    account_for(destination, current_app.config).api.close()
    db.session.add(destination)
    db.session.flush()
    return destination


def find_destination(name: str) -> Destination:
    destination = db.session.scalar(select(Destination).where(Destination.name == name))
    if destination is None:
        raise SyncError(f"no destination named {name!r}")
    return destination


def all_destinations() -> list[Destination]:
    return list(db.session.scalars(select(Destination).order_by(Destination.name)))


def remove_destination(name: str) -> None:
    """Forget a destination and its outbox; what it already holds stays at the provider.

    The outbox rows go here, in the same transaction: no foreign key cascades them (see
    ``SyncState.destination_id``)."""
    destination = find_destination(name)
    db.session.execute(delete(SyncState).where(SyncState.destination_id == destination.id))
    db.session.delete(destination)
    db.session.flush()


def status_counts(destination: Destination) -> dict[tuple[str, str], int]:
    """Outbox rows by (action, status)."""
    rows = db.session.execute(
        select(SyncState.action, SyncState.status, func.count())
        .where(SyncState.destination_id == destination.id)
        .group_by(SyncState.action, SyncState.status)
    )
    return {(action, status): count for action, status, count in rows}


def scopes_of(destination: Destination) -> list[str]:
    return [GLOBAL_SCOPE, destination.list_slug] if destination.list_slug else [GLOBAL_SCOPE]
