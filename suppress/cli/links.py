"""``flask --app wsgi unsubscribe-link``: the unsubscribe page URL and the two
List-Unsubscribe headers for one message, made by ``tokens``.
"""

import click

from suppress import tokens
from suppress.cli.common import domain_command
from suppress.models import db
from suppress.tokens import MAX_CAMPAIGN_LENGTH


@click.command("unsubscribe-link")
@click.argument("email")
@click.option("--list", "list_slug", help="The list the message is for (default: all mail).")
@click.option("--campaign", help=f"A campaign id (at most {MAX_CAMPAIGN_LENGTH} characters).")
@domain_command
def unsubscribe_link_command(email: str, list_slug: str | None, campaign: str | None) -> None:
    """Print the unsubscribe page URL and the two headers for a message to EMAIL."""
    link = tokens.unsubscribe_link(email, list_slug, campaign)
    db.session.commit()
    click.echo(link.url)
    click.echo(f"List-Unsubscribe: {link.list_unsubscribe}")
    click.echo(f"List-Unsubscribe-Post: {link.list_unsubscribe_post}")
