"""Every audit test starts from an empty metrics hash on the harness's real Valkey."""

from __future__ import annotations

import socket

import pytest

from apps.audit.metrics import metrics_reset


@pytest.fixture(autouse=True)
def _empty_metrics():
    metrics_reset()
    yield
    metrics_reset()


@pytest.fixture
def redis_down(settings):
    """Points REDIS_URL at a loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}"
    return settings.REDIS_URL
