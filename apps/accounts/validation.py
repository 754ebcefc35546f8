"""Pure checks of what staff type into settings: origins (compared with browsers' `Origin` headers) and slugs.

A leaf module: the services and the audited actions (apps.accounts.actions) both use it.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from apps.core.errors import BadRequest

_SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$")


_NETLOC_RE = re.compile(r"^(?:\[[0-9a-fA-F:.]+\]|[^\[\]:@/\s]+)(?::[0-9]{1,5})?$")
_HOST_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _is_host(host: str) -> bool:
    """A DNS name (ASCII; browsers send IDNs as punycode) or an IP address, nothing else."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return len(host) <= 253 and all(_HOST_LABEL_RE.match(label) for label in host.split("."))


def normalize_origin(raw: str) -> str:
    """`https://Shop.Example.com:443/` → `https://shop.example.com`; anything that is not exactly an origin
    is refused, because origins are compared with browsers' `Origin` headers and written into headers."""
    value = raw.strip()
    usage = f"{raw!r} is not an origin: use scheme://host[:port], e.g. https://shop.example.com"
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise BadRequest(usage) from None
    try:
        port = parts.port
    except ValueError:
        raise BadRequest(f"{raw!r} has an invalid port") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise BadRequest(usage)
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in {"", "/"}:
        raise BadRequest(f"{raw!r} is not an origin: give only scheme://host[:port], without a path")
    host = parts.hostname.lower()
    if not _NETLOC_RE.match(parts.netloc) or not _is_host(host):
        raise BadRequest(usage)
    if port == 0:
        raise BadRequest(f"{raw!r} has an invalid port")
    default_port = {"http": 80, "https": 443}[parts.scheme]
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None and port != default_port else "")


def validate_slug(slug: str) -> str:
    if not _SLUG_RE.match(slug):
        raise BadRequest(
            f"{slug!r} is not a valid slug: 1-50 lowercase letters, digits and hyphens, "
            "not starting or ending with a hyphen"
        )
    return slug
