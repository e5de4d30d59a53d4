"""Benchmark ``clean`` of a million-row send list, against floors measured in the same run.

``flask --app wsgi clean IN --out OUT --rejects REJ``, the whole command in its own process, on
N rows as a CRM exports them (Finnish names, quoted company names with commas; 5 % of the rows
repeat an earlier row's address in another case), against N stored suppressions of which 30 %
of N match a candidate. In the same run, each in its own process too: the I/O floor (the same
file read and written with the ``csv`` module, no filtering) and the ``pandas`` anti-join an
analyst would write (``read_csv`` + ``isin`` + ``to_csv``). Every row's verdict is known from
how the data was made, and checked. The rounds are timed with only each command's own
high-water mark read; the peak of all its processes is read in one more round, untimed.

Run from the repository root:
``.venv/bin/python -m bench.bench_clean [--n 1000000] [--rounds 3] [--database-url URL]``
(default: a temporary SQLite file). Targets (issue 6): wall time ≤ 3× the I/O floor and below
the pandas script, peak memory ≤ 500 MB, exact row counts. Latest figures: bench/README.md.
"""

import argparse
import csv
import os
import random
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from bench.bench_addresses import FIRST_NAMES, LAST_NAMES
from bench.bench_suppressions import distinct_addresses, flask, floor_import
from bench.processes import FLASK, PYTHON, Finished, exit_status, measured, service_env
from suppress.addresses import InvalidAddress, normalise_and_hash

REPEATED_SHARE = 0.05
SUPPRESSED_SHARE = 0.3
TARGET_RATIO = 3.0
TARGET_PEAK_MB = 500
COLUMNS = ("first_name", "last_name", "email", "company", "job_title", "city", "phone", "language")
TITLES = (
    "Toimitusjohtaja",
    "Myyntipäällikkö",
    "Markkinointikoordinaattori",
    "Talousjohtaja",
    "Ostopäällikkö",
    "CTO",
    "Head of Marketing",
    "",
)
CITIES = ("Helsinki", "Espoo", "Tampere", "Oulu", "Jyväskylä", "Hämeenlinna", "Vaasa", "Turku")
TRADES = ("Rakennus", "Sähkö", "Kone", "Metsä", "Kuljetus", "Ohjelmisto", "Kiinteistö", "Teräs")

IO_FLOOR = """
import csv, sys
source, target = sys.argv[1:]
with open(source, encoding="utf-8", newline="") as read, \\
        open(target, "w", encoding="utf-8", newline="") as write:
    csv.writer(write).writerows(csv.reader(read))
"""
PANDAS_ANTI_JOIN = """
import sys
import pandas as pd
send_list, suppressions, out, rejects = sys.argv[1:]
rows = pd.read_csv(send_list, dtype=str, keep_default_na=False)
suppressed = pd.read_csv(suppressions, dtype=str)["email"]
address = rows["email"].str.strip().str.lower()
dropped = address.isin(suppressed) | address.duplicated()
rows[~dropped].to_csv(out, index=False)
rows[dropped].to_csv(rejects, index=False)
"""


@dataclass
class SendList:
    """The rows of the file, each row's expected verdict, and the suppressions to store."""

    rows: list[list[str]]
    verdicts: list[str | None]
    stored: dict[str, str]


def send_list(n: int, seed: int = 6) -> SendList:
    """N rows: distinct addresses (~0.5 % invalid), case-variant repeats placed after their
    first row, and SUPPRESSED_SHARE of N suppressed besides as many addresses not in the file."""
    rng = random.Random(seed)
    repeats = round(n * REPEATED_SHARE)
    distinct, matching = n - repeats, round(n * SUPPRESSED_SHARE)
    elsewhere = n - matching
    pool = distinct_addresses(distinct + elsewhere + elsewhere // 50 + 100, seed=seed)
    forms = [normal_form(raw) for raw in pool]
    valid = [index for index in range(distinct) if forms[index]]
    suppressed = set(rng.sample(valid, matching))
    stored = dict(forms[index] for index in suppressed)
    stored.update([form for form in forms[distinct:] if form][:elsewhere])
    order = [(float(index), index, False) for index in range(distinct)]
    order += [(rng.uniform(index, distinct), index, True) for index in rng.sample(valid, repeats)]
    order.sort()
    rows, verdicts = [], []
    for _, index, repeat in order:
        raw = case_variant(pool[index]) if repeat else pool[index]
        rows.append(person(rng, raw))
        if repeat:
            verdicts.append("duplicate")
        elif forms[index] is None:
            verdicts.append("invalid")
        else:
            verdicts.append("suppressed" if index in suppressed else None)
    return SendList(rows, verdicts, stored)


def normal_form(raw: str) -> tuple[str, str] | None:
    try:
        return normalise_and_hash(raw)
    except InvalidAddress:
        return None


def case_variant(raw: str) -> str:
    return raw.lower() if raw == raw.upper() else raw.upper()


def person(rng: random.Random, email: str) -> list[str]:
    """One CRM row; one company name in seven holds a comma, one in fifty a quote."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    trade, roll = rng.choice(TRADES), rng.random()
    if roll < 0.15:
        company = f"{last}, {rng.choice(LAST_NAMES)} & Co {trade} Oy"
    elif roll < 0.17:
        company = f'{trade} "{rng.choice(LAST_NAMES)}" Ab'
    else:
        company = f"{last} {trade} Oy"
    phone = f"+358 {rng.choice(('40', '50', '44', '9'))} {rng.randrange(1_000_000, 9_999_999)}"
    language = rng.choice(("fi", "fi", "fi", "sv", "en"))
    return [first, last, email, company, rng.choice(TITLES), rng.choice(CITIES), phone, language]


def write_files(folder: Path, data: SendList) -> tuple[Path, Path]:
    """The send list as a CRM exports it, and the suppressed addresses for the pandas script."""
    send_path, suppressions_path = folder / "send-list.csv", folder / "suppressions.csv"
    with send_path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(COLUMNS)
        writer.writerows(data.rows)
    with suppressions_path.open("w", encoding="utf-8", newline="") as stream:
        stream.write("email\n")
        stream.writelines(f"{email}\n" for email in data.stored)
    return send_path, suppressions_path


def checked(data: SendList, out: Path, rejects: Path) -> list[str]:
    """What the outputs get wrong: each kept and rejected row against its expected verdict."""
    email = COLUMNS.index("email")
    verdicts = list(zip(data.rows, data.verdicts, strict=True))
    wanted_kept = [row[email].strip() for row, verdict in verdicts if verdict is None]
    wanted_rejected = [(row[email].strip(), verdict) for row, verdict in verdicts if verdict]
    with out.open(encoding="utf-8", newline="") as stream:
        kept = [row[email] for row in list(csv.reader(stream))[1:]]
    with rejects.open(encoding="utf-8", newline="") as stream:
        rejected = [(row[email], row[len(COLUMNS)]) for row in list(csv.reader(stream))[1:]]
    problems = []
    if len(kept) + len(rejected) != len(data.rows):
        problems.append(f"{len(kept)} kept + {len(rejected)} rejected != {len(data.rows)} rows")
    if kept != wanted_kept:
        problems.append("the kept rows are not the expected ones in input order")
    if rejected != wanted_rejected:
        got, wanted = Counter(r for _, r in rejected), Counter(r for _, r in wanted_rejected)
        problems.append(f"rejects {dict(got)} where {dict(wanted)} were expected")
    return problems


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def line(name: str, finished: Finished, floor: Finished) -> None:
    ratio = finished.seconds / floor.seconds
    each = " + ".join(f"{seconds:.2f}" for seconds in finished.process_cpu_seconds)
    print(
        f"  {name:<8} {finished.seconds:6.2f} s {ratio:5.2f}× floor   "
        f"cpu {finished.cpu_seconds:6.2f} s ({each})   own peak {finished.peak_mb:4.0f} MB"
    )


def run(url: str, n: int, rounds: int) -> bool:
    backend = make_url(url).get_backend_name()
    data = send_list(n)
    flask(url, "db", "upgrade")
    floor_import(url, data.stored)
    expected = Counter(data.verdicts)
    print(
        f"== {backend}: {n:,} rows ({n - expected['duplicate']:,} distinct, "
        f"{expected['invalid']:,} invalid), {len(data.stored):,} suppressions "
        f"({expected['suppressed']:,} in the file); load {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory() as folder:
        send_path, suppressions_path = write_files(Path(folder), data)
        out, rejects = Path(folder) / "clean.csv", Path(folder) / "rejects.csv"
        best: dict[str, Finished] = {}
        problems: list[str] = []
        for number in range(1, rounds + 1):
            times = measure_round(url, send_path, suppressions_path, out, rejects)
            problems += checked(data, out, rejects)
            floor = times["floor"]
            print(f"round {number}: load {os.getloadavg()[0]:.2f}")
            for name, finished in times.items():
                line(name, finished, floor)
                if name not in best or finished.seconds < best[name].seconds:
                    best[name] = finished
        memory = measure_round(url, send_path, suppressions_path, out, rejects, proportional=True)
        problems += checked(data, out, rejects)
        peak_mb = memory["clean"].peak_mb
        print(
            f"memory (every process's Pss read, untimed): clean {peak_mb:.0f} MB, "
            f"pandas {memory['pandas'].peak_mb:.0f} MB"
        )
    summary = best["clean"].stderr.strip().splitlines()
    print(f"clean said: {' / '.join(summary[-2:])}")
    return report(best, problems, peak_mb)


def measure_round(
    url: str,
    send_path: Path,
    suppressions_path: Path,
    out: Path,
    rejects: Path,
    *,
    proportional: bool = False,
) -> dict[str, Finished]:
    """Each command once; with ``proportional``, their memory as every process's Pss (see
    ``measured``), which costs the commands CPU time."""
    python = [str(PYTHON), "-c"]
    clean = [str(FLASK), "--app", "wsgi", "clean", str(send_path), "--out", str(out)]
    return {
        "floor": measured([*python, IO_FLOOR, str(send_path), str(out)]),
        "pandas": measured(
            [
                *python,
                PANDAS_ANTI_JOIN,
                str(send_path),
                str(suppressions_path),
                str(out),
                str(rejects),
            ],
            proportional=proportional,
        ),
        "clean": measured(
            [*clean, "--rejects", str(rejects)], service_env(url), proportional=proportional
        ),
    }


def report(best: dict[str, Finished], problems: list[str], peak_mb: float) -> bool:
    """The targets, on the best time of each (the least disturbed) and the memory round's
    peak."""
    floor, pandas, clean = best["floor"], best["pandas"], best["clean"]
    ratio = clean.seconds / floor.seconds
    print(
        f"best of each: floor {floor.seconds:.2f} s, pandas {pandas.seconds:.2f} s, "
        f"clean {clean.seconds:.2f} s; its busiest process took "
        f"{clean.process_cpu_seconds[0]:.2f} s of CPU (pandas {pandas.cpu_seconds:.2f} s)"
    )
    checks = {
        f"clean wall {ratio:.2f}× the I/O floor (target ≤ {TARGET_RATIO:.0f}×)": ratio
        <= TARGET_RATIO,
        f"clean wall {clean.seconds / pandas.seconds:.2f}× pandas (target < 1×)": clean.seconds
        < pandas.seconds,
        f"clean peak memory {peak_mb:.0f} MB (target ≤ {TARGET_PEAK_MB} MB)": peak_mb
        <= TARGET_PEAK_MB,
        "row counts and every row's verdict exact"
        + (f": {'; '.join(problems)}" if problems else ""): not problems,
    }
    for name, ok in checks.items():
        print(f"{name:<60} {verdict(ok)}")
    return all(checks.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many; all shown")
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args()
    return exit_status(args.database_url, lambda url: run(url, args.n, args.rounds))


if __name__ == "__main__":
    sys.exit(main())
