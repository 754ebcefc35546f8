"""Widget sessions end when they should (security review, findings 1 and 2), through the real ASGI
application: HTTP through Django's test client, sockets through channels' communicator, against the
harness's PostgreSQL and Valkey.

1. A guest token never opens a customer's conversation: signing in does not hand the guest's conversation
   to the customer, and ends the guest token's access to it (reads, writes, tools, decisions, email).
2. A verified session lives only while the company vouches: it carries an expiry at most
   WIDGET_IDENTITY_MAX_AGE after its proof, the company's identity epoch (bumped by rotating the secret)
   and the customer's own epoch (bumped when they sign out), all checked on every use.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from apps.accounts import services as accounts
from apps.accounts.models import Contact, Tenant
from apps.conversations.identity import (
    identity_profile_signature,
    identity_revoke_signature,
    identity_signature,
)
from apps.conversations.models import Conversation, Message
from apps.tools.models import RunStatus, ToolRun
from tests.conversations.conftest import ORIGIN, widget_connect
from tests.fakes.openai_server import FakeOpenAI
from tests.tools.conftest import tools_enable

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]

SESSION = "/api/widget/v1/session"
EVENTS = "/api/widget/v1/events?after=0"


def _identity(tenant: Tenant, external_id: str, *, issued_at: int | None = None, **profile: str) -> dict:
    issued = int(time.time()) if issued_at is None else issued_at
    if profile:
        signature = identity_profile_signature(
            secret=tenant.identity_secret,
            external_id=external_id,
            issued_at=issued,
            email=profile.get("email", ""),
            name=profile.get("name", ""),
        )
    else:
        signature = identity_signature(
            secret=tenant.identity_secret, external_id=external_id, issued_at=issued
        )
    return {"external_id": external_id, "issued_at": issued, "signature": signature, **profile}


def _session(tenant: Tenant, *, token: str | None = None, identity: dict | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"widget_key": tenant.widget_key, "token": token}
    if identity is not None:
        body["identity"] = identity
    response = Client().post(SESSION, body, content_type="application/json", headers={"Origin": ORIGIN})
    assert response.status_code == 200, response.content
    return response.json()


def _events(token: str) -> Any:
    return Client().get(EVENTS, headers={"Authorization": f"Bearer {token}", "Origin": ORIGIN})


async def _hello_refused(tenant: Tenant, token: str) -> int:
    widget, _ = await widget_connect(tenant, hello=False)
    await widget.send({"type": "hello", "token": token})
    return await widget.closed()


@pytest.fixture
def tools_tenant(kb_tenant: Tenant) -> Tenant:
    tools_enable(kb_tenant)
    return kb_tenant


@pytest.fixture
def recheck_every_frame(settings: Any) -> None:
    settings.WIDGET_SESSION_RECHECK_SECONDS = 0


async def test_a_guest_token_opens_nothing_of_the_customer_who_signed_in_on_that_browser(
    tools_tenant: Tenant, fake_llm: FakeOpenAI, recheck_every_frame: None
) -> None:
    tenant = tools_tenant
    guest = await database_sync_to_async(_session)(tenant)
    token = guest["token"]
    # The guest chats, and keeps three tabs open.
    tabs = [(await widget_connect(tenant, token=token))[0] for _ in range(3)]
    await tabs[0].send({"type": "message", "text": "hi, what plans do you have?"})
    await tabs[0].until(lambda f: f["type"] == "assistant.completed", timeout=30)

    # Then signs in as cust-1001 on the same browser, handing in the guest token.
    customer = await database_sync_to_async(_session)(
        tenant, token=token, identity=_identity(tenant, "cust-1001")
    )
    assert customer["verified"] is True
    assert customer["conversation_id"] != guest["conversation_id"]

    # The customer asks for a ticket; the change waits for her confirmation.
    fake_llm.tool_caller = lambda body: [
        ("ticket_create", '{"subject": "No signal", "description": "No signal at home since Monday"}')
    ]
    mine, _ = await widget_connect(tenant, token=customer["token"])
    await mine.send({"type": "message", "text": "I have had no signal at home since Monday"})
    await mine.until(lambda f: f["type"] == "assistant.completed", timeout=30)
    proposal = next(f for f in mine.received if f.get("type") == "tool.run")
    await mine.close()

    # Whoever still holds the guest token (the old tabs, or a copy) can do nothing more.
    fake_llm.tool_caller = lambda body: [("order_lookup", '{"order_number": "NM-100234"}')]
    await tabs[0].send({"type": "message", "text": "Where is my order NM-100234?"})
    await tabs[1].send({"type": "tool.decide", "run_id": proposal["run_id"], "approve": True})
    await tabs[2].send({"type": "handoff.email", "email": "attacker@evil.example"})
    assert [await tab.closed() for tab in tabs] == [4401, 4401, 4401]
    assert await _hello_refused(tenant, token) == 4401
    events = await database_sync_to_async(_events)(token)
    assert (events.status_code, events.json()["code"]) == (401, "unauthorized")
    again = await database_sync_to_async(_session)(tenant, token=token)
    assert again["verified"] is False
    assert again["conversation_id"] not in (guest["conversation_id"], customer["conversation_id"])

    def stored() -> tuple[list[ToolRun], Conversation, Conversation, list[str]]:
        runs = list(ToolRun.objects.for_tenant(tenant))
        mine = Conversation.objects.get(id=customer["conversation_id"])
        theirs = Conversation.objects.get(id=guest["conversation_id"])
        texts = list(
            Message.objects.filter(conversation=mine, role="customer").values_list("text", flat=True)
        )
        return runs, mine, theirs, texts

    runs, her_conversation, guest_conversation, her_words = await database_sync_to_async(stored)()
    # Only her own proposal exists, still waiting for her; no lookup ran as her; her email is untouched.
    assert [(r.tool, r.status, r.customer) for r in runs] == [
        ("ticket_create", RunStatus.AWAITING_APPROVAL, "cust-1001")
    ]
    assert her_conversation.contact_email == ""
    # The reverse: the guest's words never joined her conversation, and the guest's stays anonymous.
    assert her_words == ["I have had no signal at home since Monday"]
    assert guest_conversation.contact_id is None
    assert guest_conversation.visitor_ended_at is not None


async def test_a_verified_token_ends_when_its_proof_runs_out(kb_tenant: Tenant, settings: Any) -> None:
    settings.WIDGET_IDENTITY_MAX_AGE = 3600
    proof = _identity(kb_tenant, "cust-7", issued_at=int(time.time()) - 3600 + 2)
    session = await database_sync_to_async(_session)(kb_tenant, identity=proof)
    assert session["verified"] is True
    assert session["expires_at"] == proof["issued_at"] + 3600
    assert (await database_sync_to_async(_events)(session["token"])).status_code == 200
    await asyncio.sleep(2.5)
    assert (await database_sync_to_async(_events)(session["token"])).status_code == 401
    assert await _hello_refused(kb_tenant, session["token"]) == 4401


async def test_rotating_the_identity_secret_ends_every_verified_session_at_once(
    kb_tenant: Tenant, recheck_every_frame: None
) -> None:
    session = await database_sync_to_async(_session)(kb_tenant, identity=_identity(kb_tenant, "cust-8"))
    open_tab, _ = await widget_connect(kb_tenant, token=session["token"])
    guest = await database_sync_to_async(_session)(kb_tenant)

    await database_sync_to_async(accounts.tenant_identity_secret_rotate)(tenant=kb_tenant)

    # The next frame that touches the conversation is refused (a ping touches nothing and is answered).
    await open_tab.send({"type": "ping"})
    assert (await open_tab.recv())["type"] == "pong"
    await open_tab.send({"type": "message", "text": "still me?"})
    assert await open_tab.closed() == 4401
    assert await _hello_refused(kb_tenant, session["token"]) == 4401
    assert (await database_sync_to_async(_events)(session["token"])).status_code == 401
    # A page still signed with the old secret gets a guest session, not the customer's.
    stale_page = await database_sync_to_async(_session)(
        kb_tenant, token=session["token"], identity={**_identity(kb_tenant, "cust-8"), "signature": "0" * 64}
    )
    assert stale_page["verified"] is False
    # Guests are not customers: rotating the secret does not end theirs.
    assert (await database_sync_to_async(_events)(guest["token"])).status_code == 200


async def test_signing_out_on_the_companys_site_ends_every_copy_of_the_customers_token(
    kb_tenant: Tenant, recheck_every_frame: None
) -> None:
    laptop = await database_sync_to_async(_session)(kb_tenant, identity=_identity(kb_tenant, "cust-9"))
    copy_elsewhere, _ = await widget_connect(kb_tenant, token=laptop["token"])
    # The next page of the company's site vouches for nobody: she signed out.
    signed_out = await database_sync_to_async(_session)(kb_tenant, token=laptop["token"])
    assert signed_out["verified"] is False
    assert signed_out["conversation_id"] != laptop["conversation_id"]
    await copy_elsewhere.send({"type": "handoff.request"})
    assert await copy_elsewhere.closed() == 4401
    assert (await database_sync_to_async(_events)(laptop["token"])).status_code == 401
    # Signing in again works, and continues her conversation.
    back = await database_sync_to_async(_session)(
        kb_tenant, token=signed_out["token"], identity=_identity(kb_tenant, "cust-9")
    )
    assert back["verified"] is True
    assert (await database_sync_to_async(_events)(back["token"])).status_code == 200


async def test_the_widgets_logout_call_ends_the_session(kb_tenant: Tenant) -> None:
    session = await database_sync_to_async(_session)(kb_tenant, identity=_identity(kb_tenant, "cust-10"))

    def logout(token: str) -> Any:
        return Client().post(
            "/api/widget/v1/session/end", headers={"Authorization": f"Bearer {token}", "Origin": ORIGIN}
        )

    assert (await database_sync_to_async(logout)(session["token"])).status_code == 204
    assert (await database_sync_to_async(_events)(session["token"])).status_code == 401
    assert (await database_sync_to_async(logout)(session["token"])).status_code == 401
    # A guest's logout closes the guest's conversation to that token.
    guest = await database_sync_to_async(_session)(kb_tenant)
    guest_tab, _ = await widget_connect(kb_tenant, token=guest["token"])
    await guest_tab.send({"type": "message", "text": "hello"})
    await guest_tab.until(lambda f: f["type"] == "ack")
    await guest_tab.close()
    assert (await database_sync_to_async(logout)(guest["token"])).status_code == 204
    assert (await database_sync_to_async(_events)(guest["token"])).status_code == 401


def test_name_and_email_are_stored_only_when_the_company_signed_them(kb_tenant: Tenant) -> None:
    accounts.contact_upsert(
        tenant=kb_tenant, external_id="cust-11", name="Ana Real", email="ana@real.example"
    )
    unsigned = {**_identity(kb_tenant, "cust-11"), "name": "Mallory", "email": "mallory@evil.example"}
    body = _session(kb_tenant, identity=unsigned)
    assert body["verified"] is True
    assert body["identity"] == {"status": "verified", "profile": "ignored_unsigned"}
    contact = Contact.objects.get(tenant=kb_tenant, external_id="cust-11")
    assert (contact.name, contact.email) == ("Ana Real", "ana@real.example")

    signed = _identity(kb_tenant, "cust-11", name="Ana Lima", email="ana@new.example")
    assert _session(kb_tenant, identity=signed)["identity"] == {"status": "verified"}
    contact.refresh_from_db()
    assert (contact.name, contact.email) == ("Ana Lima", "ana@new.example")
    # Moving a signed name into the email (or a field into the id) breaks the signature.
    shifted = {**signed, "name": "", "email": "Ana Lima"}
    assert _session(kb_tenant, identity=shifted)["identity"] == {
        "status": "rejected",
        "reason": "bad_signature",
    }


def test_identity_secrets_are_sealed_at_rest(kb_tenant: Tenant) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT identity_secret FROM accounts_tenant WHERE id = %s", [kb_tenant.id])
        [stored] = cursor.fetchone()
    plain = Tenant.objects.get(id=kb_tenant.id).identity_secret
    assert plain.startswith("ids_")
    assert stored.startswith("sealed:v1:")
    assert plain not in stored


def _sign_out(tenant: Tenant, external_id: str, *, issued_at: int | None = None, signature: str = "") -> Any:
    issued = int(time.time()) if issued_at is None else issued_at
    signature = signature or identity_revoke_signature(
        secret=tenant.identity_secret, external_id=external_id, issued_at=issued
    )
    body = {
        "widget_key": tenant.widget_key,
        "external_id": external_id,
        "issued_at": issued,
        "signature": signature,
    }
    return Client().post("/api/widget/v1/identity/sign-out", body, content_type="application/json")


def test_the_companys_server_signs_a_customer_out_everywhere_even_from_pages_left_open(
    kb_tenant: Tenant,
) -> None:
    page_proof = _identity(kb_tenant, "cust-12")  # a page of the company's site left open in another tab
    session = _session(kb_tenant, identity=page_proof)
    # Neither the page's own proof nor a stale or forged sign-out is accepted as one.
    assert _sign_out(kb_tenant, "cust-12", signature=page_proof["signature"]).status_code == 403
    assert _sign_out(kb_tenant, "cust-12", issued_at=int(time.time()) - 3600).status_code == 403
    assert _events(session["token"]).status_code == 200

    assert _sign_out(kb_tenant, "cust-12").status_code == 204
    assert _events(session["token"]).status_code == 401
    stale = _session(kb_tenant, token=session["token"], identity=page_proof)
    assert stale["verified"] is False
    assert stale["identity"] == {"status": "rejected", "reason": "signed_out"}
    # Signing in afterwards, with a proof made afterwards, works again.
    time.sleep(1.1)
    assert _session(kb_tenant, identity=_identity(kb_tenant, "cust-12"))["verified"] is True
    # An unknown customer is answered the same way: nothing tells who exists.
    assert _sign_out(kb_tenant, "nobody-here").status_code == 204


def test_staff_sign_a_customer_out_of_the_widget_from_the_admin(kb_tenant: Tenant, client_as) -> None:
    from apps.accounts.models import User

    page_proof = _identity(kb_tenant, "cust-13")
    session = _session(kb_tenant, identity=page_proof)
    contact = Contact.objects.get(tenant=kb_tenant, external_id="cust-13")
    operator = User.objects.create_superuser(username="op", email="op@example.com", password=None)
    response = client_as(operator).post(
        "/admin/accounts/contact/",
        {"action": "sign_out_everywhere", "_selected_action": [str(contact.id)]},
        follow=True,
    )
    assert response.status_code == 200
    assert "signed out of the chat widget on every device" in response.content.decode()
    assert _events(session["token"]).status_code == 401
    assert _session(kb_tenant, identity=page_proof)["identity"]["reason"] == "signed_out"
