"""The first look at a send list's addresses: what can be told from the addresses alone.

For each address of a chunk: its normal form and hash, or why it has none; the line of an earlier
row with the same address; and, when the register is matched in memory (a long file), the
suppression that blocks it (its own, else its domain's) or its restriction. This is most of a
clean's work per row and needs no database and no app, so for a long file a worker process does it
on the other core (``InWorker``) while ``clean`` reads, judges and writes the rows; a short file has
it done in place (``InPlace``). Either way, chunk after chunk in file order, with the same results.

The worker is forked: it starts at once with everything imported, and touches nothing it
inherited but the addresses and what it is to match in memory. It normalises the chunks that
come before that (which the main process reads from the database meanwhile) and holds them
until it arrives. It knows no wording: ``clean`` writes the details.
"""

import multiprocessing
import signal
from collections import deque
from multiprocessing.connection import Connection
from typing import NamedTuple, Protocol

from suppress.addresses import DIGEST_BYTES, email_digests, normalise_all
from suppress.domains import DomainRule, DomainRules
from suppress.suppressions import DIGEST_KEY_BYTES, PackedSuppressions

# How long a worker may take to stop once told to, before it is killed.
STOP_SECONDS = 5.0

_FORK = multiprocessing.get_context("fork")


class InMemory(NamedTuple):
    """What is matched in memory: the suppressions in scope (the last part of them, the others
    having been ``take``n before), the digest keys of the restricted addresses, and the domain
    rules in scope (only with the suppressions: an address's own suppression is named before
    its domain's); None where the main process looks them up or matches them itself."""

    suppressions: PackedSuppressions | None
    restricted: frozenset[bytes] | None
    domains: DomainRules | None = None


NOTHING_IN_MEMORY = InMemory(None, None)


class Column(NamedTuple):
    """Where a row's address is: the file's separator and the address column's index."""

    separator: str
    index: int


class Rows(NamedTuple):
    """A chunk as the first look is sent it: each row's line, and the texts of the rows read
    unsplit (the address is found in them, and those with a field to strip are told apart
    here) one a line in ``texts``, "" for any other row; ``picked`` has the address picked
    out and stripped of such a row, unless it is ``skipped`` (decided without an address).
    One string for the texts costs a fraction of thousands to send."""

    lines: list[int]
    texts: str
    picked: dict[int, str]
    skipped: list[int]


class Look(NamedTuple):
    """What the first look found for one chunk, by each row's index in it.

    ``digests`` packs the SHA-256 digest of every normal form, DIGEST_BYTES each (zeros where there
    is none). A row not skipped is in at most one of ``blank`` (every field empty), ``missing`` (no
    address), ``invalid`` (why), ``repeats`` (the line that had the address first), ``suppressed``
    (scope and reason), ``by_domain`` (the domain rule) and ``restricted``: restriction is named
    after the suppressions the main process may still find (partners' hashed lists).
    ``normalised`` holds the normal forms ("" where there is none), when they were asked for.
    """

    digests: bytes
    blank: list[int]
    missing: list[int]
    invalid: dict[int, str]
    repeats: dict[int, int]
    suppressed: dict[int, tuple[str, str]]
    by_domain: dict[int, DomainRule]
    restricted: list[int]
    normalised: list[str] | None


class _NormalForms(NamedTuple):
    digests: bytes
    blank: list[int]
    missing: list[int]
    invalid: dict[int, str]
    normalised: list[str]


class FirstLookFailed(RuntimeError):
    """The worker process died (killed, or out of memory) before it answered."""


class Looker(Protocol):
    def take(self, suppressions: PackedSuppressions) -> None:
        """Match these suppressions too: a part of those in scope, read ahead of the rest;
        safe to call from another thread than the one sending chunks."""

    def learn(self, in_memory: InMemory) -> None:
        """Match what ``in_memory`` holds from now on; due before the first ``receive``."""

    def send(self, rows: Rows) -> None: ...

    def receive(self) -> Look:
        """The Look of the earliest chunk sent and not yet received."""
        ...

    def close(self) -> None: ...


class FirstLook:
    """The first look, chunk after chunk, remembering every address met; the normal forms
    are handed on when ``keep_normalised``, which matching domain rules needs too.

    ``met`` maps the digest key of every address met to the line it was first met on and, until
    then, that of every suppressed address to its scope and reason: one lookup per address
    tells both whether it is a repeat and whether it is suppressed.
    """

    def __init__(self, column: Column | None, keep_normalised: bool) -> None:
        self.column = column
        self.keep_normalised = keep_normalised
        self.met: dict[bytes, int | tuple[str, str]] = {}
        self.restricted: frozenset[bytes] = frozenset()
        self.domains: DomainRules | None = None

    def take(self, suppressions: PackedSuppressions) -> None:
        """Add a part of the suppressions; only they are in ``met`` until the first look."""
        suppressions.add_to(self.met)

    def learn(self, in_memory: InMemory) -> None:
        if in_memory.suppressions is not None:
            self.take(in_memory.suppressions)
        if in_memory.restricted is not None:
            self.restricted = in_memory.restricted
        if in_memory.domains:
            self.domains = in_memory.domains

    def of(self, rows: Rows) -> Look:
        return self.judged(rows, self.normal_forms(rows))

    def normal_forms(self, rows: Rows) -> "_NormalForms":
        assert self.column is not None, "aimed at the address column before any rows come"
        return normal_forms(rows, self.column)

    def held(self, rows: Rows, forms: _NormalForms) -> tuple[Rows, _NormalForms]:
        """What of a chunk is kept while it waits to be judged: its lines, and its normal
        forms only when they are handed on (domain rules, matched in memory, come only then)."""
        if not self.keep_normalised:
            forms = forms._replace(normalised=[])
        return rows._replace(texts=""), forms

    def judged(self, rows: Rows, forms: _NormalForms) -> Look:
        """The Look of a chunk whose normal forms are known, in file order."""
        digests, blank, missing, invalid, normalised = forms
        unaddressed = {*rows.skipped, *blank, *missing, *invalid}
        repeats: dict[int, int] = {}
        suppressed: dict[int, tuple[str, str]] = {}
        by_domain: dict[int, DomainRule] = {}
        restricted: list[int] = []
        met, earlier, restricted_keys = self.met, self.met.get, self.restricted
        covering = self.domains.covering if self.domains else None
        for index, line in enumerate(rows.lines):
            if index in unaddressed:
                continue
            key = digests[index * DIGEST_BYTES : index * DIGEST_BYTES + DIGEST_KEY_BYTES]
            found = earlier(key)
            if found is None:
                met[key] = line
                if covering and (rule := covering(normalised[index])):
                    by_domain[index] = rule
                elif key in restricted_keys:
                    restricted.append(index)
            elif type(found) is int:
                repeats[index] = found
            else:
                suppressed[index] = found
                met[key] = line
        kept = normalised if self.keep_normalised else None
        return Look(
            digests,
            blank,
            missing,
            invalid,
            repeats,
            suppressed,
            by_domain,
            restricted,
            kept,
        )


def normal_forms(rows: Rows, column: Column) -> _NormalForms:
    """Each row's address, found in its text if need be, in its normal form and hashed: a
    step at a time over the whole chunk, each a loop in C or a comprehension. An address found
    in a text is stripped, which changes only that of a text with a field to strip."""
    separator, at = column
    texts = rows.texts.split("\n")
    addresses = [text.split(separator, at + 1)[at].strip() if text else "" for text in texts]
    for index, address in rows.picked.items():
        addresses[index] = address
    normalised, invalid = normalise_all(addresses)
    blank: list[int] = []
    missing: list[int] = []
    skipped = set(rows.skipped)
    for index in [index for index, address in enumerate(addresses) if not address]:
        if index not in skipped:
            empty = not texts[index].replace(separator, "").strip()
            (blank if empty else missing).append(index)
    return _NormalForms(email_digests(normalised), blank, missing, invalid, normalised)


class InPlace:
    """The first look taken here, each chunk when its Look is asked for."""

    def __init__(self, column: Column, keep_normalised: bool) -> None:
        self._first_look = FirstLook(column, keep_normalised)
        self._chunks: deque[Rows] = deque()

    def take(self, suppressions: PackedSuppressions) -> None:
        self._first_look.take(suppressions)

    def learn(self, in_memory: InMemory) -> None:
        self._first_look.learn(in_memory)

    def send(self, rows: Rows) -> None:
        self._chunks.append(rows)

    def receive(self) -> Look:
        return self._first_look.of(self._chunks.popleft())

    def close(self) -> None:
        self._chunks.clear()


class InWorker:
    """The first look taken by a forked process while this one goes on.

    Chunks, and what is to be matched in memory, go out through a queue, whose feeder thread
    never makes the sender wait; Looks come back through a pipe. This side holds no copy of the
    pipe's sending end, so a worker that dies ends the pipe and ``receive`` says so instead of
    waiting.
    """

    def __init__(self, keep_normalised: bool) -> None:
        self._inbox = _FORK.Queue()
        self._looks, sender = _FORK.Pipe(duplex=False)
        self.process = _FORK.Process(
            target=_serve,
            args=(self._inbox, sender, FirstLook(None, keep_normalised)),
            name="suppress clean: first look",
            daemon=True,
        )
        self.process.start()
        sender.close()
        self._unanswered = 0

    def take(self, suppressions: PackedSuppressions) -> None:
        self._inbox.put(suppressions)

    def aim(self, column: Column) -> None:
        """Where the rows' addresses are: due before the first rows, and known only once the
        file is open, which may be after the worker started."""
        self._inbox.put(column)

    def learn(self, in_memory: InMemory) -> None:
        self._inbox.put(in_memory)

    def send(self, rows: Rows) -> None:
        self._inbox.put(rows)
        self._unanswered += 1

    def receive(self) -> Look:
        try:
            look = self._looks.recv()
        except EOFError:
            self.process.join(STOP_SECONDS)  # the pipe ends a moment before the process
            raise FirstLookFailed(
                f"the address worker stopped (exit status {self.process.exitcode})"
            ) from None
        self._unanswered -= 1
        return look

    def close(self) -> None:
        """Stop the worker: told to when it has answered everything, else (the reader gave up
        early) killed, since it may be stuck sending an answer nobody will read."""
        if not self._unanswered:
            self._inbox.put(None)
            self.process.join(STOP_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._inbox.cancel_join_thread()
        self._inbox.close()
        self._looks.close()


def _serve(
    inbox: "multiprocessing.Queue[PackedSuppressions | Column | InMemory | Rows | None]",
    looks: Connection,
    first_look: FirstLook,
) -> None:
    """The worker's loop: one Look per chunk, in order, until told to stop; the chunks that
    come before what is to be matched in memory wait for it, normalised, while the parts of
    the suppressions read ahead are taken in."""
    # Ctrl-C reaches the whole process group; the command stops the worker itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    waiting: deque[tuple[Rows, _NormalForms]] | None = deque()
    while (message := inbox.get()) is not None:
        if isinstance(message, PackedSuppressions):
            first_look.take(message)
            continue
        if isinstance(message, Column):
            first_look.column = message
            continue
        if isinstance(message, InMemory):
            first_look.learn(message)
            while waiting:
                looks.send(first_look.judged(*waiting.popleft()))
            waiting = None
            continue
        forms = first_look.normal_forms(message)
        if waiting is None:
            looks.send(first_look.judged(message, forms))
        else:
            waiting.append(first_look.held(message, forms))
