"""Recording what the provider answered for each claimed row, so that nothing is skipped and
nothing accepted is pushed again: a settled row is done, an unsettled one waits before its next
try, the longer the more tries failed. A pass counts the outcomes in its ``Report``.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Dialect, Integer, Text, any_, bindparam, cast, func, select, update
from sqlalchemy.dialects import postgresql

from suppress.database import Prepared
from suppress.models import SyncState, db
from suppress.providers.syncing import ACCEPTED, PENDING, Outcome
from suppress.sync.claims import Claimed, execute

# A change the provider could not settle waits this long before the next try, doubling per
# attempt up to the cap, so a provider that is down is not hammered by every pass.
FIRST_RETRY_DELAY = timedelta(seconds=30)
LONGEST_RETRY_DELAY = timedelta(hours=1)


@dataclass
class Report:
    """What one pass did for one destination."""

    destination: str
    planned: int = 0
    accepted: int = 0
    refused: int = 0
    pending: int = 0
    lifted: int = 0
    error: str | None = None

    def add(self, other: "Report") -> None:
        """Count in what another share of the same pass settled."""
        self.accepted += other.accepted
        self.refused += other.refused
        self.pending += other.pending
        self.lifted += other.lifted


NO_ANSWER = "the provider did not answer for this address"


def record(batch: list[Claimed], outcomes: list[Outcome], now: datetime, report: Report) -> None:
    """Write each row's outcome, one UPDATE per distinct outcome rather than one per row."""
    answered = {outcome.key: outcome for outcome in outcomes}
    settled: dict[tuple[str, str | None], list[int]] = {}
    unsettled: dict[str, list[Claimed]] = {}
    for row in batch:
        outcome = answered.get(row[0])
        if outcome is None or outcome.status == PENDING:
            unsettled.setdefault(outcome.detail if outcome else NO_ANSWER, []).append(row)
        else:
            settled.setdefault((outcome.status, outcome.detail), []).append(row[0])
    _count(batch, settled, unsettled, report)
    for (status, detail), ids in settled.items():
        _by_id(_SETTLE, ids, outcome=status, outcome_detail=detail, settled_at=now)
    for why, rows in unsettled.items():
        postpone(rows, why, now)


def _count(
    batch: list[Claimed],
    settled: Mapping[tuple[str, str | None], list[int]],
    unsettled: Mapping[str, list[Claimed]],
    report: Report,
) -> None:
    """Count a batch's outcomes in ``report`` by kind, rather than row by row."""
    lifts = {row[0] for row in batch if row[4] == "lift"}
    for (status, _), ids in settled.items():
        if status != ACCEPTED:
            report.refused += len(ids)
            continue
        lifted = len(lifts.intersection(ids)) if lifts else 0
        report.lifted += lifted
        report.accepted += len(ids) - lifted
    report.pending += sum(map(len, unsettled.values()))


def postpone(rows: list[Claimed], why: str, now: datetime) -> None:
    """Count the attempt and wait before the next, the longer the more attempts failed."""
    by_attempt: dict[int, list[int]] = {}
    for row in rows:
        by_attempt.setdefault(row[5] + 1, []).append(row[0])
    for attempts, ids in by_attempt.items():
        delay = min(FIRST_RETRY_DELAY * 2 ** (attempts - 1), LONGEST_RETRY_DELAY)
        _by_id(_POSTPONE, ids, tried=attempts, retry_at=now + delay, outcome_detail=why)


def _by_id(statement: Prepared, ids: list[int], **values: Any) -> None:
    """Run ``statement`` on the outbox rows ``ids``, all named in one bound parameter: the
    text of an array on PostgreSQL, which the server parses (psycopg dumps a list of a thousand
    numbers one by one in Python), a JSON array on SQLite. An IN list of a thousand ids would
    be rendered, and parsed by the database, afresh for every batch."""
    listed = ",".join(map(str, ids))
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    execute(statement, {**values, "ids": f"{{{listed}}}" if postgresql else f"[{listed}]"})


def _named_ids(dialect: Dialect) -> Any:
    state = SyncState.__table__.c
    ids = bindparam("ids", type_=Text)
    if dialect.name == "postgresql":
        return state.id == any_(cast(ids, postgresql.ARRAY(Integer)))
    listed = func.json_each(ids).table_valued("value")
    return state.id.in_(select(listed.c.value))


def _on_named_ids(**values: Any) -> Prepared:
    """An UPDATE of ``values`` on the outbox rows named in ``ids``, compiled once per dialect."""
    return Prepared(
        lambda dialect: update(SyncState.__table__).where(_named_ids(dialect)).values(**values)
    )


_STATE = SyncState.__table__.c
# Recording outcomes: an accepted batch is one run of _SETTLE.
_SETTLE = _on_named_ids(
    status=bindparam("outcome", type_=_STATE.status.type),
    detail=bindparam("outcome_detail", type_=_STATE.detail.type),
    attempts=_STATE.attempts + 1,
    done_at=bindparam("settled_at", type_=_STATE.done_at.type),
    next_attempt_at=None,
)
_POSTPONE = _on_named_ids(
    attempts=bindparam("tried", type_=_STATE.attempts.type),
    next_attempt_at=bindparam("retry_at", type_=_STATE.next_attempt_at.type),
    detail=bindparam("outcome_detail", type_=_STATE.detail.type),
)
