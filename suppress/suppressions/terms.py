"""What every suppression, of an address or of a domain, may say and when it applies: the
scopes and reasons it may name, the refusals (``SuppressionError``), the reasons that need an
override to be lifted, and the SQL conditions for the suppressions that apply to mail on a list
and are in force.

Nothing here writes: the writers beside it check their input here and build their queries from
these conditions, so that every path refuses the same things in the same words.
"""

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select

from suppress.models import GLOBAL_SCOPE, REASONS, MailingList, Suppression, SuppressionTerms, db

# Lifting these needs an override reason: mailing a complainer or a dead mailbox again harms the
# sender's reputation, and an erased person asked never to be processed again.
PROTECTED_REASONS = frozenset({"complained", "bounced", "erased"})


class SuppressionError(ValueError):
    """A request the suppression list refuses; the message says why, without the address."""


class UnknownScope(SuppressionError):
    pass


class UnknownReason(SuppressionError):
    pass


class NotSuppressed(SuppressionError):
    pass


class LiftRefused(SuppressionError):
    pass


def known_scopes() -> set[str]:
    return {GLOBAL_SCOPE, *db.session.scalars(select(MailingList.slug))}


def check_scope(scope: str, scopes: Collection[str] | None = None) -> str:
    scopes = known_scopes() if scopes is None else scopes
    if scope not in scopes:
        raise unknown_scope(scope)
    return scope


def unknown_scope(scope: str) -> UnknownScope:
    return UnknownScope(f"unknown scope {scope!r}: use 'global' or the slug of a mailing list")


def check_reason(reason: str) -> str:
    if reason not in REASONS:
        raise UnknownReason(f"unknown reason {reason!r}: use one of {', '.join(REASONS)}")
    return reason


def check_liftable(row: SuppressionTerms, override_reason: str | None) -> None:
    if row.reason in PROTECTED_REASONS and not (override_reason or "").strip():
        raise LiftRefused(
            f"the suppression in scope {row.scope!r} records {row.reason!r}: lifting it needs an "
            "explicit override reason"
        )


def in_scope_of(
    list_slug: str | None, model: type[SuppressionTerms] = Suppression
) -> ColumnElement[bool]:
    scopes = [GLOBAL_SCOPE] if list_slug in (None, GLOBAL_SCOPE) else [GLOBAL_SCOPE, list_slug]
    return model.scope.in_(scopes)


def active(now: datetime, model: type[SuppressionTerms] = Suppression) -> ColumnElement[bool]:
    return or_(model.expires_at.is_(None), model.expires_at > now)
