import re
from pathlib import Path

import pytest
from flask import Config

from suppress import create_app
from suppress.addresses import domain_of, normalise
from suppress.config import DEFAULTS, ConfigError, coerce, load_into, secret_key_from
from suppress.providers import PROVIDERS

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_documented_in_the_readme_table():
    documented = set(
        re.findall(r"^\| `SUPPRESS_([A-Z0-9_]+)` \|", README.read_text(encoding="utf-8"), re.M)
    )
    assert set(DEFAULTS) <= documented


def test_every_provider_setting_is_documented_in_the_readme_table():
    documented = set(
        re.findall(r"^\| `SUPPRESS_([A-Z0-9_]+)` \|", README.read_text(encoding="utf-8"), re.M)
    )
    settings = {
        f"{slug.upper()}_{key}"
        for slug, provider in PROVIDERS.items()
        for key in (*provider.SETTINGS, *provider.API_SETTINGS)
    }
    assert settings <= documented


def test_defaults_need_no_environment():
    settings = coerce({})
    assert settings["DATABASE_URL"] == "sqlite:///suppress.db"
    assert settings["BIND"] == "127.0.0.1:8000"
    assert settings["SECRET_KEY"] is None


def test_environment_overrides_defaults_with_typed_values(monkeypatch):
    monkeypatch.setenv("SUPPRESS_WORKERS", "4")
    monkeypatch.setenv("SUPPRESS_CONSUMER_DOMAINS", " Example.FI, ,other.fi")
    monkeypatch.setenv("SUPPRESS_SECRET_KEY", "123")
    config = Config(".")
    load_into(config)
    assert config["WORKERS"] == 4
    assert config["CONSUMER_DOMAINS"] == frozenset({"example.fi", "other.fi"})
    assert config["SECRET_KEY"] == "123"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WORKERS", "many"),
        ("WORKERS", "0"),
        ("DATABASE_URL", "mysql://x"),
        ("BASE_URL", "u.example.fi"),
        ("BIND", "localhost"),
        ("LOG_LEVEL", "chatty"),
        ("SQLITE_BUSY_TIMEOUT_MS", "-5"),
        ("SQLITE_SYNCHRONOUS", "off"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(f"SUPPRESS_{variable}", value)
    with pytest.raises(ConfigError, match=f"^SUPPRESS_{variable}: "):
        create_app({"SECRET_KEY": "x"})


def test_overrides_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("SUPPRESS_BASE_URL", "https://env.example.fi")
    config = Config(".")
    load_into(config, {"BASE_URL": "https://override.example.fi/"})
    assert config["BASE_URL"] == "https://override.example.fi"


def test_secret_key_is_generated_once_and_kept(tmp_path):
    first = secret_key_from(str(tmp_path / "instance"))
    assert len(first) >= 40
    assert secret_key_from(str(tmp_path / "instance")) == first
    assert (tmp_path / "instance" / "secret_key").stat().st_mode & 0o077 == 0


def test_an_empty_secret_key_file_is_an_error(tmp_path):
    (tmp_path / "secret_key").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        secret_key_from(str(tmp_path))


def test_consumer_domains_are_stored_as_addresses_store_domains(monkeypatch):
    monkeypatch.setenv("SUPPRESS_CONSUMER_DOMAINS", "Kotiposti.FI, äö.fi")
    config = Config(".")
    load_into(config)
    idna_domain = domain_of(normalise("a@äö.fi"))
    assert config["CONSUMER_DOMAINS"] == frozenset({"kotiposti.fi", idna_domain})


def test_a_consumer_domain_that_is_not_a_domain_names_the_variable(monkeypatch):
    monkeypatch.setenv("SUPPRESS_CONSUMER_DOMAINS", "good.fi,bad_domain!.fi")
    with pytest.raises(ConfigError, match=r"^SUPPRESS_CONSUMER_DOMAINS: not a domain name"):
        load_into(Config("."))
