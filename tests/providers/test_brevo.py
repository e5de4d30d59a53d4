"""Brevo webhooks: basic auth or a bearer token, an optional address allow-list, single or
batched transactional and marketing events."""

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from werkzeug.datastructures import Headers

from suppress.config import ConfigError
from suppress.providers.base import Delivery, Malformed, Rejected
from suppress.providers.brevo import EVENT_TYPES, Brevo

PAYLOADS = Path(__file__).parent / "payloads" / "brevo"
URL = "https://suppress.example.com/webhooks/brevo"
CONFIG = {"BREVO_WEBHOOK_BASIC_AUTH": "brevo:s3cret"}
BREVO_ADDRESS = "1.179.112.20"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


GOOD_AUTH = {"Authorization": basic("brevo", "s3cret")}


def payload(name: str, **changes: Any) -> Any:
    document = json.loads((PAYLOADS / name).read_text())
    if changes:
        document.update(changes)
    return document


def delivery(
    body: Any, headers: dict[str, str] | None = None, remote_addr: str | None = BREVO_ADDRESS
) -> Delivery:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Delivery(
        method="POST",
        url=URL,
        headers=Headers(GOOD_AUTH if headers is None else headers),
        body=raw,
        remote_addr=remote_addr,
    )


def parse(body: Any, config: dict[str, str] = CONFIG):
    return Brevo(config).parse(delivery(body))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_authenticated_hard_bounce_verifies_and_parses():
    provider = Brevo(CONFIG)
    request = delivery(payload("hard_bounce.json"))

    provider.verify(request)
    (event,) = provider.parse(request)

    assert (event.provider, event.type, event.bounce_class) == ("brevo", "bounced", "hard")
    assert event.recipient == "gone@example.org"
    assert event.raw_type == "hard_bounce"
    assert event.diagnostic.startswith("550 5.1.1")
    assert event.message_id == "<202403051628.1234567890@smtp-relay.mailin.fr>"
    assert event.campaign == "invoice"
    assert len(event.provider_event_id) == 64


def test_event_time_is_the_utc_timestamp_not_the_local_date():
    """ts_epoch (UTC milliseconds) wins over ``ts`` and ``date``, which follow local time."""
    (event,) = parse(payload("hard_bounce.json"))

    assert event.occurred_at == utc(2024, 3, 5, 16, 28, 10, 123000)


def test_marketing_event_time_is_ts_event():
    """Marketing events carry no ts_epoch; ts_event is their UTC time, ``ts`` is an hour off."""
    (event,) = parse(payload("marketing_click.json"))

    assert event.occurred_at == utc(2024, 3, 5, 10, 20)


def test_contact_event_without_utc_fields_falls_back_to_ts():
    record = {
        "event": "list_addition",
        "email": "new@example.com",
        "list_id": [7],
        "ts": 1709637600,
    }

    (event,) = parse(record)

    assert (event.type, event.list_ref) == ("unknown", "7")
    assert event.occurred_at == utc(2024, 3, 5, 11, 20)


def test_batched_array_fans_out_one_event_per_item():
    provider = Brevo(CONFIG)
    request = delivery(payload("batch.json"))

    provider.verify(request)
    events = provider.parse(request)

    assert [(event.type, event.recipient) for event in events] == [
        ("sent", "anna@example.com"),
        ("delivered", "anna@example.com"),
        ("complained", "bob@example.net"),
    ]
    assert len({event.provider_event_id for event in events}) == 3


def test_empty_batch_has_no_events():
    assert parse([]) == []


def test_proxy_open_is_flagged_machine():
    (event,) = parse(payload("unique_proxy_open.json"))

    assert (event.type, event.machine) == ("opened", True)
    assert event.user_agent == "Mozilla/5.0"
    assert event.ip is None


@pytest.mark.parametrize("name", ["opened", "unique_opened", "click"])
def test_other_opens_and_clicks_carry_no_machine_verdict(name):
    (event,) = parse(payload("unique_proxy_open.json", event=name))

    assert event.machine is None


def test_empty_email_is_kept_as_an_event_without_a_recipient():
    (event,) = parse(payload("unique_proxy_open.json", email=""))

    assert event.recipient is None


def test_marketing_click_carries_its_url_and_campaign():
    (event,) = parse(payload("marketing_click.json"))

    assert (event.type, event.url, event.campaign) == (
        "clicked",
        "https://example.com/spring-sale",
        "57",
    )


def test_marketing_unsubscribe_gives_one_event_per_list():
    events = parse(payload("marketing_unsubscribe.json"))

    assert [(event.type, event.list_ref) for event in events] == [
        ("unsubscribed", "3"),
        ("unsubscribed", "42"),
    ]
    assert len({event.provider_event_id for event in events}) == 2
    assert all(event.recipient == "leaving@example.com" for event in events)


@pytest.mark.parametrize(("list_id", "list_ref"), [(5, "5"), ([], None), (None, None)])
def test_list_id_as_one_number_or_none(list_id, list_ref):
    (event,) = parse(payload("marketing_unsubscribe.json", list_id=list_id))

    assert event.list_ref == list_ref


def test_transactional_unsubscribe_names_no_list():
    (event,) = parse(payload("hard_bounce.json", event="unsubscribed"))

    assert (event.type, event.list_ref) == ("unsubscribed", None)


# Payload ``event`` names from docs/transactional-webhooks and docs/marketing-webhooks, as a spec.
DOCUMENTED_EVENTS = {
    "request": ("sent", None),
    "sent": ("sent", None),
    "delivered": ("delivered", None),
    "deferred": ("deferred", None),
    "soft_bounce": ("bounced", "soft"),
    "hard_bounce": ("bounced", "hard"),
    "invalid_email": ("bounced", "hard"),
    "blocked": ("dropped", None),
    "error": ("dropped", None),
    "spam": ("complained", None),
    "complaint": ("complained", None),
    "opened": ("opened", None),
    "unique_opened": ("opened", None),
    "proxy_open": ("opened", None),
    "unique_proxy_open": ("opened", None),
    "click": ("clicked", None),
    "unsubscribed": ("unsubscribed", None),
    "unsubscribe": ("unsubscribed", None),
    "hard_bounced": ("bounced", "hard"),
    "soft_bounced": ("bounced", "soft"),
    "hardBounce": ("bounced", "hard"),
    "softBounce": ("bounced", "soft"),
    "list_addition": ("unknown", None),
    "contact_updated": ("unknown", None),
    "contact_deleted": ("unknown", None),
}


def test_every_documented_event_is_in_the_table():
    assert set(EVENT_TYPES) == set(DOCUMENTED_EVENTS)


@pytest.mark.parametrize(("name", "expected"), DOCUMENTED_EVENTS.items())
def test_event_maps_as_intended(name, expected):
    (event,) = parse(payload("hard_bounce.json", event=name))

    assert (event.type, event.bounce_class) == expected
    assert event.raw_type == name


def test_unknown_event_parses_to_unknown():
    (event,) = parse(payload("hard_bounce.json", event="unique_coupon_sent"))

    assert (event.type, event.raw_type) == ("unknown", "unique_coupon_sent")


def test_a_repeated_delivery_gets_the_same_event_ids():
    first = [event.provider_event_id for event in parse(payload("batch.json"))]
    again = [event.provider_event_id for event in parse(payload("batch.json"))]

    assert first == again


@pytest.mark.parametrize(
    ("sample", "changes"),
    [
        ("hard_bounce.json", {"ts_epoch": 1709656091123}),
        ("hard_bounce.json", {"email": "other@example.org"}),
        ("hard_bounce.json", {"message-id": "<other@smtp-relay.mailin.fr>"}),
        ("hard_bounce.json", {"event": "soft_bounce"}),
        ("marketing_click.json", {"camp_id": 58}),
    ],
)
def test_two_different_events_get_different_ids(sample, changes):
    (one,) = parse(payload(sample))
    (other,) = parse(payload(sample, **changes))

    assert one.provider_event_id != other.provider_event_id


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": basic("brevo", "wrong")},
        {"Authorization": "Bearer s3cret"},
        {"Authorization": "Basic ???"},
    ],
    ids=["missing", "wrong-password", "bearer-not-configured", "garbled"],
)
def test_missing_or_wrong_credentials_are_refused_with_401(headers):
    with pytest.raises(Rejected) as refused:
        Brevo(CONFIG).verify(delivery(payload("hard_bounce.json"), headers))

    assert refused.value.status == 401


BEARER_CONFIG = {"BREVO_WEBHOOK_BEARER_TOKEN": "tok-old,tok-new"}


@pytest.mark.parametrize("token", ["tok-old", "tok-new"])
def test_every_rotated_bearer_token_verifies(token):
    Brevo(BEARER_CONFIG).verify(
        delivery(payload("hard_bounce.json"), {"Authorization": f"Bearer {token}"})
    )


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer tok-other"}, {"Authorization": "Token tok-new"}],
    ids=["missing", "wrong-token", "wrong-scheme"],
)
def test_missing_or_wrong_bearer_token_is_refused_with_401(headers):
    with pytest.raises(Rejected) as refused:
        Brevo(BEARER_CONFIG).verify(delivery(payload("hard_bounce.json"), headers))

    assert refused.value.status == 401


def test_with_both_configured_either_credential_verifies():
    """Both travel in the Authorization header, so one request carries only one of them."""
    provider = Brevo({**CONFIG, **BEARER_CONFIG})

    provider.verify(delivery(payload("hard_bounce.json"), GOOD_AUTH))
    provider.verify(delivery(payload("hard_bounce.json"), {"Authorization": "Bearer tok-new"}))


ALLOWED_CONFIG = {**CONFIG, "BREVO_WEBHOOK_ALLOWED_IPS": "1.179.112.0/20, 2001:db8::/32"}


@pytest.mark.parametrize("address", [BREVO_ADDRESS, "::ffff:1.179.112.20", "2001:db8::7"])
def test_allowed_address_with_credentials_verifies(address):
    Brevo(ALLOWED_CONFIG).verify(delivery(payload("hard_bounce.json"), remote_addr=address))


@pytest.mark.parametrize("address", ["203.0.113.9", None, "not-an-address"])
def test_address_outside_the_allow_list_is_refused_with_403(address):
    with pytest.raises(Rejected) as refused:
        Brevo(ALLOWED_CONFIG).verify(delivery(payload("hard_bounce.json"), remote_addr=address))

    assert refused.value.status == 403


def test_allowed_address_still_needs_credentials():
    with pytest.raises(Rejected) as refused:
        Brevo(ALLOWED_CONFIG).verify(delivery(payload("hard_bounce.json"), headers={}))

    assert refused.value.status == 401


def test_storage_failure_answer_is_429_so_brevo_retries():
    """docs/retry-mechanism: Brevo retries on 429 and drops the event on other 4xx and 5xx."""
    assert Brevo.retry_status == 429


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff",
        b"42",
        json.dumps(["not an object"]).encode(),
        json.dumps({"email": "a@example.com", "ts_event": 1709656090}).encode(),
        json.dumps({"event": 7, "email": "a@example.com", "ts_event": 1709656090}).encode(),
        json.dumps({"event": "delivered", "email": "a@example.com"}).encode(),
        json.dumps({"event": "delivered", "email": "a@example.com", "ts_event": "soon"}).encode(),
        json.dumps(payload("inbound.json")).encode(),
    ],
    ids=[
        "not-json",
        "not-utf8",
        "scalar",
        "array-of-strings",
        "no-event-name",
        "event-name-not-text",
        "no-time",
        "bad-time",
        "inbound-parse",
    ],
)
def test_malformed_body_is_refused(body):
    with pytest.raises(Malformed):
        parse(body)


def test_enabling_without_credentials_names_both_variables():
    with pytest.raises(ConfigError) as error:
        Brevo({"BREVO_WEBHOOK_ALLOWED_IPS": "1.179.112.0/20"})

    assert "SUPPRESS_BREVO_WEBHOOK_BASIC_AUTH" in str(error.value)
    assert "SUPPRESS_BREVO_WEBHOOK_BEARER_TOKEN" in str(error.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("WEBHOOK_BASIC_AUTH", "no-colon"),
        ("WEBHOOK_ALLOWED_IPS", "1.179.112.0/99"),
        ("WEBHOOK_ALLOWED_IPS", "brevo.com"),
        ("API_URL", "api.brevo.com/v3"),
    ],
)
def test_bad_setting_names_its_variable(key, value):
    with pytest.raises(ConfigError, match=f"SUPPRESS_BREVO_{key}"):
        Brevo({**CONFIG, f"BREVO_{key}": value})


def test_api_settings_have_their_documented_defaults():
    settings = Brevo(CONFIG).settings

    assert settings["API_URL"] == "https://api.brevo.com/v3"
    assert settings["API_KEY"] is None
    assert settings["WEBHOOK_ALLOWED_IPS"] is None
