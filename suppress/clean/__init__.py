"""Cleaning a send list: every row of a file is either sendable or rejected with one reason.

``clean_rows()`` reads rows as they come and hands them back in the same order, each with its
verdict, a chunk at a time: first the first look at the addresses (normal form, hash, an earlier
row with the same address; ``firstlook``), then the register (suppressions, partners' hashed
lists, restriction, the list's rules; ``register``), worded chunk by chunk (``verdicts``).
Memory is bounded by the chunks in flight
plus one entry per distinct address, to find duplicates. ``cleaned_chunks()`` and
``write_cleaned()`` (``written``) do the same for a file a chunk at a time.

A file of more than one chunk uses both cores: a worker process takes the first look while this one
reads, judges and writes the rows, and the suppressions in scope (with the domain rules and, without
a list, the restricted addresses) are matched in memory, read in one pass by a thread while the
first chunks are read and normalised, instead of looked up chunk by chunk. It reads the database and
never writes to it, except that minting unsubscribe links (``links=True``) creates the Address rows
the links refer to. The caller writes the outputs and owns the transaction.
"""

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from itertools import chain
from typing import NamedTuple

from sqlalchemy import Connection

from suppress import tokens
from suppress.clean import firstlook, register
from suppress.clean.firstlook import (
    NOTHING_IN_MEMORY,
    FirstLookFailed,
    InMemory,
    Looker,
)
from suppress.clean.verdicts import Chunk, Judge
from suppress.clean.written import (
    LINK_COLUMNS,
    REJECT_COLUMNS,
    Cleaned,
    CleanedChunk,
    write_cleaned,
)
from suppress.csvfiles import CsvError, CsvRecord, RawChunk
from suppress.domains import DomainRules
from suppress.models import MailingList, db
from suppress.suppressions import (
    domain_rules,
    hash_algorithms_present,
    packed_suppressions,
)

__all__ = [
    "CHUNK_ROWS",
    "LINK_COLUMNS",
    "REJECT_COLUMNS",
    "REJECT_REASONS",
    "Ahead",
    "Cleaned",
    "CleanedChunk",
    "FirstLookFailed",
    "ahead_of",
    "clean_rows",
    "cleaned_chunks",
    "email_column",
    "write_cleaned",
]

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
# Rows looked up together: big enough that queries and messages to the worker cost little per
# row, small enough that the rows held back for them take a few megabytes.
CHUNK_ROWS = 10_000
# Chunks read and sent to the first look ahead of the one being judged; more while the
# suppressions are being read into memory, so that neither process waits for them (early on,
# when the worker's table of addresses met is still small).
CHUNKS_AHEAD = 3
CHUNKS_AHEAD_OF_MEMORY = 24
# A file longer than this holds more than a chunk of rows (of about a hundred bytes each, as
# CRMs export them), and is matched in memory.
LONG_FILE_BYTES = 1 << 20
# Passes the suppressions are read in for the first look, which takes each in while the next
# is read: it waits then only for the last to be taken in, not for all of them.
SUPPRESSION_PARTS = 8
EMAIL_COLUMN = "email"


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
    chunks = cleaned_chunks(
        _raw(records, chunk_rows),
        width=width,
        email_index=email_index,
        separator=",",  # never used: every record comes with its fields
        mailing_list=mailing_list,
        links=links,
    )
    for chunk in chunks:
        yield from chunk.rows()


def _raw(records: Iterable[CsvRecord], size: int) -> Iterator[RawChunk]:
    """The records as RawChunks, none plain: each comes with its fields."""
    chunk = RawChunk()
    for line, fields, problem, _ in records:
        chunk.others[len(chunk.lines)] = (fields, problem)
        chunk.lines.append(line)
        chunk.texts.append("")
        if len(chunk.lines) >= size:
            yield chunk
            chunk = RawChunk()
    if chunk.lines:
        yield chunk


class Ahead(NamedTuple):
    """A long file's clean under way before its rows come: the first look's worker, and what
    is matched in memory on its way in (see ``_judged``), with the domain rules read for it."""

    looker: firstlook.InWorker
    in_memory: Future[InMemory]
    domains: DomainRules


@contextmanager
def ahead_of(
    size: int, mailing_list: MailingList | None = None, links: bool = False
) -> Iterator[Ahead | None]:
    """For a file of ``size`` bytes, longer than a chunk's worth, the worker forked and the
    register on its way into memory from now on, while the file is still to be opened and
    checked (a pass over it): on PostgreSQL the server reads the first parts meanwhile. None
    for a shorter file, whose chunks are looked up as they come."""
    if size <= LONG_FILE_BYTES:
        yield None
        return
    _check_links(links)
    with _read_ahead(mailing_list, links) as ahead:
        yield ahead


@contextmanager
def _read_ahead(mailing_list: MailingList | None, links: bool) -> Iterator[Ahead]:
    domains = domain_rules(mailing_list.slug if mailing_list else None)
    # The worker first: forking a process that runs threads is unsafe.
    looker = firstlook.InWorker(_keep_normalised(mailing_list, links, domains))
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="clean: in memory") as reader:
            # Handed on, not kept: the packed suppressions go once the worker has them.
            connection = db.session.connection()
            yield Ahead(
                looker,
                reader.submit(_in_memory, connection, mailing_list, domains, looker),
                domains,
            )
    finally:
        looker.close()


def _check_links(links: bool) -> None:
    """Refuse an http:// base URL for the links before any work starts (``tokens.page_url``)."""
    if links:
        tokens.page_url("check")


def _keep_normalised(mailing_list: MailingList | None, links: bool, domains: DomainRules) -> bool:
    """Whether the main process needs the normal forms, for what it matches by address: links,
    a list's rules, hashed lists, and domains unless the first look matches them."""
    return links or mailing_list is not None or bool(domains) or bool(hash_algorithms_present())


def cleaned_chunks(
    chunks: Iterable[RawChunk],
    *,
    width: int,
    email_index: int,
    separator: str,
    mailing_list: MailingList | None = None,
    links: bool = False,
    ahead: Ahead | None = None,
) -> Iterator[CleanedChunk]:
    """``clean_rows()`` for rows read a chunk at a time (``CsvFile.raw_chunks`` of a file with
    that ``separator``): for a million rows, where making an object of each costs more than
    writing it. A long file is cleaned ``ahead`` (``ahead_of`` before the file was opened);
    without that, the first two chunks tell whether it is long."""
    if ahead is None:
        _check_links(links)
    column = firstlook.Column(separator, email_index)
    read = (Chunk(raw, email_index, separator) for raw in chunks)
    first: list[Chunk] = []
    if ahead is None:
        first = [*filter(None, (next(read, None), next(read, None)))]
        if len(first) < 2:
            yield from _cleaned_in_place(first, column, width, mailing_list, links)
            return
    with nullcontext(ahead) if ahead else _read_ahead(mailing_list, links) as started:
        judge = Judge(mailing_list, links, width, separator, started.domains)
        started.looker.aim(column)
        yield from _judged(chain(first, read), started.looker, judge, started.in_memory)


def _cleaned_in_place(
    chunks: list[Chunk],
    column: firstlook.Column,
    width: int,
    mailing_list: MailingList | None,
    links: bool,
) -> Iterator[CleanedChunk]:
    """A short file's chunks, its first look taken here and the register asked chunk by chunk."""
    domains = domain_rules(mailing_list.slug if mailing_list else None)
    looker = firstlook.InPlace(column, _keep_normalised(mailing_list, links, domains))
    looker.learn(NOTHING_IN_MEMORY)
    judge = Judge(mailing_list, links, width, column.separator, domains)
    yield from _judged(iter(chunks), looker, judge, None)


def _judged(
    chunks: Iterator[Chunk],
    looker: Looker,
    judge: Judge,
    in_memory: Future[InMemory] | None,
) -> Iterator[CleanedChunk]:
    """The chunks judged in order, CHUNKS_AHEAD read and sent to the first look in advance.

    ``in_memory`` is being read on the session's connection by another thread: nothing here
    touches the database until it is in, and it goes to the first look as soon as it is.
    """
    pending: deque[Chunk] = deque()
    for chunk in chunks:
        looker.send(chunk.sent())
        pending.append(chunk)
        if in_memory is not None and in_memory.done():
            _learn(in_memory, judge, looker)
            in_memory = None
        ahead = CHUNKS_AHEAD if in_memory is None else CHUNKS_AHEAD_OF_MEMORY
        while len(pending) > ahead:
            if in_memory is not None:
                _learn(in_memory, judge, looker)
                in_memory = None
            yield judge.judged(pending.popleft(), looker.receive())
    if in_memory is not None:
        _learn(in_memory, judge, looker)
    while pending:
        yield judge.judged(pending.popleft(), looker.receive())


def _learn(in_memory: Future[InMemory], judge: Judge, looker: Looker) -> None:
    """Wait for what is matched in memory if need be, and hand it to both sides."""
    judge.learn(in_memory.result())
    looker.learn(in_memory.result())


def _in_memory(
    connection: Connection,
    mailing_list: MailingList | None,
    domains: DomainRules,
    looker: Looker,
) -> InMemory:
    """What the first look of a long file matches in memory (run by the reader thread): the
    suppressions handed to it part by part as they are read but the last, which comes with
    the rest; the domain rules only with the suppressions, which come first."""
    parts = packed_suppressions(
        connection, mailing_list.slug if mailing_list else None, SUPPRESSION_PARTS
    )
    last = None
    for part in parts or ():
        if last is not None:
            looker.take(last)
        last = part
    restricted = None if mailing_list else frozenset(register.restricted(connection))
    return InMemory(last, restricted, domains if last is not None else None)
