"""What every command shares: refusals as one-line messages, the CSV input options, the
operator named in the audit trail, and the progress bar shown to a person watching.

Every refusal from the domain becomes a one-line message and exit status 1; a database that
cannot be reached says so (without the URL, which may hold a password) instead of a traceback.
No command lives here.
"""

import getpass
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar

import click
from sqlalchemy.exc import OperationalError

from suppress import clean, lists, suppressions, sync, tokens
from suppress.addresses import InvalidAddress
from suppress.config import ConfigError
from suppress.csvfiles import CsvError, CsvFile, separator_named, text_encoding
from suppress.domains import InvalidPattern
from suppress.models import db

PROGRESS_EVERY_ROWS = 10_000

Row = TypeVar("Row")
Command = TypeVar("Command", bound=Callable[..., Any])


def operator() -> str:
    """Who runs the command, for the audit trail."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


@contextmanager
def refusals_as_messages() -> Iterator[None]:
    try:
        yield
    except (
        InvalidAddress,
        InvalidPattern,
        suppressions.SuppressionError,
        lists.ListError,
        lists.ContactRefused,
        CsvError,
        clean.FirstLookFailed,
        tokens.InsecureBaseURL,
        tokens.CampaignTooLong,
        sync.SyncError,
        ConfigError,
    ) as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from None
    except OperationalError as error:
        db.session.rollback()
        reason = str(error.orig).splitlines()[0] if error.orig else type(error).__name__
        raise click.ClickException(f"the database cannot be reached: {reason}") from None


def domain_command(function: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with refusals_as_messages():
            return function(*args, **kwargs)

    return wrapper


def _parsed_by(parse: Callable[[str], str]) -> Callable[[click.Context, Any, str | None], Any]:
    """A click callback turning a domain refusal of an option's value into a usage error."""

    def callback(context: click.Context, parameter: Any, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return parse(value)
        except CsvError as error:
            raise click.BadParameter(str(error)) from None

    return callback


def options(*decorators: Callable[[Command], Command]) -> Callable[[Command], Command]:
    """Several click options as one decorator, for the commands that share them."""

    def apply(command: Command) -> Command:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


# The options of a command that reads a CSV file: without them, both are detected.
csv_input_options = options(
    click.option(
        "--delimiter",
        "separator",
        callback=_parsed_by(separator_named),
        help="The field separator: , ; | or a tab, or comma, semicolon, tab, pipe; "
        "default: detected from the header.",
    ),
    click.option(
        "--encoding",
        callback=_parsed_by(text_encoding),
        help="The file's encoding, a Python codec name (utf-8, cp1252, latin-1, utf-16...); "
        "default: detected.",
    ),
)


def iso_datetime(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def reject_row(line: int, problem: str) -> None:
    click.echo(f"line {line}: {problem}", err=True)


def watched() -> bool:
    """Whether a person is watching the terminal (progress bars would only litter a log)."""
    return sys.stderr.isatty()


def usable_rows(
    table: CsvFile, reject: Callable[[int, str], None]
) -> Iterator[tuple[int, Mapping[str, str]]]:
    """The rows that parsed, with a progress bar by bytes when a person is watching."""
    rows = table.rows()
    if watched():
        rows = with_progress(table, rows, "importing")
    for row in rows:
        if row.values is None:
            reject(row.line, row.problem or "unreadable row")
        else:
            yield row.line, row.values


def with_progress(
    table: CsvFile, rows: Iterable[Row], label: str, every: int = PROGRESS_EVERY_ROWS
) -> Iterator[Row]:
    """``rows`` with the bar moved to how far into the file reading has got, every ``every``."""
    with click.progressbar(length=table.size, label=label, file=sys.stderr) as bar:
        shown = 0
        for count, row in enumerate(rows, 1):
            if count % every == 0:
                bar.update(table.bytes_read - shown)
                shown = table.bytes_read
            yield row
        bar.update(table.size - shown)
