"""Suppressing and lifting one address through the session: ``suppress``, ``lift``, the person's
own ``resubscribe``, and the answer to why they unsubscribed (``record_feedback``).

The path of the CLI, inbound mail and the link pages' forms. Each call writes its row and its
audit entry and never commits: the caller owns the transaction, so that a web view can commit
before it answers 2xx. The one-click link and webhook events take the shorter way of ``direct``.
"""

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, Row, Select, bindparam, exists, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from suppress.addresses import normalise_and_hash
from suppress.models import GLOBAL_SCOPE, AuditEntry, MailingList, Suppression, db, utcnow
from suppress.suppressions.audit import audit
from suppress.suppressions.terms import (
    PROTECTED_REASONS,
    LiftRefused,
    NotSuppressed,
    SuppressionError,
    check_liftable,
    check_reason,
    unknown_scope,
)
from suppress.suppressions.upsert import WRITTEN_COLUMNS, upsert

# A person may undo only what they did themselves through their own links: never a complaint,
# a bounce, an import or an administrator's suppression.
SELF_SERVICE_SOURCES = frozenset({"link", "one-click", "mailto", "preferences"})
SELF_SERVICE_REASONS = frozenset({"unsubscribed", "objected"})
FEEDBACK_ANSWERS = ("too_many", "not_relevant", "never_signed_up", "other")


def suppress(
    address: str,
    *,
    reason: str,
    source: str,
    scope: str = GLOBAL_SCOPE,
    actor: str | None = None,
    note: str | None = None,
    expires_at: datetime | None = None,
) -> Row[Any]:
    """Suppress ``address`` in ``scope``; idempotent, and audited whenever something changed.

    Returns the stored row (a read-only snapshot). One statement checks the scope, decides and
    writes (see ``upsert``) and hands the row back only when it wrote one, so a repeat, or a
    scope that names no list, costs one more read.
    Core statements, not ORM objects: the write lock is held from the first write to the
    commit, and on SQLite every other writer waits that long (a one-click burst).
    """
    email, digest = normalise_and_hash(address)
    check_reason(reason)
    connection = db.session.connection()
    row = _written_row(email, digest, scope, reason, source, note, expires_at)
    now = row["created_at"]
    written = connection.execute(_returning_upsert(connection.dialect.name), row).first()
    if written is None:
        stored = connection.execute(_STORED_ROW, {"email_hash": digest, "scope": scope}).first()
        if stored is None:
            raise unknown_scope(scope)
        return stored
    action = "suppression.add" if written.created_at == now else "suppression.update"
    audit(actor or source, action, written, why=note, email=email)
    return written


def _written_row(
    email: str | None,
    digest: str,
    scope: str,
    reason: str,
    source: str,
    note: str | None,
    expires_at: datetime | None,
) -> dict[str, Any]:
    """The values of WRITTEN_COLUMNS for one upsert, created now."""
    return {
        "email_hash": digest,
        "email": email,
        "scope": scope,
        "reason": reason,
        "source": source,
        "note": note,
        "created_at": utcnow(),
        "expires_at": expires_at,
    }


def lift(
    address: str,
    *,
    actor: str,
    scope: str = GLOBAL_SCOPE,
    why: str | None = None,
    override_reason: str | None = None,
) -> Suppression:
    """Remove a suppression. Complaints, hard bounces and erasures need ``override_reason``."""
    email, digest = normalise_and_hash(address)
    row = _find(digest, scope)
    if row is None:
        raise NotSuppressed(f"the address is not suppressed in scope {scope!r}")
    check_liftable(row, override_reason)
    audit(
        actor,
        "suppression.lift",
        row,
        why=override_reason or why,
        email=email,
        overridden=row.reason in PROTECTED_REASONS,
    )
    db.session.delete(row)
    db.session.flush()
    return row


def resubscribe(address: str, *, scope: str = GLOBAL_SCOPE, actor: str) -> Suppression | None:
    """Undo the person's own unsubscribe in ``scope``; None when there was nothing to undo.

    Raises LiftRefused when the suppression was not theirs to undo (a complaint, a bounce, an
    import, an administrator's decision): those need the controller, not a link.
    """
    _, digest = normalise_and_hash(address)
    row = _find(digest, scope)
    if row is None:
        return None
    if row.source not in SELF_SERVICE_SOURCES or row.reason not in SELF_SERVICE_REASONS:
        raise LiftRefused(f"the suppression in scope {scope!r} cannot be undone by the person")
    return lift(address, actor=actor, scope=scope, why="re-subscribed by the person")


def record_feedback(address: str, *, scope: str, answer: str, actor: str) -> None:
    """Keep the optional answer to "why did you unsubscribe?", from a fixed set of answers
    (free text could carry personal data nobody asked for)."""
    if answer not in FEEDBACK_ANSWERS:
        raise SuppressionError(f"unknown answer {answer!r}")
    _, digest = normalise_and_hash(address)
    row = _find(digest, scope)
    if row is None:
        raise NotSuppressed(f"the address is not suppressed in scope {scope!r}")
    db.session.add(
        AuditEntry(
            actor=actor,
            action="suppression.feedback",
            email_hash=digest,
            scope=scope,
            detail={"answer": answer},
        )
    )


@functools.cache
def _returning_upsert(dialect_name: str) -> Insert:
    """The upsert handing back the written row; built once, as building it costs more than
    running it (a burst of one-click POSTs runs it thousands of times)."""
    dialect = postgresql.dialect() if dialect_name == "postgresql" else sqlite.dialect()
    return upsert(dialect, _bound_row_in_known_scope()).returning(*Suppression.__table__.c)


def _bound_row_in_known_scope() -> Select:
    """The bound row, only if its scope is global or names a list: a single write checks its
    scope in the same statement; bulk imports check their scopes once instead."""
    columns = Suppression.__table__.c
    scope = bindparam("scope", type_=columns.scope.type)
    known = or_(scope == GLOBAL_SCOPE, exists().where(MailingList.slug == scope))
    values = select(*(bindparam(name, type_=columns[name].type) for name in WRITTEN_COLUMNS))
    return values.where(known)


_STORED_ROW = select(*Suppression.__table__.c).where(
    Suppression.email_hash == bindparam("email_hash"), Suppression.scope == bindparam("scope")
)


def _find(digest: str, scope: str) -> Suppression | None:
    query = select(Suppression).where(Suppression.email_hash == digest, Suppression.scope == scope)
    return db.session.scalars(query, execution_options={"populate_existing": True}).one_or_none()
