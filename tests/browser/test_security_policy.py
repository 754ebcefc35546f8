"""The Content-Security-Policy in a real Chromium, served by Daphne: every staff page (sign-in, staff home,
settings, knowledge, tools, console, reports, the Django admin) and the widget's demo host page load and
work with no violation reported, while an injected inline script is refused. The sign-in lockout page,
rendered by Daphne's asynchronous middleware chain, too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.conf import settings as django_settings
from django.test import Client
from playwright.sync_api import Browser, BrowserContext, Page, expect

from apps.accounts import services as accounts
from apps.accounts.models import Role, Tenant, User
from apps.conversations.models import Conversation, ConversationRating, HandoffReason
from apps.handoff.models import Handoff
from apps.knowledge import services as knowledge

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
POLICY = b"# Refund policy\n\n## Device returns\n\nReturn a phone within 30 days for a full refund.\n"
# Violations of the policy, as the page reports them to itself; installed before any script of the page.
COLLECT_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__csp.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} at ${where}`);
}, true);
"""


@dataclass(frozen=True)
class Desk:
    tenant: Tenant
    admin: User
    operator: User
    document_id: str
    version_id: str
    handoff_id: str


@pytest.fixture
def desk(asgi_server: str) -> Desk:
    tenant = accounts.tenant_create(slug="acme", name="Acme Mobile", origins=["https://acme.example"])
    admin = accounts.user_create(username="ada", email="ada@acme.example", password=PASSWORD)
    accounts.membership_grant(tenant=tenant, user=admin, role=Role.ADMIN)
    operator = User.objects.create_superuser(username="root", email="root@acme.example", password=PASSWORD)
    version = knowledge.document_upload(
        tenant=tenant,
        actor=admin,
        upload=knowledge.Upload(filename="refunds.md", data=POLICY),
        title="Refunds",
    )
    conversation = Conversation.objects.create(tenant=tenant)
    # A rating puts the satisfaction table (with its bars) on the reports page.
    ConversationRating.objects.create(tenant=tenant, conversation=conversation, episode=1, score=4)
    handoff = Handoff.objects.create(
        tenant=tenant,
        conversation=conversation,
        reason=HandoffReason.CUSTOMER_REQUEST,
        availability={"state": "queued", "position": 1},
    )
    # The demo company's website embeds the widget from the desk's own origin.
    accounts.tenant_create(slug="nimbus", name="Nimbus Telecom", origins=[asgi_server])
    return Desk(
        tenant=tenant,
        admin=admin,
        operator=operator,
        document_id=str(version.document_id),
        version_id=str(version.id),
        handoff_id=str(handoff.id),
    )


@dataclass
class Watched:
    context: BrowserContext
    page: Page
    console: list[str]

    def violations(self) -> list[str]:
        """Everything reported on the current page, and every policy complaint in the console so far."""
        self.page.wait_for_timeout(300)  # late ones: styles and sockets applied after load
        reported = self.page.evaluate("window.__csp || []")
        complaints = [text for text in self.console if "Content Security Policy" in text]
        return [*reported, *complaints]


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context()
    context.add_init_script(script=COLLECT_VIOLATIONS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    yield Watched(context=context, page=page, console=console)
    context.close()


def sign_in_with_session(watched: Watched, user: User, url: str) -> None:
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    watched.context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": url}])


def directives(header: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in header.split(";") if part.strip())


def visit(watched: Watched, url: str, heading: str | re.Pattern[str], *, where: str = "main") -> None:
    response = watched.page.goto(url)
    assert response is not None
    assert response.status == 200, url
    policy = directives(response.headers["content-security-policy"])
    assert (policy["script-src"], policy["style-src"]) == ("'self'", "'self'"), url
    expect(watched.page.locator(f"{where} h1")).to_have_text(heading)
    assert watched.violations() == [], url


def test_staff_pages_load_with_no_policy_violation(asgi_server, desk, watched) -> None:
    page = watched.page
    base = f"{asgi_server}/staff/acme"

    page.goto(f"{asgi_server}/accounts/login/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your companies")
    assert watched.violations() == []

    visit(watched, f"{asgi_server}/staff/", "Your companies")
    visit(watched, f"{base}/settings/", "Acme Mobile")
    visit(watched, f"{base}/knowledge/", "Knowledge base")
    visit(watched, f"{base}/knowledge/documents/{desk.document_id}/", "Refunds")
    visit(watched, f"{base}/knowledge/versions/{desk.version_id}/", re.compile("Refunds"))
    visit(watched, f"{base}/knowledge/search/?q=refund", "Search the knowledge base")
    visit(watched, f"{base}/knowledge/gaps/", "Knowledge gaps")
    visit(watched, f"{base}/tools/", "Tools")
    visit(watched, f"{base}/reports/", "Reports")
    bar = page.locator('svg.report-bar rect[width="100"]')
    expect(bar).to_have_count(1)
    box = bar.bounding_box()
    assert box is not None
    assert box["width"] > 10  # the 100 % bar is drawn, without an inline style
    visit(watched, f"{base}/handoff-settings/", "Handoff settings")

    # The console is live over its websocket: connect-src allows the desk's own ws:// origin.
    page.goto(f"{base}/console/")
    expect(page.locator("[data-conn]")).to_have_text("Live", timeout=30_000)
    assert watched.violations() == []

    # The policy is enforced, and this test would see a breach: an injected inline script is refused.
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
        " document.body.appendChild(s); }"
    )
    page.wait_for_timeout(300)
    assert page.evaluate("window.__ran === undefined")
    assert [v for v in page.evaluate("window.__csp") if v.startswith("script-src-elem blocked inline")]


def test_django_admin_pages_load_with_no_policy_violation(asgi_server, desk, watched) -> None:
    sign_in_with_session(watched, desk.operator, asgi_server)
    admin = f"{asgi_server}/admin"

    visit(watched, f"{admin}/", "Site administration", where="#content")
    visit(watched, f"{admin}/accounts/tenant/", "Select tenant to change", where="#content")
    visit(watched, f"{admin}/accounts/tenant/{desk.tenant.pk}/change/", "Change tenant", where="#content")
    visit(watched, f"{admin}/handoff/handoff/{desk.handoff_id}/change/", "View handoff", where="#content")
    expect(watched.page.locator("pre.helpdesk-json").first).to_contain_text('"state": "queued"')
    visit(watched, f"{admin}/axes/accessattempt/", "Select access attempt to change", where="#content")


def test_the_widget_demo_host_page_works_under_its_policy(asgi_server, desk, watched) -> None:
    page = watched.page
    response = page.goto(f"{asgi_server}/demo/")
    assert response is not None
    assert response.status == 200
    policy = directives(response.headers["content-security-policy"])
    assert (policy["script-src"], policy["style-src"]) == ("'self'", "'self' 'unsafe-inline'")

    launcher = page.get_by_role("button", name="Chat with us")
    expect(launcher).to_be_visible(timeout=30_000)
    launcher.click()
    expect(page.get_by_role("dialog", name="Chat with Nimbus Telecom")).to_be_visible()
    # Connected: the widget's fetch and websocket to the desk were allowed.
    page.wait_for_function(
        "() => document.querySelector('helpdesk-widget').shadowRoot.querySelector('.status')"
        ".textContent === ''",
        timeout=30_000,
    )
    assert watched.violations() == []


def test_the_sign_in_lockout_page_from_daphne(asgi_server, desk, watched) -> None:
    page = watched.page
    page.goto(f"{asgi_server}/accounts/login/")
    for _ in range(int(django_settings.AXES_FAILURE_LIMIT)):
        page.get_by_label("Username").fill("ada")
        page.get_by_label("Password").fill("not the password")
        with page.expect_response(re.compile(r"/accounts/login/$")) as answer:
            page.get_by_role("button", name="Sign in").click()
        if answer.value.status == 429:
            break

    page.get_by_role("link", name="Back to sign-in").click()
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_response(re.compile(r"/accounts/login/$")) as answer:
        page.get_by_role("button", name="Sign in").click()

    assert answer.value.status == 429
    assert int(answer.value.headers["retry-after"]) > 800
    expect(page.get_by_role("heading", level=1)).to_have_text("Too many failed sign-ins")
    expect(page.get_by_role("alert")).to_contain_text("or ask an administrator to unlock sign-in for you.")
    assert watched.violations() == []
