import base64
import email.policy
import re
import string
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import BadData
from itsdangerous.encoding import base64_decode, base64_encode

from suppress import tokens
from suppress.lists import create_list, ensure_address
from suppress.models import db


@pytest.fixture
def news(app):
    mailing_list = create_list("news", "Uutiskirje")
    db.session.commit()
    return mailing_list


def test_a_token_names_the_address_list_and_campaign(app, news):
    token = tokens.mint("Matti@Yritys.fi", "news", "spring-2026")
    target = tokens.read(token)
    assert target.address.email == "matti@yritys.fi"
    assert target.mailing_list.slug == "news"
    assert target.campaign == "spring-2026"


def test_a_token_without_a_list_means_all_mail(app):
    target = tokens.read(tokens.mint("matti@yritys.fi"))
    assert target.mailing_list is None


def test_decoding_a_token_does_not_reveal_the_address(app, news):
    """R-OC-3: sign an id, not the email."""
    token = tokens.mint("matti.meikalainen@yritys.fi", "news")
    payload = token.split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert b"@" not in decoded
    assert b"matti" not in decoded


def test_tokens_are_url_safe_and_short(app, news):
    """R-HDR-2: URL-safe characters only, and well under the header limits."""
    for number in range(200):
        token = tokens.mint(f"person{number}@firma{number}.fi", "news", "c" * 32)
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", token)
        assert len(token) <= 120


def test_every_changed_character_makes_the_token_invalid(app, news):
    """R-OC-3: flip any single character of a valid token and it is refused.

    Includes the last character, whose spare base64 bits decoding would otherwise ignore.
    """
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for number in range(20):
        token = tokens.mint(f"person{number}@yritys.fi", "news")
        for position, character in enumerate(token):
            replacement = alphabet[(alphabet.find(character) + 1) % len(alphabet)]
            tampered = token[:position] + replacement + token[position + 1 :]
            with pytest.raises(tokens.InvalidToken):
                tokens.read(tampered)


@pytest.mark.parametrize("token", ["", "nonsense", "a.b", "WzEsMV0.xyz", "." * 40])
def test_anything_not_minted_here_is_invalid(app, token):
    with pytest.raises(tokens.InvalidToken):
        tokens.read(token)


def test_tokens_signed_with_an_old_key_still_work_after_rotation(make_app, app, news):
    token = tokens.mint("matti@yritys.fi", "news")
    db.session.commit()
    rotated = make_app(SECRET_KEY="new-key", OLD_SECRET_KEYS="test-secret")
    with rotated.app_context():
        assert tokens.read(token).address.email == "matti@yritys.fi"
        assert tokens.mint("matti@yritys.fi", "news") != token
    forgotten = make_app(SECRET_KEY="new-key")
    with forgotten.app_context(), pytest.raises(tokens.InvalidToken):
        tokens.read(token)


def test_tokens_never_expire(app, news, monkeypatch):
    """R-US-1, R-CA-1: a link read years later still works."""
    token = tokens.mint("matti@yritys.fi", "news")
    monkeypatch.setattr("time.time", lambda: 4102444800.0)  # 2100-01-01
    assert tokens.read(token).address.email == "matti@yritys.fi"


def test_headers_for_one_click(make_app, app, news):
    """R-OC-1, R-HDR-1: one https URI first, then mailto; the Post header is exact."""
    https_app = make_app(BASE_URL="https://u.example.fi", MAILTO_DOMAIN="u.example.fi")
    with https_app.app_context():
        link = tokens.unsubscribe_link("matti@yritys.fi", "news")
    assert link.list_unsubscribe_post == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r"<[^<>\s]+>(, <[^<>\s]+>)*", link.list_unsubscribe)
    uris = re.findall(r"<([^<>]+)>", link.list_unsubscribe)
    assert uris[0] == link.url
    assert uris[0].startswith("https://u.example.fi/u/")
    assert re.fullmatch(
        r"mailto:unsub\+[A-Za-z0-9_.-]+@u\.example\.fi\?subject=unsubscribe", uris[1]
    )
    assert len(link.list_unsubscribe.encode()) < 998


def test_headers_survive_folding_in_a_real_message(make_app, app, news):
    """R-HDR-2: the header round-trips through the email package with folding."""
    https_app = make_app(BASE_URL="https://u.example.fi", MAILTO_DOMAIN="u.example.fi")
    with https_app.app_context():
        link = tokens.unsubscribe_link("matti@yritys.fi", "news", "spring-2026")
    message = EmailMessage(policy=email.policy.SMTP)
    message["List-Unsubscribe"] = link.list_unsubscribe
    message["List-Unsubscribe-Post"] = link.list_unsubscribe_post
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert re.findall(r"<([^<>]+)>", str(parsed["List-Unsubscribe"])) == re.findall(
        r"<([^<>]+)>", link.list_unsubscribe
    )


def test_minting_refuses_an_http_base_url_outside_testing(make_app, app, news):
    """R-OC-1: never an http: one-click URI in production."""
    production = make_app(TESTING=False, BASE_URL="http://u.example.fi")
    with production.app_context(), pytest.raises(tokens.InsecureBaseURL, match="https"):
        tokens.unsubscribe_link("matti@yritys.fi", "news")


def test_campaign_ids_are_kept_short(app):
    with pytest.raises(tokens.CampaignTooLong):
        tokens.mint("matti@yritys.fi", campaign="x" * 33)


def test_mailto_tokens_fit_a_local_part_and_survive_any_case(app, news):
    """R-OC-13: RFC 5321 caps a local part at 64 octets, and mail systems may change case."""
    address = ensure_address("matti@yritys.fi")
    address.id = 2**31 - 1  # the largest id an INTEGER key holds on PostgreSQL
    db.session.commit()
    token = tokens.mailto_token("matti@yritys.fi", "news")
    assert len(f"unsub+{token}") <= 64
    assert re.fullmatch(r"[a-z2-7]+", token)
    for spelling in (token, token.upper(), token.swapcase()):
        assert tokens.read_mailto(spelling).mailing_list.slug == "news"


def test_a_changed_mailto_token_is_invalid(app, news):
    token = tokens.mailto_token("matti@yritys.fi", "news")
    for position, character in enumerate(token):
        replacement = "a" if character != "a" else "b"
        with pytest.raises(tokens.InvalidToken):
            tokens.read_mailto(token[:position] + replacement + token[position + 1 :])
    for garbage in ("", "1", "!!!!", "a" * 40, token[:-3]):
        with pytest.raises(tokens.InvalidToken):
            tokens.read_mailto(garbage)


def test_mailto_tokens_follow_key_rotation(make_app, app, news):
    token = tokens.mailto_token("matti@yritys.fi", "news")
    db.session.commit()
    with make_app(SECRET_KEY="new", OLD_SECRET_KEYS="test-secret").app_context():
        assert tokens.read_mailto(token).address.email == "matti@yritys.fi"
    with make_app(SECRET_KEY="new").app_context(), pytest.raises(tokens.InvalidToken):
        tokens.read_mailto(token)


@given(st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=40))
def test_a_token_is_canonical_exactly_when_decoding_and_encoding_gives_it_back(token):
    def round_trips(part: str) -> bool:
        try:
            return base64_encode(base64_decode(part)) == part.encode()
        except BadData:
            return False

    expected = all(part and round_trips(part) for part in token.split("."))
    assert tokens._canonical(token) == expected
