"""The operator's host allow-list for business-system adapters (an SSRF guard): which host and port a
company's HTTP adapter may reach.

An entry is `host`, `host:port`, `[v6]` or `[v6]:port`. Without a port it allows only the URL scheme's
default port (443 for https, 80 for http): listing a host never opens its other ports, such as the
database or Redis on the same machine. Names compare case-insensitively, in their Unicode or ASCII
(IDNA) form; IPv6 addresses in their compressed form.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

DEFAULT_PORTS = {"https": 443, "http": 80}

_PORT = re.compile(r"[0-9]{1,5}")
# Characters that make an entry a URL or a path rather than a host: the operator pasted the wrong thing.
_NOT_A_HOST = re.compile(r"[/@?#\\\s]")
_IPV6_HINT = "write an IPv6 address in brackets, like [::1] or [::1]:8000"
_PORT_HINT = "the port must be a number from 1 to 65535"


@dataclass(frozen=True)
class AllowedHost:
    host: str  # lower case; an IPv6 address compressed and without brackets
    port: int | None  # None: the default port of the URL's scheme

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def admits(self, *, scheme: str, hosts: Iterable[str], port: int | None) -> bool:
        default = DEFAULT_PORTS.get(scheme)
        if default is None:
            return False  # adapters speak http(s) only
        effective = port if port is not None else default
        wanted = self.port if self.port is not None else default
        return effective == wanted and self.host in hosts


def _port(text: str) -> int:
    if not _PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise ValueError(_PORT_HINT)
    return int(text)


def allowed_host_parse(entry: str) -> AllowedHost:
    """One allow-list entry; ValueError with a sentence for the operator if it is not one."""
    text = entry.strip().lower()
    if _NOT_A_HOST.search(text):
        raise ValueError("write a host name or address, not a URL")
    if "*" in text:
        raise ValueError("wildcards are not supported: list each host")
    if text.startswith("["):
        address, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(_IPV6_HINT)
        try:
            host = ipaddress.IPv6Address(address).compressed
        except ValueError:
            raise ValueError(f"{address} is not an IPv6 address") from None
        return AllowedHost(host=host, port=_port(rest[1:]) if rest else None)
    if text.count(":") > 1 or "]" in text:
        # Without brackets, "2001:db8::1:8000" is either an address or an address and a port.
        raise ValueError(_IPV6_HINT)
    host, colon, port = text.partition(":")
    if not host:
        raise ValueError("the host is missing")
    return AllowedHost(host=host, port=_port(port) if colon else None)


def allowed_hosts_parse(entries: Iterable[str]) -> frozenset[AllowedHost]:
    """Every valid entry; blank ones are skipped, malformed ones logged and skipped (they allow nothing)."""
    parsed = set()
    for entry in entries:
        if not entry.strip():
            continue
        try:
            parsed.add(allowed_host_parse(entry))
        except ValueError as exc:
            logger.warning("ignoring the host allow-list entry %r: %s", entry, exc)
    return frozenset(parsed)


def _canonical(host: str) -> str:
    lowered = host.lower().removeprefix("[").removesuffix("]")
    try:
        return ipaddress.IPv6Address(lowered).compressed
    except ValueError:
        return lowered


def host_forms(host: str) -> frozenset[str]:
    """The forms an entry may name `host` in: lower case, IPv6 compressed, IDNA names also as ASCII."""
    canonical = _canonical(host)
    forms = {canonical}
    if ":" not in canonical:
        # A name IDNA cannot encode can only match in its own form.
        with contextlib.suppress(UnicodeError):
            forms.add(canonical.encode("idna").decode("ascii"))
    return frozenset(forms)


def allow_list_admits(
    allowed: Iterable[AllowedHost], *, scheme: str, hosts: Iterable[str], port: int | None
) -> bool:
    """Whether some entry allows a URL with this scheme, host (in any of its forms) and port.

    `port` is the URL's explicit port, or None for the scheme's default.
    """
    names = frozenset(form for host in hosts for form in host_forms(host))
    return any(entry.admits(scheme=scheme, hosts=names, port=port) for entry in allowed)


def entry_for(*, scheme: str, host: str, port: int | None) -> str:
    """The entry an operator would add to allow this URL's host and port."""
    default = port is None or port == DEFAULT_PORTS.get(scheme)
    return str(AllowedHost(host=_canonical(host), port=None if default else port))
