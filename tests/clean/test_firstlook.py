"""The first look: the same in a worker as in place; a worker that dies or is left behind does
not leave the clean waiting."""

import hashlib
import os
import signal

import pytest

from suppress.clean.firstlook import (
    Column,
    FirstLookFailed,
    InMemory,
    InPlace,
    InWorker,
    Rows,
)
from suppress.domains import DomainRule, DomainRules
from suppress.models import REASONS
from suppress.suppressions import DIGEST_KEY_BYTES, PackedSuppressions

COLUMN = Column(",", 1)
# Plain lines (the address found in the text) and, at indexes 1 and 3, addresses picked out
# already.
FIRST = Rows(
    lines=[2, 3, 4, 5, 6, 7],
    texts="Anna,a@b.fi\n\nCid,\n\n,\nDan,s@b.fi",
    picked={1: "A@B.FI", 3: "not-an-address"},
    skipped=[],
)
SECOND = Rows(lines=[8, 9, 10], texts="Eve,r@b.fi\nFay,f@rival.fi\n", picked={}, skipped=[2])
RIVAL = DomainRule("rival.fi", "global", "manual")


def key(address):
    return hashlib.sha256(address.encode()).digest()[:DIGEST_KEY_BYTES]


IN_MEMORY = InMemory(
    suppressions=PackedSuppressions(None, b"", key("s@b.fi") + bytes([REASONS.index("bounced")])),
    restricted=frozenset({key("r@b.fi")}),
    domains=DomainRules([RIVAL]),
)


def in_worker(column, keep_normalised):
    looker = InWorker(keep_normalised)
    looker.aim(column)
    return looker


def looks(looker):
    looker.send(FIRST)
    looker.learn(IN_MEMORY)
    looker.send(SECOND)
    try:
        return [looker.receive(), looker.receive()]
    finally:
        looker.close()


def test_the_first_look_finds_repeats_suppressions_domains_and_restrictions_in_memory():
    first, second = looks(InPlace(COLUMN, keep_normalised=True))
    assert first.repeats == {1: 2}
    assert (first.missing, first.blank) == ([2], [4])
    assert first.invalid == {3: "An email address must have an @-sign."}
    assert first.suppressed == {5: ("global", "bounced")}
    assert first.normalised == ["a@b.fi", "a@b.fi", "", "", "", "s@b.fi"]
    assert second.restricted == [0]
    assert second.by_domain == {1: RIVAL}
    assert second.digests[64:] == bytes(32)


def test_a_worker_takes_the_same_first_look_and_holds_chunks_until_it_learns():
    assert looks(in_worker(COLUMN, keep_normalised=True)) == looks(
        InPlace(COLUMN, keep_normalised=True)
    )


@pytest.mark.parametrize("looker", [InPlace, in_worker])
def test_suppressions_taken_in_parts_ahead_are_matched_with_the_last(looker):
    """A part read ahead names a global suppression even when the list's comes later."""
    looker = looker(COLUMN, keep_normalised=False)
    news = REASONS.index("manual")
    looker.take(PackedSuppressions("news", b"", key("a@b.fi") + bytes([REASONS.index("bounced")])))
    looker.learn(
        InMemory(
            PackedSuppressions("news", key("a@b.fi") + bytes([news]), b""),
            restricted=frozenset(),
        )
    )
    looker.send(FIRST)
    try:
        first = looker.receive()
    finally:
        looker.close()
    assert first.suppressed == {0: ("global", "bounced")}
    assert first.repeats == {1: 2}


def test_a_worker_started_before_the_file_is_open_is_aimed_at_its_column_later():
    """The register comes into memory while the file is opened: its header tells where the
    addresses are."""
    looker = InWorker(keep_normalised=True)
    looker.take(PackedSuppressions(None, b"", key("s@b.fi") + bytes([REASONS.index("bounced")])))
    looker.aim(COLUMN)
    looker.send(FIRST)
    looker.learn(InMemory(None, restricted=frozenset()))
    try:
        first = looker.receive()
    finally:
        looker.close()
    assert first.suppressed == {5: ("global", "bounced")}
    assert first.normalised == ["a@b.fi", "a@b.fi", "", "", "", "s@b.fi"]


def test_a_worker_that_dies_is_reported_instead_of_waited_for():
    looker = in_worker(COLUMN, keep_normalised=False)
    looker.learn(IN_MEMORY)
    os.kill(looker.process.pid, signal.SIGKILL)
    looker.process.join()
    looker.send(FIRST)
    with pytest.raises(FirstLookFailed, match="the address worker stopped"):
        looker.receive()
    looker.close()


def test_a_worker_whose_answers_are_left_unread_is_stopped():
    looker = in_worker(COLUMN, keep_normalised=True)
    looker.learn(IN_MEMORY)
    for _ in range(20):
        looker.send(FIRST)
    looker.close()
    assert not looker.process.is_alive()
