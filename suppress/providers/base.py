"""The provider contract: what an ESP module gives the webhooks blueprint and the sync job.

A provider turns its wire format into normalised :class:`Event` values and nothing more: it
never touches the database, the models or Flask's request. ``events.py`` decides what the
events mean (suppress, count, ignore). The blueprint hands each provider a :class:`Delivery`
(the raw request as bytes and headers) and maps the exceptions raised here to HTTP answers.

For the sync job a provider turns :class:`Change` values into calls to its suppression API
(``push``) and reads its own suppression lists back as :class:`Pulled` values (``pull``);
the ``sync`` package decides what to push and records the :class:`Outcome` of each change.

The values live beside it: ``delivery`` (Event, Delivery, Reply, Rejected, Malformed),
``syncing`` (Change, Outcome, Pulled, Account), ``settings`` (REQUIRED and the coercers),
``credentials`` and ``fields`` (helpers shared by provider modules).
"""

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from suppress.config import ConfigError, Setting
from suppress.providers.delivery import Delivery, Event, Reply
from suppress.providers.settings import REQUIRED
from suppress.providers.syncing import Account, Change, Outcome, Pulled

if TYPE_CHECKING:
    from suppress.providers.api import Api


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
