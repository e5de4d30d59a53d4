import pytest
from sqlalchemy import func, select

from suppress.models import MailingList, db


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/webhooks/nothing", "/healthz/x"])
def test_machine_paths_get_json_errors(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.json["error"] == "not_found"


def test_people_get_an_html_error_page(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert b"<h1>404 Not Found</h1>" in response.data


def test_unexpected_error_answers_500_and_rolls_back(make_app, app):
    broken = make_app()

    @broken.get("/api/v1/broken")
    def fail_halfway():
        db.session.add(MailingList(slug="half", name="written before the crash"))
        db.session.flush()
        raise RuntimeError("boom")

    response = broken.test_client().get("/api/v1/broken")
    assert response.status_code == 500
    assert response.json == {
        "error": "internal_server_error",
        "message": response.json["message"],
    }
    assert "boom" not in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(MailingList)) == 0
