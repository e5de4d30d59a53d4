"""The mailto unsubscribe channel: mail sent to ``unsub+TOKEN@<SUPPRESS_MAILTO_DOMAIN>``.

A message reaches us through an ESP's inbound route (``POST /inbound/mail``, the raw message,
HTTP Basic auth) or an MTA pipe (``flask --app wsgi inbound-mail`` on stdin). Only the recipient
headers matter: any subject, body or sender gives the same suppression a one-click POST gives,
with source ``mailto`` (R-OC-13, R-EP-2). Nothing here logs an address or a token in clear: the
log says what happened and whether the token was genuine, no more.
"""

import email
import email.policy
import hmac
import logging
import os
import re
from dataclasses import dataclass
from email.message import EmailMessage
from typing import BinaryIO

import click
import idna
from flask import Blueprint, Flask, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import OperationalError
from werkzeug.datastructures import Authorization
from werkzeug.http import HTTP_STATUS_CODES

from suppress import suppressions, tokens
from suppress.config import ENV_PREFIX, ConfigError
from suppress.models import GLOBAL_SCOPE, db

SOURCE = "mailto"
# Where MTAs and inbound routes put the envelope recipient (Postfix: Delivered-To and
# X-Original-To; Exim: Envelope-To), then the recipients the sender's client wrote.
RECIPIENT_HEADERS = frozenset({"delivered-to", "x-original-to", "envelope-to", "to", "cc"})
# The token alphabet is fixed (base64url and the signature's dot), so a pattern finds every
# ``unsub+TOKEN@domain`` in a header however malformed its neighbours are; the stdlib address
# parsers instead drop a whole header they find malformed, and do so differently between
# Python patch releases. Addresses are never inside encoded words (RFC 2047 §5).
UNSUBSCRIBE_ADDRESS = re.compile(
    r"(?<![^\s<,:;])unsub\+([A-Za-z0-9_.-]+)@([^\s<>()\[\],;:\"@]+)", re.IGNORECASE
)
HEADER_END = re.compile(rb"\r?\n\r?\n")
# Only the header section is read; the body, with attachments of any size, never is.
MAX_HEADER_BYTES = 1024 * 1024
READ_CHUNK_BYTES = 64 * 1024
# The raw message as routes label it; a request without a Content-Type is raw bytes as well.
MESSAGE_TYPES = frozenset({"message/rfc822", "application/octet-stream", "text/plain", ""})
CREDENTIALS = ("INBOUND_USERNAME", "INBOUND_PASSWORD")
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="inbound mail", charset="UTF-8"'}

bp = Blueprint("inbound", __name__, url_prefix="/inbound")
log = logging.getLogger(__name__)


class NotAMessage(ValueError):
    pass


class HeadersTooLarge(ValueError):
    pass


class TemporaryFailure(click.ClickException):
    """EX_TEMPFAIL (sysexits.h): Postfix, Exim and procmail keep the message and retry later,
    so an unsubscribe is delayed, not lost, while the service is misconfigured or down."""

    exit_code = os.EX_TEMPFAIL


@dataclass(frozen=True)
class Outcome:
    """What one message did: the scopes now suppressed, and the ``unsub+`` addresses at our
    domain whose token was not genuine (``lower_case`` of them had no capital letter left)."""

    scopes: tuple[str, ...]
    invalid: int
    lower_case: int

    def explain(self) -> str:
        if self.scopes:
            return f"suppressed in scope {', '.join(self.scopes)} (source {SOURCE})"
        if not self.invalid:
            return "no unsubscribe address: no unsub+ recipient at the mailto domain"
        hint = (
            f"; {self.lower_case} of them all lower-case, as if a mail system on the way "
            "lower-cased the address (tokens are case-sensitive)"
            if self.lower_case
            else ""
        )
        return (
            f"no unsubscribe address: {self.invalid} unsub+ recipient(s) with an invalid "
            f"token{hint}"
        )


def init_app(app: Flask) -> None:
    """Register the route and the command; half a set of credentials stops the start-up."""
    given = [key for key in CREDENTIALS if app.config[key] is not None]
    if len(given) == 1:
        raise ConfigError(
            f"{ENV_PREFIX}_{given[0]} is set without its partner: set both "
            f"{ENV_PREFIX}_INBOUND_USERNAME and {ENV_PREFIX}_INBOUND_PASSWORD, or neither"
        )
    app.register_blueprint(bp)
    app.cli.add_command(inbound_mail_command)


def read_message(stream: BinaryIO) -> EmailMessage:
    """The message's header section, parsed; reading stops once the blank line that ends it
    has arrived, so the body is never taken in whole."""
    data = b""
    while chunk := stream.read(READ_CHUNK_BYTES):
        data += chunk
        if HEADER_END.search(data) or len(data) > MAX_HEADER_BYTES:
            break
    end = HEADER_END.search(data)
    headers = data[: end.end()] if end else data
    if len(headers) > MAX_HEADER_BYTES:
        raise HeadersTooLarge(f"the header section is over {MAX_HEADER_BYTES} bytes")
    message = email.message_from_bytes(headers, policy=email.policy.default)
    if not message.keys():
        raise NotAMessage("not an RFC 5322 message: no header field found")
    return message


def unsubscribe_tokens(message: EmailMessage, domain: str) -> list[str]:
    """Each distinct token of an ``unsub+TOKEN@domain`` recipient, in header order.

    Raw header values are searched, so folding, encoded display names and garbage around an
    address do not hide it; the domain compares as IDNA, in any case.
    """
    found: dict[str, None] = {}
    for name, value in message.raw_items():
        if name.lower() not in RECIPIENT_HEADERS:
            continue
        for token, at in UNSUBSCRIBE_ADDRESS.findall(value):
            if _ascii_domain(at) == domain:
                found.setdefault(token)
    return list(found)


def _ascii_domain(domain: str) -> str | None:
    try:
        return idna.encode(domain.rstrip("."), uts46=True).decode()
    except idna.IDNAError:
        return None


def unsubscribe_by_mail(message: EmailMessage) -> Outcome:
    """Suppress what each genuine token names; the caller commits.

    Mailto tokens are lower-case base32 and survive a mail system that changes case. A
    page token pasted into the address is case-sensitive: it is tried exactly as found, and a
    lower-cased one is reported as invalid, never matched loosely.
    """
    scopes: dict[str, None] = {}
    invalid = lower_case = 0
    for token in unsubscribe_tokens(message, current_app.config["MAILTO_DOMAIN"]):
        try:
            target = _read(token)
        except tokens.InvalidToken:
            invalid += 1
            lower_case += token == token.lower()
            continue
        scopes.setdefault(_leave(target))
    outcome = Outcome(tuple(scopes), invalid, lower_case)
    log.log(logging.WARNING if invalid and not scopes else logging.INFO, outcome.explain())
    return outcome


def _read(token: str) -> tokens.LinkTarget:
    try:
        return tokens.read_mailto(token)
    except tokens.InvalidToken:
        return tokens.read(token)


def _leave(target: tokens.LinkTarget) -> str:
    """Suppress the token's address on its list, or everywhere for a token without a list."""
    scope = target.mailing_list.slug if target.mailing_list else GLOBAL_SCOPE
    # An erased person has no address left to write; their erasure already blocks all mail.
    if target.address.email is not None:
        suppressions.suppress(
            target.address.email, reason="unsubscribed", source=SOURCE, scope=scope, actor=SOURCE
        )
    return scope


def _configured() -> bool:
    config = current_app.config
    return None not in (config["MAILTO_DOMAIN"], *(config[key] for key in CREDENTIALS))


def _authorised(auth: Authorization | None) -> bool:
    """HTTP Basic, compared in constant time, both halves always compared."""
    if auth is None or auth.type != "basic":
        return False
    config = current_app.config
    user_ok = hmac.compare_digest(
        (auth.username or "").encode(), config["INBOUND_USERNAME"].encode()
    )
    password_ok = hmac.compare_digest(
        (auth.password or "").encode(), config["INBOUND_PASSWORD"].encode()
    )
    return user_ok and password_ok


def _failure(
    status: int, message: str, headers: dict[str, str] | None = None
) -> ResponseReturnValue:
    """The JSON error shape errors.py gives machines, for the route's own refusals."""
    error = HTTP_STATUS_CODES[status].lower().replace(" ", "_")
    return jsonify(error=error, message=message), status, headers or {}


@bp.post("/mail")
def mail() -> ResponseReturnValue:
    """An inbound route's delivery; 200 whenever the message was dealt with, so that mail
    without a genuine token is not retried forever."""
    if not _configured():
        log.warning("POST /inbound/mail refused: the mailto domain or credentials are unset")
        return _failure(503, "inbound mail is not configured on this service")
    if not _authorised(request.authorization):
        return _failure(401, "valid HTTP Basic credentials are required", BASIC_CHALLENGE)
    if request.mimetype not in MESSAGE_TYPES:
        return _failure(415, "send the raw message as message/rfc822 or application/octet-stream")
    try:
        message = read_message(request.stream)
    except HeadersTooLarge as error:
        return _failure(413, str(error))
    except NotAMessage as error:
        return _failure(400, str(error))
    outcome = unsubscribe_by_mail(message)
    db.session.commit()
    if outcome.scopes:
        return jsonify(suppressed=True, scopes=list(outcome.scopes))
    return jsonify(suppressed=False, reason="no unsubscribe address")


@click.command("inbound-mail")
@click.argument("source", metavar="[MESSAGE.eml]", type=click.File("rb"), default="-")
def inbound_mail_command(source: BinaryIO) -> None:
    """Unsubscribe by a message (stdin by default), as an MTA pipe delivers mail to unsub+TOKEN@.

    Exit status 0: suppressed; 1: no valid unsubscribe address (bounce or drop the message);
    75: not configured or the database is down (the MTA keeps the message and retries).
    """
    if current_app.config["MAILTO_DOMAIN"] is None:
        raise TemporaryFailure(f"{ENV_PREFIX}_MAILTO_DOMAIN is not set: no address can match")
    try:
        message = read_message(source)
    except (HeadersTooLarge, NotAMessage) as error:
        raise click.ClickException(str(error)) from None
    finally:
        _discard_rest(source)
    try:
        outcome = unsubscribe_by_mail(message)
        db.session.commit()
    except OperationalError:
        db.session.rollback()
        raise TemporaryFailure("the database cannot be reached; try again later") from None
    if not outcome.scopes:
        raise click.ClickException(outcome.explain())
    click.echo(outcome.explain())


def _discard_rest(stream: BinaryIO) -> None:
    """Read the body to its end: procmail and some MTAs count a pipe that stops reading
    early as a failed delivery."""
    while stream.read(READ_CHUNK_BYTES):
        pass
