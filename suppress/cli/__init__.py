"""The ``flask --app wsgi ...`` commands: thin wrappers that parse, call the domain, report.

One module per command group: ``suppressions``, ``lists``, ``events``, ``destinations`` (with
``sync``), ``clean`` and ``links`` (``unsubscribe-link``); what they share, refusals as
one-line messages and exit status 1 included, is in ``common``.
"""

from flask import Flask

from suppress.cli.clean import clean_command
from suppress.cli.destinations import destinations_cli, sync_command
from suppress.cli.events import events_cli
from suppress.cli.links import unsubscribe_link_command
from suppress.cli.lists import lists_cli
from suppress.cli.suppressions import suppressions_cli


def init_app(app: Flask) -> None:
    app.cli.add_command(suppressions_cli)
    app.cli.add_command(lists_cli)
    app.cli.add_command(events_cli)
    app.cli.add_command(unsubscribe_link_command)
    app.cli.add_command(clean_command)
    app.cli.add_command(destinations_cli)
    app.cli.add_command(sync_command)
