"""The WSGI entry point: ``gunicorn wsgi:app`` and ``flask --app wsgi``."""

import sys

from suppress import create_app
from suppress.config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    sys.exit(f"suppress: configuration error: {error}")
