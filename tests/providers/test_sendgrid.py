"""SendGrid: the Event Webhook (ECDSA verification and the event vocabulary), then the sync
job's pushes and pulls against SendGrid's Suppressions API played on 127.0.0.1.

Signatures are made for real with a P-256 key generated for the test session, exactly as
SendGrid signs: ECDSA/SHA-256 over the timestamp header followed by the raw body.
"""

import base64
import functools
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from werkzeug.datastructures import Headers

from suppress import suppressions, sync
from suppress.config import ConfigError
from suppress.lists import create_list
from suppress.models import REASONS as MODEL_REASONS
from suppress.models import db
from suppress.providers.api import ApiError
from suppress.providers.delivery import Delivery, Malformed, Rejected
from suppress.providers.sendgrid import (
    DEFAULT_TOLERANCE_SECONDS,
    MAX_ADDRESSES_PER_CALL,
    PAGE_SIZE,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SendGrid,
)
from suppress.providers.syncing import ACCEPTED, REFUSED, Change
from tests.providers.fakes.sendgrid import FakeSendGrid, record

PAYLOADS = Path(__file__).resolve().parent / "payloads" / "sendgrid"
URL = "https://suppress.example.fi/webhooks/sendgrid"
SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


def shown(private_key) -> str:
    """The public key as SendGrid's Mail Settings page shows it: base64 DER, no armour."""
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def provider(**settings: object) -> SendGrid:
    config = {"SENDGRID_WEBHOOK_VERIFICATION_KEY": shown(SIGNING_KEY)}
    config.update({f"SENDGRID_{key}": value for key, value in settings.items()})
    return SendGrid(config)


def signed(body: bytes, key=SIGNING_KEY, timestamp: int | None = None) -> Delivery:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    headers = Headers(
        {
            SIGNATURE_HEADER: base64.b64encode(signature).decode(),
            TIMESTAMP_HEADER: stamp,
            "Content-Type": "application/json",
        }
    )
    return Delivery(method="POST", url=URL, headers=headers, body=body)


def batch_body(*events: dict) -> bytes:
    return json.dumps(list(events)).encode()


def one_event(**fields: object) -> dict:
    event = {
        "email": "aino.virtanen@example.fi",
        "timestamp": 1767261600,
        "event": "processed",
        "sg_event_id": "c2luZ2xlLWV2ZW50",
        "sg_message_id": "k3Jd8s0aQeWq.recvd-1.0",
    }
    event.update(fields)
    return event


def parsed_one(**fields: object):
    (event,) = provider().parse(signed(batch_body(one_event(**fields))))
    return event


def test_signed_batch_verifies_and_parses_one_event_per_item():
    delivery = signed((PAYLOADS / "batch.json").read_bytes())
    sendgrid = provider(GROUP_IDS="uutiskirje=4821")

    sendgrid.verify(delivery)
    events = sendgrid.parse(delivery)

    assert [(e.raw_type, e.type, e.bounce_class) for e in events] == [
        ("processed", "sent", None),
        ("deferred", "deferred", None),
        ("delivered", "delivered", None),
        ("bounce", "bounced", "hard"),
        ("bounce", "bounced", "soft"),
        ("dropped", "dropped", None),
        ("open", "opened", None),
        ("open", "opened", None),
        ("click", "clicked", None),
        ("spamreport", "complained", None),
        ("unsubscribe", "unsubscribed", None),
        ("group_unsubscribe", "unsubscribed", None),
        ("group_resubscribe", "resubscribed", None),
    ]
    assert events[0].provider == "sendgrid"
    assert events[0].provider_event_id == "cHJvY2Vzc2VkLTAwMQ"
    assert events[0].recipient == "aino.virtanen@example.fi"
    assert events[0].occurred_at == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert events[0].message_id == "k3Jd8s0aQeWq.recvd-1.0"
    assert events[0].campaign == "spring-2026"
    assert events[3].recipient == "eero.nieminen@example.com"
    assert len({e.provider_event_id for e in events}) == len(events)


def test_no_event_names_a_sender_as_none_is_documented():
    """R-MBP-4 counts per sending domain, but SendGrid's events carry no sender."""
    events = provider().parse(signed((PAYLOADS / "batch.json").read_bytes()))

    assert {e.type for e in events} >= {"delivered", "complained"}
    assert {e.sender for e in events} == {None}


def test_bounce_diagnostic_carries_the_smtp_reply():
    """R-MBP-6: the reply text is kept so sender-side policy codes can be recognised."""
    events = provider().parse(signed((PAYLOADS / "batch.json").read_bytes()))

    assert events[3].diagnostic == (
        "550 5.1.1 The email account that you tried to reach does not exist"
    )
    assert events[5].diagnostic == "5.0.0 Bounced Address"
    assert events[1].diagnostic == "451 4.7.1 Greylisted, try again later"


def test_policy_rejection_text_reaches_the_diagnostic():
    """R-MBP-6: a 5.7.26 refusal of our mail is visible to the bounce rules."""
    event = parsed_one(
        event="bounce",
        type="bounce",
        reason="550 5.7.26 Unauthenticated email from example.fi is not accepted",
        status="5.7.26",
    )

    assert "5.7.26" in event.diagnostic
    assert event.diagnostic.count("5.7.26") == 1


def test_engagement_events_carry_click_details_and_machine_verdict():
    events = provider().parse(signed((PAYLOADS / "batch.json").read_bytes()))
    machine_open, human_open, click = events[6], events[7], events[8]

    assert machine_open.machine is True
    assert human_open.machine is False
    assert click.machine is None
    assert click.url == "https://shop.example.fi/kevat?utm_campaign=spring"
    assert click.ip == "203.0.113.40"
    assert click.user_agent.endswith("Thunderbird/128.0")


def test_delivery_events_do_not_take_the_sending_ip_as_the_recipients():
    events = provider().parse(signed((PAYLOADS / "batch.json").read_bytes()))

    assert events[2].raw_type == "delivered"
    assert events[2].ip is None


def test_group_unsubscribe_names_the_list_mapped_to_its_group():
    events = provider(GROUP_IDS="uutiskirje=4821, tarjoukset=77").parse(
        signed((PAYLOADS / "batch.json").read_bytes())
    )
    group_unsubscribe, group_resubscribe = events[11], events[12]

    assert (group_unsubscribe.list_ref, group_unsubscribe.list_slug) == ("4821", "uutiskirje")
    assert (group_resubscribe.list_ref, group_resubscribe.list_slug) == ("4821", "uutiskirje")


def test_group_without_a_mapped_list_keeps_only_sendgrids_id():
    event = parsed_one(event="group_unsubscribe", asm_group_id=999)

    assert (event.list_ref, event.list_slug) == ("999", None)


def test_global_unsubscribe_names_no_list_even_with_a_group_id():
    events = provider(GROUP_IDS="uutiskirje=4821").parse(
        signed((PAYLOADS / "batch.json").read_bytes())
    )
    unsubscribe = events[10]

    assert unsubscribe.raw_type == "unsubscribe"
    assert (unsubscribe.list_ref, unsubscribe.list_slug) == (None, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("processed", "sent"),
        ("delivered", "delivered"),
        ("deferred", "deferred"),
        ("bounce", "bounced"),
        ("dropped", "dropped"),
        ("open", "opened"),
        ("click", "clicked"),
        ("spamreport", "complained"),
        ("unsubscribe", "unsubscribed"),
        ("group_unsubscribe", "unsubscribed"),
        ("group_resubscribe", "resubscribed"),
        ("account_status_change", "unknown"),
        ("Processed", "sent"),
    ],
)
def test_every_documented_event_type_maps_as_intended(raw, expected):
    assert parsed_one(event=raw).type == expected


@pytest.mark.parametrize(
    ("fields", "bounce_class"),
    [
        ({"type": "bounce"}, "hard"),
        ({"type": "blocked"}, "soft"),
        ({"type": "bounce", "bounce_classification": "Invalid Address"}, "hard"),
        ({"type": "bounce", "bounce_classification": "Mailbox Unavailable"}, "hard"),
        ({"type": "bounce", "bounce_classification": "Unclassified"}, "hard"),
        ({"type": "bounce", "bounce_classification": "Technical"}, "soft"),
        ({"type": "bounce", "bounce_classification": "Technical Failure"}, "soft"),
        ({"type": "bounce", "bounce_classification": "content"}, "soft"),
        ({"type": "bounce", "bounce_classification": "Reputation"}, "soft"),
        ({"type": "bounce", "bounce_classification": "Frequency or Volume Too High"}, "soft"),
        ({"type": "blocked", "bounce_classification": "Invalid Address"}, "soft"),
    ],
)
def test_bounce_class_follows_type_and_classification(fields, bounce_class):
    assert parsed_one(event="bounce", **fields).bounce_class == bounce_class


def test_unknown_event_type_parses_to_unknown():
    event = parsed_one(event="something_new")

    assert (event.type, event.raw_type) == ("unknown", "something_new")


def test_account_event_without_a_recipient_parses_to_unknown():
    account_event = {
        "event": "account_status_change",
        "sg_event_id": "YWNjb3VudC0wMTQ",
        "timestamp": 1767261600,
        "type": "compliance_suspend",
    }

    (event,) = provider().parse(signed(batch_body(account_event)))

    assert (event.type, event.recipient) == ("unknown", None)


def test_event_without_sg_event_id_gets_a_stable_synthetic_id():
    body = (PAYLOADS / "legacy-unsubscribe.json").read_bytes()

    (first,) = provider().parse(signed(body))
    (retried,) = provider().parse(signed(body))

    assert first.type == "unsubscribed"
    assert len(first.provider_event_id) == 64
    assert first.provider_event_id == retried.provider_event_id


def test_key_rotation_accepts_the_old_and_the_new_key():
    rotating = provider(WEBHOOK_VERIFICATION_KEY=f"{shown(OTHER_KEY)},{shown(SIGNING_KEY)}")

    rotating.verify(signed(batch_body(one_event()), key=SIGNING_KEY))
    rotating.verify(signed(batch_body(one_event()), key=OTHER_KEY))


def test_pem_armoured_key_is_accepted_too():
    pem = (
        SIGNING_KEY.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )

    provider(WEBHOOK_VERIFICATION_KEY=pem).verify(signed(batch_body(one_event())))


@pytest.mark.parametrize("missing", [SIGNATURE_HEADER, TIMESTAMP_HEADER])
def test_missing_signature_header_is_rejected(missing):
    delivery = signed(batch_body(one_event()))
    delivery.headers.remove(missing)

    with pytest.raises(Rejected) as rejected:
        provider().verify(delivery)

    assert rejected.value.status == 401


def test_signature_by_another_key_is_rejected():
    with pytest.raises(Rejected) as rejected:
        provider().verify(signed(batch_body(one_event()), key=OTHER_KEY))

    assert rejected.value.status == 403


def test_signature_that_is_not_base64_is_rejected():
    delivery = signed(batch_body(one_event()))
    delivery.headers[SIGNATURE_HEADER] = "not base64!"

    with pytest.raises(Rejected) as rejected:
        provider().verify(delivery)

    assert rejected.value.status == 403


def test_tampered_body_is_rejected():
    delivery = signed(batch_body(one_event(event="processed")))
    tampered = Delivery(
        method="POST",
        url=URL,
        headers=delivery.headers,
        body=delivery.body.replace(b"processed", b"spamreport"),
    )

    with pytest.raises(Rejected) as rejected:
        provider().verify(tampered)

    assert rejected.value.status == 403


def test_tampered_timestamp_is_rejected():
    delivery = signed(batch_body(one_event()))
    delivery.headers[TIMESTAMP_HEADER] = str(int(delivery.headers[TIMESTAMP_HEADER]) - 1)

    with pytest.raises(Rejected):
        provider().verify(delivery)


@pytest.mark.parametrize("offset", [-601, 601])
def test_timestamp_outside_the_tolerance_is_rejected(offset):
    delivery = signed(batch_body(one_event()), timestamp=int(time.time()) + offset)

    with pytest.raises(Rejected) as rejected:
        provider(WEBHOOK_TOLERANCE_SECONDS="600").verify(delivery)

    assert rejected.value.status == 403


def test_default_tolerance_accepts_a_retry_from_a_day_ago():
    """SendGrid retries for up to 24 h; the default window must not turn them away."""
    day_ago = int(time.time()) - 24 * 60 * 60

    provider().verify(signed(batch_body(one_event()), timestamp=day_ago))

    assert DEFAULT_TOLERANCE_SECONDS > 24 * 60 * 60


def test_timestamp_that_is_not_a_number_is_rejected():
    delivery = signed(batch_body(one_event()))
    delivery.headers[TIMESTAMP_HEADER] = "yesterday"

    with pytest.raises(Rejected):
        provider().verify(delivery)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        json.dumps(one_event()).encode(),
        b"[1]",
        batch_body({"email": "a@example.fi", "timestamp": 1767261600}),
        batch_body({**one_event(), "email": None}),
        batch_body({**one_event(), "timestamp": "soon"}),
        batch_body({key: value for key, value in one_event().items() if key != "timestamp"}),
    ],
    ids=[
        "not-json",
        "not-utf8",
        "object-not-array",
        "item-not-object",
        "no-event-name",
        "no-recipient",
        "bad-timestamp",
        "no-timestamp",
    ],
)
def test_malformed_body_raises_malformed(body):
    with pytest.raises(Malformed):
        provider().parse(signed(body))


def test_handshake_is_none_because_sendgrid_has_none():
    assert provider().handshake(signed(batch_body(one_event()))) is None


def test_missing_verification_key_is_a_config_error_naming_the_variable():
    with pytest.raises(ConfigError, match="SUPPRESS_SENDGRID_WEBHOOK_VERIFICATION_KEY"):
        SendGrid({"SENDGRID_API_KEY": "SG.test"})


@pytest.mark.parametrize(
    "key",
    [
        "not base64!",
        base64.b64encode(b"not a key").decode(),
        base64.b64encode(
            ec.generate_private_key(ec.SECP384R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).decode(),
        base64.b64encode(
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).decode(),
    ],
    ids=["not-base64", "not-a-key", "p384", "rsa"],
)
def test_unusable_verification_key_is_a_config_error_naming_the_variable(key):
    with pytest.raises(ConfigError, match="SUPPRESS_SENDGRID_WEBHOOK_VERIFICATION_KEY"):
        provider(WEBHOOK_VERIFICATION_KEY=key)


def test_bad_tolerance_is_a_config_error_naming_the_variable():
    with pytest.raises(ConfigError, match="SUPPRESS_SENDGRID_WEBHOOK_TOLERANCE_SECONDS"):
        provider(WEBHOOK_TOLERANCE_SECONDS="0")


def test_webhook_settings_need_no_api_key():
    settings = provider().settings

    assert set(settings) == {"WEBHOOK_VERIFICATION_KEY", "WEBHOOK_TOLERANCE_SECONDS", "GROUP_IDS"}
    assert settings["WEBHOOK_TOLERANCE_SECONDS"] == DEFAULT_TOLERANCE_SECONDS


def test_an_api_key_alone_does_not_enable_the_webhook_endpoint():
    assert not SendGrid.is_configured({"SENDGRID_API_KEY": "SG.sync-only"})


# Sync: the Suppressions API

API_KEY = "SG.test-key.0123456789"
GROUP = "4242"
# An erased address is never pushed: the planner refuses it, as it is no longer known.
REASONS = [reason for reason in MODEL_REASONS if reason != "erased"]


@pytest.fixture
def sendgrid(httpserver):
    return FakeSendGrid(httpserver, api_key=API_KEY, groups=[GROUP])


@pytest.fixture
def account(account_of, sendgrid):
    return functools.partial(account_of, "sendgrid", sendgrid.url, api_key=API_KEY)


def change(key, email, reason="unsubscribed", **flags):
    return Change(key=key, email=email, reason=reason, **flags)


def statuses(outcomes):
    return {outcome.key: outcome.status for outcome in outcomes}


@pytest.mark.parametrize("reason", REASONS)
def test_sync_every_reason_is_pushed_as_a_global_unsubscribe(sendgrid, account, reason):
    """Bounces and spam reports can only be listed and deleted at SendGrid, not added."""
    outcomes = SendGrid.push(account(), [change(1, "matti@yritys.fi", reason)])

    assert statuses(outcomes) == {1: ACCEPTED}
    assert sendgrid.unsubscribed == {"matti@yritys.fi"}
    assert sendgrid.calls == [("POST", "/v3/asm/suppressions/global")]


def test_sync_pushing_again_what_sendgrid_holds_is_accepted(sendgrid, account):
    changes = [change(1, "matti@yritys.fi"), change(2, "maija@yritys.fi")]
    SendGrid.push(account(), changes)

    assert statuses(SendGrid.push(account(), changes)) == {1: ACCEPTED, 2: ACCEPTED}
    assert sendgrid.unsubscribed == {"matti@yritys.fi", "maija@yritys.fi"}


def test_sync_a_list_suppression_goes_to_the_destination_s_unsubscribe_group(sendgrid, account):
    changes = [change(1, "lukija@yritys.fi", on_list=True), change(2, "kaikki@yritys.fi")]

    outcomes = SendGrid.push(account(target=GROUP, list_slug="uutiskirje"), changes)

    assert statuses(outcomes) == {1: ACCEPTED, 2: ACCEPTED}
    assert sendgrid.groups[GROUP] == {"lukija@yritys.fi"}
    assert sendgrid.unsubscribed == {"kaikki@yritys.fi"}


def test_sync_a_list_suppression_without_a_group_is_refused_not_made_global(sendgrid, account):
    outcomes = SendGrid.push(
        account(list_slug="uutiskirje"), [change(1, "x@yritys.fi", on_list=True)]
    )

    assert outcomes[0].status == REFUSED
    assert "unsubscribe group" in outcomes[0].detail
    assert sendgrid.calls == []


def test_sync_a_group_sendgrid_lacks_stops_the_push_rather_than_suppress_everywhere(
    sendgrid, account
):
    """SendGrid adds suppressions for a missing group to the global list instead."""
    with pytest.raises(ApiError, match="no unsubscribe group '999'"):
        SendGrid.push(
            account(target="999", list_slug="uutiskirje"), [change(1, "x@yritys.fi", on_list=True)]
        )

    assert sendgrid.unsubscribed == set()


def test_sync_a_group_check_that_fails_leaves_the_batch_for_a_later_pass(sendgrid, account):
    sendgrid.fail_next(503)

    with pytest.raises(ApiError, match="HTTP 503") as error:
        SendGrid.push(
            account(target=GROUP, list_slug="uutiskirje"), [change(1, "x@yritys.fi", on_list=True)]
        )

    assert error.value.retry
    assert sendgrid.groups[GROUP] == set()


def test_sync_lifts_delete_from_the_global_list_and_the_group(sendgrid, account):
    sendgrid.lists["unsubscribes"]["palaaja@yritys.fi"] = record("palaaja@yritys.fi")
    sendgrid.groups[GROUP].add("lukija@yritys.fi")
    changes = [
        change(1, "palaaja@yritys.fi", lift=True),
        change(2, "lukija@yritys.fi", lift=True, on_list=True),
        change(3, "jo-poissa@yritys.fi", lift=True),
    ]

    outcomes = SendGrid.push(account(target=GROUP, list_slug="uutiskirje"), changes)

    assert statuses(outcomes) == {1: ACCEPTED, 2: ACCEPTED, 3: ACCEPTED}
    assert sendgrid.unsubscribed == set()
    assert sendgrid.groups[GROUP] == set()


def test_sync_a_failed_lift_does_not_name_the_address_in_its_error(sendgrid, account):
    sendgrid.fail_next(500)

    with pytest.raises(ApiError) as error:
        SendGrid.push(account(), [change(1, "palaaja@yritys.fi", lift=True)])

    assert "HTTP 500" in str(error.value)
    assert "palaaja" not in str(error.value)


def test_sync_an_address_sendgrid_refuses_is_refused_and_the_rest_accepted(sendgrid, account):
    """SendGrid refuses the whole call; halving finds the address in 1 + 2·log2(64) calls."""
    changes = [change(n, f"p{n}@yritys.fi") for n in range(64)]
    changes[37] = change(37, "rikki@localhost")

    outcomes = SendGrid.push(account(), changes)

    assert [outcome.key for outcome in outcomes] == list(range(64))
    assert {o.key for o in outcomes if o.status == REFUSED} == {37}
    assert "not a valid email" in outcomes[37].detail
    assert len(sendgrid.unsubscribed) == 63
    assert sendgrid.pushes() == 13


def test_sync_a_wrong_api_key_is_a_fatal_api_error(sendgrid, account):
    with pytest.raises(ApiError, match=r"HTTP 401 .*authorization required") as error:
        SendGrid.push(account(api_key="SG.wrong"), [change(1, "matti@yritys.fi")])

    assert error.value.fatal
    assert sendgrid.unsubscribed == set()


def test_sync_pull_pages_every_list_until_a_short_page_and_maps_reasons(sendgrid, account):
    for n in range(PAGE_SIZE + 20):
        sendgrid.lists["unsubscribes"][f"p{n:04}@yritys.fi"] = record(
            f"p{n:04}@yritys.fi", 1767261600
        )
    sendgrid.lists["bounces"]["kuollut@yritys.fi"] = record("kuollut@yritys.fi", 1767261600)
    sendgrid.lists["spam_reports"]["valittaja@yritys.fi"] = record(
        "valittaja@yritys.fi", 1767261600
    )
    sendgrid.lists["invalid_emails"]["rikki@yritys"] = record("rikki@yritys", 1767261600)

    pulled = list(SendGrid.pull(account(), None))

    reasons = {entry.email: entry.reason for entry in pulled}
    assert len(reasons) == PAGE_SIZE + 23
    assert reasons["kuollut@yritys.fi"] == "bounced"
    assert reasons["valittaja@yritys.fi"] == "complained"
    assert reasons["rikki@yritys"] == "bounced"
    assert not any(entry.on_list for entry in pulled)
    assert pulled[0].at == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert sendgrid.calls.count(("GET", "/v3/suppression/unsubscribes")) == 2


def test_sync_pull_skips_entries_without_an_address(sendgrid, account):
    sendgrid.lists["bounces"]["?"] = {"email": " ", "created": 1767261600}
    sendgrid.groups[GROUP] |= {"", "lukija@yritys.fi"}

    pulled = list(SendGrid.pull(account(target=GROUP, list_slug="uutiskirje"), None))

    assert [entry.email for entry in pulled] == ["lukija@yritys.fi"]


def test_sync_pull_since_the_last_pull_asks_only_for_newer_entries(sendgrid, account):
    sendgrid.lists["unsubscribes"]["vanha@yritys.fi"] = record("vanha@yritys.fi", 1767261600)
    sendgrid.lists["unsubscribes"]["uusi@yritys.fi"] = record("uusi@yritys.fi", 1767348000)

    pulled = list(SendGrid.pull(account(), datetime(2026, 1, 2, tzinfo=UTC)))

    assert [entry.email for entry in pulled] == ["uusi@yritys.fi"]


def test_sync_pull_reads_the_group_as_the_destination_s_list(sendgrid, account):
    sendgrid.groups[GROUP].add("lukija@yritys.fi")

    pulled = list(SendGrid.pull(account(target=GROUP, list_slug="uutiskirje"), None))

    assert [(e.email, e.reason, e.on_list) for e in pulled] == [
        ("lukija@yritys.fi", "unsubscribed", True)
    ]


def test_sync_run_pushes_a_destination_s_suppressions_in_full_batches(app, sendgrid, monkeypatch):
    monkeypatch.setitem(app.config, "SENDGRID_API_KEY", API_KEY)
    monkeypatch.setitem(app.config, "SENDGRID_API_URL", sendgrid.url)
    create_list("uutiskirje", name="Uutiskirje")
    sync.add_destination("sendgrid-fi", "sendgrid", target=GROUP, list_slug="uutiskirje")
    total = MAX_ADDRESSES_PER_CALL * 2 + 500
    for n in range(total):
        suppressions.suppress(f"p{n}@yritys.fi", reason="unsubscribed", source="test", actor="test")
    suppressions.suppress(
        "lukija@yritys.fi", reason="unsubscribed", scope="uutiskirje", source="test", actor="test"
    )
    db.session.commit()

    (report,) = sync.run()

    assert (report.accepted, report.error) == (total + 1, None)
    # Three claims of at most a thousand rows; the one holding the list's row makes two calls.
    assert len(sendgrid.batches) == 4
    assert (max(sendgrid.batches), sum(sendgrid.batches)) == (MAX_ADDRESSES_PER_CALL, total + 1)
    assert len(sendgrid.unsubscribed) == total
    assert sendgrid.groups[GROUP] == {"lukija@yritys.fi"}
