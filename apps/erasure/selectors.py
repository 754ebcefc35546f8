"""Reads of erasure requests, always within one company."""

from __future__ import annotations

import uuid

from apps.accounts.models import Tenant
from apps.core.errors import NotFound
from apps.erasure.models import ErasureRequest
from apps.erasure.steps import STEP_NAMES


def erasure_request_get(*, tenant: Tenant, request_id: uuid.UUID | str) -> ErasureRequest:
    """The company's request `request_id`; another company's, or none, is `NotFound`."""
    try:
        key = uuid.UUID(str(request_id))
    except ValueError:
        raise NotFound() from None
    request = ErasureRequest.objects.for_tenant(tenant).filter(id=key).first()
    if request is None:
        raise NotFound()
    return request


def erasure_steps_pending(*, request: ErasureRequest) -> list[str]:
    """The steps the request has still to run, in order."""
    return [name for name in STEP_NAMES if name not in request.steps]
