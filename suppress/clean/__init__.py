"""Cleaning a send list: every row of a file is either sendable or rejected with one reason.

``clean_rows()`` reads rows as they come and hands them back in the same order, each with its
verdict, a chunk at a time: first the first look at the addresses (normal form, hash, an earlier
row with the same address; ``firstlook``), then the register (suppressions, partners' hashed
lists, restriction, the list's rules; ``register``). Memory is bounded by the chunks in flight
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
from suppress.addresses import CONSUMER
from suppress.clean import firstlook, register
from suppress.clean.firstlook import (
    DIGEST_BYTES,
    NOTHING_IN_MEMORY,
    FirstLookFailed,
    InMemory,
    Look,
    Looker,
)
from suppress.clean.register import RESTRICTED, STRANGE_CONSUMER, STRANGER
from suppress.clean.written import (
    LINK_COLUMNS,
    REJECT_COLUMNS,
    Cleaned,
    CleanedChunk,
    write_cleaned,
)
from suppress.csvfiles import CsvError, CsvRecord, RawChunk, padded_lines
from suppress.domains import DomainRules
from suppress.models import MailingList, db
from suppress.suppressions import (
    DIGEST_KEY_BYTES,
    covering_suppressions,
    domain_rules,
    hash_algorithms_present,
    hashed_matches,
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
_NO_ADDRESS = ("invalid", "no address")


class _Chunk:
    """Rows read together, and what the first look is sent of them: a plain row as its text,
    any other as its address picked out. A malformed row, and one with no address (left out
    when blank), is decided here and skipped by the first look; so is which plain rows have a
    field to strip (``padded``), to be written by the csv module."""

    def __init__(self, raw: RawChunk, column: int, separator: str) -> None:
        self.raw = raw
        self.malformed: list[int] = []
        self.missing: list[int] = []
        self.blank: set[int] = set()
        picked = {}
        if raw.others:
            for position, (fields, problem) in raw.others.items():
                address = "" if problem is not None else fields[column].strip()
                if address:
                    picked[position] = address
                elif problem is not None:
                    self.malformed.append(position)
                elif any(map(str.strip, fields)):
                    self.missing.append(position)
                else:
                    self.blank.add(position)
        skipped = [*self.malformed, *self.missing, *self.blank]
        texts = "\n".join(raw.texts)
        self.padded = padded_lines(texts, raw.texts, separator)
        self.rows = firstlook.Rows(raw.lines, texts, picked, skipped)

    def sent(self) -> firstlook.Rows:
        """The rows for the first look, which keeps their texts: this side needs only their
        lines and which were skipped from then on, and a chunk read ahead holds less."""
        rows, self.rows = self.rows, self.rows._replace(texts="")
        return rows


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
) -> Iterator["CleanedChunk"]:
    """``clean_rows()`` for rows read a chunk at a time (``CsvFile.raw_chunks`` of a file with
    that ``separator``): for a million rows, where making an object of each costs more than
    writing it. A long file is cleaned ``ahead`` (``ahead_of`` before the file was opened);
    without that, the first two chunks tell whether it is long."""
    if links:
        tokens.page_url("check")  # refuses an http:// base URL before anything is written
    column = firstlook.Column(separator, email_index)
    read = (_Chunk(raw, email_index, separator) for raw in chunks)
    first: list[_Chunk] = []
    if ahead is None:
        first = [*filter(None, (next(read, None), next(read, None)))]
        if len(first) < 2:
            yield from _cleaned_in_place(first, column, width, mailing_list, links)
            return
    with nullcontext(ahead) if ahead else _read_ahead(mailing_list, links) as started:
        judge = _Judge(mailing_list, links, width, separator, started.domains)
        started.looker.aim(column)
        yield from _judged(chain(first, read), started.looker, judge, started.in_memory)


def _cleaned_in_place(
    chunks: list["_Chunk"],
    column: firstlook.Column,
    width: int,
    mailing_list: MailingList | None,
    links: bool,
) -> Iterator["CleanedChunk"]:
    """A short file's chunks, its first look taken here and the register asked chunk by chunk."""
    domains = domain_rules(mailing_list.slug if mailing_list else None)
    looker = firstlook.InPlace(column, _keep_normalised(mailing_list, links, domains))
    looker.learn(NOTHING_IN_MEMORY)
    judge = _Judge(mailing_list, links, width, column.separator, domains)
    yield from _judged(iter(chunks), looker, judge, None)


def _judged(
    chunks: Iterator["_Chunk"],
    looker: Looker,
    judge: "_Judge",
    in_memory: Future[InMemory] | None,
) -> Iterator["CleanedChunk"]:
    """The chunks judged in order, CHUNKS_AHEAD read and sent to the first look in advance.

    ``in_memory`` is being read on the session's connection by another thread: nothing here
    touches the database until it is in, and it goes to the first look as soon as it is.
    """
    pending: deque[_Chunk] = deque()
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


def _learn(in_memory: Future[InMemory], judge: "_Judge", looker: Looker) -> None:
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


def _overflow(problem: str, fields: list[str], width: int) -> str:
    """The problem, plus what cutting the row to width loses, so that nothing vanishes."""
    cut = fields[width:]
    return f"{problem}; cut off: {' | '.join(cut)}" if cut else problem


class _Judge:
    """The verdicts on a chunk: the first look's, worded, then what the database says about
    the addresses still open, in REJECT_REASONS' order. What the first look matched in memory
    is not looked up again."""

    def __init__(
        self,
        mailing_list: MailingList | None,
        links: bool,
        width: int,
        separator: str,
        domains: DomainRules,
    ) -> None:
        self.mailing_list = mailing_list
        # Matched here unless the first look matches them with the suppressions.
        self.domains = domains or None
        self.width = width
        self.separator = separator
        self.slug = mailing_list.slug if mailing_list else None
        self.links = links
        self.classify_kind = register.classifier()
        self.suppressions_looked_up = True
        # With a list, restriction comes with the rest of what the register knows.
        self.restricted_looked_up = mailing_list is None

    def learn(self, in_memory: InMemory) -> None:
        self.suppressions_looked_up = in_memory.suppressions is None
        self.restricted_looked_up = self.mailing_list is None and in_memory.restricted is None
        if in_memory.domains is not None:
            self.domains = None

    def judged(self, chunk: _Chunk, look: Look) -> "CleanedChunk":
        """The chunk with its verdicts (and links)."""
        verdicts = _worded(look)
        if (
            self.suppressions_looked_up
            or self.restricted_looked_up
            or look.normalised
            or look.restricted
        ):
            self._looked_up(chunk, look, verdicts)
        for position in chunk.missing:
            verdicts[position] = _NO_ADDRESS
        for position in chunk.malformed:
            fields, problem = chunk.raw.others[position]
            verdicts[position] = ("invalid", _overflow(problem or "", fields, self.width))
        links = self._links(chunk, look.normalised, verdicts) if self.links else {}
        return CleanedChunk(
            chunk.raw,
            verdicts,
            links,
            dropped={*chunk.blank, *look.blank},
            padded=chunk.padded,
            width=self.width,
            separator=self.separator,
        )

    def _looked_up(self, chunk: _Chunk, look: Look, verdicts: dict[int, tuple[str, str]]) -> None:
        """What the first look did not match in memory, for the rows it left open; its
        restricted rows wait for the suppressions found here."""
        passed = {*chunk.rows.skipped, *look.blank}
        open_ = [
            (index, look.digests[index * DIGEST_BYTES : (index + 1) * DIGEST_BYTES])
            for index in range(len(chunk.rows.lines))
            if index not in verdicts and index not in passed
        ]
        if self.suppressions_looked_up:
            self._suppressed(open_, verdicts)
        if look.normalised is not None:
            if self.domains is not None:
                _by_domain(self.domains, open_, look.normalised, verdicts)
            self._hashed(open_, look.normalised, verdicts)
        for index in look.restricted:
            verdicts.setdefault(index, ("restricted", RESTRICTED))
        self._rules(open_, look.normalised, verdicts)

    def _suppressed(
        self, open_: list[tuple[int, bytes]], verdicts: dict[int, tuple[str, str]]
    ) -> None:
        by_hash = {digest.hex(): index for index, digest in open_}
        for digest, (scope, why) in covering_suppressions(by_hash, self.slug).items():
            verdicts[by_hash[digest]] = ("suppressed", f"{scope}: {why}")

    def _hashed(
        self,
        open_: list[tuple[int, bytes]],
        normalised: list[str],
        verdicts: dict[int, tuple[str, str]],
    ) -> None:
        by_address = {normalised[index]: index for index, _ in open_ if index not in verdicts}
        for address, source in hashed_matches(by_address).items():
            verdicts[by_address[address]] = ("suppressed", f"hashed list: {source}")

    def _rules(
        self,
        open_: list[tuple[int, bytes]],
        normalised: list[str] | None,
        verdicts: dict[int, tuple[str, str]],
    ) -> None:
        """Restriction, and with a list its rules, for the addresses still open."""
        still_open = [(index, digest) for index, digest in open_ if index not in verdicts]
        if self.mailing_list is None:
            if self.restricted_looked_up and still_open:
                keys = register.restricted(
                    db.session.connection(), [digest for _, digest in still_open]
                )
                for index, digest in still_open:
                    if digest[:DIGEST_KEY_BYTES] in keys:
                        verdicts[index] = ("restricted", RESTRICTED)
            return
        assert normalised is not None  # kept for every list
        by_hash = {digest.hex(): index for index, digest in still_open}
        known = register.known_addresses(set(by_hash), self.mailing_list)
        for digest, index in by_hash.items():
            address = known.get(digest)
            if address is None:
                consumer = self.classify_kind(normalised[index]) == CONSUMER
                address = STRANGE_CONSUMER if consumer else STRANGER
            reason, detail = register.rule_broken(address, self.mailing_list)
            if reason is not None:
                verdicts[index] = (reason, detail)

    def _links(
        self, chunk: _Chunk, normalised: list[str] | None, verdicts: dict[int, tuple[str, str]]
    ) -> dict[int, tuple[str, str, str]]:
        """For each kept row, by its position, its unsubscribe URL and headers."""
        assert normalised is not None  # kept whenever links are asked for
        passed = {*chunk.rows.skipped}
        links = {}
        for position, address in enumerate(normalised):
            if address and position not in verdicts and position not in passed:
                link = tokens.unsubscribe_link(address, self.slug)
                links[position] = (link.url, link.list_unsubscribe, link.list_unsubscribe_post)
        return links


def _by_domain(
    domains: DomainRules,
    open_: list[tuple[int, bytes]],
    normalised: list[str],
    verdicts: dict[int, tuple[str, str]],
) -> None:
    covering = domains.covering
    for index, _ in open_:
        if index not in verdicts and (rule := covering(normalised[index])):
            verdicts[index] = ("suppressed", str(rule))


def _worded(look: Look) -> dict[int, tuple[str, str]]:
    """The first look's verdicts with their details, by row index in the chunk sent; all but
    restriction, which comes after what the register may still find. A suppression's detail
    is worded once a chunk: thousands of rows share a few."""
    verdicts = dict.fromkeys(look.missing, _NO_ADDRESS)
    for index, why in look.invalid.items():
        verdicts[index] = ("invalid", why)
    for index, first in look.repeats.items():
        verdicts[index] = ("duplicate", f"same address as line {first}")
    suppressed = look.suppressed
    worded = {named: ("suppressed", "{}: {}".format(*named)) for named in {*suppressed.values()}}
    verdicts.update(zip(suppressed, map(worded.__getitem__, suppressed.values()), strict=True))
    for index, rule in look.by_domain.items():
        verdicts[index] = ("suppressed", str(rule))
    return verdicts
