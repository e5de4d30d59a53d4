"""The mailto channel: mail to ``unsub+TOKEN@<mailto domain>`` by inbound route and MTA pipe.

Samples in ``tests/inbound/`` are real-looking messages with placeholders (``TOKEN``,
``LIST_TOKEN``, ``GLOBAL_TOKEN``) replaced by tokens minted for the test.
"""

import logging
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from suppress.config import ConfigError
from suppress.inbound import MAX_HEADER_BYTES
from suppress.lists import create_list, ensure_address
from suppress.models import AuditEntry, Suppression, db
from suppress.tokens import mint, unsubscribe_link

SAMPLES = Path(__file__).resolve().parent / "inbound"
DOMAIN = "unsub.example.fi"
CREDENTIALS = ("esp-route", "correct horse battery staple")
ADDRESS = "Maija.Mehilainen@Example.FI"
STORED_ADDRESS = "maija.mehilainen@example.fi"
TOKEN_SAMPLES = [
    "client-mailto.eml",
    "envelope-delivered-to.eml",
    "envelope-to-exim.eml",
    "folded-to-crlf.eml",
    "garbage-around.eml",
]


@pytest.fixture(scope="module")
def mailto_app(make_app):
    return make_app(
        MAILTO_DOMAIN=DOMAIN, INBOUND_USERNAME=CREDENTIALS[0], INBOUND_PASSWORD=CREDENTIALS[1]
    )


@pytest.fixture
def inbound(app, mailto_app):
    """The configured app with its context pushed; the ``app`` fixture empties the tables."""
    with mailto_app.app_context():
        yield mailto_app


@pytest.fixture
def token(inbound):
    create_list("newsletter", "Newsletter")
    minted = mint(ADDRESS, "newsletter")
    db.session.commit()
    return minted


def eml(name, **placeholders):
    message = (SAMPLES / name).read_bytes()
    for placeholder, value in placeholders.items():
        message = message.replace(placeholder.encode(), value.encode())
    return message


def post(app, body, auth=CREDENTIALS, content_type="message/rfc822"):
    return app.test_client().post("/inbound/mail", data=body, content_type=content_type, auth=auth)


def pipe(app, body):
    return app.test_cli_runner().invoke(args=["inbound-mail"], input=body)


def stored():
    db.session.expire_all()
    rows = db.session.scalars(select(Suppression).order_by(Suppression.scope))
    return [(row.email, row.scope, row.reason, row.source) for row in rows]


@pytest.mark.parametrize("sample", TOKEN_SAMPLES)
def test_mail_to_the_unsub_address_suppresses_the_address_on_the_tokens_list(
    inbound, token, sample
):
    """R-OC-13: any subject, body or sender; the recipient is found in Delivered-To,
    X-Original-To, Envelope-To, To or Cc, folded or surrounded by garbage."""
    response = post(inbound, eml(sample, TOKEN=token))
    assert response.status_code == 200
    assert response.json == {"suppressed": True, "scopes": ["newsletter"]}
    assert stored() == [(STORED_ADDRESS, "newsletter", "unsubscribed", "mailto")]


def test_a_token_without_a_list_suppresses_everywhere(inbound):
    """R-OC-13, R-EP-2: the mailto of a message sent without a list stops all mail."""
    global_token = mint(ADDRESS)
    db.session.commit()
    response = post(inbound, eml("client-mailto.eml", TOKEN=global_token))
    assert response.json == {"suppressed": True, "scopes": ["global"]}
    assert stored() == [(STORED_ADDRESS, "global", "unsubscribed", "mailto")]


def test_each_copy_of_a_message_naming_two_tokens_acts_on_both_once(inbound, token):
    """An MTA delivers one copy per envelope recipient, each with its own Delivered-To; both
    copies name both tokens in To and Cc, so the second copy changes nothing."""
    message = eml("two-tokens.eml", LIST_TOKEN=token, GLOBAL_TOKEN=mint(ADDRESS))
    db.session.commit()
    first, second = post(inbound, message), post(inbound, message)
    assert first.json == second.json == {"suppressed": True, "scopes": ["newsletter", "global"]}
    assert [row[1] for row in stored()] == ["global", "newsletter"]
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 2


def test_a_repeated_message_is_idempotent(inbound, token):
    message = eml("client-mailto.eml", TOKEN=token)
    assert post(inbound, message).json == post(inbound, message).json
    assert len(stored()) == 1
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 1


@pytest.mark.parametrize(
    ("sample", "mangle"),
    [
        ("client-mailto.eml", lambda token: token[:-3] + "AAA"),
        ("client-mailto.eml", str.lower),
        ("client-mailto.eml", lambda token: "not.a-token"),
        ("other-domain.eml", str),
        ("token-in-body-only.eml", str),
        ("no-token.eml", str),
    ],
    ids=["tampered", "lower-cased", "garbage", "other-domain", "body-only", "no-recipient"],
)
def test_mail_without_a_genuine_unsub_recipient_suppresses_nothing_and_is_not_retried(
    inbound, token, sample, mangle, caplog
):
    """R-OC-13: a malformed token gives no suppression, and is logged without the address."""
    caplog.set_level(logging.INFO, logger="suppress.inbound")
    response = post(inbound, eml(sample, TOKEN=mangle(token)))
    assert response.status_code == 200
    assert response.json == {"suppressed": False, "reason": "no unsubscribe address"}
    assert stored() == []
    assert "no unsubscribe address" in caplog.text
    assert STORED_ADDRESS not in caplog.text.lower()
    assert token not in caplog.text


def test_an_invalid_token_is_logged_as_such(inbound, token, caplog):
    """R-OC-13: the log tells an operator a token failed, and hints at lower-casing."""
    post(inbound, eml("client-mailto.eml", TOKEN=token.lower()))
    (record,) = [r for r in caplog.records if r.name == "suppress.inbound"]
    assert record.levelno == logging.WARNING
    assert "1 unsub+ recipient(s) with an invalid token" in record.getMessage()
    assert "lower-case" in record.getMessage()


def test_a_token_of_an_erased_person_writes_nothing_but_answers_suppressed(inbound, token):
    """The erasure already blocks all mail; there is no address left to write."""
    ensure_address(ADDRESS).email = None
    db.session.commit()
    response = post(inbound, eml("client-mailto.eml", TOKEN=token))
    assert response.json == {"suppressed": True, "scopes": ["newsletter"]}
    assert stored() == []


@pytest.mark.parametrize(
    "auth",
    [None, (CREDENTIALS[0], "wrong"), ("someone", CREDENTIALS[1]), ("", "")],
    ids=["missing", "wrong-password", "wrong-user", "empty"],
)
def test_wrong_credentials_answer_401_and_store_nothing(inbound, token, auth):
    response = post(inbound, eml("client-mailto.eml", TOKEN=token), auth=auth)
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert stored() == []


def test_a_bearer_token_is_not_basic_auth(inbound, token):
    response = inbound.test_client().post(
        "/inbound/mail",
        data=eml("client-mailto.eml", TOKEN=token),
        headers={"Authorization": f"Bearer {CREDENTIALS[1]}"},
    )
    assert response.status_code == 401
    assert stored() == []


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"MAILTO_DOMAIN": DOMAIN},
        {"INBOUND_USERNAME": CREDENTIALS[0], "INBOUND_PASSWORD": CREDENTIALS[1]},
    ],
    ids=["nothing", "no-credentials", "no-domain"],
)
def test_an_unconfigured_route_answers_503_so_the_route_retries_later(make_app, app, settings):
    """503, not 404: inbound routes retry a 5xx, so mail that arrives before the operator
    finishes the set-up is delivered later instead of dropped (R-OC-13)."""
    create_list("newsletter", "Newsletter")
    message = eml("client-mailto.eml", TOKEN=mint(ADDRESS, "newsletter"))
    db.session.commit()
    response = post(make_app(**settings), message)
    assert response.status_code == 503
    assert response.json["error"] == "service_unavailable"
    assert stored() == []


@pytest.mark.parametrize("key", ["INBOUND_USERNAME", "INBOUND_PASSWORD"])
def test_half_a_set_of_credentials_stops_start_up(make_app, key):
    with pytest.raises(ConfigError, match=f"^SUPPRESS_{key} is set without its partner"):
        make_app(**{key: "only-one"})


@pytest.mark.parametrize(
    "body", [b"", b"hello world\n", b"\x00\xff\xfe binary"], ids=["empty", "text", "binary"]
)
def test_a_body_that_is_not_a_message_answers_400(inbound, body):
    response = post(inbound, body)
    assert response.status_code == 400
    assert response.json["error"] == "bad_request"


@pytest.mark.parametrize(
    "body",
    [
        b"X-Padding: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\nbody",
        b"X-Padding: " + b"a" * (2 * MAX_HEADER_BYTES),
    ],
    ids=["long-header", "no-end-of-headers"],
)
def test_a_header_section_over_the_limit_answers_413(inbound, body):
    response = post(inbound, body)
    assert response.status_code == 413
    assert response.json["error"] == "request_entity_too_large"


def test_a_large_body_is_fine_because_only_the_headers_are_read(inbound, token):
    attachment = b"QUJD" * (MAX_HEADER_BYTES // 2)
    response = post(inbound, eml("client-mailto.eml", TOKEN=token) + attachment)
    assert response.json == {"suppressed": True, "scopes": ["newsletter"]}


def test_a_form_post_answers_415(inbound, token):
    message = eml("client-mailto.eml", TOKEN=token)
    response = post(inbound, message, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert stored() == []


@pytest.mark.parametrize("content_type", ["application/octet-stream", "text/plain", None])
def test_raw_message_content_types_are_accepted(inbound, token, content_type):
    response = post(inbound, eml("client-mailto.eml", TOKEN=token), content_type=content_type)
    assert response.json["suppressed"] is True


@pytest.mark.parametrize(
    ("sample", "body"),
    [("client-mailto.eml", b""), ("envelope-delivered-to.eml", b"QUJD" * 100_000)],
)
def test_the_pipe_command_suppresses_and_exits_0(inbound, token, sample, body):
    """R-OC-13 through an MTA pipe: ``flask --app wsgi inbound-mail < message.eml``; the
    body is read to its end however long it is, as pipes expect."""
    result = pipe(inbound, eml(sample, TOKEN=token) + body)
    assert result.exit_code == 0, result.output
    assert "suppressed in scope newsletter (source mailto)" in result.output
    assert stored() == [(STORED_ADDRESS, "newsletter", "unsubscribed", "mailto")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (eml("no-token.eml"), "no unsub+ recipient at the mailto domain"),
        (eml("client-mailto.eml", TOKEN="forged.token"), "with an invalid token"),
        (b"hello world\n", "not an RFC 5322 message"),
    ],
    ids=["no-recipient", "invalid-token", "not-a-message"],
)
def test_the_pipe_command_exits_1_when_there_is_nothing_to_act_on(inbound, body, message):
    result = pipe(inbound, body)
    assert result.exit_code == 1
    assert message in result.output
    assert stored() == []


def test_the_command_also_reads_a_file(inbound, token, tmp_path):
    path = tmp_path / "message.eml"
    path.write_bytes(eml("client-mailto.eml", TOKEN=token))
    result = inbound.test_cli_runner().invoke(args=["inbound-mail", str(path)])
    assert result.exit_code == 0, result.output
    assert [row[1] for row in stored()] == ["newsletter"]


def test_the_pipe_command_says_when_a_token_was_lower_cased(inbound, token):
    """The limitation is reported, not guessed around: base64url tokens are case-sensitive."""
    result = pipe(inbound, eml("client-mailto.eml", TOKEN=token.lower()))
    assert result.exit_code == 1
    assert "all lower-case" in result.output
    assert stored() == []


def test_the_pipe_command_exits_75_when_no_mailto_domain_is_set(runner):
    """EX_TEMPFAIL: the MTA keeps the message and retries once the setting is fixed."""
    result = runner.invoke(args=["inbound-mail"], input=b"To: x@example.fi\n\n")
    assert result.exit_code == os.EX_TEMPFAIL
    assert "SUPPRESS_MAILTO_DOMAIN is not set" in result.output


def test_the_pipe_command_exits_75_when_the_database_is_down(make_app, app, tmp_path):
    create_list("newsletter", "Newsletter")
    message = eml("client-mailto.eml", TOKEN=mint(ADDRESS, "newsletter"))
    db.session.commit()
    unreachable = make_app(
        MAILTO_DOMAIN=DOMAIN, DATABASE_URL=f"sqlite:///{tmp_path / 'missing' / 'suppress.db'}"
    )
    with unreachable.app_context():
        result = pipe(unreachable, message)
    assert result.exit_code == os.EX_TEMPFAIL
    assert "the database cannot be reached" in result.output
    assert stored() == []


@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_the_minted_mailto_address_works_whatever_case_a_mail_system_gives_it(inbound, case):
    """R-OC-13: the mailto URI of a minted link, even after a mail system changed its case."""
    create_list("newsletter", "Newsletter")
    link = unsubscribe_link(ADDRESS, "newsletter")
    db.session.commit()
    mailbox = link.list_unsubscribe.split("<mailto:", 1)[1].split("?", 1)[0]
    local_part, _, domain = mailbox.partition("@")
    message = eml("client-mailto.eml", TOKEN="x").replace(
        f"unsub+x@{DOMAIN}".encode(), f"{case(local_part)}@{domain}".encode()
    )
    response = post(inbound, message)
    assert response.json == {"suppressed": True, "scopes": ["newsletter"]}
    assert stored() == [(STORED_ADDRESS, "newsletter", "unsubscribed", "mailto")]
