"""Secrets a company gives the desk to call its own systems (an API token), sealed at rest.

Fernet (AES-128-CBC with HMAC-SHA256) under keys derived from SECRET_KEY with HKDF, so a database dump
alone does not hand out a company's API tokens. Rotating SECRET_KEY keeps stored secrets readable while the
old key is in SECRET_KEY_FALLBACKS; the next save seals them under the new key.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

PREFIX = "sealed:v1:"
_INFO = b"helpdesk sealed secrets v1"


class SealBroken(Exception):
    """A sealed value no configured key opens (SECRET_KEY changed without the old one as a fallback)."""


def _key(secret_key: str) -> bytes:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret_key.encode())
    return base64.urlsafe_b64encode(derived)


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_key(key)) for key in keys])


def _current() -> MultiFernet:
    return _fernet((settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])))


def seal(plain: str) -> str:
    """The value to store; empty stays empty."""
    if not plain:
        return ""
    return PREFIX + _current().encrypt(plain.encode()).decode("ascii")


def unseal(stored: str) -> str:
    """The secret itself. A value stored before sealing existed (no prefix) is returned as it is."""
    if not stored.startswith(PREFIX):
        return stored
    try:
        return _current().decrypt(stored[len(PREFIX) :].encode("ascii")).decode()
    except (InvalidToken, ValueError):
        raise SealBroken("no configured key opens this secret") from None
