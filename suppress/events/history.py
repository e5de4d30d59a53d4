"""Reading the event log: what stands behind an address's suppressions, and the export.

The address comes from the register, never from the log itself, so an erased person's events
read and export without one.
"""

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from suppress.models import Address, db
from suppress.models import Event as StoredEvent


def events_for(digest: str, kinds: Sequence[str] | None = None, limit: int = 20) -> list[Any]:
    """An address's stored events, newest first (what stands behind its suppressions)."""
    query = select(StoredEvent).where(StoredEvent.email_hash == digest)
    if kinds:
        query = query.where(StoredEvent.type.in_(kinds))
    query = query.order_by(StoredEvent.occurred_at.desc(), StoredEvent.id.desc()).limit(limit)
    return db.session.scalars(query).all()


def exported_events(
    since: datetime | None = None, provider: str | None = None, digest: str | None = None
) -> Iterator[dict[str, Any]]:
    """Every stored event matching the filters, oldest first, as the export's records.

    The address comes from the register, so an erased person's events export without one.
    Streamed in chunks, so an export of millions of events runs in constant memory.
    """
    query = select(StoredEvent, Address.email).outerjoin(
        Address, Address.email_hash == StoredEvent.email_hash
    )
    if since is not None:
        query = query.where(StoredEvent.occurred_at >= since)
    if provider is not None:
        query = query.where(StoredEvent.provider == provider)
    if digest is not None:
        query = query.where(StoredEvent.email_hash == digest)
    query = query.order_by(StoredEvent.occurred_at, StoredEvent.id)
    for stored, email in db.session.execute(query.execution_options(yield_per=5000)):
        yield {
            "provider": stored.provider,
            "provider_event_id": stored.provider_event_id,
            "type": stored.type,
            "bounce_class": stored.bounce_class,
            "address": email,
            "occurred_at": stored.occurred_at.isoformat(),
            "machine": stored.machine,
            "list": stored.list_slug or stored.list_ref,
            "campaign": stored.campaign,
            "message_id": stored.message_id,
            "url": stored.url,
            "sender_domain": stored.sender_domain,
        }
