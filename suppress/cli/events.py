"""``flask --app wsgi events ...``: the stored events exported as JSON lines, and the complaint
rates per sending domain, as a table, as JSON, or as an exit status for monitoring.
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from suppress import events
from suppress.addresses import normalise_and_hash
from suppress.cli.common import domain_command, iso_datetime
from suppress.events import rates

events_cli = AppGroup("events", help="The events the ESPs reported.")


@events_cli.command("export")
@click.option("--since", help="Only events from this time on (ISO 8601; UTC unless given).")
@click.option("--provider", help="Only this provider's events (its slug).")
@click.option("--address", "email", help="Only this address's events.")
@click.option("--out", default="-", help="File to write (default: standard output).")
@domain_command
def export_events_command(
    since: str | None, provider: str | None, email: str | None, out: str
) -> None:
    """Write the stored events as JSON lines, oldest first."""
    digest = normalise_and_hash(email)[1] if email else None
    with click.open_file(out, "w", encoding="utf-8") as stream:
        for record in events.exported_events(iso_datetime(since), provider, digest):
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")


@events_cli.command("rates")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3660))
@click.option("--daily", is_flag=True, help="Every day's figures, not only the window's.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.option(
    "--fail-on",
    type=click.Choice(["warn", "critical"]),
    help="Exit 1 when a domain's latest day is at this status or worse (for monitoring).",
)
@domain_command
def rates_command(days: int, daily: bool, as_json: bool, fail_on: str | None) -> None:
    """Complaint rates per sending domain, by UTC day (complaints ÷ deliveries).

    Gmail wants under 0.10 % (warn) and never 0.30 % (critical); after a breach a domain
    needs seven consecutive days under 0.30 %.
    """
    today = datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    domains = rates.complaint_rates(first, today, current_app.config["SENDER_DOMAIN"])
    if as_json:
        click.echo(json.dumps([_rates_record(domain) for domain in domains], indent=2))
    else:
        _print_rates(domains, daily)
    levels = {"warn": ("warn", "critical"), "critical": ("critical",)}
    if fail_on and any(domain.status in levels[fail_on] for domain in domains):
        raise click.exceptions.Exit(1)


def _rates_record(domain: rates.DomainRates) -> dict[str, Any]:
    return {
        "sending_domain": domain.domain,
        "delivered": domain.delivered,
        "complained": domain.complained,
        "status": domain.status,
        "days_below_critical": domain.days_below,
        "recovered": domain.recovered,
        "days": [
            {
                "day": day.day.isoformat(),
                "delivered": day.delivered,
                "complained": day.complained,
                "rate": day.rate,
                "status": day.status,
            }
            for day in domain.days
        ],
    }


def _print_rates(domains: list[rates.DomainRates], daily: bool) -> None:
    if not domains:
        click.echo("no deliveries or complaints in the window")
        return
    click.echo(
        f"{'sending domain':<32} {'delivered':>10} {'complaints':>10} {'rate':>8}  "
        "latest day  days under 0.30 %"
    )
    for domain in domains:
        name = domain.domain or "(not reported)"
        rate = _percent(domain.complained, domain.delivered)
        click.echo(
            f"{name:<32} {domain.delivered:>10,} {domain.complained:>10,} {rate:>8}  "
            f"{domain.status:<10}  {domain.days_below}{'' if domain.recovered else ' (breached)'}"
        )
        for day in domain.days if daily else ():
            rate = _percent(day.complained, day.delivered)
            click.echo(
                f"  {day.day.isoformat():<30} {day.delivered:>10,} {day.complained:>10,} "
                f"{rate:>8}  {day.status}"
            )


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f} %" if whole else "n/a"
