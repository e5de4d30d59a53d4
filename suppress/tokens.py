"""Unsubscribe tokens and the List-Unsubscribe header values that carry them.

A token is signed, URL-safe and short, and names an address *id*, a list id and a campaign:
decoding one never shows the address (R-OC-3). Tokens never expire, because CAN-SPAM (30 days),
CASL (60 days) and people reading old mail all need the link to keep working (R-US-1, R-CA-1);
the signing key rotates instead: ``SUPPRESS_SECRET_KEY`` signs, ``SUPPRESS_OLD_SECRET_KEYS``
still verify.
"""

import base64
import binascii
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import bindparam, select

from suppress.lists import ensure_address, find_list
from suppress.models import Address, MailingList, db

SALT = "suppress.unsubscribe.v1"
MAILTO_SALT = b"suppress.mailto.v1"
# 80 bits: forging one would take about 2**79 guesses, each one a request to the service.
MAILTO_MAC_BYTES = 10
ONE_CLICK = "List-Unsubscribe=One-Click"
MAX_CAMPAIGN_LENGTH = 32


class InvalidToken(ValueError):
    """The token was not made by this service (or was changed); deliberately says no more."""


class CampaignTooLong(ValueError):
    """Campaign ids are kept short so the token, and the header, stay short (R-HDR-2)."""


class InsecureBaseURL(ValueError):
    """One-click needs an https URL (RFC 8058 §3.1); the message names the setting to fix."""


@dataclass(frozen=True)
class Recipient:
    """The link's address as the pages need it; ``email`` is None once the person is erased."""

    id: int
    email: str | None
    language: str | None


@dataclass(frozen=True)
class ListRef:
    id: int
    slug: str
    name: str


@dataclass(frozen=True)
class LinkTarget:
    """What a token names: whose link it is, for which list (None: all mail) and campaign."""

    address: Recipient
    mailing_list: ListRef | None
    campaign: str | None


# One indexed read per link, built once: a burst of one-click POSTs runs it thousands of times.
_TARGET_QUERY = (
    select(Address.email, Address.language, MailingList.slug, MailingList.name)
    .select_from(Address)
    .outerjoin(MailingList, MailingList.id == bindparam("list_id"))
    .where(Address.id == bindparam("address_id"))
)


def _target(address_id: int, list_id: int, campaign: str | None) -> LinkTarget:
    found = db.session.connection().execute(
        _TARGET_QUERY, {"address_id": address_id, "list_id": list_id}
    )
    row = found.first()
    if row is None or (list_id and row.slug is None):
        raise InvalidToken("invalid token")
    address = Recipient(address_id, row.email, row.language)
    mailing_list = ListRef(list_id, row.slug, row.name) if list_id else None
    return LinkTarget(address, mailing_list, campaign)


@dataclass(frozen=True)
class UnsubscribeLink:
    url: str
    list_unsubscribe: str
    list_unsubscribe_post: str = ONE_CLICK


def _serializer() -> URLSafeSerializer:
    """Signs with the current key; verifies with it and every old key (itsdangerous uses the
    last key of the list to sign)."""
    config = current_app.config
    return _serializer_for((*config["OLD_SECRET_KEYS"], config["SECRET_KEY"]))


@functools.lru_cache(maxsize=4)
def _serializer_for(keys: tuple[str, ...]) -> URLSafeSerializer:
    """Built once per set of keys: building one costs more than verifying a token with it."""
    return URLSafeSerializer(list(keys), salt=SALT, signer_kwargs={"digest_method": hashlib.sha256})


def mint(email: str, list_slug: str | None = None, campaign: str | None = None) -> str:
    """A token for ``email`` on ``list_slug`` (None: all marketing mail from the controller)."""
    if campaign is not None and len(campaign) > MAX_CAMPAIGN_LENGTH:
        raise CampaignTooLong(f"a campaign id is at most {MAX_CAMPAIGN_LENGTH} characters")
    address = ensure_address(email)
    mailing_list = find_list(list_slug) if list_slug is not None else None
    payload = [address.id, mailing_list.id if mailing_list else 0]
    if campaign:
        payload.append(campaign)
    return _serializer().dumps(payload)


# The last character of a base64 part of length 4k+2 carries 4 spare bits, of length 4k+3
# carries 2: in the canonical spelling they are zero, which leaves these characters.
_CANONICAL_LAST = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


def _canonical(token: str) -> bool:
    """Whether each part is in canonical base64url.

    The last character of a base64 signature carries spare bits that decoding ignores, so two
    spellings would verify alike; refusing every spelling but one means any changed character
    makes a token invalid (R-OC-3).
    """
    if not _BASE64URL.fullmatch(token):
        return False
    for part in token.split("."):
        remainder = len(part) % 4
        allowed = _CANONICAL_LAST.get(remainder)
        if remainder == 1 or (allowed is not None and part[-1] not in allowed):
            return False
    return True


@dataclass(frozen=True)
class LinkIds:
    """What a token says, unchecked against the database: ``list_id`` 0 means all mail."""

    address_id: int
    list_id: int
    campaign: str | None


def decode(token: str) -> LinkIds:
    """The ids a genuine token carries; InvalidToken for anything else, whatever was wrong."""
    if not _canonical(token):
        raise InvalidToken("invalid token")
    try:
        address_id, list_id, *rest = _serializer().loads(token)
        address_id, list_id = int(address_id), int(list_id)
    except (BadSignature, TypeError, ValueError):
        raise InvalidToken("invalid token") from None
    campaign = rest[0] if rest and isinstance(rest[0], str) else None
    return LinkIds(address_id, list_id, campaign)


def read(token: str) -> LinkTarget:
    """The target a genuine token names; InvalidToken for anything else, whatever was wrong."""
    ids = decode(token)
    return _target(ids.address_id, ids.list_id, ids.campaign)


def mailto_token(email: str, list_slug: str | None = None) -> str:
    """A token for the ``unsub+TOKEN@`` mailbox: lower-case base32, about 26 characters.

    Mail systems may lower-case a local part and RFC 5321 caps it at 64 octets, so the page
    token (case-sensitive, longer) does not fit there. This one packs the two ids as varints
    with an HMAC-SHA-256 cut to MAILTO_MAC_BYTES, under its own key derivation.
    """
    address = ensure_address(email)
    list_id = find_list(list_slug).id if list_slug is not None else 0
    body = _varint(address.id) + _varint(list_id)
    signed = body + _mailto_mac(current_app.config["SECRET_KEY"], body)
    return base64.b32encode(signed).decode().rstrip("=").lower()


def read_mailto(token: str) -> LinkTarget:
    """The target of a mailto token, whatever its case; InvalidToken for anything else."""
    try:
        signed = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    except (binascii.Error, ValueError):
        raise InvalidToken("invalid token") from None
    if base64.b32encode(signed).decode().rstrip("=") != token.upper():
        raise InvalidToken("invalid token")  # spare bits set: one spelling only (R-OC-3)
    body, mac = signed[:-MAILTO_MAC_BYTES], signed[-MAILTO_MAC_BYTES:]
    config = current_app.config
    keys = [config["SECRET_KEY"], *config["OLD_SECRET_KEYS"]]
    if not body or not any(hmac.compare_digest(mac, _mailto_mac(key, body)) for key in keys):
        raise InvalidToken("invalid token")
    address_id, list_id = _read_varints(body)
    return _target(address_id, list_id, None)


def _mailto_mac(key: str, body: bytes) -> bytes:
    derived = hmac.new(key.encode(), MAILTO_SALT, hashlib.sha256).digest()
    return hmac.new(derived, body, hashlib.sha256).digest()[:MAILTO_MAC_BYTES]


def _varint(number: int) -> bytes:
    """Unsigned LEB128: small ids take one byte, large ones grow as needed."""
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _read_varints(data: bytes) -> tuple[int, int]:
    numbers, value, shift = [], 0, 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            numbers.append(value)
            value, shift = 0, 0
    if len(numbers) != 2 or shift:
        raise InvalidToken("invalid token")
    return numbers[0], numbers[1]


def page_url(token: str) -> str:
    base_url = current_app.config["BASE_URL"]
    if not base_url.startswith("https://") and not (current_app.debug or current_app.testing):
        raise InsecureBaseURL(
            f"SUPPRESS_BASE_URL is {base_url!r}: one-click unsubscribe needs an https:// URL"
        )
    return f"{base_url}/u/{token}"


def unsubscribe_link(
    email: str, list_slug: str | None = None, campaign: str | None = None
) -> UnsubscribeLink:
    """The page URL and both headers for one message (RFC 2369 §3.2, RFC 8058 §3.1).

    The https URI comes first, as one-click requires; a mailto URI follows when a mailto domain
    is configured, for clients that only mail (R-OC-13).
    """
    url = page_url(mint(email, list_slug, campaign))
    uris = [f"<{url}>"]
    mailto_domain = current_app.config["MAILTO_DOMAIN"]
    if mailto_domain:
        local_part = f"unsub+{mailto_token(email, list_slug)}"
        uris.append(f"<mailto:{local_part}@{mailto_domain}?subject=unsubscribe>")
    return UnsubscribeLink(url=url, list_unsubscribe=", ".join(uris))
