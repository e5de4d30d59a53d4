"""``flask --app wsgi clean``: a send list split into sendable and rejected rows by ``clean``,
with a progress bar for a person watching and a summary by reason.

It writes to the database only what ``--links`` needs, and owns that transaction.
"""

import gc
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from suppress import clean, lists
from suppress.cli.common import csv_input_options, domain_command, watched, with_progress
from suppress.csvfiles import CsvFile, RawChunk
from suppress.models import db


@click.command("clean")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The sendable rows.",
)
@click.option(
    "--rejects",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Every other row, with a reason and a detail column.",
)
@click.option("--list", "list_slug", help="The list the mail is for: its rules apply too.")
@click.option("--email-column", help="The address column (default: 'email', in any case).")
@click.option("--links", is_flag=True, help="Add each kept row's unsubscribe URL and headers.")
@csv_input_options
@domain_command
def clean_command(
    path: Path,
    out: Path,
    rejects: Path,
    list_slug: str | None,
    email_column: str | None,
    links: bool,
    separator: str | None,
    encoding: str | None,
) -> None:
    """Split the CSV at PATH into sendable rows (--out) and rejected rows (--rejects).

    Every column and the row order are kept. Nothing in the database changes, except that
    --links creates the address records its unsubscribe links point to.
    """
    mailing_list = lists.find_list(list_slug) if list_slug is not None else None
    with (
        _cycle_collector_paused(),
        clean.ahead_of(_size(path), mailing_list, links) as ahead,
        CsvFile(path, separator=separator, encoding=encoding) as table,
    ):
        index = clean.email_column(table.header, email_column)
        records: Iterable[RawChunk] = table.raw_chunks(clean.CHUNK_ROWS, padded_unsplit=True)
        if watched():
            records = with_progress(table, records, "cleaning", every=1)
        chunks = clean.cleaned_chunks(
            records,
            width=len(table.header),
            email_index=index,
            separator=table.separator,
            mailing_list=mailing_list,
            links=links,
            ahead=ahead,
        )
        with (
            out.open("w", encoding="utf-8", newline="") as kept,
            rejects.open("w", encoding="utf-8", newline="") as rejected,
        ):
            counts = clean.write_cleaned(
                chunks, kept, rejected, table.header, table.separator, links
            )
    if links:
        db.session.commit()
    else:
        db.session.rollback()
    click.echo(_clean_summary(counts), err=True)


def _size(path: Path) -> int:
    """The file's size, 0 when it cannot be read: opening it says why."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """No cycle collection while a file is cleaned, in this process and the worker it forks.

    A clean makes millions of short-lived objects and no reference cycles, and every few
    hundred of them would set the collector walking all the objects in flight again: a third
    of the time of a million rows. Reference counting still frees every row.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _clean_summary(counts: Counter[str | None]) -> str:
    kept = counts.pop(None, 0)
    total = sum(counts.values())
    by_reason = ", ".join(
        f"{reason} {counts[reason]}" for reason in clean.REJECT_REASONS if counts[reason]
    )
    return f"kept {kept}\nrejected {total}" + (f": {by_reason}" if by_reason else "")
