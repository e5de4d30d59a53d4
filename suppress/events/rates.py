"""Daily complaint rates per sending domain, judged as Gmail and Yahoo judge them (R-MBP-4).

A day's rate is its complaints divided by its deliveries, each counted on the day the ESP says
it happened. Gmail wants the rate below 0.10 % and never at 0.30 %; a bulk sender at or above
0.30 % gets no mitigation until it has spent seven consecutive days below it. The thresholds are
compared in whole numbers, so 30 complaints in 10,000 deliveries is exactly the 0.30 % breach.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select

from suppress.models import Event as StoredEvent
from suppress.models import db

# Rates in parts per thousand: Gmail's monitoring line and its hard limit (also Yahoo's).
WARN_PER_MILLE = 1
CRITICAL_PER_MILLE = 3
RECOVERY_DAYS = 7
COUNTED = ("delivered", "complained")


@dataclass(frozen=True)
class DailyRate:
    """One sending domain's deliveries and complaints on one UTC day."""

    day: date
    delivered: int = 0
    complained: int = 0

    @property
    def rate(self) -> float | None:
        """Complaints per delivery; none on a day without deliveries, whose rate is unknown."""
        return self.complained / self.delivered if self.delivered else None

    @property
    def status(self) -> str:
        """``ok``, ``warn`` (at or past 0.10 %), ``critical`` (at or past 0.30 %), or
        ``unknown`` on a day with complaints but no deliveries to weigh them against."""
        if not self.delivered:
            return "unknown" if self.complained else "ok"
        if self.complained * 1000 >= self.delivered * CRITICAL_PER_MILLE:
            return "critical"
        if self.complained * 1000 >= self.delivered * WARN_PER_MILLE:
            return "warn"
        return "ok"


@dataclass
class DomainRates:
    """A sending domain's days in the window, oldest first. ``domain`` is None for the events
    of providers that do not report the sender."""

    domain: str | None
    days: list[DailyRate] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        return sum(day.delivered for day in self.days)

    @property
    def complained(self) -> int:
        return sum(day.complained for day in self.days)

    @property
    def status(self) -> str:
        """The most recent day's status: the one the mailbox providers act on now."""
        return self.days[-1].status if self.days else "ok"

    @property
    def days_below(self) -> int:
        """Consecutive days below 0.30 % since the last breach. A day without deliveries
        neither counts nor breaks the run: there was no rate to judge."""
        run = 0
        for day in self.days:
            if day.status == "critical":
                run = 0
            elif day.delivered:
                run += 1
        return run

    @property
    def recovered(self) -> bool:
        """Whether a domain that breached has had its seven clean days (or never breached)."""
        breached = any(day.status == "critical" for day in self.days)
        return not breached or self.days_below >= RECOVERY_DAYS


def complaint_rates(first: date, last: date, unreported_as: str | None = None) -> list[DomainRates]:
    """Every sending domain's daily rates from ``first`` to ``last`` (UTC days, inclusive),
    by domain name, with the domain that went unreported last. A sender who sends from one
    domain names it as ``unreported_as``, so that the events of providers that report no
    sender count under it."""
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    day = func.date(StoredEvent.occurred_at)
    query = (
        select(StoredEvent.sender_domain, day, StoredEvent.type, func.count())
        .where(StoredEvent.type.in_(COUNTED))
        .where(StoredEvent.occurred_at >= start, StoredEvent.occurred_at < end)
        .group_by(StoredEvent.sender_domain, day, StoredEvent.type)
    )
    counts: dict[str | None, dict[date, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: dict.fromkeys(COUNTED, 0))
    )
    for domain, on, kind, count in db.session.execute(query):
        counts[domain or unreported_as][_as_date(on)][kind] += count
    return [
        DomainRates(domain, [DailyRate(on, **tally) for on, tally in sorted(days.items())])
        for domain, days in sorted(counts.items(), key=lambda item: (item[0] is None, item[0]))
    ]


def _as_date(value: date | str) -> date:
    """SQLite's ``date()`` answers with text, PostgreSQL's with a date."""
    return value if isinstance(value, date) else date.fromisoformat(value)
