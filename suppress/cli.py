"""The ``flask --app wsgi ...`` commands: thin wrappers that parse, call the domain, report.

Every refusal from the domain becomes a one-line message and exit status 1; a database that
cannot be reached says so (without the URL, which may hold a password) instead of a traceback.
"""

import csv
import gc
import getpass
import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy.exc import OperationalError

from suppress import clean, events, lists, suppressions, sync, tokens
from suppress.addresses import InvalidAddress, normalise, normalise_and_hash
from suppress.config import ConfigError
from suppress.csvfiles import (
    CsvError,
    CsvFile,
    RawChunk,
    detect_encoding,
    separator_named,
    text_encoding,
)
from suppress.domains import InvalidPattern
from suppress.events import rates
from suppress.models import (
    AUDIENCES,
    GLOBAL_SCOPE,
    REASONS,
    DomainSuppression,
    Suppression,
    SuppressionTerms,
    db,
)
from suppress.tokens import MAX_CAMPAIGN_LENGTH

HASHES = {"md5": hashlib.md5, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
EXPORT_COLUMNS = (
    "email",
    "email_hash",
    "scope",
    "reason",
    "source",
    "created_at",
    "expires_at",
    "note",
)
PROGRESS_EVERY_ROWS = 10_000

Row = TypeVar("Row")
Command = TypeVar("Command", bound=Callable[..., Any])

SUPPRESSING_EVENTS = ("bounced", "complained", "unsubscribed", "resubscribed")

suppressions_cli = AppGroup(
    "suppressions", help="Add, lift, check, import and export; suppress whole domains."
)
lists_cli = AppGroup("lists", help="Mailing lists (the scopes of list-level suppressions).")
events_cli = AppGroup("events", help="The events the ESPs reported.")
destinations_cli = AppGroup(
    "destinations", help="The marketing tools the sync job keeps in step with the list."
)


def init_app(app: Flask) -> None:
    app.cli.add_command(suppressions_cli)
    app.cli.add_command(lists_cli)
    app.cli.add_command(events_cli)
    app.cli.add_command(unsubscribe_link_command)
    app.cli.add_command(clean_command)
    app.cli.add_command(destinations_cli)
    app.cli.add_command(sync_command)


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
# What adding a suppression takes, of an address or a domain, besides its note.
suppression_options = options(
    click.option("--reason", type=click.Choice(REASONS), default="manual", show_default=True),
    click.option(
        "--scope", default=GLOBAL_SCOPE, show_default=True, help="'global' or a list slug."
    ),
    click.option("--expires", help="ISO 8601 date or time when the suppression lapses."),
)
lift_options = options(
    click.option("--scope", default=GLOBAL_SCOPE, show_default=True),
    click.option("--why", help="Why the suppression is lifted."),
    click.option(
        "--override-reason",
        help="Required to lift a complaint, hard bounce or erasure: why mailing is right again.",
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


@suppressions_cli.command("add")
@click.argument("email")
@suppression_options
@click.option("--note", help="Why, for the audit trail (the address is redacted from it).")
@domain_command
def add_command(email: str, reason: str, scope: str, note: str | None, expires: str | None) -> None:
    """Suppress EMAIL (a repeat changes nothing)."""
    before = {
        (row.scope, row.reason, row.created_at) for row in suppressions.suppressions_for(email)
    }
    row = suppressions.suppress(
        email,
        reason=reason,
        source=operator(),
        scope=scope,
        note=note,
        expires_at=iso_datetime(expires),
    )
    db.session.commit()
    if (row.scope, row.reason, row.created_at) in before:
        click.echo(f"already suppressed in {row.scope} ({row.reason}) since {row.created_at:%F}")
    else:
        click.echo(f"suppressed in {row.scope} ({row.reason})")


@suppressions_cli.command("lift")
@click.argument("email")
@lift_options
@domain_command
def lift_command(email: str, scope: str, why: str | None, override_reason: str | None) -> None:
    """Lift the suppression of EMAIL in one scope."""
    row = suppressions.lift(
        email, actor=operator(), scope=scope, why=why, override_reason=override_reason
    )
    db.session.commit()
    click.echo(f"lifted the {row.reason} suppression in {row.scope}")


@suppressions_cli.command("check")
@click.argument("email")
@domain_command
def check_command(email: str) -> None:
    """Show whether EMAIL is suppressed, with every scope, reason, source and date, and the
    domain suppressions that cover it."""
    rows = [*suppressions.suppressions_for(email), *suppressions.domain_suppressions_for(email)]
    active = [row for row in rows if row.is_active()]
    status = "suppressed" if active else "not suppressed"
    click.echo(f"{email.strip()}: {status} ({lists.kind_of(normalise(email))} address)")
    for row in rows:
        pattern = f"domain {row.pattern}, " if isinstance(row, DomainSuppression) else ""
        click.echo(f"  {row.scope}: {pattern}{_described(row)}")
    reported = events.events_for(normalise_and_hash(email)[1], SUPPRESSING_EVENTS)
    if reported:
        click.echo("  reported by the ESPs:")
    for event in reported:
        detail = f" ({event.bounce_class})" if event.bounce_class else ""
        on_list = event.list_slug or event.list_ref
        detail += f" on {on_list}" if on_list else ""
        when = f"{event.occurred_at:%F %H:%M} UTC"
        click.echo(f"    {when} {event.provider}: {event.type}{detail}")


@suppressions_cli.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--source", help="Names the import in each row's source (default: file name).")
@csv_input_options
@domain_command
def import_command(
    path: Path, source: str | None, separator: str | None, encoding: str | None
) -> None:
    """Import suppressions from a CSV with an 'email' column (optional scope, reason, note).

    Separators and encodings as Excel saves them are understood. Each refused row is reported
    with its line number; the command fails only when no row could be imported.
    """
    with CsvFile(path, separator=separator, encoding=encoding) as table:
        table.require("email")
        report = suppressions.import_suppressions(
            _usable_rows(table, _reject),
            source=f"import:{source or path.name}",
            actor=operator(),
            batch_size=current_app.config["IMPORT_BATCH_SIZE"],
            on_reject=_reject,
        )
    click.echo(
        f"{report.written} written, {report.unchanged} already suppressed, "
        f"{report.rejected} rejected"
    )
    if report.rejected and not (report.written or report.unchanged):
        raise click.ClickException("no row could be imported")


@suppressions_cli.command("import-hashes")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--algorithm", type=click.Choice(sorted(HASHES)), required=True)
@click.option("--source", help="Names the list in each hash's source (default: file name).")
@domain_command
def import_hashes_command(path: Path, algorithm: str, source: str | None) -> None:
    """Import a partner's opt-out file of hashed normalised addresses.

    One hash per line, or a CSV column named 'hash', 'digest', 'email_hash' or after the
    algorithm. Each refused line is reported with its number; the command fails only when no
    hash could be read.
    """
    try:
        encoding = detect_encoding(path)
        stream = path.open(encoding=encoding, newline="")
    except OSError as error:
        raise click.ClickException(f"cannot read {path}: {error.strerror}") from None
    with stream:
        report = suppressions.import_hashed_suppressions(
            stream,
            algorithm,
            source or path.name,
            _reject,
            actor=operator(),
            batch_size=current_app.config["IMPORT_BATCH_SIZE"],
        )
    click.echo(
        f"{report.written} written, {report.unchanged} already stored, {report.rejected} rejected"
    )
    if not (report.written or report.unchanged):
        raise click.ClickException(f"no {algorithm} hash could be read")


def _described(row: SuppressionTerms) -> str:
    """A suppression's reason, source, dates and state."""
    state = "active" if row.is_active() else "lapsed"
    expires = f", expires {row.expires_at:%F %H:%M} UTC" if row.expires_at else ""
    return f"{row.reason} from {row.source}, since {row.created_at:%F %H:%M} UTC{expires} [{state}]"


@suppressions_cli.command("add-domain")
@click.argument("pattern")
@suppression_options
@click.option("--note", help="Why, for the audit trail.")
@click.option(
    "--allow-public-suffix",
    is_flag=True,
    help="Let PATTERN cover a top-level domain or another public suffix (fi, *.fi, *.co.uk).",
)
@domain_command
def add_domain_command(
    pattern: str,
    reason: str,
    scope: str,
    note: str | None,
    expires: str | None,
    allow_public_suffix: bool,
) -> None:
    """Suppress every address at a domain: PATTERN is example.fi (that domain only) or
    *.example.fi (its subdomains only; add both for a whole company)."""
    row, written = suppressions.suppress_domain(
        pattern,
        reason=reason,
        source=operator(),
        scope=scope,
        note=note,
        expires_at=iso_datetime(expires),
        allow_public_suffix=allow_public_suffix,
    )
    db.session.commit()
    if written:
        click.echo(f"suppressed domain {row.pattern} in {row.scope} ({row.reason})")
    else:
        click.echo(
            f"domain {row.pattern} already suppressed in {row.scope} ({row.reason}) "
            f"since {row.created_at:%F}"
        )


@suppressions_cli.command("lift-domain")
@click.argument("pattern")
@lift_options
@domain_command
def lift_domain_command(
    pattern: str, scope: str, why: str | None, override_reason: str | None
) -> None:
    """Lift the suppression of the domain PATTERN in one scope."""
    row = suppressions.lift_domain(
        pattern, actor=operator(), scope=scope, why=why, override_reason=override_reason
    )
    db.session.commit()
    click.echo(f"lifted the {row.reason} suppression of domain {row.pattern} in {row.scope}")


@suppressions_cli.command("domains")
@click.option("--scope", help="Only this scope ('global' or a list slug).")
@click.option("--all", "lapsed", is_flag=True, help="Lapsed domain suppressions too.")
@domain_command
def domains_command(scope: str | None, lapsed: bool) -> None:
    """List the domain suppressions, each domain's exact pattern beside its wildcard."""
    if scope is not None:
        suppressions.check_scope(scope)
    rows = suppressions.domain_suppressions(scope, lapsed=lapsed)
    if not rows:
        click.echo("no domain suppressions: flask --app wsgi suppressions add-domain PATTERN")
        return
    width = max(len(row.pattern) for row in rows)
    for row in rows:
        note = f"  {row.note}" if row.note else ""
        click.echo(f"{row.pattern:<{width}}  {row.scope}: {_described(row)}{note}")


def _reject(line: int, problem: str) -> None:
    click.echo(f"line {line}: {problem}", err=True)


def watched() -> bool:
    """Whether a person is watching the terminal (progress bars would only litter a log)."""
    return sys.stderr.isatty()


def _usable_rows(
    table: CsvFile, reject: Callable[[int, str], None]
) -> Iterator[tuple[int, Mapping[str, str]]]:
    """The rows that parsed, with a progress bar by bytes when a person is watching."""
    rows = table.rows()
    if watched():
        rows = _with_progress(table, rows, "importing")
    for row in rows:
        if row.values is None:
            reject(row.line, row.problem or "unreadable row")
        else:
            yield row.line, row.values


def _with_progress(
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


@suppressions_cli.command("export")
@click.option("--out", default="-", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--scope", help="Only this scope ('global' or a list slug).")
@click.option(
    "--hash",
    "algorithm",
    type=click.Choice(sorted(HASHES)),
    help="Write one hash per line (the partner exchange format) instead of CSV.",
)
@domain_command
def export_command(out: str, scope: str | None, algorithm: str | None) -> None:
    """Export the active suppressions, as CSV or as hashed addresses."""
    if scope is not None:
        suppressions.check_scope(scope)
    with click.open_file(out, "w", encoding="utf-8") as stream:
        if algorithm:
            skipped = _write_hashes(stream, scope, algorithm)
            if skipped:
                click.echo(
                    f"{skipped} erased addresses have no {algorithm} (only sha256 is kept)",
                    err=True,
                )
        else:
            _write_rows(stream, scope)


def _write_rows(stream: TextIO, scope: str | None) -> None:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    columns = [getattr(Suppression, name) for name in EXPORT_COLUMNS]
    for row in suppressions.active_suppressions(scope, *columns):
        writer.writerow(_cell(value) for value in row)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _write_hashes(stream: TextIO, scope: str | None, algorithm: str) -> int:
    """Unique hashes of active suppressed addresses; returns how many had no plain address."""
    digest_of = HASHES[algorithm]
    previous, skipped = None, 0
    for email_hash, email in suppressions.active_suppressions(
        scope, Suppression.email_hash, Suppression.email
    ):
        if email_hash == previous:
            continue
        previous = email_hash
        if algorithm == "sha256":
            stream.write(f"{email_hash}\n")
        elif email is None:
            skipped += 1
        else:
            stream.write(f"{digest_of(email.encode()).hexdigest()}\n")
    return skipped


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
            _usable_rows(table, _reject),
            source=f"import:{source or path.name}",
            actor=operator(),
            batch_size=current_app.config["IMPORT_BATCH_SIZE"],
            on_reject=_reject,
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
            records = _with_progress(table, records, "cleaning", every=1)
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
