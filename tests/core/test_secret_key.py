"""No install runs on a known or weak SECRET_KEY: every settings module refuses one at import, unless DEBUG
is on and only loopback hosts are served. Local and test settings without DJANGO_SECRET_KEY use a key
generated once per install, kept in the var directory.

Each import runs in a fresh interpreter: settings modules read the environment once, at import."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from helpdesk.env import ConfigError
from helpdesk.keys import PUBLIC_SECRET_KEYS, secret_key_refuse_weak
from tests.production_env import PRODUCTION_ENV

ROOT = Path(__file__).resolve().parents[2]
OLD_PUBLIC_KEY = "insecure-local-only-key-change-me-in-production-000000"
FIX = (
    ": set it to a random value of at least 50 characters, e.g. the output of "
    "python -c 'import secrets; print(secrets.token_urlsafe(50))' "
    "(a weak key is accepted only with DJANGO_DEBUG=true and loopback-only DJANGO_ALLOWED_HOSTS)"
)
PRODUCTION = PRODUCTION_ENV
CLEARED = {
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_SETTINGS_MODULE",
    "HELPDESK_VAR_DIR",
}


def import_settings(module: str, var_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in CLEARED}
    environ.update(HELPDESK_VAR_DIR=str(var_dir), **env)
    return subprocess.run(
        [sys.executable, "-c", f"import helpdesk.settings.{module} as s; print(s.SECRET_KEY)"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    return result.stderr.strip().splitlines()[-1]


def test_the_old_public_key_is_known() -> None:
    assert OLD_PUBLIC_KEY in PUBLIC_SECRET_KEYS


@pytest.mark.parametrize(
    ("module", "env"),
    [
        ("local", {"DJANGO_DEBUG": "false"}),
        ("test", {}),
        ("production", PRODUCTION),
    ],
)
def test_the_public_key_with_debug_off_is_refused(tmp_path, module, env) -> None:
    result = import_settings(module, tmp_path, DJANGO_SECRET_KEY=OLD_PUBLIC_KEY, **env)

    assert refusal(result) == (
        "helpdesk.env.ConfigError: DJANGO_SECRET_KEY is a published example key anyone can sign sessions "
        "with" + FIX
    )


def test_the_public_key_with_debug_on_but_a_public_host_is_refused(tmp_path) -> None:
    result = import_settings(
        "local",
        tmp_path,
        DJANGO_SECRET_KEY=OLD_PUBLIC_KEY,
        DJANGO_DEBUG="true",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,support.example.com",
    )

    assert refusal(result).startswith("helpdesk.env.ConfigError: DJANGO_SECRET_KEY is a published example")


def test_a_short_key_is_refused(tmp_path) -> None:
    result = import_settings("production", tmp_path, DJANGO_SECRET_KEY="s3cr3t-but-short", **PRODUCTION)

    assert refusal(result) == (
        "helpdesk.env.ConfigError: DJANGO_SECRET_KEY is too short (16 characters)" + FIX
    )


def test_a_key_of_one_repeated_character_is_refused(tmp_path) -> None:
    result = import_settings("production", tmp_path, DJANGO_SECRET_KEY="a" * 64, **PRODUCTION)

    assert refusal(result) == (
        "helpdesk.env.ConfigError: DJANGO_SECRET_KEY has fewer than 5 different characters" + FIX
    )


def test_production_still_requires_the_key(tmp_path) -> None:
    result = import_settings("production", tmp_path, **PRODUCTION)

    assert refusal(result) == (
        "helpdesk.env.ConfigError: DJANGO_SECRET_KEY is not set: production settings need it "
        "(see .env.example)"
    )


def test_a_weak_key_is_allowed_for_debug_on_loopback_only(tmp_path) -> None:
    result = import_settings(
        "local",
        tmp_path,
        DJANGO_SECRET_KEY=OLD_PUBLIC_KEY,
        DJANGO_DEBUG="true",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost,[::1]",
    )

    assert (result.returncode, result.stdout) == (0, OLD_PUBLIC_KEY + "\n"), result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_local_settings_generate_one_key_per_install_and_reuse_it(tmp_path) -> None:
    var_dir = tmp_path / "var"

    first = import_settings("local", var_dir)
    key_file = var_dir / "secret_key"
    assert first.returncode == 0, first.stderr
    made = key_file.stat()
    second = import_settings("local", var_dir, DJANGO_DEBUG="false")

    key = first.stdout.strip()
    assert len(key) >= 50
    assert key not in PUBLIC_SECRET_KEYS
    assert key_file.read_text() == key
    assert stat.S_IMODE(made.st_mode) == 0o600
    assert (second.returncode, second.stdout) == (0, key + "\n"), second.stderr
    after = key_file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (made.st_ino, made.st_mtime_ns)
    # Another install (another var directory) gets a key of its own.
    other = import_settings("local", tmp_path / "other-var")
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() not in {key, ""}


def test_an_explicit_key_wins_over_the_generated_one(tmp_path) -> None:
    explicit = "explicit-key-" + "k7Q" * 20
    result = import_settings("local", tmp_path, DJANGO_SECRET_KEY=explicit, DJANGO_DEBUG="false")

    assert (result.returncode, result.stdout) == (0, explicit + "\n"), result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_the_test_suite_runs_on_a_key_of_its_own() -> None:
    key_file = Path(os.environ["HELPDESK_VAR_DIR"]) / "secret_key"
    assert settings.SECRET_KEY not in PUBLIC_SECRET_KEYS
    assert len(settings.SECRET_KEY) >= 50
    assert key_file.read_text() == settings.SECRET_KEY


@pytest.mark.parametrize(
    "hosts",
    [[], ["localhost"], ["127.0.0.1", "[::1]", "localhost"], ["127.0.0.2"], [".localhost"], ["::1"]],
)
def test_debug_on_loopback_hosts_accepts_a_weak_key(hosts) -> None:
    secret_key_refuse_weak(secret_key="dev", debug=True, allowed_hosts=hosts)


@pytest.mark.parametrize(
    "hosts",
    [["*"], ["localhost", "support.example.com"], ["0.0.0.0"], ["10.0.0.5"], [".example.com"]],  # noqa: S104
)
def test_debug_on_a_reachable_host_refuses_a_weak_key(hosts) -> None:
    with pytest.raises(ConfigError) as caught:
        secret_key_refuse_weak(secret_key="dev", debug=True, allowed_hosts=hosts)
    assert str(caught.value) == "DJANGO_SECRET_KEY is too short (3 characters)" + FIX
