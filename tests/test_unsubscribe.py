from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from suppress import tokens
from suppress.lists import create_list
from suppress.models import Address, AuditEntry, MailingList, Suppression, db, utcnow
from suppress.suppressions import suppress, suppressions_for

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
SCANNERS = [
    "Mozilla/5.0 (compatible; Microsoft SafeLinks)",
    "Proofpoint URL Defense",
    "Barracuda Sentinel (EE)",
]


@pytest.fixture
def token(app):
    create_list("news", "Uutiskirje")
    create_list("events", "Tapahtumat")
    minted = tokens.mint("matti@yritys.fi", "news")
    db.session.commit()
    return minted


@pytest.fixture
def global_token(app):
    minted = tokens.mint("matti@yritys.fi")
    db.session.commit()
    return minted


def stored():
    db.session.expire_all()
    return {(row.scope, row.reason, row.source) for row in suppressions_for("matti@yritys.fi")}


def count_suppressions():
    return db.session.scalar(select(func.count()).select_from(Suppression))


def test_one_click_post_suppresses_for_the_list_without_cookie(client, token):
    """R-OC-2, R-OC-5, R-OC-7: the URI alone, no cookie, no CSRF field."""
    response = client.post(f"/u/{token}", data=ONE_CLICK)
    assert response.status_code == 200
    assert stored() == {("news", "unsubscribed", "one-click")}


def test_one_click_post_in_multipart_form(client, token):
    """R-OC-5: RFC 8058 §8 prefers multipart/form-data."""
    body = (
        "---FormBoundaryjWmhtjORrn\r\n"
        'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        "One-Click\r\n"
        "---FormBoundaryjWmhtjORrn--\r\n"
    )
    response = client.post(
        f"/u/{token}",
        data=body,
        content_type="multipart/form-data; boundary=-FormBoundaryjWmhtjORrn",
    )
    assert response.status_code == 200
    assert stored() == {("news", "unsubscribed", "one-click")}


def test_one_click_post_never_redirects(client, token):
    """R-OC-6: no redirect, no Location, also over plain HTTP."""
    response = client.post(f"/u/{token}", data=ONE_CLICK, base_url="http://u.example.fi")
    assert response.status_code == 200
    assert "Location" not in response.headers


def test_one_click_post_is_committed_before_the_answer(client, token, database_url):
    """R-OC-8: a new connection sees the row once the POST has answered."""
    client.post(f"/u/{token}", data=ONE_CLICK)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM suppressions")).scalar()
    engine.dispose()
    assert count == 1


def test_one_click_post_answers_5xx_when_the_commit_fails(client, token, commits_fail):
    """R-OC-8: never 2xx for an unsubscribe that was not stored."""
    with commits_fail():
        response = client.post(f"/u/{token}", data=ONE_CLICK)
    assert response.status_code == 500
    assert count_suppressions() == 0


def test_the_page_form_answers_5xx_when_the_commit_fails(client, token, monkeypatch):
    def failing_commit():
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(db.session, "commit", failing_commit)
    response = client.post(f"/u/{token}", data={"choice": "list"})
    assert response.status_code == 500
    monkeypatch.undo()
    assert count_suppressions() == 0


def test_repeated_one_click_posts_answer_200_and_keep_one_row(client, token):
    """R-OC-9: receivers and prefetchers repeat the POST."""
    answers = [client.post(f"/u/{token}", data=ONE_CLICK).status_code for _ in range(5)]
    assert answers == [200] * 5
    created = {row.created_at for row in db.session.scalars(select(Suppression))}
    assert count_suppressions() == 1
    assert len(created) == 1
    assert audited() == [("one-click", "suppression.add", "news")]


def audited():
    entries = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))
    return [(entry.actor, entry.action, entry.scope) for entry in entries]


def test_one_click_is_audited_by_hash_with_the_reason_and_source(client, token):
    client.post(f"/u/{token}", data=ONE_CLICK)
    entry = db.session.scalars(select(AuditEntry)).one()
    assert entry.email_hash == suppressions_for("matti@yritys.fi")[0].email_hash
    assert entry.detail == {"reason": "unsubscribed", "source": "one-click"}
    assert "matti" not in repr((entry.why, entry.detail, entry.actor))


def test_one_click_keeps_a_stronger_suppression_as_it_is(client, token):
    suppress("matti@yritys.fi", reason="complained", source="webhook:ses", scope="news")
    db.session.commit()
    assert client.post(f"/u/{token}", data=ONE_CLICK).status_code == 200
    assert stored() == {("news", "complained", "webhook:ses")}
    assert [action for _, action, _ in audited()] == ["suppression.add"]


def test_one_click_strengthens_a_weaker_suppression_keeping_its_date(client, token):
    first = suppress("matti@yritys.fi", reason="imported", source="import:crm", scope="news")
    db.session.commit()
    assert client.post(f"/u/{token}", data=ONE_CLICK).status_code == 200
    assert stored() == {("news", "unsubscribed", "one-click")}
    assert suppressions_for("matti@yritys.fi")[0].created_at == first.created_at
    assert audited()[-1] == ("one-click", "suppression.update", "news")


def test_one_click_replaces_a_lapsed_soft_bounce(client, token):
    lapsed = utcnow() - timedelta(days=1)
    suppress(
        "matti@yritys.fi",
        reason="soft_bounced",
        source="webhook:ses",
        scope="news",
        expires_at=lapsed,
    )
    db.session.commit()
    assert client.post(f"/u/{token}", data=ONE_CLICK).status_code == 200
    assert stored() == {("news", "unsubscribed", "one-click")}
    assert audited()[-1] == ("one-click", "suppression.add", "news")  # it starts afresh


@pytest.mark.parametrize("gone", ["address", "list"])
def test_one_click_for_an_address_or_list_that_is_gone_stores_nothing(client, token, gone):
    """A genuine token whose address was deleted, or whose list was, is an invalid link."""
    address_id = db.session.scalar(select(Address.id))
    list_id = db.session.scalar(select(MailingList.id).where(MailingList.slug == "news"))
    ids = [address_id + 1000, list_id] if gone == "address" else [address_id, list_id + 1000]
    with client.application.test_request_context():
        forged = tokens._serializer().dumps(ids)
    response = client.post(f"/u/{forged}", data=ONE_CLICK)
    assert response.status_code == 404
    assert count_suppressions() == 0
    assert audited() == []


def test_one_click_works_with_csrf_protection_on_and_another_users_cookie(client, token):
    """R-OC-7: the path token decides whose address is suppressed, not a cookie."""
    other = tokens.mint("someone.else@yritys.fi", "news")
    db.session.commit()
    client.get(f"/u/{other}")
    client.set_cookie("session", "someone-elses-session")
    assert client.application.extensions["csrf"] is not None
    response = client.post(f"/u/{token}", data=ONE_CLICK)
    assert response.status_code == 200
    assert stored() == {("news", "unsubscribed", "one-click")}
    assert suppressions_for("someone.else@yritys.fi") == []


def test_one_click_on_a_link_without_a_list_stops_all_mail(client, global_token):
    client.post(f"/u/{global_token}", data=ONE_CLICK)
    assert stored() == {("global", "unsubscribed", "one-click")}


@pytest.mark.parametrize("user_agent", SCANNERS)
def test_gets_and_heads_by_link_scanners_change_nothing(client, token, user_agent):
    """R-OC-10: 10 GETs and 3 HEADs leave the list as it was."""
    headers = {"User-Agent": user_agent}
    for _ in range(10):
        assert client.get(f"/u/{token}", headers=headers).status_code == 200
    for _ in range(3):
        assert client.head(f"/u/{token}", headers=headers).status_code == 200
    assert count_suppressions() == 0


def test_confirmation_page_offers_the_list_everything_and_preferences(client, token):
    """R-OC-11: leave the list, or stop all marketing; the form posts to the same URI."""
    page = client.get(f"/u/{token}?lang=en").get_data(as_text=True)
    assert f'action="/u/{token}?lang=en"' in page
    assert "Leave the list “Uutiskirje”" in page
    assert 'name="choice" value="all"' in page
    assert f"/preferences/{token}" in page
    assert "m•••@yritys.fi" in page
    assert "matti@yritys.fi" not in page


def test_page_form_leaving_the_list(client, token):
    page = client.post(f"/u/{token}?lang=en", data={"choice": "list"}).get_data(as_text=True)
    assert "You will no longer receive “Uutiskirje”." in page
    assert stored() == {("news", "unsubscribed", "link")}


def test_page_form_stopping_everything_is_a_global_objection(client, token):
    """R-OC-11, R-GDPR-10: "all" from the page is a global objection."""
    client.post(f"/u/{token}", data={"choice": "all"})
    assert stored() == {("global", "objected", "link")}


def test_done_page_undo_resubscribes(client, token):
    client.post(f"/u/{token}", data={"choice": "list"})
    page = client.post(
        f"/preferences/{token}?lang=en", data={"action": "resubscribe", "scope": "news"}
    ).get_data(as_text=True)
    assert "Your choices are saved." in page
    assert stored() == set()


def test_resubscribe_never_lifts_a_complaint(client, token):
    suppress("matti@yritys.fi", reason="complained", source="webhook:ses", scope="news")
    db.session.commit()
    page = client.post(
        f"/preferences/{token}?lang=en", data={"action": "resubscribe", "scope": "news"}
    ).get_data(as_text=True)
    assert "could not be changed here" in page
    assert stored() == {("news", "complained", "webhook:ses")}


def test_feedback_is_optional_and_kept_from_a_fixed_set(client, token):
    client.post(f"/u/{token}", data={"choice": "list"})
    response = client.post(f"/u/{token}/feedback", data={"scope": "news", "answer": "too_many"})
    assert response.status_code == 200
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "suppression.feedback")
    ).one()
    assert entry.detail == {"answer": "too_many"}
    assert client.post(f"/u/{token}/feedback", data={"scope": "news"}).status_code == 200


def test_preferences_page_shows_each_list_and_the_global_opt_out(client, token):
    suppress("matti@yritys.fi", reason="unsubscribed", source="link", scope="events")
    db.session.commit()
    page = client.get(f"/preferences/{token}?lang=en").get_data(as_text=True)
    assert 'value="news" checked' in page
    assert 'value="events" >' in page or 'value="events"  >' in page
    assert 'name="stop_all" value="yes" >' in page or 'name="stop_all" value="yes"  >' in page


def test_preferences_save_follows_the_ticks(client, token):
    client.post(f"/preferences/{token}", data={"action": "save", "lists": ["events"]})
    assert stored() == {("news", "unsubscribed", "preferences")}
    client.post(f"/preferences/{token}", data={"action": "save", "lists": ["news", "events"]})
    assert stored() == set()
    client.post(f"/preferences/{token}", data={"action": "save", "stop_all": "yes"})
    assert ("global", "objected", "preferences") in stored()


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("path", ["/u/{}", "/preferences/{}", "/u/{}/feedback"])
def test_every_bad_token_gets_the_same_page_and_stores_nothing(client, token, method, path):
    """R-OC-3: no oracle; a tampered, random or truncated token all look the same."""
    if method == "get" and path.endswith("feedback"):
        pytest.skip("feedback is POST only")
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    answers = set()
    for bad in (flipped, "random-token", token[:20]):
        response = getattr(client, method)(path.format(bad), data=ONE_CLICK)
        answers.add((response.status_code, response.get_data()))
    assert len(answers) == 1
    assert answers.pop()[0] == 404
    assert count_suppressions() == 0


@pytest.mark.parametrize(
    ("query", "headers", "expected"),
    [
        ("?lang=sv", {}, "Avsluta prenumerationen"),
        ("?lang=en", {"Accept-Language": "fi"}, "Unsubscribe"),
        ("", {"Accept-Language": "sv-FI,sv;q=0.9"}, "Avsluta prenumerationen"),
        ("", {"Accept-Language": "de"}, "Peru tilaus"),
    ],
)
def test_language_from_query_then_browser_then_default(client, token, query, headers, expected):
    page = client.get(f"/u/{token}{query}", headers=headers).get_data(as_text=True)
    assert f"<h1>{expected}</h1>" in page


def test_language_stored_with_the_address_beats_the_browser(client, token):
    address = db.session.get(Address, tokens.read(token).address.id)
    address.language = "sv"
    db.session.commit()
    page = client.get(f"/u/{token}", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="sv">' in page


def test_pages_carry_a_strict_content_security_policy_and_no_referrer(client, token):
    response = client.get(f"/u/{token}")
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert "<script" not in response.get_data(as_text=True)


def test_controller_name_and_contact_come_from_configuration(make_app, app, token):
    configured = make_app(CONTROLLER_NAME="Yritys Oy", CONTROLLER_CONTACT="tietosuoja@yritys.fi")
    page = configured.test_client().get(f"/u/{token}?lang=en").get_data(as_text=True)
    assert "Stop all marketing email from Yritys Oy" in page
    assert "tietosuoja@yritys.fi" in page
