"""What a provider's Event becomes before it is stored: one value per column of the event log,
and the normalised address the rules need. Nothing here touches the database.

The address is kept as its hash only; a recipient that does not parse makes an event without
an address. A bounce caused by the sender's own set-up is classed ``policy`` here (RULES.md
R-MBP-6), so that the rules suppress nobody for it.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from functools import lru_cache
from typing import Any

from suppress.addresses import InvalidAddress, normalise_and_hash
from suppress.models import Event as StoredEvent
from suppress.providers.delivery import Event

# Sender-side rejections (RULES.md R-MBP-6): Gmail's authentication and reputation codes and
# Microsoft's 5.7.515 describe our sending domain, not the recipient's mailbox.
POLICY_CODES = re.compile(
    r"(?<![\d.])(?:4\.7\.(?:23|27|29|30|31|32)|5\.7\.(?:1|25|26|27|29|30|515))(?![\d.])"
)
ID_LENGTH = 255
# A host name: two or more dot-separated labels of letters, digits and hyphens (any script).
DOMAIN = re.compile(r"[\w-]+(?:\.[\w-]+)+")
TEXT_LIMIT = 2000
COLUMNS = tuple(column.name for column in StoredEvent.__table__.c if column.name != "id")


@dataclass
class Row:
    """An event ready to store: ``values`` by column, and the normalised address.

    ``values["machine"]`` is the provider's own verdict (None: it does not say) until
    ``engagement.judge_machines`` settles it; ``early_since`` is then set on an open or click
    that a delivery stored after that moment would make a machine's.
    """

    values: dict[str, Any]
    email: str | None
    early_since: datetime | None = None


def row_of(provider: str, event: Event, received_at: datetime) -> Row:
    email, digest = _address(event.recipient)
    bounce_class = event.bounce_class
    if event.type == "bounced" and _is_policy(event.diagnostic):
        bounce_class = "policy"
    values = {
        "provider": provider,
        "provider_event_id": _stable_id(event.provider_event_id),
        "type": event.type,
        "raw_type": event.raw_type[:100],
        "email_hash": digest,
        "bounce_class": bounce_class,
        "diagnostic": _clip(event.diagnostic),
        "message_id": _clip(event.message_id, ID_LENGTH),
        "list_ref": _clip(event.list_ref, ID_LENGTH),
        "list_slug": _clip(event.list_slug, 64),
        "campaign": _clip(event.campaign, ID_LENGTH),
        "url": _clip(event.url),
        "ip": _clip(event.ip, 64),
        "user_agent": _clip(event.user_agent),
        "machine": event.machine,
        "sender_domain": sender_domain(event.sender),
        "occurred_at": event.occurred_at,
        "received_at": received_at,
    }
    return Row(values, email)


def _address(recipient: str | None) -> tuple[str | None, str | None]:
    """The normalised address and its hash; an address that does not parse is kept as none."""
    if not recipient:
        return None, None
    try:
        return normalise_and_hash(recipient)
    except InvalidAddress:
        return None, None


@lru_cache(maxsize=256)
def sender_domain(sender: str | None) -> str | None:
    """The domain a sender address is at, in lower case: ``"Uutiset <news@Yritys.fi>"`` is
    ``yritys.fi``. A bare domain stands for itself; anything else with no domain is none.

    Remembered: a webhook batch repeats a handful of senders a thousand times, and parsing one
    costs several microseconds."""
    if not sender:
        return None
    address = parseaddr(sender)[1] or sender
    domain = address.rpartition("@")[2].strip().strip(".").lower()
    if not DOMAIN.fullmatch(domain):
        return None
    return domain[:ID_LENGTH]


def _is_policy(diagnostic: str | None) -> bool:
    return bool(diagnostic and POLICY_CODES.search(diagnostic))


def _stable_id(provider_event_id: str) -> str:
    """The provider's id, or its hash when it is longer than the column (SES ids that carry
    the recipient): stable either way, so a retry still matches."""
    if len(provider_event_id) <= ID_LENGTH:
        return provider_event_id
    return "sha256:" + hashlib.sha256(provider_event_id.encode()).hexdigest()


def _clip(text: str | None, limit: int = TEXT_LIMIT) -> str | None:
    return text[:limit] if text else None
