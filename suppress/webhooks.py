"""``POST /webhooks/<provider>``: ESP events in, verified, stored once, acted on.

The blueprint never names a provider: it finds them in the registry, hands each the raw
request, and turns the contract's outcomes into answers (DESIGN §6). 2xx means every event of
the request is committed (or was already); 401/403 a request that is not from the provider;
400 a body the provider never sends; 413 a body over the limit; and when storing fails, the
status that makes that provider retry (5xx for most, 429 for Brevo).
"""

import json
import logging
from urllib.parse import parse_qsl

from flask import Blueprint, Flask, Request, Response, current_app, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge

from suppress import providers
from suppress.events import Rules, record_events
from suppress.providers.base import Provider
from suppress.providers.delivery import Delivery, Event, Malformed, Rejected

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = logging.getLogger(__name__)
FORM_TYPE = "application/x-www-form-urlencoded"
EXTENSION = "suppress.providers"
ALLOW = {"Allow": "POST, HEAD"}


def init_app(app: Flask) -> None:
    """Build the enabled providers once; a missing secret stops the start-up here."""
    app.extensions[EXTENSION] = providers.enabled(app.config)
    app.extensions["suppress.rules"] = Rules.from_config(app.config)
    app.register_blueprint(bp)


def answer(status: int, body: dict, headers: dict | None = None) -> Response:
    """A JSON answer, encoded directly: ESPs read only the status, and Flask's ``jsonify``
    (its JSON provider, sorted keys, the debug check) costs a single event more than the
    JSON itself."""
    return Response(json.dumps(body), status, headers, mimetype="application/json")


@bp.route("/<slug>", methods=["GET", "HEAD", "POST"])
def receive(slug: str) -> ResponseReturnValue:
    provider: Provider | None = current_app.extensions[EXTENSION].get(slug)
    if provider is None:
        return answer(404, {"error": "not_found", "message": f"no enabled provider {slug!r}"})
    if request.method == "HEAD":
        return answer(200, {"status": "ok"})  # set-up checks (Mandrill) carry no signature
    try:
        delivery = delivery_of(request)
        provider.verify(delivery)
        reply = provider.handshake(delivery)
        if reply is not None:
            return answer(reply.status, dict(reply.body), dict(reply.headers))
        if request.method != "POST":
            body = {"error": "method_not_allowed", "message": "POST events here"}
            return answer(405, body, ALLOW)
        events = provider.parse(delivery)
    except Rejected as rejected:
        log.info("webhook %s refused: %s", slug, rejected)
        error = "unauthorized" if rejected.status == 401 else "forbidden"
        body = {"error": error, "message": "the request could not be verified"}
        return answer(rejected.status, body, rejected.headers)
    except Malformed as malformed:
        return answer(400, {"error": "bad_request", "message": str(malformed)})
    except RequestEntityTooLarge:
        limit = current_app.config["WEBHOOK_MAX_BYTES"]
        message = f"the body is over {limit} bytes"
        return answer(413, {"error": "request_entity_too_large", "message": message})
    return store(provider, events)


def store(provider: Provider, events: list[Event]) -> ResponseReturnValue:
    """Commit every event before answering; a failure answers what makes the provider retry."""
    try:
        recorded = record_events(provider.slug, events, current_app.extensions["suppress.rules"])
    except Exception:
        log.exception("webhook %s: storing %d events failed", provider.slug, len(events))
        body = {"error": "storage_failed", "message": "the events could not be stored; retry"}
        return answer(provider.retry_status, body)
    return answer(200, {"status": "ok", "received": recorded.received, "stored": recorded.stored})


def _utf8(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def delivery_of(incoming: Request) -> Delivery:
    """The request as the contract's Delivery, read within the size limit.

    A form body is parsed from the same bytes, so the raw body stays available to verify.
    """
    incoming.max_content_length = current_app.config["WEBHOOK_MAX_BYTES"]
    body = incoming.get_data(cache=True)
    form = MultiDict()
    if incoming.mimetype == FORM_TYPE:
        # A form that is not UTF-8 stays empty: signatures over its fields then fail (401/403),
        # and a provider whose secret is elsewhere finds no event in it (400).
        text = _utf8(body)
        if text is not None:
            form = MultiDict(parse_qsl(text, keep_blank_values=True))
    return Delivery(
        method=incoming.method,
        url=incoming.url,
        headers=incoming.headers,
        body=body,
        form=form,
        remote_addr=incoming.remote_addr,
    )
