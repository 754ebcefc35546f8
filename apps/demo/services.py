"""The demo company `make run` loads: a telecom with staff, customers and a published knowledge base of its
policies (data/policies). Loading it twice changes nothing."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from apps.accounts import services
from apps.accounts.models import Contact, Role, Tenant, User
from apps.handoff import services as handoff
from apps.handoff.models import HandoffSettings
from apps.knowledge import ingestion
from apps.knowledge import services as knowledge
from apps.knowledge.models import Document, VersionStatus
from apps.messaging import demo_phone
from apps.releases import services as releases
from apps.releases.models import GoldenQuestion
from apps.telco.services import demo_telco_load
from apps.tools import services as tools
from apps.tools.models import AdapterKind, Approval, TenantTool
from helpdesk.keys import read_secret, secret_file, write_secret

DEMO_POLICIES = Path(__file__).resolve().parent / "data" / "policies"
# The demo's golden answers: the acceptance questions, {"q", "doc", "expect"} (doc null: must abstain).
DEMO_GOLDEN = Path(__file__).resolve().parent / "data" / "golden.jsonl"

DEMO_SLUG = "nimbus"

DEMO_STAFF = [
    ("nina", "Nina Admin", [Role.ADMIN]),
    ("alice", "Alice Agent", [Role.AGENT]),
    ("bob", "Bob Agent", [Role.AGENT]),
    ("erin", "Erin Editor", [Role.EDITOR]),
]
DEMO_CUSTOMERS = [
    ("cust-1001", "Maria Lopez", "maria.lopez@example.com"),
    ("cust-1002", "Tom Becker", "tom.becker@example.com"),
    ("cust-1003", "Aiko Tanaka", "aiko.tanaka@example.com"),
]


@dataclass(frozen=True)
class DemoResult:
    tenant: Tenant
    created: bool
    logins: list[tuple[str, str]]  # (username, roles)
    documents_published: int


def demo_password() -> str:
    """The demo sign-ins' password: random, made once per install and kept in DEMO_PASSWORD_FILE (mode
    0600). The demo includes a superuser, so its password is never a constant anyone could read."""
    return secret_file(Path(settings.DEMO_PASSWORD_FILE), generate=_new_demo_password)


def _new_demo_password() -> str:
    return secrets.token_urlsafe(12)


def demo_load(*, origins: list[str]) -> DemoResult:
    password_file = Path(settings.DEMO_PASSWORD_FILE)
    password = read_secret(password_file)
    if password is None:
        # A new install, or one whose logins were made before it had a password file (with the public
        # password of earlier versions): they all take a new one. The file is written only after the
        # logins have it, so after a failure or a kill the next load tries again, and the password it
        # prints is always the real one.
        password = _new_demo_password()
        result = _demo_people_load(origins=origins, password=password, reset_passwords=True)
        write_secret(password_file, password)
    else:
        result = _demo_people_load(origins=origins, password=password, reset_passwords=False)
    demo_tools_load(tenant=result.tenant)
    demo_handoff_load(tenant=result.tenant)
    demo_messaging_load(tenant=result.tenant, origins=origins)
    published = demo_knowledge_load(tenant=result.tenant)
    demo_golden_load(tenant=result.tenant)
    return DemoResult(
        tenant=result.tenant, created=result.created, logins=result.logins, documents_published=published
    )


def demo_messaging_load(*, tenant: Tenant, origins: list[str]) -> None:
    """An SMS channel whose provider is this server's demo phone (/demo/phone/): texts written there reach
    the desk by the signed webhook path, and the answers go back through the provider API."""
    local = ("http://127.0.0.1", "http://localhost")
    site = next((origin for origin in origins if origin.startswith(local)), "")
    demo_phone.demo_channel_load(tenant=tenant, site_url=site or "http://127.0.0.1:8000")


# Reads run at once; a plan change waits for an agent; a ticket is confirmed by the customer in the widget.
DEMO_TOOLS = [
    ("order_lookup", Approval.NONE),
    ("bill_explain", Approval.NONE),
    ("plans_compare", Approval.NONE),
    ("plan_change", Approval.AGENT),
    ("ticket_create", Approval.CUSTOMER),
]


@transaction.atomic
def demo_tools_load(*, tenant: Tenant) -> None:
    """The demo telecom's business system (accounts, bills, orders, plans, tickets) and its tools. A
    company that already chose its tools keeps its choice."""
    demo_telco_load(company=tenant.id)
    tools.tool_connection_configure(tenant=tenant, adapter=AdapterKind.DEMO)
    if not TenantTool.objects.for_tenant(tenant).exists():
        for name, approval in DEMO_TOOLS:
            tools.tool_configure(tenant=tenant, name=name, enabled=True, approval=approval)


DEMO_CANNED = [
    ("Greeting", "hello", "Hi, I'm from the Nimbus team. I've read what you told our assistant."),
    ("Checking", "checking", "Thanks for waiting. I'm looking into this on your account now."),
    ("Bill explained", "bill", "Your bill is your plan, any extra usage, and taxes. Let's go through it."),
    ("Anything else", "else", "Is there anything else I can help you with today?"),
]
# Every day, all day: whoever opens the console answers live; with nobody online the customer is offered
# the email path. Change them at /staff/nimbus/handoff-settings/.
DEMO_HOURS = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
# Aiko Tanaka is a premium customer: the company rule gives her a person straight away.
DEMO_TIERS = {"cust-1003": "premium"}


@transaction.atomic
def demo_handoff_load(*, tenant: Tenant) -> None:
    """Hours, a billing team, canned responses and two company rules, unless the company set them up."""
    if HandoffSettings.objects.for_tenant(tenant).exists():
        return
    handoff.handoff_settings_update(
        tenant=tenant, timezone_name="Europe/Berlin", hours=DEMO_HOURS, escalate_after_seconds=300
    )
    agents = list(User.objects.filter(username__in=["alice", "bob"]).values_list("id", flat=True))
    handoff.team_create(tenant=tenant, name="Billing", member_ids=agents)
    for title, shortcut, body in DEMO_CANNED:
        handoff.canned_response_save(tenant=tenant, title=title, shortcut=shortcut, body=body)
    handoff.handoff_rule_create(
        tenant=tenant, kind="topic", value="cancel my contract, port my number, formal complaint", priority=1
    )
    handoff.handoff_rule_create(tenant=tenant, kind="tier", value="premium", priority=2)
    for external_id, tier in DEMO_TIERS.items():
        Contact.objects.for_tenant(tenant).filter(external_id=external_id).update(tier=tier)


def demo_knowledge_load(*, tenant: Tenant) -> int:
    """Ingests (in this process, so the demo answers from the first minute) and publishes the demo policies,
    unless the company already has documents. Returns how many were published.

    A company whose documents were ingested before sentence units existed gets them here (embedded, in
    this process, before the first question); when none is missing that costs one query."""
    if Document.objects.for_tenant(tenant).exists():
        ingestion.sentences_backfill(tenant=tenant)
        return 0
    published = 0
    for path in sorted(DEMO_POLICIES.glob("*.md")):
        data = path.read_bytes()
        first_line = data.decode("utf-8").lstrip().splitlines()[0]
        title = first_line.lstrip("# ").strip() if first_line.startswith("#") else path.stem
        version = knowledge.document_upload(
            tenant=tenant, actor=None, upload=knowledge.Upload(filename=path.name, data=data), title=title
        )
        # The queued Celery task finds the version already ingested and does nothing.
        ingested = ingestion.version_ingest(version_id=str(version.id))
        if ingested is not None and ingested.status == VersionStatus.READY:
            knowledge.version_publish(version=ingested, actor=None)
            published += 1
    return published


@transaction.atomic
def demo_golden_load(*, tenant: Tenant) -> int:
    """The demo's golden questions (`manage.py golden_run --tenant nimbus` must pass them all), unless the
    company has golden questions already. Returns how many were added."""
    if GoldenQuestion.objects.for_tenant(tenant).exists():
        return 0
    rows = [json.loads(line) for line in DEMO_GOLDEN.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        releases.golden_question_create(
            tenant=tenant,
            question=row["q"],
            expect=row.get("expect") or [],
            document_title=row.get("doc"),
            must_abstain=not row.get("doc"),
            source=GoldenQuestion.Source.DEMO,
            actor=None,
        )
    return len(rows)


@transaction.atomic
def _demo_people_load(*, origins: list[str], password: str, reset_passwords: bool) -> DemoResult:
    tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
    created = tenant is None
    if tenant is None:
        tenant = services.tenant_create(slug=DEMO_SLUG, name="Nimbus Telecom", origins=origins)
    else:
        for origin in origins:
            services.allowed_origin_add(tenant=tenant, origin=origin)

    if reset_passwords:
        usernames = ["operator", *(username for username, _, _ in DEMO_STAFF)]
        for existing in User.objects.filter(username__in=usernames):
            existing.set_password(password)
            existing.save(update_fields=["password"])
    logins = []
    if not User.objects.filter(username="operator").exists():
        User.objects.create_superuser(username="operator", email="operator@example.com", password=password)
    logins.append(("operator", "platform operator (Django admin)"))
    for username, full_name, roles in DEMO_STAFF:
        user = User.objects.filter(username=username).first() or services.user_create(
            username=username,
            email=f"{username}@nimbus.example",
            password=password,
            first_name=full_name,
        )
        for role in roles:
            services.membership_grant(tenant=tenant, user=user, role=role)
        logins.append((username, ", ".join(Role(r).label for r in roles)))
    for external_id, name, email in DEMO_CUSTOMERS:
        services.contact_upsert(tenant=tenant, external_id=external_id, name=name, email=email)
    return DemoResult(tenant=tenant, created=created, logins=logins, documents_published=0)
