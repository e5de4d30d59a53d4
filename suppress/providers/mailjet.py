"""Mailjet: its Event API requests turned into normalised events, and suppressions pushed to and
pulled from its contacts API.

Mailjet signs nothing; its own recommendation is HTTPS plus basic auth in the callback URL
(Event API, "Endpoint URL"). A POST holds one event object, or a JSON array of the last second's
events when the callback is registered with ``Version: 2`` ("Grouping events"); event types can
be mixed in one array. This module reads wire formats only; ``events.py`` decides what the
events mean.

For the sync job a Mailjet account is a destination. A global suppression excludes the contact
from every marketing campaign (``IsExcludedFromCampaigns``, guide "Exclusion List"); a list
suppression unsubscribes the contact from the contact list the destination targets. The API
records no bounce or complaint as such, so every reason becomes one of those two (PROVIDERS.md
§ mailjet). Both are pushed as asynchronous bulk jobs that are watched until they finish.
"""

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

import requests

from suppress.config import Setting, text
from suppress.providers.api import Api, ApiError
from suppress.providers.base import Provider
from suppress.providers.credentials import check_basic_auth
from suppress.providers.delivery import Delivery, Event, Malformed, Reply, load_json
from suppress.providers.fields import (
    from_epoch,
    nonblank,
    optional_iso,
    optional_text,
    required_text,
    synthetic_id,
)
from suppress.providers.settings import REQUIRED, credentials_list, url
from suppress.providers.syncing import (
    ACCEPTED,
    PENDING,
    Account,
    Change,
    Outcome,
    Pulled,
    accepted,
    refused,
)

REALM = "suppress mailjet webhook"

# ``event`` → (normalised type, bounce class); a bounce's class comes from ``hard_bounce``
# (Event API, "Events").
EVENT_TYPES: dict[str, tuple[str, str | None]] = {
    # "Dispatched when the destination SMTP server has accepted the message".
    "sent": ("delivered", None),
    "open": ("opened", None),
    "click": ("clicked", None),
    "bounce": ("bounced", None),
    # Mailjet did not send: e.g. "preblocked" (recently bounced), "duplicate in campaign".
    "blocked": ("dropped", None),
    # ``source`` names the feedback-loop programme that reported it.
    "spam": ("complained", None),
    # ``mj_list_id`` names the contact list left.
    "unsub": ("unsubscribed", None),
}
# "possible values for errors": a temporary rejection Mailjet re-attempts, so not yet a bounce.
RETRIED_ERRORS = frozenset({"greylisted"})

# Sync: the contacts API (API reference "Contacts", "Bulk Contact Management"; guides "Exclusion
# List" and "Manage Contacts in bulk"). Every resource answers {"Count", "Data": [...], "Total"}.
CONTACTS = "/v3/REST/contact"
EXCLUDE_JOBS = "/v3/REST/contact/managemanycontacts"
# No per-call maximum is documented for managemanycontacts (unverified); RudderStack's Mailjet
# destination settled on 5000 "by trial and error", so 1000 leaves a margin.
MAX_CONTACTS_PER_JOB = 1000
# "Filtering resources", Limit: "The default value is 10 and the maximum value is 1000".
PAGE_LIMIT = 1000
# "Monitor the upload of multiple contacts": Completed, Error and Abort end a job; the others
# (Allocated, Upload, Prepare, Importing) mean it is still running.
COMPLETED = "Completed"
ABORTED = "Abort"
FINISHED = frozenset({COMPLETED, "Error", ABORTED})
# Seconds to wait before each look at a running job. A job still running after all of them
# leaves its changes pending for a later pass: pushing them again is harmless.
JOB_POLL_DELAYS = (0.5, 1, 2, 4, 8, 15, 30)
# "Manage Contacts in bulk", Actions: "unsub" unsubscribes from the list; "addforce" "adds the
# contact and resets the unsub status to false".
UNSUBSCRIBE = "unsub"
RESUBSCRIBE = "addforce"


class Mailjet(Provider):
    slug = "mailjet"
    name = "Mailjet"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "WEBHOOK_BASIC_AUTH": Setting(
            REQUIRED, credentials_list, "user:password in the callback URL (comma-separated)"
        ),
    }
    API_SETTINGS: ClassVar[dict[str, Setting]] = {
        "API_KEY": Setting(REQUIRED, text, "API key; required to sync suppressions."),
        "API_SECRET": Setting(REQUIRED, text, "Secret key paired with the API key."),
        "API_URL": Setting("https://api.mailjet.com", url, "Mailjet API base URL."),
    }
    PUSH_BATCH = MAX_CONTACTS_PER_JOB
    CAN_LIFT = True

    def verify(self, delivery: Delivery) -> None:
        check_basic_auth(delivery.headers, self.settings["WEBHOOK_BASIC_AUTH"], realm=REALM)

    def handshake(self, delivery: Delivery) -> Reply | None:
        """A probe of the URL (a GET, or a POST without a body) gets 200 and stores nothing."""
        if delivery.method in ("GET", "HEAD") or not delivery.body.strip():
            return Reply()
        return None

    def parse(self, delivery: Delivery) -> list[Event]:
        document = load_json(delivery.body)
        # Grouped callbacks post an array (possibly empty); ungrouped ones a bare object.
        records = document if isinstance(document, list) else [document]
        return [self.event(record) for record in records]

    @classmethod
    def api(cls, settings: Mapping[str, Any], **options: Any) -> Api:
        """HTTP Basic, the API key as user and the secret key as password ("Authentication")."""
        return Api(
            settings["API_URL"], auth=(settings["API_KEY"], settings["API_SECRET"]), **options
        )

    @classmethod
    def push(cls, account: Account, changes: list[Change]) -> list[Outcome]:
        """Suppressions in bulk jobs, global ones to the exclusion list and list ones to the
        target list; lifts one contact at a time."""
        additions = [change for change in changes if not change.lift]
        excluded = [change for change in additions if not change.on_list]
        listed = [change for change in additions if change.on_list]
        contacts = [{"Email": c.email, "IsExcludedFromCampaigns": True} for c in excluded]
        outcomes = _in_bulk(account, EXCLUDE_JOBS, {"Contacts": contacts}, excluded, _exclude)
        if listed and not account.target:
            outcomes += [refused(change, NO_LIST) for change in listed]
        elif listed:
            jobs = f"/v3/REST/contactslist/{account.target}/managemanycontacts"
            body = {"Action": UNSUBSCRIBE, "Contacts": [{"Email": c.email} for c in listed]}
            outcomes += _in_bulk(account, jobs, body, listed, _unsubscribe)
        return outcomes + [_lift(account, change) for change in changes if change.lift]

    @classmethod
    def pull(cls, account: Account, since: datetime | None) -> Iterator[Pulled]:
        """Contacts excluded from campaigns, then the target list's unsubscribed members; neither
        resource filters by date, so ``since`` is not used."""
        for contact in _pages(account, CONTACTS, {"IsExcludedFromCampaigns": "true"}):
            email = nonblank(contact.get("Email"))
            if email:
                complained = _true(contact.get("IsSpamComplaining"))
                reason = "complained" if complained else "unsubscribed"
                yield Pulled(
                    email, reason, optional_iso(contact.get("ExclusionFromCampaignsUpdatedAt"))
                )
        if not (account.list_slug and account.target):
            return
        members = {"ContactsList": account.target, "Unsub": "true"}
        for member in _pages(account, "/v3/REST/listrecipient", members):
            email = _address_of(account, member.get("ContactID"))
            if email:
                at = optional_iso(member.get("UnsubscribedAt"))
                yield Pulled(email, "unsubscribed", at, on_list=True)

    def event(self, record: Any) -> Event:
        if not isinstance(record, dict):
            raise Malformed("each Mailjet event must be a JSON object")
        raw_type = required_text(record, "event")
        recipient = required_text(record, "email")
        if "time" not in record:
            raise Malformed(f"{raw_type} event without a time")
        message_id = message_reference(record)
        kind, bounce_class = classify(raw_type, record)
        return Event(
            provider=self.slug,
            provider_event_id=synthetic_id(
                self.slug, raw_type, recipient, message_id, record["time"]
            ),
            type=kind,
            bounce_class=bounce_class,
            recipient=recipient,
            occurred_at=from_epoch(record["time"]),
            raw_type=raw_type,
            diagnostic=diagnostic(record),
            message_id=message_id,
            list_ref=nonzero_id(record, "mj_list_id"),
            campaign=campaign(record),
            url=optional_text(record, "url"),
            ip=optional_text(record, "ip"),
            user_agent=optional_text(record, "agent"),
            # No sender: no event of the Event API ("Event types") names the From or envelope
            # sender.
        )


def classify(raw_type: str, record: Mapping[str, Any]) -> tuple[str, str | None]:
    kind, bounce_class = EVENT_TYPES.get(raw_type, ("unknown", None))
    if kind != "bounced":
        return kind, bounce_class
    hard = record.get("hard_bounce") is True
    if not hard and record.get("error") in RETRIED_ERRORS:
        return "deferred", None
    return "bounced", "hard" if hard else "soft"


def message_reference(record: Mapping[str, Any]) -> str | None:
    """``MessageID`` is a big integer (kept as text); grouped examples carry only the
    deprecated string ``mj_message_id``."""
    for key in ("MessageID", "mj_message_id"):
        value = record.get(key)
        if isinstance(value, int | str) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def diagnostic(record: Mapping[str, Any]) -> str | None:
    """The SMTP reply of a ``sent`` event, or the error table's cause of a bounce or block."""
    if optional_text(record, "smtp_reply"):
        return record["smtp_reply"]
    parts = [optional_text(record, key) for key in ("error_related_to", "error", "comment")]
    words = [part for part in parts if part]
    return ": ".join(words) if words else None


def campaign(record: Mapping[str, Any]) -> str | None:
    """Our own campaign name (the X-Mailjet-Campaign header), else Mailjet's campaign id."""
    return optional_text(record, "customcampaign") or nonzero_id(record, "mj_campaign_id")


def nonzero_id(record: Mapping[str, Any], key: str) -> str | None:
    """Mailjet sends 0 where a message has no campaign or list."""
    value = record.get(key)
    if isinstance(value, bool) or value in (None, 0, "", "0"):
        return None
    return str(value)


# Sync

# Global suppressions need no target (TARGET stays None); a destination carrying a list names
# the contact list it unsubscribes from as its target, or its list suppressions are refused.
NO_LIST = "the destination names no Mailjet contact list: give it --target <contact list id>"


def _in_bulk(
    account: Account,
    jobs: str,
    body: Mapping[str, Any],
    changes: list[Change],
    alone: Callable[[Account, Change], Outcome],
) -> list[Outcome]:
    """One job for ``changes``, watched until it ends. When Mailjet refuses the batch or the job
    reports an error, each change is pushed alone, so the address it refuses is named and the
    others are not held back by it."""
    if not changes:
        return []
    try:
        answer = account.api.json("POST", jobs, json=body)
    except ApiError as error:
        if error.status != 400:
            raise
        return [alone(account, change) for change in changes]
    job = next((item["JobID"] for item in _data(answer) if item.get("JobID")), None)
    if job is None:
        raise ApiError(f"POST {jobs}: Mailjet answered no JobID")
    state = _finished(account.api, f"{jobs}/{job}")
    status = state.get("Status")
    if status not in FINISHED or status == ABORTED:
        why = f"Mailjet job {job} is {status or 'not reported'}; it is pushed again later"
        return [Outcome(change.key, PENDING, why) for change in changes]
    if status == COMPLETED and not state.get("Error") and not state.get("ErrorFile"):
        return accepted(changes)
    return [alone(account, change) for change in changes]


def _finished(api: Api, job: str) -> Mapping[str, Any]:
    """The job's last reported state: finished, or still running when the waits ran out."""
    state: Mapping[str, Any] = {}
    for delay in JOB_POLL_DELAYS:
        time.sleep(delay)
        state = next(iter(_data(api.json("GET", job))), {})
        if state.get("Status") in FINISHED:
            break
    return state


def _exclude(account: Account, change: Change) -> Outcome:
    """Exclude one contact ("Exclusion List": PUT the flag), creating it excluded where Mailjet
    has no such contact; a PUT that changes nothing answers 304, which is success."""
    flag = {"IsExcludedFromCampaigns": True}
    answer = _contact(account, "PUT", change.email, json=flag, ok=(400, 404))
    if answer.status_code == 404:
        answer = account.api.call("POST", CONTACTS, json={"Email": change.email, **flag}, ok=(400,))
    return _settled(change, answer)


def _unsubscribe(account: Account, change: Change) -> Outcome:
    """Unsubscribe one contact from the list ("Contacts list": managecontact), which creates
    the contact when Mailjet has none."""
    path = f"/v3/REST/contactslist/{account.target}/managecontact"
    body = {"Email": change.email, "Action": UNSUBSCRIBE}
    return _settled(change, account.api.call("POST", path, json=body, ok=(400,)))


def _settled(change: Change, answer: requests.Response) -> Outcome:
    """Mailjet's 400 names what it refuses in ``ErrorMessage`` (``ErrorInfo`` may add why)."""
    if answer.status_code != 400:
        return Outcome(change.key, ACCEPTED)
    body = _document(answer)
    words = [nonblank(body.get(key)) for key in ("ErrorMessage", "ErrorInfo")]
    return refused(change, ": ".join(filter(None, words)) or "refused by Mailjet (HTTP 400)")


def _lift(account: Account, change: Change) -> Outcome:
    """Take a contact off the exclusion list (the flag set false), or subscribe it again to the
    list it had left. A contact Mailjet no longer has (404) is what we wanted."""
    if change.on_list:
        return _resubscribe(account, change) if account.target else refused(change, NO_LIST)
    flag = {"IsExcludedFromCampaigns": False}
    _contact(account, "PUT", change.email, json=flag, ok=(404,))
    return Outcome(change.key, ACCEPTED)


def _resubscribe(account: Account, change: Change) -> Outcome:
    """Only a contact the list holds as unsubscribed is subscribed again ("Getting the Lists for
    a given Contact"); one the list does not hold is not added to it."""
    answer = _contact(account, "GET", change.email, "/getcontactslists", ok=(404,))
    held = answer.status_code != 404 and any(
        str(entry.get("ListID")) == account.target and _true(entry.get("IsUnsub"))
        for entry in _data(_document(answer))
    )
    if held:
        path = f"/v3/REST/contactslist/{account.target}/managecontact"
        account.api.call("POST", path, json={"Email": change.email, "Action": RESUBSCRIBE})
    return Outcome(change.key, ACCEPTED)


def _contact(
    account: Account, method: str, email: str, action: str = "", **options: Any
) -> requests.Response:
    """A call on one contact, which Mailjet names by its address in the path."""
    return account.api.call(method, f"{CONTACTS}/{quote(email, safe='@')}{action}", **options)


def _pages(account: Account, path: str, filters: Mapping[str, str]) -> Iterator[Mapping]:
    """Every item of a listing, a page of PAGE_LIMIT at a time (Limit and Offset filters); a
    short page is the last."""
    offset = 0
    while True:
        query = {**filters, "Limit": PAGE_LIMIT, "Offset": offset}
        items = _data(account.api.json("GET", path, params=query))
        yield from items
        if len(items) < PAGE_LIMIT:
            return
        offset += PAGE_LIMIT


def _address_of(account: Account, contact_id: Any) -> str | None:
    """A list member's address: listrecipient names its contact by id only."""
    if contact_id in (None, ""):
        return None
    answer = account.api.call("GET", f"{CONTACTS}/{contact_id}", ok=(404,))
    contacts = _data(_document(answer)) if answer.status_code != 404 else []
    return nonblank(contacts[0].get("Email")) if contacts else None


def _document(answer: requests.Response) -> Mapping[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, Mapping) else {}


def _data(document: Any) -> list[Mapping[str, Any]]:
    """The items of Mailjet's ``{"Count", "Data", "Total"}`` envelope."""
    data = document.get("Data") if isinstance(document, Mapping) else None
    return [item for item in data if isinstance(item, Mapping)] if isinstance(data, list) else []


def _true(value: Any) -> bool:
    """Mailjet's booleans, which its older examples show as the strings "true" and "false"."""
    return value is True or (isinstance(value, str) and value.lower() == "true")
