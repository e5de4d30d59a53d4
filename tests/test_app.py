from flask import session


def test_a_signed_session_cookie_is_read_back(make_app):
    app = make_app()

    @app.get("/remember")
    def remember() -> str:
        session["language"] = "sv"
        return "ok"

    @app.get("/recall")
    def recall() -> str:
        return session.get("language", "nothing")

    client = app.test_client()
    assert client.get("/recall").text == "nothing"
    client.get("/remember")
    assert client.get("/recall").text == "sv"
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], "forged.value")
    assert client.get("/recall").text == "nothing"


def test_a_request_without_a_session_cookie_is_not_handed_one(make_app):
    app = make_app()
    response = app.test_client().get("/healthz")
    assert "Set-Cookie" not in response.headers
