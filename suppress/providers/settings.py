"""The coercers of providers' settings (``SETTINGS`` and ``API_SETTINGS``), and the REQUIRED
default; ``Provider`` reads the settings with them."""

from typing import Any

from suppress.config import http_url, text

REQUIRED = object()
"""A setting default meaning: must be set whenever the provider is enabled."""


def secrets_list(value: Any) -> tuple[str, ...]:
    """Comma-separated secrets, so a key can rotate: the new one verifies beside the old."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    secrets = tuple(item.strip() for item in items if item.strip())
    if not secrets:
        raise ValueError("expected one or more comma-separated secrets")
    return secrets


def credentials_list(value: Any) -> tuple[tuple[str, str], ...]:
    """Comma-separated ``user:password`` pairs (a password may itself hold a colon)."""
    pairs = []
    for item in secrets_list(value):
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise ValueError("expected user:password")
        pairs.append((user, password))
    return tuple(pairs)


# The coercers providers' settings share with the service's own.
url = http_url


def flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = text(value).lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def seconds(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError("expected a whole number of seconds") from None
    if number < 1:
        raise ValueError("expected a whole number of seconds, at least 1")
    return number


def slug_map(value: Any) -> dict[str, str]:
    """``slug=id,slug=id``: our list slugs and the provider's ids for the same lists."""
    pairs = {}
    for item in secrets_list(value):
        slug, sep, ref = (part.strip() for part in item.partition("="))
        if not sep or not slug or not ref:
            raise ValueError("expected slug=id pairs separated by commas")
        pairs[slug] = ref
    return pairs
