"""The audit entry that every change to a suppression writes, in each way the writers run:
through the session (``audit``, ``audit_domain``), on a direct transaction (``audit_entry`` run
as ``DIRECT_AUDIT_INSERT``) and for a whole batch in one statement (``HASHED_AUDIT``).

An entry names the address by its hash alone, never in clear, not even inside ``why``; a domain
suppression's names its pattern. Entries are only added, never changed.
"""

import re
from typing import Any

from sqlalchemy import Dialect, Insert, bindparam, func, insert, literal_column, null, select
from sqlalchemy.sql.expression import FromClause

from suppress.database import Bulk, Prepared
from suppress.models import AuditEntry, Suppression, db, utcnow


def _audit_rows(dialect: Dialect, incoming: FromClause) -> Insert:
    """Audit entries from the ``incoming`` rows, their detail built in SQL (a JSON value does
    not bind as an array element)."""
    build = func.json_build_object if dialect.name == "postgresql" else func.json_object
    detail = build(
        literal_column("'reason'"), incoming.c.reason, literal_column("'source'"), incoming.c.source
    )
    given = [incoming.c[name] for name in ("at", "actor", "action", "email_hash", "scope")]
    return insert(AuditEntry.__table__).from_select(
        ("at", "actor", "action", "email_hash", "scope", "why", "detail"),
        select(*given, null(), detail),
    )


HASHED_AUDIT = Bulk(
    {
        **{
            name: AuditEntry.__table__.c[name].type
            for name in ("at", "actor", "action", "email_hash", "scope")
        },
        "reason": Suppression.__table__.c.reason.type,
        "source": Suppression.__table__.c.source.type,
    },
    _audit_rows,
)


def audit(
    actor: str,
    action: str,
    row: Any,
    *,
    why: str | None,
    email: str,
    **detail: Any,
) -> None:
    """Record a change to ``row``; the address is never written in clear, even inside ``why``."""
    entry = audit_entry(actor, action, row.email_hash, row.scope, row.reason, row.source)
    entry["why"] = _redact(why, email)
    entry["detail"].update(detail)
    db.session.connection().execute(_AUDIT_INSERT, entry)


def audit_entry(
    actor: str, action: str, email_hash: str | None, scope: str, reason: str, source: str
) -> dict[str, Any]:
    return {
        "at": utcnow(),
        "actor": actor,
        "action": action,
        "email_hash": email_hash,
        "scope": scope,
        "why": None,
        "detail": {"reason": reason, "source": source},
    }


_AUDIT_INSERT = insert(AuditEntry.__table__).values(
    {
        column.name: bindparam(column.name)
        for column in AuditEntry.__table__.c
        if column.name != "id"
    }
)
DIRECT_AUDIT_INSERT = Prepared(_AUDIT_INSERT)


def _redact(text: str | None, email: str) -> str | None:
    if not text:
        return text
    return re.sub(re.escape(email), "[address]", text, flags=re.IGNORECASE)


def audit_domain(actor: str, action: str, row: Any, *, why: str | None, **detail: Any) -> None:
    """Record a change to a domain suppression: no address, so no hash; the pattern instead."""
    entry = audit_entry(actor, action, None, row.scope, row.reason, row.source)
    entry["why"] = why
    entry["detail"].update(pattern=row.pattern, **detail)
    db.session.connection().execute(_AUDIT_INSERT, entry)
