"""The Django admin's conversation pages work for an operator and never show customers' original words."""

from __future__ import annotations

import pytest

from apps.accounts.models import User
from apps.conversations import services
from apps.conversations.models import Message
from apps.guardrails.pii import pii_redact
from apps.knowledge.services import knowledge_gap_record

pytestmark = pytest.mark.django_db

SECRET = "maria.lopez@example.org"


@pytest.fixture
def operator(db) -> User:
    return User.objects.create_superuser(username="operator", email="op@example.com", password=None)


def test_conversation_admin_pages_render_redacted_text_only(kb_tenant, operator, client_as):
    session = services.widget_session_open(tenant=kb_tenant, token=None, claim=None)
    receipt = services.message_receive(
        tenant=kb_tenant, claims=session.claims, client_msg_id="a", text=f"My email is {SECRET}"
    )
    knowledge_gap_record(
        tenant=kb_tenant, question=pii_redact("parrots?"), top_similarity=0.1, threshold=0.4, nearest=[]
    )
    client = client_as(operator)
    conversation_id = session.claims.conversation_id
    for url in [
        "/admin/conversations/conversation/",
        f"/admin/conversations/conversation/{conversation_id}/change/",
        "/admin/conversations/message/",
        f"/admin/conversations/message/{receipt.message.id}/change/",
        "/admin/conversations/conversationevent/",
        "/admin/conversations/assistanttrace/",
        "/admin/knowledge/knowledgegap/",
    ]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert SECRET not in response.content.decode(), url
    assert client.get("/admin/conversations/message/add/").status_code == 403
    assert Message.objects.get(id=receipt.message.id).text == f"My email is {SECRET}"
