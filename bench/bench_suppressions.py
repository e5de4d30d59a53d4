"""Benchmark the suppression core on a million rows, against floors measured in the same run.

1. Import: ``flask --app wsgi suppressions import`` of N addresses (the real command, in its own
   process, from a CSV as a marketer would have it) against the floor of the same distinct rows,
   already normalised and hashed, through one bare DBAPI ``executemany`` and one commit.
2. Lookup: ``suppressed_among`` of N candidate addresses, about 30 % of them suppressed, against
   the floor of a Python ``set`` built from the suppressed addresses and intersected with them.

Run from the repository root:
``.venv/bin/python -m bench.bench_suppressions [--n 1000000] [--database-url URL]``
(default: a temporary SQLite file). Targets: import ≤ 3× its floor (SQLite), lookup ≤ 3× its
floor, import peak memory < 300 MB. Latest figures: bench/README.md.
"""

import argparse
import csv
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.bench_addresses import addresses
from bench.processes import FLASK, ROOT, measured, service_env
from suppress import create_app
from suppress.addresses import InvalidAddress, normalise_and_hash
from suppress.config import coerce
from suppress.database import sqlite_pragmas
from suppress.suppressions import suppressed_among

SUPPRESSED_SHARE = 0.3
TARGET_RATIO = 3.0
TARGET_PEAK_MB = 300


def distinct_normalised(raw: list[str]) -> dict[str, str]:
    """Normalised address -> hash, for every valid address, first occurrence kept."""
    rows: dict[str, str] = {}
    for address in raw:
        try:
            email, digest = normalise_and_hash(address)
        except InvalidAddress:
            continue
        rows.setdefault(email, digest)
    return rows


def distinct_addresses(n: int, seed: int) -> list[str]:
    """N realistic raw addresses that normalise to N distinct ones (plus the invalid few).

    Real lists repeat common names with a number (matti.virtanen7@...), so a name that comes
    round again gets its position appended to the local part.
    """
    seen: set[str] = set()
    result = []
    for position, address in enumerate(addresses(n, seed=seed)):
        try:
            email, _ = normalise_and_hash(address)
        except InvalidAddress:
            result.append(address)
            continue
        if email in seen:
            local, _, domain = address.rpartition("@")
            address = f"{local}{position}@{domain}"
            email = f"{email.rpartition('@')[0]}{position}@{email.rpartition('@')[2]}"
        seen.add(email)
        result.append(address)
    return result


def write_csv(path: Path, raw: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["email", "reason"])
        writer.writerows((address, "unsubscribed") for address in raw)


def flask(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FLASK), "--app", "wsgi", *args],
        cwd=ROOT,
        env=service_env(url),
        capture_output=True,
        text=True,
        check=True,
    )


def empty_suppressions(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text("DELETE FROM suppressions"))
        else:
            connection.execute(text("TRUNCATE suppressions"))
    if engine.dialect.name == "sqlite":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM"))
    engine.dispose()


def floor_import(url: str, rows: dict[str, str]) -> float:
    """The same rows through one bare executemany and one commit: no parsing, no checks."""
    now = datetime.now(UTC).replace(tzinfo=None)
    values = [
        (digest, email, "global", "unsubscribed", "bench", now) for email, digest in rows.items()
    ]
    columns = "email_hash, email, scope, reason, source, created_at"
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        connection = sqlite3.connect(parsed.database)
        for pragma in sqlite_pragmas(coerce({})):
            connection.execute(pragma)
        sql = f"INSERT INTO suppressions ({columns}) VALUES (?, ?, ?, ?, ?, ?)"
    else:
        connection = psycopg.connect(parsed.set(drivername="postgresql").render_as_string(False))
        sql = f"INSERT INTO suppressions ({columns}) VALUES (%s, %s, %s, %s, %s, %s)"
    started = time.perf_counter()
    connection.cursor().executemany(sql, values)
    connection.commit()
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def timed_import(url: str, csv_path: Path) -> tuple[float, float, str]:
    """Seconds, peak RSS in MB and the summary line of the real import command."""
    command = [str(FLASK), "--app", "wsgi", "suppressions", "import", str(csv_path)]
    finished = measured(command, service_env(url))
    return finished.seconds, finished.peak_mb, finished.stdout.strip().splitlines()[-1]


def candidates_for(rows: dict[str, str], n: int) -> tuple[list[str], set[str]]:
    """N normalised candidates, SUPPRESSED_SHARE of them suppressed, shuffled."""
    rng = random.Random(7)
    suppressed = rng.sample(sorted(rows), int(n * SUPPRESSED_SHARE))
    fresh = [
        email for email in distinct_normalised(distinct_addresses(n, seed=99)) if email not in rows
    ]
    candidates = suppressed + fresh[: n - len(suppressed)]
    rng.shuffle(candidates)
    return candidates, set(suppressed)


def best_of(repeat: int, run: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def report(name: str, seconds: float, floor: float, target: float | None) -> bool:
    ratio = seconds / floor
    verdict = "" if target is None else ("PASS" if ratio <= target else "FAIL")
    limit = "" if target is None else f"(target ≤ {target:.0f}×)"
    print(f"{name:<28} {seconds:8.2f} s  floor {floor:7.2f} s  {ratio:5.2f}× {limit} {verdict}")
    return target is None or ratio <= target


def run(url: str, n: int) -> bool:
    backend = make_url(url).get_backend_name()
    print(f"== {backend}, {n:,} rows")
    raw = distinct_addresses(n, seed=1)
    rows = distinct_normalised(raw)
    flask(url, "db", "upgrade")
    with tempfile.TemporaryDirectory() as folder:
        csv_path = Path(folder) / "suppressions.csv"
        write_csv(csv_path, raw)
        floor = floor_import(url, rows)
        empty_suppressions(url)
        seconds, peak_mb, summary = timed_import(url, csv_path)
    print(f"import: {summary}")
    ok = report(
        "import (CLI, whole command)", seconds, floor, TARGET_RATIO if backend == "sqlite" else None
    )
    memory_ok = peak_mb < TARGET_PEAK_MB
    verdict = "PASS" if memory_ok else "FAIL"
    print(f"{'import peak memory':<28} {peak_mb:8.0f} MB (target < {TARGET_PEAK_MB} MB) {verdict}")
    ok = ok and memory_ok

    candidates, expected = candidates_for(rows, n)
    suppressed_list = sorted(rows)
    set_floor, _ = best_of(3, lambda: set(suppressed_list).intersection(candidates))
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench"})
    with app.app_context():
        seconds, found = best_of(3, lambda: suppressed_among(candidates))
    assert found == expected, "suppressed_among disagrees with the floor"
    return report("suppressed_among", seconds, set_floor, TARGET_RATIO) and ok


def main_of(run: Callable[[str, int], bool], doc: str, n: int) -> int:
    """A benchmark's command line: ``--n`` and ``--database-url`` (default: a temporary SQLite
    file), and exit status 1 when a target failed."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--n", type=int, default=n)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args()
    if args.database_url:
        return 0 if run(args.database_url, args.n) else 1
    with tempfile.TemporaryDirectory() as folder:
        return 0 if run(f"sqlite:///{folder}/bench.db", args.n) else 1


def main() -> int:
    return main_of(run, __doc__, 1_000_000)


if __name__ == "__main__":
    sys.exit(main())
