"""Companies for the telco tests: plain UUIDs (telco keeps no foreign key to the helpdesk's tenants)."""

from __future__ import annotations

import uuid

import pytest

from apps.telco.services import demo_telco_load


@pytest.fixture
def company() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def seeded(db: None, company: uuid.UUID) -> uuid.UUID:
    """`company` with the demo telecom loaded."""
    demo_telco_load(company=company)
    return company
