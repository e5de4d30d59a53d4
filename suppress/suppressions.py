"""The suppression list: the one place that writes, lifts and looks up suppressions.

Links, webhooks, imports, the admin UI, the API and the CLI all come through here, so every path
gets the same normalisation, the same rule for repeats and the same audit entry. Functions here
never commit a single change: the caller owns the transaction, so that a web view can commit
before it answers 2xx. Bulk imports are the exception, committing batch by batch.

Writes are one statement, ``INSERT ... ON CONFLICT DO UPDATE ... WHERE``, on SQLite and
PostgreSQL alike: a repeat keeps the first ``created_at``; a stronger reason (a complaint after
an unsubscribe) replaces a weaker one; a lapsed suppression starts afresh. Domain suppressions
(a domain, or its subdomains: see ``domains``) follow the same rules and audit trail.
"""

import csv
import functools
import hashlib
import re
import struct
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, islice
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Delete,
    Dialect,
    Insert,
    Row,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.expression import FromClause

from suppress.addresses import InvalidAddress, domain_of, normalise_and_hash
from suppress.csvfiles import sniff_separator
from suppress.database import Bulk, DirectTransaction, Prepared, raw_cursor
from suppress.domains import DomainRule, DomainRules, covering_patterns, normalise_pattern
from suppress.models import (
    GLOBAL_SCOPE,
    HASH_ALGORITHMS,
    REASONS,
    Address,
    AuditEntry,
    DomainSuppression,
    HashedSuppression,
    MailingList,
    Suppression,
    SuppressionTerms,
    db,
    utcnow,
)

# Ordered weakest first: a repeat with a later reason in this list replaces the earlier one.
STRENGTH = (
    "soft_bounced",
    "imported",
    "manual",
    "unsubscribed",
    "objected",
    "bounced",
    "complained",
    "erased",
)
# Lifting these needs an override reason: mailing a complainer or a dead mailbox again harms the
# sender's reputation, and an erased person asked never to be processed again.
PROTECTED_REASONS = frozenset({"complained", "bounced", "erased"})

# A person may undo only what they did themselves through their own links: never a complaint,
# a bounce, an import or an administrator's suppression.
SELF_SERVICE_SOURCES = frozenset({"link", "one-click", "mailto", "preferences"})
SELF_SERVICE_REASONS = frozenset({"unsubscribed", "objected"})
FEEDBACK_ANSWERS = ("too_many", "not_relevant", "never_signed_up", "other")

# Up to this many candidates, look each one up through the unique index; past it, one scan of
# the suppressions in scope is cheaper than thousands of indexed queries.
INDEXED_LOOKUP_LIMIT = 20_000
IN_CLAUSE_SIZE = 500
# Hashes per IN (...) list for a whole chunk of a file: within both databases' parameter limits.
BULK_IN_CLAUSE_SIZE = 5_000
# Past this many suppressions, a long file is matched through the index after all: in memory
# each takes about 100 bytes.
IN_MEMORY_LIMIT = 2_000_000
# Bytes of an address's SHA-256 digest that key in-memory tables: as good as the whole digest at
# telling millions of addresses apart (a chance collision needs about 2**60 of them), in half
# the memory. Fifteen, not sixteen: such a bytes object takes 48 bytes of Python's allocator,
# one more byte would take 64.
DIGEST_KEY_BYTES = 15
# A packed suppression: its digest key, then the reason's index in REASONS.
SUPPRESSION_RECORD_BYTES = DIGEST_KEY_BYTES + 1
# Hex digits per digest, by algorithm: a line of another length is not a hash of that kind.
HEX_LENGTHS = {"md5": 32, "sha256": 64, "sha512": 128}
# Rows per multi-row INSERT of hashes (four values each): within both databases' limits.
HASH_INSERT_ROWS = 1_000
# Header names under which a CSV file of hashes may carry them, besides the algorithm's name.
HASH_COLUMNS = ("hash", "digest", "email_hash")
_HEX = re.compile(r"[0-9a-f]+")
WRITTEN_COLUMNS = (
    "email_hash",
    "email",
    "scope",
    "reason",
    "source",
    "note",
    "created_at",
    "expires_at",
)
DOMAIN_WRITTEN_COLUMNS = (
    "pattern",
    "scope",
    "reason",
    "source",
    "note",
    "created_at",
    "expires_at",
)


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


@dataclass
class ImportReport:
    """What an import did: rows written (new or strengthened), rows already covered, refusals."""

    written: int = 0
    unchanged: int = 0
    rejected: int = 0


def known_scopes() -> set[str]:
    return {GLOBAL_SCOPE, *db.session.scalars(select(MailingList.slug))}


def check_scope(scope: str, scopes: Collection[str] | None = None) -> str:
    scopes = known_scopes() if scopes is None else scopes
    if scope not in scopes:
        raise _unknown(scope)
    return scope


def _unknown(scope: str) -> UnknownScope:
    return UnknownScope(f"unknown scope {scope!r}: use 'global' or the slug of a mailing list")


def check_reason(reason: str) -> str:
    if reason not in REASONS:
        raise UnknownReason(f"unknown reason {reason!r}: use one of {', '.join(REASONS)}")
    return reason


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
    writes (see ``_upsert``) and hands the row back only when it wrote one, so a repeat, or a
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
            raise _unknown(scope)
        return stored
    action = "suppression.add" if written.created_at == now else "suppression.update"
    _audit(actor or source, action, written, why=note, email=email)
    return written


def suppress_by_link(
    transaction: DirectTransaction, address_id: int, list_id: int, *, reason: str, source: str
) -> bool:
    """Suppress the address an unsubscribe link names, on its list (``list_id`` 0: everywhere).

    The one-click path: one statement reads the address and list by id and writes the
    suppression, and one more writes the audit entry, so that a burst of one-click POSTs
    spends its time on little else. False when the address or list no longer exists, and
    then nothing is written. Works for an erased address too: the hash is kept for this.
    """
    check_reason(reason)
    values = {"address_id": address_id, "list_id": list_id, "reason": reason, "source": source}
    upsert = _LINK_UPSERT_TO_LIST if list_id else _LINK_UPSERT_EVERYWHERE
    written = transaction.run(upsert, **values, created_at=utcnow()).fetchone()
    if written is None:
        exists_query = _LINK_LIST_EXISTS if list_id else _LINK_ADDRESS_EXISTS
        return transaction.run(exists_query, **values).fetchone() is not None
    email_hash, scope, added = written
    action = "suppression.add" if added else "suppression.update"
    entry = _audit_entry(source, action, email_hash, scope, reason, source)
    transaction.run(_DIRECT_AUDIT_INSERT, **entry)
    return True


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


@dataclass(frozen=True)
class Hashed:
    """A suppression wanted for an address already normalised and hashed (webhook events)."""

    email: str
    email_hash: str
    reason: str
    scope: str = GLOBAL_SCOPE
    expires_at: datetime | None = None


def suppress_hashed(
    transaction: DirectTransaction, wanted: Sequence[Hashed], *, source: str
) -> int:
    """``suppress`` on a direct transaction for addresses already normalised and hashed, each
    address and scope at most once; how many rows were written, each with its audit entry.

    One statement writes every row and one more their audit entries, however many there are
    (a row for a scope that does not exist is skipped). Each address and scope at most once:
    PostgreSQL refuses an upsert that would change one row twice.
    """
    if not wanted:
        return 0
    now = utcnow()
    rows = [
        (
            hashed.email_hash,
            hashed.email,
            hashed.scope,
            check_reason(hashed.reason),
            source,
            None,
            now,
            hashed.expires_at,
        )
        for hashed in wanted
    ]
    dialect = transaction.dialect
    written = transaction.run_bulk(_HASHED_UPSERT.ready(dialect, rows))
    # A row keeps its first ``created_at`` unless this upsert added it (or renewed a lapsed one).
    added_at = _HASHED_UPSERT.bound(dialect, "created_at", now)
    actions = {
        (digest, scope): "suppression.add" if created_at == added_at else "suppression.update"
        for digest, scope, created_at in written
    }
    entries = [
        (now, source, actions[row[0], row[2]], row[0], row[2], row[3], source)
        for row in rows
        if (row[0], row[2]) in actions
    ]
    transaction.run_bulk(_HASHED_AUDIT.ready(dialect, entries))
    return len(entries)


def lift_unsubscribes(
    transaction: DirectTransaction, wanted: Sequence[Hashed], *, actor: str
) -> int:
    """Undo unsubscribes, and only unsubscribes, on a direct transaction: what a provider's
    re-subscribe event may do (a complaint, bounce or objection stays); how many were lifted,
    each with its audit entry. One statement lifts them all, one more writes the entries."""
    if not wanted:
        return 0
    keys = [(hashed.email_hash, hashed.scope) for hashed in wanted]
    lifted = {
        (digest, scope): source
        for digest, scope, source in transaction.run_bulk(
            _LIFT_UNSUBSCRIBES.ready(transaction.dialect, keys)
        )
    }
    now = utcnow()
    entries = [
        (now, actor, "suppression.lift", *key, "unsubscribed", lifted[key])
        for key in keys
        if key in lifted
    ]
    transaction.run_bulk(_HASHED_AUDIT.ready(transaction.dialect, entries))
    return len(entries)


def _hashed_upsert(dialect: Dialect, incoming: FromClause) -> Insert:
    """The upsert of the ``incoming`` rows whose scope is global or names a list."""
    known = or_(
        incoming.c.scope == literal_column(f"'{GLOBAL_SCOPE}'"),
        incoming.c.scope.in_(select(MailingList.slug)),
    )
    rows = select(*(incoming.c[name] for name in WRITTEN_COLUMNS)).where(known)
    columns = Suppression.__table__.c
    return _upsert(dialect, rows).returning(columns.email_hash, columns.scope, columns.created_at)


def _lift_unsubscribes(dialect: Dialect, incoming: FromClause) -> Delete:
    columns = Suppression.__table__.c
    return (
        delete(Suppression)
        .where(
            tuple_(columns.email_hash, columns.scope).in_(
                select(incoming.c.email_hash, incoming.c.scope)
            ),
            columns.reason == literal_column("'unsubscribed'"),
        )
        .returning(columns.email_hash, columns.scope, columns.source)
    )


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


_HASHED_UPSERT = Bulk(
    {name: Suppression.__table__.c[name].type for name in WRITTEN_COLUMNS}, _hashed_upsert
)
_LIFT_UNSUBSCRIBES = Bulk(
    {name: Suppression.__table__.c[name].type for name in ("email_hash", "scope")},
    _lift_unsubscribes,
)
_HASHED_AUDIT = Bulk(
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


def _written_columns(created_at: ColumnElement[Any]) -> tuple[ColumnElement[Any], ...]:
    """What a link's upsert hands back: the row's key, and whether it was newly added."""
    columns = Suppression.__table__.c
    return (columns.email_hash, columns.scope, columns.created_at == created_at)


def _link_upsert(to_list: bool) -> Prepared:
    """The upsert of a link's address, reading the address and the list by their ids."""
    columns = Suppression.__table__.c
    created_at = bindparam("created_at", type_=columns.created_at.type)
    scope = MailingList.slug if to_list else literal_column(f"'{GLOBAL_SCOPE}'")
    rows = select(
        Address.email_hash,
        Address.email,
        scope,
        bindparam("reason", type_=columns.reason.type),
        bindparam("source", type_=columns.source.type),
        null(),
        created_at,
        null(),
    ).where(Address.id == bindparam("address_id"))
    if to_list:
        rows = rows.join(MailingList, MailingList.id == bindparam("list_id"))
    return Prepared(lambda dialect: _upsert(dialect, rows).returning(*_written_columns(created_at)))


_LINK_UPSERT_TO_LIST = _link_upsert(to_list=True)
_LINK_UPSERT_EVERYWHERE = _link_upsert(to_list=False)
_LINK_ADDRESS_EXISTS = Prepared(select(Address.id).where(Address.id == bindparam("address_id")))
_LINK_LIST_EXISTS = Prepared(
    select(Address.id)
    .join(MailingList, MailingList.id == bindparam("list_id"))
    .where(Address.id == bindparam("address_id"))
)


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
    _check_liftable(row, override_reason)
    _audit(
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


def _check_liftable(row: SuppressionTerms, override_reason: str | None) -> None:
    if row.reason in PROTECTED_REASONS and not (override_reason or "").strip():
        raise LiftRefused(
            f"the suppression in scope {row.scope!r} records {row.reason!r}: lifting it needs an "
            "explicit override reason"
        )


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


def is_suppressed(address: str, list: str | None = None) -> bool:
    """Whether mail to ``address`` is blocked: globally or, given a list slug, on that list,
    by a suppression of the address or of a domain pattern that covers it."""
    normalised, digest = normalise_and_hash(address)
    now = utcnow()
    own = select(Suppression.id).where(
        Suppression.email_hash == digest, _in_scope(list), _active(now)
    )
    by_domain = select(DomainSuppression.id).where(
        DomainSuppression.pattern.in_(covering_patterns(domain_of(normalised))),
        _in_scope(list, DomainSuppression),
        _active(now, DomainSuppression),
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
            _in_scope(list),
            _active(now),
        )
        for digest, scope, reason in db.session.execute(query):
            if digest not in found or scope == GLOBAL_SCOPE:
                found[digest] = (scope, reason)
    return found


@dataclass(frozen=True)
class PackedSuppressions:
    """Active suppressions of a scope, packed for matching in memory, perhaps in another
    process: records of a digest key and the reason's index in REASONS
    (SUPPRESSION_RECORD_BYTES each), those of the list and those in the global scope apart."""

    list: str | None
    on_the_list: bytes
    everywhere: bytes

    def add_to(self, found: dict[bytes, tuple[str, str]]) -> None:
        """Add these to ``found`` (``{digest key: (scope, reason)}``, the key being the first
        DIGEST_KEY_BYTES of the SHA-256 digest), which may hold other parts of the same scope's
        suppressions. As in ``covering_suppressions``, the global suppression is named when
        both apply, whichever part it came in."""
        if self.on_the_list:
            on_the_list = _records(self.on_the_list, self.list or GLOBAL_SCOPE)
            found.update([(key, named) for key, named in on_the_list if key not in found])
        found.update(_records(self.everywhere, GLOBAL_SCOPE))


def packed_suppressions(
    connection: Connection, list: str | None, parts: int = 1
) -> Iterator[PackedSuppressions] | None:
    """Every active suppression in scope, read in ``parts`` passes over ranges of ids, each
    when the one before has been taken; None when the table holds more than IN_MEMORY_LIMIT
    rows. Runs on ``connection``, which may be the session's own lent to another thread while
    its owner waits, so that the file's uncommitted view is the one read.

    For matching a long file: an index lookup per address costs SQLite several microseconds
    once the table outgrows its cache. Each scope's rows come back as one string of
    fixed-width records, far cheaper to take apart than a million result rows; in parts, so
    that whoever takes them apart can start while the rest are read. A row is read once,
    whatever changes between the passes.
    """
    # Two subqueries, each answered from an end of the primary key's b-tree (one query of both
    # aggregates would make SQLite read every row). The ids bound the count from above, so the
    # rows are counted, a pass over a whole index, only when the ids span more than the limit.
    first, last = connection.execute(
        select(
            select(func.min(Suppression.id)).scalar_subquery(),
            select(func.max(Suppression.id)).scalar_subquery(),
        )
    ).one()
    if (
        first is not None
        and last - first >= IN_MEMORY_LIMIT
        and _count(connection) > IN_MEMORY_LIMIT
    ):
        return None
    return (_packed(connection, list, ids) for ids in _id_ranges(first, last, parts))


def _count(connection: Connection) -> int:
    return connection.scalar(select(func.count()).select_from(Suppression)) or 0


def _id_ranges(
    first: int | None, last: int | None, parts: int
) -> list[tuple[ColumnElement[bool], ...]]:
    """Conditions on the id that split the rows between ``first`` and ``last`` into ``parts``
    ranges: the first and last open-ended, so that together they hold every row."""
    if first is None or last is None:
        return [()]
    step = (last - first) // parts + 1
    bounds = [first + step * number for number in range(1, parts)]
    ids = Suppression.id
    lows = [(), *((ids >= bound,) for bound in bounds)]
    highs = [*((ids < bound,) for bound in bounds), ()]
    return [low + high for low, high in zip(lows, highs, strict=True)]


def _packed(
    connection: Connection, list: str | None, ids: tuple[ColumnElement[bool], ...]
) -> PackedSuppressions:
    # Only the key's hex digits come over: half the string the whole hash would make.
    key = func.substr(Suppression.email_hash, 1, 2 * DIGEST_KEY_BYTES, type_=String)
    record = key + case(
        *(
            (Suppression.reason == reason, literal_column(f"'{index:02x}'"))
            for index, reason in enumerate(REASONS)
        ),
        # Never NULL, which would drop the row from the string without a word: an unknown
        # reason (the table's check forbids one) fails loudly when unpacked instead.
        else_=literal_column("'ff'"),
    )
    in_scope = (*ids, _in_scope(list), _active(utcnow()))
    if list in (None, GLOBAL_SCOPE):
        # One scope, so one string: a second, always empty, costs a tenth of a second a million.
        everywhere = connection.scalar(select(func.aggregate_strings(record, "")).where(*in_scope))
        return PackedSuppressions(list, b"", bytes.fromhex(everywhere or ""))
    is_global = Suppression.scope == GLOBAL_SCOPE
    on_the_list, everywhere = connection.execute(
        select(
            func.aggregate_strings(case((~is_global, record)), ""),
            func.aggregate_strings(case((is_global, record)), ""),
        ).where(*in_scope)
    ).one()
    return PackedSuppressions(
        list, bytes.fromhex(on_the_list or ""), bytes.fromhex(everywhere or "")
    )


def _records(packed: bytes, scope: str) -> Iterator[tuple[bytes, tuple[str, str]]]:
    size = SUPPRESSION_RECORD_BYTES
    # Each key cut out by struct, in C: half the time of slicing the bytes record by record.
    keys = map(itemgetter(0), struct.iter_unpack(f"{size - 1}sx", packed))
    named = [(scope, reason) for reason in REASONS]
    return zip(keys, map(named.__getitem__, packed[size - 1 :: size]), strict=True)


def import_suppressions(
    records: Iterable[tuple[int, Mapping[str, str]]],
    *,
    source: str,
    actor: str,
    batch_size: int,
    on_reject: Callable[[int, str], None],
) -> ImportReport:
    """Write rows of ``email`` (+ optional ``scope``, ``reason``, ``note``), a batch per commit.

    ``records`` yields ``(line number, row)``; a row that cannot be used is passed to
    ``on_reject`` with its line and the reason, and the import goes on. One audit entry records
    the import as a whole; each row carries the import as its ``source``.
    """
    report = ImportReport()
    dialect = db.session.get_bind().dialect
    compiled = _BULK_UPSERT.compiled(dialect)
    as_parameters = itemgetter(*compiled.names)
    to_column = Suppression.__table__.c.created_at.type.dialect_impl(dialect).bind_processor(
        dialect
    )
    created_at = to_column(utcnow()) if to_column else utcnow()
    fixed = {"source": source, "created_at": created_at, "expires_at": None}
    rows = _valid_rows(records, known_scopes(), fixed, report, on_reject)
    for batch in _batches(rows, batch_size):
        cursor = raw_cursor(db.session.connection().connection, dialect)
        cursor.executemany(compiled.sql, [as_parameters(row) for row in batch])
        report.written += cursor.rowcount
        report.unchanged += len(batch) - cursor.rowcount
        cursor.close()
        db.session.commit()
    db.session.add(
        AuditEntry(
            actor=actor,
            action="suppression.import",
            detail={"source": source, **report.__dict__},
        )
    )
    db.session.commit()
    return report


def _valid_rows(
    records: Iterable[tuple[int, Mapping[str, str]]],
    scopes: Collection[str],
    fixed: Mapping[str, Any],
    report: ImportReport,
    on_reject: Callable[[int, str], None],
) -> Iterator[dict[str, Any]]:
    for line, record in records:
        try:
            email, digest = normalise_and_hash(record.get("email") or "")
            scope = check_scope(record.get("scope") or GLOBAL_SCOPE, scopes)
            reason = check_reason(record.get("reason") or "imported")
        except (InvalidAddress, SuppressionError) as error:
            report.rejected += 1
            on_reject(line, str(error))
            continue
        yield {
            **fixed,
            "email_hash": digest,
            "email": email,
            "scope": scope,
            "reason": reason,
            "note": record.get("note") or None,
        }


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(rows)
    while batch := [*islice(iterator, size)]:
        yield batch


def _strength(column: ColumnElement[str]) -> ColumnElement[int]:
    """A reason's rank in STRENGTH, in SQL literals (a fixed vocabulary) so only row data binds."""
    return case(
        *(
            (column == literal_column(f"'{reason}'"), literal_column(str(rank)))
            for rank, reason in enumerate(STRENGTH)
        ),
        else_=literal_column("-1"),
    )


def _upsert(
    dialect: Dialect,
    rows: Select | None = None,
    *,
    table: Table = Suppression.__table__,
    key: tuple[str, str] = ("email_hash", "scope"),
    columns: tuple[str, ...] = WRITTEN_COLUMNS,
) -> Insert:
    """The one write statement: insert, or strengthen or renew what is there, else nothing.

    The row comes from bound values, or from ``rows``, a query yielding ``columns`` (which
    lets one statement check what it writes, or read it from another table). Domain
    suppressions name their own ``table``, unique ``key`` and ``columns``.
    """
    insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
    statement = insert(table).inline()
    if rows is None:
        statement = statement.values({name: bindparam(name) for name in columns})
    else:
        statement = statement.from_select(columns, rows)
    new, old = statement.excluded, table.c
    lapsed = and_(old.expires_at.is_not(None), old.expires_at <= new.created_at)
    return statement.on_conflict_do_update(
        index_elements=[old[name] for name in key],
        set_={
            "reason": new.reason,
            "source": new.source,
            "note": new.note,
            "expires_at": new.expires_at,
            "created_at": case((lapsed, new.created_at), else_=old.created_at),
        },
        where=or_(_strength(new.reason) > _strength(old.reason), lapsed),
    )


@functools.cache
def _returning_upsert(dialect_name: str) -> Insert:
    """The upsert handing back the written row; built once, as building it costs more than
    running it (a burst of one-click POSTs runs it thousands of times)."""
    dialect = postgresql.dialect() if dialect_name == "postgresql" else sqlite.dialect()
    return _upsert(dialect, _bound_row_in_known_scope()).returning(*Suppression.__table__.c)


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


# Bulk imports hand rows straight to the driver's ``executemany``: SQLAlchemy's per-row
# parameter processing would otherwise cost more than the database's own work.
_BULK_UPSERT = Prepared(_upsert)


def _find(digest: str, scope: str) -> Suppression | None:
    query = select(Suppression).where(Suppression.email_hash == digest, Suppression.scope == scope)
    return db.session.scalars(query, execution_options={"populate_existing": True}).one_or_none()


def _in_scope(
    list_slug: str | None, model: type[SuppressionTerms] = Suppression
) -> ColumnElement[bool]:
    scopes = [GLOBAL_SCOPE] if list_slug in (None, GLOBAL_SCOPE) else [GLOBAL_SCOPE, list_slug]
    return model.scope.in_(scopes)


def _active(now: datetime, model: type[SuppressionTerms] = Suppression) -> ColumnElement[bool]:
    return or_(model.expires_at.is_(None), model.expires_at > now)


def active_suppressions(scope: str | None, *columns: Any) -> Iterator[Any]:
    """Rows of ``columns`` for every active suppression (in ``scope`` if given), hash order.

    Streamed in chunks so that an export of millions of rows runs in constant memory; the hash
    order puts every scope of one address side by side.
    """
    query = select(*columns).where(_active(utcnow()))
    if scope is not None:
        query = query.where(Suppression.scope == scope)
    query = query.order_by(Suppression.email_hash, Suppression.scope)
    yield from db.session.execute(query.execution_options(yield_per=10_000))


def _suppressed_by_index(candidates: Collection[str], list_slug: str | None) -> set[str]:
    by_hash = {hashlib.sha256(address.encode()).hexdigest(): address for address in candidates}
    digests = [*by_hash]
    found: set[str] = set()
    now = utcnow()
    for start in range(0, len(digests), IN_CLAUSE_SIZE):
        chunk = digests[start : start + IN_CLAUSE_SIZE]
        query = select(Suppression.email_hash).where(
            Suppression.email_hash.in_(chunk), _in_scope(list_slug), _active(now)
        )
        found.update(by_hash[digest] for digest in db.session.scalars(query))
    return found


def _suppressed_by_scan(candidates: Collection[str], list_slug: str | None) -> set[str]:
    """One pass over the suppressions in scope, the addresses joined into a single string.

    Aggregating in the database sends one value instead of a million rows, and splitting it
    costs far less than building a million result rows. Erased rows have no address left to
    compare; only when there are some does a second pass fetch their hashes.
    """
    in_scope = and_(_in_scope(list_slug), _active(utcnow()))
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


def _audit(
    actor: str,
    action: str,
    row: Any,
    *,
    why: str | None,
    email: str,
    **detail: Any,
) -> None:
    """Record a change to ``row``; the address is never written in clear, even inside ``why``."""
    entry = _audit_entry(actor, action, row.email_hash, row.scope, row.reason, row.source)
    entry["why"] = _redact(why, email)
    entry["detail"].update(detail)
    db.session.connection().execute(_AUDIT_INSERT, entry)


def _audit_entry(
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
_DIRECT_AUDIT_INSERT = Prepared(_AUDIT_INSERT)


def _redact(text: str | None, email: str) -> str | None:
    if not text:
        return text
    return re.sub(re.escape(email), "[address]", text, flags=re.IGNORECASE)


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
    _audit_domain(actor or source, action, written, why=note)
    return written, True


def _domain_upsert(dialect: Dialect) -> Insert:
    return _upsert(
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
    _check_liftable(row, override_reason)
    _audit_domain(
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
        query = query.where(_active(utcnow(), DomainSuppression))
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
        .where(_in_scope(list, DomainSuppression), _active(utcnow(), DomainSuppression))
        .order_by(DomainSuppression.scope != GLOBAL_SCOPE)
    )
    return DomainRules(DomainRule(*row) for row in db.session.execute(query))


def _audit_domain(actor: str, action: str, row: Any, *, why: str | None, **detail: Any) -> None:
    """Record a change to a domain suppression: no address, so no hash; the pattern instead."""
    entry = _audit_entry(actor, action, None, row.scope, row.reason, row.source)
    entry["why"] = why
    entry["detail"].update(pattern=row.pattern, **detail)
    db.session.connection().execute(_AUDIT_INSERT, entry)


def import_hashed_suppressions(
    lines: Iterable[str],
    algorithm: str,
    source: str,
    on_reject: Callable[[int, str], None],
    *,
    actor: str | None = None,
    batch_size: int = 20_000,
) -> ImportReport:
    """Store a partner's opt-out hashes of normalised addresses; the addresses stay unknown.

    ``lines`` is the file's text, one hash per line, or a CSV file whose header names the
    column (``hash``, ``digest``, ``email_hash`` or the algorithm's name). Hex in either case,
    surrounding blanks ignored; a line that is not a hash of ``algorithm`` goes to
    ``on_reject`` with its line number. Written a batch per commit, a repeat left as it is;
    one audit entry records the import.
    """
    if algorithm not in HEX_LENGTHS:
        raise SuppressionError(f"unknown algorithm {algorithm!r}: use {', '.join(HASH_ALGORITHMS)}")
    report = ImportReport()
    table = HashedSuppression.__table__
    insert = (
        postgresql.insert if db.session.get_bind().dialect.name == "postgresql" else sqlite.insert
    )
    fixed = {"algorithm": algorithm, "source": source, "created_at": utcnow()}
    digests = _hash_values(lines, algorithm, report, on_reject)
    for batch in _batches(({**fixed, "digest": digest} for digest in digests), batch_size):
        for start in range(0, len(batch), HASH_INSERT_ROWS):
            rows = batch[start : start + HASH_INSERT_ROWS]
            statement = (
                insert(table)
                .values(rows)
                .on_conflict_do_nothing(index_elements=[table.c.algorithm, table.c.digest])
                .returning(table.c.id)
            )
            written = len(db.session.execute(statement).all())
            report.written += written
            report.unchanged += len(rows) - written
        db.session.commit()
    db.session.add(
        AuditEntry(
            actor=actor or source,
            action="hashed_suppression.import",
            detail={"source": source, "algorithm": algorithm, **report.__dict__},
        )
    )
    db.session.commit()
    return report


def _hash_values(
    lines: Iterable[str],
    algorithm: str,
    report: ImportReport,
    on_reject: Callable[[int, str], None],
) -> Iterator[str]:
    """The lower-case digests of the file, from its only column or the one its header names."""
    length = HEX_LENGTHS[algorithm]
    stripped = (line.rstrip("\r\n") for line in lines)
    first = next(stripped, "")
    reader = csv.reader(chain([first], stripped), delimiter=sniff_separator(first))
    column = 0
    for fields in reader:
        line = reader.line_num
        cells = [field.strip() for field in fields]
        if not any(cells):
            continue
        if line == 1 and column == 0 and not _is_hex(cells[0].lower(), length):
            names = [cell.lower() for cell in cells]
            found = [name for name in (algorithm, *HASH_COLUMNS) if name in names]
            if found:
                column = names.index(found[0])
                continue
        value = cells[column].lower() if column < len(cells) else ""
        if not _is_hex(value, length):
            report.rejected += 1
            on_reject(line, _why_not_a_hash(value, algorithm, length))
            continue
        yield value


def _is_hex(value: str, length: int) -> bool:
    return len(value) == length and _HEX.fullmatch(value) is not None


def _why_not_a_hash(value: str, algorithm: str, length: int) -> str:
    if not value:
        return f"no {algorithm} hash"
    if _HEX.fullmatch(value) is None:
        return f"not a hexadecimal {algorithm} hash"
    return f"{len(value)} hex digits where {algorithm} has {length}"


def hashed_matches(normalised_addresses: Iterable[str]) -> dict[str, str]:
    """For the (already normalised) addresses a partner's hash list holds, its source.

    Only the algorithms present in the table are tried, each hash looked up in chunks through
    the unique index.
    """
    present = hash_algorithms_present()
    if not present:
        return {}
    candidates = [*normalised_addresses]
    found: dict[str, str] = {}
    for algorithm in present:
        digest_of = getattr(hashlib, algorithm)
        by_digest = {
            digest_of(address.encode()).hexdigest(): address
            for address in candidates
            if address not in found
        }
        listed = [*by_digest]
        for start in range(0, len(listed), BULK_IN_CLAUSE_SIZE):
            query = select(HashedSuppression.digest, HashedSuppression.source).where(
                HashedSuppression.algorithm == algorithm,
                HashedSuppression.digest.in_(listed[start : start + BULK_IN_CLAUSE_SIZE]),
            )
            for digest, source in db.session.execute(query):
                found[by_digest[digest]] = source
    return found


def hash_algorithms_present() -> list[str]:
    """The algorithms with at least one stored hash: one query of an index probe each."""
    probes = [
        exists().where(HashedSuppression.algorithm == algorithm) for algorithm in HASH_ALGORITHMS
    ]
    present = db.session.execute(select(*probes)).one()
    return [algorithm for algorithm, there in zip(HASH_ALGORITHMS, present, strict=True) if there]
