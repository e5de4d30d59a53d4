"""Mailing lists, who is on them and on what basis: the register that links and imports refer to.

A contact import adds subscriptions and never takes back a person's own decision: an address
that left the list, or is suppressed in any way that covers the list (itself, or its domain), is
skipped and left as it is; an older row never replaces a newer status. Every refused row is
reported with its line number, and no message here holds an address in clear.

The lists themselves are created, found and counted in ``register``; an address's row, made on
first sight by a link or an import, and its kind in ``addresses``. A contact file's row becomes a
Contact, or is refused cell by cell, in ``contacts``; ``imports`` subscribes the rows a batch per
commit under the rules on lawful basis, reading each batch in a few queries (``lookups``) and
writing it back with one statement per kind of change (``writes``).
"""

from suppress.lists.addresses import ensure_address, kind_of
from suppress.lists.contacts import Contact, ContactRefused, contact_of
from suppress.lists.imports import ContactImportReport, import_contacts
from suppress.lists.register import (
    ListError,
    ListSummary,
    create_list,
    find_list,
    list_summaries,
    subscribers_by_basis,
    suppressed_on,
)

__all__ = [
    "Contact",
    "ContactImportReport",
    "ContactRefused",
    "ListError",
    "ListSummary",
    "contact_of",
    "create_list",
    "ensure_address",
    "find_list",
    "import_contacts",
    "kind_of",
    "list_summaries",
    "subscribers_by_basis",
    "suppressed_on",
]
