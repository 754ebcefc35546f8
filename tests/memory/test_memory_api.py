"""The widget's memory endpoints: consent stored with its wording and time (either answer), facts listed,
deleted one by one or all, consent withdrawn; each change audited without the customer's words; nobody
else's memory readable or deletable (docs/architecture/memory.md)."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.trail import chain_verify
from apps.conversations import services as conversations
from apps.memory.consent import CONSENT_VERSION, CONSENT_WORDING
from apps.memory.models import MemoryConsent, MemoryFact
from apps.memory.services import MEMORY_FACTS_MAX, memory_remember
from tests.memory.conftest import MEMORY, ORIGIN, call, customer_session, guest_session

pytestmark = pytest.mark.django_db

YES = {"remember": True, "version": CONSENT_VERSION}
NO = {"remember": False, "version": CONSENT_VERSION}


@pytest.fixture
def tenant(make_tenant):
    return make_tenant(name="Nimbus Telecom", origins=[ORIGIN])


def say(session, text: str, *, client_msg_id: str | None = None):
    """A customer message stored the way the widget's is, then what its after-commit listener remembers
    (the listener runs here directly: this test's transaction never commits)."""
    receipt = conversations.message_receive(
        tenant=_tenant(session),
        claims=session.claims,
        client_msg_id=client_msg_id or str(uuid.uuid4()),
        text=text,
    )
    return memory_remember(receipt.message)


def _tenant(session):
    from apps.accounts.models import Tenant

    return Tenant.objects.get(id=session.claims.tenant_id)


def audit_rows(tenant, prefix: str = "memory.") -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant, action__startswith=prefix).order_by("seq"))


def test_an_unasked_visitor_sees_the_question_and_nothing_remembered(tenant):
    session = guest_session(tenant)
    response = call("GET", MEMORY, session.token)
    assert response.status_code == 200, response.content
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert response.json() == {
        "consent": {"state": "unasked", "answered_at": None, "withdrawn_at": None, "version": None},
        "ask": {"version": CONSENT_VERSION, "wording": CONSENT_WORDING},
        "facts": [],
    }


def test_yes_is_stored_with_the_wording_and_time_and_audited_without_words(tenant):
    session = guest_session(tenant)
    before = timezone.now()
    response = call("POST", f"{MEMORY}/consent", session.token, body=YES)
    assert response.status_code == 200, response.content
    consent = MemoryConsent.objects.get()
    assert (consent.tenant_id, consent.contact_id, consent.visitor_id) == (
        tenant.id,
        None,
        session.claims.visitor_id,
    )
    assert (consent.granted, consent.wording, consent.version, consent.withdrawn_at) == (
        True,
        CONSENT_WORDING,
        CONSENT_VERSION,
        None,
    )
    assert before <= consent.given_at <= timezone.now()
    assert response.json()["consent"] == {
        "state": "granted",
        "answered_at": consent.given_at.isoformat(),
        "withdrawn_at": None,
        "version": CONSENT_VERSION,
    }
    [row] = audit_rows(tenant)
    assert (row.action, row.actor_kind, row.actor_id, row.target_type, row.target_id) == (
        "memory.consent",
        "customer",
        None,
        "MemoryConsent",
        str(consent.id),
    )
    assert row.data == {"subject": "visitor", "answer": "yes", "version": CONSENT_VERSION}
    # Saying yes again changes nothing.
    assert call("POST", f"{MEMORY}/consent", session.token, body=YES).status_code == 200
    assert MemoryConsent.objects.count() == 1
    assert len(audit_rows(tenant)) == 1
    assert list(chain_verify(tenant_id=tenant.id)) == []


def test_no_is_stored_too_so_it_is_not_asked_again_and_nothing_is_remembered(tenant):
    session = guest_session(tenant)
    response = call("POST", f"{MEMORY}/consent", session.token, body=NO)
    assert response.status_code == 200, response.content
    assert response.json()["consent"]["state"] == "declined"
    consent = MemoryConsent.objects.get()
    assert (consent.granted, consent.wording, consent.withdrawn_at) == (False, CONSENT_WORDING, None)
    assert call("GET", MEMORY, session.token).json()["consent"]["state"] == "declined"
    assert say(session, "I prefer email. I'm on the Unlimited 5G plan.") == []
    assert MemoryFact.objects.count() == 0
    # A second "no" is the same answer: no new row, no new audit.
    call("POST", f"{MEMORY}/consent", session.token, body=NO)
    assert MemoryConsent.objects.count() == 1
    assert [r.data for r in audit_rows(tenant)] == [{"subject": "visitor", "answer": "no", "version": 1}]


def test_an_answer_to_another_wording_is_a_conflict_and_stores_nothing(tenant):
    session = guest_session(tenant)
    response = call("POST", f"{MEMORY}/consent", session.token, body={"remember": True, "version": 99})
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert MemoryConsent.objects.count() == 0
    assert audit_rows(tenant) == []


def test_facts_are_listed_deleted_one_by_one_or_all_and_each_deletion_audited(tenant):
    session = guest_session(tenant)
    call("POST", f"{MEMORY}/consent", session.token, body=YES)
    said = say(session, "I prefer email. I'm on the Unlimited 5G plan. Do I pay for roaming?")
    assert [f.text for f in said] == ["I prefer email", "I'm on the Unlimited 5G plan"]
    body = call("GET", MEMORY, session.token).json()
    assert [(f["kind"], f["text"]) for f in body["facts"]] == [
        ("preference", "I prefer email"),
        ("fact", "I'm on the Unlimited 5G plan"),
    ]
    first = body["facts"][0]["id"]
    response = call("DELETE", f"{MEMORY}/facts/{first}", session.token)
    assert response.status_code == 204
    assert list(MemoryFact.objects.values_list("text", flat=True)) == ["I'm on the Unlimited 5G plan"]
    response = call("DELETE", f"{MEMORY}/facts", session.token)
    assert (response.status_code, response.json()) == (200, {"deleted": 1})
    assert MemoryFact.objects.count() == 0
    assert MemoryConsent.objects.get().active  # forgetting is not withdrawing
    rows = audit_rows(tenant)
    assert [(r.action, r.actor_kind, r.data) for r in rows] == [
        ("memory.consent", "customer", {"subject": "visitor", "answer": "yes", "version": 1}),
        ("memory.forget", "customer", {"subject": "visitor", "facts_deleted": 1, "scope": "one"}),
        ("memory.forget", "customer", {"subject": "visitor", "facts_deleted": 1, "scope": "all"}),
    ]
    assert rows[1].target_id == first
    assert all("email" not in str(r.data) and "Unlimited" not in str(r.data) for r in rows)


def test_stop_remembering_withdraws_deletes_every_fact_and_remembers_nothing_more(tenant):
    session = guest_session(tenant)
    call("POST", f"{MEMORY}/consent", session.token, body=YES)
    say(session, "I speak French. My phone is a Pixel 8.")
    assert MemoryFact.objects.count() == 2
    response = call("POST", f"{MEMORY}/consent", session.token, body=NO)
    assert response.status_code == 200
    assert response.json()["consent"]["state"] == "withdrawn"
    assert response.json()["facts"] == []
    consent = MemoryConsent.objects.get()
    assert consent.granted
    assert consent.withdrawn_at is not None
    assert MemoryFact.objects.count() == 0
    assert say(session, "I prefer email") == []
    assert MemoryFact.objects.count() == 0
    withdraw = audit_rows(tenant)[-1]
    assert (withdraw.action, withdraw.actor_kind, withdraw.data) == (
        "memory.withdraw",
        "customer",
        {"subject": "visitor", "facts_deleted": 2},
    )


def test_a_newer_statement_replaces_the_older_the_same_one_is_kept_once_and_the_cap_drops_the_oldest(tenant):
    session = guest_session(tenant)
    call("POST", f"{MEMORY}/consent", session.token, body=YES)
    say(session, "I'm on the Unlimited 5G plan.")
    say(session, "I'm on the Unlimited 5G plan.")
    assert list(MemoryFact.objects.values_list("text", flat=True)) == ["I'm on the Unlimited 5G plan"]
    say(session, "I'm on the Basic plan now.")
    assert list(MemoryFact.objects.values_list("text", flat=True)) == ["I'm on the Basic plan now"]
    for n in range(MEMORY_FACTS_MAX + 2):
        say(session, f"I prefer option number {n} for paper bills")
    texts = list(MemoryFact.objects.order_by("created_at").values_list("text", flat=True))
    assert len(texts) == MEMORY_FACTS_MAX
    assert texts[0] == "I prefer option number 2 for paper bills"  # the plan and options 0, 1 dropped
    assert texts[-1] == f"I prefer option number {MEMORY_FACTS_MAX + 1} for paper bills"


def test_an_email_in_a_statement_is_redacted_in_the_stored_fact(tenant):
    session = guest_session(tenant)
    call("POST", f"{MEMORY}/consent", session.token, body=YES)
    [fact] = say(session, "I prefer email replies at jane.roe@example.com please.")
    fact.refresh_from_db()
    assert "jane.roe" not in fact.text
    assert "example.com" not in fact.text
    assert fact.text == "I prefer email replies at <EMAIL_ADDRESS> please"


def test_another_visitor_or_company_can_neither_read_nor_delete(tenant, make_tenant):
    mine = guest_session(tenant)
    call("POST", f"{MEMORY}/consent", mine.token, body=YES)
    [fact] = say(mine, "I prefer email")
    other_visitor = guest_session(tenant)
    other_customer = customer_session(tenant, "cust-2")
    elsewhere = make_tenant(origins=["https://other.example"])
    other_company = guest_session(elsewhere)
    for token, origin in [
        (other_visitor.token, ORIGIN),
        (other_customer.token, ORIGIN),
        (other_company.token, "https://other.example"),
    ]:
        listed = call("GET", MEMORY, token, origin=origin)
        assert listed.status_code == 200
        assert listed.json()["facts"] == []
        assert listed.json()["consent"]["state"] == "unasked"
        refused = call("DELETE", f"{MEMORY}/facts/{fact.id}", token, origin=origin)
        assert refused.status_code == 404
        assert call("DELETE", f"{MEMORY}/facts", token, origin=origin).json() == {"deleted": 0}
    # The page of another company cannot use this visitor's token, and no token at all is refused.
    assert call("GET", MEMORY, mine.token, origin="https://other.example").status_code == 403
    assert call("GET", MEMORY, "not-a-token").status_code == 401
    assert MemoryFact.objects.filter(id=fact.id).exists()
    assert [r.action for r in audit_rows(tenant)] == ["memory.consent"]


def test_a_customers_memory_follows_them_and_not_the_guest_on_the_same_browser(tenant):
    guest = guest_session(tenant)
    call("POST", f"{MEMORY}/consent", guest.token, body=YES)
    say(guest, "I speak German")
    customer = customer_session(tenant, "cust-9")
    assert call("GET", MEMORY, customer.token).json()["consent"]["state"] == "unasked"
    call("POST", f"{MEMORY}/consent", customer.token, body=YES)
    say(customer, "I'm on the Family plan")
    consent = MemoryConsent.objects.get(contact__isnull=False)
    assert (consent.contact_id, consent.visitor_id) == (customer.claims.contact_id, None)
    other_device = customer_session(tenant, "cust-9")
    facts = call("GET", MEMORY, other_device.token).json()["facts"]
    assert [f["text"] for f in facts] == ["I'm on the Family plan"]
    assert [f["text"] for f in call("GET", MEMORY, guest.token).json()["facts"]] == ["I speak German"]
    assert AuditEvent.objects.filter(action="memory.consent", data__subject="contact").count() == 1


def test_a_preflight_allows_delete_for_an_allowed_origin():
    from django.test import Client

    response = Client().options(f"{MEMORY}/facts/x", HTTP_ORIGIN="https://nobody.example")
    assert response.status_code == 204
    assert "Access-Control-Allow-Methods" not in response


@pytest.mark.usefixtures("tenant")
def test_a_preflight_from_the_companys_origin_allows_delete():
    from django.test import Client

    response = Client().options(f"{MEMORY}/facts/x", HTTP_ORIGIN=ORIGIN)
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert response["Access-Control-Allow-Methods"] == "GET, POST, DELETE, OPTIONS"
