"""Benchmark webhook ingest under gunicorn against floors measured in the same run.

(a) Batches: SendGrid Event Webhook POSTs of 1,000 signed events each (the real ECDSA scheme),
    from a few concurrent senders. Floor: ``json.loads`` of the same bodies and one
    ``executemany`` of their rows into a bare table, one commit per batch, in this process.
(b) Single events: Mailgun-style POSTs (one HMAC-signed event each) from 64 concurrent
    clients. Floor: the bare Flask app committing one INSERT per POST under the same gunicorn
    settings (bench/load.py), driven in alternating rounds with the service.

The events are a realistic mix (sends, deliveries, opens with some machine opens, clicks, a
few bounces, complaints and unsubscribes) for addresses in the register, each event distinct.
After the run, the stored events must equal the distinct events answered 200.

Run from the repository root:
``.venv/bin/python -m bench.bench_webhooks [--seconds 20] [--database-url URL]``
(default: a temporary SQLite file; a PostgreSQL database must be fresh). Targets: (a) ≥ 0.50×
the floor's events/s; (b) ≥ 0.80× the floor's requests/s with p99 ≤ 250 ms; zero errors.
"""

import argparse
import base64
import hashlib
import hmac
import itertools
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import CheckConstraint, MetaData, func, select
from sqlalchemy.engine import make_url

from bench.bench_one_click import insert_addresses
from bench.bench_suppressions import distinct_addresses, distinct_normalised
from bench.bench_suppressions import flask as flask_command
from bench.load import (
    FLOOR_APP,
    SECRET_KEY,
    SERVICE_APP,
    WARM_UP_SECONDS,
    Requests,
    Tally,
    client_check,
    describe,
    drive,
    floor_requests,
    post,
    served,
    verdict,
    worker_model,
)
from suppress import create_app
from suppress.models import Event, db

ADDRESSES = 20_000
BATCH_EVENTS = 1000
BATCH_SENDERS = 4
SINGLE_CLIENTS = 64
ROUNDS = 4
SINGLES_PER_SECOND = 3000
BATCHES_PER_SECOND = 50
MAILGUN_KEY = "bench-mailgun-signing-key"
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
TARGET_BATCH_RATIO = 0.50
TARGET_SINGLE_RATIO = 0.80
TARGET_P99_MS = 250.0
# What a marketing send reports, event by event.
MIX = (
    ("processed", 30),
    ("delivered", 30),
    ("open", 22),
    ("machine_open", 5),
    ("click", 8),
    ("bounce", 2),
    ("deferred", 1.5),
    ("dropped", 0.5),
    ("spamreport", 0.5),
    ("unsubscribe", 0.5),
)


def settings() -> dict[str, str]:
    """The service's provider settings, as an operator would export them."""
    der = SENDGRID_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "SUPPRESS_MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
        "SUPPRESS_SENDGRID_WEBHOOK_VERIFICATION_KEY": base64.b64encode(der).decode(),
    }


def prepare(url: str) -> list[str]:
    """Migrate and fill the register; the addresses the events are about."""
    flask_command(url, "db", "upgrade")
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET_KEY})
    with app.app_context():
        emails = [*distinct_normalised(distinct_addresses(ADDRESSES, seed=5)).items()]
        insert_addresses(emails)
        floor_requests.create(db.session.connection())
        db.session.commit()
    return [email for email, _ in emails]


def kinds(seed: int) -> Iterator[str]:
    names, weights = zip(*MIX, strict=True)
    chooser = random.Random(seed)
    while True:
        yield from chooser.choices(names, weights, k=1000)


def sendgrid_event(number: int, kind: str, email: str, now: int) -> dict[str, Any]:
    event = {
        "email": email,
        "timestamp": now - 60,
        "event": "open" if kind == "machine_open" else kind,
        "sg_event_id": f"sg-{number}",
        "sg_message_id": f"msg-{number // 3}.filter0001",
        "category": ["uutiskirje"],
    }
    if kind in ("open", "machine_open"):
        event |= {"sg_machine_open": kind == "machine_open", "useragent": "Mozilla/5.0"}
    if kind == "click":
        event |= {"url": "https://yritys.fi/tarjous", "useragent": "Mozilla/5.0"}
    if kind == "bounce":
        event |= {"type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 user unknown"}
    return event


def sendgrid_batches(emails: list[str], count: int) -> list[tuple[str, bytes]]:
    """Signed batches, each ``BATCH_EVENTS`` distinct events, as SendGrid posts them."""
    now = int(time.time())
    numbers, mix = itertools.count(), kinds(seed=1)
    batches = []
    for batch in range(count):
        events = [
            sendgrid_event(number, next(mix), emails[number % len(emails)], now)
            for number in itertools.islice(numbers, BATCH_EVENTS)
        ]
        body = json.dumps(events).encode()
        stamp = str(now)
        signature = SENDGRID_KEY.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        headers = {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }
        batches.append(
            (f"batch-{batch}", post("/webhooks/sendgrid", body, "application/json", headers))
        )
    return batches


MAILGUN_EVENTS = {
    "processed": "accepted",
    "delivered": "delivered",
    "open": "opened",
    "machine_open": "opened",
    "click": "clicked",
    "bounce": "failed",
    "deferred": "failed",
    "dropped": "failed",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
}


def mailgun_event(number: int, kind: str, email: str, now: int) -> dict[str, Any]:
    event = {
        "id": f"mg-{number}",
        "timestamp": now - 60,
        "event": MAILGUN_EVENTS[kind],
        "recipient": email,
        "message": {"headers": {"message-id": f"{number // 3}@mg.yritys.fi"}},
    }
    if kind in ("open", "machine_open", "click"):
        event["client-info"] = {"user-agent": "Mozilla/5.0", "client-type": "browser"}
    if kind in ("bounce", "deferred", "dropped"):
        event["severity"] = "temporary" if kind == "deferred" else "permanent"
        event["reason"] = "suppress-bounce" if kind == "dropped" else "generic"
        event["delivery-status"] = {"code": 550, "message": "5.1.1 user unknown"}
    return event


def mailgun_posts(emails: list[str], count: int, prefix: str) -> list[tuple[str, bytes]]:
    """Signed single-event POSTs, each its own event id, token and signature."""
    now = int(time.time())
    mix = kinds(seed=2)
    posts = []
    for number in range(count):
        data = mailgun_event(number, next(mix), emails[number % len(emails)], now)
        data["id"] = f"{prefix}-{number}"
        token = hashlib.sha256(f"{prefix}{number}".encode()).hexdigest()[:50]
        signature = hmac.new(MAILGUN_KEY.encode(), f"{now}{token}".encode(), "sha256")
        block = {"timestamp": str(now), "token": token, "signature": signature.hexdigest()}
        body = json.dumps({"signature": block, "event-data": data}).encode()
        posts.append((data["id"], post("/webhooks/mailgun", body, "application/json")))
    return posts


def floor_batches(url: str, batches: list[tuple[str, bytes]]) -> float:
    """Events/s of the floor: parse each body, one ``executemany`` of its rows into a bare copy
    of the events table (same columns, same indexes: storing an event costs what its indexes
    cost), one commit per batch, on a connection opened with the service's pragmas."""
    bodies = [message.split(b"\r\n\r\n", 1)[1] for _, message in batches]
    engine = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET_KEY})
    with engine.app_context():
        floor_table = Event.__table__.to_metadata(MetaData(), name="bench_floor_events")
        for index in floor_table.indexes:
            index.name = f"floor_{index.name}"
        for constraint in [*floor_table.constraints]:
            if isinstance(constraint, CheckConstraint):  # the raw names are not ours
                floor_table.constraints.discard(constraint)
            elif constraint.name:
                constraint.name = f"floor_{constraint.name}"
        floor_table.create(db.engine)
        dialect = db.engine.dialect
        connection = db.engine.raw_connection()
    marker = "?" if dialect.name == "sqlite" else "%s"
    columns = (
        "provider, provider_event_id, type, raw_type, email_hash, message_id, machine, "
        "occurred_at, received_at"
    )
    sql = f"INSERT INTO bench_floor_events ({columns}) VALUES ({', '.join([marker] * 9)})"
    received = datetime.now(UTC).replace(tzinfo=None)
    started = time.perf_counter()
    for body in bodies:
        rows = [
            (
                "sendgrid",
                item["sg_event_id"],
                item["event"],
                item["event"],
                item["email"],
                item["sg_message_id"],
                item.get("sg_machine_open", False),
                datetime.fromtimestamp(item["timestamp"], UTC).replace(tzinfo=None),
                received,
            )
            for item in json.loads(body)
        ]
        cursor = connection.cursor()
        cursor.executemany(sql, rows)
        connection.commit()
    seconds = time.perf_counter() - started
    connection.close()
    return len(bodies) * BATCH_EVENTS / seconds


def alternate(
    url: str,
    clients: int,
    seconds: float,
    floor_requests_: Requests,
    ours_requests: Requests,
    folder: Path,
) -> tuple[Tally, Tally, Tally]:
    floor, warm_up, ours = Tally(), Tally(), Tally()
    with (
        served(url, FLOOR_APP, folder / "floor.log") as floor_port,
        served(url, SERVICE_APP, folder / "service.log") as service_port,
    ):
        drive(floor_port, clients, WARM_UP_SECONDS, floor_requests_, Tally())
        drive(service_port, clients, WARM_UP_SECONDS, ours_requests, warm_up)
        for _ in range(ROUNDS):
            drive(floor_port, clients, seconds / ROUNDS, floor_requests_, floor)
            drive(service_port, clients, seconds / ROUNDS, ours_requests, ours)
    return floor, warm_up, ours


def stored_events(url: str) -> int:
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET_KEY})
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Event))


def report(name: str, ok: bool, text: str) -> bool:
    print(f"{name:<28} {text} {verdict(ok)}")
    return ok


def singles_phase(url: str, emails: list[str], seconds: float, folder: Path) -> tuple[list, int]:
    """(b): the verdicts, and the distinct events answered 200."""
    count = int(SINGLES_PER_SECOND * (seconds + WARM_UP_SECONDS))
    ours_posts = iter(mailgun_posts(emails, count, "mg"))
    floor_posts = iter(mailgun_posts(emails, count, "floor"))
    floor, warm_up, ours = alternate(url, SINGLE_CLIENTS, seconds, floor_posts, ours_posts, folder)
    print(f"== {make_url(url).get_backend_name()}, gunicorn {worker_model(folder / 'service.log')}")
    print(f"-- (b) single events, {SINGLE_CLIENTS} clients, {seconds:g} s in {ROUNDS} rounds")
    describe("floor: bare Flask, 1 INSERT", floor)
    describe("POST /webhooks/mailgun", ours)
    ratio, p99 = ours.rate / floor.rate, ours.percentile_ms(99)
    errors = warm_up.failures + ours.failures
    verdicts = [
        client_check(floor, ours),
        report(
            "requests/s",
            ratio >= TARGET_SINGLE_RATIO and not ours.ran_dry,
            f"{ours.rate:8,.0f}  floor {floor.rate:8,.0f}  {ratio:5.2f}× "
            f"(target ≥ {TARGET_SINGLE_RATIO:.2f}×)",
        ),
        report("p99 latency", p99 <= TARGET_P99_MS, f"{p99:8.1f} ms (target ≤ 250 ms)"),
        report("errors (warm-up included)", errors == 0, f"{errors:8,} (target 0)"),
    ]
    return verdicts, len({*warm_up.answered, *ours.answered})


def batches_phase(url: str, emails: list[str], seconds: float, folder: Path) -> tuple[list, int]:
    """(a): the verdicts, and the distinct events answered 200."""
    count = int(BATCHES_PER_SECOND * seconds)
    batches = sendgrid_batches(emails, count + BATCH_SENDERS * 2)
    floor = floor_batches(url, batches[:count])
    tally = Tally()
    with served(url, SERVICE_APP, folder / "batches.log") as port:
        drive(port, BATCH_SENDERS, seconds, iter(batches), tally)
    rate = tally.rate * BATCH_EVENTS
    print(f"-- (a) batches of {BATCH_EVENTS:,} events, {BATCH_SENDERS} senders, {seconds:g} s")
    print(f"{'floor: json.loads+executemany':<28} {floor:8,.0f} events/s")
    describe("POST /webhooks/sendgrid", tally)
    ratio = rate / floor
    verdicts = [
        report(
            "events/s",
            ratio >= TARGET_BATCH_RATIO and not tally.ran_dry,
            f"{rate:8,.0f}  floor {floor:8,.0f}  {ratio:5.2f}× "
            f"(target ≥ {TARGET_BATCH_RATIO:.2f}×)"
            f"{' ran out of batches: a lower bound' if tally.ran_dry else ''}",
        ),
        report("errors", tally.failures == 0, f"{tally.failures:8,} (target 0)"),
    ]
    return verdicts, len(tally.answered) * BATCH_EVENTS


def run(url: str, seconds: float) -> bool:
    os.environ.update(settings())
    emails = prepare(url)
    folder = Path(tempfile.mkdtemp())
    single_verdicts, single_events = singles_phase(url, emails, seconds, folder)
    batch_verdicts, batch_events = batches_phase(url, emails, seconds, folder)
    stored, expected = stored_events(url), single_events + batch_events
    stored_ok = report(
        "events stored once each",
        stored == expected,
        f"{stored:8,} stored, {expected:,} distinct events answered 200",
    )
    return all([*single_verdicts, *batch_verdicts, stored_ok])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args()
    if args.database_url:
        return 0 if run(args.database_url, args.seconds) else 1
    with tempfile.TemporaryDirectory() as folder:
        return 0 if run(f"sqlite:///{folder}/bench.db", args.seconds) else 1


if __name__ == "__main__":
    sys.exit(main())
