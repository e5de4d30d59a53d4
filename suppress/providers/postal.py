"""Postal (self-hosted, postalserver/postal) webhooks: RSA-signed JSON, one event per request.

Owns Postal's signature check (``X-Postal-Signature-256``, the legacy SHA-1
``X-Postal-Signature`` only from a Postal too old to send the first), the public key formats an
operator can copy out of Postal, and Postal's event vocabulary. Stores nothing; ``events.py``
decides what the events mean.
"""

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from suppress.config import Setting, text
from suppress.providers.base import Provider
from suppress.providers.delivery import Delivery, Event, Malformed, Rejected, Reply, load_json
from suppress.providers.fields import from_epoch, nonblank
from suppress.providers.settings import REQUIRED, url

# Postal docs, Developer > Webhooks (and WebhookEvent::EVENTS in Postal's source).
EVENT_TYPES: dict[str, str] = {
    "MessageSent": "delivered",  # status Sent: the receiving server accepted it
    "MessageDelayed": "deferred",  # status SoftFail, sent again on every further delay
    "MessageDeliveryFailed": "bounced",  # status HardFail: will not be retried
    "MessageHeld": "dropped",  # status Held: Postal kept it back (limits, suppression, spam)
    "MessageBounced": "bounced",  # a bounce message arrived for a message that was accepted
    "MessageLinkClicked": "clicked",
    "MessageLoaded": "opened",  # the open-tracking pixel was loaded
    "DomainDNSError": "unknown",  # about our DNS, not a recipient
    "SendLimitApproaching": "unknown",
    "SendLimitExceeded": "unknown",
}
# Postal reports no bounce class: a failure it will not retry and a bounce message after
# acceptance are both taken as hard (PROVIDERS.md postal); events.py still reads diagnostic
# for sender-side blocks (RULES.md R-MBP-6).
BOUNCE_CLASS = "hard"
# Postal docs, Webhooks "Verifying signatures".
SIGNATURE_HEADERS: tuple[tuple[str, type[hashes.HashAlgorithm]], ...] = (
    ("X-Postal-Signature-256", hashes.SHA256),
    ("X-Postal-Signature", hashes.SHA1),
)
PEM_BLOCK = re.compile(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


def rsa_key(key: Any) -> rsa.RSAPublicKey:
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("expected an RSA public key")
    return key


def base64url_int(value: Any) -> int:
    if not isinstance(value, str):
        raise ValueError("a JWK is missing n or e")
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def jwk_keys(document: Any) -> list[rsa.RSAPublicKey]:
    """Keys from Postal's ``/.well-known/jwks.json`` (a key set) or one JWK out of it."""
    items = document.get("keys") if isinstance(document, dict) else None
    jwks = items if isinstance(items, list) else [document]
    keys = []
    for jwk in jwks:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
            raise ValueError("expected RSA keys in the JWK set")
        numbers = rsa.RSAPublicNumbers(base64url_int(jwk.get("e")), base64url_int(jwk.get("n")))
        keys.append(numbers.public_key())
    return keys


def public_keys(value: Any) -> tuple[rsa.RSAPublicKey, ...]:
    """Postal's signing key as an operator can copy it: the JWK set Postal publishes, PEM, or
    the bare base64 DER older Postal versions show (anymail wraps it the same way). Several
    keys (PEM blocks, comma-separated base64, a key set) verify side by side during rotation."""
    source = text(value)
    try:
        if source.startswith("{"):
            keys = jwk_keys(json.loads(source))
        elif "-----BEGIN" in source:
            keys = [load_pem_public_key(block.encode()) for block in PEM_BLOCK.findall(source)]
        else:
            keys = [
                load_der_public_key(base64.b64decode("".join(part.split()), validate=True))
                for part in source.split(",")
                if part.strip()
            ]
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise ValueError(f"not a public key (PEM, base64 DER or JWK): {error}") from None
    if not keys:
        raise ValueError("no public key found")
    return tuple(rsa_key(key) for key in keys)


def message_of(payload: dict[str, Any], name: str) -> dict[str, Any] | None:
    message = payload.get(name)
    if message is None:
        return None
    if not isinstance(message, dict):
        raise Malformed(f"the payload's {name} is not an object")
    return message


def read_envelope(body: bytes) -> tuple[str, str, dict[str, Any], datetime]:
    """Event name, uuid, payload and queue time (Webhooks "Payload envelope")."""
    document = load_json(body)
    if not isinstance(document, dict):
        raise Malformed("the body is not a Postal webhook object")
    raw_type, request_id = document.get("event"), document.get("uuid")
    payload = document.get("payload")
    if not isinstance(raw_type, str) or not raw_type:
        raise Malformed("the webhook has no event name")
    if not isinstance(request_id, str) or not request_id:
        raise Malformed("the webhook has no uuid")
    if not isinstance(payload, dict):
        raise Malformed("the webhook has no payload object")
    return raw_type, request_id, payload, from_epoch(document.get("timestamp"))


class Postal(Provider):
    slug: ClassVar[str] = "postal"
    name: ClassVar[str] = "Postal"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "WEBHOOK_PUBLIC_KEY": Setting(
            REQUIRED,
            public_keys,
            "Postal's webhook signing key: the JWK set at `/.well-known/jwks.json`, PEM, or the "
            "bare base64 key Postal shows; several (rotation) verify side by side.",
        ),
        "API_KEY": Setting(None, text, "Postal server API key (X-Server-API-Key)."),
        "API_URL": Setting(None, url, "Postal's URL; no default, Postal is self-hosted."),
    }

    def verify(self, delivery: Delivery) -> None:
        """Check the SHA-256 signature when Postal sent one, and then only it: falling back to
        SHA-1 after a bad SHA-256 signature would let a forger choose the weaker hash."""
        for header, algorithm in SIGNATURE_HEADERS:
            given = delivery.headers.get(header)
            if given is not None:
                self.check_signature(delivery.body, given, algorithm())
                return
        raise Rejected("no X-Postal-Signature-256 or X-Postal-Signature header", status=401)

    def handshake(self, delivery: Delivery) -> Reply | None:
        """None: Postal has no set-up request; a new webhook simply starts receiving events."""
        return None

    def parse(self, delivery: Delivery) -> list[Event]:
        raw_type, request_id, payload, queued_at = read_envelope(delivery.body)
        bounce = message_of(payload, "bounce")
        message = message_of(payload, "original_message") or message_of(payload, "message")
        if message is not None and message.get("direction") == "incoming":
            # Postal sends status events for inbound mail too; none of them is about a recipient.
            return []
        kind = EVENT_TYPES.get(raw_type, "unknown")
        # The delivery attempt's or the bounce's own time; clicks and opens have only the time
        # Postal queued the webhook (Webhooks "Payload envelope").
        stamp = (bounce or payload).get("timestamp")
        return [
            Event(
                provider=self.slug,
                provider_event_id=request_id,  # the same on every retry (Webhooks docs)
                type=kind,
                recipient=nonblank(message.get("to")) if message else None,
                occurred_at=queued_at if stamp is None else from_epoch(stamp),
                raw_type=raw_type,
                bounce_class=BOUNCE_CLASS if kind == "bounced" else None,
                diagnostic=nonblank(payload.get("output"))
                or nonblank(payload.get("details"))
                or (nonblank(bounce.get("subject")) if bounce else None),
                message_id=nonblank(message.get("message_id")) if message else None,
                campaign=nonblank(message.get("tag")) if message else None,
                url=nonblank(payload.get("url")),
                ip=nonblank(payload.get("ip_address")),
                user_agent=nonblank(payload.get("user_agent")),
                # Webhooks message object: ``from`` is Postal's mail_from (message_db/message.rb,
                # webhook_hash), the envelope sender it was given; it reports no From header.
                sender=nonblank(message.get("from")) if message else None,
            )
        ]

    def check_signature(self, body: bytes, given: str, algorithm: hashes.HashAlgorithm) -> None:
        try:
            signature = base64.b64decode(given, validate=True)
        except binascii.Error:
            raise Rejected("the Postal signature is not base64", status=403) from None
        for key in self.settings["WEBHOOK_PUBLIC_KEY"]:
            try:
                key.verify(signature, body, padding.PKCS1v15(), algorithm)
            except InvalidSignature:
                continue
            return
        raise Rejected("the Postal signature does not match", status=403)
