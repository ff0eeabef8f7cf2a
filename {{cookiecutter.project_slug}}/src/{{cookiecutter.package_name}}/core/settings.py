"""Configuration: the only module that reads the environment."""

from __future__ import annotations

{% if cookiecutter.observability %}import os
{% endif %}import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import (
    AnyUrl,
    Field,
{%- if cookiecutter.observability %}
    HttpUrl,
{%- endif %}
    IPvAnyNetwork,
    PostgresDsn,
    SecretStr,
    StringConstraints,
    TypeAdapter,
    UrlConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Secrets that ship in examples and docs; a production process refuses to start with one.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev-secret-key-change-me"})
MIN_SECRET_LENGTH = 32

# pydantic's URL types check the scheme, host and port of the secret URLs, which stay SecretStr
# (DATABASE_URL and REDIS_URL as given): the validators below parse them with these adapters.
_POSTGRES_SCHEMES = ["postgres", "postgresql", "postgresql+psycopg", "postgresql+asyncpg"]
_POSTGRES_URL = TypeAdapter(
    Annotated[PostgresDsn, UrlConstraints(allowed_schemes=_POSTGRES_SCHEMES)]
)
_REDIS_URL = TypeAdapter(
    Annotated[AnyUrl, UrlConstraints(allowed_schemes=["redis", "rediss", "unix"])]
)
{%- if cookiecutter.observability %}
_HTTP_URL = TypeAdapter(HttpUrl)
{%- endif %}

CommaList = Annotated[list[str], NoDecode]
# A host name, *.domain, * or a bracketed IPv6 address: no pydantic type takes the wildcards.
HostName = Annotated[
    str,
    StringConstraints(to_lower=True, pattern=r"^(\*|(\*\.)?[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])$"),
]


def _package_version() -> str:
    try:
        return version("{{ cookiecutter.project_slug }}")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def _parse[U](url_type: TypeAdapter[U], raw: str) -> U:
    """raw parsed by one of pydantic's URL types; a ValueError giving pydantic's reason, which
    names no part of the value."""
    try:
        return url_type.validate_python(raw)
    except ValidationError as error:
        raise ValueError(error.errors(include_input=False)[0]["msg"]) from None


class ConfigError(Exception):
    """The environment does not describe a valid configuration."""


class Settings(BaseSettings):
    """Every setting of the service, read from environment variables of the same name."""

    model_config = SettingsConfigDict(
        env_file=None,
        case_sensitive=False,
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    app_env: Literal["production", "development", "test"] = "production"
    database_url: SecretStr
    redis_url: SecretStr
    secret_key: SecretStr
    # Earlier SECRET_KEYs, newest first: API keys digested with one of them still work and are
    # digested anew with SECRET_KEY on their next use (docs/security.md, rotation).
    secret_key_fallbacks: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    allowed_hosts: Annotated[list[HostName], NoDecode] = Field(
        default_factory=list, validate_default=True
    )
    cors_origins: CommaList = Field(default_factory=list)
    # Proxies whose X-Forwarded-For/-Proto are believed (default: loopback only).
    forwarded_allow_ips: Annotated[list[IPvAnyNetwork | Literal["*"]], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1"], validate_default=True
    )
    docs_enabled: bool | None = None
    max_body_size: int = Field(default=1_048_576, ge=1)

    web_concurrency: int = Field(default=1, ge=1, le=64)
    graceful_timeout: int = Field(default=20, ge=1, le=1800)

    db_pool_max_size: int = Field(default=15, ge=1, le=400)
    db_pool_timeout: float = Field(default=5.0, gt=0, le=300)
    db_connect_timeout: int = Field(default=5, ge=1, le=300)
    db_wait_timeout: float = Field(default=30.0, ge=0, le=3600)
    migration_lock_timeout: float = Field(default=300.0, gt=0, le=86400)
    redis_timeout: float = Field(default=2.0, gt=0, le=60)
    readiness_timeout: float = Field(default=1.0, gt=0, le=30)

    rate_limit_per_minute: int = Field(default=120, ge=0)
    auth_failures_per_minute: int = Field(default=20, ge=0)
    # How long a web process trusts a key it accepted without asking PostgreSQL again: the bound
    # on a revocation whose notification was lost (docs/security.md).
    api_key_cache_seconds: float = Field(default=30.0, ge=0, le=30)

    # Background jobs (docs/processes.md explains each bound). Durations are in seconds.
    worker_threads: int = Field(default=4, ge=1, le=64)
    worker_shutdown_timeout: float = Field(default=20.0, gt=0, le=3600)
    worker_heartbeat_timeout: float = Field(default=60.0, ge=2, le=3600)
    worker_maintenance_chance: int = Field(default=1_000_000, ge=1, le=1_000_000)
    job_max_retries: int = Field(default=10, ge=0, le=100)
    job_min_backoff: float = Field(default=1.0, gt=0, le=86400)
    job_max_backoff: float = Field(default=300.0, gt=0, le=604800)
    clock_tick_seconds: float = Field(default=60.0, ge=0.1, le=3600)
    # File whose age the worker's and clock's liveness probes read (docs/processes.md).
    liveness_file: Path | None = None

    release_version: str = Field(default_factory=_package_version)
    release_commit: str = "unknown"

{%- if cookiecutter.observability %}

    # Observability (docs/observability.md): each is off, and its packages never imported,
    # while its variable is unset. The OpenTelemetry SDK reads the other OTEL_* variables itself.
    otel_exporter_otlp_endpoint: HttpUrl | None = None
    otel_service_name: str | None = None
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    sentry_dsn: SecretStr | None = None
{%- endif %}

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value().strip()
        parts = urlsplit(raw)
        if parts.hostname is None and "host" in parse_qs(parts.query):
            # libpq's Unix-socket form (the local servers' URL: the socket's directory in
            # `?host=`, none in the authority), which pydantic refuses: parsed with a stand-in.
            user, at, port = parts.netloc.rpartition("@")
            raw_with_host = parts._replace(netloc=f"{user}{at}localhost{port}").geturl()
            _parse(_POSTGRES_URL, raw_with_host)
        else:
            _parse(_POSTGRES_URL, raw)
        return SecretStr(raw)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value().strip()
        url = _parse(_REDIS_URL, raw)
        # redis-py reads the socket of unix:// and the database number of redis:// from the
        # path, which no pydantic type checks (RedisDsn would also make `redis://` localhost).
        database = (url.path or "").strip("/")
        if url.scheme == "unix":
            if not url.path:
                raise ValueError("names no socket: unix:///path/to/socket?db=0")
        elif not url.host:
            raise ValueError("names no host: redis://host:port/db")
        elif database and not database.isdigit():
            raise ValueError("has a malformed database number: redis://host:port/db")
        return SecretStr(raw)

    @field_validator("secret_key")
    @classmethod
    def _strong_secret_in_production(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        if info.data.get("app_env", "production") != "production":
            return value
        secret = value.get_secret_value()
        squashed = re.sub(r"[^a-z0-9]", "", secret.lower())
        if secret.strip().lower() in PLACEHOLDER_SECRETS or "changeme" in squashed:
            raise ValueError("is a placeholder; production needs a real random secret")
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters in production")
        return value

    @field_validator(
        "allowed_hosts",
        "cors_origins",
        "forwarded_allow_ips",
        "secret_key_fallbacks",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("secret_key_fallbacks")
    @classmethod
    def _fallbacks_long_enough(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(len(item.get_secret_value()) < MIN_SECRET_LENGTH // 2 for item in value):
            raise ValueError("holds a key too short to have been a SECRET_KEY")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts_required_in_production(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if value:
            return value
        if info.data.get("app_env", "production") == "production":
            raise ValueError("is required in production (comma-separated host names, or *)")
        return ["*"]

{%- if cookiecutter.observability %}

    @field_validator("otel_exporter_otlp_endpoint", "sentry_dsn", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("sentry_dsn")
    @classmethod
    def _check_sentry_dsn(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = _parse(_HTTP_URL, value.get_secret_value())
        # What the Sentry SDK also requires, which HttpUrl does not: a public key, a project id.
        if not url.username or not (url.path or "").rpartition("/")[2].isdigit():
            raise ValueError("must be a Sentry DSN: https://public-key@host/project-id")
        return SecretStr(str(url))

    @field_validator("metrics_port")
    @classmethod
    def _metrics_off_the_public_port(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value == info.data.get("port"):
            raise ValueError("must differ from PORT: /metrics is never served on the public port")
        return value
{%- endif %}

    @field_validator("job_max_backoff")
    @classmethod
    def _backoff_range(cls, value: float, info: ValidationInfo) -> float:
        if value < info.data.get("job_min_backoff", 0):
            raise ValueError("must not be less than JOB_MIN_BACKOFF")
        return value

    @property
    def asyncpg_dsn(self) -> SecretStr:
        """DATABASE_URL as asyncpg takes it (the web's and admin's pool)."""
        return SecretStr(f"postgresql://{self._database_url_rest}")

    @property
    def sqlalchemy_url(self) -> SecretStr:
        """DATABASE_URL as SQLAlchemy's psycopg engine takes it (migrations, the worker)."""
        return SecretStr(f"postgresql+psycopg://{self._database_url_rest}")

    @property
    def _database_url_rest(self) -> str:
        return self.database_url.get_secret_value().partition("://")[2]

    @property
    def secret_values(self) -> list[str]:
        """The values of every secret setting (so error messages can be scrubbed of them)."""
        secrets = [self.database_url, self.redis_url, self.secret_key, *self.secret_key_fallbacks]
{%- if cookiecutter.observability %}
        if self.sentry_dsn is not None:
            secrets.append(self.sentry_dsn)
{%- endif %}
        return [value for secret in secrets if (value := secret.get_secret_value())]

    @property
    def show_docs(self) -> bool:
        """OpenAPI docs are served in development, and in production only when asked for."""
        if self.docs_enabled is not None:
            return self.docs_enabled
        return self.app_env == "development"


def describe_errors(error: ValidationError) -> str:
    """One line naming every bad variable and what is wrong with it, never its value."""
    problems: dict[str, list[str]] = {}
    for item in error.errors(include_input=False, include_url=False):
        name = str(item["loc"][0]).upper() if item["loc"] else "SETTINGS"
        reason = "is missing" if item["type"] == "missing" else item["msg"]
        reason = reason.removeprefix("Value error, ")
        if reason not in problems.setdefault(name, []):  # one line per reason, not per item
            problems[name].append(reason)
    parts = [f"{name} {'; '.join(reasons)}" for name, reasons in sorted(problems.items())]
    return "invalid configuration: " + ", ".join(parts)


{%- if cookiecutter.observability %}


def set_library_variable(name: str, value: str) -> None:
    """Set a variable that a library reads for itself (prometheus_client's multiprocess
    directory), for this process and the ones it starts: the environment is touched only here."""
    os.environ[name] = value
{%- endif %}


def load_settings() -> Settings:
    """Read the settings from the environment, or raise ConfigError with a readable message."""
    try:
        return Settings()
    except ValidationError as error:
        raise ConfigError(describe_errors(error)) from None
