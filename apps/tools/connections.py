"""The business-system adapter a company's tools go through."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings

from apps.accounts.models import Tenant
from apps.core.sealing import SealBroken, unseal
from apps.tools.adapters import BusinessAdapter
from apps.tools.errors import AdapterError
from apps.tools.hosts import AllowedHost, allow_list_admits, allowed_hosts_parse
from apps.tools.models import AdapterKind, ToolConnection


def _allowed(connection: ToolConnection) -> frozenset[AllowedHost]:
    return allowed_hosts_parse([*settings.TOOLS_ALLOWED_HOSTS, *connection.allowed_hosts])


def connection_allowed_hosts(connection: ToolConnection) -> set[str]:
    """The platform operator decides which hosts and ports adapters may reach (an SSRF guard): everywhere
    through TOOLS_ALLOWED_HOSTS, per company through the Django admin. A company's admin only picks among
    them. Entries are normalised (`api.example.com:8443`, `[::1]:9000`); malformed ones allow nothing."""
    return {str(entry) for entry in _allowed(connection)}


def base_url_allowed(connection: ToolConnection, base_url: str) -> bool:
    try:
        parts = urlsplit(base_url)
        port = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError:
        return False
    if not parts.hostname:
        return False
    return allow_list_admits(_allowed(connection), scheme=parts.scheme, hosts=(parts.hostname,), port=port)


def adapter_for(tenant: Tenant) -> BusinessAdapter:
    connection = ToolConnection.objects.filter(tenant=tenant).first()
    if connection is None or connection.adapter == AdapterKind.NONE:
        raise AdapterError("not_connected", "no business system is connected for this company")
    if connection.adapter == AdapterKind.DEMO:
        from apps.tools.demo_adapter import DemoAdapter

        return DemoAdapter(tenant.id)
    from apps.tools.http import AdapterHttpClient, HttpAdapter

    allowed = connection_allowed_hosts(connection)
    try:
        secret = unseal(connection.auth_secret)
    except SealBroken:
        raise AdapterError(
            "secret_unreadable",
            "the stored API secret was sealed under a key this installation no longer has",
        ) from None
    client = AdapterHttpClient(
        base_url=connection.base_url,
        auth_secret=secret,
        timeout_seconds=connection.timeout_seconds,
        allowed_hosts=allowed,
    )
    return HttpAdapter(breaker_key=f"http:{tenant.id}", client=client)
