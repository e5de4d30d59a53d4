def test_healthz_answers_200_when_the_database_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "sync": {}}


def test_healthz_answers_503_with_json_when_the_database_is_down(make_app):
    app = make_app(DATABASE_URL="postgresql+psycopg://suppress:secret@127.0.0.1:1/none")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "database": "unreachable"}
    assert b"secret" not in response.data
