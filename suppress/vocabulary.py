"""The words events are written in (DESIGN §5), shared by the providers that produce events
and the tables that keep them, neither of which may import the other."""

EVENT_TYPES = (
    "sent",
    "delivered",
    "deferred",
    "bounced",
    "dropped",
    "opened",
    "clicked",
    "complained",
    "unsubscribed",
    "resubscribed",
    "unknown",
)
# What a provider says of a bounce.
REPORTED_BOUNCE_CLASSES = ("hard", "soft")
# What is stored: ``policy`` is a rejection caused by the sender's own set-up (RULES.md
# R-MBP-6), never the recipient's mailbox, so it suppresses nobody.
BOUNCE_CLASSES = (*REPORTED_BOUNCE_CLASSES, "policy")
