"""gunicorn settings for ``make run``, taken from the same SUPPRESS_* variables as the app."""

from flask import Config

from suppress.config import load_into

_settings = Config(".")
load_into(_settings)

bind = _settings["BIND"]
workers = _settings["WORKERS"]
accesslog = "-"
# The access log keeps the path only: unsubscribe tokens and query strings stay out of logs.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = "127.0.0.1,::1"
