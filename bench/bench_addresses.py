"""Benchmark `normalise_and_hash` against a hashing-only floor and email-validator alone.

Run from the repository root: `.venv/bin/python bench/bench_addresses.py [--n 1000000]`.
Every import, clean and lookup goes through `normalise`, so the target is normalise + hash of
1,000,000 realistic addresses in at most 3 seconds on one core. Latest figures: bench/README.md.
"""

import argparse
import hashlib
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from email_validator import EmailNotValidError, validate_email

from suppress.addresses import InvalidAddress, _normalise_fast, normalise_and_hash

TARGET_SECONDS = 3.0
TARGET_N = 1_000_000
VALIDATOR_SAMPLE = 20_000
SEED = 20240917

FIRST_NAMES = (
    "Matti",
    "Mikko",
    "Jyrki",
    "Jörn",
    "Väinö",
    "Päivi",
    "Maria",
    "Anna",
    "Liisa",
    "Säde",
    "Äijä",
    "Öhman",
    "Åsa",
    "Tiina",
    "Ville",
    "Sari",
)
LAST_NAMES = (
    "Korhonen",
    "Virtanen",
    "Mäkinen",
    "Nieminen",
    "Mäkelä",
    "Hämäläinen",
    "Laine",
    "Järvinen",
    "Heikkilä",
    "Salo",
    "Meikäläinen",
    "Söderström",
    "Ylönen",
    "Pöllänen",
    "Kärkkäinen",
    "Niemi",
)
COMPANY_WORDS = (
    "rakennus",
    "kone",
    "metsä",
    "sähkö",
    "tili",
    "kuljetus",
    "ravintola",
    "kiinteistö",
    "lvi",
    "ohjelmisto",
    "kauppa",
    "teräs",
    "pohjola",
    "nordic",
)
COMPANY_SUFFIXES = ("", "oy", "-oy", "group", "-palvelut", "yhtiot", "2000", "-tmi")
TLDS = ("fi", "fi", "fi", "fi", "com", "com", "net", "eu", "se", "io")
CONSUMER = (
    "gmail.com",
    "gmail.com",
    "gmail.com",
    "hotmail.com",
    "outlook.com",
    "luukku.com",
    "suomi24.fi",
    "elisanet.fi",
    "kolumbus.fi",
    "saunalahti.fi",
    "welho.com",
    "dnainternet.net",
    "pp.inet.fi",
    "icloud.com",
    "yahoo.com",
    "live.fi",
    "netti.fi",
)
ROLES = (
    "info",
    "myynti",
    "asiakaspalvelu",
    "toimisto",
    "laskutus",
    "office",
    "sales",
    "contact",
    "tuki",
    "rekry",
)
ODD = (
    "päivi.mäkelä@yritys.fi",
    "Jörn.Söderström@Sähkö.FI",
    "info@ääkköset.fi",
    "matti@xn--kkset-graa3f.fi",
    "Mikko@Kone--Oy.fi",
    "säde@firma.fi",
    "Åsa.Öhman@Pöllänen.com",
)
INVALID = (
    "matti.meikalainen",
    "matti..virtanen@firma.fi",
    "@firma.fi",
    "matti@",
    "matti@firma",
    "matti virtanen@firma.fi",
    "Matti <matti@firma.fi>",
    "matti@@firma.fi",
    "matti@firma.local",
    ".matti@firma.fi",
)
TRANSLITERATION = str.maketrans({"ä": "a", "ö": "o", "å": "a", "Ä": "A", "Ö": "O", "Å": "A"})


def addresses(n: int, seed: int = SEED) -> list[str]:
    """`n` realistic addresses, the same for the same seed."""
    rng = random.Random(seed)
    choice, random_ = rng.choice, rng.random
    rows = []
    for _ in range(n):
        roll = random_()
        if roll < 0.005:
            rows.append(choice(INVALID))
            continue
        if roll < 0.015:
            rows.append(choice(ODD))
            continue
        domain = (
            choice(CONSUMER)
            if random_() < 0.35
            else choice(COMPANY_WORDS) + choice(COMPANY_SUFFIXES) + "." + choice(TLDS)
        )
        if roll < 0.10:
            local = choice(ROLES)
        else:
            first, last = choice(FIRST_NAMES), choice(LAST_NAMES)
            local = first + choice((".", ".", "", "_", "-")) + last
            if random_() < 0.1:
                local += str(rng.randrange(1, 100))
        if random_() < 0.05:
            local += "+" + choice(("news", "uutiskirje", "kauppa", "2024"))
        address = (local + "@" + domain).translate(TRANSLITERATION)
        case = random_()
        if case < 0.5:
            address = address.lower()
        elif case < 0.55:
            address = address.upper()
        if random_() < 0.02:
            address = " " + address + "\t"
        rows.append(address)
    return rows


def best_of(repeat: int, run: Callable[[], int]) -> tuple[float, int]:
    """Shortest wall time of `repeat` runs (the least disturbed one) and what the run returned."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return min(times), result


def floor(rows: list[str]) -> int:
    sha256 = hashlib.sha256
    for row in rows:
        sha256(row.strip().lower().encode()).hexdigest()
    return 0


def normalise_all(rows: list[str]) -> int:
    invalid = 0
    for row in rows:
        try:
            normalise_and_hash(row)
        except InvalidAddress:
            invalid += 1
    return invalid


def validator_only(rows: list[str]) -> int:
    invalid = 0
    for row in rows:
        try:
            validate_email(row.strip(), check_deliverability=False)
        except EmailNotValidError:
            invalid += 1
    return invalid


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=TARGET_N, help="number of addresses")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; best counts")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    rows = addresses(args.n)
    sample = rows[:VALIDATOR_SAMPLE]
    fast = sum(_normalise_fast(row) is not None for row in rows)

    floor_s, _ = best_of(args.repeat, lambda: floor(rows))
    ours_s, invalid = best_of(args.repeat, lambda: normalise_all(rows))
    sample_s, _ = best_of(args.repeat, lambda: validator_only(sample))
    validator_s = sample_s * len(rows) / len(sample)
    target_s = TARGET_SECONDS * len(rows) / TARGET_N

    print(
        f"{len(rows):,} addresses: {fast / len(rows):.1%} on the fast path, "
        f"{invalid:,} invalid; best of {args.repeat} runs on one core"
    )
    for name, seconds in (
        ("floor: sha256(strip().lower())", floor_s),
        ("normalise_and_hash", ours_s),
        (f"email-validator alone (from {len(sample):,})", validator_s),
    ):
        rate = len(rows) / seconds
        print(f"  {name:<42} {seconds:7.3f} s  {rate:>11,.0f}/s  {seconds / floor_s:5.1f}× floor")
    verdict = "PASS" if ours_s <= target_s else "FAIL"
    print(f"{verdict}: normalise_and_hash {ours_s:.3f} s, target <= {target_s:.3f} s")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
