"""Secrets an install makes for itself, and the rule every settings module applies to SECRET_KEY.

Whoever knows SECRET_KEY can forge sessions (sign in as anyone, the platform operator included) and open
the companies' sealed API secrets (apps/core/sealing.py). A key printed in a repository or a README is
known to everyone, so no settings module accepts one, nor an empty or short key, except for a
developer's DEBUG server that only loopback hosts can reach.

Local and test settings without DJANGO_SECRET_KEY use a key generated once per install and kept in the
var directory, so `make run`, its Celery workers and a hand-run manage.py agree on it without it ever
being public. Production has no such fallback: its processes run on several machines and must share the
key through the environment.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

from helpdesk.env import ConfigError

# Keys that were ever published with this project. Never valid outside a loopback DEBUG server.
PUBLIC_SECRET_KEYS = frozenset({"insecure-local-only-key-change-me-in-production-000000"})
# Django's own deployment check (security.W009) asks for the same.
MIN_SECRET_KEY_LENGTH = 50
MIN_SECRET_KEY_CHARACTERS = 5

_FIX = (
    ": set it to a random value of at least 50 characters, e.g. the output of "
    "python -c 'import secrets; print(secrets.token_urlsafe(50))' "
    "(a weak key is accepted only with DJANGO_DEBUG=true and loopback-only DJANGO_ALLOWED_HOSTS)"
)


def is_loopback_host(host: str) -> bool:
    """Whether an ALLOWED_HOSTS entry names only this machine: localhost, a name under .localhost (RFC 6761)
    or a loopback address."""
    name = host.strip().lower().lstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def secret_key_refuse_weak(*, secret_key: str, debug: bool, allowed_hosts: list[str]) -> None:
    """Raises ConfigError (one sentence naming DJANGO_SECRET_KEY and the fix) for a public, empty, short
    or trivial key, unless DEBUG is on and every allowed host is loopback (Django itself serves only
    loopback names when DEBUG is on and ALLOWED_HOSTS is empty)."""
    if secret_key in PUBLIC_SECRET_KEYS:
        problem = "is a published example key anyone can sign sessions with"
    elif not secret_key:
        problem = "is empty"
    elif len(secret_key) < MIN_SECRET_KEY_LENGTH:
        problem = f"is too short ({len(secret_key)} characters)"
    elif len(set(secret_key)) < MIN_SECRET_KEY_CHARACTERS:
        problem = f"has fewer than {MIN_SECRET_KEY_CHARACTERS} different characters"
    else:
        return
    if debug and all(is_loopback_host(host) for host in allowed_hosts):
        return
    raise ConfigError(f"DJANGO_SECRET_KEY {problem}{_FIX}")


def secret_file(path: Path, *, generate: Callable[[], str]) -> str:
    """The secret kept in `path`, made from `generate` the first time (readable by the owner only).
    Processes starting together agree: the file appears whole or not at all, and the first one to link it
    wins."""
    existing = read_secret(path)
    if existing is not None:
        return existing
    temporary = _written(path, generate())
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)
    return _read_secret(path)


def read_secret(path: Path) -> str | None:
    """The secret kept in `path`, or None if there is no such file yet."""
    try:
        return _read_secret(path)
    except FileNotFoundError:
        return None


def write_secret(path: Path, value: str) -> None:
    """Keeps `value` in `path` (readable by the owner only), replacing what was there in one step."""
    os.replace(_written(path, value), path)


def _written(path: Path, value: str) -> str:
    """A temporary file beside `path` holding `value`, mode 0600 (mkstemp's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as out:
        out.write(value)
        out.flush()
        os.fsync(out.fileno())
    return temporary


def _read_secret(path: Path) -> str:
    value = path.read_text().strip()
    if not value:
        raise ConfigError(f"{path} is empty: delete it and a new secret is generated at the next start")
    return value


def local_secret_key(var_dir: Path) -> str:
    """This install's own SECRET_KEY (local and test settings, when DJANGO_SECRET_KEY is unset)."""
    return secret_file(var_dir / "secret_key", generate=lambda: secrets.token_urlsafe(50))
