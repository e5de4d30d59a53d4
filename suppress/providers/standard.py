"""Standard Webhooks (standardwebhooks.com, specification v1.0.0): any sender that signs that way.

The module owns two things. :func:`check_signature` is the specification's signature scheme for a
given header family, so Svix-based providers (``resend``) verify with ``prefix="svix"`` through
the same code. :class:`Standard` is a generic receiver whose vocabulary is configuration: the
operator maps the sender's event names to ours and says where the recipient sits in the JSON.
Like every provider it turns requests into Events and stores nothing.
"""

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from werkzeug.datastructures import Headers

from suppress.config import Setting, text
from suppress.providers.base import Provider
from suppress.providers.credentials import same
from suppress.providers.delivery import Delivery, Event, Malformed, Rejected, load_json
from suppress.providers.fields import from_epoch, from_iso, sender_of
from suppress.providers.settings import REQUIRED, seconds, secrets_list
from suppress.vocabulary import EVENT_TYPES, REPORTED_BOUNCE_CLASSES

# Spec "Verifying signatures": the reference libraries allow five minutes either way.
DEFAULT_TOLERANCE_SECONDS = 300
# Spec "Signature scheme", secret serialisation: HMAC secrets and ed25519 public keys.
SECRET_PREFIX = "whsec_"
PUBLIC_KEY_PREFIX = "whpk_"
# Spec "Webhook headers"; Svix sends the same headers as svix-* (docs.svix.com, "Verifying
# webhooks manually"), and white-labelled Svix senders use webhook-*.
HEADER_FAMILIES = ("webhook", "svix")
DEFAULT_RECIPIENT_PATH = "data.email"
# Spec "Payload structure" fixes no field for the sender; Svix-style email senders (Resend's
# "Event Types") put the From address at data.from beside the recipient.
DEFAULT_SENDER_PATH = "data.from"


@dataclass(frozen=True)
class HmacKey:
    """A symmetric secret; spec "Signature scheme": ``v1`` = base64 HMAC-SHA256."""

    secret: bytes
    version: ClassVar[str] = "v1"

    def matches(self, content: bytes, signature: bytes) -> bool:
        return same(hmac.new(self.secret, content, hashlib.sha256).digest(), signature)


@dataclass(frozen=True)
class Ed25519Key:
    """A sender's public key; spec "Signature scheme": ``v1a`` = base64 ed25519 signature."""

    key: Ed25519PublicKey
    version: ClassVar[str] = "v1a"

    def matches(self, content: bytes, signature: bytes) -> bool:
        try:
            self.key.verify(signature, content)
        except InvalidSignature:
            return False
        return True


SigningKey = HmacKey | Ed25519Key


def signing_keys(value: Any) -> tuple[SigningKey, ...]:
    """Comma-separated ``whsec_…`` secrets and ``whpk_…`` public keys, decoded once at start-up.

    Several keys verify side by side while the sender rotates one (spec "Webhook headers").
    """
    return tuple(_signing_key(item) for item in secrets_list(value))


def _signing_key(item: str) -> SigningKey:
    if item.startswith(PUBLIC_KEY_PREFIX):
        try:
            return Ed25519Key(
                Ed25519PublicKey.from_public_bytes(_base64(item.removeprefix(PUBLIC_KEY_PREFIX)))
            )
        except ValueError:
            raise ValueError("a whpk_ key must hold a base64 ed25519 public key") from None
    return HmacKey(_base64(item.removeprefix(SECRET_PREFIX)))


def _base64(encoded: str) -> bytes:
    """Decode base64 with or without its padding, as the reference libraries do."""
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError("expected whsec_ followed by base64") from None
    if not decoded:
        raise ValueError("expected whsec_ followed by base64")
    return decoded


def header_family(headers: Headers) -> str:
    """``webhook`` when the request carries ``webhook-id``, else ``svix``."""
    return next((family for family in HEADER_FAMILIES if f"{family}-id" in headers), "svix")


def check_signature(
    delivery: Delivery,
    keys: Iterable[SigningKey],
    *,
    prefix: str,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> str:
    """Raise Rejected unless one ``<prefix>-signature`` entry matches a key; return the message id.

    Spec "Signature scheme": the signed content is ``id.timestamp.raw body``; the header lists
    space-separated ``version,base64`` entries and one match is enough. The timestamp is the
    attempt's (a retry gets a new one), so a replay older than ``tolerance`` fails.
    """
    headers = delivery.headers
    message_id = headers.get(f"{prefix}-id", "")
    stamp = headers.get(f"{prefix}-timestamp", "")
    signatures = headers.get(f"{prefix}-signature", "")
    if not (message_id and stamp and signatures):
        raise Rejected(f"missing {prefix}-id, {prefix}-timestamp or {prefix}-signature")
    # Spec "Signature scheme": an id holding a full stop could shift where the body starts.
    if "." in message_id:
        raise Rejected(f"{prefix}-id holds a full stop")
    _check_fresh(stamp, tolerance)
    content = b".".join((message_id.encode(), stamp.encode(), delivery.body))
    keys = tuple(keys)
    if not any(_entry_matches(entry, keys, content) for entry in signatures.split()):
        raise Rejected(f"no {prefix}-signature entry matches")
    return message_id


def _check_fresh(stamp: str, tolerance: int) -> None:
    if not (stamp.isascii() and stamp.isdigit()):
        raise Rejected("the timestamp is not whole Unix seconds")
    if abs(time.time() - int(stamp)) > tolerance:
        raise Rejected("the timestamp is outside the tolerance")


def _entry_matches(entry: str, keys: tuple[SigningKey, ...], content: bytes) -> bool:
    version, _, encoded = entry.partition(",")
    try:
        signature = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return False
    return any(key.matches(content, signature) for key in keys if key.version == version)


def event_map(value: Any) -> dict[str, tuple[str, str | None]]:
    """``type=normalised`` pairs, comma-separated, e.g. ``email.bounced=bounced:hard``.

    The normalised side is one of the service's event types; ``bounced`` takes ``:hard`` or
    ``:soft`` and is hard without one.
    """
    mapping = {}
    for item in secrets_list(value):
        raw_type, sep, target = (part.strip() for part in item.partition("="))
        kind, _, bounce_class = target.partition(":")
        if not sep or not raw_type or kind not in EVENT_TYPES:
            raise ValueError(f"expected type=one of {', '.join(EVENT_TYPES)}, got {item!r}")
        if kind == "bounced":
            bounce_class = bounce_class or "hard"
            if bounce_class not in REPORTED_BOUNCE_CLASSES:
                raise ValueError(f"a bounce class is hard or soft, got {item!r}")
        elif bounce_class:
            raise ValueError(f"only bounced takes a :hard or :soft class, got {item!r}")
        mapping[raw_type] = (kind, bounce_class or None)
    return mapping


def dotted_path(value: Any) -> str:
    """A path such as ``data.email`` or ``data.to.0``: object keys and list indexes."""
    path = text(value)
    if any(not step for step in path.split(".")):
        raise ValueError("expected names separated by single full stops, e.g. data.email")
    return path


class Standard(Provider):
    slug = "standard"
    name = "Standard Webhooks"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "WEBHOOK_SECRET": Setting(
            REQUIRED,
            signing_keys,
            "The sender's signing secret(s), `whsec_…` (or `whpk_…` public keys), comma-separated.",
        ),
        "WEBHOOK_TOLERANCE_SECONDS": Setting(
            DEFAULT_TOLERANCE_SECONDS,
            seconds,
            "How far `webhook-timestamp` may be from now, either way, before a request is refused.",
        ),
        "EVENT_MAP": Setting(
            {},
            event_map,
            "The sender's event types as ours, `type=normalised,…`; `bounced:soft` sets the "
            "class (plain `bounced` is hard); unlisted types are kept as `unknown`.",
        ),
        "RECIPIENT_PATH": Setting(
            DEFAULT_RECIPIENT_PATH,
            dotted_path,
            "Dotted path to the recipient in the JSON body; a list there gives one event each.",
        ),
        "SENDER_PATH": Setting(
            DEFAULT_SENDER_PATH,
            dotted_path,
            "Dotted path to the sender (the From address) in the JSON body; events without "
            "one there are kept without a sending domain.",
        ),
    }

    def verify(self, delivery: Delivery) -> None:
        check_signature(
            delivery,
            self.settings["WEBHOOK_SECRET"],
            prefix=header_family(delivery.headers),
            tolerance=self.settings["WEBHOOK_TOLERANCE_SECONDS"],
        )

    def parse(self, delivery: Delivery) -> list[Event]:
        document = load_json(delivery.body)
        # Spec "Payload structure": a full-stop delimited `type` names the event.
        if not isinstance(document, dict) or not isinstance(document.get("type"), str):
            raise Malformed("expected a JSON object with a string type")
        raw_type = document["type"]
        kind, bounce_class = self.settings["EVENT_MAP"].get(raw_type, ("unknown", None))
        recipients = self._recipients(document, kind)
        family = header_family(delivery.headers)
        message_id = delivery.headers[f"{family}-id"]
        occurred_at = _event_time(document, delivery.headers[f"{family}-timestamp"])
        sender = sender_of(_follow(document, self.settings["SENDER_PATH"].split(".")))
        return [
            Event(
                provider=self.slug,
                provider_event_id=fanned_id(message_id, recipient, len(recipients)),
                type=kind,
                recipient=recipient,
                occurred_at=occurred_at,
                raw_type=raw_type,
                bounce_class=bounce_class,
                sender=sender,
            )
            for recipient in recipients
        ]

    def _recipients(self, document: dict, kind: str) -> list[str | None]:
        path = self.settings["RECIPIENT_PATH"]
        value = _follow(document, path.split("."))
        if _is_text(value):
            return [value]
        if isinstance(value, list) and value and all(_is_text(item) for item in value):
            return list(value)
        if kind == "unknown":
            return [None]
        raise Malformed(f"no recipient address at {path}")


def _follow(value: Any, steps: list[str]) -> Any:
    for step in steps:
        if isinstance(value, dict):
            value = value.get(step)
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return None
    return value


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _event_time(document: dict, attempt_stamp: str) -> datetime:
    """Spec "Payload structure": ``timestamp`` is when the event happened.

    A sender that leaves it out gets the attempt's ``webhook-timestamp``, the nearest time known.
    """
    moment = document.get("timestamp")
    if moment is None:
        return from_epoch(attempt_stamp)
    if isinstance(moment, (int, float)) and not isinstance(moment, bool):
        return from_epoch(moment)
    return from_iso(moment)


def fanned_id(message_id: str, recipient: str | None, count: int) -> str:
    """PROVIDERS.md §0 Fan-out: a multi-recipient event's id is ``<provider id>:<recipient>``."""
    return f"{message_id}:{recipient}" if count > 1 else message_id
