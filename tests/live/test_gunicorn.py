"""The service as `make run` starts it: real gunicorn processes on a loopback port."""

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.live
START_TIMEOUT_S = 20


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=START_TIMEOUT_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def serve(tmp_path, start_gunicorn, stopped_gunicorn):
    """Start gunicorn with the project's config on a loopback port; stop it afterwards."""
    started = []

    def start(database_url: str) -> str:
        env = {**os.environ, "SUPPRESS_DATABASE_URL": database_url, "SUPPRESS_SECRET_KEY": "live"}
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]
            process = start_gunicorn(
                env, listener, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        started.append(process)
        # The socket listens already: a first request waits in its queue while gunicorn boots.
        return f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        with process.stderr as log:
            stopped_gunicorn(process, lambda log=log: log.read().decode(errors="replace"))


def migrate(database_url: str) -> None:
    env = {**os.environ, "SUPPRESS_DATABASE_URL": database_url, "SUPPRESS_SECRET_KEY": "x"}
    subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def test_gunicorn_serves_healthz(serve, tmp_path):
    url = f"sqlite:///{tmp_path / 'live.db'}"
    migrate(url)
    status, body = get(serve(url) + "/healthz")
    assert status == 200
    assert b'"status":"ok"' in body


def test_gunicorn_answers_503_when_the_database_is_down(serve):
    status, body = get(serve("postgresql+psycopg://x:y@127.0.0.1:1/none") + "/healthz")
    assert status == 503
    assert b'"database":"unreachable"' in body


def test_gunicorn_takes_its_address_and_workers_from_the_settings():
    env = {**os.environ, "SUPPRESS_BIND": "127.0.0.1:8765", "SUPPRESS_WORKERS": "3"}
    code = "import runpy; config = runpy.run_path('gunicorn.conf.py'); "
    code += "print(config['bind'], config['workers'])"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["127.0.0.1:8765", "3"]


def test_a_bad_setting_stops_start_up_with_a_message_naming_it():
    env = {**os.environ, "SUPPRESS_WORKERS": "many"}
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "SUPPRESS_WORKERS: expected a whole number" in result.stderr
    assert "Traceback" not in result.stderr


def test_what_start_up_made_is_kept_from_the_cycle_collector():
    """Every command and worker walks it no more: at exit that walk took 0.3 s a command."""
    code = "import gc, wsgi; print(gc.get_freeze_count() > len(gc.get_objects()))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "True"
