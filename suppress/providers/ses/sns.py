"""Amazon SNS's HTTPS envelope as SES events arrive in it: reading it, what its signature
covers, and where its certificates and subscription URLs may come from (SNS "Verifying the
signatures of Amazon SNS messages"). Knows nothing of SES records.
"""

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from suppress.providers.delivery import Malformed, Rejected, load_json
from suppress.providers.settings import secrets_list

# SNS "Verifying the signature of an Amazon SNS message": the fields signed, in this order; a
# field is left out when the message does not carry it (only Subject ever is).
CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn")
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (*CONFIRMATION_FIELDS, "Type"),
    "UnsubscribeConfirmation": (*CONFIRMATION_FIELDS, "Type"),
}
OPTIONAL_SIGNED_FIELDS = frozenset({"Subject"})
# SNS "Verifying the signatures": SignatureVersion 1 hashes with SHA1, 2 with SHA256.
SIGNATURE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
# SNS "HTTP/HTTPS headers": what SNS says in headers must match what it signed in the body.
HEADER_FIELDS = {"x-amz-sns-message-type": "Type", "x-amz-sns-message-id": "MessageId"}
TOPIC_HEADER = "x-amz-sns-topic-arn"

TOPIC_ARN = re.compile(r"arn:(aws|aws-cn|aws-us-gov):sns:([a-z0-9-]+):(\d{12}):([\w.-]+)")
# SNS endpoints per partition: sns.<region>.amazonaws.com, and .amazonaws.com.cn in China.
SNS_DOMAINS = {"aws": "amazonaws.com", "aws-us-gov": "amazonaws.com", "aws-cn": "amazonaws.com.cn"}
# The notification SES publishes right after an event destination is added (SES event
# publishing set-up); its Message is this plain sentence, not JSON.
VALIDATION_NOTICE = "Successfully validated SNS topic"
FETCH_TIMEOUT_SECONDS = 10


def topic_arns(value: Any) -> tuple[str, ...]:
    """Comma-separated SNS topic ARNs; each must name a region, which pins its certificates."""
    arns = secrets_list(value)
    for arn in arns:
        if not TOPIC_ARN.fullmatch(arn):
            raise ValueError(f"not an SNS topic ARN: {arn!r}")
    return arns


def fetch(address: str) -> bytes:
    """The body at ``address``; redirects are refused so the host that was checked is the one
    that answers. Network errors propagate: the request is answered 5xx and SNS retries."""
    response = requests.get(address, timeout=FETCH_TIMEOUT_SECONDS, allow_redirects=False)
    if response.status_code != 200:
        raise requests.HTTPError(f"{address} answered {response.status_code}", response=response)
    return response.content


def pinned_url(address: Any, topic_arn: str) -> str:
    """``address`` when it is https on SNS's own host in the topic's region; Rejected otherwise.

    A certificate or subscription URL anywhere else could be an attacker's (SNS "Verifying the
    signatures": the certificate must come from SNS over HTTPS).
    """
    match = TOPIC_ARN.fullmatch(topic_arn)
    if match is None or not isinstance(address, str):
        raise Rejected("no SNS URL to check", status=403)
    partition, region = match.group(1), match.group(2)
    expected = f"sns.{region}.{SNS_DOMAINS[partition]}"
    try:
        parts = urlsplit(address)
    except ValueError:
        raise Rejected(f"not a URL: {address!r}", status=403) from None
    if parts.scheme != "https" or parts.netloc.lower() != expected:
        raise Rejected(f"SNS URL outside {expected}: {address!r}", status=403)
    return address


def load_signing_key(pem: bytes) -> rsa.RSAPublicKey:
    """The RSA key of a PEM certificate that is valid now; Rejected for anything else."""
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise Rejected("the signing certificate is not a PEM certificate", status=403) from None
    now = datetime.now(UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise Rejected("the signing certificate is not valid now", status=403)
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Rejected("the signing certificate does not hold an RSA key", status=403)
    return key


def string_to_sign(envelope: dict[str, Any]) -> bytes:
    """The bytes SNS signed: ``name\\nvalue\\n`` per signed field, in SNS's order."""
    fields = SIGNED_FIELDS.get(envelope.get("Type"))
    if fields is None:
        raise Rejected(f"not a signed SNS message type: {envelope.get('Type')!r}", status=403)
    lines = []
    for name in fields:
        value = envelope.get(name)
        if value is None and name in OPTIONAL_SIGNED_FIELDS:
            continue
        if not isinstance(value, str):
            raise Rejected(f"the SNS message has no {name}", status=403)
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode()


def load_envelope(body: bytes) -> dict[str, Any]:
    """The SNS envelope; SNS posts JSON as text/plain by default, so the body is read as is."""
    envelope = load_json(body)
    if not isinstance(envelope, dict):
        raise Malformed("the body is not an SNS message object")
    return envelope


def is_validation_notice(envelope: dict[str, Any]) -> bool:
    message = envelope.get("Message")
    return (
        envelope.get("Type") == "Notification"
        and isinstance(message, str)
        and message.startswith(VALIDATION_NOTICE)
    )
