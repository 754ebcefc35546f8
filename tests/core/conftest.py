"""/healthz keeps its report for a few seconds: every core test starts, and ends, without a kept one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.core.health import health_cache_clear


@pytest.fixture(autouse=True)
def _no_kept_health_report() -> Iterator[None]:
    health_cache_clear()
    yield
    health_cache_clear()
