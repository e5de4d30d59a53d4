"""AWS Signature Version 4 for the calls the sync job makes to AWS APIs (Amazon SES API v2).

A ``requests`` auth class, so that AWS calls go through the same ``Api`` session, retries and
errors as every other provider's. It follows the IAM User Guide, "Create a
signed AWS API request": a canonical request, a string to sign over its hash, and a key derived
from the secret for the day, region and service. Written here rather than taken from botocore,
which would bring four packages (and a ``python-dateutil<3`` pin) for this one function.
"""

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, urlsplit

from requests import PreparedRequest
from requests.auth import AuthBase

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# Signed besides Host and X-Amz-Date: the body's type, so that nobody can relabel a signed body.
SIGNED_HEADERS = ("content-type",)
# RFC 3986 unreserved characters, the only ones SigV4 leaves unencoded.
UNRESERVED = "-_.~"


def canonical_path(path: str) -> str:
    """The path as sent, encoded once more: every service but S3 signs each segment encoded
    twice ("Create a signed AWS API request", step 1), and the path on the wire is already
    encoded once."""
    return quote(path or "/", safe="/" + UNRESERVED)


def canonical_query(query: str) -> str:
    """Parameters sorted by name, then value, each name and value encoded once."""
    pairs = sorted(
        (quote(name, safe=UNRESERVED), quote(value, safe=UNRESERVED))
        for name, value in parse_qsl(query, keep_blank_values=True)
    )
    return "&".join(f"{name}={value}" for name, value in pairs)


def signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (day, region, service, TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def authorization(
    *,
    access_key_id: str,
    secret_access_key: str,
    region: str,
    service: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    stamp: str,
) -> str:
    """The ``Authorization`` header for a request whose ``headers`` hold (lower-case names)
    ``host``, ``x-amz-date`` = ``stamp`` and whatever else is to be signed."""
    parts = urlsplit(url)
    names = sorted(headers)
    canonical = "\n".join(
        [
            method.upper(),
            canonical_path(parts.path),
            canonical_query(parts.query),
            *(f"{name}:{' '.join(headers[name].split())}" for name in names),
            "",
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{stamp[:8]}/{region}/{service}/{TERMINATOR}"
    string_to_sign = "\n".join(
        [ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = signing_key(secret_access_key, stamp[:8], region, service)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"{ALGORITHM} Credential={access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )


class SigV4(AuthBase):
    """Signs each request as it is prepared. urllib3's retries re-send the same signature, which
    AWS accepts for five minutes after its X-Amz-Date ("Elements of an AWS API request
    signature")."""

    def __init__(self, access_key_id: str, secret_access_key: str, region: str, service: str):
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.region = region
        self.service = service

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        stamp = datetime.now(UTC).strftime(STAMP_FORMAT)
        request.headers["X-Amz-Date"] = stamp
        body = request.body or b""
        signed = {
            "host": urlsplit(request.url).netloc.lower(),
            "x-amz-date": stamp,
            **{name: request.headers[name] for name in SIGNED_HEADERS if name in request.headers},
        }
        request.headers["Authorization"] = authorization(
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            region=self.region,
            service=self.service,
            method=request.method or "GET",
            url=request.url or "",
            headers=signed,
            body=body.encode() if isinstance(body, str) else body,
            stamp=stamp,
        )
        return request
