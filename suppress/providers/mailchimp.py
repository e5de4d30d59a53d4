"""Mailchimp audiences: the webhook's form-encoded events, and the members API the sync job uses.

Mailchimp is mainly a sync destination: a destination is one audience (list), and a suppression
becomes the member's status there, ``unsubscribed`` or ``cleaned``. Its webhooks tell us about
unsubscribes, cleaned (bounced or complained) addresses and re-subscribes in an audience. They
carry no signature and no event id: the secret travels in the webhook URL's query and ids are
synthetic. Stores nothing.
"""

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from werkzeug.datastructures import MultiDict

from suppress.config import ConfigError, Setting, text
from suppress.providers.api import Api
from suppress.providers.base import Provider
from suppress.providers.credentials import same
from suppress.providers.delivery import Delivery, Event, Malformed, Rejected, Reply
from suppress.providers.fields import from_iso, nonblank, synthetic_id
from suppress.providers.settings import REQUIRED, secrets_list, slug_map, url
from suppress.providers.syncing import ACCEPTED, Account, Change, Outcome, Pulled, refused

# Marketing API Quick Start, "Make your first API call": the base URL names the account's data
# centre, which is the API key's suffix after its last "-" (…-us6 → us6).
DATA_CENTRE = "<dc>"
API_URL = f"https://{DATA_CENTRE}.api.mailchimp.com/3.0"
# Same page: HTTP Basic with any user name and the API key as the password.
API_USER = "suppress"
# developer.mailchimp.com "About Webhooks", Securing Webhooks: "include a secret key in the
# webhook URL and check the GET parameter".
SECRET_PARAMETER = "secret"

# "Sync Audience Data with Webhooks" and the list-webhooks API: the six event types.
EVENT_MAP: dict[str, str] = {
    # The member left the audience (data[action] unsub, or delete by an admin); data[reason]
    # abuse is a spam report, see _kind.
    "unsubscribe": "unsubscribed",
    # Mailchimp removed the address: data[reason] hard (bounce) or abuse (complaint), see _kind.
    "cleaned": "bounced",
    # Joined or rejoined the audience (by signup form, admin or API: the webhook's sources).
    "subscribe": "resubscribed",
    "profile": "unknown",
    # Address changed: data[old_email] and data[new_email], no data[email].
    "upemail": "unknown",
    # A campaign was sent or cancelled: about the campaign, no recipient.
    "campaign": "unknown",
}
ABUSE = "abuse"

# Sync. API reference, Lists/Audiences, "Batch subscribe or unsubscribe" (POST /lists/{list_id}):
# "Up to 500 members may be added or updated with each API call"; it answers 200 even when some
# members fail, naming each in ``errors``.
MAX_MEMBERS_PER_CALL = 500
# List members, "List members info": count "Maximum value is 1000"; paged by offset.
MAX_MEMBERS_PER_PAGE = 1000
# List members, status: Mailchimp cleans an address that hard bounced or kept soft bouncing, the
# nearest it has to our bounces; everything else we suppress is the member unsubscribing.
UNSUBSCRIBED = "unsubscribed"
CLEANED = "cleaned"
STATUSES = {"bounced": CLEANED, "soft_bounced": CLEANED}
PULLED_STATUSES = {UNSUBSCRIBED: "unsubscribed", CLEANED: "bounced"}
# Only what a pulled member needs ("fields": a comma-separated list of fields to return).
MEMBER_FIELDS = "members.email_address,members.status,members.last_changed"


class Mailchimp(Provider):
    slug = "mailchimp"
    name = "Mailchimp"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "WEBHOOK_SECRET": Setting(
            REQUIRED,
            secrets_list,
            "Random secret(s) put in the webhook URL as `?secret=…`, comma-separated while one "
            "rotates.",
        ),
        "LIST_IDS": Setting(
            {}, slug_map, "Our lists and the audiences they are, `slug=listid,slug=listid`."
        ),
    }
    API_SETTINGS: ClassVar[dict[str, Setting]] = {
        "API_KEY": Setting(REQUIRED, text, "API key (`…-us6`); required to sync."),
        "API_URL": Setting(
            API_URL, url, "Base URL of the Marketing API; `<dc>` is the API key's suffix."
        ),
        "AUDIENCE_ID": Setting(
            None, text, "Audience (list) id synced when a destination names none."
        ),
    }
    PUSH_BATCH = MAX_MEMBERS_PER_CALL
    # The API will not make an unsubscribed or cleaned member subscribed again: it answers
    # "Member In Compliance State" ("in a compliance state due to unsubscribe, bounce, or
    # compliance review and cannot be subscribed"); only the person can, by a sign-up form.
    CAN_LIFT = False
    TARGET = "the audience (list) id"
    TARGET_SETTING = "AUDIENCE_ID"

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        self.list_slugs = {ref: slug for slug, ref in self.settings["LIST_IDS"].items()}

    def verify(self, delivery: Delivery) -> None:
        given = parse_qs(urlsplit(delivery.url).query).get(SECRET_PARAMETER, [])
        if len(given) != 1:
            raise Rejected(f"missing {SECRET_PARAMETER} in the webhook URL", status=403)
        if not any(same(given[0], secret) for secret in self.settings["WEBHOOK_SECRET"]):
            raise Rejected(f"wrong {SECRET_PARAMETER} in the webhook URL", status=403)

    def handshake(self, delivery: Delivery) -> Reply | None:
        # "About Webhooks": the validator that checks a new webhook URL only sends GET.
        return Reply() if delivery.method == "GET" else None

    def parse(self, delivery: Delivery) -> list[Event]:
        form = delivery.form
        raw_type, fired_at = form.get("type"), form.get("fired_at")
        if not raw_type or not fired_at:
            raise Malformed("expected a form with type and fired_at")
        recipient = _recipient(raw_type, form)
        list_ref = form.get("data[list_id]") or None
        kind = _kind(raw_type, form)
        return [
            Event(
                provider=self.slug,
                # PROVIDERS.md §0 Deduplication; the audience stands in for the message id.
                provider_event_id=synthetic_id(self.slug, raw_type, recipient, list_ref, fired_at),
                type=kind,
                recipient=recipient,
                # "fired_at" is "YYYY-MM-DD HH:MM:SS" with no zone; taken as UTC (unverified).
                occurred_at=from_iso(fired_at),
                raw_type=raw_type,
                bounce_class="hard" if kind == "bounced" else None,
                diagnostic=_bounce_reason(raw_type, form),
                list_ref=list_ref,
                list_slug=self.list_slugs.get(list_ref),
                campaign=form.get("data[campaign_id]") or None,
                ip=form.get("data[ip_opt]") or None,
                # No sender: audience webhooks ("About Webhooks") report changes to members and
                # campaigns, never a message's From.
            )
        ]

    @classmethod
    def api(cls, settings: Mapping[str, Any], **options: Any) -> Api:
        return Api(_base_url(settings), auth=(API_USER, settings["API_KEY"]), **options)

    @classmethod
    def push(cls, account: Account, changes: list[Change]) -> list[Outcome]:
        """One batch call; ``update_existing`` sets the status of members already in the
        audience, so pushing again what it holds is accepted again."""
        body = {"members": _members(changes), "update_existing": True}
        answer = account.api.json("POST", f"/lists/{account.target}", json=body) or {}
        errors = {
            str(error.get("email_address", "")).lower(): error.get("error") or "refused"
            for error in answer.get("errors") or []
        }
        return [
            refused(change, errors[change.email.lower()])
            if change.email.lower() in errors
            else Outcome(change.key, ACCEPTED)
            for change in changes
        ]

    @classmethod
    def pull(cls, account: Account, since: datetime | None) -> Iterator[Pulled]:
        """Unsubscribed and cleaned members changed since ``since``. Leaving the audience is
        leaving the destination's list; a cleaned address is dead for every list."""
        for status, reason in PULLED_STATUSES.items():
            for member in _members_with(account, status, since):
                address = nonblank(member.get("email_address"))
                if address:
                    at = _moment(member.get("last_changed"))
                    yield Pulled(address, reason, at, on_list=status == UNSUBSCRIBED)


def _kind(raw_type: str, form: MultiDict) -> str:
    """An abuse report is a complaint whether it arrives as unsubscribe or cleaned.

    PROVIDERS.md mailchimp, Webhooks: data[reason] is manual or abuse on an unsubscribe, hard or
    abuse on a cleaned address.
    """
    if raw_type in ("unsubscribe", "cleaned") and form.get("data[reason]") == ABUSE:
        return "complained"
    return EVENT_MAP.get(raw_type, "unknown")


def _recipient(raw_type: str, form: MultiDict) -> str | None:
    recipient = form.get("data[email]") or form.get("data[new_email]") or None
    if recipient is None and raw_type in ("unsubscribe", "cleaned", "subscribe", "profile"):
        raise Malformed(f"{raw_type} without data[email]")
    return recipient


def _bounce_reason(raw_type: str, form: MultiDict) -> str | None:
    """A cleaned address's data[reason] (hard or abuse), the only bounce text Mailchimp sends."""
    return (form.get("data[reason]") or None) if raw_type == "cleaned" else None


def _base_url(settings: Mapping[str, Any]) -> str:
    base = settings["API_URL"]
    if DATA_CENTRE not in base:
        return base
    _, dash, centre = settings["API_KEY"].rpartition("-")
    if not dash or not centre.isalnum():
        raise ConfigError(
            "a Mailchimp API key ends in -<dc>, its data centre (e.g. …-us6); "
            "for any other key set SUPPRESS_MAILCHIMP_API_URL"
        )
    return base.replace(DATA_CENTRE, centre)


def _members(changes: list[Change]) -> list[dict[str, str]]:
    """One member per address: a batch may name an address twice (for the audience and for
    our list), and an unsubscribe outlasts a bounce there, so it wins."""
    statuses: dict[str, str] = {}
    for change in changes:
        address = change.email.lower()
        status = STATUSES.get(change.reason, UNSUBSCRIBED)
        if statuses.get(address) != UNSUBSCRIBED:
            statuses[address] = status
    return [{"email_address": address, "status": status} for address, status in statuses.items()]


def _members_with(account: Account, status: str, since: datetime | None) -> Iterator[dict]:
    params: dict[str, Any] = {
        "status": status,
        "count": MAX_MEMBERS_PER_PAGE,
        "fields": MEMBER_FIELDS,
    }
    if since:
        # "since_last_changed": ISO 8601, "2015-10-21T15:41:36+00:00".
        params["since_last_changed"] = since.astimezone(UTC).isoformat(timespec="seconds")
    offset = 0
    while True:
        page = account.api.json(
            "GET", f"/lists/{account.target}/members", params={**params, "offset": offset}
        )
        members = (page or {}).get("members") or []
        yield from members
        if len(members) < MAX_MEMBERS_PER_PAGE:
            return
        offset += len(members)


def _moment(value: Any) -> datetime | None:
    try:
        return from_iso(value)
    except Malformed:
        return None
