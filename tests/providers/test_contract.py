"""The webhook contract, for every provider in the registry.

Whatever the ESP, ``POST /webhooks/<slug>`` refuses what it cannot verify (401/403), answers
400 to a body the provider never sends, stores a documented sample's events exactly once,
keeps event types it does not know as ``unknown``, answers 413 over the size limit and, when
storing fails, the status that makes that provider retry; and an enabled provider without its
secret stops the app from starting. Requests are signed for real by the signers in conftest.py
and posted through the app's own test client; the Event table is read straight from the
database after each answer.
"""

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from werkzeug.test import TestResponse

from suppress import webhooks
from suppress.config import ConfigError
from suppress.models import Event, db
from suppress.providers import PROVIDERS
from suppress.providers.settings import REQUIRED

REFUSED = (401, 403)


@pytest.fixture(scope="session")
def built_apps() -> dict[tuple, Flask]:
    """Apps by provider and settings, built once: every app holds its own connection pool."""
    return {}


@pytest.fixture
def build(
    app: Flask, make_app, built_apps: dict[tuple, Flask], signer: Any
) -> Callable[..., Flask]:
    """An app with the signer's provider enabled (plus ``overrides``), on the test database
    that the ``app`` fixture empties after the test."""

    def build(**overrides: object) -> Flask:
        key = (signer.slug, *sorted(overrides.items()))
        if key not in built_apps:
            built_apps[key] = make_app(**signer.settings, **overrides)
        signer.prepare(built_apps[key])
        return built_apps[key]

    return build


@pytest.fixture
def post(build) -> Callable[..., TestResponse]:
    """POST a signed request to the app the signer's provider is enabled in."""

    def post(signed: Any, to: Flask | None = None) -> TestResponse:
        client = (to or build()).test_client()
        return client.post(
            signed.url,
            data=signed.body,
            headers=signed.headers,
            content_type=signed.content_type,
        )

    return post


def stored() -> list[tuple[str, str]]:
    """(provider, type) of every stored event, read on a connection of its own."""
    with db.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(select(Event.provider, Event.type))]


def types_stored_by(slug: str) -> Counter:
    rows = stored()
    assert {provider for provider, _ in rows} <= {slug}
    return Counter(kind for _, kind in rows)


def error_of(response: TestResponse) -> dict:
    """The JSON error body every refusal carries."""
    assert response.is_json, response.data
    body = response.get_json()
    assert body.get("error")
    assert body.get("message")
    return body


def failing_storage(*args: object, **kwargs: object) -> None:
    raise OperationalError("INSERT INTO events ...", {}, Exception("database is locked"))


# Authentication


def test_a_request_without_credentials_is_refused_and_stores_nothing(signer, post):
    response = post(signer.request(signer.sample, auth="none"))

    assert response.status_code in REFUSED
    error_of(response)
    assert stored() == []


def test_a_request_signed_with_the_wrong_key_is_refused_and_stores_nothing(signer, post):
    response = post(signer.request(signer.sample, auth="wrong"))

    assert response.status_code in REFUSED
    error_of(response)
    assert stored() == []


# Bodies


def test_an_authenticated_malformed_body_is_answered_400_and_stores_nothing(signer, post):
    response = post(signer.request(signer.malformed))

    assert response.status_code == 400
    assert error_of(response)["error"] == "bad_request"
    assert stored() == []


def test_a_signed_documented_sample_stores_its_events(signer, post):
    count = sum(signer.stores.values())

    response = post(signer.request(signer.sample))

    assert response.status_code == 200, response.data
    assert response.get_json() == {"status": "ok", "received": count, "stored": count}
    assert types_stored_by(signer.slug) == Counter(signer.stores)


def test_the_same_delivery_posted_twice_is_stored_once(signer, post):
    count = sum(signer.stores.values())
    delivery = signer.request(signer.sample)

    first, second = post(delivery), post(delivery)

    assert first.get_json() == {"status": "ok", "received": count, "stored": count}
    assert second.status_code == 200, second.data
    assert second.get_json() == {"status": "ok", "received": count, "stored": 0}
    assert len(stored()) == count


def test_an_unknown_event_type_is_stored_as_unknown(signer, post):
    response = post(signer.request(signer.unknown))

    assert response.status_code == 200, response.data
    assert response.get_json()["stored"] >= 1
    assert set(types_stored_by(signer.slug)) == {"unknown"}


def test_a_head_request_is_answered_200_and_stores_nothing(signer, build):
    response = build().test_client().head(signer.path)

    assert response.status_code == 200
    assert stored() == []


def test_a_body_over_the_size_limit_is_answered_413_and_stores_nothing(signer, build, post):
    delivery = signer.request(signer.sample)
    limited = build(WEBHOOK_MAX_BYTES=len(delivery.body) - 1)

    response = post(delivery, to=limited)

    assert response.status_code == 413
    assert error_of(response)["error"] == "request_entity_too_large"
    assert stored() == []


# Storage


def test_a_storage_failure_answers_the_status_that_makes_the_provider_retry(
    signer, post, monkeypatch
):
    monkeypatch.setattr(webhooks, "record_events", failing_storage)

    response = post(signer.request(signer.sample))

    assert response.status_code == PROVIDERS[signer.slug].retry_status
    assert error_of(response)["error"] == "storage_failed"
    assert stored() == []


def test_the_retry_after_a_storage_failure_is_stored(signer, post, monkeypatch):
    delivery = signer.request(signer.sample)
    monkeypatch.setattr(webhooks, "record_events", failing_storage)
    post(delivery)
    monkeypatch.undo()

    response = post(delivery)

    assert response.status_code == 200, response.data
    assert types_stored_by(signer.slug) == Counter(signer.stores)


# Configuration


def test_a_provider_that_is_not_enabled_is_not_found(signer, app):
    assert signer.slug not in app.extensions[webhooks.EXTENSION]

    response = app.test_client().get(signer.path)

    assert response.status_code == 404
    assert error_of(response)["error"] == "not_found"


def missing_settings(signer: Any) -> list[tuple[dict[str, str], list[str]]]:
    """(settings, variables the error must name): each required setting left out in turn,
    or, for a provider that needs one of several credentials, all of them left out."""
    provider = PROVIDERS[signer.slug]
    required = [key for key, setting in provider.SETTINGS.items() if setting.default is REQUIRED]
    if not required:
        assert signer.one_of, f"{signer.slug} has no required setting: name its alternatives"
        return [({}, [provider.variable(key) for key in signer.one_of])]
    cases = []
    for key in required:
        left_out = f"{signer.slug.upper()}_{key}"
        settings = {name: value for name, value in signer.settings.items() if name != left_out}
        cases.append((settings, [provider.variable(key)]))
    return cases


def test_an_enabled_provider_without_its_required_setting_stops_the_start(signer, make_app):
    for settings, variables in missing_settings(signer):
        with pytest.raises(ConfigError) as error:
            make_app(WEBHOOK_PROVIDERS=signer.slug, **settings)

        assert all(variable in str(error.value) for variable in variables), str(error.value)
