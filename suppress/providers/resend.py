"""Resend webhooks: Svix-signed JSON events about emails, contacts and domains.

Resend delivers through Svix, which is the Standard Webhooks scheme under ``svix-*`` header names
(resend.com/docs "Verify Webhooks Requests"), so verification is ``standard.check_signature``.
This module only knows Resend's vocabulary and payload shapes; it stores nothing.

For the sync job it pushes suppressions to the team's suppression list and reads it back. That
Suppressions API is in private beta (resend.com/docs "Suppressions"): an account without it is
told so plainly (:class:`NotAvailable`).
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar

from suppress.config import Setting, text
from suppress.providers.api import Api, ApiError
from suppress.providers.base import Provider
from suppress.providers.delivery import Delivery, Event, Malformed, load_json
from suppress.providers.fields import from_iso, nonblank
from suppress.providers.settings import REQUIRED, url
from suppress.providers.standard import check_signature, fanned_id, signing_keys
from suppress.providers.syncing import (
    Account,
    Change,
    Outcome,
    Pulled,
    accepted,
    refused,
    split_on_refusal,
)

API_URL = "https://api.resend.com"
HEADER_FAMILY = "svix"

# resend.com/docs "Event Types" (webhooks/event-types): every type Resend documents.
EVENT_MAP: dict[str, str] = {
    # "The API request was successful": accepted for delivery, not yet delivered.
    "email.sent": "sent",
    "email.delivered": "delivered",
    # "A temporary issue", such as a full inbox or a receiving server in trouble.
    "email.delivery_delayed": "deferred",
    # The class comes from data.bounce.type, see BOUNCE_CLASSES.
    "email.bounced": "bounced",
    "email.complained": "complained",
    "email.opened": "opened",
    "email.clicked": "clicked",
    # Never sent: invalid recipient, API key, domain or quota problems (data.failed.reason).
    "email.failed": "dropped",
    # Resend refused to send to an address on its suppression list (data.suppressed).
    "email.suppressed": "dropped",
    "email.scheduled": "unknown",
    # Inbound mail, not about a message we sent.
    "email.received": "unknown",
    "contact.created": "unknown",
    # Unsubscribed only when data.unsubscribed is true, see _kind.
    "contact.updated": "unknown",
    "contact.deleted": "unknown",
    "domain.created": "unknown",
    "domain.updated": "unknown",
    "domain.deleted": "unknown",
}

# resend.com/docs "Email Bounces" (dashboard/emails/email-bounces): Permanent is a hard bounce and
# Transient a soft one; the webhook page's example also names Temporary. Undetermined says too
# little to suppress on at once, so it counts as soft and repeats decide. A bounce without a type
# is hard: "email.bounced" is documented as a permanent rejection.
BOUNCE_CLASSES: dict[str, str] = {
    "Permanent": "hard",
    "Transient": "soft",
    "Temporary": "soft",
    "Undetermined": "soft",
}


# Sync: the Suppressions API (resend.com/docs api-reference/suppressions). "Add Suppressions" and
# "Remove Suppressions" take "between 1 and 100 email addresses"; "List Suppressions" pages by
# `after` (an id) up to a `limit` of 100 and says `has_more`.
SUPPRESSIONS_PER_CALL = 100
# "Email Suppressions" (changelog): an entry's origin is bounce, complaint or manual; every
# address the API adds is manual, whatever our reason.
PULLED_ORIGINS = {"bounce": "bounced", "complaint": "complained", "manual": "manual"}
# A private-beta API that the account lacks answers as if the route did not exist, or forbidden.
NOT_AVAILABLE_STATUSES = frozenset({403, 404})
TEAM_WIDE = (
    "Resend keeps one suppression list for the whole team: a suppression of one list "
    "is not pushed, as it would stop all mail to the address"
)


class NotAvailable(ApiError):
    """Resend refused its Suppressions API: the account is not in its private beta, or the
    API key is invalid (both answer 403). Fatal like bad credentials: the destination cannot
    work until the account or the key changes."""

    @property
    def fatal(self) -> bool:
        return True


class Resend(Provider):
    slug = "resend"
    name = "Resend"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "WEBHOOK_SECRET": Setting(
            REQUIRED,
            signing_keys,
            "The webhook's signing secret(s), `whsec_…`, comma-separated while one rotates.",
        ),
    }
    API_SETTINGS: ClassVar[dict[str, Setting]] = {
        "API_KEY": Setting(
            REQUIRED, text, "API key (`re_…`) with full access; required to sync suppressions."
        ),
        "API_URL": Setting(API_URL, url, "Base URL of the Resend API."),
    }
    PUSH_BATCH = SUPPRESSIONS_PER_CALL
    CAN_LIFT = True

    def verify(self, delivery: Delivery) -> None:
        check_signature(delivery, self.settings["WEBHOOK_SECRET"], prefix=HEADER_FAMILY)

    def parse(self, delivery: Delivery) -> list[Event]:
        document = load_json(delivery.body)
        raw_type, data = _envelope(document)
        # "Event Types": top-level created_at is the event; data.created_at is the email's.
        occurred_at = _time(document.get("created_at"))
        # anymail resend.py: svix-id is stable across retries; svix-timestamp is not.
        message_id = delivery.headers[f"{HEADER_FAMILY}-id"]
        recipients = _recipients(raw_type, data)
        details = _details(raw_type, data)
        return [
            Event(
                provider=self.slug,
                provider_event_id=fanned_id(message_id, recipient, len(recipients)),
                type=_kind(raw_type, data),
                recipient=recipient,
                occurred_at=occurred_at,
                raw_type=raw_type,
                **details,
            )
            for recipient in recipients
        ]

    @classmethod
    def api(cls, settings: Mapping[str, Any], **options: Any) -> Api:
        """``Authorization: Bearer re_…`` (api-reference "Introduction", "Authentication")."""
        headers = {"Authorization": f"Bearer {settings['API_KEY']}"}
        return Api(settings["API_URL"], headers=headers, **options)

    @classmethod
    def push(cls, account: Account, changes: list[Change]) -> list[Outcome]:
        """Add and remove in batches. Adding an address suppressed already returns its
        suppression (idempotent); removing one that is not returns nothing for it ("misses are
        omitted rather than reported as errors", resend-python's batch remove)."""
        team = [change for change in changes if not change.on_list]
        additions = [change for change in team if not change.lift]
        lifts = [change for change in team if change.lift]
        with _available():
            outcomes = split_on_refusal(additions, lambda batch: _send(account, "add", batch))
            if lifts:
                _send(account, "remove", lifts)
        return (
            outcomes
            + accepted(lifts)
            + [refused(change, TEAM_WIDE) for change in changes if change.on_list]
        )

    @classmethod
    def pull(cls, account: Account, since: datetime | None) -> Iterator[Pulled]:
        """Every page of the team's list; it has no date filter, so ``since`` is not used."""
        params: dict[str, Any] = {"limit": SUPPRESSIONS_PER_CALL}
        with _available():
            while True:
                page = account.api.json("GET", "/suppressions", params=params) or {}
                items = [item for item in page.get("data") or [] if isinstance(item, dict)]
                yield from filter(None, (_pulled(item) for item in items))
                if not (page.get("has_more") and items):
                    return
                params["after"] = items[-1].get("id")


@contextmanager
def _available() -> Iterator[None]:
    try:
        yield
    except ApiError as error:
        if error.status not in NOT_AVAILABLE_STATUSES:
            raise
        raise NotAvailable(
            f"Resend's Suppressions API is not available: it is in private beta and this "
            f"account may not have it, or the API key is invalid ({error})",
            status=error.status,
            body=error.body,
        ) from None


def _send(account: Account, action: str, changes: list[Change]) -> None:
    emails = [change.email for change in changes]
    account.api.json("POST", f"/suppressions/batch/{action}", json={"emails": emails})


def _pulled(item: Mapping[str, Any]) -> Pulled | None:
    """An entry of "List Suppressions"; resend-node names its origin ``reason``."""
    address = nonblank(item.get("email"))
    if address is None:
        return None
    origin = item.get("origin") or item.get("reason")
    try:
        at = from_iso(item.get("created_at"))
    except Malformed:
        at = None
    return Pulled(email=address, reason=PULLED_ORIGINS.get(origin, "manual"), at=at)


def _envelope(document: Any) -> tuple[str, dict]:
    """ "Event Types": every payload is ``{"type", "created_at", "data": {...}}``."""
    if not isinstance(document, dict) or not isinstance(document.get("type"), str):
        raise Malformed("expected a JSON object with a string type")
    data = document.get("data")
    if not isinstance(data, dict):
        raise Malformed("expected a data object")
    return document["type"], data


def _time(value: Any) -> datetime:
    if value is None:
        raise Malformed("created_at is missing")
    return from_iso(value)


def _kind(raw_type: str, data: dict) -> str:
    # "contact.updated" (changelog "New Contact Webhooks"): an unsubscribe shows as
    # unsubscribed: true; any other change to the contact is not one.
    if raw_type == "contact.updated" and data.get("unsubscribed") is True:
        return "unsubscribed"
    return EVENT_MAP.get(raw_type, "unknown")


def _recipients(raw_type: str, data: dict) -> list[str | None]:
    """Email events name their recipients in ``data.to``; contact events in ``data.email``.

    "Event Types": ``to`` is the "array of impacted recipient email addresses", so each gets an
    event. anymail resend.py reports that a multi-recipient send emits one event per recipient
    without saying which; send one recipient per email so a bounce cannot reach the others.
    """
    if raw_type.startswith("email."):
        value = data.get("to")
    elif raw_type.startswith("contact."):
        value = data.get("email")
    else:
        return [None]
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    if raw_type in EVENT_MAP:
        raise Malformed(f"{raw_type} without its recipient")
    return [None]


def _details(raw_type: str, data: dict) -> dict[str, Any]:
    """The optional Event fields each kind of payload carries."""
    details: dict[str, Any] = {
        "message_id": nonblank(data.get("email_id")),
        "campaign": nonblank(data.get("broadcast_id")),
    }
    if raw_type.startswith("email."):
        # "Event Types", common email parameters: ``from`` is the sender as "Name <address>".
        details["sender"] = nonblank(data.get("from"))
    if raw_type == "email.bounced":
        bounce = _object(data, "bounce")
        details["bounce_class"] = BOUNCE_CLASSES.get(bounce.get("type"), "hard")
        details["diagnostic"] = _bounce_text(bounce)
    elif raw_type == "email.clicked":
        click = _object(data, "click")
        details["url"] = nonblank(click.get("link"))
        details["ip"] = nonblank(click.get("ipAddress"))
        details["user_agent"] = nonblank(click.get("userAgent"))
    elif raw_type == "email.failed":
        details["diagnostic"] = nonblank(_object(data, "failed").get("reason"))
    elif raw_type == "email.suppressed":
        details["diagnostic"] = nonblank(_object(data, "suppressed").get("message"))
    elif raw_type.startswith("contact."):
        details["list_ref"] = nonblank(data.get("audience_id"))
    return details


def _bounce_text(bounce: dict) -> str | None:
    """The SMTP replies (``diagnosticCode``, a list) then Resend's own message.

    The SMTP text is what tells a sender-side policy block from a bad address (RULES.md R-MBP-6).
    """
    codes = bounce.get("diagnosticCode")
    codes = [codes] if isinstance(codes, str) else codes if isinstance(codes, list) else []
    parts = [code for code in codes if isinstance(code, str) and code]
    message = nonblank(bounce.get("message"))
    if message:
        parts.append(message)
    return "; ".join(parts) or None


def _object(data: dict, key: str) -> dict:
    value = data.get(key)
    return value if isinstance(value, dict) else {}
