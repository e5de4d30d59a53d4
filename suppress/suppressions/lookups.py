"""Who must not be mailed: whether an address is suppressed, every suppression of an address, and
which of many addresses are suppressed, by a suppression of their own or of their domain.

Reads only. A few candidates are looked up through the unique index, many matched against one
read of the suppressions in scope; a long file matched in memory takes them from ``packed``.
"""

import hashlib
from collections.abc import Collection, Iterable

from sqlalchemy import and_, func, or_, select

from suppress.addresses import domain_of, normalise_and_hash
from suppress.domains import covering_patterns
from suppress.models import GLOBAL_SCOPE, DomainSuppression, Suppression, db, utcnow
from suppress.suppressions.domains import domain_rules
from suppress.suppressions.terms import active, in_scope_of

# Up to this many candidates, look each one up through the unique index; past it, one scan of
# the suppressions in scope is cheaper than thousands of indexed queries.
INDEXED_LOOKUP_LIMIT = 20_000
IN_CLAUSE_SIZE = 500
# Hashes per IN (...) list for a whole chunk of a file: within both databases' parameter limits.
BULK_IN_CLAUSE_SIZE = 5_000


def is_suppressed(address: str, list: str | None = None) -> bool:
    """Whether mail to ``address`` is blocked: globally or, given a list slug, on that list,
    by a suppression of the address or of a domain pattern that covers it."""
    normalised, digest = normalise_and_hash(address)
    now = utcnow()
    own = select(Suppression.id).where(
        Suppression.email_hash == digest, in_scope_of(list), active(now)
    )
    by_domain = select(DomainSuppression.id).where(
        DomainSuppression.pattern.in_(covering_patterns(domain_of(normalised))),
        in_scope_of(list, DomainSuppression),
        active(now, DomainSuppression),
    )
    return bool(db.session.scalar(select(or_(own.exists(), by_domain.exists()))))


def suppressions_for(address: str) -> list[Suppression]:
    """Every suppression of ``address``, lapsed ones included, global first."""
    _, digest = normalise_and_hash(address)
    query = select(Suppression).where(Suppression.email_hash == digest)
    rows = db.session.scalars(query, execution_options={"populate_existing": True}).all()
    return sorted(rows, key=lambda row: (row.scope != GLOBAL_SCOPE, row.scope))


def suppressed_among(addresses: Iterable[str], list: str | None = None) -> set[str]:
    """The subset of ``addresses`` (already normalised) that must not be mailed.

    A few candidates are looked up through the index. Many are matched against one read of the
    suppressions in scope, compared on the stored address so that only the rare erased rows,
    which keep just a hash, cost a hash per candidate. Domain suppressions are read once and
    tested in memory.
    """
    candidates = addresses if isinstance(addresses, Collection) else [*addresses]
    if len(candidates) <= INDEXED_LOOKUP_LIMIT:
        found = _suppressed_by_index(candidates, list)
    else:
        found = _suppressed_by_scan(candidates, list)
    rules = domain_rules(list)
    if rules:
        found.update(address for address in candidates if rules.covering(address))
    return found


def covering_suppressions(
    digests: Collection[str], list: str | None = None
) -> dict[str, tuple[str, str]]:
    """For the address hashes that must not be mailed, the (scope, reason) that blocks each.

    One query per ``IN_CLAUSE_SIZE`` hashes through the unique index; where an address is
    suppressed both globally and on the list, the global suppression is the one named.
    """
    found: dict[str, tuple[str, str]] = {}
    now = utcnow()
    listed = [*digests]
    for start in range(0, len(listed), BULK_IN_CLAUSE_SIZE):
        query = select(Suppression.email_hash, Suppression.scope, Suppression.reason).where(
            Suppression.email_hash.in_(listed[start : start + BULK_IN_CLAUSE_SIZE]),
            in_scope_of(list),
            active(now),
        )
        for digest, scope, reason in db.session.execute(query):
            if digest not in found or scope == GLOBAL_SCOPE:
                found[digest] = (scope, reason)
    return found


def _suppressed_by_index(candidates: Collection[str], list_slug: str | None) -> set[str]:
    by_hash = {hashlib.sha256(address.encode()).hexdigest(): address for address in candidates}
    digests = [*by_hash]
    found: set[str] = set()
    now = utcnow()
    for start in range(0, len(digests), IN_CLAUSE_SIZE):
        chunk = digests[start : start + IN_CLAUSE_SIZE]
        query = select(Suppression.email_hash).where(
            Suppression.email_hash.in_(chunk), in_scope_of(list_slug), active(now)
        )
        found.update(by_hash[digest] for digest in db.session.scalars(query))
    return found


def _suppressed_by_scan(candidates: Collection[str], list_slug: str | None) -> set[str]:
    """One pass over the suppressions in scope, the addresses joined into a single string.

    Aggregating in the database sends one value instead of a million rows, and splitting it
    costs far less than building a million result rows. Erased rows have no address left to
    compare; only when there are some does a second pass fetch their hashes.
    """
    in_scope = and_(in_scope_of(list_slug), active(utcnow()))
    joined, erased = db.session.execute(
        select(
            func.aggregate_strings(Suppression.email, "\n"),
            func.count() - func.count(Suppression.email),
        ).where(in_scope)
    ).one()
    wanted = candidates if isinstance(candidates, (set, frozenset)) else set(candidates)
    found = wanted.intersection(joined.split("\n")) if joined else set()
    if erased:
        query = select(Suppression.email_hash).where(in_scope, Suppression.email.is_(None))
        erased_hashes = set(db.session.scalars(query))
        found.update(
            address
            for address in wanted - found
            if hashlib.sha256(address.encode()).hexdigest() in erased_hashes
        )
    return found
