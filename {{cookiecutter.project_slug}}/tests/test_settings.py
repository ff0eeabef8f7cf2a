"""Configuration comes only from the environment, and bad configuration stops the process."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.core.settings import (
    ConfigError,
    Settings,
    load_settings,
)

from support import TEST_SECRET

PROJECT_DIR = Path(__file__).resolve().parents[1]
VALID = {
    "DATABASE_URL": "postgresql://app:hunter2-db-password@db.internal:5432/app",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "SECRET_KEY": TEST_SECRET,
    "ALLOWED_HOSTS": "api.example.com",
}


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment holding no setting of ours until the test sets some."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def _set(environ: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in (VALID | values).items():
        if value == "":
            environ.delenv(name, raising=False)
        else:
            environ.setenv(name, value)


def test_valid_environment_loads_with_production_defaults(environ: pytest.MonkeyPatch) -> None:
    _set(environ)
    settings = load_settings()
    assert settings.app_env == "production"
    assert settings.port == 8000
    assert settings.allowed_hosts == ["api.example.com"]
    assert settings.show_docs is False


def test_every_missing_variable_is_named_in_one_message(environ: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS"):
        assert name in message


def test_invalid_values_are_named_but_never_echoed(environ: pytest.MonkeyPatch) -> None:
    _set(environ, PORT="not-a-port", DATABASE_URL="mysql://root:topsecret@db/app")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "PORT" in message
    assert "DATABASE_URL" in message
    assert "topsecret" not in message
    assert "not-a-port" not in message
    assert TEST_SECRET not in message


{%- if cookiecutter.observability %}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SENTRY_DSN", "sentry-secret-not-a-dsn"),
        ("SENTRY_DSN", "https://sentry-secret@o1.ingest.example/not-a-project"),
        ("SENTRY_DSN", "ftp://sentry-secret@o1.ingest.example/1"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector-secret:4318"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector-secret:port"),
        ("METRICS_PORT", "70000"),
    ],
)
def test_malformed_observability_variables_stop_the_process(
    environ: pytest.MonkeyPatch, name: str, value: str
) -> None:
    _set(environ, **{name: value})
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert name in str(caught.value)
    assert "secret" not in str(caught.value).replace("SECRET_KEY", "")


def test_empty_observability_variables_leave_it_off(environ: pytest.MonkeyPatch) -> None:
    _set(environ)
    environ.setenv("SENTRY_DSN", " ")
    environ.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    settings = load_settings()
    assert settings.sentry_dsn is None
    assert settings.otel_exporter_otlp_endpoint is None
{%- endif %}


@pytest.mark.parametrize(
    "scheme", ["postgres", "postgresql", "postgresql+psycopg", "postgresql+asyncpg"]
)
def test_platform_postgres_urls_are_kept_and_derived_per_driver(
    environ: pytest.MonkeyPatch, scheme: str
) -> None:
    _set(environ, DATABASE_URL=f"{scheme}://u:p@db:5432/app")
    settings = load_settings()
    assert settings.database_url.get_secret_value() == f"{scheme}://u:p@db:5432/app"
    assert settings.asyncpg_dsn.get_secret_value() == "postgresql://u:p@db:5432/app"
    assert settings.sqlalchemy_url.get_secret_value() == "postgresql+psycopg://u:p@db:5432/app"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # the local servers' Unix-socket form, which pydantic's URL parser alone refuses
        ("DATABASE_URL", "postgresql://postgres@/postgres?host=/tmp/local%20servers"),
        ("DATABASE_URL", "postgresql://postgres:@:5433/app?host=/tmp/sockets"),
        ("DATABASE_URL", "postgresql://postgres@/app_test?host=%2Ftmp%2Fservers%2Fpostgres"),
        ("DATABASE_URL", "postgresql://app:pw@db1.internal:5432,db2.internal:5432/app"),
        ("REDIS_URL", "rediss://:pw@cache.internal:6380/1"),
        ("REDIS_URL", "unix:///run/valkey/valkey.sock?db=2"),
    ],
)
def test_backing_service_url_forms_are_accepted_as_given(
    environ: pytest.MonkeyPatch, name: str, value: str
) -> None:
    _set(environ, **{name: value})
    settings = load_settings()
    assert getattr(settings, name.lower()).get_secret_value() == value


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "postgresql://app:secret-pw@:notaport/app?host=/tmp/sockets"),
        ("DATABASE_URL", "postgresql://app:secret-pw@/app"),
        ("DATABASE_URL", "postgresql+pg8000://app:secret-pw@db.internal/app"),
        ("REDIS_URL", "redis://"),
        ("REDIS_URL", "redis://:secret-pw@cache.internal:6379/zero"),
        ("REDIS_URL", "unix://"),
        ("REDIS_URL", "valkey://:secret-pw@cache.internal:6379/0"),
{%- if cookiecutter.observability %}
        ("SENTRY_DSN", "https://secret-key@o1.ingest.example/1/"),
        ("SENTRY_DSN", "https://o1.ingest.example/1"),
{%- endif %}
    ],
)
def test_malformed_backing_service_urls_are_named_but_never_echoed(
    environ: pytest.MonkeyPatch, name: str, value: str
) -> None:
    _set(environ, **{name: value})
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert name in message
    assert "secret" not in message.replace("SECRET_KEY", "")
    assert "internal" not in message


@pytest.mark.parametrize(
    ("proxies", "trusted"),
    [
        ("", ["127.0.0.1/32"]),
        ("*", ["*"]),
        ("10.0.0.0/8, 127.0.0.1", ["10.0.0.0/8", "127.0.0.1/32"]),
        ("::1,fd00::/8", ["::1/128", "fd00::/8"]),
    ],
)
def test_trusted_proxies_are_networks_or_star(
    environ: pytest.MonkeyPatch, proxies: str, trusted: list[str]
) -> None:
    _set(environ, FORWARDED_ALLOW_IPS=proxies)
    assert [str(proxy) for proxy in load_settings().forwarded_allow_ips] == trusted


@pytest.mark.parametrize(
    "proxies",
    [
        "10.0.0.1/8",  # host bits set: granian would ignore it and trust nobody
        "10.0.0.0/33",
        "999.0.0.1",
        "unix:",  # granian listens on TCP only: no client comes from a Unix socket
        "proxy.internal",
        "127.0.0.1, 10.0.0.1/8",
    ],
)
def test_malformed_trusted_proxies_stop_the_process(
    environ: pytest.MonkeyPatch, proxies: str
) -> None:
    _set(environ, FORWARDED_ALLOW_IPS=proxies)
    with pytest.raises(ConfigError, match="FORWARDED_ALLOW_IPS"):
        load_settings()


def test_a_reason_shared_by_several_entries_is_given_once(environ: pytest.MonkeyPatch) -> None:
    _set(environ, FORWARDED_ALLOW_IPS="10.0.0.1/8,999.0.0.1,unix:")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).count("not a valid IPv4 or IPv6 network") == 1


@pytest.mark.parametrize("hosts", ["bad host", "api.*.example.com", "https://api.example.com"])
def test_malformed_allowed_hosts_stop_the_process(environ: pytest.MonkeyPatch, hosts: str) -> None:
    _set(environ, ALLOWED_HOSTS=f"api.example.com,{hosts}")
    with pytest.raises(ConfigError, match="ALLOWED_HOSTS"):
        load_settings()


def test_allowed_hosts_are_compared_in_lower_case(environ: pytest.MonkeyPatch) -> None:
    _set(environ, ALLOWED_HOSTS="API.Example.COM,[::1]")
    assert load_settings().allowed_hosts == ["api.example.com", "[::1]"]


@pytest.mark.parametrize("secret", ["changeme", "dev-secret-key-change-me", "short-but-real"])
def test_production_refuses_placeholder_or_short_secrets(
    environ: pytest.MonkeyPatch, secret: str
) -> None:
    _set(environ, SECRET_KEY=secret)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_settings()


@pytest.mark.parametrize(
    "values",
    [
{%- if cookiecutter.observability %}
        {"PORT": "8080", "METRICS_PORT": "8080"},
{%- endif %}
        {"JOB_MIN_BACKOFF": "10", "JOB_MAX_BACKOFF": "5"},
        {"SECRET_KEY_FALLBACKS": f"{TEST_SECRET},too-short-a-key"},
    ],
)
def test_settings_that_depend_on_another_are_checked_against_it(
    environ: pytest.MonkeyPatch, values: dict[str, str]
) -> None:
    _set(environ, **values)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert list(values)[-1] in str(caught.value)
    assert "too-short-a-key" not in str(caught.value)


def test_the_log_level_is_read_in_any_case(environ: pytest.MonkeyPatch) -> None:
    _set(environ, LOG_LEVEL="warning")
    assert load_settings().log_level == "WARNING"


def test_development_accepts_the_example_secret_and_any_host(environ: pytest.MonkeyPatch) -> None:
    _set(environ, APP_ENV="development", SECRET_KEY="dev-secret-key-change-me", ALLOWED_HOSTS="")
    settings = load_settings()
    assert settings.allowed_hosts == ["*"]
    assert settings.show_docs is True


def test_secrets_do_not_appear_in_repr(environ: pytest.MonkeyPatch) -> None:
    _set(environ)
    text = repr(load_settings())
    assert TEST_SECRET not in text
    assert "hunter2-db-password" not in text


def test_comma_separated_lists_are_split(environ: pytest.MonkeyPatch) -> None:
    _set(environ, ALLOWED_HOSTS="a.example.com, *.b.example.com", CORS_ORIGINS="https://x.io")
    settings = load_settings()
    assert settings.allowed_hosts == ["a.example.com", "*.b.example.com"]
    assert settings.cors_origins == ["https://x.io"]


def test_env_example_lists_exactly_the_settings() -> None:
    text = (PROJECT_DIR / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_readme_documents_exactly_the_settings() -> None:
    text = (PROJECT_DIR / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", text, flags=re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}
