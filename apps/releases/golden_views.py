"""Golden answers pages for editors (and admins): the company's golden questions with their last results,
the forms to add (by hand, from a reply in the console, from a knowledge gap), edit and delete them,
"Run now", the history of runs with the pass-rate chart, and one run's page with its progress and results.

Every form posts back to its page and works without JavaScript; static/js/golden-run.js only keeps a
running run's progress up to date. Refusals come back as one sentence, with what the editor typed kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.core.errors import HelpdeskError
from apps.releases import charts, golden_reads, services
from apps.releases.golden_start import golden_run_start
from apps.releases.models import GoldenQuestion, GoldenRun

EDITORS = [Role.EDITOR]
FINAL_STATUSES = frozenset({GoldenRun.Status.DONE, GoldenRun.Status.FAILED})


def _editor(request: HttpRequest, slug: str) -> tuple[Tenant, User]:
    tenant, _ = access_tenant(actor=request.user, slug=slug, roles=EDITORS)
    assert isinstance(request.user, User)
    return tenant, request.user


def _home(tenant: Tenant) -> str:
    return reverse("golden-home", kwargs={"slug": tenant.slug})


# --- the form -----------------------------------------------------------------------------------------


@dataclass
class Form:
    """What the question form shows: the values (as typed, when refused) and where they came from."""

    question: str = ""
    expect: str = ""  # one phrase a line
    document_id: str = ""
    must_abstain: bool = False
    source: str = GoldenQuestion.Source.MANUAL
    source_ref: str = ""
    prefill: golden_reads.Prefill = field(default_factory=golden_reads.Prefill)

    @classmethod
    def from_prefill(cls, prefill: golden_reads.Prefill) -> Form:
        return cls(
            question=prefill.question,
            expect="\n".join(prefill.expect),
            document_id=prefill.document_id,
            must_abstain=prefill.must_abstain,
            source=prefill.source,
            source_ref=str(prefill.source_ref or ""),
            prefill=prefill,
        )

    @classmethod
    def from_question(cls, question: GoldenQuestion) -> Form:
        return cls(
            question=question.question,
            expect="\n".join(str(p) for p in question.expect),
            document_id=str(question.document_id or ""),
            must_abstain=question.must_abstain,
            source=question.source,
        )

    @classmethod
    def from_post(cls, request: HttpRequest, prefill: golden_reads.Prefill | None = None) -> Form:
        post = request.POST
        return cls(
            question=post.get("question", ""),
            expect=post.get("expect", ""),
            document_id=post.get("document", "").strip(),
            must_abstain=post.get("must_abstain") == "on",
            source=post.get("source", GoldenQuestion.Source.MANUAL),
            source_ref=post.get("source_ref", ""),
            prefill=prefill or golden_reads.Prefill(),
        )

    @property
    def phrases(self) -> list[str]:
        return [line.strip() for line in self.expect.splitlines() if line.strip()]

    @property
    def fields(self) -> dict[str, Any]:
        """The service's arguments (the policy by id: the service checks it is the company's)."""
        return {
            "question": self.question.strip(),
            "expect": [] if self.must_abstain else self.phrases,
            "document_id": None if self.must_abstain else (self.document_id or None),
            "must_abstain": self.must_abstain,
        }


def _form_page(
    request: HttpRequest,
    tenant: Tenant,
    form: Form,
    *,
    question: GoldenQuestion | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "releases/golden_form.html",
        {
            "tenant": tenant,
            "form": form,
            "question": question,
            "policies": golden_reads.golden_policies(tenant=tenant),
            "error": error,
            "confirm_delete": question is not None and request.GET.get("delete") == "1",
        },
        status=status,
    )


# --- the list, the history and "Run now" ---------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def golden_home(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, user = _editor(request, slug)
    if request.method == "POST":
        if request.POST.get("action") != "run":
            messages.error(request, "That action isn't available on this page.")
            return redirect(_home(tenant))
        try:
            run = golden_run_start(tenant=tenant, actor=user)
        except HelpdeskError as exc:
            messages.error(request, exc.message)
            return redirect(_home(tenant))
        messages.success(
            request, f"The golden set is queued: {run.total} question{'s' if run.total != 1 else ''}."
        )
        return redirect("golden-run", slug=tenant.slug, run_id=run.id)

    questions = list(golden_reads.golden_questions_listed(tenant=tenant))
    last = golden_reads.golden_last_results(tenant=tenant)
    runs = golden_reads.golden_runs_recent(tenant=tenant)
    return render(
        request,
        "releases/golden_home.html",
        {
            "tenant": tenant,
            "rows": [(q, last.get(q.id)) for q in questions],
            "runs": [
                (r, charts.percent_text(r.pass_rate), charts.duration_text(r.duration_ms)) for r in runs
            ],
            "chart": charts.pass_rate_chart(golden_reads.golden_runs_charted(runs)),
            "final_statuses": FINAL_STATUSES,
        },
    )


# --- add, edit, delete ---------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def golden_question_new(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, user = _editor(request, slug)
    source = request.POST if request.method == "POST" else request.GET
    if source.get("message"):
        prefill = golden_reads.golden_prefill_from_message(
            tenant=tenant, message_id=source["message"], verdict=source.get("verdict", "")
        )
    elif source.get("gap"):
        prefill = golden_reads.golden_prefill_from_gap(tenant=tenant, gap_id=source["gap"])
    else:
        prefill = golden_reads.Prefill()

    if request.method == "GET":
        return _form_page(request, tenant, Form.from_prefill(prefill))

    form = Form.from_post(request, prefill)
    origin, reference = golden_reads.golden_source_checked(
        tenant=tenant, source=form.source, source_ref=form.source_ref
    )
    try:
        created = services.golden_question_create(
            tenant=tenant, **form.fields, source=origin, source_ref=reference, actor=user
        )
    except HelpdeskError as exc:
        return _form_page(request, tenant, form, error=exc.message, status=exc.http_status)
    messages.success(request, f"Added to the golden set: “{created.question[:80]}”.")
    return redirect(_home(tenant))


@login_required
@require_http_methods(["GET", "POST"])
def golden_question_page(request: HttpRequest, slug: str, question_id: str) -> HttpResponse:
    tenant, user = _editor(request, slug)
    question = golden_reads.access_golden_question(tenant=tenant, question_id=question_id)
    if request.method == "GET":
        return _form_page(request, tenant, Form.from_question(question), question=question)

    if request.POST.get("action") == "delete":
        if request.POST.get("confirm") != "yes":
            messages.error(request, "Confirm that you want to delete the golden question.")
            return redirect("golden-question", slug=tenant.slug, question_id=question.id)
        services.golden_question_delete(question=question, actor=user)
        messages.success(request, f"Deleted from the golden set: “{question.question[:80]}”.")
        return redirect(_home(tenant))

    form = Form.from_post(request)
    try:
        services.golden_question_update(golden=question, **form.fields, actor=user)
    except HelpdeskError as exc:
        return _form_page(request, tenant, form, question=question, error=exc.message, status=exc.http_status)
    messages.success(request, "The golden question was saved.")
    return redirect(_home(tenant))


# --- one run ---------------------------------------------------------------------------------------------


@login_required
@require_GET
def golden_run_page(request: HttpRequest, slug: str, run_id: str) -> HttpResponse:
    tenant, _ = _editor(request, slug)
    run = golden_reads.access_golden_run(tenant=tenant, run_id=run_id)
    results = golden_reads.golden_run_results(run=run)
    return render(
        request,
        "releases/golden_run.html",
        {
            "tenant": tenant,
            "run": run,
            "results": results,
            "final": run.status in FINAL_STATUSES,
            "percent": round(100 * run.done / run.total) if run.total else 0,
            "pass_rate": charts.percent_text(run.pass_rate),
            "duration": charts.duration_text(run.duration_ms),
        },
    )
