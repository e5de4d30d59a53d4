"""Domain suppressions: every address at a domain, or at any of its subdomains
(``*.example.fi``), written, lifted and listed, and read as the rules that cover a file's
addresses.

Written and audited as an address is (``upsert``, ``audit``). What a pattern is and which
addresses it covers is ``suppress.domains``'s, which never touches the database.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Dialect, Insert, Row, bindparam, select

from suppress.addresses import domain_of, normalise_and_hash
from suppress.domains import DomainRule, DomainRules, covering_patterns, normalise_pattern
from suppress.models import GLOBAL_SCOPE, DomainSuppression, db, utcnow
from suppress.suppressions.audit import audit_domain
from suppress.suppressions.terms import (
    PROTECTED_REASONS,
    NotSuppressed,
    active,
    check_liftable,
    check_reason,
    check_scope,
    in_scope_of,
)
from suppress.suppressions.upsert import upsert

DOMAIN_WRITTEN_COLUMNS = (
    "pattern",
    "scope",
    "reason",
    "source",
    "note",
    "created_at",
    "expires_at",
)


def suppress_domain(
    pattern: str,
    *,
    reason: str,
    source: str,
    scope: str = GLOBAL_SCOPE,
    actor: str | None = None,
    note: str | None = None,
    expires_at: datetime | None = None,
    allow_public_suffix: bool = False,
) -> tuple[Row[Any], bool]:
    """Suppress every address the domain ``pattern`` covers, in ``scope``.

    Written and audited as ``suppress`` writes an address: a repeat keeps the first
    ``created_at``, a stronger reason replaces a weaker one, a lapsed rule starts afresh.
    Returns the stored row and whether this call wrote it. A pattern covering a public suffix
    (``*.fi``) is refused unless ``allow_public_suffix``.
    """
    normalised = normalise_pattern(pattern, allow_public_suffix=allow_public_suffix)
    check_reason(reason)
    check_scope(scope)
    row = {
        "pattern": normalised,
        "scope": scope,
        "reason": reason,
        "source": source,
        "note": note,
        "created_at": utcnow(),
        "expires_at": expires_at,
    }
    connection = db.session.connection()
    written = connection.execute(_domain_upsert(connection.dialect), row).first()
    if written is None:
        return connection.execute(_STORED_DOMAIN_ROW, row).one(), False
    added = written.created_at == row["created_at"]
    action = "domain_suppression.add" if added else "domain_suppression.update"
    audit_domain(actor or source, action, written, why=note)
    return written, True


def _domain_upsert(dialect: Dialect) -> Insert:
    return upsert(
        dialect,
        table=DomainSuppression.__table__,
        key=("pattern", "scope"),
        columns=DOMAIN_WRITTEN_COLUMNS,
    ).returning(*DomainSuppression.__table__.c)


_STORED_DOMAIN_ROW = select(*DomainSuppression.__table__.c).where(
    DomainSuppression.pattern == bindparam("pattern"),
    DomainSuppression.scope == bindparam("scope"),
)


def lift_domain(
    pattern: str,
    *,
    actor: str,
    scope: str = GLOBAL_SCOPE,
    why: str | None = None,
    override_reason: str | None = None,
) -> DomainSuppression:
    """Remove a domain suppression; as for an address, a complaint, hard bounce or erasure
    needs ``override_reason``. Any stored pattern can be lifted, public suffixes included."""
    normalised = normalise_pattern(pattern, allow_public_suffix=True)
    query = select(DomainSuppression).where(
        DomainSuppression.pattern == normalised, DomainSuppression.scope == scope
    )
    row = db.session.scalars(query, execution_options={"populate_existing": True}).one_or_none()
    if row is None:
        raise NotSuppressed(f"the domain pattern {normalised} is not suppressed in scope {scope!r}")
    check_liftable(row, override_reason)
    audit_domain(
        actor,
        "domain_suppression.lift",
        row,
        why=override_reason or why,
        overridden=row.reason in PROTECTED_REASONS,
    )
    db.session.delete(row)
    db.session.flush()
    return row


def domain_suppressions(
    scope: str | None = None, *, lapsed: bool = False
) -> list[DomainSuppression]:
    """The domain suppressions (in ``scope`` if given; lapsed ones only if asked for), each
    domain's exact pattern beside its wildcard, global first."""
    query = select(DomainSuppression)
    if scope is not None:
        query = query.where(DomainSuppression.scope == scope)
    if not lapsed:
        query = query.where(active(utcnow(), DomainSuppression))
    return _by_domain(db.session.scalars(query).all())


def domain_suppressions_for(address: str) -> list[DomainSuppression]:
    """Every domain suppression whose pattern covers ``address``, lapsed ones included."""
    normalised, _ = normalise_and_hash(address)
    query = select(DomainSuppression).where(
        DomainSuppression.pattern.in_(covering_patterns(domain_of(normalised)))
    )
    return _by_domain(db.session.scalars(query).all())


def _by_domain(rows: Iterable[DomainSuppression]) -> list[DomainSuppression]:
    def order(row: DomainSuppression) -> tuple[str, bool, bool, str]:
        wildcard = row.pattern.startswith("*.")
        return (row.pattern.removeprefix("*."), wildcard, row.scope != GLOBAL_SCOPE, row.scope)

    return sorted(rows, key=order)


def domain_rules(list: str | None = None) -> DomainRules:
    """The active domain rules for mail on ``list`` (global ones always), read once into
    memory so that a whole file's addresses are tested without a query each."""
    query = (
        select(DomainSuppression.pattern, DomainSuppression.scope, DomainSuppression.reason)
        .where(in_scope_of(list, DomainSuppression), active(utcnow(), DomainSuppression))
        .order_by(DomainSuppression.scope != GLOBAL_SCOPE)
    )
    return DomainRules(DomainRule(*row) for row in db.session.execute(query))
