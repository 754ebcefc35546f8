"""REST API of the publish gate (in the OpenAPI schema): a held knowledge change, confirmed or cancelled.

The knowledge API answers 202 with a change's `url` when a publish, roll back or delete is checked against
the company's golden answers first; clients poll it and decide here.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.releases import gate
from apps.releases.models import GatedChange

EDITORS = [Role.EDITOR]


def _editor(request: Request, slug: str) -> tuple[Tenant, User]:
    tenant, _ = access_tenant(actor=request.user, slug=slug, roles=EDITORS)
    assert isinstance(request.user, User)
    return tenant, request.user


def _body(change: GatedChange) -> dict[str, Any]:
    return {
        **gate.change_progress(change),
        "title": gate.change_title(change),
        "document_id": str(change.document_id) if change.document_id else None,
        "document_title": change.document_title,
        "version_number": change.version_number,
        "regressions": change.regressions,
        "fixed": change.fixed,
        "requested_by": change.requested_by.username if change.requested_by else None,
        "decided_by": change.decided_by.username if change.decided_by else None,
        "created_at": change.created_at.isoformat(),
        "applied_at": change.applied_at.isoformat() if change.applied_at else None,
    }


class ChangeDetailApi(APIView):
    @extend_schema(
        responses=dict,
        summary="A knowledge change checked against the golden answers: progress, and what it would break",
    )
    def get(self, request: Request, slug: str, change_id: str) -> Response:
        tenant, _ = _editor(request, slug)
        return Response(_body(gate.access_change(tenant=tenant, change_id=change_id)))


class ChangeDecisionApi(APIView):
    decision: str = ""

    @extend_schema(
        request=None,
        responses=dict,
        summary="Confirm (apply although golden answers turn wrong) or cancel a held knowledge change",
    )
    def post(self, request: Request, slug: str, change_id: str) -> Response:
        tenant, user = _editor(request, slug)
        change = gate.access_change(tenant=tenant, change_id=change_id)
        if self.decision == "confirm":
            change = gate.change_confirm(change=change, actor=user)
        else:
            change = gate.change_cancel(change=change, actor=user)
        return Response(_body(change))
