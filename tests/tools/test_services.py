"""Tool calls from proposal to result, in this process: policy checks, approvals, execution, idempotency,
and the breaker. tests/tools/test_worker.py runs the same path through real Celery workers."""

from __future__ import annotations

import datetime
import json
import uuid

import pytest
from django.utils import timezone
from pydantic import ValidationError

from apps.core.errors import Conflict, Forbidden
from apps.telco.models import Account, PlanChange, Ticket
from apps.tools import execution, services
from apps.tools.models import RunStatus, ToolRun
from tests.conftest import TenantStaff
from tests.tools.conftest import Propose

pytestmark = pytest.mark.django_db


def _run(run: ToolRun) -> ToolRun:
    return execution.tool_run_execute(run_id=str(run.id))


# ---- nothing runs: refusals before anything is enqueued ----------------------------------------------


@pytest.mark.parametrize(
    ("name", "arguments", "code"),
    [
        ("order_lookup", '{"order_number": "NM-100234"', "malformed_arguments"),  # truncated JSON
        ("order_lookup", '["NM-100234"]', "malformed_arguments"),  # not an object
        ("order_lookup", "{}", "invalid_arguments"),  # missing the order number
        ("order_lookup", '{"order_number": "NM-100234", "customer": "cust-1002"}', "invalid_arguments"),
        ("order_lookup", '{"order_number": "../../admin"}', "invalid_arguments"),
        ("plan_change", '{"plan_code": 7}', "invalid_arguments"),
        ("refund_everything", "{}", "unknown_tool"),
    ],
)
def test_a_bad_call_is_refused_and_recorded_and_nothing_is_queued(
    tools_a: TenantStaff, propose: Propose, name: str, arguments: str, code: str
) -> None:
    plans_before = list(Account.objects.values_list("external_id", "plan__code").order_by("external_id"))
    run = propose(tools_a.tenant, name, arguments)
    assert (run.status, run.error_code, run.arguments, run.queued_at) == (RunStatus.REFUSED, code, {}, None)
    assert run.finished_at is not None
    assert run.summary == services.REFUSALS[code]
    assert run.arguments_raw == arguments  # recorded (redacted) for whoever reviews the conversation
    # A refused run is final: executing it anyway (a forged task) does nothing.
    assert _run(run).status == RunStatus.REFUSED
    assert (
        list(Account.objects.values_list("external_id", "plan__code").order_by("external_id")) == plans_before
    )
    assert PlanChange.objects.count() == 0


def test_a_tool_the_company_did_not_enable_is_refused(tools_a: TenantStaff, propose: Propose) -> None:
    services.tool_configure(tenant=tools_a.tenant, name="plan_change", enabled=False, approval="agent")
    run = propose(tools_a.tenant, "plan_change", '{"plan_code": "unlimited-max"}')
    assert (run.status, run.error_code) == (RunStatus.REFUSED, "not_allowed")
    assert PlanChange.objects.count() == 0


def test_no_tool_runs_for_a_company_without_a_business_system(
    tenant_b: TenantStaff, propose: Propose
) -> None:
    services.tool_configure(tenant=tenant_b.tenant, name="order_lookup", enabled=True)
    run = propose(tenant_b.tenant, "order_lookup", '{"order_number": "NM-100234"}')
    assert (run.status, run.error_code) == (RunStatus.REFUSED, "not_allowed")


def test_an_anonymous_visitor_gets_no_account_tool(tools_a: TenantStaff, propose: Propose) -> None:
    run = propose(tools_a.tenant, "order_lookup", '{"order_number": "NM-100234"}', customer=None)
    assert (run.status, run.error_code, run.customer) == (RunStatus.REFUSED, "identity_required", "")


def test_a_change_can_never_be_configured_to_run_unconfirmed(tools_a: TenantStaff) -> None:
    from apps.core.errors import BadRequest

    with pytest.raises(BadRequest):
        services.tool_configure(tenant=tools_a.tenant, name="plan_change", enabled=True, approval="none")


def test_more_calls_than_an_answer_may_make_are_refused(tools_a: TenantStaff, propose: Propose) -> None:
    run = propose(tools_a.tenant, "plans_compare", "{}", index=services.MAX_CALLS_PER_ANSWER)
    assert (run.status, run.error_code) == (RunStatus.REFUSED, "too_many_calls")


# ---- reads -------------------------------------------------------------------------------------------


def test_an_order_lookup_runs_for_the_verified_customer(tools_a: TenantStaff, propose: Propose) -> None:
    run = propose(tools_a.tenant, "order_lookup", '{"order_number": "nm-100234"}')
    assert run.status == RunStatus.QUEUED
    assert run.queued_at is not None
    done = _run(run)
    assert (done.status, done.attempts, done.error_code) == (RunStatus.DONE, 1, "")
    assert done.result is not None
    assert done.result["number"] == "NM-100234"
    assert done.result["status"] == "shipped"
    assert done.summary.startswith("Order NM-100234 (")
    assert "tracking number JD0146000038285612" in done.summary
    assert done.duration_ms is not None
    assert done.finished_at is not None
    assert done.lease_until is None


def test_another_customers_order_is_not_found_and_nothing_of_it_is_returned(
    tools_a: TenantStaff, propose: Propose
) -> None:
    # NM-100251 is Tom Becker's (cust-1002); the verified customer is Maria (cust-1001).
    done = _run(propose(tools_a.tenant, "order_lookup", '{"order_number": "NM-100251"}'))
    assert (done.status, done.error_code, done.result) == (RunStatus.FAILED, "not_found", None)
    assert "NM-100251" not in done.summary
    assert "processing" not in done.summary
    assert done.summary == services.FAILURES["not_found"]


def test_the_model_cannot_choose_whose_data_a_tool_reads(tools_a: TenantStaff, propose: Propose) -> None:
    # Only the schema's arguments exist; a customer argument is refused (above), so the verified identity
    # is the only customer a run can act for.
    done = _run(propose(tools_a.tenant, "bill_explain", "{}", customer="cust-1002"))
    assert done.status == RunStatus.DONE
    assert done.result is not None
    assert done.result["number"] == "NB-202610-1002"


# ---- changes: approval, exactly once ------------------------------------------------------------------


def test_a_plan_change_waits_for_an_agent_and_runs_once_after_approval(
    tools_a: TenantStaff, propose: Propose
) -> None:
    run = propose(tools_a.tenant, "plan_change", '{"plan_code": "unlimited-max"}')
    assert (run.status, run.approval, run.deliver_later) == (RunStatus.AWAITING_APPROVAL, "agent", True)
    assert _run(run).status == RunStatus.AWAITING_APPROVAL  # a forged task cannot skip the approval
    assert Account.objects.get(external_id="cust-1001").plan.code == "plus-20"
    with pytest.raises(Forbidden):
        services.tool_run_decide(run=run, approve=True, by_customer=True)  # the agent must decide

    approved = services.tool_run_decide(run=run, approve=True, actor=tools_a.agent)
    assert (approved.status, approved.decided_by, approved.decided_by_customer) == (
        RunStatus.QUEUED,
        tools_a.agent,
        False,
    )
    with pytest.raises(Conflict):
        services.tool_run_decide(run=run, approve=False, actor=tools_a.admin)
    done = _run(run)
    again = _run(run)  # the same task delivered twice
    assert (done.status, again.status, again.attempts) == (RunStatus.DONE, RunStatus.DONE, 1)
    assert Account.objects.get(external_id="cust-1001").plan.code == "unlimited-max"
    assert PlanChange.objects.filter(idempotency_key=run.idempotency_key).count() == 1
    assert done.summary.startswith("Your plan changes from plus-20 to unlimited-max on ")


def test_a_rejected_change_never_runs(tools_a: TenantStaff, propose: Propose) -> None:
    run = propose(tools_a.tenant, "plan_change", '{"plan_code": "unlimited-max"}')
    rejected = services.tool_run_decide(run=run, approve=False, actor=tools_a.agent, note="not today")
    assert (rejected.status, rejected.error_message) == (RunStatus.REJECTED, "not today")
    assert _run(run).status == RunStatus.REJECTED
    assert PlanChange.objects.count() == 0


def test_the_customer_confirms_a_ticket_where_the_company_allows_it(
    tools_a: TenantStaff, propose: Propose
) -> None:
    run = propose(
        tools_a.tenant,
        "ticket_create",
        json.dumps({"subject": "No signal", "description": "No signal at home"}),
    )
    assert (run.status, run.approval) == (RunStatus.AWAITING_APPROVAL, "customer")
    services.tool_run_decide(run=run, approve=True, by_customer=True)
    done = _run(run)
    assert done.status == RunStatus.DONE
    assert done.decided_by_customer
    assert Ticket.objects.filter(idempotency_key=run.idempotency_key).count() == 1


def test_free_text_arguments_are_redacted_before_they_are_stored_or_sent(
    tools_a: TenantStaff, propose: Propose
) -> None:
    arguments = {
        "subject": "Call me back",
        "description": "Call me on +44 20 7946 0958 or jane.doe@example.com",
    }
    run = propose(tools_a.tenant, "ticket_create", json.dumps(arguments))
    assert "7946" not in json.dumps(run.arguments)
    assert "jane.doe" not in json.dumps(run.arguments)
    services.tool_run_decide(run=run, approve=True, by_customer=True)
    _run(run)
    ticket = Ticket.objects.get(idempotency_key=run.idempotency_key)
    assert "7946" not in ticket.description
    assert "jane.doe" not in ticket.description


def test_a_run_whose_worker_died_is_run_again_with_the_same_key_and_applies_once(
    tools_a: TenantStaff, propose: Propose
) -> None:
    run = propose(tools_a.tenant, "plan_change", '{"plan_code": "essential-5"}')
    services.tool_run_decide(run=run, approve=True, actor=tools_a.agent)
    # A first worker applied the change and died before recording it: the business system has the key,
    # the run is still `running` under that worker's lease.
    claimed = execution._claim(str(run.id))
    assert (claimed.status, claimed.attempts) == (RunStatus.RUNNING, 1)
    from apps.telco.services import plan_change

    first = plan_change(
        company=tools_a.tenant.id,
        external_id="cust-1001",
        plan_code="essential-5",
        idempotency_key=run.idempotency_key,
    )
    # While the lease holds, a redelivered task waits instead of running it a second time.
    with pytest.raises(execution.RetryLater):
        _run(run)
    ToolRun.objects.filter(id=run.id).update(lease_until=timezone.now() - datetime.timedelta(seconds=1))
    done = _run(run)
    assert (done.status, done.attempts) == (RunStatus.DONE, 2)
    assert done.result is not None
    assert done.result["reference"] == first.reference
    assert PlanChange.objects.filter(idempotency_key=run.idempotency_key).count() == 1


def test_recovery_resends_runs_left_behind(tools_a: TenantStaff, propose: Propose) -> None:
    stale = propose(tools_a.tenant, "plans_compare", "{}")
    ToolRun.objects.filter(id=stale.id).update(queued_at=timezone.now() - datetime.timedelta(minutes=5))
    fresh = propose(tools_a.tenant, "bill_explain", "{}")
    assert fresh.status == RunStatus.QUEUED
    assert execution.tool_runs_recover() == 1


def test_the_same_call_proposed_twice_is_one_run(tools_a: TenantStaff) -> None:
    conversation, message = uuid.uuid4(), uuid.uuid4()
    call = services.ToolCallRequest(call_id="c", name="plans_compare", arguments="{}")
    runs = [
        services.tool_call_propose(
            tenant=tools_a.tenant,
            call=call,
            index=0,
            customer="cust-1001",
            conversation_ref=conversation,
            message_ref=message,
        )
        for _ in range(2)
    ]
    assert runs[0].id == runs[1].id
    assert ToolRun.objects.count() == 1


def test_final_runs_are_counted_in_the_metrics(tools_a: TenantStaff, propose: Propose) -> None:
    from apps.audit.metrics import metrics_render, metrics_reset
    from tests.audit.exposition import check_histograms, parse

    metrics_reset()
    _run(propose(tools_a.tenant, "order_lookup", '{"order_number": "NM-100234"}'))
    propose(tools_a.tenant, "made_up_tool", "{}")
    services.tool_run_decide(
        run=propose(tools_a.tenant, "plan_change", '{"plan_code": "essential-5"}'),
        approve=False,
        actor=tools_a.agent,
    )
    exposition = parse(metrics_render())
    check_histograms(exposition)
    runs = "helpdesk_tool_runs_total"
    slug = tools_a.tenant.slug
    assert exposition.value(runs, tenant=slug, tool="order_lookup", status="done") == 1.0
    assert exposition.value(runs, tenant=slug, tool="other", status="refused") == 1.0
    assert exposition.value(runs, tenant=slug, tool="plan_change", status="rejected") == 1.0
    assert exposition.value("helpdesk_tool_run_seconds_count", tenant=slug) == 1.0


def test_the_offered_schemas_carry_no_limit_a_grammar_cannot_hold() -> None:
    from apps.tools.registry import tool_specs

    for spec in tool_specs():
        offered = spec.function_spec()["function"]["parameters"]
        assert '"title"' not in json.dumps(offered)
        assert all(prop.get("maxLength", 0) <= 64 for prop in offered["properties"].values())
    # ...while the input models still enforce them.
    from apps.tools.schemas import TicketCreateInput

    with pytest.raises(ValidationError):
        TicketCreateInput(subject="x" * 121, description="ok ok")


def test_a_read_the_question_never_asked_for_is_dropped_when_the_policies_answer(
    tools_a: TenantStaff, propose: Propose
) -> None:
    def call(question: str, answered: bool) -> ToolRun:
        return services.tool_call_propose(
            tenant=tools_a.tenant,
            call=services.ToolCallRequest(call_id="c", name="plans_compare", arguments="{}"),
            index=0,
            customer="cust-1001",
            conversation_ref=uuid.uuid4(),
            message_ref=uuid.uuid4(),
            question=question,
            answered_by_policies=answered,
        )

    dropped = call("Is roaming in the EU free?", True)
    assert (dropped.status, dropped.error_code, dropped.summary) == (RunStatus.REFUSED, "not_relevant", "")
    assert call("Is roaming in the EU free?", False).status == RunStatus.QUEUED  # nothing else answers it
    assert call("Which plan is cheaper for roaming?", True).status == RunStatus.QUEUED  # it names a plan


def test_free_text_is_stored_unescaped(tools_a: TenantStaff, propose: Propose) -> None:
    # What a small model behind llama.cpp's function-calling format writes after reading an escaped prompt.
    run = propose(
        tools_a.tenant,
        "ticket_create",
        json.dumps({"subject": "Can&#39;t call", "description": "&#34;No service&#34; since Monday"}),
    )
    assert run.arguments == {"subject": "Can't call", "description": '"No service" since Monday'}
