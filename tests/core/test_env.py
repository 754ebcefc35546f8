"""Configuration parsing: every malformed value is a ConfigError naming the variable."""

from __future__ import annotations

import pytest

from helpdesk.env import ConfigError, Env, local_stack, parse_database_url, redis_server_url


def test_database_url_over_tcp():
    assert parse_database_url("postgresql://app:s%40cret@db.internal:6543/helpdesk?sslmode=require") == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "helpdesk",
        "USER": "app",
        "PASSWORD": "s@cret",
        "HOST": "db.internal",
        "PORT": "6543",
        "OPTIONS": {"sslmode": "require"},
    }


def test_database_url_over_a_unix_socket():
    parsed = parse_database_url("postgresql://postgres@/helpdesk?host=/srv/var/run")
    assert (parsed["HOST"], parsed["PORT"], parsed["NAME"], parsed["OPTIONS"]) == (
        "/srv/var/run",
        "",
        "helpdesk",
        {},
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/helpdesk", "DATABASE_URL must be a postgresql:// URL (got scheme 'mysql')"),
        ("postgresql://postgres@localhost", "DATABASE_URL has no database name"),
    ],
)
def test_bad_database_urls(url, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_database_url(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
        ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379"),
        ("redis://:pw@cache.internal:6380/5", "redis://:pw@cache.internal:6380"),
        ("rediss://cache.internal:6380/0", "rediss://cache.internal:6380"),
    ],
)
def test_redis_url_drops_the_database_index(url, expected):
    assert redis_server_url(url) == expected


@pytest.mark.parametrize("url", ["http://cache:6379", "redis://cache:6379/0?ssl=true", "cache:6379"])
def test_bad_redis_urls(url):
    with pytest.raises(ConfigError, match="REDIS_URL must"):
        redis_server_url(url)


def test_typed_values_and_their_errors():
    env = Env({"A": "yes", "B": "0", "N": "12", "F": "1.5", "L": " a, b ,,c ", "BAD": "maybe"})
    assert (env.bool("A", False), env.bool("B", True), env.bool("MISSING", True)) == (True, False, True)
    assert (env.int("N", 1), env.float("F", 2.0), env.list("L")) == (12, 1.5, ["a", "b", "c"])
    with pytest.raises(ConfigError, match=r"BAD='maybe' is not a boolean: use true or false"):
        env.bool("BAD", False)
    with pytest.raises(ConfigError, match=r"BAD='maybe' is not an integer"):
        env.int("BAD", 1)
    with pytest.raises(ConfigError, match=r"SECRET is not set: production settings need it"):
        env.str("SECRET")


def test_local_stack_defaults_and_overrides(tmp_path):
    default = local_stack(Env({}))
    assert (default.web_port, default.redis_port, default.llm_port) == (8000, 6380, 8001)
    moved = local_stack(Env({"HELPDESK_VAR_DIR": str(tmp_path), "HELPDESK_PORT": "9000"}))
    assert moved.database_url == f"postgresql://postgres@/helpdesk?host={tmp_path}/run"
    assert moved.web_port == 9000
