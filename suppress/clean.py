"""Cleaning a send list: every row of a file is either sendable or rejected with one reason.

``clean_rows()`` reads rows as they come and hands them back in the same order, each with its
verdict, looking addresses up a chunk at a time, so a file of any length runs in memory bounded
by the chunk (plus one entry per distinct address, to find duplicates). It reads the database
and never writes to it, except that minting unsubscribe links (``links=True``) creates the
Address rows the links refer to. The caller writes the outputs and owns the transaction.
"""

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from flask import current_app
from sqlalchemy import and_, null, select

from suppress import tokens
from suppress.addresses import (
    CONSUMER,
    CONSUMER_DOMAINS,
    ROLE_LOCAL_PARTS,
    InvalidAddress,
    classify,
    normalise_and_hash,
)
from suppress.csvfiles import CsvError, CsvRecord
from suppress.domains import DomainRules
from suppress.models import Address, MailingList, Subscription, db
from suppress.suppressions import (
    BULK_IN_CLAUSE_SIZE,
    covering_suppressions,
    domain_rules,
    hashed_matches,
)

# The reasons in the order they are tried: a row gets the first that applies.
REJECT_REASONS = (
    "invalid",
    "duplicate",
    "suppressed",
    "restricted",
    "no_basis",
    "no_consent",
    "wrong_audience",
)
REJECT_COLUMNS = ("reason", "detail")
LINK_COLUMNS = ("unsubscribe_url", "list_unsubscribe", "list_unsubscribe_post")
# Rows looked up together: big enough that queries cost little per row, small enough that the
# rows held back for them take a few megabytes.
CHUNK_ROWS = 20_000
EMAIL_COLUMN = "email"


class Cleaned(NamedTuple):
    """One input row and its verdict: ``reason`` None means sendable.

    ``fields`` has the input's width; a kept row carries the three link values after them when
    links were asked for.
    """

    line: int
    fields: list[str]
    reason: str | None = None
    detail: str = ""


class _Known(NamedTuple):
    """What the register holds about one address, for the rules after suppression."""

    consumer: bool
    consent: bool
    restricted: bool
    basis: str | None


# An address the register has never seen: no consent, no restriction, no subscription.
_CONSUMER = _Known(consumer=True, consent=False, restricted=False, basis=None)
_OTHER = _Known(consumer=False, consent=False, restricted=False, basis=None)


def email_column(columns: list[str], name: str | None = None) -> int:
    """The index of the address column: ``name`` if given, else ``email``, in any case."""
    wanted = (name or EMAIL_COLUMN).strip().lower()
    lowered = [column.strip().lower() for column in columns]
    if wanted not in lowered:
        found = ", ".join(repr(column) for column in columns)
        raise CsvError(f"no {wanted!r} column in the header (found {found})")
    return lowered.index(wanted)


def clean_rows(
    records: Iterable[CsvRecord],
    *,
    width: int,
    email_index: int,
    mailing_list: MailingList | None = None,
    links: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[Cleaned]:
    """Each record with its verdict, in input order; every record gives exactly one.

    Without a list only the suppressions in the global scope (of addresses and of domains), the
    partners' hashed lists and restriction apply; with one, also its own suppressions and the
    rules on lawful basis and audience (R-GDPR-1, R-FI-1, R-FI-5). The domain rules are read
    once, for the whole file.
    """
    if links:
        tokens.page_url("check")  # refuses an http:// base URL before anything is written
    domains = domain_rules(mailing_list.slug if mailing_list else None)
    seen: dict[str, int] = {}
    chunk: list[list[Any]] = []
    for line, fields, problem in records:
        entry = _first_look(line, fields, problem, width, email_index, seen)
        if entry is None:
            continue
        chunk.append(entry)
        if len(chunk) >= chunk_rows:
            yield from _judged(chunk, mailing_list, links, domains)
            chunk = []
    yield from _judged(chunk, mailing_list, links, domains)


def _first_look(
    line: int,
    fields: list[str],
    problem: str | None,
    width: int,
    email_index: int,
    seen: dict[str, int],
) -> list[Any] | None:
    """``[line, fields, normalised, digest, reason, detail]``, or None for a blank row.

    What needs no database is decided here: a malformed row, an address that does not parse,
    a repeat of an earlier row's address.
    """
    if problem is not None:
        return [
            line,
            _fitted(fields, width),
            None,
            None,
            "invalid",
            _overflow(problem, fields, width),
        ]
    fields = [field.strip() for field in fields]
    raw = fields[email_index]
    if not raw:
        if not any(fields):
            return None
        return [line, fields, None, None, "invalid", "no address"]
    try:
        normalised, digest = normalise_and_hash(raw)
    except InvalidAddress as error:
        return [line, fields, None, None, "invalid", str(error)]
    first = seen.setdefault(normalised, line)
    if first != line:
        return [line, fields, normalised, digest, "duplicate", f"same address as line {first}"]
    return [line, fields, normalised, digest, None, ""]


def _fitted(fields: list[str], width: int) -> list[str]:
    """A malformed row cut or padded to the header's width, so the rejects file stays a table."""
    return [*fields[:width], *[""] * (width - len(fields))]


def _overflow(problem: str, fields: list[str], width: int) -> str:
    """The problem, plus what cutting the row to width loses, so that nothing vanishes."""
    cut = fields[width:]
    return f"{problem}; cut off: {' | '.join(cut)}" if cut else problem


def _judged(
    chunk: list[list[Any]], mailing_list: MailingList | None, links: bool, domains: DomainRules
) -> Iterator[Cleaned]:
    digests = {entry[3] for entry in chunk if entry[4] is None}
    if not digests:
        for line, fields, _, _, reason, detail in chunk:
            yield Cleaned(line, fields, reason, detail)
        return
    slug = mailing_list.slug if mailing_list else None
    suppressed = covering_suppressions(digests, slug)
    hashed = hashed_matches(
        {entry[2] for entry in chunk if entry[4] is None and entry[3] not in suppressed}
    )
    known = _known_addresses(digests - suppressed.keys(), mailing_list)
    classify_kind = _classifier()
    covering_rule = domains.covering if domains else None
    for line, fields, normalised, digest, reason, detail in chunk:
        if reason is None:
            if digest in suppressed:
                scope, why = suppressed[digest]
                reason, detail = "suppressed", f"{scope}: {why}"
            elif covering_rule and (rule := covering_rule(normalised)):
                reason, detail = "suppressed", str(rule)
            elif normalised in hashed:
                reason, detail = "suppressed", f"hashed list: {hashed[normalised]}"
            elif digest in known:
                reason, detail = _rule_broken(known[digest], mailing_list)
            elif mailing_list is not None:
                stranger = _CONSUMER if classify_kind(normalised) == CONSUMER else _OTHER
                reason, detail = _rule_broken(stranger, mailing_list)
        if reason is None and links:
            link = tokens.unsubscribe_link(normalised, slug)
            fields = [*fields, link.url, link.list_unsubscribe, link.list_unsubscribe_post]
        yield Cleaned(line, fields, reason, detail)


def _rule_broken(address: _Known, mailing_list: MailingList | None) -> tuple[str | None, str]:
    """The first rule after suppression that the address breaks, with the detail to show."""
    if address.restricted:
        return "restricted", "processing of the address is restricted (GDPR Art. 18)"
    if mailing_list is None:
        return None, ""
    slug = mailing_list.slug
    if mailing_list.audience == CONSUMER and address.basis is None:
        return "no_basis", f"no subscription with a lawful basis on {slug}"
    if address.consumer and not address.consent and not mailing_list.similar_products:
        why = f"{slug} is not a similar-products list"
        return "no_consent", f"consumer address without a consent record; {why}"
    if address.consumer and mailing_list.audience != CONSUMER:
        return "wrong_audience", f"consumer address on the b2b list {slug}"
    return None, ""


def _classifier() -> Any:
    """``lists.kind_of`` with the configuration read once, not once per row."""
    config = current_app.config
    roles = ROLE_LOCAL_PARTS | config["ROLE_LOCAL_PARTS"]
    consumers = CONSUMER_DOMAINS | config["CONSUMER_DOMAINS"]
    return lambda normalised: classify(normalised, roles, consumers)


def _known_addresses(digests: set[str], mailing_list: MailingList | None) -> dict[str, _Known]:
    """What the register holds about the addresses it knows, with the list's basis if any."""
    columns = [
        Address.email_hash,
        Address.kind,
        Address.consent_at.is_not(None),
        Address.restricted,
    ]
    if mailing_list is None:
        base = select(*columns, null())
    else:
        subscribed = and_(
            Subscription.address_id == Address.id,
            Subscription.list_id == mailing_list.id,
            Subscription.status == "subscribed",
        )
        base = select(*columns, Subscription.basis).outerjoin(Subscription, subscribed)
    listed = [*digests]
    found: dict[str, _Known] = {}
    for start in range(0, len(listed), BULK_IN_CLAUSE_SIZE):
        query = base.where(Address.email_hash.in_(listed[start : start + BULK_IN_CLAUSE_SIZE]))
        for digest, kind, consent, restricted, basis in db.session.execute(query):
            found[digest] = _Known(kind == CONSUMER, bool(consent), bool(restricted), basis)
    return found
