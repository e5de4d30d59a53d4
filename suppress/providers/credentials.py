"""Checking the credentials a webhook request presents: constant-time comparison of secrets,
HTTP Basic auth. Settings that hold the accepted secrets are read by ``settings``."""

import base64
import binascii
import hmac
from collections.abc import Iterable

from werkzeug.datastructures import Headers

from suppress.providers.delivery import Rejected


def same(given: str | bytes, expected: str | bytes) -> bool:
    """Constant-time comparison of two secrets, whatever their types."""
    if isinstance(given, str):
        given = given.encode()
    if isinstance(expected, str):
        expected = expected.encode()
    return hmac.compare_digest(given, expected)


def basic_auth(headers: Headers) -> tuple[str, str] | None:
    """The user and password of an ``Authorization: Basic`` header, None when absent or bad."""
    scheme, _, encoded = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def check_basic_auth(
    headers: Headers, accepted: Iterable[tuple[str, str]], *, realm: str, status: int = 401
) -> None:
    """Raise Rejected (with a Basic challenge) unless the request carries accepted credentials.

    Every accepted pair is compared, so the time taken does not tell which user name exists.
    """
    given = basic_auth(headers)
    matched = False
    for user, password in accepted:
        if given is not None:
            matched |= same(given[0], user) & same(given[1], password)
    if not matched:
        challenge = {"WWW-Authenticate": f'Basic realm="{realm}"'}
        raise Rejected("missing or wrong credentials", status=status, headers=challenge)
