"""Mailchimp audience webhooks: one form-encoded event per POST, authenticated by a URL secret.

Mailchimp is mainly a sync destination; its webhooks tell us about unsubscribes, cleaned
(bounced or complained) addresses and re-subscribes in an audience. They carry no signature and no
event id: the secret travels in the webhook URL's query and ids are synthetic. Stores nothing.
"""

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from werkzeug.datastructures import MultiDict

from suppress.config import Setting
from suppress.providers.base import (
    REQUIRED,
    Delivery,
    Event,
    Malformed,
    Provider,
    Rejected,
    Reply,
    from_iso,
    same,
    secrets_list,
    slug_map,
    synthetic_id,
    text,
    url,
)

# PROVIDERS.md mailchimp, Suppression API: <dc> is the API key's suffix after its last "-".
API_URL = "https://<dc>.api.mailchimp.com/3.0"
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


class Mailchimp(Provider):
    slug = "mailchimp"
    name = "Mailchimp"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "WEBHOOK_SECRET": Setting(
            REQUIRED,
            secrets_list,
            "Random secret(s) put in the webhook URL as `?secret=…`, comma-separated while one "
            "rotates; a sync-only set-up sets one too, which keeps the URL closed.",
        ),
        "API_KEY": Setting(None, text, "API key (`…-us6`) for pushing suppressions."),
        "API_URL": Setting(
            API_URL, url, "Base URL of the Marketing API; `<dc>` is the API key's suffix."
        ),
        "LIST_IDS": Setting(
            {}, slug_map, "Our lists and the audiences they are, `slug=listid,slug=listid`."
        ),
    }

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
            )
        ]


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
