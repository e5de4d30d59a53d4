"""The WSGI entry point: ``gunicorn wsgi:app`` and ``flask --app wsgi``."""

import gc
import sys

from suppress import create_app
from suppress.config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    sys.exit(f"suppress: configuration error: {error}")

# What start-up made (modules, the app) lives as long as the process. Frozen, the collector no
# longer walks it: not at each full collection, nor at exit, where the walks took 0.3 s of
# every command; and a forked worker's collections leave those pages shared.
gc.freeze()
