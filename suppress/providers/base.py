"""The provider contract: what an ESP module gives the webhooks blueprint and the sync job.

A provider turns its wire format into normalised :class:`Event` values and nothing more: it
never touches the database, the models or Flask's request. ``events.py`` decides what the
events mean (suppress, count, ignore). The blueprint hands each provider a :class:`Delivery`
(the raw request as bytes and headers) and maps the exceptions raised here to HTTP answers.

For the sync job a provider turns :class:`Change` values into calls to its suppression API
(``push``) and reads its own suppression lists back as :class:`Pulled` values (``pull``);
the ``sync`` package decides what to push and records the :class:`Outcome` of each change.
"""

import base64
import binascii
import functools
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from werkzeug.datastructures import Headers, MultiDict

from suppress.config import ConfigError, Setting, http_url, text
from suppress.providers.api import ApiError
from suppress.vocabulary import EVENT_TYPES, REPORTED_BOUNCE_CLASSES

if TYPE_CHECKING:
    from suppress.providers.api import Api

REQUIRED = object()
"""A setting default meaning: must be set whenever the provider is enabled."""


@dataclass(frozen=True)
class Event:
    """One thing that happened to one recipient, in the service's own vocabulary.

    ``recipient`` is the address exactly as the provider sent it (``events.py`` normalises it,
    and a value that does not parse is kept as an event without an address). ``raw_type`` is
    the provider's own name for the event. ``machine`` is the provider's own verdict on an open
    or click (None: the provider does not say). ``diagnostic`` is the SMTP reply or the
    provider's bounce text, from which ``events.py`` recognises sender-side policy blocks
    (RULES.md R-MBP-6). ``list_ref`` is the provider's own id of the list or group an event
    concerns; ``list_slug`` is our list's slug when the provider's settings map that id to one.
    An unsubscribe without a ``list_slug`` is honoured everywhere. ``sender`` is the From
    address (or the envelope sender where the provider reports no From): mailbox providers
    judge complaint rates per sending domain (RULES.md R-MBP-4), so the event log keeps its
    domain.
    """

    provider: str
    provider_event_id: str
    type: str
    recipient: str | None
    occurred_at: datetime
    raw_type: str
    bounce_class: str | None = None
    diagnostic: str | None = None
    message_id: str | None = None
    list_ref: str | None = None
    list_slug: str | None = None
    campaign: str | None = None
    url: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    machine: bool | None = None
    sender: str | None = None

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}")
        if self.bounce_class not in (None, *REPORTED_BOUNCE_CLASSES):
            raise ValueError(f"unknown bounce class {self.bounce_class!r}")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")


@dataclass(frozen=True)
class Delivery:
    """A webhook request as it arrived: verify signatures on ``body``, never on a re-encoding.

    ``url`` is the full URL the provider called (Mandrill signs it); ``form`` holds the parsed
    fields of a form-encoded body; ``remote_addr`` is the client after trusted proxies.
    """

    method: str
    url: str
    headers: Headers
    body: bytes
    form: MultiDict = field(default_factory=MultiDict)
    remote_addr: str | None = None

    @functools.cached_property
    def document(self) -> Any:
        """The JSON body, parsed once for ``verify`` and ``parse`` alike; Malformed if the
        body is not JSON."""
        return load_json(self.body)


@dataclass(frozen=True)
class Reply:
    """An answer a provider gives itself, for set-up handshakes and pings; stores nothing."""

    status: int = 200
    body: Mapping[str, Any] = field(default_factory=lambda: {"status": "ok"})
    headers: Mapping[str, str] = field(default_factory=dict)


class Rejected(Exception):
    """The request is not from the provider: answered ``status`` (401 or 403), stored never.

    ``headers`` carries a challenge such as ``WWW-Authenticate`` where the provider only sends
    credentials after one (Amazon SNS).
    """

    def __init__(self, why: str, status: int = 401, headers: Mapping[str, str] | None = None):
        super().__init__(why)
        self.status = status
        self.headers = dict(headers or {})


class Malformed(ValueError):
    """The body is not what the provider documents: answered 400 with the reason, stored never."""


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


class Provider:
    """Base of every provider; a subclass sets the class attributes and overrides the methods.

    ``SETTINGS`` names each ``SUPPRESS_<SLUG>_<KEY>`` the webhook endpoint reads (keys without
    the prefix); a default of :data:`REQUIRED` must be set once the provider is enabled. The
    instance's ``settings`` holds the coerced values. ``API_SETTINGS`` are what the sync job
    reads for each destination: ``SUPPRESS_DEST_<NAME>_<KEY>``, else ``SUPPRESS_<SLUG>_<KEY>``;
    they never enable the webhook endpoint.
    """

    slug: ClassVar[str]
    name: ClassVar[str]
    SETTINGS: ClassVar[dict[str, Setting]] = {}
    API_SETTINGS: ClassVar[dict[str, Setting]] = {}
    # The status that makes this provider retry a delivery we could not store (PROVIDERS.md §0).
    retry_status: ClassVar[int] = 503
    # Changes per push call, the most the provider's API takes at once; 0: it has no push API.
    PUSH_BATCH: ClassVar[int] = 0
    # Push calls one sync worker keeps in flight at once: 1 unless the provider documents room
    # for more than its rate limit or connection cap leaves (PROVIDERS.md, each "Rate limits").
    CONCURRENCY: ClassVar[int] = 1
    # Whether the API can remove a suppression we pushed (a re-subscribe, an expiry).
    CAN_LIFT: ClassVar[bool] = False
    # What a destination's target names at this provider, and the API setting that supplies it
    # when the destination names none (None: the provider has one list per account).
    TARGET: ClassVar[str | None] = None
    TARGET_SETTING: ClassVar[str | None] = None

    def __init__(self, config: Mapping[str, Any]):
        self.settings = self.read_settings(config)

    @classmethod
    def variable(cls, key: str) -> str:
        return f"SUPPRESS_{cls.slug.upper()}_{key}"

    @classmethod
    def read_settings(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """The webhook settings from ``config`` (keys as ``<SLUG>_<KEY>``)."""
        return _coerced(
            cls.SETTINGS,
            config,
            lambda key: (f"{cls.slug.upper()}_{key}",),
            lambda key: f"{cls.variable(key)} must be set to use {cls.name}",
        )

    @classmethod
    def read_api_settings(cls, config: Mapping[str, Any], destination: str) -> dict[str, Any]:
        """A destination's API settings: ``DEST_<NAME>_<KEY>`` first, then ``<SLUG>_<KEY>``,
        so that two accounts at one provider can each have their own credentials."""
        own = f"DEST_{destination.upper().replace('-', '_')}_"
        return _coerced(
            cls.API_SETTINGS,
            config,
            lambda key: (own + key, f"{cls.slug.upper()}_{key}"),
            lambda key: (
                f"destination {destination!r} needs SUPPRESS_{own}{key} or "
                f"{cls.variable(key)} to be set"
            ),
        )

    @classmethod
    def is_configured(cls, config: Mapping[str, Any]) -> bool:
        """Whether any of the provider's variables is set, which enables it."""
        prefix = f"{cls.slug.upper()}_"
        return any(config.get(prefix + key) not in (None, "") for key in cls.SETTINGS)

    def verify(self, delivery: Delivery) -> None:
        """Raise Rejected unless ``delivery`` provably comes from the provider."""
        raise NotImplementedError

    def handshake(self, delivery: Delivery) -> Reply | None:
        """A Reply for a set-up request (subscription confirmation, test ping), else None.

        Called after ``verify``, so a handshake is authenticated like any event.
        """
        return None

    def parse(self, delivery: Delivery) -> list[Event]:
        """Every event in ``delivery``, one per recipient; raise Malformed for a bad body.

        An event type the provider documents but we do not act on, or one it adds later, is
        an Event of type ``unknown``, never an exception.
        """
        raise NotImplementedError

    @classmethod
    def api(cls, settings: Mapping[str, Any], **options: Any) -> "Api":
        """The authenticated client of the provider's API; ``options`` are Api's keywords."""
        raise NotImplementedError

    @classmethod
    def push(cls, account: Account, changes: list[Change]) -> list[Outcome]:
        """Tell the provider of at most PUSH_BATCH changes; an Outcome for every change.

        Pushes are idempotent: re-pushing what the provider already holds counts as accepted.
        ApiError means the call as a whole failed and nothing is settled.
        """
        raise NotImplementedError

    @classmethod
    def pull(cls, account: Account, since: datetime | None) -> Iterator[Pulled]:
        """Every entry of the provider's suppression lists in the account's scope (changed
        since ``since`` where the API filters by date), page by page."""
        raise NotImplementedError


# Helpers shared by provider modules.


def _coerced(
    table: Mapping[str, Setting],
    config: Mapping[str, Any],
    names: Callable[[str], tuple[str, ...]],
    needed: Callable[[str], str],
) -> dict[str, Any]:
    """Each setting of ``table`` coerced from the first of its ``names`` set in ``config``, else
    its default; ConfigError names the variable that is missing (``needed``) or wrong."""
    settled = {}
    for key, setting in table.items():
        variable = next((name for name in names(key) if config.get(name) not in (None, "")), None)
        if variable is None:
            if setting.default is REQUIRED:
                raise ConfigError(needed(key))
            settled[key] = setting.default
            continue
        try:
            settled[key] = setting.coerce(config[variable])
        except ValueError as error:
            raise ConfigError(f"SUPPRESS_{variable}: {error}") from None
    return settled


def secrets_list(value: Any) -> tuple[str, ...]:
    """Comma-separated secrets, so a key can rotate: the new one verifies beside the old."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    secrets = tuple(item.strip() for item in items if item.strip())
    if not secrets:
        raise ValueError("expected one or more comma-separated secrets")
    return secrets


def credentials_list(value: Any) -> tuple[tuple[str, str], ...]:
    """Comma-separated ``user:password`` pairs (a password may itself hold a colon)."""
    pairs = []
    for item in secrets_list(value):
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise ValueError("expected user:password")
        pairs.append((user, password))
    return tuple(pairs)


def same(given: str | bytes, expected: str | bytes) -> bool:
    """Constant-time comparison of two secrets, whatever their types."""
    if isinstance(given, str):
        given = given.encode()
    if isinstance(expected, str):
        expected = expected.encode()
    return hmac.compare_digest(given, expected)


def basic_auth(headers: Headers) -> tuple[str, str] | None:
    """The user and password of an ``Authorization: Basic`` header, None when absent or bad."""
    scheme, _, encoded = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def check_basic_auth(
    headers: Headers, accepted: Iterable[tuple[str, str]], *, realm: str, status: int = 401
) -> None:
    """Raise Rejected (with a Basic challenge) unless the request carries accepted credentials.

    Every accepted pair is compared, so the time taken does not tell which user name exists.
    """
    given = basic_auth(headers)
    matched = False
    for user, password in accepted:
        if given is not None:
            matched |= same(given[0], user) & same(given[1], password)
    if not matched:
        challenge = {"WWW-Authenticate": f'Basic realm="{realm}"'}
        raise Rejected("missing or wrong credentials", status=status, headers=challenge)


def load_json(body: bytes) -> Any:
    """The JSON document in ``body``; Malformed for anything else (encoding included)."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise Malformed(f"the body is not JSON: {error}") from None


def nonblank(value: Any) -> str | None:
    """A string field as sent; None when it is absent, blank or not a string."""
    return value if isinstance(value, str) and value.strip() else None


def sender_of(*candidates: Any) -> str | None:
    """The first candidate that names a sender, best first (the From header, then the envelope
    sender): a non-blank string, or a list whose first item is one (a From header may list
    several authors; the first stands for the message). None when none does: an odd value never
    costs the event."""
    for candidate in candidates:
        if isinstance(candidate, list):
            candidate = candidate[0] if candidate else None
        if nonblank(candidate):
            return candidate
    return None


def optional_text(record: Mapping[str, Any], key: str) -> str | None:
    return nonblank(record.get(key))


def required_text(record: Mapping[str, Any], key: str) -> str:
    """A string field the provider documents as always present; Malformed without it."""
    value = nonblank(record.get(key))
    if value is None:
        raise Malformed(f"missing or empty {key}")
    return value


def scalar_text(value: Any) -> str | None:
    """A scalar field (ids and codes come as strings or numbers) as text; None for objects,
    lists, booleans and blanks."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    return str(value).strip() or None


def synthetic_id(*parts: object) -> str:
    """A stable id for an event the provider gives none (PROVIDERS.md §0 Deduplication).

    Hex SHA-256 over the raw values as received, joined by ``|``: a retry hashes the same, while
    two real events differing in any field do not.
    """
    text = "|".join("" if part is None else str(part) for part in parts)
    return hashlib.sha256(text.encode()).hexdigest()


def from_epoch(value: Any) -> datetime:
    """A UTC time from Unix seconds (int, float or numeric string); Malformed otherwise.

    Values too large to be seconds are taken as milliseconds, as several providers send them.
    """
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise Malformed(f"not a Unix timestamp: {value!r}") from None
    if seconds > 1e11:
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise Malformed(f"not a Unix timestamp: {value!r}") from None


def from_iso(value: Any) -> datetime:
    """A UTC time from ISO 8601 (``Z`` or an offset; a time without one is taken as UTC)."""
    if not isinstance(value, str):
        raise Malformed(f"not an ISO 8601 time: {value!r}")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Malformed(f"not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def optional_iso(value: Any) -> datetime | None:
    """An ISO 8601 time from a provider's API answer; None for a blank or unreadable one (a
    pulled entry is worth keeping without its date)."""
    try:
        return from_iso(value) if nonblank(value) else None
    except Malformed:
        return None


# The coercers providers' settings share with the service's own.
url = http_url


def flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = text(value).lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def seconds(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError("expected a whole number of seconds") from None
    if number < 1:
        raise ValueError("expected a whole number of seconds, at least 1")
    return number


def slug_map(value: Any) -> dict[str, str]:
    """``slug=id,slug=id``: our list slugs and the provider's ids for the same lists."""
    pairs = {}
    for item in secrets_list(value):
        slug, sep, ref = (part.strip() for part in item.partition("="))
        if not sep or not slug or not ref:
            raise ValueError("expected slug=id pairs separated by commas")
        pairs[slug] = ref
    return pairs
