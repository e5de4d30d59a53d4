from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
METHODS = [("suppress/**.py", "python"), ("templates/**.html", "jinja2")]


def source_messages() -> set[str]:
    found = extract_from_dir(str(ROOT), METHODS, keywords={"_": None, "gettext": None})
    return {message for _, _, message, _, _ in found if message}


@pytest.mark.parametrize("language", ["fi", "sv"])
def test_every_page_text_is_translated(language):
    """Every string the code and templates show has a reviewed translation."""
    path = ROOT / "translations" / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as stream:
        catalog = read_po(stream)
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    assert source_messages() <= translated


@pytest.mark.parametrize("language", ["fi", "sv"])
def test_translations_keep_every_placeholder(language):
    path = ROOT / "translations" / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as stream:
        catalog = read_po(stream)
    for message in catalog:
        for placeholder in ("%(list)s", "%(controller)s", "%(contact)s", "%(address)s"):
            assert (placeholder in message.id) == (placeholder in message.string), message.id
