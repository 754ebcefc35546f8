"""The knowledge editor pages in a real Chromium, served by Daphne, with a real Celery worker ingesting:
upload several files, watch them become ready without reloading, preview passages, publish, search; and
nothing for people who are not editors of the company."""

from __future__ import annotations

import re
from contextlib import ExitStack

import pytest
from celery.contrib.testing.worker import start_worker
from playwright.sync_api import expect

from apps.accounts import services as accounts
from apps.accounts.models import Role
from apps.knowledge.models import Document, DocumentVersion
from helpdesk.celery import app as celery_app

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SECTION_SEPARATOR = "\u203a"  # how the pages join a section path
PASSWORD = "correct horse battery staple"
# The first document pays for loading the PII analyzer and the embedding model in the worker.
INGEST_TIMEOUT_MS = 180_000

BILLING_MD = b"""# Billing

How Acme Mobile bills its customers every month.

## Late payments

When an invoice is more than 30 days overdue, a late payment fee of 15 EUR is added to the next invoice.
Customers can agree a payment plan with the billing team instead: write to dana.fischer@example.com.

## Refunds

Refunds go back to the original payment method within 14 days.
"""
SHIPPING_TXT = (
    b"Shipping policy\n\nOrders ship within two working days. Delivery in Germany takes 1 to 3 days.\n"
)
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
)

# Records every status text the page shows, so the test can tell live updates from a reload.
RECORD_STATUSES = """
() => {
  window.__kbSameDocument = true;
  window.__kbSeen = [];
  const seen = (node) => {
    const el = node.nodeType === 1 ? node : node.parentElement;
    const badge = el && el.closest('[data-kb-field="status"]');
    if (badge) window.__kbSeen.push(badge.textContent.trim());
  };
  new MutationObserver((records) => records.forEach((r) => seen(r.target)))
    .observe(document.body, { subtree: true, childList: true, characterData: true });
}
"""


def worker():
    """A Celery worker in the test process, consuming what Daphne queues: the same Redis, and the same test
    database (hence the transactional tests)."""
    return start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10)


@pytest.fixture
def celery_worker():
    with worker() as running:
        yield running


@pytest.fixture
def start_ingesting():
    """Starts the worker when the test says so (and stops it at teardown), so a test can first see its
    uploads queued and then watch them change; with the worker already running they might be done before
    the page is even shown."""
    stack = ExitStack()
    yield lambda: stack.enter_context(worker())
    stack.close()


@pytest.fixture
def companies():
    acme = accounts.tenant_create(slug="acme", name="Acme Mobile", origins=["https://acme.example"])
    globex = accounts.tenant_create(slug="globex", name="Globex Bank", origins=["https://globex.example"])
    people = {
        "erin": (acme, Role.EDITOR),
        "alex": (acme, Role.AGENT),
        "gus": (globex, Role.EDITOR),
    }
    for username, (tenant, role) in people.items():
        user = accounts.user_create(username=username, email=f"{username}@staff.example", password=PASSWORD)
        accounts.membership_grant(tenant=tenant, user=user, role=role)
    return acme, globex


def sign_in(page, url: str, username: str) -> None:
    page.goto(f"{url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your companies")


def version_row(page, title: str):
    return page.locator("tr", has=page.get_by_role("link", name=title, exact=True))


def upload(page, *files: tuple[str, str, bytes]) -> None:
    page.get_by_label("Files").set_input_files(
        [{"name": name, "mimeType": mime, "buffer": data} for name, mime, data in files]
    )
    page.get_by_role("button", name="Upload", exact=True).click()


def stored_version(tenant) -> DocumentVersion:
    """A version stored without queueing its ingestion: these tests only need it to exist, and a task
    still running when the test's database is flushed would block the flush."""
    document = Document.objects.create(tenant=tenant, title="billing")
    return DocumentVersion.objects.create(
        tenant=tenant,
        document=document,
        number=1,
        filename="billing.md",
        size_bytes=len(BILLING_MD),
        sha256="0" * 64,
        content=BILLING_MD,
    )


def test_editor_uploads_watches_previews_publishes_and_searches(
    asgi_server, page, companies, start_ingesting
):
    acme, _ = companies
    sign_in(page, asgi_server, "erin")
    page.goto(f"{asgi_server}/staff/acme/knowledge/")
    expect(page.get_by_role("heading", name="No documents yet")).to_be_visible()
    expect(
        page.get_by_text("Accepted: PDF, Word (.docx), HTML, Markdown (.md) and plain text (.txt).")
    ).to_be_visible()
    page.screenshot(path="/tmp/kb-empty.png", full_page=True)

    upload(page, ("billing.md", "text/markdown", BILLING_MD), ("shipping.txt", "text/plain", SHIPPING_TXT))
    expect(page.get_by_role("status")).to_contain_text("billing.md was uploaded as “billing” and is queued.")
    expect(page.get_by_role("status")).to_contain_text(
        "shipping.txt was uploaded as “shipping” and is queued."
    )
    # And a file with no readable text, which will fail.
    upload(page, ("rules.md", "text/markdown", b"----\n***\n"))
    for title in ("billing", "shipping", "rules"):
        expect(version_row(page, title).locator('[data-kb-field="status"]')).to_have_text("Queued")
        expect(page.get_by_label(f"Processing progress of {title} version 1")).to_be_visible()
    page.evaluate(RECORD_STATUSES)
    page.screenshot(path="/tmp/kb-queued.png", full_page=True)

    start_ingesting()
    for title in ("billing", "shipping"):
        status = version_row(page, title).locator('[data-kb-field="status"]')
        expect(status).to_have_text("Ready", timeout=INGEST_TIMEOUT_MS)
        expect(page.get_by_label(f"Processing progress of {title} version 1")).to_be_hidden()
    rules = version_row(page, "rules")
    expect(rules.locator('[data-kb-field="status"]')).to_have_text("Failed", timeout=INGEST_TIMEOUT_MS)
    expect(rules.locator('[data-kb-field="error"]')).to_have_text(
        re.compile(r"^The document has no readable text")
    )
    # Still the page loaded after the uploads: every status changed in place, through the states between.
    assert page.evaluate("window.__kbSameDocument") is True
    seen = page.evaluate("window.__kbSeen")
    assert {"Ready", "Failed"} <= set(seen)
    assert set(seen) & {"Parsing", "Embedding"}
    announcer = page.locator("[data-kb-announcer]")
    expect(announcer).to_contain_text("billing version 1: Ready, 3 passages.")
    expect(announcer).to_contain_text("shipping version 1: Ready, 1 passage.")
    expect(announcer).to_contain_text("rules version 1: Failed. The document has no readable text")
    page.screenshot(path="/tmp/kb-home-live.png", full_page=True)

    page.get_by_role("link", name="billing", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("billing")
    expect(page.get_by_text("Not published")).to_be_visible()
    page.screenshot(path="/tmp/kb-document.png", full_page=True)

    page.get_by_role("link", name="Preview version 1").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("billing: version 1")
    expect(page.get_by_role("heading", name=f"Billing {SECTION_SEPARATOR} Late payments")).to_be_visible()
    expect(page.get_by_role("region", name="Extracted text of version 1")).to_contain_text("late payment fee")
    expect(page.get_by_role("row", name="Email address 1")).to_be_visible()
    page.screenshot(path="/tmp/kb-version.png", full_page=True)

    page.get_by_role("button", name="Redact before publishing").click()
    expect(page.get_by_role("status")).to_have_text(
        "Personal data in version 1 was replaced with placeholders."
    )
    expect(page.get_by_role("region", name="Extracted text of version 1")).not_to_contain_text("dana.fischer")
    expect(page.get_by_text("<EMAIL_ADDRESS>").first).to_be_visible()

    # Keyboard only: the publish button is reachable and works without a mouse.
    page.get_by_role("button", name="Publish version 1").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Version 1 of billing is published")
    document = Document.objects.get(tenant=acme, title="billing")
    assert document.published_version == DocumentVersion.objects.get(document=document, number=1)

    page.get_by_role("link", name="Knowledge base").click()
    page.get_by_role("link", name="Search as the assistant").click()
    page.get_by_label("Question").fill("How much is the fee for a late payment?")
    page.keyboard.press("Enter")
    first = page.locator(".kb-result").first
    expect(first.get_by_role("link", name="billing", exact=True)).to_be_visible(timeout=60_000)
    expect(first.locator("dd.kb-section")).to_have_text(f"Billing {SECTION_SEPARATOR} Late payments")
    expect(first).to_contain_text("late payment fee of 15 EUR")
    expect(page.locator(".kb-verdict")).to_contain_text("The assistant would answer")
    expect(page.get_by_text("shipping", exact=True)).to_have_count(0)  # not published
    expect(first).not_to_contain_text("dana.fischer")  # redacted before publishing
    page.screenshot(path="/tmp/kb-search.png", full_page=True)

    page.get_by_role("link", name="Knowledge base").click()
    page.get_by_role("link", name="shipping", exact=True).click()
    page.get_by_role("link", name="Delete document…").click()
    # The confirm step takes the focus, so a keyboard user confirms with Enter (or tabs on to Cancel).
    expect(page.get_by_role("button", name="Delete permanently")).to_be_focused()
    expect(page.get_by_text("Delete “shipping” and all 1 version?")).to_be_visible()
    page.screenshot(path="/tmp/kb-delete-confirm.png", full_page=True)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text(
        "shipping was deleted with all its versions and passages."
    )
    assert not Document.objects.filter(tenant=acme, title="shipping").exists()

    upload(page, ("policy.pdf", "application/pdf", PNG))
    expect(page.get_by_role("status")).to_have_text(
        "policy.pdf: This file is a PNG image, not a document we can read. "
        "Upload a PDF, Word (DOCX), HTML, Markdown or plain-text document instead."
    )
    assert not Document.objects.filter(tenant=acme, title="policy").exists()
    page.screenshot(path="/tmp/kb-rejected.png", full_page=True)


def test_progress_falls_back_to_polling_when_the_socket_is_down(asgi_server, page, companies, celery_worker):
    # Every websocket is refused, as by a proxy that does not pass them: the page must poll the API instead.
    refused: list[str] = []

    def refuse(ws):
        refused.append(ws.url)
        ws.close(code=1011, reason="down")

    page.route_web_socket(re.compile(r".*/ws/staff/.*"), refuse)
    sign_in(page, asgi_server, "erin")
    page.goto(f"{asgi_server}/staff/acme/knowledge/")
    upload(page, ("shipping.txt", "text/plain", SHIPPING_TXT))
    page.evaluate(RECORD_STATUSES)

    expect(version_row(page, "shipping").locator('[data-kb-field="status"]')).to_have_text(
        "Ready", timeout=INGEST_TIMEOUT_MS
    )
    assert page.evaluate("window.__kbSameDocument") is True
    # It keeps trying to reconnect, backing off (0.5-1 s, then 1-2 s, ...), rather than giving up.
    page.wait_for_timeout(4000)
    assert len(refused) >= 3


def test_agent_gets_forbidden_on_knowledge_pages(asgi_server, page, companies):
    acme, _ = companies
    version = stored_version(acme)
    sign_in(page, asgi_server, "alex")
    base = f"{asgi_server}/staff/acme/knowledge"
    for path in ("/", f"/documents/{version.document_id}/", f"/versions/{version.id}/", "/search/"):
        response = page.goto(base + path)
        assert response is not None
        assert response.status == 403, path
        expect(page.get_by_role("heading", level=1)).to_have_text("You don't have permission to do that.")
        expect(page.get_by_text("billing")).to_have_count(0)
    page.screenshot(path="/tmp/kb-forbidden.png", full_page=True)


def test_editor_of_another_company_gets_not_found(asgi_server, page, companies):
    acme, _ = companies
    version = stored_version(acme)
    sign_in(page, asgi_server, "gus")
    for url in (
        f"{asgi_server}/staff/acme/knowledge/",
        f"{asgi_server}/staff/acme/knowledge/documents/{version.document_id}/",
        f"{asgi_server}/staff/globex/knowledge/versions/{version.id}/",
    ):
        response = page.goto(url)
        assert response is not None
        assert response.status == 404, url
        expect(page.get_by_role("heading", level=1)).to_have_text("That doesn't exist, or you can't see it.")
        expect(page.get_by_text("billing")).to_have_count(0)
    page.screenshot(path="/tmp/kb-not-found.png", full_page=True)
    assert Document.objects.filter(tenant=acme).count() == 1
