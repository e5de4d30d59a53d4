"""The service's settings: one table of defaults, overridden by ``SUPPRESS_*`` variables.

Every setting is named once in :data:`DEFAULTS` with its type and a line of documentation; the
README's configuration table lists the same keys (a test keeps the two in step). Values are
coerced to their types when the app starts, and a bad value stops the start with a message that
names the variable, so a typo never becomes a silent default. Secrets have no fallback here: a
missing secret key is generated once into the instance folder, never written into code.
"""

import logging
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import idna
from flask import Config

ENV_PREFIX = "SUPPRESS"
LANGUAGES = ("fi", "sv", "en")
SECRET_KEY_FILE = "secret_key"


class ConfigError(ValueError):
    """A setting is missing or has a value of the wrong type; the message names the variable."""


@dataclass(frozen=True)
class Setting:
    default: Any
    coerce: Callable[[Any], Any]
    doc: str


def text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return value.strip()


def _optional_text(value: Any) -> str | None:
    return None if value in (None, "") else text(value)


def _positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a whole number")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError("expected a whole number") from None
    if number < 1:
        raise ValueError("expected a whole number of at least 1")
    return number


def _non_negative_int(value: Any) -> int:
    return 0 if str(value).strip() == "0" else _positive_int(value)


def _items(value: Any) -> list[str]:
    """Comma-separated values as given (case kept: secret keys are case-sensitive)."""
    if isinstance(value, (list, tuple, set, frozenset)):
        return [str(item).strip() for item in value if str(item).strip()]
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    raise ValueError("expected a comma-separated list")


def _secret_keys(value: Any) -> tuple[str, ...]:
    return tuple(_items(value))


def _word_list(value: Any) -> frozenset[str]:
    """Comma-separated words, lower-cased: operators write ``info,myynti`` in a variable."""
    return frozenset(item.lower() for item in _items(value))


def _domain_list(value: Any) -> frozenset[str]:
    """Domains as addresses store them: lower-case ASCII, so ``äö.fi`` matches ``xn--...``."""
    try:
        return frozenset(idna.encode(domain, uts46=True).decode() for domain in _word_list(value))
    except idna.IDNAError as error:
        raise ValueError(f"not a domain name: {error}") from None


def _optional_domain(value: Any) -> str | None:
    if value in (None, ""):
        return None
    domains = _domain_list(value)
    if len(domains) != 1:
        raise ValueError("expected one domain name")
    return next(iter(domains))


def _language(value: Any) -> str:
    language = text(value).lower()
    if language not in LANGUAGES:
        raise ValueError(f"expected one of {', '.join(LANGUAGES)}")
    return language


def _database_url(value: Any) -> str:
    url = text(value)
    scheme = url.split(":", 1)[0]
    if not scheme.startswith(("sqlite", "postgresql")):
        raise ValueError("expected a sqlite:/// or postgresql+psycopg:// URL")
    return url


def http_url(value: Any) -> str:
    url = text(value).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http:// or https:// URL")
    return url


def _bind(value: Any) -> str:
    bind = text(value)
    if not bind.startswith("unix:"):
        host, sep, port = bind.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected HOST:PORT or unix:PATH")
    return bind


def _sqlite_synchronous(value: Any) -> str:
    mode = text(value).upper()
    if mode not in ("NORMAL", "FULL"):
        raise ValueError("expected normal or full")
    return mode


def _log_level(value: Any) -> str:
    level = text(value).upper()
    if level not in logging.getLevelNamesMapping():
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return level


DEFAULTS: dict[str, Setting] = {
    "DATABASE_URL": Setting(
        "sqlite:///suppress.db",
        _database_url,
        "Database. A relative SQLite path lives in `instance/`; "
        "`postgresql+psycopg://user:password@host/db` for PostgreSQL.",
    ),
    "SECRET_KEY": Setting(
        None,
        _optional_text,
        "Signs sessions and tokens. Generated once into `instance/secret_key` when unset.",
    ),
    "OLD_SECRET_KEYS": Setting(
        (),
        _secret_keys,
        "Earlier secret keys (comma-separated): links signed with them keep working.",
    ),
    "BASE_URL": Setting(
        "http://127.0.0.1:8000",
        http_url,
        "The public URL of the service, used in the links it mints.",
    ),
    "BIND": Setting("127.0.0.1:8000", _bind, "Where gunicorn listens (`HOST:PORT`)."),
    "WORKERS": Setting(2, _positive_int, "gunicorn worker processes."),
    "SQLITE_BUSY_TIMEOUT_MS": Setting(
        5000,
        _positive_int,
        "How long a SQLite writer waits for the lock before giving up, in milliseconds.",
    ),
    "SQLITE_SYNCHRONOUS": Setting(
        "normal",
        _sqlite_synchronous,
        "SQLite durability. `normal`: a committed change survives the service or a worker "
        "crashing, but the last moments of commits can roll back if the machine loses power. "
        "`full`: they survive that too, at about half the write throughput.",
    ),
    "IMPORT_BATCH_SIZE": Setting(20000, _positive_int, "Rows an import writes per transaction."),
    "ROLE_LOCAL_PARTS": Setting(
        frozenset(),
        _word_list,
        "Extra role local parts (comma-separated), added to the built-in Finnish, Swedish "
        "and English ones (`info`, `myynti`, `asiakaspalvelu`, …).",
    ),
    "CONSUMER_DOMAINS": Setting(
        frozenset(),
        _domain_list,
        "Extra consumer mail domains (comma-separated), added to the built-in ones "
        "(`gmail.com`, `luukku.com`, `suomi24.fi`, …).",
    ),
    "MAILTO_DOMAIN": Setting(
        None,
        _optional_domain,
        "Domain whose `unsub+TOKEN@` mailbox reaches the inbound mail handler; when set, "
        "links carry a `mailto:` alternative.",
    ),
    "CONTROLLER_NAME": Setting(
        None,
        _optional_text,
        "Who sends the mail (the data controller), as the unsubscribe pages name it.",
    ),
    "CONTROLLER_CONTACT": Setting(
        None,
        _optional_text,
        "How to reach the controller (an email address or URL), shown on the pages.",
    ),
    "DEFAULT_LANGUAGE": Setting(
        "fi", _language, "Page language when neither the link nor the browser says: fi, sv or en."
    ),
    "INBOUND_USERNAME": Setting(
        None,
        _optional_text,
        "HTTP Basic user name an inbound mail route sends to `POST /inbound/mail`; "
        "set together with the password.",
    ),
    "INBOUND_PASSWORD": Setting(
        None,
        _optional_text,
        "HTTP Basic password for `POST /inbound/mail`; while unset, the route answers 503.",
    ),
    "WEBHOOK_PROVIDERS": Setting(
        frozenset(),
        _word_list,
        "Providers whose webhooks are received (comma-separated slugs). Setting any of a "
        "provider's `SUPPRESS_<SLUG>_*` variables enables it too.",
    ),
    "WEBHOOK_MAX_BYTES": Setting(
        5_000_000, _positive_int, "Largest webhook body accepted; a larger one is answered 413."
    ),
    "SOFT_BOUNCE_LIMIT": Setting(
        3, _positive_int, "Soft bounces, with no delivery between, that suppress an address."
    ),
    "SOFT_BOUNCE_WINDOW_DAYS": Setting(
        30, _positive_int, "The days within which those soft bounces must fall."
    ),
    "SOFT_BOUNCE_SUPPRESSION_DAYS": Setting(
        30, _positive_int, "How long a soft-bounce suppression lasts, in days."
    ),
    "MACHINE_OPEN_SECONDS": Setting(
        10,
        _positive_int,
        "An open or click this soon after delivery is taken as a proxy or scanner, not a person.",
    ),
    "SENDER_DOMAIN": Setting(
        None,
        _optional_domain,
        "Sending domain that `events rates` counts an event under when its provider reports "
        "no sender (SendGrid, Mailjet, Mailchimp; Postmark and Brevo deliveries).",
    ),
    "SYNC_MAX_LAG": Setting(
        24 * 60 * 60,
        _positive_int,
        "Seconds a suppression may wait for a destination to accept it before /healthz turns 503.",
    ),
    "SYNC_TIMEOUT": Setting(
        30, _positive_int, "Seconds the sync job waits for a provider's API to answer a call."
    ),
    "SYNC_RETRIES": Setting(
        5,
        _non_negative_int,
        "Retries of a provider call that got 429, 5xx or no answer, honouring Retry-After.",
    ),
    "LOG_LEVEL": Setting("INFO", _log_level, "Log level: DEBUG, INFO, WARNING or ERROR."),
}


def load_into(config: Config, overrides: Mapping[str, Any] | None = None) -> None:
    """Fill ``config`` from the defaults, then ``SUPPRESS_*`` variables, then ``overrides``.

    Variables are read as plain strings (not JSON) so that a secret such as ``123`` stays the
    string it is; each known setting is then coerced by its own rule. Unknown ``SUPPRESS_*``
    variables are kept as strings for the modules that own them (provider secrets).
    """
    config.from_prefixed_env(ENV_PREFIX, loads=str)
    config.update(overrides or {})
    config.update(coerce(config))


def coerce(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting with its typed value; raises ConfigError naming the first bad variable."""
    settled = {}
    for key, setting in DEFAULTS.items():
        raw = values.get(key, setting.default)
        try:
            settled[key] = setting.coerce(raw) if raw is not None else None
        except ValueError as error:
            raise ConfigError(f"{ENV_PREFIX}_{key}: {error} (got {raw!r})") from None
    return settled


def secret_key_from(instance_path: str) -> str:
    """The instance's generated secret key, created on first use.

    The key is written to a temporary file and linked into place, so gunicorn workers that start
    together all end up reading the same key.
    """
    folder = Path(instance_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SECRET_KEY_FILE
    if not path.exists():
        draft = folder / f".{SECRET_KEY_FILE}.{os.getpid()}"
        draft.write_text(secrets.token_urlsafe(48))
        draft.chmod(0o600)
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    key = path.read_text().strip()
    if not key:
        raise ConfigError(f"{path} is empty: delete it or set {ENV_PREFIX}_SECRET_KEY")
    return key
