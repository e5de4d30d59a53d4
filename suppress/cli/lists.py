"""``flask --app wsgi lists ...``: create, list and show mailing lists, and import their
subscribers from a CSV.
"""

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from suppress import lists
from suppress.cli.common import csv_input_options, domain_command, operator, reject_row, usable_rows
from suppress.csvfiles import CsvFile
from suppress.models import AUDIENCES, db

lists_cli = AppGroup("lists", help="Mailing lists (the scopes of list-level suppressions).")


@lists_cli.command("create")
@click.argument("slug")
@click.option("--name", help="A human name (default: the slug).")
@click.option("--description")
@click.option(
    "--audience",
    type=click.Choice(AUDIENCES),
    default="b2b",
    show_default=True,
    help="Who the list is for: a b2b list drops consumer addresses when cleaned.",
)
@click.option(
    "--similar-products",
    is_flag=True,
    help="The list markets what customers bought or similar: a customer relationship will do "
    "instead of consent.",
)
@domain_command
def create_list_command(
    slug: str, name: str | None, description: str | None, audience: str, similar_products: bool
) -> None:
    """Create the mailing list SLUG."""
    mailing_list = lists.create_list(
        slug, name or slug, description, audience=audience, similar_products=similar_products
    )
    db.session.commit()
    click.echo(f"created list {mailing_list.slug} ({mailing_list.audience})")


@lists_cli.command("list")
@domain_command
def list_lists_command() -> None:
    """Show every list with its audience and subscriber counts."""
    summaries = lists.list_summaries()
    if not summaries:
        click.echo("no lists yet: flask --app wsgi lists create SLUG")
        return
    width = max(len(summary.slug) for summary in summaries)
    for summary in summaries:
        click.echo(
            f"{summary.slug:<{width}}  {summary.audience:<8}  {summary.subscribed:>8} subscribed"
            f"  {summary.unsubscribed:>8} unsubscribed  {summary.name}"
        )


@lists_cli.command("show")
@click.argument("slug")
@domain_command
def show_list_command(slug: str) -> None:
    """Show the list SLUG: its settings, subscribers by basis and its own suppressions."""
    mailing_list = lists.find_list(slug)
    (summary,) = lists.list_summaries(slug)
    exception = "yes" if mailing_list.similar_products else "no"
    click.echo(f"{mailing_list.slug}: {mailing_list.name}")
    if mailing_list.description:
        click.echo(f"  {mailing_list.description}")
    click.echo(f"  audience: {mailing_list.audience}")
    click.echo(f"  customer relationship instead of consent (similar products): {exception}")
    click.echo(f"  created: {mailing_list.created_at:%F %H:%M} UTC")
    click.echo(f"  subscribed: {summary.subscribed}, unsubscribed: {summary.unsubscribed}")
    for basis, count in sorted(
        lists.subscribers_by_basis(mailing_list).items(), key=lambda item: item[0] or ""
    ):
        click.echo(f"    {basis or 'no basis recorded'}: {count}")
    click.echo(f"  suppressed on this list only: {lists.suppressed_on(mailing_list)}")


@lists_cli.command("import")
@click.argument("slug")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--source", help="Names the import in each subscription's source (default: file).")
@csv_input_options
@domain_command
def import_contacts_command(
    slug: str, path: Path, source: str | None, separator: str | None, encoding: str | None
) -> None:
    """Subscribe the contacts in a CSV to the list SLUG.

    Columns: 'email' and optional basis, kind, consent_at, consent_source, consent_text_version,
    role_note, language, relationship_ended_at. Refused and skipped rows are reported with their
    line numbers; the command fails only when no row could be used.
    """
    mailing_list = lists.find_list(slug)
    with CsvFile(path, separator=separator, encoding=encoding) as table:
        table.require("email")
        report = lists.import_contacts(
            mailing_list,
            usable_rows(table, reject_row),
            source=f"import:{source or path.name}",
            actor=operator(),
            batch_size=current_app.config["IMPORT_BATCH_SIZE"],
            on_reject=reject_row,
            on_skip=_skip,
        )
    click.echo(
        f"{report.subscribed} subscribed, {report.updated} updated, "
        f"{report.unchanged} already subscribed, {report.skipped} skipped, "
        f"{report.rejected} rejected"
    )
    used = report.subscribed + report.updated + report.unchanged + report.skipped
    if report.rejected and not used:
        raise click.ClickException("no row could be imported")


def _skip(line: int, why: str) -> None:
    click.echo(f"line {line}: skipped: {why}", err=True)
