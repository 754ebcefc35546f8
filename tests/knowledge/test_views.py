"""The knowledge editor pages through the Django test client: who may see them, and that every form action
reaches its service and says what happened.

Versions that must be ready are ingested for real (parse, PII scan, embed) by calling the ingestion
pipeline in the test's thread; nothing here needs a Celery worker.
"""

from __future__ import annotations

import datetime

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from apps.accounts.models import Tenant, User
from apps.knowledge import ingestion, services
from apps.knowledge.models import Chunk, Document, DocumentEvent, DocumentVersion, VersionStatus

pytestmark = pytest.mark.django_db

NOT_FOUND_TEXT = "That doesn&#x27;t exist, or you can&#x27;t see it."
SECTION_SEPARATOR = "\u203a"  # how the pages join a section path
FORBIDDEN_TEXT = "You don&#x27;t have permission to do that."

BILLING_MD = b"""# Billing

How Acme Mobile bills its customers every month.

## Late payments

When an invoice is more than 30 days overdue, a late payment fee of 15 EUR is added to the next invoice.
To agree a payment plan instead, write to dana.fischer@example.com.

## Refunds

Refunds go back to the original payment method within 14 days.
"""
BILLING_MD_V2 = BILLING_MD.replace(b"15 EUR", b"20 EUR")
SHIPPING_TXT = (
    b"Shipping policy\n\nOrders ship within two working days. Delivery in Germany takes 1 to 3 days.\n"
)
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
)


def home_url(slug: str = "tenant-a") -> str:
    return f"/staff/{slug}/knowledge/"


def document_url(document: Document, slug: str = "tenant-a") -> str:
    return f"/staff/{slug}/knowledge/documents/{document.id}/"


def version_url(version: DocumentVersion, slug: str = "tenant-a") -> str:
    return f"/staff/{slug}/knowledge/versions/{version.id}/"


def search_url(slug: str = "tenant-a") -> str:
    return f"/staff/{slug}/knowledge/search/"


def _messages(response) -> list[tuple[str, str]]:
    found = [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]
    if response.status_code == 302:
        # Messages wait in the session until a page shows them; follow the redirect as a browser would, so
        # the next action's messages are its own.
        response.client.get(response["Location"])
    return found


def _file(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


def _upload(tenant: Tenant, user: User, name: str, data: bytes, document: Document | None = None):
    return services.document_upload(
        tenant=tenant, actor=user, upload=services.Upload(filename=name, data=data), document=document
    )


def _ingest(version: DocumentVersion) -> DocumentVersion:
    ingestion.version_ingest(version_id=str(version.id))
    version.refresh_from_db()
    return version


def _ready(tenant: Tenant, user: User, name: str, data: bytes, document: Document | None = None):
    version = _ingest(_upload(tenant, user, name, data, document))
    assert version.status == VersionStatus.READY, version.error_message
    return version


def _kb_state(tenant: Tenant) -> list[tuple]:
    """Everything an action could change in a tenant's knowledge base, for before/after comparisons."""
    return [
        (
            d.id,
            d.title,
            d.published_version_id,
            d.updated_at,
            [
                (
                    v.number,
                    v.status,
                    v.progress,
                    v.pii_redacted,
                    v.effective_date,
                    v.published_at,
                    v.updated_at,
                )
                for v in d.versions.order_by("number")
            ],
            sorted(Chunk.objects.filter(document=d, live=True).values_list("id", flat=True)),
            sorted(Chunk.objects.filter(document=d).values_list("text", flat=True)),
            DocumentEvent.objects.filter(document=d).count(),
        )
        for d in Document.objects.for_tenant(tenant).order_by("title")
    ]


@pytest.fixture
def billing(tenant_a) -> DocumentVersion:
    """Tenant A's "billing" document with a ready version 1, not published."""
    return _ready(tenant_a.tenant, tenant_a.editor, "billing.md", BILLING_MD)


# --- who may see the pages -----------------------------------------------------------------------------


def _page_urls(version: DocumentVersion, slug: str = "tenant-a") -> list[str]:
    return [
        home_url(slug),
        document_url(version.document, slug),
        version_url(version, slug),
        search_url(slug),
    ]


def test_anonymous_is_sent_to_sign_in_and_changes_nothing(tenant_a) -> None:
    version = _upload(tenant_a.tenant, tenant_a.editor, "billing.md", BILLING_MD)
    before = _kb_state(tenant_a.tenant)
    for url in _page_urls(version):
        response = Client().get(url)
        assert (response.status_code, response["Location"]) == (302, f"/accounts/login/?next={url}")

    response = Client().post(document_url(version.document), {"action": "delete", "confirm": "yes"})

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={document_url(version.document)}"
    assert _kb_state(tenant_a.tenant) == before


def test_agent_is_forbidden_every_page_and_action(tenant_a, client_agent_a) -> None:
    version = _upload(tenant_a.tenant, tenant_a.editor, "billing.md", BILLING_MD)
    before = _kb_state(tenant_a.tenant)
    for url in _page_urls(version):
        response = client_agent_a.get(url)
        assert response.status_code == 403, url
        assert FORBIDDEN_TEXT in response.content.decode()
        assert "billing" not in response.content.decode()

    posts = [
        (home_url(), {"action": "upload", "files": [_file("x.md", BILLING_MD)]}),
        (document_url(version.document), {"action": "delete", "confirm": "yes"}),
        (document_url(version.document), {"action": "publish", "version_id": str(version.id)}),
        (version_url(version), {"action": "retry"}),
    ]
    for url, data in posts:
        assert client_agent_a.post(url, data).status_code == 403
    assert _kb_state(tenant_a.tenant) == before


def test_editor_of_another_tenant_gets_not_found_and_changes_nothing(
    tenant_a, tenant_b, client_editor_b
) -> None:
    version = _ready(tenant_a.tenant, tenant_a.editor, "billing.md", BILLING_MD)
    before = _kb_state(tenant_a.tenant)

    for url in _page_urls(version):
        response = client_editor_b.get(url)
        assert response.status_code == 404, url
        body = response.content.decode()
        assert NOT_FOUND_TEXT in body
        assert "billing" not in body
    # Their own tenant's URLs with tenant A's ids: still nothing.
    for url in _page_urls(version, slug="tenant-b")[1:3]:
        assert client_editor_b.get(url).status_code == 404

    posts = [
        (home_url(), {"action": "upload", "files": [_file("x.md", BILLING_MD)]}),
        (document_url(version.document), {"action": "publish", "version_id": str(version.id)}),
        (document_url(version.document), {"action": "delete", "confirm": "yes"}),
        (document_url(version.document, "tenant-b"), {"action": "delete", "confirm": "yes"}),
        (version_url(version), {"action": "publish"}),
        (version_url(version, "tenant-b"), {"action": "publish"}),
    ]
    for url, data in posts:
        assert client_editor_b.post(url, data).status_code == 404, url
    assert _kb_state(tenant_a.tenant) == before
    assert _kb_state(tenant_b.tenant) == []


def test_admin_may_use_the_pages(tenant_a, client_admin_a) -> None:
    version = _upload(tenant_a.tenant, tenant_a.editor, "billing.md", BILLING_MD)
    for url in _page_urls(version):
        assert client_admin_a.get(url).status_code == 200, url


def test_search_page_refuses_post(tenant_a, client_editor_a) -> None:
    assert client_editor_a.post(search_url(), {"q": "late fee"}).status_code == 405


# --- home: upload --------------------------------------------------------------------------------------


def test_empty_home_explains_what_to_upload(tenant_a, client_editor_a) -> None:
    response = client_editor_a.get(home_url())

    assert response.status_code == 200
    assert response.context["rows"] == []
    body = response.content.decode()
    assert "No documents yet" in body
    assert "returns and refunds, shipping and delivery" in body
    assert 'type="file" id="kb-files" name="files" multiple required' in body
    assert "Accepted: PDF, Word (.docx), HTML, Markdown (.md) and plain text (.txt)." in body
    assert f'href="{search_url()}"' in body


def test_upload_of_several_files_creates_a_queued_document_each(tenant_a, client_editor_a) -> None:
    response = client_editor_a.post(
        home_url(),
        {"action": "upload", "files": [_file("billing.md", BILLING_MD), _file("shipping.txt", SHIPPING_TXT)]},
    )

    assert (response.status_code, response["Location"]) == (302, home_url())
    assert _messages(response) == [
        ("success", "billing.md was uploaded as “billing” and is queued."),
        ("success", "shipping.txt was uploaded as “shipping” and is queued."),
    ]
    versions = DocumentVersion.objects.for_tenant(tenant_a.tenant).order_by("filename")
    assert [(v.document.title, v.number, v.status, v.kind, v.created_by) for v in versions] == [
        ("billing", 1, "queued", "markdown", tenant_a.editor),
        ("shipping", 1, "queued", "text", tenant_a.editor),
    ]

    page = client_editor_a.get(home_url())
    rows = page.context["rows"]
    assert [(r.document.title, r.latest.number, r.latest.status) for r in rows] == [
        ("billing", 1, "queued"),
        ("shipping", 1, "queued"),
    ]
    body = page.content.decode()
    assert f'data-version-id="{versions[0].id}" data-status="queued"' in body
    assert 'aria-label="Processing progress of billing version 1"' in body
    assert "Not published" in body


def test_renamed_binary_is_rejected_with_a_clear_message_and_the_rest_accepted(
    tenant_a, client_editor_a
) -> None:
    response = client_editor_a.post(
        home_url(), {"action": "upload", "files": [_file("policy.pdf", PNG), _file("billing.md", BILLING_MD)]}
    )

    assert response.status_code == 302
    assert _messages(response) == [
        (
            "error",
            "policy.pdf: This file is a PNG image, not a document we can read. "
            "Upload a PDF, Word (DOCX), HTML, Markdown or plain-text document instead.",
        ),
        ("success", "billing.md was uploaded as “billing” and is queued."),
    ]
    assert list(Document.objects.for_tenant(tenant_a.tenant).values_list("title", flat=True)) == ["billing"]


def test_oversized_upload_is_refused_before_anything_is_stored(tenant_a, client_editor_a) -> None:
    data = b"a" * (services.LIMITS.max_bytes + 1)

    response = client_editor_a.post(home_url(), {"action": "upload", "files": [_file("huge.txt", data)]})

    assert _messages(response) == [
        ("error", "huge.txt is 20.0 MB; the limit is 20 MB. Split it or compress its images.")
    ]
    assert _kb_state(tenant_a.tenant) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "upload"}, "Choose at least one file to upload."),
        (
            {"action": "upload", "files": [_file(f"f{i}.txt", b"text") for i in range(21)]},
            "Upload at most 20 files at a time.",
        ),
        (
            {"action": "upload", "files": [_file("empty.txt", b"  \n")]},
            "empty.txt: The file is empty. Check that you picked the right file and upload it again.",
        ),
        ({"action": "explode"}, "That action isn't available on this page."),
    ],
)
def test_bad_uploads_and_actions_say_why(data, message, tenant_a, client_editor_a) -> None:
    response = client_editor_a.post(home_url(), data)

    assert (response.status_code, response["Location"]) == (302, home_url())
    assert _messages(response) == [("error", message)]
    assert _kb_state(tenant_a.tenant) == []


def test_user_content_is_escaped(tenant_a, client_editor_a) -> None:
    _upload(tenant_a.tenant, tenant_a.editor, "<img src=x onerror=alert(1)>.md", BILLING_MD)

    body = client_editor_a.get(home_url()).content.decode()

    assert "<img src=x" not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body


# --- document: versions, publishing, history, delete ---------------------------------------------------


def test_document_page_lists_versions_history_and_actions(billing, tenant_a, client_editor_a) -> None:
    response = client_editor_a.get(document_url(billing.document))

    assert response.status_code == 200
    assert [v.number for v in response.context["versions"]] == [1]
    assert [(e.action, e.version.number) for e in response.context["history"]] == [("upload", 1)]
    body = response.content.decode()
    assert "Not published" in body
    assert "Publish version 1" in body
    assert "Redact PII in version 1" in body  # the e-mail address in "Late payments"
    assert "Delete document…" in body
    assert "Delete permanently" not in body


def test_document_page_prepares_actions_for_a_version_still_processing(tenant_a, client_editor_a) -> None:
    version = _upload(tenant_a.tenant, tenant_a.editor, "billing.md", BILLING_MD)

    body = client_editor_a.get(document_url(version.document)).content.decode()

    # kb-live.js reveals these when the version turns ready or failed, so the editor need not reload.
    assert f'<tr data-version-id="{version.id}" data-status="queued"' in body
    assert '<div data-kb-when="ready" hidden>' in body
    assert '<div data-kb-when="failed" hidden>' in body
    assert "Publish version 1" in body
    assert "Retry version 1" in body


def test_publish_switches_the_published_version(billing, tenant_a, client_editor_a) -> None:
    url = document_url(billing.document)

    response = client_editor_a.post(
        url, {"action": "publish", "version_id": str(billing.id), "effective_date": "2025-03-01"}
    )

    assert (response.status_code, response["Location"]) == (302, url)
    assert _messages(response) == [
        (
            "success",
            "Version 1 of billing is published, effective 2025-03-01: the assistant answers from it now.",
        )
    ]
    document = Document.objects.get(pk=billing.document_id)
    assert document.published_version_id == billing.id
    billing.refresh_from_db()
    assert (billing.published_by, billing.effective_date) == (tenant_a.editor, datetime.date(2025, 3, 1))
    assert Chunk.objects.filter(version=billing, live=False).count() == 0
    body = client_editor_a.get(url).content.decode()
    assert "The assistant answers from version 1, effective 1 Mar 2025." in body


def test_publish_from_the_version_page(billing, tenant_a, client_editor_a) -> None:
    response = client_editor_a.post(version_url(billing), {"action": "publish"})

    assert (response.status_code, response["Location"]) == (302, version_url(billing))
    assert Document.objects.get(pk=billing.document_id).published_version_id == billing.id


@pytest.mark.parametrize(
    ("effective_date", "message"),
    [("2025-13-01", "The effective date must be a date such as 2025-03-01.")],
)
def test_publish_with_a_bad_date_changes_nothing(
    effective_date, message, billing, tenant_a, client_editor_a
) -> None:
    before = _kb_state(tenant_a.tenant)

    response = client_editor_a.post(
        document_url(billing.document),
        {"action": "publish", "version_id": str(billing.id), "effective_date": effective_date},
    )

    assert _messages(response) == [("error", message)]
    assert _kb_state(tenant_a.tenant) == before


def test_publishing_a_version_still_processing_is_refused(tenant_a, client_editor_a) -> None:
    version = _upload(tenant_a.tenant, tenant_a.editor, "billing.md", BILLING_MD)
    before = _kb_state(tenant_a.tenant)

    response = client_editor_a.post(version_url(version), {"action": "publish"})

    assert _messages(response) == [("error", "Version 1 is queued: only a ready version can be published.")]
    assert _kb_state(tenant_a.tenant) == before


def test_a_version_of_another_document_cannot_be_published_through_this_one(
    billing, tenant_a, client_editor_a
) -> None:
    other = _upload(tenant_a.tenant, tenant_a.editor, "shipping.txt", SHIPPING_TXT)
    before = _kb_state(tenant_a.tenant)

    response = client_editor_a.post(
        document_url(other.document), {"action": "publish", "version_id": str(billing.id)}
    )

    assert _messages(response) == [("error", "That doesn't exist, or you can't see it.")]
    assert _kb_state(tenant_a.tenant) == before


def test_new_version_then_rollback(billing, tenant_a, client_editor_a) -> None:
    url = document_url(billing.document)
    published = client_editor_a.post(url, {"action": "publish", "version_id": str(billing.id)})
    assert _messages(published)[0][0] == "success"

    response = client_editor_a.post(
        url, {"action": "new_version", "file": _file("billing-2025.md", BILLING_MD_V2), "effective_date": ""}
    )

    assert _messages(response) == [("success", "billing-2025.md was uploaded as version 2 and is queued.")]
    v2 = _ingest(DocumentVersion.objects.get(document=billing.document, number=2))
    assert Document.objects.get(pk=billing.document_id).published_version_id == billing.id  # still v1

    published = client_editor_a.post(url, {"action": "publish", "version_id": str(v2.id)})
    assert _messages(published) == [
        (
            "success",
            f"Version 2 of billing is published, effective {v2.created_at:%Y-%m-%d}: "
            "the assistant answers from it now.",
        )
    ]
    assert Document.objects.get(pk=billing.document_id).published_version_id == v2.id
    assert "Roll back to version 1" in client_editor_a.get(url).content.decode()

    response = client_editor_a.post(url, {"action": "rollback", "number": "1"})

    assert _messages(response) == [("success", "Rolled back: version 1 of billing is published again.")]
    assert Document.objects.get(pk=billing.document_id).published_version_id == billing.id
    assert set(
        Chunk.objects.filter(document=billing.document, live=True).values_list("version_id", flat=True)
    ) == {billing.id}
    assert [
        e.action for e in DocumentEvent.objects.filter(document=billing.document).order_by("created_at")
    ] == ["upload", "publish", "upload", "publish", "rollback"]


@pytest.mark.parametrize(
    ("number", "message"), [("", "Choose the version to roll back to."), ("7", "billing has no version 7.")]
)
def test_bad_rollback_says_why(number, message, billing, tenant_a, client_editor_a) -> None:
    before = _kb_state(tenant_a.tenant)

    response = client_editor_a.post(document_url(billing.document), {"action": "rollback", "number": number})

    assert _messages(response) == [("error", message)]
    assert _kb_state(tenant_a.tenant) == before


def test_unpublish(billing, tenant_a, client_editor_a) -> None:
    url = document_url(billing.document)
    published = client_editor_a.post(url, {"action": "publish", "version_id": str(billing.id)})
    assert Document.objects.get(pk=billing.document_id).published_version_id == billing.id
    assert _messages(published)[0][0] == "success"

    response = client_editor_a.post(url, {"action": "unpublish"})

    assert _messages(response) == [
        ("success", "billing is no longer published: the assistant stops using it.")
    ]
    assert Document.objects.get(pk=billing.document_id).published_version_id is None
    assert not Chunk.objects.filter(document=billing.document, live=True).exists()


def test_redact_replaces_pii_in_the_passages(billing, tenant_a, client_editor_a) -> None:
    assert {"entity_type": "EMAIL_ADDRESS", "count": 1} in billing.pii_findings

    response = client_editor_a.post(
        document_url(billing.document), {"action": "redact", "version_id": str(billing.id)}
    )

    assert _messages(response) == [("success", "Personal data in version 1 was replaced with placeholders.")]
    billing.refresh_from_db()
    assert billing.pii_redacted is True
    texts = " ".join(Chunk.objects.filter(version=billing).values_list("text", flat=True))
    assert "dana.fischer@example.com" not in texts
    assert "<EMAIL_ADDRESS>" in texts
    assert "Redact before publishing" not in client_editor_a.get(version_url(billing)).content.decode()


def test_retry_queues_a_failed_version_again(tenant_a, client_editor_a) -> None:
    failed = _ingest(_upload(tenant_a.tenant, tenant_a.editor, "rules.md", b"----\n***\n"))
    assert failed.status == VersionStatus.FAILED
    page = client_editor_a.get(version_url(failed)).content.decode()
    assert failed.error_message in page.replace("&#x27;", "'")
    assert "Retry version 1" in page

    response = client_editor_a.post(version_url(failed), {"action": "retry"})

    assert _messages(response) == [("success", "Version 1 is queued again.")]
    failed.refresh_from_db()
    assert (failed.status, failed.error_code, failed.error_message) == ("queued", "", "")

    # Queued again is allowed too (its task may have been lost while the broker was down).
    response = client_editor_a.post(version_url(failed), {"action": "retry"})
    assert _messages(response) == [("success", "Version 1 is queued again.")]

    ready = _ingest(_upload(tenant_a.tenant, tenant_a.editor, "ok.md", b"# Rules\n\nBe kind to each other."))
    assert ready.status == VersionStatus.READY
    response = client_editor_a.post(version_url(ready), {"action": "retry"})
    assert _messages(response) == [("error", "Only a failed or queued version can be retried.")]


def test_delete_needs_confirmation(billing, tenant_a, client_editor_a) -> None:
    url = document_url(billing.document)
    before = _kb_state(tenant_a.tenant)

    confirm_page = client_editor_a.get(url + "?delete=1").content.decode()
    assert "Delete “billing” and all 1 version?" in confirm_page
    assert "Delete permanently" in confirm_page
    response = client_editor_a.post(url, {"action": "delete"})

    assert _messages(response) == [
        ("error", "Confirm that you want to delete the document and every version of it.")
    ]
    assert _kb_state(tenant_a.tenant) == before

    response = client_editor_a.post(url, {"action": "delete", "confirm": "yes"})

    assert (response.status_code, response["Location"]) == (302, home_url())
    assert _messages(response) == [("success", "billing was deleted with all its versions and passages.")]
    assert not Document.objects.filter(pk=billing.document_id).exists()
    assert not Chunk.objects.filter(document_id=billing.document_id).exists()
    assert client_editor_a.get(url).status_code == 404


# --- version: status, PII findings, text, passages -----------------------------------------------------


def test_version_page_shows_findings_text_and_passages(billing, tenant_a, client_editor_a) -> None:
    response = client_editor_a.get(version_url(billing))

    assert response.status_code == 200
    assert response.context["pii_findings"] == [("Email address", 1)]
    chunks = list(response.context["chunks"])
    assert [c.section_path for c in chunks][:1] == [["Billing"]]
    assert ["Billing", "Late payments"] in [c.section_path for c in chunks]
    body = response.content.decode()
    assert "Redact before publishing" in body
    assert f"Billing {SECTION_SEPARATOR} Late payments" in body
    assert 'role="region" aria-label="Extracted text of version 1"' in body
    assert "a late payment fee of 15 EUR" in body
    assert f"about {chunks[0].token_estimate} tokens" in body


def test_version_page_while_queued_has_live_hooks_and_no_passages(tenant_a, client_editor_a) -> None:
    version = _upload(tenant_a.tenant, tenant_a.editor, "billing.md", BILLING_MD)

    response = client_editor_a.get(version_url(version))

    assert response.context["chunks"] == []
    body = response.content.decode()
    assert f'data-version-id="{version.id}" data-status="queued"' in body
    assert '<progress class="kb-progress" max="100" value="0"' in body
    assert 'data-kb-when="ready" hidden' in body
    assert "/static/js/kb-live.js" in body


# --- search ----------------------------------------------------------------------------------------------


def test_search_shows_published_passages_and_the_verdict(billing, tenant_a, client_editor_a) -> None:
    client_editor_a.post(document_url(billing.document), {"action": "publish", "version_id": str(billing.id)})

    response = client_editor_a.get(search_url(), {"q": "How much is the fee for a late payment?"})

    assert response.status_code == 200
    result = response.context["result"]
    assert result.answerable is True
    top = result.passages[0]
    assert (top.document_title, top.version_number, top.section_path) == (
        "billing",
        1,
        ["Billing", "Late payments"],
    )
    body = response.content.decode()
    assert "The assistant would answer" in body
    assert f"Billing {SECTION_SEPARATOR} Late payments" in body


def test_search_without_published_documents_abstains(billing, tenant_a, client_editor_a) -> None:
    response = client_editor_a.get(search_url(), {"q": "How much is the fee for a late payment?"})

    assert response.context["result"].passages == []
    assert "nothing published matches this question." in response.content.decode()


def test_search_rejects_an_overlong_question(tenant_a, client_editor_a) -> None:
    response = client_editor_a.get(search_url(), {"q": "x" * 2001})

    assert response.status_code == 200
    assert response.context["result"] is None
    assert _messages(response) == [("error", "Shorten the question to at most 2000 characters.")]
