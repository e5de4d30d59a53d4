import itertools
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import current_app

from suppress.events import Rules, record_events
from suppress.events.rates import DailyRate, DomainRates, complaint_rates
from suppress.providers.delivery import Event

ids = itertools.count(1)


def sent(kind: str, count: int, sender: str | None, when: datetime | None = None) -> None:
    """``count`` events of one kind, each to its own recipient, from ``sender`` (now unless
    told when)."""
    events = [
        Event(
            provider="test",
            provider_event_id=f"rate-{next(ids)}",
            type=kind,
            recipient=f"vastaanottaja{next(ids)}@asiakas.fi",
            raw_type=kind,
            occurred_at=when or datetime.now(UTC),
            sender=sender,
        )
        for _ in range(count)
    ]
    record_events("test", events, Rules.from_config(current_app.config))


def days(*figures: tuple[int, int]) -> DomainRates:
    start = date(2026, 11, 1)
    return DomainRates(
        "yritys.fi",
        [
            DailyRate(start + timedelta(days=n), delivered, complained)
            for n, (delivered, complained) in enumerate(figures)
        ],
    )


@pytest.mark.parametrize(
    ("complained", "status"),
    [(0, "ok"), (9, "ok"), (10, "warn"), (11, "warn"), (29, "warn"), (30, "critical")],
)
def test_a_days_status_follows_gmails_lines_with_the_boundary_breached(complained, status):
    assert DailyRate(date(2026, 11, 1), 10_000, complained).status == status


def test_eleven_complaints_in_ten_thousand_deliveries_is_a_rate_of_eleven_hundredths_percent():
    assert DailyRate(date(2026, 11, 1), 10_000, 11).rate == pytest.approx(0.0011)


def test_complaints_without_deliveries_have_no_rate_to_judge():
    day = DailyRate(date(2026, 11, 1), 0, 2)
    assert (day.rate, day.status) == (None, "unknown")


def test_the_days_below_the_limit_count_again_from_zero_after_a_breach():
    rates = days((1000, 0), (1000, 0), (1000, 5), (1000, 1), (1000, 0))
    assert (rates.days_below, rates.recovered) == (2, False)


def test_a_breached_domain_has_recovered_after_seven_clean_days():
    six = days((1000, 3), *[(1000, 0)] * 6)
    seven = days((1000, 3), *[(1000, 0)] * 7)
    assert (six.recovered, seven.recovered, seven.days_below) == (False, True, 7)


def test_a_day_without_deliveries_neither_counts_nor_breaks_the_run():
    rates = days((1000, 3), (1000, 0), (0, 0), (0, 4), (1000, 0))
    assert rates.days_below == 2


def test_a_domain_that_never_breached_has_nothing_to_recover_from():
    assert days((1000, 2)).recovered is True


def test_the_latest_day_decides_a_domains_status():
    assert days((1000, 5), (1000, 0)).status == "ok"


def test_rates_count_stored_deliveries_and_complaints_per_sending_domain_and_day(app):
    today = datetime.now(UTC)
    sent("delivered", 1000, "Uutiset <news@Yritys.fi>")
    sent("complained", 3, "news@yritys.fi")
    sent("opened", 50, "news@yritys.fi")
    sent("delivered", 400, "tiedotteet@toinen.fi", today - timedelta(days=1))
    sent("complained", 1, None)

    by_domain = {rates.domain: rates for rates in complaint_rates(today.date(), today.date())}
    first = complaint_rates(today.date() - timedelta(days=1), today.date())

    assert [(day.delivered, day.complained) for day in by_domain["yritys.fi"].days] == [(1000, 3)]
    assert by_domain["yritys.fi"].status == "critical"
    assert set(by_domain) == {"yritys.fi", None}
    assert [rates.domain for rates in first] == ["toinen.fi", "yritys.fi", None]


def test_events_without_a_sender_count_under_the_domain_named_for_them(app):
    today = datetime.now(UTC).date()
    sent("delivered", 1000, None)
    sent("delivered", 500, "news@yritys.fi")
    sent("complained", 2, "news@yritys.fi")

    (rates,) = complaint_rates(today, today, unreported_as="yritys.fi")

    assert (rates.domain, rates.delivered, rates.complained) == ("yritys.fi", 1500, 2)


def test_a_day_is_a_utc_day(app):
    today = datetime.now(UTC).date()
    midnight = datetime.combine(today, datetime.min.time(), UTC)
    sent("delivered", 2, "news@yritys.fi", midnight - timedelta(minutes=1))
    sent("delivered", 3, "news@yritys.fi", midnight)

    (rates,) = complaint_rates(today - timedelta(days=1), today)

    assert [(day.day, day.delivered) for day in rates.days] == [
        (today - timedelta(days=1), 2),
        (today, 3),
    ]


def test_the_command_shows_each_domains_rate_status_and_clean_days(app, runner):
    sent("delivered", 1000, "news@yritys.fi")
    sent("complained", 1, "news@yritys.fi")

    result = runner.invoke(args=["events", "rates", "--days", "7", "--daily"])

    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("yritys.fi"))
    assert line.split() == ["yritys.fi", "1,000", "1", "0.10", "%", "warn", "1"]
    assert datetime.now(UTC).date().isoformat() in result.output


def test_the_command_writes_json(app, runner):
    sent("delivered", 1000, "news@yritys.fi")
    sent("complained", 3, "news@yritys.fi")

    result = runner.invoke(args=["events", "rates", "--json"])

    (record,) = json.loads(result.output)
    assert record["sending_domain"] == "yritys.fi"
    assert (record["status"], record["recovered"], record["days_below_critical"]) == (
        "critical",
        False,
        0,
    )
    assert record["days"][0]["rate"] == pytest.approx(0.003)


def test_the_command_counts_unreported_senders_under_the_configured_domain(
    app, runner, monkeypatch
):
    monkeypatch.setitem(app.config, "SENDER_DOMAIN", "yritys.fi")
    sent("delivered", 1000, None)
    sent("complained", 5, "news@yritys.fi")

    result = runner.invoke(args=["events", "rates"])

    assert "(not reported)" not in result.output
    assert "(breached)" in result.output


def test_the_command_fails_for_monitoring_when_a_domain_reaches_the_level_asked(app, runner):
    sent("delivered", 1000, "news@yritys.fi")
    sent("complained", 1, "news@yritys.fi")

    assert runner.invoke(args=["events", "rates", "--fail-on", "warn"]).exit_code == 1
    assert runner.invoke(args=["events", "rates", "--fail-on", "critical"]).exit_code == 0


def test_the_command_says_when_there_is_nothing_to_judge(app, runner):
    result = runner.invoke(args=["events", "rates"])

    assert (result.exit_code, result.output) == (0, "no deliveries or complaints in the window\n")


def test_the_window_is_checked(app, runner):
    result = runner.invoke(args=["events", "rates", "--days", "0"])

    assert result.exit_code == 2
    assert "--days" in result.output
