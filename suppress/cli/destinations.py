"""``flask --app wsgi destinations ...`` and ``flask --app wsgi sync``: the marketing tools
the sync job keeps in step with the list, and the job itself, once or every N seconds.

Credentials never pass through here: ``sync`` reads them from the environment.
"""

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import click
from flask.cli import AppGroup

from suppress import sync
from suppress.cli.common import domain_command
from suppress.models import db

destinations_cli = AppGroup(
    "destinations", help="The marketing tools the sync job keeps in step with the list."
)


@destinations_cli.command("add")
@click.argument("name")
@click.option(
    "--provider", required=True, type=click.Choice(sorted(sync.syncing_providers())), help="ESP."
)
@click.option("--target", help="The scope at the provider: a domain, group, stream or audience.")
@click.option("--list", "list_slug", help="Our list whose suppressions it carries, too.")
@domain_command
def add_destination_command(
    name: str, provider: str, target: str | None, list_slug: str | None
) -> None:
    """Add the destination NAME; its credentials come from SUPPRESS_DEST_<NAME>_* or
    SUPPRESS_<PROVIDER>_* variables, never from here."""
    destination = sync.add_destination(name, provider, target=target, list_slug=list_slug)
    db.session.commit()
    click.echo(f"added {_destination_label(destination)}")


@destinations_cli.command("list")
@domain_command
def list_destinations_command() -> None:
    """Every destination with its outbox: accepted, pending and refused suppressions."""
    destinations = sync.all_destinations()
    if not destinations:
        click.echo("no destinations yet: flask --app wsgi destinations add NAME --provider SLUG")
    for destination in destinations:
        counts = Counter()
        for (_, status), count in sync.status_counts(destination).items():
            counts[status] += count
        click.echo(
            f"{_destination_label(destination)}: {counts['accepted']} accepted, "
            f"{counts['pending']} pending, {counts['refused']} refused"
        )


@destinations_cli.command("show")
@click.argument("name")
@domain_command
def show_destination_command(name: str) -> None:
    """The destination NAME: its scope, outbox, lag, last pass and last error."""
    destination = sync.find_destination(name)
    click.echo(_destination_label(destination))
    for (action, status), count in sorted(sync.status_counts(destination).items()):
        click.echo(f"  {action} {status}: {count}")
    lag = sync.lag(datetime.now(UTC))[destination.name]
    click.echo(f"  oldest suppression not yet accepted: {lag:.0f} s ago")
    for label, moment in (("planned", destination.planned_at), ("pulled", destination.pulled_at)):
        click.echo(f"  last {label}: {f'{moment:%F %H:%M:%S} UTC' if moment else 'never'}")
    if destination.last_error:
        click.echo(f"  last error: {destination.last_error}")


@destinations_cli.command("remove")
@click.argument("name")
@click.confirmation_option(prompt="Forget this destination and its sync records?")
@domain_command
def remove_destination_command(name: str) -> None:
    """Forget NAME and its outbox; what it holds stays at the provider."""
    sync.remove_destination(name)
    db.session.commit()
    click.echo(f"removed {name}")


def _destination_label(destination: Any) -> str:
    scope = f" {destination.target}" if destination.target else ""
    carried = f", list {destination.list_slug}" if destination.list_slug else ""
    return f"{destination.name} ({destination.provider}{scope}{carried})"


@click.command("sync")
@click.option("--destination", "names", multiple=True, help="Only this destination (repeatable).")
@click.option("--dry-run", is_flag=True, help="Say what would be pushed or pulled; change nothing.")
@click.option("--reconcile", is_flag=True, help="Pull the destinations' own lists and compare.")
@click.option("--full", is_flag=True, help="With --reconcile: pull everything, find what is lost.")
@click.option("--every", type=click.IntRange(min=1), help="Run again every SECONDS, forever.")
@domain_command
def sync_command(
    names: tuple[str, ...], dry_run: bool, reconcile: bool, full: bool, every: int | None
) -> None:
    """Push what each destination lacks; with --reconcile, first pull what it holds.

    Exits 1 when a destination could not be reached, so cron mails the operator.
    """
    while True:
        failed = _sync_pass(list(names), dry_run=dry_run, reconcile=reconcile, full=full)
        if every is None:
            break
        time.sleep(every)
    if failed:
        raise click.ClickException("some destinations were not brought in step (see above)")


def _sync_pass(names: list[str], *, dry_run: bool, reconcile: bool, full: bool) -> bool:
    failed = False
    if reconcile:
        for name in names or [d.name for d in sync.all_destinations()]:
            drift = sync.reconcile(sync.find_destination(name), full=full, dry_run=dry_run)
            _echo_drift(drift, dry_run)
    for report in sync.run(names, dry_run=dry_run):
        verb = "would push" if dry_run else "pushed"
        click.echo(
            f"{report.destination}: {report.planned} newly planned, {verb} "
            f"{report.pending if dry_run else report.accepted} "
            f"(lifted {report.lifted}, refused {report.refused}, "
            f"{'pending' if dry_run else 'still pending'} {report.pending})"
        )
        if report.error:
            click.echo(f"{report.destination}: stopped: {report.error}", err=True)
            failed = True
    return failed


def _echo_drift(drift: Any, dry_run: bool) -> None:
    click.echo(
        f"{drift.destination}: pulled {drift.pulled}; theirs only {len(drift.theirs_only)}, "
        f"ours only {drift.ours_only}" + ("" if dry_run else f"; imported {drift.imported}")
    )
