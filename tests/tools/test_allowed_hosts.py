"""The operator's host allow-list for business-system adapters: every entry names a host and one port.

The HTTP client's refusals are in test_http_adapter.py, the admin form's in test_admin.py and the API's in
test_api.py; this module covers the entries themselves, the service that stores them and the installation's
TOOLS_ALLOWED_HOSTS."""

from __future__ import annotations

import logging

import pytest

from apps.core.errors import BadRequest
from apps.tools import services
from apps.tools.checks import check_tools_allowed_hosts
from apps.tools.connections import base_url_allowed, connection_allowed_hosts
from apps.tools.models import ToolConnection
from tests.tools.conftest import connection_row


@pytest.mark.parametrize(
    ("base_url", "entries", "allowed"),
    [
        ("https://api.example.com/v1", ["api.example.com"], True),
        ("https://api.example.com:443/v1", ["api.example.com"], True),
        ("https://api.example.com:8443/v1", ["api.example.com"], False),
        ("https://api.example.com:8443/v1", ["api.example.com:8443"], True),
        ("https://api.example.com/v1", ["api.example.com:8443"], False),
        ("http://127.0.0.1:5432", ["127.0.0.1"], False),
        ("http://127.0.0.1/", ["127.0.0.1"], True),
        ("http://[::1]:8000/", ["[::1]:8000"], True),
        ("http://[::1]:8000/", ["[::1]"], False),
        ("https://bücher.example:8443", ["xn--bcher-kva.example:8443"], True),
        ("https://api.example.com:99999/", ["api.example.com"], False),
        ("not a url", ["api.example.com"], False),
    ],
)
def test_a_base_url_is_allowed_only_on_a_listed_host_and_port(settings, base_url, entries, allowed):
    settings.TOOLS_ALLOWED_HOSTS = []
    assert base_url_allowed(ToolConnection(allowed_hosts=entries), base_url) is allowed


def test_malformed_installation_entries_allow_nothing_and_are_logged(settings, caplog):
    settings.TOOLS_ALLOWED_HOSTS = ["api.example.com:8443", "::1", "https://erp.example"]
    with caplog.at_level(logging.WARNING, logger="apps.tools.hosts"):
        hosts = connection_allowed_hosts(ToolConnection(allowed_hosts=["Billing.example.NET"]))
    assert hosts == {"api.example.com:8443", "billing.example.net"}
    assert [r.getMessage() for r in caplog.records] == [
        "ignoring the host allow-list entry '::1': "
        "write an IPv6 address in brackets, like [::1] or [::1]:8000",
        "ignoring the host allow-list entry 'https://erp.example': write a host name or address, not a URL",
    ]


def test_the_system_check_names_every_malformed_installation_entry(settings):
    settings.TOOLS_ALLOWED_HOSTS = ["api.example.com", "api.example.com:0", "[::1]:8000", "erp.example/"]
    errors = check_tools_allowed_hosts(app_configs=None)
    assert [(e.id, e.msg) for e in errors] == [
        ("tools.E001", "TOOLS_ALLOWED_HOSTS: api.example.com:0: the port must be a number from 1 to 65535"),
        ("tools.E001", "TOOLS_ALLOWED_HOSTS: erp.example/: write a host name or address, not a URL"),
    ]
    settings.TOOLS_ALLOWED_HOSTS = ["api.example.com", "[::1]:8000", "127.0.0.1:9000"]
    assert check_tools_allowed_hosts(app_configs=None) == []


def test_the_operators_entries_are_stored_normalised(tenant_a, settings):
    settings.TOOLS_ALLOWED_HOSTS = []
    connection = services.tool_connection_configure(
        tenant=tenant_a.tenant,
        adapter="http",
        base_url="https://erp.example:8443/api",
        allowed_hosts=[" ERP.example:8443 ", "[0:0:0::1]:9000", "erp.example:8443", "api.example.com"],
    )
    assert connection.allowed_hosts == ["[::1]:9000", "api.example.com", "erp.example:8443"]


def test_a_malformed_entry_is_refused_by_the_service_and_nothing_changes(tenant_a, settings):
    settings.TOOLS_ALLOWED_HOSTS = []
    services.tool_connection_configure(tenant=tenant_a.tenant, adapter="demo")
    before = connection_row(tenant_a.tenant)
    with pytest.raises(BadRequest) as raised:
        services.tool_connection_configure(
            tenant=tenant_a.tenant, adapter="demo", allowed_hosts=["api.example.com", "127.0.0.1:65536"]
        )
    assert raised.value.message == (
        "The allowed host 127.0.0.1:65536 is not valid: the port must be a number from 1 to 65535."
    )
    assert connection_row(tenant_a.tenant) == before
