"""Knowledge editor pages: upload, watch ingestion, preview passages, publish, roll back, search.

Each page also takes a POST with an `action` field, so every form works without JavaScript and posts
back to the page it came from. Errors a person can act on come back as messages after a redirect.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.core.errors import BadRequest, HelpdeskError, NotFound
from apps.guardrails.pii import pii_redact
from apps.knowledge import selectors, services
from apps.knowledge.gate import ChangeKind, change_gate_request, change_page_url, pending_changes
from apps.knowledge.models import Document, DocumentVersion, VersionStatus

EDITORS = [Role.EDITOR]
MAX_FILES_PER_UPLOAD = 20  # the same bound as the upload API
MAX_QUERY_CHARS = 2000
FINAL_STATUSES = frozenset({VersionStatus.READY, VersionStatus.FAILED})
# Shown next to the upload fields; what is really accepted is decided by sniffing the content.
ACCEPTED_TYPES = "PDF, Word (.docx), HTML, Markdown (.md) and plain text (.txt)"
ACCEPT_ATTRIBUTE = ".pdf,.docx,.html,.htm,.md,.markdown,.txt"


@dataclass(frozen=True)
class DocumentRow:
    document: Document
    latest: DocumentVersion | None
    updated_at: datetime.datetime


def _editor(request: HttpRequest, slug: str) -> tuple[Tenant, User]:
    tenant, _ = access_tenant(actor=request.user, slug=slug, roles=EDITORS)
    assert isinstance(request.user, User)
    return tenant, request.user


def _date(value: str | None) -> datetime.date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise BadRequest("The effective date must be a date such as 2025-03-01.") from None


def _read(upload: UploadedFile) -> services.Upload:
    # Checked before reading: a huge file should not be pulled into memory only to be refused.
    name = upload.name or "upload"
    services.upload_size_check(filename=name, size=upload.size or 0)
    return services.Upload(filename=name, data=upload.read())


def _version_of(tenant: Tenant, document: Document, version_id: str | None) -> DocumentVersion:
    version = selectors.access_version(tenant=tenant, version_id=version_id or "")
    if version.document_id != document.id:
        raise NotFound()
    return version


@dataclass(frozen=True)
class Done:
    message: str | None = None
    then: str | None = None  # where to go next when the page posted from no longer exists


Handler = Callable[[], Done]


def _dispatch(request: HttpRequest, handlers: dict[str, Handler], back: str) -> HttpResponse:
    """Runs the handler the form's `action` names and redirects, so a reload never repeats the action."""
    handler = handlers.get(request.POST.get("action", ""))
    if handler is None:
        messages.error(request, "That action isn't available on this page.")
        return redirect(back)
    try:
        done = handler()
    except HelpdeskError as exc:
        messages.error(request, exc.message)
        return redirect(back)
    if done.message:
        messages.success(request, done.message)
    return redirect(done.then or back)


def _gated(
    tenant: Tenant,
    user: User,
    kind: ChangeKind,
    document: Document,
    number: int | None = None,
    effective_date: datetime.date | None = None,
) -> Done | None:
    """With golden questions, the change waits on its own page while they are checked (knowledge/gate.py)."""
    change = change_gate_request(
        tenant=tenant,
        kind=kind,
        document=document,
        version_number=number,
        actor=user,
        effective_date=effective_date,
    )
    if change is None:
        return None
    return Done(
        "Checking the change against the golden answers before customers see it.",
        then=change_page_url(tenant=tenant, change=change),
    )


def _publish_message(version: DocumentVersion) -> str:
    effective = f", effective {version.effective_date:%Y-%m-%d}" if version.effective_date else ""
    return (
        f"Version {version.number} of {version.document.title} is published{effective}: "
        "the assistant answers from it now."
    )


# --- home: the documents of the knowledge base ------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def knowledge_home(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, user = _editor(request, slug)
    here = reverse("kb-home", kwargs={"slug": tenant.slug})

    if request.method == "POST":

        def upload() -> Done:
            files = request.FILES.getlist("files")
            if not files:
                raise BadRequest("Choose at least one file to upload.")
            if len(files) > MAX_FILES_PER_UPLOAD:
                raise BadRequest(f"Upload at most {MAX_FILES_PER_UPLOAD} files at a time.")
            # One bad file must not cost the editor the others: each is accepted or refused on its own.
            for file in files:
                try:
                    version = services.document_upload(tenant=tenant, actor=user, upload=_read(file))
                except HelpdeskError as exc:
                    messages.error(request, exc.message)
                else:
                    title = version.document.title
                    messages.success(request, f"{version.filename} was uploaded as “{title}” and is queued.")
            return Done()

        return _dispatch(request, {"upload": upload}, here)

    documents = selectors.documents_with_versions(tenant=tenant)
    rows = []
    for document in documents:
        newest: list[DocumentVersion] = getattr(document, "newest_first", [])
        latest = newest[0] if newest else None
        updated = max(document.updated_at, latest.updated_at) if latest else document.updated_at
        rows.append(DocumentRow(document=document, latest=latest, updated_at=updated))
    return render(
        request,
        "knowledge/home.html",
        {
            "tenant": tenant,
            "rows": rows,
            "accepted_types": ACCEPTED_TYPES,
            "accept": ACCEPT_ATTRIBUTE,
            "max_mb": services.LIMITS.max_bytes // 2**20,
            "max_files": MAX_FILES_PER_UPLOAD,
            "final_statuses": FINAL_STATUSES,
        },
    )


# --- one document: its versions and publication history ----------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def document_page(request: HttpRequest, slug: str, document_id: str) -> HttpResponse:
    tenant, user = _editor(request, slug)
    document = selectors.access_document(tenant=tenant, document_id=document_id)
    here = reverse("kb-document", kwargs={"slug": tenant.slug, "document_id": document.id})

    if request.method == "POST":

        def new_version() -> Done:
            file = request.FILES.get("file")
            if file is None:
                raise BadRequest("Choose the file of the new version.")
            version = services.document_upload(
                tenant=tenant,
                actor=user,
                upload=_read(file),
                document=document,
                effective_date=_date(request.POST.get("effective_date")),
            )
            return Done(f"{version.filename} was uploaded as version {version.number} and is queued.")

        def publish() -> Done:
            version = _version_of(tenant, document, request.POST.get("version_id"))
            effective = _date(request.POST.get("effective_date"))
            held = _gated(tenant, user, "publish", document, version.number, effective)
            if held is not None:
                return held
            version = services.version_publish(version=version, actor=user, effective_date=effective)
            return Done(_publish_message(version))

        def rollback() -> Done:
            try:
                number = int(request.POST.get("number", ""))
            except ValueError:
                raise BadRequest("Choose the version to roll back to.") from None
            held = _gated(tenant, user, "rollback", document, number)
            if held is not None:
                return held
            version = services.version_rollback(document=document, number=number, actor=user)
            return Done(f"Rolled back: version {version.number} of {document.title} is published again.")

        def unpublish() -> Done:
            held = _gated(tenant, user, "unpublish", document)
            if held is not None:
                return held
            services.document_unpublish(document=document, actor=user)
            return Done(f"{document.title} is no longer published: the assistant stops using it.")

        def redact() -> Done:
            version = _version_of(tenant, document, request.POST.get("version_id"))
            services.version_redact(version=version, actor=user)
            return Done(f"Personal data in version {version.number} was replaced with placeholders.")

        def retry() -> Done:
            version = _version_of(tenant, document, request.POST.get("version_id"))
            services.version_retry(version=version, actor=user)
            return Done(f"Version {version.number} is queued again.")

        def delete() -> Done:
            if request.POST.get("confirm") != "yes":
                raise BadRequest("Confirm that you want to delete the document and every version of it.")
            held = _gated(tenant, user, "delete", document)
            if held is not None:
                return held
            title = document.title
            services.document_delete(document=document, actor=user)
            return Done(
                f"{title} was deleted with all its versions and passages.",
                then=reverse("kb-home", kwargs={"slug": tenant.slug}),
            )

        return _dispatch(
            request,
            {
                "new_version": new_version,
                "publish": publish,
                "rollback": rollback,
                "unpublish": unpublish,
                "redact": redact,
                "retry": retry,
                "delete": delete,
            },
            here,
        )

    return render(
        request,
        "knowledge/document.html",
        {
            "tenant": tenant,
            "document": document,
            "versions": selectors.document_versions(document=document),
            "history": selectors.document_history(document=document),
            "confirm_delete": request.GET.get("delete") == "1",
            "pending_changes": pending_changes(tenant=tenant, document=document),
            "accepted_types": ACCEPTED_TYPES,
            "accept": ACCEPT_ATTRIBUTE,
            "max_mb": services.LIMITS.max_bytes // 2**20,
            "final_statuses": FINAL_STATUSES,
        },
    )


# --- one version: ingestion status, PII findings, extracted text and passages -------------------------


@login_required
@require_http_methods(["GET", "POST"])
def version_page(request: HttpRequest, slug: str, version_id: str) -> HttpResponse:
    tenant, user = _editor(request, slug)
    version = selectors.access_version(tenant=tenant, version_id=version_id)
    here = reverse("kb-version", kwargs={"slug": tenant.slug, "version_id": version.id})

    if request.method == "POST":

        def publish() -> Done:
            effective = _date(request.POST.get("effective_date"))
            held = _gated(tenant, user, "publish", version.document, version.number, effective)
            if held is not None:
                return held
            published = services.version_publish(version=version, actor=user, effective_date=effective)
            return Done(_publish_message(published))

        def redact() -> Done:
            services.version_redact(version=version, actor=user)
            return Done(f"Personal data in version {version.number} was replaced with placeholders.")

        def retry() -> Done:
            services.version_retry(version=version, actor=user)
            return Done(f"Version {version.number} is queued again.")

        return _dispatch(request, {"publish": publish, "redact": redact, "retry": retry}, here)

    document = version.document
    ready = version.status == VersionStatus.READY
    findings = [
        (str(f["entity_type"]).replace("_", " ").capitalize(), f["count"]) for f in version.pii_findings
    ]
    return render(
        request,
        "knowledge/version.html",
        {
            "tenant": tenant,
            "document": document,
            "version": version,
            "is_published": document.published_version_id == version.id,
            "pii_findings": findings,
            "chunks": selectors.version_chunks(version=version) if ready else [],
            "final_statuses": FINAL_STATUSES,
        },
    )


# --- search, exactly as the assistant retrieves ------------------------------------------------------


@login_required
@require_GET
def search_page(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, _ = _editor(request, slug)
    query = request.GET.get("q", "").strip()
    result = None
    if query:
        try:
            if len(query) > MAX_QUERY_CHARS:
                raise BadRequest(f"Shorten the question to at most {MAX_QUERY_CHARS} characters.")
            # The assistant searches with the redacted question; so does this page, to show the same.
            result = selectors.knowledge_search(tenant=tenant, query=pii_redact(query))
        except HelpdeskError as exc:
            messages.error(request, exc.message)
    return render(request, "knowledge/search.html", {"tenant": tenant, "query": query, "result": result})


# --- knowledge gaps: questions the assistant could not answer from published documents -----------------


@login_required
@require_http_methods(["GET", "POST"])
def gaps_page(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, user = _editor(request, slug)
    here = reverse("kb-gaps", kwargs={"slug": tenant.slug})
    if request.method == "POST":

        def resolve() -> Done:
            gap = selectors.access_gap(tenant=tenant, gap_id=request.POST.get("gap", ""))
            services.knowledge_gap_resolve(tenant=tenant, gap=gap, actor=user)
            return Done("Marked as resolved.")

        return _dispatch(request, {"resolve": resolve}, here)
    show_resolved = request.GET.get("resolved") == "1"
    gaps = list(selectors.knowledge_gaps(tenant=tenant, include_resolved=show_resolved)[:200])
    return render(
        request,
        "knowledge/gaps.html",
        {"tenant": tenant, "gaps": gaps, "show_resolved": show_resolved},
    )
