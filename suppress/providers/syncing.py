"""What a provider and the sync job exchange: the Change values a push takes, the Outcome of
each, the Pulled entries of a provider's own lists, and the Account a destination stands for.

The helpers here build Outcomes the same way in every provider's ``push``.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from suppress.providers.api import ApiError

if TYPE_CHECKING:
    from suppress.providers.api import Api


class Change(NamedTuple):
    """One suppression a destination must learn of, or with ``lift`` forget.

    ``key`` identifies the change in the Outcome the provider hands back. ``reason`` is ours
    (``unsubscribed``, ``complained``, ``bounced``...); a provider maps it to the nearest kind
    its API can record. ``on_list`` means the suppression covers only the destination's list.
    A named tuple, as is an Outcome: a push makes a thousand of each, and a frozen dataclass
    costs over twice as much to build.
    """

    key: int
    email: str
    reason: str
    on_list: bool = False
    lift: bool = False


ACCEPTED = "accepted"
REFUSED = "refused"
PENDING = "pending"


class Outcome(NamedTuple):
    """What the provider said of one change: accepted, refused for good (with its words), or
    pending (not settled yet: try again later)."""

    key: int
    status: str
    detail: str | None = None


# A whole call refused as malformed: the body, or one address in it, is not what the API takes.
MALFORMED_STATUSES = frozenset({400, 422})


def accepted(changes: Iterable[Change], detail: str | None = None) -> list[Outcome]:
    return [Outcome(change.key, ACCEPTED, detail) for change in changes]


def refused(change: Change, detail: str) -> Outcome:
    return Outcome(change.key, REFUSED, detail)


def split_on_refusal(changes: list[Change], send: Callable[[list[Change]], Any]) -> list[Outcome]:
    """Every change accepted once ``send`` takes them in one call.

    A provider that refuses a whole call as malformed does not say which address it choked on,
    so the batch is halved and each half sent again: a bad address ends up alone and refused
    with the provider's words, in about twice log2(batch) calls, while the others go through.
    """
    if not changes:
        return []
    try:
        send(changes)
    except ApiError as error:
        if error.status not in MALFORMED_STATUSES:
            raise
        if len(changes) == 1:
            return [refused(changes[0], str(error))]
        half = len(changes) // 2
        return split_on_refusal(changes[:half], send) + split_on_refusal(changes[half:], send)
    return accepted(changes)


@dataclass(frozen=True)
class Pulled:
    """One entry of a provider's own suppression list, in our reason vocabulary."""

    email: str
    reason: str
    at: datetime | None = None
    on_list: bool = False


@dataclass(frozen=True)
class Account:
    """A destination as its provider sees it: the scope there, the API settings, a client.

    ``target`` is the provider's own name for the scope (a domain, a group, a stream, an
    audience); ``list_slug`` our list whose suppressions it carries besides the global ones;
    ``settings`` the coerced ``API_SETTINGS`` of this destination.
    """

    name: str
    target: str | None
    list_slug: str | None
    settings: Mapping[str, Any]
    api: "Api"
