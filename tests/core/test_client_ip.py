"""Per-IP limits key on an address a client cannot choose (security review, finding 3).

The end-to-end test starts Daphne exactly as `make run` does (`helpdesk.stack.embedded.web_argv`) and
sends every request from one peer with a different X-Forwarded-For: the session limit per address must
still stop it, and so must the cap on sockets.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from django.test import RequestFactory
from rest_framework.request import Request
from rest_framework.throttling import AnonRateThrottle
from websockets.typing import Origin

from apps.accounts import services as accounts
from apps.core.clientip import client_ip
from tests.daphne import daphne_serving

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "https://shop.example"


@pytest.mark.parametrize(
    ("peer", "forwarded", "hops", "expected"),
    [
        # No trusted proxy: whatever the header says, the peer is the client.
        ("198.51.100.1", ["203.0.113.9"], 0, "198.51.100.1"),
        ("198.51.100.1", [], 0, "198.51.100.1"),
        # One proxy (nginx on 10.0.0.2): it appended the address it saw; what the client wrote is left of it.
        ("10.0.0.2", ["1.2.3.4, 203.0.113.9"], 1, "203.0.113.9"),
        ("10.0.0.2", ["1.2.3.4", "203.0.113.9"], 1, "203.0.113.9"),  # the header repeated
        # A load balancer, then nginx.
        ("10.0.0.2", ["spoof, 203.0.113.9, 10.0.0.1"], 2, "203.0.113.9"),
        ("10.0.0.2", ["203.0.113.9:51234"], 1, "203.0.113.9"),
        ("10.0.0.2", ["[2001:db8::7]:443"], 1, "2001:db8::7"),
        ("::ffff:10.0.0.2", [], 0, "10.0.0.2"),
        # Garbage where the client should be is nobody in particular, never a fresh identity.
        ("10.0.0.2", ["not-an-address"], 1, "unknown"),
        (None, [], 0, "unknown"),
    ],
)
def test_the_client_is_counted_from_the_right_by_trusted_hops(peer, forwarded, hops, expected) -> None:
    assert client_ip(peer=peer, forwarded_for=forwarded, trusted_hops=hops) == expected


def test_drf_throttles_ignore_a_forwarded_for_they_cannot_trust() -> None:
    raw = RequestFactory().get(
        "/api/v1/tenants/", HTTP_X_FORWARDED_FOR="203.0.113.77", REMOTE_ADDR="10.9.9.9"
    )
    assert AnonRateThrottle().get_ident(Request(raw)) == "10.9.9.9"


@pytest.fixture
def tenant(transactional_db: None):
    return accounts.tenant_create(slug="xff", name="XFF Telecom", origins=[ORIGIN])


@pytest.fixture
def daphne(tenant) -> Iterator[str]:
    """Daphne as `make run` starts it, on the test database, with small per-address limits."""
    from django.db import connection

    with daphne_serving(
        database=connection.settings_dict["NAME"], WIDGET_RATE_SESSIONS_IP="3", WIDGET_SOCKETS_PER_IP="2"
    ) as url:
        yield url


def _session(url: str, widget_key: str, forwarded_for: str) -> int:
    request = urllib.request.Request(
        f"{url}/api/widget/v1/session",
        data=json.dumps({"widget_key": widget_key}).encode(),
        headers={"Content-Type": "application/json", "Origin": ORIGIN, "X-Forwarded-For": forwarded_for},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.slow
def test_rotating_forwarded_for_from_one_peer_is_still_one_address(daphne: str, tenant) -> None:
    codes = [_session(daphne, tenant.widget_key, f"203.0.113.{n}") for n in range(1, 6)]
    assert codes == [200, 200, 200, 429, 429]

    async def sockets() -> list[int | None]:
        url = daphne.replace("http://", "ws://") + f"/ws/widget/?key={tenant.widget_key}"
        opened, outcomes = [], []
        for n in range(3):
            ws = await websockets.connect(
                url, origin=Origin(ORIGIN), additional_headers={"X-Forwarded-For": f"192.0.2.{n}"}
            )
            opened.append(ws)
            try:
                await asyncio.wait_for(ws.recv(), timeout=1.5)
                await asyncio.wait_for(ws.recv(), timeout=1.5)
            except websockets.ConnectionClosed as closed:
                outcomes.append(closed.rcvd.code if closed.rcvd else None)
            except TimeoutError:
                outcomes.append(None)  # still open
        for ws in opened:
            await ws.close()
        return outcomes

    assert asyncio.run(sockets()) == [None, None, 4429]
