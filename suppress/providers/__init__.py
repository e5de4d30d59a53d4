"""The registry of providers: the webhooks blueprint and the sync job find providers only here.

Adding a provider is adding its module and one line below.
"""

from collections.abc import Mapping
from typing import Any

from suppress.config import ConfigError
from suppress.providers.base import Provider
from suppress.providers.brevo import Brevo
from suppress.providers.mailchimp import Mailchimp
from suppress.providers.mailersend import MailerSend
from suppress.providers.mailgun import Mailgun
from suppress.providers.mailjet import Mailjet
from suppress.providers.mandrill import Mandrill
from suppress.providers.postal import Postal
from suppress.providers.postmark import Postmark
from suppress.providers.resend import Resend
from suppress.providers.sendgrid import SendGrid
from suppress.providers.ses import Ses
from suppress.providers.sparkpost import SparkPost
from suppress.providers.standard import Standard

PROVIDERS: dict[str, type[Provider]] = {
    provider.slug: provider
    for provider in (
        Ses,
        SendGrid,
        Mailgun,
        Postmark,
        Brevo,
        Mailjet,
        SparkPost,
        Mandrill,
        Mailchimp,
        Resend,
        MailerSend,
        Postal,
        Standard,
    )
}


def enabled(config: Mapping[str, Any]) -> dict[str, Provider]:
    """The providers this installation receives from, built from their settings.

    A provider is enabled by naming it in ``SUPPRESS_WEBHOOK_PROVIDERS`` or by setting any of
    its variables; an enabled provider with a required variable unset stops the start-up with
    a ConfigError naming that variable.
    """
    named = config["WEBHOOK_PROVIDERS"]
    unknown = sorted(set(named) - set(PROVIDERS))
    if unknown:
        raise ConfigError(
            f"SUPPRESS_WEBHOOK_PROVIDERS: unknown provider {', '.join(unknown)} "
            f"(known: {', '.join(PROVIDERS)})"
        )
    return {
        slug: provider(config)
        for slug, provider in PROVIDERS.items()
        if slug in named or provider.is_configured(config)
    }
