"""The one place configuration is read from the environment (STYLE rule 14).

Every variable is listed with a comment in `.env.example`. When an external service's URL is set the
product uses it and starts nothing of its own; when it is unset, the embedded default below applies, and
`make run` / the test harness start that embedded part.
"""

from __future__ import annotations

import builtins
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """A configuration value is missing or malformed; the message names the variable and the fix."""


class Env:
    def __init__(self, environ: os._Environ[str] | dict[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def str(self, name: builtins.str, default: builtins.str | None = None) -> builtins.str:
        value = self._environ.get(name)
        if value is None or value == "":
            if default is None:
                raise ConfigError(f"{name} is not set: production settings need it (see .env.example)")
            return default
        return value

    def optional(self, name: builtins.str) -> builtins.str | None:
        value = self._environ.get(name)
        return value or None

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        value = self._environ.get(name)
        if value is None or value == "":
            return default
        lowered = value.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name}={value!r} is not a boolean: use true or false")

    def int(self, name: builtins.str, default: builtins.int) -> builtins.int:
        value = self._environ.get(name)
        if value is None or value == "":
            return default
        try:
            return builtins.int(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not an integer") from None

    def float(self, name: builtins.str, default: builtins.float) -> builtins.float:
        value = self._environ.get(name)
        if value is None or value == "":
            return default
        try:
            return builtins.float(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a number") from None

    def list(
        self, name: builtins.str, default: builtins.list[builtins.str] | None = None
    ) -> builtins.list[builtins.str]:
        value = self._environ.get(name)
        if value is None or value == "":
            return builtins.list(default or [])
        return [item.strip() for item in value.split(",") if item.strip()]


env = Env()


@dataclass(frozen=True)
class LocalStack:
    """Where the embedded parts live and listen when no external service is configured."""

    var_dir: Path
    pg_socket_dir: Path
    pg_data_dir: Path
    pg_database: str
    redis_port: int
    redis_data_dir: Path
    llm_port: int
    llm_tools_port: int
    web_host: str
    web_port: int
    log_dir: Path

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@/{self.pg_database}?host={self.pg_socket_dir}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}"

    @property
    def llm_base_url(self) -> str:
        return f"http://127.0.0.1:{self.llm_port}/v1"

    @property
    def llm_tools_base_url(self) -> str:
        return f"http://127.0.0.1:{self.llm_tools_port}/v1"


def local_stack(e: Env = env) -> LocalStack:
    var_dir = Path(e.str("HELPDESK_VAR_DIR", str(BASE_DIR / "var"))).resolve()
    return LocalStack(
        var_dir=var_dir,
        pg_socket_dir=var_dir / "run",
        pg_data_dir=var_dir / "pgdata",
        pg_database="helpdesk",
        redis_port=e.int("HELPDESK_REDIS_PORT", 6380),
        redis_data_dir=var_dir / "valkey",
        llm_port=e.int("HELPDESK_LLM_PORT", 8001),
        llm_tools_port=e.int("HELPDESK_LLM_TOOLS_PORT", 8002),
        web_host=e.str("HELPDESK_HOST", "127.0.0.1"),
        web_port=e.int("HELPDESK_PORT", 8000),
        log_dir=var_dir / "log",
    )


def parse_database_url(url: str) -> dict[str, object]:
    """`postgresql://user:pass@host:port/name?host=/socket/dir&sslmode=...` → Django's DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ConfigError(
            f"DATABASE_URL must be a postgresql:// URL (got scheme {parts.scheme!r}): "
            "the product needs PostgreSQL with pgvector"
        )
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ConfigError("DATABASE_URL has no database name: add it as the path, e.g. .../helpdesk")
    host = query.pop("host", None) or unquote(parts.hostname or "")
    options: dict[str, str] = dict(query)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(parts.port or ""),
        "OPTIONS": options,
    }


LOCKOUT_PARAMETERS = ("ip_address", "username", "user_agent")


def lockout_parameters(items: list[str]) -> list[str | list[str]]:
    """SIGNIN_LOCKOUT_PARAMETERS → django-axes' AXES_LOCKOUT_PARAMETERS. Each item is a counter of its own;
    `username+ip_address` is one counter of that pair."""
    counters: list[str | list[str]] = []
    for item in items:
        names = [name.strip() for name in item.split("+")]
        unknown = [name for name in names if name not in LOCKOUT_PARAMETERS]
        if unknown:
            raise ConfigError(
                f"SIGNIN_LOCKOUT_PARAMETERS has {unknown[0]!r}: use {', '.join(LOCKOUT_PARAMETERS)}, "
                "comma-separated, joined with + to count a combination"
            )
        counters.append(names[0] if len(names) == 1 else names)
    if not counters:
        raise ConfigError("SIGNIN_LOCKOUT_PARAMETERS is empty: sign-in would never lock")
    return counters


def redis_server_url(url: str) -> str:
    """`redis://:pw@host:6379/5?x=y` → `redis://:pw@host:6379`: the server, without a database index."""
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss"} or not parts.hostname:
        raise ConfigError(
            f"REDIS_URL must look like redis://[:password@]host:port (got scheme {parts.scheme!r})"
        )
    if parts.query:
        raise ConfigError(
            "REDIS_URL must not carry query parameters: give only redis://[:password@]host:port"
        )
    return f"{parts.scheme}://{parts.netloc}"
