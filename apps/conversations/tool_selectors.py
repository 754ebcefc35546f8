"""Reads on the tool runs of conversations: their timeline events, and the list staff see."""

from __future__ import annotations

import uuid
from typing import Any

from apps.accounts.models import Tenant
from apps.tools.models import ToolRun
from apps.tools.registry import tool_spec
from apps.tools.selectors import run_proposal


def tool_run_event_data(run: ToolRun) -> dict[str, Any]:
    spec = tool_spec(run.tool)
    return {
        "run_id": str(run.id),
        "tool": run.tool,
        "label": (spec.label if spec else "") or run.tool,
        "status": run.status,
        "approval": run.approval,
        "proposal": run_proposal(run) if spec and spec.changes_data else "",
        "summary": run.summary,
        "error_code": run.error_code,
        "decided_by_customer": run.decided_by_customer,
    }


def conversation_tool_runs(*, tenant: Tenant, conversation_id: uuid.UUID) -> list[dict[str, Any]]:
    """The conversation's tool runs for staff: who asked, redacted arguments, result, duration, status."""
    return [
        {
            **tool_run_event_data(run),
            "arguments": run.arguments,
            "arguments_raw": run.arguments_raw,
            "customer": run.customer,
            "requested_in_message": str(run.message_ref) if run.message_ref else None,
            "result": run.result,
            "error_message": run.error_message,
            "attempts": run.attempts,
            "duration_ms": run.duration_ms,
            "decided_by": run.decided_by.get_username() if run.decided_by else None,
            "decided_by_customer": run.decided_by_customer,
            "created_at": run.created_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        }
        for run in ToolRun.objects.for_tenant(tenant)
        .filter(conversation_ref=conversation_id)
        .select_related("decided_by")
        .order_by("created_at")
    ]
