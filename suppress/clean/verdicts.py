"""A chunk of a send list's rows and its verdicts.

``Chunk`` holds rows read together and tells what it can from them alone (a malformed row, one
with no address, the rows with a field to strip) before the first look is sent the rest;
``Judge`` words the first look's findings and asks the register about the addresses still open,
in ``REJECT_REASONS``' order, then hands the chunk on to be written (``written``). It reads the
database and never writes to it, except that minting unsubscribe links creates the Address rows
they refer to.
"""

from suppress import tokens
from suppress.addresses import CONSUMER
from suppress.clean import firstlook, register
from suppress.clean.firstlook import DIGEST_BYTES, InMemory, Look
from suppress.clean.register import RESTRICTED, STRANGE_CONSUMER, STRANGER
from suppress.clean.written import CleanedChunk
from suppress.csvfiles import RawChunk, padded_lines
from suppress.domains import DomainRules
from suppress.models import MailingList, db
from suppress.suppressions import DIGEST_KEY_BYTES, covering_suppressions, hashed_matches

NO_ADDRESS = ("invalid", "no address")


class Chunk:
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


def _overflow(problem: str, fields: list[str], width: int) -> str:
    """The problem, plus what cutting the row to width loses, so that nothing vanishes."""
    cut = fields[width:]
    return f"{problem}; cut off: {' | '.join(cut)}" if cut else problem


class Judge:
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

    def judged(self, chunk: Chunk, look: Look) -> CleanedChunk:
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
            verdicts[position] = NO_ADDRESS
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

    def _looked_up(self, chunk: Chunk, look: Look, verdicts: dict[int, tuple[str, str]]) -> None:
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
        self, chunk: Chunk, normalised: list[str] | None, verdicts: dict[int, tuple[str, str]]
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
    verdicts = dict.fromkeys(look.missing, NO_ADDRESS)
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
