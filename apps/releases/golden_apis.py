"""REST API of a company's golden answers (in the OpenAPI schema): the questions (list, add, read, change,
delete) and the runs (history, start one, one run's status, progress and results). Editors and admins;
agents get 403, another company's slug or ids 404."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.releases import golden_reads, services
from apps.releases.golden_start import golden_run_start
from apps.releases.models import GoldenQuestion, GoldenResult, GoldenRun

EDITORS = [Role.EDITOR]


def _editor(request: Request, slug: str) -> tuple[Tenant, User]:
    tenant, _ = access_tenant(actor=request.user, slug=slug, roles=EDITORS)
    assert isinstance(request.user, User)
    return tenant, request.user


class QuestionOutput(serializers.Serializer[GoldenQuestion]):
    id = serializers.UUIDField()
    question = serializers.CharField()
    expect = serializers.ListField(child=serializers.CharField())
    document_id = serializers.UUIDField(allow_null=True)
    document_title = serializers.CharField()
    must_abstain = serializers.BooleanField()
    source = serializers.CharField()  # type: ignore[assignment]
    source_ref = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    created_by = serializers.CharField(source="created_by.username", default=None)


class QuestionInput(serializers.Serializer[Any]):
    question = serializers.CharField(trim_whitespace=True, allow_blank=True)
    expect = serializers.ListField(
        child=serializers.CharField(allow_blank=True), required=False, default=list
    )
    document_id = serializers.UUIDField(required=False, allow_null=True, default=None)
    document_title = serializers.CharField(required=False, allow_blank=True, default="")
    must_abstain = serializers.BooleanField(required=False, default=False)
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=GoldenQuestion.Source.choices, required=False, default=GoldenQuestion.Source.MANUAL
    )
    source_ref = serializers.UUIDField(required=False, allow_null=True, default=None)


class QuestionPatch(serializers.Serializer[Any]):
    question = serializers.CharField(required=False, trim_whitespace=True, allow_blank=True)
    expect = serializers.ListField(child=serializers.CharField(allow_blank=True), required=False)
    document_id = serializers.UUIDField(required=False, allow_null=True)
    document_title = serializers.CharField(required=False, allow_blank=True)
    must_abstain = serializers.BooleanField(required=False)


class RunOutput(serializers.Serializer[GoldenRun]):
    id = serializers.UUIDField()
    kind = serializers.CharField()
    status = serializers.CharField()
    model = serializers.CharField(source="model_label")
    style = serializers.CharField()  # type: ignore[assignment]
    total = serializers.IntegerField()
    done = serializers.IntegerField()
    passed = serializers.IntegerField()
    pass_rate = serializers.FloatField(allow_null=True)
    summary = serializers.JSONField()
    error = serializers.CharField()
    change_id = serializers.UUIDField(allow_null=True)
    requested_by = serializers.CharField(source="requested_by.username", default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.FloatField(allow_null=True)


class ResultOutput(serializers.Serializer[GoldenResult]):
    ordinal = serializers.IntegerField()
    question_id = serializers.UUIDField(allow_null=True)
    question = serializers.CharField(source="question_text")
    answerable = serializers.BooleanField()
    right = serializers.BooleanField()
    abstained = serializers.BooleanField()
    failure = serializers.CharField()
    answer = serializers.CharField()
    cited = serializers.ListField(child=serializers.CharField())
    first_content_ms = serializers.FloatField(allow_null=True)
    complete_ms = serializers.FloatField(allow_null=True)
    detail = serializers.JSONField()


class RunDetailOutput(RunOutput):
    results = ResultOutput(many=True)


def _run_detail(run: GoldenRun) -> dict[str, Any]:
    return {
        **RunOutput(run).data,
        "results": ResultOutput(golden_reads.golden_run_results(run=run), many=True).data,  # type: ignore[arg-type]
    }


class GoldenQuestionListApi(APIView):
    @extend_schema(responses=QuestionOutput(many=True), summary="The company's golden questions")
    def get(self, request: Request, slug: str) -> Response:
        tenant, _ = _editor(request, slug)
        rows = golden_reads.golden_questions_listed(tenant=tenant)
        return Response(QuestionOutput(rows, many=True).data)  # type: ignore[arg-type]

    @extend_schema(
        request=QuestionInput,
        responses={201: QuestionOutput},
        summary="Add a golden question: the facts a right answer contains and the policy it cites, "
        "or that the assistant must say it does not know",
    )
    def post(self, request: Request, slug: str) -> Response:
        tenant, user = _editor(request, slug)
        data = QuestionInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        source, source_ref = golden_reads.golden_source_checked(
            tenant=tenant, source=fields.pop("source"), source_ref=str(fields.pop("source_ref") or "")
        )
        question = services.golden_question_create(
            tenant=tenant, **fields, source=source, source_ref=source_ref, actor=user
        )
        return Response(QuestionOutput(question).data, status=status.HTTP_201_CREATED)


class GoldenQuestionDetailApi(APIView):
    @extend_schema(responses=QuestionOutput, summary="One golden question")
    def get(self, request: Request, slug: str, question_id: str) -> Response:
        tenant, _ = _editor(request, slug)
        question = golden_reads.access_golden_question(tenant=tenant, question_id=question_id)
        return Response(QuestionOutput(question).data)

    @extend_schema(request=QuestionPatch, responses=QuestionOutput, summary="Change a golden question")
    def patch(self, request: Request, slug: str, question_id: str) -> Response:
        tenant, user = _editor(request, slug)
        question = golden_reads.access_golden_question(tenant=tenant, question_id=question_id)
        data = QuestionPatch(data=request.data)
        data.is_valid(raise_exception=True)
        question = services.golden_question_update(golden=question, **data.validated_data, actor=user)
        return Response(QuestionOutput(question).data)

    @extend_schema(responses={204: None}, summary="Delete a golden question (its past results stay)")
    def delete(self, request: Request, slug: str, question_id: str) -> Response:
        tenant, user = _editor(request, slug)
        question = golden_reads.access_golden_question(tenant=tenant, question_id=question_id)
        services.golden_question_delete(question=question, actor=user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class GoldenRunListApi(APIView):
    @extend_schema(responses=RunOutput(many=True), summary="The company's golden runs, newest first")
    def get(self, request: Request, slug: str) -> Response:
        tenant, _ = _editor(request, slug)
        return Response(RunOutput(golden_reads.golden_runs_recent(tenant=tenant), many=True).data)  # type: ignore[arg-type]

    @extend_schema(
        request=None,
        responses={202: RunOutput},
        summary="Run the golden set now on the company's current model (queued; poll the run)",
    )
    def post(self, request: Request, slug: str) -> Response:
        tenant, user = _editor(request, slug)
        run = golden_run_start(tenant=tenant, actor=user)
        return Response(RunOutput(run).data, status=status.HTTP_202_ACCEPTED)


class GoldenRunDetailApi(APIView):
    @extend_schema(
        responses=RunDetailOutput, summary="A golden run: its status, progress (done of total) and results"
    )
    def get(self, request: Request, slug: str, run_id: str) -> Response:
        tenant, _ = _editor(request, slug)
        run = golden_reads.access_golden_run(tenant=tenant, run_id=run_id)
        return Response(_run_detail(run))
