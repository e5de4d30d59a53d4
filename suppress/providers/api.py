"""The HTTP client every provider's suppression API is called through.

One ``requests`` session per destination, with a timeout on every call, our User-Agent, and
urllib3 retries on 429, 5xx and broken connections that honour ``Retry-After`` (PROVIDERS.md
§0 Sync). Retrying a POST is safe here because every push is an idempotent upsert. What is
still failing after the retries becomes an :class:`ApiError` that says whether to try the same
work again later (``retry``) or whether the destination itself is wrong (``fatal``: bad
credentials, a scope the account does not have).
"""

import logging
import re
from collections.abc import Collection, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

# Names us to the provider's support staff when they read their logs.
USER_AGENT = "suppress-sync/0.1 (self-hosted suppression list)"
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
# Statuses that say the destination is misconfigured, not that this push went wrong.
FATAL_STATUSES = frozenset({401, 403})
# The first retry waits this long, each next one twice as long (urllib3's backoff factor).
BACKOFF_SECONDS = 0.5
# An address in a path, a query or a provider's error text (per-address endpoints name it, and
# the sync job logs error messages: addresses never go into a log in clear).
ADDRESS = re.compile(r"[^\s/?&=:;,()<>\"']*(?:@|%40)[^\s/?&=:;,()<>\"']*", re.IGNORECASE)
# How much of an error body goes into a message: enough for the provider's reason.
ERROR_TEXT_CHARS = 300


class _Unnamed(logging.Filter):
    """urllib3 logs the URL of a call it retries, and a per-address endpoint's URL names the
    address: its records are rewritten without it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = unnamed(record.getMessage()), ()
        return True


for _logger in ("urllib3.connectionpool", "urllib3.poolmanager", "urllib3.util.retry"):
    logging.getLogger(_logger).addFilter(_Unnamed())


class ApiError(Exception):
    """A call that failed after its retries; ``status`` is None when no answer came."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body

    @property
    def retry(self) -> bool:
        return self.status is None or self.status in RETRIED_STATUSES

    @property
    def fatal(self) -> bool:
        return self.status in FATAL_STATUSES


class _CappedRetry(Retry):
    """urllib3's Retry, with a provider's ``Retry-After`` capped: a provider asking for an hour
    must not stall the worker for an hour; the work stays pending for the next run instead."""

    max_retry_after: float = 60.0
    # A provider's own header of seconds to wait, read when a 429 has no Retry-After.
    wait_header: str | None = None

    def get_retry_after(self, response: Any) -> float | None:
        wait = super().get_retry_after(response)
        if wait is None and self.wait_header:
            try:
                wait = max(float(response.headers.get(self.wait_header)), 0.0)
            except (TypeError, ValueError):
                return None
        return None if wait is None else min(wait, self.max_retry_after)


class Api:
    """Calls to one provider account: ``base_url`` joined with each path. ``retried`` are the
    statuses worth asking again (a provider whose errors all come as 500 leaves 500 out);
    ``wait_header`` a provider's header of seconds to wait out a 429 that has no Retry-After."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        retries: int,
        retried: Collection[int] = RETRIED_STATUSES,
        wait_header: str | None = None,
        auth: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.auth = auth
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        self.session.headers.update(headers or {})
        policy = type("Retry", (_CappedRetry,), {"wait_header": wait_header})
        retry = policy(
            total=retries,
            backoff_factor=BACKOFF_SECONDS,
            status_forcelist=retried,
            allowed_methods=None,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def url(self, path: str) -> str:
        return path if "://" in path else f"{self.base_url}/{path.lstrip('/')}"

    def call(
        self, method: str, path: str, *, ok: Collection[int] = (), **kwargs: Any
    ) -> requests.Response:
        """The response to one call; ApiError unless it is 2xx or a status in ``ok``."""
        try:
            response = self.session.request(method, self.url(path), timeout=self.timeout, **kwargs)
        except requests.RequestException as error:
            raise ApiError(
                f"{method} {unnamed(path)}: no answer ({type(error).__name__})"
            ) from None
        if response.ok or response.status_code in ok:
            return response
        raise ApiError(
            unnamed(f"{method} {path}: HTTP {response.status_code} {_reason(response)}"),
            status=response.status_code,
            body=_body(response),
        )

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON document a call answers (None for an empty body)."""
        response = self.call(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"{method} {path}: the answer is not JSON") from None

    def close(self) -> None:
        self.session.close()


def unnamed(text: str) -> str:
    """``text`` with every address in it replaced by ``<address>``."""
    return ADDRESS.sub("<address>", text)


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:ERROR_TEXT_CHARS]


def _reason(response: requests.Response) -> str:
    """The provider's own words for an error, for the outcome's detail."""
    body = _body(response)
    if isinstance(body, Mapping):
        for key in ("message", "Message", "error", "errors", "detail", "ErrorMessage"):
            if body.get(key):
                return str(body[key])[:ERROR_TEXT_CHARS]
    return str(body or response.reason)[:ERROR_TEXT_CHARS]
