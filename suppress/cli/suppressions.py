"""``flask --app wsgi suppressions ...``: add, lift and check an address; import addresses and
partners' hashed opt-outs; suppress, lift and list whole domains; export.

Each command parses and reports; ``suppressions`` does the work and writes the audit entries.
"""

import csv
import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import click
from flask import current_app
from flask.cli import AppGroup

from suppress import events, lists, suppressions
from suppress.addresses import normalise, normalise_and_hash
from suppress.cli.common import (
    csv_input_options,
    domain_command,
    iso_datetime,
    operator,
    options,
    reject_row,
    usable_rows,
)
from suppress.csvfiles import CsvFile, detect_encoding
from suppress.models import (
    GLOBAL_SCOPE,
    REASONS,
    DomainSuppression,
    Suppression,
    SuppressionTerms,
    db,
)

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

SUPPRESSING_EVENTS = ("bounced", "complained", "unsubscribed", "resubscribed")

suppressions_cli = AppGroup(
    "suppressions", help="Add, lift, check, import and export; suppress whole domains."
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
            usable_rows(table, reject_row),
            source=f"import:{source or path.name}",
            actor=operator(),
            batch_size=current_app.config["IMPORT_BATCH_SIZE"],
            on_reject=reject_row,
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
            reject_row,
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
