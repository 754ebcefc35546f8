"""The Django admin's handoff pages for the platform operator: they render, records the services write are
read-only, and nothing identifies a customer (notes redacted, emails masked, reply tokens hidden)."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.conversations.models import Conversation, ConversationRating, HandoffReason
from apps.handoff import services
from apps.handoff.availability import settings_for
from apps.handoff.models import Handoff, Note, Presence, SentEmail, Ticket

pytestmark = pytest.mark.django_db

EMAIL = "maria.lopez@example.org"


@pytest.fixture
def operator_client(db: None) -> Client:
    operator = User.objects.create_superuser(username="operator", email="op@example.com", password=None)
    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture
def records(tenant_a) -> dict[str, object]:
    tenant, agent = tenant_a.tenant, tenant_a.agent
    conversation = Conversation.objects.create(tenant=tenant, status=Conversation.Status.RESOLVED)
    handoff = Handoff.objects.create(
        tenant=tenant,
        conversation=conversation,
        reason=HandoffReason.ANGRY,
        status=Handoff.Status.RESOLVED,
        agent=agent,
        availability={"state": "offline", "why": "closed", "email": "m***@example.org"},
        case_file={"goal": "Refund the <double> charge", "facts": ["plan: Plus 20"]},
        case_file_status=Handoff.CaseFileStatus.READY,
    )
    ticket = Ticket.objects.create(tenant=tenant, number=1001, conversation=conversation, email=EMAIL)
    return {
        "settings": settings_for(tenant),
        "team": services.team_create(tenant=tenant, name="Billing", member_ids=[agent.id]),
        "presence": services.presence_set(tenant=tenant, user=agent, capacity=4),
        "handoff": handoff,
        "rule": services.handoff_rule_create(tenant=tenant, kind="topic", value="refund"),
        "note": Note.objects.create(
            tenant=tenant, conversation=conversation, author=agent, text=f"She wrote from {EMAIL}"
        ),
        "canned": services.canned_response_save(tenant=tenant, title="Hi", shortcut="hi", body="Hello!"),
        "ticket": ticket,
        "email": SentEmail.objects.create(tenant=tenant, message_id=uuid.uuid4(), ticket=ticket),
        "rating": ConversationRating.objects.create(
            tenant=tenant,
            conversation=conversation,
            episode=1,
            score=4,
            comment="Quick and kind",
            agent=agent,
        ),
    }


PAGES = {
    "settings": "handoff/handoffsettings",
    "team": "handoff/team",
    "presence": "handoff/presence",
    "handoff": "handoff/handoff",
    "rule": "handoff/handoffrule",
    "note": "handoff/note",
    "canned": "handoff/cannedresponse",
    "ticket": "handoff/ticket",
    "email": "handoff/sentemail",
    "rating": "conversations/conversationrating",
}


def test_every_page_renders_for_the_operator(operator_client, records):
    for key, path in PAGES.items():
        obj = records[key]
        for url in (f"/admin/{path}/", f"/admin/{path}/{obj.pk}/change/"):
            response = operator_client.get(url)
            assert response.status_code == 200, url
            assert EMAIL not in response.content.decode(), url


def test_handoff_page_shows_the_case_file_read_only(operator_client, records):
    handoff = records["handoff"]
    html = operator_client.get(f"/admin/handoff/handoff/{handoff.pk}/change/").content.decode()
    assert "&quot;goal&quot;: &quot;Refund the &lt;double&gt; charge&quot;" in html
    # Styled by the admin stylesheet the page links, not style="" (the Content-Security-Policy forbids it).
    assert '<pre class="helpdesk-json">' in html
    assert "/static/css/admin.css" in html
    assert 'name="case_file"' not in html  # no form field: nothing to change
    listing = operator_client.get("/admin/handoff/handoff/?status=resolved&reason=angry").content.decode()
    assert str(handoff.pk) in listing


def test_records_cannot_be_added_or_changed(operator_client, records):
    for path in ("handoff/handoff", "handoff/note", "handoff/ticket", "handoff/sentemail"):
        assert operator_client.get(f"/admin/{path}/add/").status_code == 403, path
    assert operator_client.get("/admin/conversations/conversationrating/add/").status_code == 403
    assert operator_client.get("/admin/handoff/presence/add/").status_code == 403
    handoff = records["handoff"]
    response = operator_client.post(f"/admin/handoff/handoff/{handoff.pk}/change/", {"status": "waiting"})
    assert response.status_code == 403
    assert Handoff.objects.get(pk=handoff.pk).status == Handoff.Status.RESOLVED


def test_notes_are_redacted_and_emails_masked(operator_client, records):
    note = operator_client.get(f"/admin/handoff/note/{records['note'].pk}/change/").content.decode()
    assert "She wrote from &lt;EMAIL_ADDRESS&gt;" in note
    ticket = operator_client.get(f"/admin/handoff/ticket/{records['ticket'].pk}/change/").content.decode()
    assert "m***@example.org" in ticket
    assert records["ticket"].reply_token not in ticket
    assert Note.objects.get(pk=records["note"].pk).text == f"She wrote from {EMAIL}"


def test_settings_and_canned_responses_are_editable(operator_client, records):
    canned = records["canned"]
    response = operator_client.post(
        f"/admin/handoff/cannedresponse/{canned.pk}/change/",
        {"tenant": canned.tenant_id, "title": "Hello", "shortcut": "hi", "body": "Hello there!"},
    )
    assert response.status_code == 302
    canned.refresh_from_db()
    assert (canned.title, canned.body) == ("Hello", "Hello there!")
    assert Presence.objects.get(pk=records["presence"].pk).capacity == 4


def test_not_for_staff_without_admin_rights(client_admin_a, records):
    response = client_admin_a.get("/admin/handoff/handoff/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
