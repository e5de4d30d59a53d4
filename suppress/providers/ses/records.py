"""SES event records, from event publishing (``eventType``) or identity notifications
(``notificationType``), read into what they say of each recipient (SES "Contents of event data
that Amazon SES publishes to Amazon SNS"). Knows nothing of the SNS envelope around them.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from suppress.providers.delivery import Malformed
from suppress.providers.fields import nonblank, sender_of

# SES "Contents of event data that Amazon SES publishes to Amazon SNS", top-level `eventType`
# (`notificationType` in identity notifications). Records of other types become `unknown`.
EVENT_TYPES: dict[str, str] = {
    "Send": "sent",
    "Delivery": "delivered",
    "DeliveryDelay": "deferred",
    "Bounce": "bounced",  # refined by bounceType and bounceSubType, see read_bounce
    "Complaint": "complained",  # refined by complaintSubType, see read_complaint
    "Reject": "dropped",  # SES found a virus and did not try to deliver (Reject object)
    "Open": "opened",
    "Click": "clicked",
    "Rendering Failure": "unknown",  # a template error: nothing was sent, nothing about the address
    "Subscription": "unsubscribed",  # refined by the preference change, see subscription_type
}
# SES "Bounce types": Undetermined is SES failing to classify, never proof of a dead address.
BOUNCE_TYPES: dict[str, str] = {"Permanent": "hard", "Transient": "soft", "Undetermined": "soft"}
# SES "Bounce types": SES refused to send because the address is already on a suppression list.
SUPPRESSED_SUBTYPES = frozenset({"Suppressed", "OnAccountSuppressionList"})
# SES "Complaint subtypes": accepted but never sent, so nobody complained.
SUPPRESSED_COMPLAINT = "OnAccountSuppressionList"


@dataclass(frozen=True)
class Reading:
    """What one SES record says before it is fanned out: one (address, diagnostic) per
    recipient; ``type`` overrides the table's type where the record refines it."""

    recipients: list[tuple[str, str | None]]
    timestamp: Any = None
    type: str | None = None
    bounce_class: str | None = None
    url: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    list_ref: str | None = None


def section(record: dict[str, Any], name: str) -> dict[str, Any]:
    value = record.get(name)
    if not isinstance(value, dict):
        raise Malformed(f"the SES record has no {name} object")
    return value


def address_list(items: Any, where: str) -> list[str]:
    """Addresses given as strings or as objects with ``emailAddress``; at least one."""
    if not isinstance(items, list) or not items:
        raise Malformed(f"the SES record has no recipients in {where}")
    addresses = [item.get("emailAddress") if isinstance(item, dict) else item for item in items]
    if not all(isinstance(address, str) and address for address in addresses):
        raise Malformed(f"a recipient in {where} has no address")
    return addresses


def sender(mail: dict[str, Any]) -> str | None:
    """SES "Mail object": ``commonHeaders.from`` is the From header (a list of addresses), and
    ``source`` the envelope MAIL FROM address, present on every record."""
    headers = mail.get("commonHeaders")
    common_from = headers.get("from") if isinstance(headers, dict) else None
    return sender_of(common_from, mail.get("source"))


def destinations(mail: dict[str, Any], diagnostic: str | None = None) -> list[tuple[str, Any]]:
    """Every recipient of the message: SES does not say which of them opened, clicked or was
    refused (anymail's reading of the Open and Click objects), so all of them get the event."""
    return [(address, diagnostic) for address in address_list(mail.get("destination"), "mail")]


def with_diagnostics(items: Any, where: str) -> list[tuple[str, str | None]]:
    """Per-recipient DSN fields (SES "Bounced recipients"): the diagnostic code, else status."""
    addresses = address_list(items, where)
    return [
        (address, nonblank(item.get("diagnosticCode")) or nonblank(item.get("status")))
        for address, item in zip(addresses, items, strict=True)
    ]


def read_send(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    # SES "Send object" is always empty: the send time is the mail's.
    return Reading(destinations(mail), mail.get("timestamp"))


def read_delivery(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    delivery = section(record, "delivery")
    reply = nonblank(delivery.get("smtpResponse"))
    recipients = address_list(delivery.get("recipients"), "delivery.recipients")
    return Reading([(address, reply) for address in recipients], delivery.get("timestamp"))


def read_delay(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    delay = section(record, "deliveryDelay")
    items = delay.get("delayedRecipients")
    return Reading(with_diagnostics(items, "deliveryDelay"), delay.get("timestamp"))


def read_bounce(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    bounce = section(record, "bounce")
    recipients = with_diagnostics(bounce.get("bouncedRecipients"), "bounce")
    bounce_type, subtype = bounce.get("bounceType"), bounce.get("bounceSubType")
    if bounce_type == "Permanent" and subtype in SUPPRESSED_SUBTYPES:
        return Reading(recipients, bounce.get("timestamp"), type="dropped")
    # A bounce type SES adds later is not evidence of a dead address: soft.
    bounce_class = BOUNCE_TYPES.get(bounce_type, "soft")
    return Reading(recipients, bounce.get("timestamp"), bounce_class=bounce_class)


def read_complaint(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    complaint = section(record, "complaint")
    feedback = nonblank(complaint.get("complaintFeedbackType"))
    items = address_list(complaint.get("complainedRecipients"), "complaint")
    refused = complaint.get("complaintSubType") == SUPPRESSED_COMPLAINT
    recipients = [(address, feedback) for address in items]
    return Reading(recipients, complaint.get("timestamp"), type="dropped" if refused else None)


def read_reject(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    # SES "Reject object" has no time of its own: the SNS Timestamp stands in.
    reason = nonblank(section(record, "reject").get("reason"))
    return Reading(destinations(mail, reason))


def read_open(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    opened = section(record, "open")
    return Reading(
        destinations(mail),
        opened.get("timestamp"),
        ip=nonblank(opened.get("ipAddress")),
        user_agent=nonblank(opened.get("userAgent")),
    )


def read_click(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    click = section(record, "click")
    return Reading(
        destinations(mail),
        click.get("timestamp"),
        url=nonblank(click.get("link")),
        ip=nonblank(click.get("ipAddress")),
        user_agent=nonblank(click.get("userAgent")),
    )


def read_rendering_failure(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    error = nonblank(section(record, "failure").get("errorMessage"))
    return Reading(destinations(mail, error))


def topic_statuses(preferences: Any) -> dict[str, Any]:
    topics = preferences.get("topicSubscriptionStatus") if isinstance(preferences, dict) else None
    if not isinstance(topics, list):
        return {}
    return {
        topic.get("topicName"): topic.get("subscriptionStatus")
        for topic in topics
        if isinstance(topic, dict)
    }


def subscription_type(subscription: dict[str, Any]) -> str:
    """SES "Subscription record": leaving everything or any topic is an unsubscribe; coming
    back to everything or to a topic is a resubscribe; anything else changed nothing we track."""
    new, old = subscription.get("newTopicPreferences"), subscription.get("oldTopicPreferences")
    new_topics, old_topics = topic_statuses(new), topic_statuses(old)
    left_all = isinstance(new, dict) and new.get("unsubscribeAll") is True
    if left_all or any(
        status == "OptOut" and old_topics.get(name) != "OptOut"
        for name, status in new_topics.items()
    ):
        return "unsubscribed"
    came_back = isinstance(old, dict) and old.get("unsubscribeAll") is True
    if came_back or any(
        status == "OptIn" and old_topics.get(name) != "OptIn" for name, status in new_topics.items()
    ):
        return "resubscribed"
    return "unknown"


def read_subscription(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    # SES list management names no address in the subscription object: the mail's recipients.
    subscription = section(record, "subscription")
    return Reading(
        destinations(mail),
        subscription.get("timestamp"),
        type=subscription_type(subscription),
        list_ref=nonblank(subscription.get("contactList")),
    )


def read_unlisted(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    has_recipients = isinstance(mail.get("destination"), list) and mail["destination"]
    return Reading(destinations(mail) if has_recipients else [])


READERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], Reading]] = {
    "Send": read_send,
    "Delivery": read_delivery,
    "DeliveryDelay": read_delay,
    "Bounce": read_bounce,
    "Complaint": read_complaint,
    "Reject": read_reject,
    "Open": read_open,
    "Click": read_click,
    "Rendering Failure": read_rendering_failure,
    "Subscription": read_subscription,
}


def load_record(envelope: dict[str, Any]) -> dict[str, Any]:
    """The SES record inside a Notification: its Message is a JSON string."""
    message = envelope.get("Message")
    if not isinstance(message, str):
        raise Malformed("the SNS notification has no Message")
    try:
        record = json.loads(message)
    except ValueError:
        raise Malformed("the SNS Message is not an SES record (not JSON)") from None
    if not isinstance(record, dict):
        raise Malformed("the SNS Message is not an SES record object")
    return record
