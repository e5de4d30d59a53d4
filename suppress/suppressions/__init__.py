"""The suppression list: the one place that writes, lifts and looks up suppressions.

Links, webhooks, imports, the admin UI, the API and the CLI all come through here, so every path
gets the same normalisation, the same rule for repeats and the same audit entry. Functions here
never commit a single change: the caller owns the transaction, so that a web view can commit
before it answers 2xx. Bulk imports are the exception, committing batch by batch.

Writes are one statement, ``INSERT ... ON CONFLICT DO UPDATE ... WHERE``, on SQLite and
PostgreSQL alike (``upsert``): a repeat keeps the first ``created_at``; a stronger reason (a
complaint after an unsubscribe) replaces a weaker one; a lapsed suppression starts afresh, and
each change writes its audit entry (``audit``). What a suppression may say is in ``terms``. One
address is written through the session (``writes``), the one-click link and webhook events on a
direct transaction (``direct``), files in bulk (``bulk``). Matching reads through the index
(``lookups``) or, for a long file, in memory (``packed``). Domain suppressions (a domain, or its
subdomains: see ``suppress.domains``) follow the same rules and audit trail (``domains``);
partners' opt-out lists are kept as hashes apart (``partners``).
"""

from suppress.suppressions.bulk import ImportReport, active_suppressions, import_suppressions
from suppress.suppressions.direct import (
    Hashed,
    lift_unsubscribes,
    suppress_by_link,
    suppress_hashed,
)
from suppress.suppressions.domains import (
    domain_rules,
    domain_suppressions,
    domain_suppressions_for,
    lift_domain,
    suppress_domain,
)
from suppress.suppressions.lookups import (
    BULK_IN_CLAUSE_SIZE,
    covering_suppressions,
    is_suppressed,
    suppressed_among,
    suppressions_for,
)
from suppress.suppressions.packed import (
    DIGEST_KEY_BYTES,
    PackedSuppressions,
    packed_suppressions,
)
from suppress.suppressions.partners import (
    hash_algorithms_present,
    hashed_matches,
    import_hashed_suppressions,
)
from suppress.suppressions.terms import (
    LiftRefused,
    NotSuppressed,
    SuppressionError,
    UnknownReason,
    UnknownScope,
    check_reason,
    check_scope,
    known_scopes,
)
from suppress.suppressions.writes import (
    FEEDBACK_ANSWERS,
    lift,
    record_feedback,
    resubscribe,
    suppress,
)

__all__ = [
    "BULK_IN_CLAUSE_SIZE",
    "DIGEST_KEY_BYTES",
    "FEEDBACK_ANSWERS",
    "Hashed",
    "ImportReport",
    "LiftRefused",
    "NotSuppressed",
    "PackedSuppressions",
    "SuppressionError",
    "UnknownReason",
    "UnknownScope",
    "active_suppressions",
    "check_reason",
    "check_scope",
    "covering_suppressions",
    "domain_rules",
    "domain_suppressions",
    "domain_suppressions_for",
    "hash_algorithms_present",
    "hashed_matches",
    "import_hashed_suppressions",
    "import_suppressions",
    "is_suppressed",
    "known_scopes",
    "lift",
    "lift_domain",
    "lift_unsubscribes",
    "packed_suppressions",
    "record_feedback",
    "resubscribe",
    "suppress",
    "suppress_by_link",
    "suppress_domain",
    "suppress_hashed",
    "suppressed_among",
    "suppressions_for",
]
