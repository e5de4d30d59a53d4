import gc
import hashlib
import json
import os
from datetime import UTC, datetime

import pytest
from flask import current_app
from sqlalchemy import func, select

from suppress import clean
from suppress.clean import firstlook
from suppress.events import Rules, record_events
from suppress.models import (
    Address,
    AuditEntry,
    DomainSuppression,
    HashedSuppression,
    Subscription,
    Suppression,
    db,
)
from suppress.providers.delivery import Event
from suppress.suppressions import is_suppressed


def run(runner, *args):
    return runner.invoke(args=[str(arg) for arg in args])


def count_suppressions():
    return db.session.scalar(select(func.count()).select_from(Suppression))


def count_domain_suppressions():
    return db.session.scalar(select(func.count()).select_from(DomainSuppression))


def test_add_then_check_in_another_case_reports_suppressed(runner):
    added = run(runner, "suppressions", "add", "a@b.fi", "--reason", "unsubscribed")
    assert added.exit_code == 0, added.output
    checked = run(runner, "suppressions", "check", "A@B.FI")
    assert checked.exit_code == 0
    assert "A@B.FI: suppressed (b2b address)" in checked.output
    assert "global: unsubscribed from cli:" in checked.output


def test_second_add_changes_nothing(runner):
    run(runner, "suppressions", "add", "a@b.fi", "--reason", "unsubscribed")
    first = db.session.scalars(select(Suppression)).one()
    again = run(runner, "suppressions", "add", "a@b.fi", "--reason", "unsubscribed")
    assert again.exit_code == 0
    assert "already suppressed" in again.output
    db.session.expire_all()
    assert db.session.scalars(select(Suppression)).one().created_at == first.created_at
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 1


def test_check_of_an_unknown_address_says_not_suppressed(runner):
    checked = run(runner, "suppressions", "check", "nobody@b.fi")
    assert checked.exit_code == 0
    assert "nobody@b.fi: not suppressed (b2b address)" in checked.output


def test_lift_of_a_complaint_without_override_is_refused_with_a_clear_message(runner):
    run(runner, "suppressions", "add", "a@b.fi", "--reason", "complained")
    refused = run(runner, "suppressions", "lift", "a@b.fi")
    assert refused.exit_code == 1
    assert "needs an explicit override reason" in refused.output
    assert is_suppressed("a@b.fi")
    lifted = run(runner, "suppressions", "lift", "a@b.fi", "--override-reason", "asked in writing")
    assert lifted.exit_code == 0
    assert not is_suppressed("a@b.fi")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "not-an-address"], "Error:"),
        (["add", "a@b.fi", "--scope", "nosuch"], "unknown scope 'nosuch'"),
        (["add", "a@b.fi", "--reason", "bored"], "Invalid value for '--reason'"),
        (["add", "a@b.fi", "--expires", "next week"], "not an ISO 8601"),
        (["lift", "a@b.fi"], "not suppressed"),
        (["export", "--scope", "nosuch"], "unknown scope"),
        (["add-domain", "matti@kilpailija.fi"], "holds no '@'"),
        (["add-domain", "kilpailija..fi"], "Empty Label"),
        (["add-domain", "*"], "'*' may only open a pattern"),
        (["add-domain", "a.*.kilpailija.fi"], "'*' may only open a pattern"),
        (["add-domain", ""], "names no domain"),
        (["add-domain", "kilpailija.fi", "--scope", "nosuch"], "unknown scope 'nosuch'"),
        (["add-domain", "kilpailija.fi", "--reason", "bored"], "Invalid value for '--reason'"),
        (["add-domain", "kilpailija.fi", "--expires", "soon"], "not an ISO 8601"),
        (["lift-domain", "kilpailija.fi"], "kilpailija.fi is not suppressed in scope 'global'"),
        (["domains", "--scope", "nosuch"], "unknown scope 'nosuch'"),
    ],
)
def test_bad_input_gets_a_message_and_a_non_zero_exit(runner, args, message):
    result = run(runner, "suppressions", *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "matti" not in result.output
    assert count_suppressions() == 0
    assert count_domain_suppressions() == 0


def test_add_with_expiry_shows_the_date_in_check(runner):
    run(
        runner,
        "suppressions",
        "add",
        "a@b.fi",
        "--reason",
        "soft_bounced",
        "--expires",
        "2999-01-01",
    )
    assert (
        "expires 2999-01-01 00:00 UTC [active]"
        in run(runner, "suppressions", "check", "a@b.fi").output
    )


def test_import_reports_each_rejected_row_with_its_line(runner, write_csv):
    path = write_csv("email,reason\na@b.fi,unsubscribed\nnot-an-address,\nb@b.fi,meh\nc@b.fi,\n")
    result = run(runner, "suppressions", "import", path)
    assert result.exit_code == 0, result.output
    assert "2 written, 0 already suppressed, 2 rejected" in result.stdout
    assert "line 3: " in result.stderr
    assert "line 4: unknown reason 'meh'" in result.stderr
    assert is_suppressed("c@b.fi")


def test_import_of_an_excel_file_saved_in_finland(runner, write_csv):
    """Semicolons, a byte-order mark and Finnish letters: Excel's 'CSV UTF-8'."""
    path = write_csv(
        "\ufeffEmail;Note\r\nmatti@yritys.fi;Pyysi poistoa puhelimessa\r\nÄijä@Yritys.fi;ä\r\n"
    )
    result = run(runner, "suppressions", "import", path)
    assert result.exit_code == 0, result.output
    assert "2 written" in result.output
    assert is_suppressed("äijä@yritys.fi")


def test_import_of_a_cp1252_file(runner, write_csv):
    path = write_csv("email;note\r\nmatti@yritys.fi;Myyntipäällikkö\r\n", encoding="cp1252")
    result = run(runner, "suppressions", "import", path)
    assert result.exit_code == 0, result.output
    note = db.session.scalar(select(Suppression.note))
    assert note == "Myyntipäällikkö"


def test_import_names_the_source_after_the_file(runner, write_csv):
    run(runner, "suppressions", "import", write_csv("email\na@b.fi\n", name="old-esp.csv"))
    assert db.session.scalar(select(Suppression.source)) == "import:old-esp.csv"


def test_import_reports_ragged_rows(runner, write_csv):
    path = write_csv("email,note\na@b.fi,x,extra\nb@b.fi\nc@b.fi,ok\nd@b.fi,ok,\n")
    result = run(runner, "suppressions", "import", path)
    assert result.exit_code == 0
    assert "line 2: 3 fields where the header has 2" in result.stderr
    assert "line 3: 1 fields where the header has 2" in result.stderr
    assert count_suppressions() == 2


@pytest.mark.parametrize(
    ("content", "encoding", "message"),
    [
        ("name,phone\nMatti,040\n", "utf-8", "no 'email' column in the header"),
        ("", "utf-8", "the file is empty"),
        ("email\na@b.fi\n", "utf-32", "NUL characters"),
        ("email\nm\xe4tti@b.fi\n\x81\n", "latin-1", "not text in UTF-8 nor cp1252"),
        ("email,Email\na@b.fi,a@b.fi\n", "utf-8", "names a column twice"),
    ],
)
def test_import_of_an_unreadable_file_fails_and_stores_nothing(
    runner, write_csv, content, encoding, message
):
    run(runner, "suppressions", "add", "kept@b.fi")
    result = run(runner, "suppressions", "import", write_csv(content, encoding=encoding))
    assert result.exit_code == 1
    assert message in result.output
    assert count_suppressions() == 1


def test_import_of_a_missing_file_fails(runner, tmp_path):
    result = run(runner, "suppressions", "import", tmp_path / "nope.csv")
    assert result.exit_code == 1
    assert "cannot read" in result.output


def test_import_where_every_row_is_refused_fails(runner, write_csv):
    result = run(runner, "suppressions", "import", write_csv("email\nnope\nalso-nope\n"))
    assert result.exit_code == 1
    assert "no row could be imported" in result.output


def test_export_writes_active_suppressions_as_csv(runner, tmp_path):
    run(runner, "suppressions", "add", "a@b.fi", "--reason", "unsubscribed", "--note", "x")
    run(
        runner,
        "suppressions",
        "add",
        "old@b.fi",
        "--reason",
        "soft_bounced",
        "--expires",
        "2000-01-01",
    )
    out = tmp_path / "out.csv"
    assert run(runner, "suppressions", "export", "--out", out).exit_code == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "email,email_hash,scope,reason,source,created_at,expires_at,note"
    assert len(lines) == 2
    assert lines[1].startswith("a@b.fi,")
    assert ",global,unsubscribed,cli:" in lines[1]


@pytest.mark.parametrize("algorithm", ["md5", "sha256", "sha512"])
def test_export_hashed_writes_one_hash_per_address(runner, algorithm):
    run(runner, "lists", "create", "news")
    run(runner, "suppressions", "add", "a@b.fi")
    run(runner, "suppressions", "add", "a@b.fi", "--scope", "news")
    result = run(runner, "suppressions", "export", "--hash", algorithm)
    expected = hashlib.new(algorithm, b"a@b.fi").hexdigest()
    assert result.stdout.splitlines() == [expected]


def test_export_hashed_skips_erased_addresses_except_in_sha256(runner):
    run(runner, "suppressions", "add", "gone@b.fi", "--reason", "erased")
    db.session.execute(Suppression.__table__.update().values(email=None))
    db.session.commit()
    md5 = run(runner, "suppressions", "export", "--hash", "md5")
    assert md5.stdout == ""
    assert "1 erased addresses have no md5" in md5.stderr
    sha = run(runner, "suppressions", "export", "--hash", "sha256")
    assert sha.stdout.strip() == hashlib.sha256(b"gone@b.fi").hexdigest()


def test_lists_create_makes_a_scope(runner):
    assert run(runner, "lists", "create", "news", "--name", "Uutiskirje").exit_code == 0
    assert run(runner, "suppressions", "add", "a@b.fi", "--scope", "news").exit_code == 0
    assert is_suppressed("a@b.fi", list="news")


@pytest.mark.parametrize("slug", ["global", "Not Valid", "news"])
def test_lists_create_refuses_bad_or_taken_slugs(runner, slug):
    run(runner, "lists", "create", "news")
    result = run(runner, "lists", "create", slug)
    assert result.exit_code == 1
    assert "Error:" in result.output


def test_lists_create_takes_the_audience_and_the_customer_exception(runner):
    """R-FI-1, R-FI-5: a list says who it is for and whether customers need no consent."""
    created = run(
        runner, "lists", "create", "tarjoukset", "--audience", "consumer", "--similar-products"
    )
    assert created.exit_code == 0, created.output
    assert "created list tarjoukset (consumer)" in created.output
    shown = run(runner, "lists", "show", "tarjoukset")
    assert "audience: consumer" in shown.output
    assert "customer relationship instead of consent (similar products): yes" in shown.output


def test_lists_list_shows_each_list_with_its_audience_and_counts(runner, write_csv):
    run(runner, "lists", "create", "uutiskirje", "--name", "Uutiskirje")
    run(runner, "lists", "create", "tarjoukset", "--audience", "consumer")
    run(runner, "lists", "import", "uutiskirje", write_csv("email\na@yritys.fi\nb@yritys.fi\n"))
    lines = run(runner, "lists", "list").output.splitlines()
    assert lines[0].split() == [
        "tarjoukset",
        "consumer",
        "0",
        "subscribed",
        "0",
        "unsubscribed",
        "tarjoukset",
    ]
    assert lines[1].split() == [
        "uutiskirje",
        "b2b",
        "2",
        "subscribed",
        "0",
        "unsubscribed",
        "Uutiskirje",
    ]


def test_lists_list_without_lists_says_how_to_make_one(runner):
    assert "no lists yet" in run(runner, "lists", "list").output


def test_lists_show_counts_subscribers_by_basis_and_the_lists_own_suppressions(runner, write_csv):
    run(runner, "lists", "create", "uutiskirje", "--description", "Kuukausikirje asiakkaille")
    path = write_csv("email,basis\na@yritys.fi,legitimate_interest\nb@yritys.fi,\n")
    run(runner, "lists", "import", "uutiskirje", path)
    run(runner, "suppressions", "add", "c@yritys.fi", "--scope", "uutiskirje")
    shown = run(runner, "lists", "show", "uutiskirje")
    assert shown.exit_code == 0, shown.output
    assert "Kuukausikirje asiakkaille" in shown.output
    assert "subscribed: 2, unsubscribed: 0" in shown.output
    assert "legitimate_interest: 1" in shown.output
    assert "no basis recorded: 1" in shown.output
    assert "suppressed on this list only: 1" in shown.output


@pytest.mark.parametrize("command", ["show", "import"])
def test_lists_commands_refuse_an_unknown_list(runner, write_csv, command):
    extra = [write_csv("email\na@b.fi\n")] if command == "import" else []
    result = run(runner, "lists", command, "nosuch", *extra)
    assert result.exit_code == 1
    assert "no mailing list with the slug 'nosuch'" in result.output


def test_lists_import_of_an_excel_file_saved_in_finland(runner, write_csv):
    """R-GDPR-2, R-FI-2: semicolons and a BOM; each refused row is named by its line."""
    run(runner, "lists", "create", "uutiskirje")
    path = write_csv(
        "\ufeffSähköposti;Email;Basis;Role_note;Consent_at;Consent_source;Consent_text_version\r\n"
        "Matti Meikäläinen;Matti.Meikalainen@Yritys.fi;b2b_role;Ostopäällikkö;;;\r\n"
        "Maija;maija@luukku.com;consent;;2024-05-01;Asuntomessut;v3\r\n"
        "Pekka;pekka@gmail.com;consent;;;;\r\n"
        "Liisa;liisa@yritys.fi;b2b_role;;;;\r\n"
    )
    result = run(runner, "lists", "import", "uutiskirje", path)
    assert result.exit_code == 0, result.output
    assert "2 subscribed, 0 updated, 0 already subscribed, 0 skipped, 2 rejected" in result.stdout
    assert "line 4: a consumer's consent must be demonstrable" in result.stderr
    assert "line 5: basis b2b_role needs a role_note" in result.stderr
    assert "pekka" not in result.stderr
    assert "liisa" not in result.stderr


def test_lists_import_of_a_cp1252_file_keeps_the_role_note(runner, write_csv):
    run(runner, "lists", "create", "uutiskirje")
    path = write_csv(
        "email;basis;role_note\r\nmatti@yritys.fi;b2b_role;Myyntipäällikkö\r\n",
        encoding="cp1252",
    )
    assert run(runner, "lists", "import", "uutiskirje", path).exit_code == 0
    assert db.session.scalar(select(Subscription.basis)) == "b2b_role"


def test_lists_import_reports_skipped_rows_and_keeps_them_out(runner, write_csv):
    """An import never re-subscribes an address that complained."""
    run(runner, "lists", "create", "uutiskirje")
    run(runner, "suppressions", "add", "matti@yritys.fi", "--reason", "complained")
    path = write_csv("email\nmatti@yritys.fi\n", name="crm.csv")
    result = run(runner, "lists", "import", "uutiskirje", path)
    assert result.exit_code == 0, result.output
    assert "0 subscribed, 0 updated, 0 already subscribed, 1 skipped" in result.stdout
    assert "line 2: skipped: suppressed in global (complained)" in result.stderr
    assert db.session.scalar(select(func.count()).select_from(Subscription)) == 0


def test_lists_import_where_every_row_is_refused_fails(runner, write_csv):
    run(runner, "lists", "create", "uutiskirje")
    result = run(
        runner, "lists", "import", "uutiskirje", write_csv("email,basis\nnope,\nx@y.fi,z\n")
    )
    assert result.exit_code == 1
    assert "no row could be imported" in result.output


def test_lists_import_without_an_email_column_fails(runner, write_csv):
    run(runner, "lists", "create", "uutiskirje")
    result = run(runner, "lists", "import", "uutiskirje", write_csv("nimi;puhelin\nMatti;040\n"))
    assert result.exit_code == 1
    assert "no 'email' column in the header" in result.output


def test_lists_import_names_the_source_after_the_file_and_shows_progress(
    runner, write_csv, monkeypatch
):
    monkeypatch.setattr("suppress.cli.common.watched", lambda: True)
    run(runner, "lists", "create", "uutiskirje")
    path = write_csv("email\n" + "".join(f"u{n}@yritys.fi\n" for n in range(5)), name="crm.csv")
    result = run(runner, "lists", "import", "uutiskirje", path)
    assert "importing" in result.stderr
    assert db.session.scalars(select(Subscription.source)).all() == ["import:crm.csv"] * 5


def test_unreachable_database_gets_a_message_without_the_password(make_app):
    app = make_app(DATABASE_URL="postgresql+psycopg://user:hunter2@127.0.0.1:1/none")
    result = app.test_cli_runner().invoke(args=["suppressions", "check", "a@b.fi"])
    assert result.exit_code == 1
    assert "the database cannot be reached" in result.output
    assert "hunter2" not in result.output


def test_import_shows_progress_when_watched(runner, write_csv, monkeypatch):
    monkeypatch.setattr("suppress.cli.common.watched", lambda: True)
    path = write_csv("email\n" + "".join(f"u{number}@b.fi\n" for number in range(5)))
    result = run(runner, "suppressions", "import", path)
    assert result.exit_code == 0
    assert "importing" in result.stderr
    assert count_suppressions() == 5


@pytest.mark.parametrize(
    ("email", "kind"),
    [("myynti@yritys.fi", "role"), ("matti@luukku.com", "consumer"), ("matti@yritys.fi", "b2b")],
)
def test_check_shows_the_kind_of_address(runner, email, kind):
    """R-FI-2: role, consumer and B2B addresses are told apart."""
    assert f"not suppressed ({kind} address)" in run(runner, "suppressions", "check", email).output


def test_check_uses_the_operators_extra_role_names_and_consumer_domains(make_app):
    app = make_app(ROLE_LOCAL_PARTS="hallitus", CONSUMER_DOMAINS="Kotiposti.FI,äö.fi")
    cli = app.test_cli_runner()
    assert "(role address)" in cli.invoke(args=["suppressions", "check", "hallitus@x.fi"]).output
    for email in ("a@kotiposti.fi", "a@ÄÖ.fi"):
        output = cli.invoke(args=["suppressions", "check", email]).output
        assert "(consumer address)" in output


def record_sample_events():
    rules = Rules.from_config(current_app.config)
    at = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
    sample = [
        Event(
            "mailgun",
            "e1",
            "delivered",
            "a@b.fi",
            at,
            "delivered",
            message_id="m1",
            sender="Uutiset <news@Yritys.fi>",
        ),
        Event("mailgun", "e2", "bounced", "a@b.fi", at, "failed", bounce_class="hard"),
        Event("sendgrid", "e3", "opened", "c@d.fi", at, "open", machine=True),
    ]
    record_events("mailgun", sample[:2], rules)
    record_events("sendgrid", sample[2:], rules)


def test_check_shows_the_events_behind_a_suppression(runner):
    record_sample_events()
    output = run(runner, "suppressions", "check", "A@B.fi").output
    assert "global: bounced from webhook:mailgun" in output
    assert "2026-11-02 08:30 UTC mailgun: bounced (hard)" in output
    assert "delivered" not in output


def test_events_export_writes_one_json_object_per_event(runner):
    ensure = run(runner, "unsubscribe-link", "a@b.fi")
    assert ensure.exit_code == 0
    record_sample_events()
    exported = run(runner, "events", "export")
    records = [json.loads(line) for line in exported.output.splitlines()]
    assert [record["type"] for record in records] == ["delivered", "bounced", "opened"]
    assert records[0] == {
        "provider": "mailgun",
        "provider_event_id": "e1",
        "type": "delivered",
        "bounce_class": None,
        "address": "a@b.fi",
        "occurred_at": "2026-11-02T08:30:00+00:00",
        "machine": False,
        "list": None,
        "campaign": None,
        "message_id": "m1",
        "url": None,
        "sender_domain": "yritys.fi",
    }
    assert records[2]["address"] is None  # not in the register
    assert records[2]["machine"] is True


def test_events_export_filters_by_provider_address_and_time(runner):
    record_sample_events()
    by_provider = run(runner, "events", "export", "--provider", "sendgrid").output
    assert [json.loads(line)["type"] for line in by_provider.splitlines()] == ["opened"]
    by_address = run(runner, "events", "export", "--address", "A@b.FI").output
    assert len(by_address.splitlines()) == 2
    assert run(runner, "events", "export", "--since", "2026-11-03").output == ""


def test_events_export_refuses_a_bad_time(runner):
    refused = run(runner, "events", "export", "--since", "yesterday")
    assert refused.exit_code == 2
    assert "not an ISO 8601 date or time" in refused.output


# A file counts as long from this size on: the register is on its way into memory, and the
# worker forked, before the file is opened; or, at the usual size, not for these short files.
AHEAD_OR_NOT = pytest.mark.parametrize("long_file_bytes", [0, clean.LONG_FILE_BYTES])


@AHEAD_OR_NOT
@pytest.mark.parametrize("chunk_rows", [2, 10_000])
def test_clean_splits_the_file_and_summarises_by_reason(
    runner, write_csv, tmp_path, monkeypatch, chunk_rows, long_file_bytes
):
    """In one chunk, or in many through the worker and the suppressions in memory."""
    monkeypatch.setattr(clean, "CHUNK_ROWS", chunk_rows)
    monkeypatch.setattr(clean, "LONG_FILE_BYTES", long_file_bytes)
    run(runner, "suppressions", "add", "s@b.fi", "--reason", "complained")
    path = write_csv(
        '\ufeffName;Email\r\n"Oy; Ab";A@b.fi\r\nx;a@B.fi\r\n\r\ny;s@b.fi\r\nz;bad\r\nw\r\n'
    )
    out, rejects = tmp_path / "clean.csv", tmp_path / "rejects.csv"
    result = run(runner, "clean", path, "--out", out, "--rejects", rejects)
    assert result.exit_code == 0, result.output
    assert "kept 1\nrejected 4: invalid 2, duplicate 1, suppressed 1" in result.output
    assert out.read_bytes() == b'Name;Email\r\n"Oy; Ab";A@b.fi\r\n'
    rejected = rejects.read_text().splitlines()
    assert rejected[0] == "Name;Email;reason;detail"
    assert rejected[2] == "y;s@b.fi;suppressed;global: complained"
    input_rows = 5
    assert len(out.read_text().splitlines()) - 1 + len(rejected) - 1 == input_rows
    assert gc.isenabled()


@AHEAD_OR_NOT
def test_clean_whose_worker_dies_says_so(runner, write_csv, tmp_path, monkeypatch, long_file_bytes):
    monkeypatch.setattr(clean, "CHUNK_ROWS", 1)
    monkeypatch.setattr(clean, "LONG_FILE_BYTES", long_file_bytes)
    monkeypatch.setattr(firstlook, "normal_forms", lambda rows, column: os._exit(3))
    path = write_csv("email\na@b.fi\nb@b.fi\n")
    result = run(runner, "clean", path, "--out", tmp_path / "o", "--rejects", tmp_path / "r")
    assert result.exit_code == 1
    assert "Error: the address worker stopped (exit status 3)" in result.output


@AHEAD_OR_NOT
def test_clean_without_an_address_column_names_the_columns_found(
    runner, write_csv, tmp_path, monkeypatch, long_file_bytes
):
    monkeypatch.setattr(clean, "LONG_FILE_BYTES", long_file_bytes)
    path = write_csv("Name,Mail\nx,a@b.fi\n")
    out, rejects = tmp_path / "clean.csv", tmp_path / "rejects.csv"
    result = run(runner, "clean", path, "--out", out, "--rejects", rejects)
    assert result.exit_code == 1
    assert "no 'email' column in the header (found 'Name', 'Mail')" in result.output
    named = run(runner, "clean", path, "--out", out, "--rejects", rejects, "--email-column", "MAIL")
    assert named.exit_code == 0, named.output


@AHEAD_OR_NOT
def test_clean_of_an_undecodable_file_says_so(runner, tmp_path, monkeypatch, long_file_bytes):
    monkeypatch.setattr(clean, "LONG_FILE_BYTES", long_file_bytes)
    path = tmp_path / "list.csv"
    path.write_bytes(b"email\x00\n\x81\n")
    result = run(runner, "clean", path, "--out", tmp_path / "o", "--rejects", tmp_path / "r")
    assert result.exit_code == 1
    assert "Error: the file" in result.output


def test_clean_of_an_unknown_list_is_refused(runner, write_csv, tmp_path):
    path = write_csv("email\na@b.fi\n")
    result = run(
        runner,
        "clean",
        path,
        "--out",
        tmp_path / "o",
        "--rejects",
        tmp_path / "r",
        "--list",
        "nope",
    )
    assert result.exit_code == 1
    assert "no mailing list with the slug 'nope'" in result.output


def test_clean_with_links_stores_the_addresses_the_links_need(runner, write_csv, tmp_path):
    path = write_csv("email\nk@b.fi\n")
    out = tmp_path / "clean.csv"
    result = run(runner, "clean", path, "--out", out, "--rejects", tmp_path / "r", "--links")
    assert result.exit_code == 0, result.output
    header, row = out.read_text(encoding="utf-8").splitlines()
    assert header == "email,unsubscribe_url,list_unsubscribe,list_unsubscribe_post"
    assert "/u/" in row
    assert row.endswith("List-Unsubscribe=One-Click")
    assert db.session.scalar(select(func.count()).select_from(Address)) == 1


def test_import_hashes_reports_each_refused_line_and_stores_the_rest(runner, write_csv):
    digest = hashlib.md5(b"a@b.fi").hexdigest()
    path = write_csv(f"{digest.upper()}\r\nnot-a-hash\r\n{digest[:31]}\r\n", name="opt-out.txt")
    result = run(runner, "suppressions", "import-hashes", path, "--algorithm", "md5")
    assert result.exit_code == 0, result.output
    assert "1 written, 0 already stored, 2 rejected" in result.stdout
    assert "line 2: not a hexadecimal md5 hash" in result.stderr
    assert "line 3: 31 hex digits where md5 has 32" in result.stderr
    assert db.session.scalar(select(HashedSuppression.source)) == "opt-out.txt"


def test_import_hashes_takes_the_source_name(runner, write_csv):
    path = write_csv(hashlib.sha256(b"a@b.fi").hexdigest() + "\n")
    run(runner, "suppressions", "import-hashes", path, "--algorithm", "sha256", "--source", "net")
    assert db.session.scalar(select(HashedSuppression.source)) == "net"


def test_import_hashes_where_no_line_is_a_hash_fails(runner, write_csv):
    path = write_csv("a@b.fi\n")
    result = run(runner, "suppressions", "import-hashes", path, "--algorithm", "sha512")
    assert result.exit_code == 1
    assert "line 1: not a hexadecimal sha512 hash" in result.stderr
    assert "no sha512 hash could be read" in result.output


def test_import_hashes_needs_an_algorithm(runner, write_csv):
    result = run(runner, "suppressions", "import-hashes", write_csv("00\n"))
    assert result.exit_code == 2
    assert "--algorithm" in result.output


@pytest.mark.parametrize("algorithm", ["md5", "sha256", "sha512"])
def test_hashes_exported_by_one_service_import_into_another_and_clean_the_list(
    runner, tmp_path, write_csv, algorithm
):
    run(runner, "suppressions", "add", "Gone@B.fi")
    exported = tmp_path / "exchange.txt"
    run(runner, "suppressions", "export", "--hash", algorithm, "--out", str(exported))
    db.session.execute(Suppression.__table__.delete())
    db.session.commit()
    result = run(runner, "suppressions", "import-hashes", exported, "--algorithm", algorithm)
    assert "1 written" in result.stdout
    sendlist = write_csv("email\ngone@b.fi\nkept@b.fi\n")
    out, rejects = tmp_path / "clean.csv", tmp_path / "rejects.csv"
    run(runner, "clean", sendlist, "--out", str(out), "--rejects", str(rejects))
    assert rejects.read_text().splitlines()[1] == "gone@b.fi,suppressed,hashed list: exchange.txt"
    assert out.read_text().splitlines() == ["email", "kept@b.fi"]


def test_add_domain_then_check_shows_the_rule_that_covers_an_address(runner):
    added = run(runner, "suppressions", "add-domain", "*.Kilpailija.FI", "--note", "competitor")
    assert added.exit_code == 0, added.output
    assert "suppressed domain *.kilpailija.fi in global (manual)" in added.output
    checked = run(runner, "suppressions", "check", "Matti@Myynti.Kilpailija.fi")
    assert "Matti@Myynti.Kilpailija.fi: suppressed (b2b address)" in checked.output
    assert "  global: domain *.kilpailija.fi, manual from cli:" in checked.output
    apex = run(runner, "suppressions", "check", "matti@kilpailija.fi")
    assert "matti@kilpailija.fi: not suppressed" in apex.output


def test_add_domain_again_changes_nothing(runner):
    run(runner, "suppressions", "add-domain", "kilpailija.fi")
    again = run(runner, "suppressions", "add-domain", "KILPAILIJA.fi")
    assert again.exit_code == 0
    assert "domain kilpailija.fi already suppressed in global (manual) since" in again.output
    assert count_domain_suppressions() == 1


@pytest.mark.parametrize("pattern", ["fi", "*.fi", "*.co.uk"])
def test_add_domain_refuses_a_public_suffix_without_the_explicit_flag(runner, pattern):
    refused = run(runner, "suppressions", "add-domain", pattern)
    assert refused.exit_code == 1
    assert "public suffix" in refused.output
    assert "--allow-public-suffix" in refused.output
    assert count_domain_suppressions() == 0
    allowed = run(runner, "suppressions", "add-domain", pattern, "--allow-public-suffix")
    assert allowed.exit_code == 0, allowed.output
    assert count_domain_suppressions() == 1


def test_domains_lists_each_rule_with_its_scope_reason_source_and_note(runner):
    assert "no domain suppressions" in run(runner, "suppressions", "domains").output
    run(runner, "lists", "create", "uutiskirje")
    run(runner, "suppressions", "add-domain", "*.kilpailija.fi", "--note", "competitor")
    run(runner, "suppressions", "add-domain", "kilpailija.fi", "--reason", "objected")
    run(runner, "suppressions", "add-domain", "yritys.fi", "--scope", "uutiskirje")
    run(runner, "suppressions", "add-domain", "old.fi", "--expires", "2000-01-01")
    listed = run(runner, "suppressions", "domains").output.splitlines()
    assert [line.split()[0:2] for line in listed] == [
        ["kilpailija.fi", "global:"],
        ["*.kilpailija.fi", "global:"],
        ["yritys.fi", "uutiskirje:"],
    ]
    assert "objected from cli:" in listed[0]
    assert listed[1].endswith("[active]  competitor")
    only_list = run(runner, "suppressions", "domains", "--scope", "uutiskirje").output
    assert only_list.splitlines()[0].startswith("yritys.fi")
    everything = run(runner, "suppressions", "domains", "--all").output
    assert "old.fi" in everything
    assert "[lapsed]" in everything


def test_lift_domain_lifts_the_rule_in_its_scope(runner):
    run(runner, "suppressions", "add-domain", "kilpailija.fi", "--reason", "complained")
    refused = run(runner, "suppressions", "lift-domain", "kilpailija.fi")
    assert refused.exit_code == 1
    assert "needs an explicit override reason" in refused.output
    lifted = run(
        runner, "suppressions", "lift-domain", "KILPAILIJA.fi", "--override-reason", "contract"
    )
    assert lifted.exit_code == 0, lifted.output
    assert "lifted the complained suppression of domain kilpailija.fi in global" in lifted.output
    assert not is_suppressed("matti@kilpailija.fi")


@pytest.mark.parametrize("chunk_rows", [1, 10_000])
def test_clean_drops_rows_in_a_suppressed_domain_naming_the_rule(
    runner, write_csv, tmp_path, monkeypatch, chunk_rows
):
    """In one chunk, or in many through the worker and the suppressions in memory."""
    monkeypatch.setattr(clean, "CHUNK_ROWS", chunk_rows)
    run(runner, "suppressions", "add-domain", "*.kilpailija.fi")
    path = write_csv("email\nmatti@myynti.kilpailija.fi\nmatti@kilpailija.fi\n")
    out, rejects = tmp_path / "clean.csv", tmp_path / "rejects.csv"
    result = run(runner, "clean", path, "--out", out, "--rejects", rejects)
    assert result.exit_code == 0, result.output
    assert "kept 1\nrejected 1: suppressed 1" in result.stderr
    assert rejects.read_text().splitlines()[1] == (
        'matti@myynti.kilpailija.fi,suppressed,"domain *.kilpailija.fi (manual, global)"'
    )


def test_lists_import_skips_an_address_in_a_suppressed_domain(runner, write_csv):
    run(runner, "lists", "create", "uutiskirje")
    run(runner, "suppressions", "add-domain", "kilpailija.fi", "--scope", "uutiskirje")
    result = run(runner, "lists", "import", "uutiskirje", write_csv("email\nmatti@kilpailija.fi\n"))
    assert result.exit_code == 0, result.output
    assert "0 subscribed, 0 updated, 0 already subscribed, 1 skipped" in result.stdout
    assert (
        "line 2: skipped: suppressed by domain kilpailija.fi (manual, uutiskirje)" in result.stderr
    )
    assert db.session.scalar(select(func.count()).select_from(Subscription)) == 0


def csv_command(command, path, tmp_path):
    """The arguments of each command that reads a CSV file, for PATH."""
    return {
        "clean": ["clean", path, "--out", tmp_path / "o.csv", "--rejects", tmp_path / "r.csv"],
        "lists import": ["lists", "import", "uutiskirje", path],
        "suppressions import": ["suppressions", "import", path],
    }[command]


CSV_COMMANDS = ["clean", "lists import", "suppressions import"]


@pytest.mark.parametrize("command", CSV_COMMANDS)
@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--delimiter", "x"], "Invalid value for '--delimiter': unknown separator 'x'"),
        (["--delimiter", ";;"], "Invalid value for '--delimiter': unknown separator"),
        (["--encoding", "klingon"], "Invalid value for '--encoding': unknown encoding 'klingon'"),
        (["--encoding", "base64"], "Invalid value for '--encoding': unknown encoding 'base64'"),
    ],
)
def test_a_bad_delimiter_or_encoding_is_a_usage_error(
    runner, write_csv, tmp_path, command, option, message
):
    run(runner, "lists", "create", "uutiskirje")
    path = write_csv("email\nmatti@yritys.fi\n")
    result = run(runner, *csv_command(command, path, tmp_path), *option)
    assert result.exit_code == 2
    assert message in result.output
    assert count_suppressions() == 0
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("command", CSV_COMMANDS)
def test_an_encoding_that_does_not_decode_the_file_is_refused_with_the_offset(
    runner, write_csv, tmp_path, command
):
    run(runner, "lists", "create", "uutiskirje")
    path = write_csv("email;nimi\r\nmatti@yritys.fi;Mäkinen\r\n", encoding="cp1252")
    result = run(runner, *csv_command(command, path, tmp_path), "--encoding", "utf-8")
    assert result.exit_code == 1
    assert "the file is not text in utf-8: undecodable byte at offset 29" in result.output
    assert count_suppressions() == 0
    assert db.session.scalar(select(func.count()).select_from(Subscription)) == 0


@pytest.mark.parametrize("chunk_rows", [1, 10_000])
def test_clean_of_a_finnish_excel_file_with_a_named_delimiter_and_encoding(
    runner, write_csv, tmp_path, monkeypatch, chunk_rows
):
    """Semicolons, Windows-1252, CRLF, and a header whose quoted commas mislead the guess; in
    one chunk, or in many through the worker (a plain line read unsplit)."""
    monkeypatch.setattr(clean, "CHUNK_ROWS", chunk_rows)
    run(runner, "suppressions", "add", "pekka@yritys.fi")
    path = write_csv(
        '"Sukunimi, Etunimi, Titteli";Sähköposti;Huomautus\r\n'
        '"Äijälä, Matti, TJ";Matti@Yritys.fi;"Soita; ei\r\nsähköpostia perjantaisin"\r\n'
        '"Virtanen, Pekka, CFO";pekka@yritys.fi;€\r\n'
        "Mäki Liisa;liisa@yritys.fi;€\r\n",
        encoding="cp1252",
    )
    out, rejects = tmp_path / "clean.csv", tmp_path / "rejects.csv"
    args = ["clean", path, "--out", out, "--rejects", rejects, "--email-column", "sähköposti"]
    guessed = run(runner, *args)
    assert guessed.exit_code == 1
    assert "no 'sähköposti' column" in guessed.output
    result = run(runner, *args, "--delimiter", "semicolon", "--encoding", "cp1252")
    assert result.exit_code == 0, result.output
    assert out.read_bytes().decode() == (
        "Sukunimi, Etunimi, Titteli;Sähköposti;Huomautus\r\n"
        'Äijälä, Matti, TJ;Matti@Yritys.fi;"Soita; ei\r\nsähköpostia perjantaisin"\r\n'
        "Mäki Liisa;liisa@yritys.fi;€\r\n"
    )
    assert rejects.read_bytes().decode().splitlines()[1] == (
        "Virtanen, Pekka, CFO;pekka@yritys.fi;€;suppressed;global: manual"
    )


@pytest.mark.parametrize("delimiter", ["tab", "\t", "\\t"])
def test_suppressions_import_of_tab_separated_utf16_without_a_byte_order_mark(
    runner, write_csv, delimiter
):
    path = write_csv("email\tnote\r\nmatti@yritys.fi\tMäkinen, Matti\r\n", encoding="utf-16-le")
    result = run(
        runner, "suppressions", "import", path, "--delimiter", delimiter, "--encoding", "utf-16-le"
    )
    assert result.exit_code == 0, result.output
    assert db.session.scalar(select(Suppression.note)) == "Mäkinen, Matti"


def test_lists_import_of_a_pipe_separated_latin1_file_with_a_byte_order_mark_under_utf8(
    runner, write_csv
):
    run(runner, "lists", "create", "uutiskirje")
    path = write_csv("\ufeffEmail|Basis|Role_note\nmatti@yritys.fi|b2b_role|Myynti, Länsi\n")
    result = run(
        runner, "lists", "import", "uutiskirje", path, "--delimiter", "|", "--encoding", "UTF-8"
    )
    assert result.exit_code == 0, result.output
    assert "1 subscribed" in result.stdout
    assert db.session.scalar(select(Address.role_note)) == "Myynti, Länsi"
