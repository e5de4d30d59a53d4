"""The unsubscribe pages as people and machines meet them: real gunicorn, Debian's chromium.

People open the link in Finnish, Swedish or English, leave a list, undo it, stop all marketing,
with a mouse, with the keyboard alone, with JavaScript off. Mailbox providers POST one-click from
a bare HTTP client; link scanners fetch the page again and again. Every page a browser opens here
is also checked for console errors, requests to other origins and a missing CSP (``browse``).
"""

import http.client
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Locator, Page, expect

pytestmark = pytest.mark.live

LANGUAGES = ("fi", "sv", "en")
CONTROLLER_NAME = "Esimerkki Oy"
LIST_SLUG, LIST_NAME = "uutiskirje", "Uutiskirje"
BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
MAX_TABS = 20


@dataclass(frozen=True)
class Wording:
    """What a reader of one language sees. Written out rather than looked up in the catalogue,
    so that a missing translation fails here instead of quietly showing English."""

    confirm_heading: str
    leave_list: str
    stop_all: str
    choose_lists: str
    done_heading: str
    subscribe_again: str
    preferences_heading: str
    save: str
    saved: str
    invalid_heading: str


WORDING = {
    "fi": Wording(
        confirm_heading="Peru tilaus",
        leave_list=f"Poistu listalta ”{LIST_NAME}”",
        stop_all=f"Lopeta kaikki markkinointisähköpostit, joita {CONTROLLER_NAME} lähettää",
        choose_lists="Valitse, mitä listoja haluat saada",
        done_heading="Tilaus on peruttu",
        subscribe_again="Tilaa uudelleen",
        preferences_heading="Sähköpostiasetuksesi",
        save="Tallenna valintani",
        saved="Valintasi on tallennettu.",
        invalid_heading="Tämä linkki ei toimi",
    ),
    "sv": Wording(
        confirm_heading="Avsluta prenumerationen",
        leave_list=f"Lämna listan ”{LIST_NAME}”",
        stop_all=f"Stoppa all marknadsföringspost från {CONTROLLER_NAME}",
        choose_lists="Välj vilka listor du vill få",
        done_heading="Prenumerationen är avslutad",
        subscribe_again="Prenumerera igen",
        preferences_heading="Dina e-postinställningar",
        save="Spara mina val",
        saved="Dina val har sparats.",
        invalid_heading="Länken fungerar inte",
    ),
    "en": Wording(
        confirm_heading="Unsubscribe",
        leave_list=f"Leave the list “{LIST_NAME}”",
        stop_all=f"Stop all marketing email from {CONTROLLER_NAME}",
        choose_lists="Choose which lists you receive",
        done_heading="You are unsubscribed",
        subscribe_again="Subscribe again",
        preferences_heading="Your email preferences",
        save="Save my choices",
        saved="Your choices are saved.",
        invalid_heading="This link does not work",
    ),
}

# RFC 8058 §8.1 (Gmail sends the same) and §8.3 with errata EID 5117 and 8927 applied: the
# boundary parameter is "-FormBoundaryjWmhtjORrn", so each delimiter line is "--" plus that.
# The Content-Length values are the RFC's, and match these bytes.
MULTIPART_DELIMITER = b"---FormBoundaryjWmhtjORrn"
ONE_CLICK_REQUESTS = {
    "urlencoded": (
        "application/x-www-form-urlencoded",
        26,
        b"List-Unsubscribe=One-Click",
    ),
    "multipart": (
        "multipart/form-data; boundary=-FormBoundaryjWmhtjORrn",
        124,
        b"\r\n".join(
            [
                MULTIPART_DELIMITER,
                b'Content-Disposition: form-data; name="List-Unsubscribe"',
                b"",
                b"One-Click",
                MULTIPART_DELIMITER + b"--",
            ]
        ),
    ),
}

# The service does not look at the User-Agent; these stand for the link-protection gateways
# that fetch every URL of a message before (and after) the person sees it.
SCANNER_USER_AGENTS = (
    "Mozilla/5.0 (compatible; Microsoft Defender for Office 365 Safe Links)",
    "Mozilla/5.0 (compatible; Proofpoint URL Defense)",
    "Mozilla/5.0 (compatible; Mimecast URL Protect)",
)


@pytest.fixture(scope="module")
def live_settings() -> dict[str, str]:
    """A named controller, so that the pages' wording is known in every language."""
    return {"CONTROLLER_NAME": CONTROLLER_NAME}


@pytest.fixture(scope="module")
def service(live_service):
    """The live service with the one list every link here is for."""
    live_service.add_list(LIST_SLUG, LIST_NAME)
    return live_service


def new_address() -> str:
    """A person of their own for each test: tests share one database and never clean it."""
    return f"maija.{uuid.uuid4().hex[:12]}@yritys.fi"


def in_language(url: str, language: str) -> str:
    return f"{url}?lang={language}"


def heading(page: Page) -> Locator:
    return page.get_by_role("heading", level=1)


def button(page: Page, name: str) -> Locator:
    return page.get_by_role("button", name=name, exact=True)


def with_bit_flipped(token: str, position: int) -> str:
    """``token`` with the lowest bit of one base64url character flipped. In the last character
    of a part that bit may be spare, which decoding alone would ignore."""
    value = BASE64URL.index(token[position]) ^ 1
    return token[:position] + BASE64URL[value] + token[position + 1 :]


def send(
    service,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request as a bare client makes it: no cookies, no redirects followed."""
    connection = http.client.HTTPConnection(service.host_port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def tab_to(page: Page, target: Locator) -> None:
    """Press Tab until ``target`` has the focus, as someone without a mouse would."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{target} was not reached in {MAX_TABS} presses of Tab")


@pytest.mark.parametrize("language", LANGUAGES)
def test_leaving_the_list_then_subscribing_again(language: str, service, browse, tmp_path: Path):
    """R-OC-11: the page's first choice leaves only the message's list, and the person can undo
    it at once. R-OC-8: each change is committed before its page arrives."""
    words, email = WORDING[language], new_address()
    page = browse().page
    page.goto(in_language(service.link(email, LIST_SLUG), language))
    expect(page.locator("html")).to_have_attribute("lang", language)
    expect(heading(page)).to_have_text(words.confirm_heading)
    page.screenshot(path=tmp_path / f"confirm-{language}.png", full_page=True)

    button(page, words.leave_list).click()
    expect(heading(page)).to_have_text(words.done_heading)
    expect(page.locator("html")).to_have_attribute("lang", language)
    page.screenshot(path=tmp_path / f"done-{language}.png", full_page=True)
    assert service.suppressions_of(email) == {(LIST_SLUG, "unsubscribed", "link")}

    button(page, words.subscribe_again).click()
    expect(heading(page)).to_have_text(words.preferences_heading)
    expect(page.get_by_role("status")).to_have_text(words.saved)
    page.screenshot(path=tmp_path / f"subscribed-again-{language}.png", full_page=True)
    assert service.suppressions_of(email) == set()


@pytest.mark.parametrize("language", LANGUAGES)
def test_stopping_all_marketing_on_the_preferences_page(
    language: str, service, browse, tmp_path: Path
):
    """R-OC-11 and GDPR Art. 21(3): the preferences page stops all marketing, recorded as an
    objection that covers every list."""
    words, email = WORDING[language], new_address()
    page = browse().page
    page.goto(in_language(service.link(email, LIST_SLUG), language))
    page.get_by_role("link", name=words.choose_lists).click()
    expect(heading(page)).to_have_text(words.preferences_heading)
    expect(page.locator("html")).to_have_attribute("lang", language)

    stop_all = page.get_by_role("checkbox", name=words.stop_all)
    stop_all.check()
    button(page, words.save).click()
    expect(page.get_by_role("status")).to_have_text(words.saved)
    expect(stop_all).to_be_checked()
    page.screenshot(path=tmp_path / f"stopped-all-{language}.png", full_page=True)
    assert service.suppressions_of(email) == {("global", "objected", "preferences")}


def test_accept_language_sv_shows_the_page_in_swedish(service, browse):
    """Without ``?lang=`` or a language stored for the address, the browser's language wins."""
    page = browse(locale="sv").page
    response = page.goto(service.link(new_address(), LIST_SLUG))
    assert response.request.all_headers()["accept-language"].startswith("sv")
    expect(page.locator("html")).to_have_attribute("lang", "sv")
    expect(heading(page)).to_have_text(WORDING["sv"].confirm_heading)


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_changed_link_says_it_does_not_work(language: str, service, browse, tmp_path: Path):
    """R-OC-3: a token with one character changed opens the "link does not work" page with
    status 404, which offers nothing to submit; nothing is stored."""
    url = service.link(new_address(), LIST_SLUG)
    before = service.stored_rows()
    token_start = url.rindex("/") + 1
    page = browse().page
    response = page.goto(in_language(with_bit_flipped(url, token_start + 5), language))
    assert response.status == 404
    expect(page.locator("html")).to_have_attribute("lang", language)
    expect(heading(page)).to_have_text(WORDING[language].invalid_heading)
    expect(page.get_by_role("button")).to_have_count(0)
    page.screenshot(path=tmp_path / f"invalid-{language}.png", full_page=True)
    assert service.stored_rows() == before


def test_keyboard_alone_leaves_the_list_undoes_it_and_stops_all(service, browse, tmp_path: Path):
    """Every main control is reached with Tab and used with Enter or Space (WCAG 2.1.1), and
    does what the mouse does (R-OC-11)."""
    words, email = WORDING["fi"], new_address()
    page = browse().page
    page.goto(in_language(service.link(email, LIST_SLUG), "fi"))

    tab_to(page, button(page, words.leave_list))
    page.keyboard.press("Enter")
    expect(heading(page)).to_have_text(words.done_heading)
    assert service.suppressions_of(email) == {(LIST_SLUG, "unsubscribed", "link")}

    tab_to(page, button(page, words.subscribe_again))
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text(words.saved)
    assert service.suppressions_of(email) == set()

    tab_to(page, page.get_by_role("checkbox", name=words.stop_all))
    page.keyboard.press("Space")
    tab_to(page, button(page, words.save))
    page.screenshot(path=tmp_path / "keyboard-focus-on-save.png", full_page=True)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text(words.saved)
    assert service.suppressions_of(email) == {("global", "objected", "preferences")}


def test_the_pages_work_without_javascript(service, browse, tmp_path: Path):
    """The pages are plain forms: with scripts off, stopping all marketing from the link's page
    still works and is recorded as an objection (R-OC-11)."""
    words, email = WORDING["sv"], new_address()
    page = browse(javascript=False).page
    page.goto(in_language(service.link(email, LIST_SLUG), "sv"))
    button(page, words.stop_all).click()
    expect(heading(page)).to_have_text(words.done_heading)
    page.screenshot(path=tmp_path / "done-without-javascript.png", full_page=True)
    assert service.suppressions_of(email) == {("global", "objected", "link")}


def test_every_page_comes_only_from_the_service_with_a_content_security_policy(service, browse):
    """R-OC-3: the token in the URL must not reach any other site, so the pages fetch nothing
    from elsewhere, log no errors and each carries a Content-Security-Policy."""
    words, email = WORDING["en"], new_address()
    browsing = browse()
    page = browsing.page
    url = service.link(email, LIST_SLUG)
    page.goto(in_language(url, "en"))
    button(page, words.leave_list).click()
    expect(heading(page)).to_have_text(words.done_heading)
    page.get_by_role("radio").first.check()
    page.get_by_role("button", name="Send the answer").click()
    expect(heading(page)).to_have_text("Thank you")
    page.goto(in_language(url.replace("/u/", "/preferences/"), "en"))
    button(page, words.save).click()
    expect(page.get_by_role("status")).to_have_text(words.saved)
    page.goto(in_language(url + "x", "en"))
    expect(heading(page)).to_have_text(words.invalid_heading)

    visited = [
        (response.request.method, urlsplit(response.url).path) for response in browsing.documents
    ]
    token = urlsplit(url).path.rsplit("/", 1)[1]
    assert visited == [
        ("GET", f"/u/{token}"),
        ("POST", f"/u/{token}"),
        ("POST", f"/u/{token}/feedback"),
        ("GET", f"/preferences/{token}"),
        ("POST", f"/preferences/{token}"),
        ("GET", f"/u/{token}x"),
    ]
    problems = browsing.problems()
    assert not problems, "\n".join(problems)


def test_pages_name_an_icon(service):
    """A page with no icon makes chromium fetch ``/favicon.ico``; a 404 there would be an
    error in every visitor's console."""
    _, _, page = send(service, "GET", urlsplit(service.link(new_address(), LIST_SLUG)).path)
    icon = re.search(r'<link rel="(?:shortcut )?icon"[^>]* href="([^"]+)"', page.decode())
    status, _, _ = send(service, "GET", icon.group(1) if icon else "/favicon.ico")
    assert status == 200


@pytest.mark.parametrize("encoding", ONE_CLICK_REQUESTS)
def test_one_click_post_from_a_bare_client_leaves_the_list(encoding: str, service):
    """R-OC-5: the RFC 8058 body is accepted urlencoded and multipart. R-OC-7: with no cookie,
    CSRF field or login. R-OC-6: answered 200 without a redirect. R-OC-2: the URI alone names
    the address and list. R-OC-8: the row is there, on a new connection, once the answer is."""
    email = new_address()
    path = urlsplit(service.link(email, LIST_SLUG)).path
    content_type, length, body = ONE_CLICK_REQUESTS[encoding]
    assert len(body) == length
    headers = {"Content-Type": content_type, "Content-Length": str(length)}

    status, response_headers, _ = send(service, "POST", path, body, headers)

    assert status == 200
    assert "Location" not in response_headers
    assert service.suppressions_of(email) == {(LIST_SLUG, "unsubscribed", "one-click")}


def test_one_click_post_with_any_character_changed_stores_nothing(service):
    """R-OC-3: flipping one bit of any character of the token gets a 404 and no row, with the
    very page a made-up token gets, so a changed token tells nothing about the real one."""
    path = urlsplit(service.link(new_address(), LIST_SLUG)).path
    prefix, token = path.rsplit("/", 1)
    _, _, body = ONE_CLICK_REQUESTS["urlencoded"]
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    before = service.stored_rows()
    _, _, made_up_page = send(service, "POST", f"{prefix}/WzEsMV0.made-up", body, headers)

    answers = set()
    for position, character in enumerate(token):
        if character == ".":
            continue
        changed = f"{prefix}/{with_bit_flipped(token, position)}"
        status, _, page = send(service, "POST", changed, body, headers)
        answers.add((status, page == made_up_page))

    assert answers == {(404, True)}
    assert service.stored_rows() == before


def test_link_scanners_fetching_the_page_change_nothing(service):
    """R-OC-10: 10 GETs and 3 HEADs from link scanners answer 200 and store nothing; the page
    they fetch offers a form that POSTs to the same URI."""
    email = new_address()
    path = urlsplit(service.link(email, LIST_SLUG)).path
    before = service.stored_rows()

    statuses = set()
    for n, method in enumerate(["GET"] * 10 + ["HEAD"] * 3):
        agent = SCANNER_USER_AGENTS[n % len(SCANNER_USER_AGENTS)]
        status, _, _ = send(service, method, path, headers={"User-Agent": agent})
        statuses.add(status)

    assert statuses == {200}
    assert service.stored_rows() == before
    assert service.suppressions_of(email) == set()
    _, _, page = send(service, "GET", path)
    form_target = re.search(r'<form method="post" action="([^"?]+)', page.decode())
    assert form_target is not None
    assert form_target.group(1) == path
