"""The SES API v2 calls the sync job makes: the account-level suppression list, which records
only bounces and complaints, and the optional contact list that records unsubscribes
(PROVIDERS.md § ses, "Suppression API"). REST with JSON bodies, signed with SigV4.
"""

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from suppress.config import text
from suppress.providers.api import ApiError
from suppress.providers.delivery import Malformed
from suppress.providers.fields import from_epoch, nonblank
from suppress.providers.syncing import ACCEPTED, Account, Change, Outcome, Pulled, refused

# The SES API v2 (API reference: "PutSuppressedDestination", "DeleteSuppressedDestination",
# "ListSuppressedDestinations", "GetContact", "CreateContact", "UpdateContact", "ListContacts"),
# REST with JSON bodies, signed with SigV4 for the service name "ses".
SIGNING_SERVICE = "ses"
SUPPRESSED = "/v2/email/suppression/addresses"
CONTACT_LISTS = "/v2/email/contact-lists"
# PutSuppressedDestination's Reason takes "BOUNCE | COMPLAINT" only: the nearest of our reasons
# go there; the rest are unsubscribes, which SES records in a contact list.
ACCOUNT_REASONS = {"bounced": "BOUNCE", "soft_bounced": "BOUNCE", "complained": "COMPLAINT"}
PULLED_REASONS = {"BOUNCE": "bounced", "COMPLAINT": "complained"}
# Each call names one address; this many changes are settled per transaction.
CHANGES_PER_BATCH = 50
# PageSize of the two list calls; the reference sets no maximum (1000 unverified).
PAGE_SIZE = 1000
# UpdateContact: "You must specify all existing topic preferences ..., otherwise, all your
# existing preferences will be removed", so a contact is read before it is written.
KEPT_CONTACT_FIELDS = ("TopicPreferences", "UnsubscribeAll", "AttributesData")
NO_CONTACT_LIST = (
    "Amazon SES records only bounces and complaints account-wide; an unsubscribe needs a "
    "contact list (--target or SUPPRESS_SES_CONTACT_LIST)"
)
AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")


def aws_region(value: Any) -> str:
    region = text(value)
    if not AWS_REGION.fullmatch(region):
        raise ValueError(f"not an AWS region: {region!r} (e.g. eu-north-1)")
    return region


def push_one(account: Account, change: Change) -> Outcome:
    reason = ACCOUNT_REASONS.get(change.reason)
    if reason:
        return _push_suppressed(account, change, reason)
    if account.target:
        return _push_contact(account, change)
    # Without a contact list no unsubscribe of ours was ever pushed: there is nothing to lift.
    return Outcome(change.key, ACCEPTED) if change.lift else refused(change, NO_CONTACT_LIST)


def _push_suppressed(account: Account, change: Change, reason: str) -> Outcome:
    """PutSuppressedDestination is an upsert; DeleteSuppressedDestination of an address that is
    not there answers NotFoundException (404), which is what a lift wants."""
    if change.lift:
        path = f"{SUPPRESSED}/{quote(change.email, safe='')}"
        return _settled(account, change, "DELETE", path, ok=(404,))
    body = {"EmailAddress": change.email, "Reason": reason}
    return _settled(account, change, "PUT", SUPPRESSED, json=body)


def _push_contact(account: Account, change: Change) -> Outcome:
    """Unsubscribe the contact from everything, or from the topic named after our list when
    the change covers only the list; a lift opts back in. A contact SES does not know is
    created, unless the change is a lift (nothing to undo)."""
    contacts = f"{CONTACT_LISTS}/{quote(account.target or '', safe='')}/contacts"
    path = f"{contacts}/{quote(change.email, safe='')}"
    found = account.api.call("GET", path, ok=(404,))
    if found.status_code == 404 and change.lift:
        return Outcome(change.key, ACCEPTED)
    if found.status_code == 404:
        body = {"EmailAddress": change.email, **_preferences({}, change, account.list_slug)}
        return _settled(account, change, "POST", contacts, json=body)
    body = _preferences(found.json(), change, account.list_slug)
    return _settled(account, change, "PUT", path, json=body)


def _settled(account: Account, change: Change, method: str, path: str, **kwargs: Any) -> Outcome:
    """One call about one address. BadRequestException (400) is SES refusing this address (one
    with a non-ASCII local part, for one: SES "does not support the SMTPUTF8 extension")."""
    try:
        account.api.call(method, path, **kwargs)
    except ApiError as error:
        if error.status == 400:
            body = error.body if isinstance(error.body, dict) else {}
            return refused(change, str(body.get("message") or error.body))
        raise
    return Outcome(change.key, ACCEPTED)


def _preferences(contact: Mapping[str, Any], change: Change, list_slug: str | None) -> dict:
    """The contact's fields as they were, with the one preference the change is about set."""
    kept = {name: contact[name] for name in KEPT_CONTACT_FIELDS if contact.get(name) is not None}
    if not (change.on_list and list_slug):
        return {**kept, "UnsubscribeAll": not change.lift}
    status = "OPT_IN" if change.lift else "OPT_OUT"
    topics = [t for t in kept.get("TopicPreferences", []) if t.get("TopicName") != list_slug]
    topics.append({"TopicName": list_slug, "SubscriptionStatus": status})
    return {**kept, "TopicPreferences": topics}


def pull_suppressed(account: Account, since: datetime | None) -> Iterator[Pulled]:
    params: dict[str, Any] = {"PageSize": PAGE_SIZE}
    if since:
        # The SDKs send a query-string timestamp as ISO 8601.
        params["StartDate"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    while True:
        page = account.api.json("GET", SUPPRESSED, params=params) or {}
        for summary in page.get("SuppressedDestinationSummaries") or []:
            address = nonblank(summary.get("EmailAddress"))
            reason = PULLED_REASONS.get(summary.get("Reason"))
            if address and reason:
                yield Pulled(address, reason, at=_moment(summary.get("LastUpdateTime")))
        if not page.get("NextToken"):
            return
        params["NextToken"] = page["NextToken"]


def pull_contacts(account: Account) -> Iterator[Pulled]:
    path = f"{CONTACT_LISTS}/{quote(account.target or '', safe='')}/contacts/list"
    body: dict[str, Any] = {"PageSize": PAGE_SIZE}
    while True:
        page = account.api.json("POST", path, json=body) or {}
        for contact in page.get("Contacts") or []:
            entry = _unsubscribed(contact, account.list_slug)
            if entry:
                yield entry
        if not page.get("NextToken"):
            return
        body["NextToken"] = page["NextToken"]


def _unsubscribed(contact: Mapping[str, Any], list_slug: str | None) -> Pulled | None:
    """A contact who left everything, or left the topic named after our list."""
    address = nonblank(contact.get("EmailAddress"))
    at = _moment(contact.get("LastUpdatedTimestamp"))
    if address is None:
        return None
    if contact.get("UnsubscribeAll") is True:
        return Pulled(address, "unsubscribed", at=at)
    topics = {
        t.get("TopicName"): t.get("SubscriptionStatus")
        for t in contact.get("TopicPreferences") or []
    }
    if list_slug and topics.get(list_slug) == "OPT_OUT":
        return Pulled(address, "unsubscribed", at=at, on_list=True)
    return None


def _moment(value: Any) -> datetime | None:
    """SES answers timestamps as Unix seconds (the JSON protocol's default)."""
    try:
        return from_epoch(value) if value is not None else None
    except Malformed:
        return None
