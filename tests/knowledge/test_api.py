"""The documents REST API: editors only, tenant-scoped, every action through the services."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.knowledge import ingestion
from apps.knowledge.models import Chunk, Document, DocumentVersion

pytestmark = pytest.mark.django_db

POLICY = b"# Plans\n\n## Data allowance\n\nUnused data rolls over for one month, up to 20 GB.\n"


def base(staff) -> str:
    return f"/api/v1/tenants/{staff.slug}/kb"


def post_files(client, staff, *files):
    return client.post(f"{base(staff)}/documents/", {"files": list(files)}, format="multipart")


def md(name: str = "plans.md", data: bytes = POLICY) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def test_editor_uploads_several_files_at_once_and_bad_ones_are_listed(tenant_a, api_client_as):
    client = api_client_as(tenant_a.editor)
    response = post_files(
        client, tenant_a, md(), md("faq.txt", b"Opening hours: 8 to 20."), md("x.pdf", b"\x7fELF")
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert [v["filename"] for v in body["created"]] == ["plans.md", "faq.txt"]
    assert [v["status"] for v in body["created"]] == ["queued", "queued"]
    assert [(r["filename"], r["code"]) for r in body["rejected"]] == [("x.pdf", "bad_request")]
    assert body["rejected"][0]["message"].startswith("x.pdf: ")
    assert Document.objects.for_tenant(tenant_a.tenant).count() == 2


def test_an_upload_with_no_acceptable_file_is_400_and_stores_nothing(tenant_a, api_client_as):
    response = post_files(api_client_as(tenant_a.editor), tenant_a, md("x.docx", b"\x89PNG\r\n\x1a\n0000"))
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert Document.objects.for_tenant(tenant_a.tenant).count() == 0


def test_full_lifecycle_over_the_api(tenant_a, api_client_as):
    client = api_client_as(tenant_a.editor)
    created = post_files(client, tenant_a, md()).json()["created"][0]
    ingestion.version_ingest(version_id=created["id"])
    version = client.get(f"{base(tenant_a)}/versions/{created['id']}/").json()
    assert (version["status"], version["progress"], version["chunk_count"]) == ("ready", 100, 1)
    preview = client.get(f"{base(tenant_a)}/versions/{created['id']}/chunks/").json()
    assert preview["chunks"][0]["section_path"] == ["Plans", "Data allowance"]
    assert "rolls over" in preview["extracted_text"]

    published = client.post(
        f"{base(tenant_a)}/versions/{created['id']}/publish/", {"effective_date": "2026-12-01"}
    )
    assert published.status_code == 200
    assert published.json()["effective_date"] == "2026-12-01"
    assert published.json()["published_by"] == tenant_a.editor.username

    found = client.get(f"{base(tenant_a)}/search/", {"q": "does unused data roll over?"}).json()
    assert found["passages"][0]["document_title"] == "plans"
    assert found["passages"][0]["section_path"] == ["Plans", "Data allowance"]
    assert found["passages"][0]["effective_date"] == "2026-12-01"

    document = client.get(f"{base(tenant_a)}/documents/{created['document_id']}/").json()
    assert document["published_version"] == 1
    assert [e["action"] for e in document["history"]] == ["publish", "upload"]

    assert client.delete(f"{base(tenant_a)}/documents/{created['document_id']}/").status_code == 204
    assert Chunk.objects.for_tenant(tenant_a.tenant).count() == 0


def test_new_version_and_rollback(tenant_a, api_client_as):
    client = api_client_as(tenant_a.editor)
    first = post_files(client, tenant_a, md()).json()["created"][0]
    ingestion.version_ingest(version_id=first["id"])
    client.post(f"{base(tenant_a)}/versions/{first['id']}/publish/")
    second = client.post(
        f"{base(tenant_a)}/documents/{first['document_id']}/versions/",
        {"file": md(data=POLICY.replace(b"20 GB", b"30 GB"))},
        format="multipart",
    )
    assert second.status_code == 201
    assert second.json()["number"] == 2
    ingestion.version_ingest(version_id=second.json()["id"])
    client.post(f"{base(tenant_a)}/versions/{second.json()['id']}/publish/")
    rolled = client.post(f"{base(tenant_a)}/documents/{first['document_id']}/rollback/", {"number": 1})
    assert rolled.status_code == 200
    assert rolled.json()["number"] == 1
    missing = client.post(f"{base(tenant_a)}/documents/{first['document_id']}/rollback/", {"number": 9})
    assert (missing.status_code, missing.json()["code"]) == (400, "bad_request")


def test_publishing_a_queued_version_is_a_conflict(tenant_a, api_client_as):
    client = api_client_as(tenant_a.editor)
    created = post_files(client, tenant_a, md()).json()["created"][0]
    response = client.post(f"{base(tenant_a)}/versions/{created['id']}/publish/")
    assert (response.status_code, response.json()["code"]) == (409, "conflict")


@pytest.mark.parametrize("who", ["agent", "anonymous", "other_editor"])
def test_only_editors_of_the_tenant_reach_its_documents(tenant_a, tenant_b, api_client_as, who):
    owner = api_client_as(tenant_a.editor)
    created = post_files(owner, tenant_a, md()).json()["created"][0]
    client = {
        "agent": api_client_as(tenant_a.agent),
        "anonymous": api_client_as(None),
        "other_editor": api_client_as(tenant_b.editor),
    }[who]
    expected = {
        "agent": (403, "forbidden"),
        "anonymous": (401, "unauthorized"),
        "other_editor": (404, "not_found"),
    }[who]
    urls = [
        ("get", f"{base(tenant_a)}/documents/"),
        ("get", f"{base(tenant_a)}/documents/{created['document_id']}/"),
        ("get", f"{base(tenant_a)}/versions/{created['id']}/"),
        ("get", f"{base(tenant_a)}/versions/{created['id']}/chunks/"),
        ("post", f"{base(tenant_a)}/versions/{created['id']}/publish/"),
        ("delete", f"{base(tenant_a)}/documents/{created['document_id']}/"),
        ("get", f"{base(tenant_a)}/search/?q=data"),
    ]
    for method, url in urls:
        response = getattr(client, method)(url)
        assert (response.status_code, response.json()["code"]) == expected, url
    assert Document.objects.filter(pk=created["document_id"]).exists()
    assert DocumentVersion.objects.get(pk=created["id"]).published_at is None


def test_another_tenants_document_id_under_my_slug_is_not_found(tenant_a, tenant_b, api_client_as):
    created = post_files(api_client_as(tenant_b.editor), tenant_b, md()).json()["created"][0]
    mine = api_client_as(tenant_a.editor)
    assert mine.get(f"{base(tenant_a)}/documents/{created['document_id']}/").status_code == 404
    assert mine.delete(f"{base(tenant_a)}/documents/{created['document_id']}/").status_code == 404
    assert Document.objects.filter(pk=created["document_id"]).exists()


def test_search_validates_its_input(tenant_a, api_client_as):
    client = api_client_as(tenant_a.editor)
    assert client.get(f"{base(tenant_a)}/search/").json()["code"] == "bad_request"
    assert client.get(f"{base(tenant_a)}/search/", {"q": "x", "k": "many"}).json()["code"] == "bad_request"


def test_schema_lists_the_document_api(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path in ["/api/v1/tenants/{slug}/kb/documents/", "/api/v1/tenants/{slug}/kb/search/"]:
        assert path in schema["paths"]
