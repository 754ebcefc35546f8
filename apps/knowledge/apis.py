"""REST API for knowledge editors: documents, versions, publishing and search (in the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.core.errors import BadRequest, HelpdeskError
from apps.guardrails.pii import pii_redact
from apps.knowledge import selectors, services
from apps.knowledge.gate import ChangeKind, change_gate_request, change_payload
from apps.knowledge.models import Document, DocumentVersion

EDITORS = [Role.EDITOR]
MAX_FILES_PER_UPLOAD = 20


def _editor(request: Request, slug: str) -> tuple[Tenant, User]:
    tenant, _ = access_tenant(actor=request.user, slug=slug, roles=EDITORS)
    assert isinstance(request.user, User)
    return tenant, request.user


class VersionOutput(serializers.Serializer[DocumentVersion]):
    id = serializers.UUIDField()
    document_id = serializers.UUIDField()
    number = serializers.IntegerField()
    status = serializers.CharField()
    progress = serializers.IntegerField()
    error_code = serializers.CharField()
    error_message = serializers.CharField()
    filename = serializers.CharField()
    kind = serializers.CharField()
    size_bytes = serializers.IntegerField()
    page_count = serializers.IntegerField(allow_null=True)
    chunk_count = serializers.IntegerField()
    pii_findings = serializers.JSONField()
    pii_redacted = serializers.BooleanField()
    warnings = serializers.JSONField()
    embedding_model = serializers.CharField()
    timings = serializers.JSONField()
    effective_date = serializers.DateField(allow_null=True)
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    published_at = serializers.DateTimeField(allow_null=True)
    published_by = serializers.CharField(source="published_by.username", default=None)


class DocumentOutput(serializers.Serializer[Document]):
    id = serializers.UUIDField()
    title = serializers.CharField()
    published_version = serializers.IntegerField(source="published_version.number", default=None)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class EventOutput(serializers.Serializer[Any]):
    action = serializers.CharField()
    version = serializers.IntegerField(source="version.number", default=None)
    actor = serializers.CharField(source="actor.username", default=None)
    at = serializers.DateTimeField(source="created_at")


class ChunkOutput(serializers.Serializer[Any]):
    ordinal = serializers.IntegerField()
    section_path = serializers.ListField(child=serializers.CharField())
    page = serializers.IntegerField(allow_null=True)
    token_estimate = serializers.IntegerField()
    text = serializers.CharField()


class PassageOutput(serializers.Serializer[Any]):
    chunk_id = serializers.UUIDField()
    document_id = serializers.UUIDField()
    document_title = serializers.CharField()
    version_number = serializers.IntegerField()
    effective_date = serializers.DateField(allow_null=True)
    section_path = serializers.ListField(child=serializers.CharField())
    page = serializers.IntegerField(allow_null=True)
    text = serializers.CharField()
    score = serializers.FloatField()
    similarity = serializers.FloatField(allow_null=True)


class UploadInput(serializers.Serializer[Any]):
    files = serializers.ListField(
        child=serializers.FileField(), min_length=1, max_length=MAX_FILES_PER_UPLOAD
    )
    title = serializers.CharField(required=False, max_length=300)
    effective_date = serializers.DateField(required=False)


class VersionUploadInput(serializers.Serializer[Any]):
    file = serializers.FileField()
    effective_date = serializers.DateField(required=False)


class PublishInput(serializers.Serializer[Any]):
    effective_date = serializers.DateField(required=False)


class RollbackInput(serializers.Serializer[Any]):
    number = serializers.IntegerField(min_value=1)


def _gated(
    tenant: Tenant, user: User, kind: ChangeKind, document: Document, number: int | None = None, **extra: Any
) -> Response | None:
    """202 with the change when the company's golden answers are checked first (apps/knowledge/gate.py)."""
    change = change_gate_request(
        tenant=tenant, kind=kind, document=document, version_number=number, actor=user, **extra
    )
    if change is None:
        return None
    return Response(change_payload(tenant=tenant, change=change), status=status.HTTP_202_ACCEPTED)


def _read(upload: Any) -> services.Upload:
    services.upload_size_check(filename=upload.name, size=upload.size)  # before reading it into memory
    return services.Upload(filename=upload.name, data=upload.read())


class DocumentListApi(APIView):
    parser_classes = [MultiPartParser, JSONParser]

    @extend_schema(responses=DocumentOutput(many=True), summary="Documents of the knowledge base")
    def get(self, request: Request, slug: str) -> Response:
        tenant, _ = _editor(request, slug)
        return Response(DocumentOutput(selectors.documents_for_tenant(tenant=tenant), many=True).data)  # type: ignore[arg-type]

    @extend_schema(
        request={"multipart/form-data": UploadInput},
        responses={201: dict},
        summary="Upload one or many files; each becomes a new document with a draft version 1",
    )
    def post(self, request: Request, slug: str) -> Response:
        tenant, user = _editor(request, slug)
        form: Any = request.data
        fields = {key: value for key, value in form.items() if key != "files"}
        data = UploadInput(data={**fields, "files": request.FILES.getlist("files")})
        data.is_valid(raise_exception=True)
        created, rejected = [], []
        files = data.validated_data["files"]
        for upload in files:
            try:
                version = services.document_upload(
                    tenant=tenant,
                    actor=user,
                    upload=_read(upload),
                    title=data.validated_data.get("title") if len(files) == 1 else None,
                    effective_date=data.validated_data.get("effective_date"),
                )
                created.append(VersionOutput(version).data)
            except HelpdeskError as exc:
                rejected.append({"filename": upload.name, **exc.as_payload()})
        body = {"created": created, "rejected": rejected}
        if not created:
            return Response(
                {"code": "bad_request", "message": "No file could be accepted.", "retryable": False, **body},
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response(body, status=status.HTTP_201_CREATED)


class DocumentDetailApi(APIView):
    @extend_schema(responses=dict, summary="A document with its versions and publication history")
    def get(self, request: Request, slug: str, document_id: str) -> Response:
        tenant, _ = _editor(request, slug)
        document = selectors.access_document(tenant=tenant, document_id=document_id)
        return Response(
            {
                **DocumentOutput(document).data,
                "versions": VersionOutput(selectors.document_versions(document=document), many=True).data,  # type: ignore[arg-type]
                "history": EventOutput(selectors.document_history(document=document), many=True).data,
            }
        )

    @extend_schema(
        responses={204: None, 202: dict},
        summary="Delete a document with every version, passage and vector (202: checked against the golden "
        "answers first)",
    )
    def delete(self, request: Request, slug: str, document_id: str) -> Response:
        tenant, user = _editor(request, slug)
        document = selectors.access_document(tenant=tenant, document_id=document_id)
        if (held := _gated(tenant, user, "delete", document)) is not None:
            return held
        services.document_delete(document=document, actor=user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DocumentVersionUploadApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": VersionUploadInput},
        responses={201: VersionOutput},
        summary="Upload a new version (N+1, a draft) of a document",
    )
    def post(self, request: Request, slug: str, document_id: str) -> Response:
        tenant, user = _editor(request, slug)
        document = selectors.access_document(tenant=tenant, document_id=document_id)
        data = VersionUploadInput(data=request.data)
        data.is_valid(raise_exception=True)
        version = services.document_upload(
            tenant=tenant,
            actor=user,
            upload=_read(data.validated_data["file"]),
            document=document,
            effective_date=data.validated_data.get("effective_date"),
        )
        return Response(VersionOutput(version).data, status=status.HTTP_201_CREATED)


class DocumentRollbackApi(APIView):
    @extend_schema(
        request=RollbackInput,
        responses={200: VersionOutput, 202: dict},
        summary="Publish an earlier version again (202: checked against the golden answers first)",
    )
    def post(self, request: Request, slug: str, document_id: str) -> Response:
        tenant, user = _editor(request, slug)
        document = selectors.access_document(tenant=tenant, document_id=document_id)
        data = RollbackInput(data=request.data)
        data.is_valid(raise_exception=True)
        if (held := _gated(tenant, user, "rollback", document, data.validated_data["number"])) is not None:
            return held
        version = services.version_rollback(
            document=document, number=data.validated_data["number"], actor=user
        )
        return Response(VersionOutput(version).data)


class VersionDetailApi(APIView):
    @extend_schema(responses=VersionOutput, summary="A version's status and ingestion progress")
    def get(self, request: Request, slug: str, version_id: str) -> Response:
        tenant, _ = _editor(request, slug)
        return Response(VersionOutput(selectors.access_version(tenant=tenant, version_id=version_id)).data)


class VersionChunksApi(APIView):
    @extend_schema(responses=dict, summary="A version's extracted text and passages, as ingestion made them")
    def get(self, request: Request, slug: str, version_id: str) -> Response:
        tenant, _ = _editor(request, slug)
        version = selectors.access_version(tenant=tenant, version_id=version_id)
        chunks = ChunkOutput(selectors.version_chunks(version=version), many=True).data
        return Response({"extracted_text": version.extracted_text, "chunks": chunks})


class VersionActionApi(APIView):
    action: str = ""

    @extend_schema(
        request=PublishInput,
        responses={200: VersionOutput, 202: dict},
        summary="publish / redact / retry a version (publish: 202 when checked against the golden answers)",
    )
    def post(self, request: Request, slug: str, version_id: str) -> Response:
        tenant, user = _editor(request, slug)
        version = selectors.access_version(tenant=tenant, version_id=version_id)
        if self.action == "publish":
            data = PublishInput(data=request.data)
            data.is_valid(raise_exception=True)
            effective = data.validated_data.get("effective_date")
            held = _gated(tenant, user, "publish", version.document, version.number, effective_date=effective)
            if held is not None:
                return held
            version = services.version_publish(version=version, actor=user, effective_date=effective)
        elif self.action == "redact":
            version = services.version_redact(version=version, actor=user)
        else:
            version = services.version_retry(version=version, actor=user)
        return Response(VersionOutput(version).data)


class SearchApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("q", str, required=True), OpenApiParameter("k", int, required=False)],
        responses=dict,
        summary="Search the published knowledge base exactly as the assistant does",
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant, _ = _editor(request, slug)
        query = request.query_params.get("q", "").strip()
        if not query or len(query) > 2000:
            raise BadRequest("Give a question of 1 to 2000 characters in `q`.")
        try:
            k = min(max(int(request.query_params.get("k", 5)), 1), 20)
        except ValueError:
            raise BadRequest("`k` must be a whole number from 1 to 20.") from None
        result = selectors.knowledge_search(tenant=tenant, query=pii_redact(query), k=k)
        return Response(
            {
                "answerable": result.answerable,
                "top_similarity": result.top_similarity,
                "threshold": result.threshold,
                "model": result.model,
                "passages": PassageOutput(result.passages, many=True).data,
            }
        )


class GapOutput(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    question = serializers.CharField()
    top_similarity = serializers.FloatField(allow_null=True)
    threshold = serializers.FloatField()
    nearest = serializers.JSONField()
    conversation_ref = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    resolved_by = serializers.CharField(source="resolved_by.username", default=None)


class GapListApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("resolved", bool, description="Include resolved gaps.")],
        responses={200: GapOutput(many=True)},
        description="Questions the assistant abstained on (redacted), newest first: what the policies miss.",
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant, _ = _editor(request, slug)
        include = request.query_params.get("resolved") in ("1", "true")
        rows = selectors.knowledge_gaps(tenant=tenant, include_resolved=include)[:500]
        return Response(GapOutput(rows, many=True).data)


class GapResolveApi(APIView):
    @extend_schema(request=None, responses={200: GapOutput})
    def post(self, request: Request, slug: str, gap_id: str) -> Response:
        tenant, user = _editor(request, slug)
        gap = services.knowledge_gap_resolve(
            tenant=tenant, gap=selectors.access_gap(tenant=tenant, gap_id=gap_id), actor=user
        )
        return Response(GapOutput(gap).data)
