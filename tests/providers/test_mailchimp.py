"""Mailchimp audience webhooks: the URL secret, the validator's GET, and the form-encoded events.

Mailchimp signs nothing, so there is no body to tamper with undetected: the secret in the URL is
the whole of the authentication, and each test of it is here.
"""

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
from werkzeug.datastructures import Headers, MultiDict

from suppress.config import ConfigError
from suppress.providers.base import Delivery, Malformed, Rejected, Reply
from suppress.providers.mailchimp import EVENT_MAP, Mailchimp

PAYLOADS = Path(__file__).parent / "payloads" / "mailchimp"
SECRET = "kz3Jq8vR2mWx5Tn7"
WEBHOOK_URL = "https://suppress.example.net/webhooks/mailchimp"
LIST_ID = "a6b5da1054"


def provider(
    secret: str = SECRET, list_ids: str = f"news={LIST_ID},offers=b7c6eb2165"
) -> Mailchimp:
    return Mailchimp({"MAILCHIMP_WEBHOOK_SECRET": secret, "MAILCHIMP_LIST_IDS": list_ids})


def delivery(
    name: str | None = None, *, query: str = f"?secret={SECRET}", method: str = "POST"
) -> Delivery:
    body = (PAYLOADS / name).read_bytes() if name else b""
    return form_delivery(body, query=query, method=method)


def form_delivery(
    body: bytes, *, query: str = f"?secret={SECRET}", method: str = "POST"
) -> Delivery:
    """As the blueprint builds it: the raw body and its parsed form fields."""
    headers = Headers(
        {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "MailChimp"}
    )
    form = MultiDict(parse_qsl(body.decode(), keep_blank_values=True))
    return Delivery(method=method, url=WEBHOOK_URL + query, headers=headers, body=body, form=form)


def parse(name: str):
    return provider().parse(delivery(name))


def test_validation_get_with_the_secret_is_answered_200():
    """ "About Webhooks": the validator checks a new webhook URL with a GET."""
    mailchimp = provider()
    request = delivery(method="GET")

    mailchimp.verify(request)

    assert mailchimp.handshake(request) == Reply()


def test_validation_get_without_the_secret_is_refused():
    with pytest.raises(Rejected) as caught:
        provider().verify(delivery(method="GET", query=""))

    assert caught.value.status == 403


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?token=" + SECRET,
        "?secret=",
        "?secret=guess",
        f"?secret={SECRET}x",
        f"?secret=x&secret={SECRET}",
    ],
    ids=["none", "other-name", "empty", "wrong", "longer", "twice"],
)
def test_post_without_the_right_secret_is_refused(query):
    with pytest.raises(Rejected) as caught:
        provider().verify(delivery("unsubscribe.txt", query=query))

    assert caught.value.status == 403


def test_either_secret_is_accepted_while_one_rotates():
    mailchimp = provider(secret=f"old-secret,{SECRET}")

    mailchimp.verify(delivery("unsubscribe.txt"))
    mailchimp.verify(delivery("unsubscribe.txt", query="?secret=old-secret"))


def test_unsubscribe_is_a_list_unsubscribe_for_the_mapped_list():
    mailchimp = provider()
    request = delivery("unsubscribe.txt")

    mailchimp.verify(request)
    assert mailchimp.handshake(request) is None
    [event] = mailchimp.parse(request)

    assert event.provider == "mailchimp"
    assert (event.type, event.raw_type) == ("unsubscribed", "unsubscribe")
    assert event.recipient == "ada@example.com"
    assert (event.list_ref, event.list_slug) == (LIST_ID, "news")
    assert event.campaign == "4fjk2ma9xd"
    assert event.occurred_at == datetime(2026, 3, 9, 21, 40, 57, tzinfo=UTC)
    assert len(event.provider_event_id) == 64


def test_audience_not_in_list_ids_leaves_the_slug_empty():
    [event] = provider(list_ids="offers=b7c6eb2165").parse(delivery("unsubscribe.txt"))

    assert (event.list_ref, event.list_slug) == (LIST_ID, None)


def test_synthetic_id_is_stable_for_a_retry_and_differs_for_another_event():
    first = parse("unsubscribe.txt")[0].provider_event_id
    retry = parse("unsubscribe.txt")[0].provider_event_id
    other = parse("subscribe.txt")[0].provider_event_id

    assert first == retry
    assert first != other


@pytest.mark.parametrize(
    ("name", "kind", "bounce_class", "recipient"),
    [
        ("cleaned-hard.txt", "bounced", "hard", "gone@example.org"),
        ("cleaned-abuse.txt", "complained", None, "angry@example.org"),
        ("unsubscribe-abuse.txt", "complained", None, "ada@example.com"),
    ],
)
def test_cleaned_and_abuse_reports(name, kind, bounce_class, recipient):
    """R-MBP-4: a spam report (reason abuse) is a complaint, whichever event carries it."""
    [event] = parse(name)

    assert (event.type, event.bounce_class, event.recipient) == (kind, bounce_class, recipient)
    assert event.list_slug == "news"


def test_cleaned_reason_is_kept_as_the_bounce_text_and_an_unsubscribe_has_none():
    assert parse("cleaned-hard.txt")[0].diagnostic == "hard"
    assert parse("unsubscribe.txt")[0].diagnostic is None


def test_subscribe_is_a_resubscribe():
    [event] = parse("subscribe.txt")

    assert (event.type, event.recipient, event.ip) == (
        "resubscribed",
        "ada@example.com",
        "198.51.100.23",
    )


def test_email_change_names_the_new_address():
    [event] = parse("upemail.txt")

    assert (event.type, event.recipient) == ("unknown", "augusta@example.com")


def test_campaign_event_has_no_recipient():
    [event] = parse("campaign.txt")

    assert (event.type, event.recipient, event.list_ref) == ("unknown", None, LIST_ID)


@pytest.mark.parametrize(("raw_type", "kind"), sorted(EVENT_MAP.items()))
def test_documented_event_type_maps_as_intended(raw_type, kind):
    form = {"type": raw_type, "fired_at": "2026-03-09 21:40:57", "data[email]": "a@example.com"}

    [event] = provider().parse(form_delivery(urlencode(form).encode()))

    assert (event.raw_type, event.type) == (raw_type, kind)


def test_undocumented_type_is_unknown_never_an_error():
    [event] = provider().parse(form_delivery(b"type=archive&fired_at=2026-03-09+21%3A40%3A57"))

    assert (event.type, event.raw_type, event.recipient) == ("unknown", "archive", None)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b'{"type": "unsubscribe"}',
        b"type=unsubscribe&data%5Bemail%5D=a%40example.com",
        b"fired_at=2026-03-09+21%3A40%3A57&data%5Bemail%5D=a%40example.com",
        b"type=unsubscribe&fired_at=last+tuesday&data%5Bemail%5D=a%40example.com",
        b"type=cleaned&fired_at=2026-03-09+21%3A40%3A57&data%5Breason%5D=hard",
    ],
    ids=["empty", "json", "no-time", "no-type", "bad-time", "no-email"],
)
def test_form_not_as_documented_is_malformed(body):
    with pytest.raises(Malformed):
        provider().parse(form_delivery(body))


def test_missing_secret_names_the_variable():
    with pytest.raises(ConfigError, match="SUPPRESS_MAILCHIMP_WEBHOOK_SECRET"):
        Mailchimp({"MAILCHIMP_API_KEY": "0123456789abcdef-us6"})


def test_bad_list_ids_name_the_variable():
    with pytest.raises(ConfigError, match="SUPPRESS_MAILCHIMP_LIST_IDS"):
        Mailchimp({"MAILCHIMP_WEBHOOK_SECRET": SECRET, "MAILCHIMP_LIST_IDS": "news"})
