"""Page languages: Finnish, Swedish and English, chosen per request.

The choice, most specific first: ``?lang=`` (the switcher on every page), then the language
stored with the link's address, then the browser's ``Accept-Language``, then
``SUPPRESS_DEFAULT_LANGUAGE``. Catalogues live in ``translations/`` and are compiled by the
set-up (``make``), never committed.
"""

from pathlib import Path

from flask import Flask, current_app, g, has_request_context, request
from flask_babel import Babel, get_locale

from suppress.config import LANGUAGES

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
LANGUAGE_NAMES = {"fi": "Suomeksi", "sv": "På svenska", "en": "In English"}

babel = Babel()


def init_app(app: Flask) -> None:
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    babel.init_app(app, locale_selector=select_language)
    app.context_processor(page_languages)


def page_languages() -> dict[str, object]:
    """The page's language and the switcher's links: this same page in each language.

    The links are relative (``?lang=sv``), so a page never echoes the token it was opened with:
    every bad link gets the very same page (R-OC-3).
    """
    reopenable = has_request_context() and request.method in ("GET", "HEAD")
    return {
        "current_language": str(get_locale()),
        # A page that answers a POST cannot be opened again by a link, so it has no switcher.
        "language_links": {code: f"?lang={code}" for code in LANGUAGES} if reopenable else {},
        "LANGUAGE_NAMES": LANGUAGE_NAMES,
    }


def select_language() -> str:
    if not has_request_context():
        return current_app.config["DEFAULT_LANGUAGE"]
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return asked
    stored = g.get("address_language")
    if stored in LANGUAGES:
        return stored
    return request.accept_languages.best_match(LANGUAGES) or current_app.config["DEFAULT_LANGUAGE"]
