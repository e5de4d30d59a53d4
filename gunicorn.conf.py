"""gunicorn settings for ``make run``, taken from the same SUPPRESS_* variables as the app."""

import sys

from flask import Config

from suppress.config import ConfigError, load_into

_settings = Config(".")
try:
    load_into(_settings)
except ConfigError as error:
    sys.exit(f"suppress: configuration error: {error}")

bind = _settings["BIND"]
workers = _settings["WORKERS"]
accesslog = "-"
# The access log keeps the path only: unsubscribe tokens and query strings stay out of logs.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = "127.0.0.1,::1"
# gunicorn's control socket lives at one path per user, so two instances would fight over it,
# and it writes outside the project; nothing here uses it.
control_socket_disable = True
