"""Mailjet Event API: basic auth in the callback URL, single or grouped (Version 2) events."""

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from werkzeug.datastructures import Headers

from suppress.config import ConfigError
from suppress.providers.base import Delivery, Malformed, Rejected, Reply
from suppress.providers.mailjet import EVENT_TYPES, Mailjet

PAYLOADS = Path(__file__).parent / "payloads" / "mailjet"
URL = "https://suppress.example.com/webhooks/mailjet"
CONFIG = {"MAILJET_WEBHOOK_BASIC_AUTH": "mailjet:s3cret"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


GOOD_AUTH = {"Authorization": basic("mailjet", "s3cret")}


def payload(name: str, **changes: Any) -> Any:
    document = json.loads((PAYLOADS / name).read_text())
    if changes:
        document.update(changes)
    return document


def without(name: str, key: str) -> dict[str, Any]:
    return {field: value for field, value in payload(name).items() if field != key}


def delivery(body: Any, headers: dict[str, str] | None = None, method: str = "POST") -> Delivery:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Delivery(
        method=method,
        url=URL,
        headers=Headers(GOOD_AUTH if headers is None else headers),
        body=raw,
        remote_addr="87.253.232.1",
    )


def parse(body: Any):
    return Mailjet(CONFIG).parse(delivery(body))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sample", "kind", "bounce_class", "recipient", "occurred_at"),
    [
        ("sent.json", "delivered", None, "anna@example.com", utc(2024, 3, 5, 16, 33, 54)),
        ("bounce.json", "bounced", "hard", "gone@example.org", utc(2024, 3, 5, 16, 28, 10)),
        ("unsub.json", "unsubscribed", None, "leaving@example.com", utc(2024, 3, 5, 10, 15, 37)),
    ],
)
def test_authenticated_sample_verifies_and_parses_to_one_event(
    sample, kind, bounce_class, recipient, occurred_at
):
    provider = Mailjet(CONFIG)
    request = delivery(payload(sample))

    provider.verify(request)
    (event,) = provider.parse(request)

    assert (event.provider, event.type, event.bounce_class) == ("mailjet", kind, bounce_class)
    assert (event.recipient, event.occurred_at, event.raw_type) == (
        recipient,
        occurred_at,
        payload(sample)["event"],
    )
    assert len(event.provider_event_id) == 64


def test_sent_keeps_the_smtp_reply_message_id_and_campaign():
    (event,) = parse(payload("sent.json"))

    assert event.diagnostic.startswith("sent (250 2.0.0 OK")
    assert event.message_id == "19421777835146490"
    assert event.campaign == "spring"


def test_bounce_diagnostic_names_the_documented_cause_and_smtp_text():
    (event,) = parse(payload("bounce.json"))

    assert event.diagnostic == (
        "recipient: user unknown: 550 5.1.1 <gone@example.org>: Recipient address rejected: "
        "User unknown"
    )
    assert event.campaign is None  # mj_campaign_id 0 means none


def test_unsub_names_its_contact_list_and_the_clicker():
    (event,) = parse(payload("unsub.json"))

    assert event.list_ref == "1"
    assert event.ip == "192.0.2.44"
    assert event.user_agent.startswith("Mozilla/5.0 (Macintosh")
    assert event.campaign == "7276"


def test_event_without_a_message_id_is_kept():
    (event,) = parse(payload("sent.json", MessageID=None, mj_message_id=None))

    assert (event.type, event.message_id) == ("delivered", None)


def test_grouped_array_fans_out_one_event_per_item():
    """Version 2 callbacks group a second's events of mixed types in one array."""
    provider = Mailjet(CONFIG)
    request = delivery(payload("grouped.json"))

    provider.verify(request)
    events = provider.parse(request)

    assert [(event.type, event.recipient) for event in events] == [
        ("opened", "anna@example.com"),
        ("clicked", "anna@example.com"),
        ("complained", "bob@example.net"),
        ("dropped", "carl@example.com"),
    ]
    assert events[1].url == "https://example.com/spring-sale"
    assert events[3].message_id == "18858825588804172"  # only the deprecated mj_message_id
    assert events[3].diagnostic == "mailjet: preblocked"
    assert len({event.provider_event_id for event in events}) == 4


def test_empty_grouped_array_has_no_events():
    assert parse([]) == []


def test_opens_and_clicks_carry_no_machine_verdict():
    """Mailjet documents no machine-open flag, so the shared heuristic decides later."""
    assert all(event.machine is None for event in parse(payload("grouped.json")))


@pytest.mark.parametrize(
    ("hard_bounce", "error", "kind", "bounce_class"),
    [
        (True, "user unknown", "bounced", "hard"),
        (False, "quota exceeded", "bounced", "soft"),
        (False, "greylisted", "deferred", None),
        (True, "greylisted", "bounced", "hard"),
    ],
)
def test_bounce_class_comes_from_hard_bounce(hard_bounce, error, kind, bounce_class):
    (event,) = parse(payload("bounce.json", hard_bounce=hard_bounce, error=error))

    assert (event.type, event.bounce_class) == (kind, bounce_class)


# The Event API's event list ("Events"), read as a spec.
DOCUMENTED_EVENTS = {
    "sent": ("delivered", None),
    "open": ("opened", None),
    "click": ("clicked", None),
    "bounce": ("bounced", "soft"),
    "blocked": ("dropped", None),
    "spam": ("complained", None),
    "unsub": ("unsubscribed", None),
}


def test_every_documented_event_is_in_the_table():
    assert set(EVENT_TYPES) == set(DOCUMENTED_EVENTS)


@pytest.mark.parametrize(("name", "expected"), DOCUMENTED_EVENTS.items())
def test_event_maps_as_intended(name, expected):
    (event,) = parse(payload("bounce.json", event=name, hard_bounce=False))

    assert (event.type, event.bounce_class) == expected


def test_unknown_event_parses_to_unknown():
    (event,) = parse(payload("sent.json", event="forwarded"))

    assert (event.type, event.raw_type) == ("unknown", "forwarded")


def test_a_repeated_delivery_gets_the_same_event_ids():
    first = [event.provider_event_id for event in parse(payload("grouped.json"))]
    again = [event.provider_event_id for event in parse(payload("grouped.json"))]

    assert first == again


@pytest.mark.parametrize(
    "changes",
    [{"time": 1709656435}, {"email": "other@example.com"}, {"MessageID": 1}, {"event": "open"}],
)
def test_two_different_events_get_different_ids(changes):
    (one,) = parse(payload("sent.json"))
    (other,) = parse(payload("sent.json", **changes))

    assert one.provider_event_id != other.provider_event_id


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": basic("mailjet", "wrong")}, {"Authorization": "Bearer s3cret"}],
    ids=["missing", "wrong-password", "other-scheme"],
)
def test_missing_or_wrong_credentials_are_refused_with_401(headers):
    with pytest.raises(Rejected) as refused:
        Mailjet(CONFIG).verify(delivery(payload("sent.json"), headers))

    assert refused.value.status == 401
    assert refused.value.headers["WWW-Authenticate"].startswith("Basic")


def test_every_rotated_credential_verifies():
    provider = Mailjet({"MAILJET_WEBHOOK_BASIC_AUTH": "mailjet:old,mailjet:new"})

    for password in ("old", "new"):
        provider.verify(
            delivery(payload("sent.json"), {"Authorization": basic("mailjet", password)})
        )


@pytest.mark.parametrize(("method", "body"), [("GET", b""), ("POST", b""), ("POST", b"  \n")])
def test_url_probe_gets_200_and_stores_nothing(method, body):
    assert Mailjet(CONFIG).handshake(delivery(body, method=method)) == Reply()


def test_an_event_is_no_handshake():
    assert Mailjet(CONFIG).handshake(delivery(payload("sent.json"))) is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff",
        b"true",
        json.dumps([1, 2]).encode(),
        json.dumps(without("sent.json", "event")).encode(),
        json.dumps(without("sent.json", "email")).encode(),
        json.dumps(without("sent.json", "time")).encode(),
        json.dumps(payload("sent.json", time="yesterday")).encode(),
        json.dumps(payload("sent.json", email="")).encode(),
    ],
    ids=[
        "not-json",
        "not-utf8",
        "scalar",
        "array-of-numbers",
        "no-event",
        "no-email",
        "no-time",
        "bad-time",
        "empty-email",
    ],
)
def test_malformed_body_is_refused(body):
    with pytest.raises(Malformed):
        parse(body)


def test_missing_basic_auth_names_its_variable():
    with pytest.raises(ConfigError, match="SUPPRESS_MAILJET_WEBHOOK_BASIC_AUTH"):
        Mailjet({"MAILJET_API_KEY": "public-key"})


@pytest.mark.parametrize(
    ("key", "value"),
    [("WEBHOOK_BASIC_AUTH", "no-colon"), ("API_URL", "https://")],
)
def test_bad_setting_names_its_variable(key, value):
    with pytest.raises(ConfigError, match=f"SUPPRESS_MAILJET_{key}"):
        Mailjet({**CONFIG, f"MAILJET_{key}": value})


def test_api_settings_have_their_documented_defaults():
    settings = Mailjet(CONFIG).settings

    assert settings["API_URL"] == "https://api.mailjet.com"
    assert (settings["API_KEY"], settings["API_SECRET"]) == (None, None)
