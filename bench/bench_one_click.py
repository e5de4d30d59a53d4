"""Benchmark a burst of RFC 8058 one-click POSTs against a floor measured in the same run.

After a large campaign, mailbox providers that show an unsubscribe button (Gmail, Yahoo) send
their ``List-Unsubscribe=One-Click`` POSTs in bursts. This starts the real service under
gunicorn with the project's ``gunicorn.conf.py`` and drives it with N concurrent clients for a
fixed time, every request for a distinct token (a distinct address), sent as the providers send
it: form-encoded, no cookie. The floor is a bare Flask app under the same gunicorn settings that
parses the same form and commits one INSERT per POST on the same database (bench/load.py). Both
are served side by side and driven in alternating rounds, so both see the same machine.

Run from the repository root:
``.venv/bin/python -m bench.bench_one_click [--clients 64] [--seconds 20] [--database-url URL]``
(default: a temporary SQLite file; a PostgreSQL database must be fresh). The worker model is
whatever ``gunicorn.conf.py`` and gunicorn make of the environment (``SUPPRESS_WORKERS``,
``GUNICORN_CMD_ARGS``). Targets: requests/s ≥ 0.70× the floor, p99 ≤ 250 ms, no errors, and
one suppression row for every token answered 200.
"""

import argparse
import itertools
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

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
from suppress.addresses import domain_of
from suppress.lists import create_list, kind_of
from suppress.models import Address, Suppression, db
from suppress.tokens import _serializer, mint

LIST_SLUG = "uutiskirje"
FORM = b"List-Unsubscribe=One-Click"
FORM_TYPE = "application/x-www-form-urlencoded"
# The floor and the service take turns, so that load from neighbours on a shared machine falls
# on both alike instead of on whichever ran second.
ROUNDS = 4
# Tokens minted per second of run, far above what this service answers on a small machine; a
# run that still uses them all up fails rather than repeating a token.
TOKENS_PER_SECOND = 3000
TARGET_RATIO = 0.70
TARGET_P99_MS = 250.0


def prepare(url: str, count: int) -> list[str]:
    """Migrate, create a list, put ``count`` distinct addresses on it; a token for each.

    Minting through the ORM one address at a time would take longer than the run, so the rows
    go in with one DBAPI ``executemany`` and the tokens come from the service's own serializer
    with the payload ``mint`` signs. The first token is checked against ``mint`` itself, so the
    service verifies and resolves every token exactly as it would a real one.
    """
    flask_command(url, "db", "upgrade")
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET_KEY})
    with app.app_context():
        list_id = create_list(LIST_SLUG, "Uutiskirje").id
        hashed = distinct_normalised(distinct_addresses(count + count // 50, seed=8058))
        emails = [*itertools.islice(hashed.items(), count)]
        insert_addresses(emails)
        floor_requests.create(db.session.connection())
        db.session.commit()
        ids = db.session.scalars(select(Address.id).order_by(Address.id)).all()
        serializer = _serializer()
        tokens = [serializer.dumps([address_id, list_id]) for address_id in ids]
        if mint(emails[0][0], LIST_SLUG) != tokens[0]:
            raise RuntimeError("the bench's tokens differ from the ones mint() makes")
    return tokens


def insert_addresses(emails: list[tuple[str, str]]) -> None:
    """Address rows as ``ensure_address`` writes them (hash, domain, kind), in one executemany."""
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        (digest, email, domain_of(email), kind_of(email), False, 0, 0, 0, now)
        for email, digest in emails
    ]
    columns = "email_hash, email, domain, kind, restricted, sent_count, open_count, click_count"
    marker = "?" if db.engine.dialect.name == "sqlite" else "%s"
    sql = f"INSERT INTO addresses ({columns}, created_at) VALUES ({', '.join([marker] * 9)})"
    cursor = db.session.connection().connection.cursor()
    cursor.executemany(sql, rows)
    cursor.close()


def one_clicks(tokens: list[str]) -> Requests:
    return ((token, post(f"/u/{token}", FORM, FORM_TYPE)) for token in tokens)


def measure(
    url: str, clients: int, seconds: float, tokens: list[str], folder: Path
) -> tuple[Tally, Tally, Tally]:
    """The floor, the service's warm-up and the service, both apps served side by side."""
    floor_tokens = one_clicks(f"{n:0{len(tokens[0])}d}" for n in itertools.count())
    service_tokens = one_clicks(tokens)
    floor, warm_up, ours = Tally(), Tally(), Tally()
    with (
        served(url, FLOOR_APP, folder / "floor.log") as floor_port,
        served(url, SERVICE_APP, folder / "service.log") as service_port,
    ):
        drive(floor_port, clients, WARM_UP_SECONDS, floor_tokens, Tally())
        drive(service_port, clients, WARM_UP_SECONDS, service_tokens, warm_up)
        for _ in range(ROUNDS):
            drive(floor_port, clients, seconds / ROUNDS, floor_tokens, floor)
            drive(service_port, clients, seconds / ROUNDS, service_tokens, ours)
    return floor, warm_up, ours


def run(url: str, clients: int, seconds: float) -> bool:
    backend = make_url(url).get_backend_name()
    tokens = prepare(url, int(TOKENS_PER_SECOND * (seconds + WARM_UP_SECONDS)))
    with tempfile.TemporaryDirectory() as folder:
        floor, warm_up, ours = measure(url, clients, seconds, tokens, Path(folder))
        model = worker_model(Path(folder) / "service.log")
    print(
        f"== {backend}, {clients} clients, {seconds:g} s each in {ROUNDS} rounds, gunicorn {model}"
    )
    describe("floor: bare Flask, 1 INSERT", floor)
    describe("one-click POST /u/<token>", ours)
    client_ok = client_check(floor, ours)
    ratio = ours.rate / floor.rate
    ratio_ok = ratio >= TARGET_RATIO and not ours.ran_dry
    print(
        f"{'requests/s':<28} {ours.rate:8,.0f}  floor {floor.rate:8,.0f}  {ratio:5.2f}× "
        f"(target ≥ {TARGET_RATIO:.2f}×){' ran out of tokens' if ours.ran_dry else ''} "
        f"{verdict(ratio_ok)}"
    )
    p99 = ours.percentile_ms(99)
    p99_ok = p99 <= TARGET_P99_MS
    print(f"{'p99 latency':<28} {p99:8.1f} ms (target ≤ {TARGET_P99_MS:.0f} ms) {verdict(p99_ok)}")
    errors = warm_up.failures + ours.failures
    print(f"{'errors (warm-up included)':<28} {errors:8,} (target 0) {verdict(errors == 0)}")
    return lost_check(url, {*warm_up.answered, *ours.answered}) and all(
        (client_ok, ratio_ok, p99_ok, errors == 0)
    )


def lost_check(url: str, answered: set[str]) -> bool:
    """Every token answered 200 must have left exactly one suppression row behind."""
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET_KEY})
    with app.app_context():
        rows = db.session.scalar(select(func.count()).select_from(Suppression))
    ok = rows == len(answered)
    print(
        f"{'zero lost unsubscribes':<28} {rows:8,} rows in suppressions, "
        f"{len(answered):,} tokens answered 200 {verdict(ok)}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args()
    if args.database_url:
        return 0 if run(args.database_url, args.clients, args.seconds) else 1
    with tempfile.TemporaryDirectory() as folder:
        return 0 if run(f"sqlite:///{folder}/bench.db", args.clients, args.seconds) else 1


if __name__ == "__main__":
    sys.exit(main())
