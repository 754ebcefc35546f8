"""Widget sessions over HTTP: origins, CORS, tokens, and the company's HMAC vouching for a customer
(CONTRACTS §3: forged identity is treated as anonymous and never merged into a verified contact)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client

from apps.accounts import services as accounts
from apps.accounts.models import Contact
from apps.conversations import services
from apps.conversations.identity import identity_profile_signature, session_token_read
from apps.conversations.models import Conversation, Message
from tests.conversations.conftest import ORIGIN

pytestmark = pytest.mark.django_db

SESSION = "/api/widget/v1/session"


def _post(body: dict[str, Any], origin: str | None = ORIGIN) -> Any:
    headers = {"Origin": origin} if origin else {}
    return Client().post(SESSION, body, content_type="application/json", headers=headers)


def _identity(
    tenant: Any, external_id: str, *, issued_at: int | None = None, secret: str | None = None
) -> dict:
    """A company's proof for a customer, vouching for her name too."""
    issued = int(time.time()) if issued_at is None else issued_at
    signature = identity_profile_signature(
        secret=secret or tenant.identity_secret,
        external_id=external_id,
        issued_at=issued,
        email="",
        name="Maria",
    )
    return {"external_id": external_id, "issued_at": issued, "signature": signature, "name": "Maria"}


def _say(tenant: Any, token: str, text: str) -> Message:
    claims = session_token_read(token, tenant=tenant)
    assert claims is not None
    return services.message_receive(tenant=tenant, claims=claims, client_msg_id=text, text=text).message


def test_an_allowed_origin_gets_an_anonymous_session_with_cors_for_that_origin_only(kb_tenant):
    response = _post({"widget_key": kb_tenant.widget_key})
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    body = response.json()
    assert body["verified"] is False
    assert body["identity"] == {"status": "anonymous"}
    assert body["websocket_path"] == f"/ws/widget/?key={kb_tenant.widget_key}"
    assert body["limits"] == {"max_message_chars": 4000, "voice": {"enabled": True, "max_seconds": 60}}
    assert body["tenant"] == {"name": "Nimbus Telecom"}
    assert Conversation.objects.count() == 0  # created by the first message, not by page views


@pytest.mark.parametrize(
    ("origin", "status", "code"),
    [
        ("https://evil.example", 403, "forbidden"),
        ("https://shop.example:8443", 403, "forbidden"),
        ("http://shop.example", 403, "forbidden"),
        (None, 403, "forbidden"),
    ],
)
def test_other_origins_are_refused_without_a_cors_header(kb_tenant, origin, status, code):
    response = _post({"widget_key": kb_tenant.widget_key}, origin=origin)
    assert response.status_code == status
    assert response.json()["code"] == code
    assert "Access-Control-Allow-Origin" not in response


def test_an_unknown_widget_key_is_not_found(kb_tenant):
    response = _post({"widget_key": "wk_unknown"})
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_a_preflight_is_answered_only_for_an_origin_some_tenant_allows(kb_tenant):
    allowed = Client().options(SESSION, HTTP_ORIGIN=ORIGIN, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert allowed.status_code == 204
    assert allowed["Access-Control-Allow-Origin"] == ORIGIN
    assert "Authorization" in allowed["Access-Control-Allow-Headers"]
    refused = Client().options(SESSION, HTTP_ORIGIN="https://evil.example")
    assert "Access-Control-Allow-Origin" not in refused


def test_a_token_continues_the_same_conversation_and_a_tampered_one_starts_anew(kb_tenant):
    first = _post({"widget_key": kb_tenant.widget_key}).json()
    again = _post({"widget_key": kb_tenant.widget_key, "token": first["token"]}).json()
    assert again["conversation_id"] == first["conversation_id"]
    tampered = first["token"][:-2] + ("AA" if not first["token"].endswith("AA") else "BB")
    fresh = _post({"widget_key": kb_tenant.widget_key, "token": tampered}).json()
    assert fresh["conversation_id"] != first["conversation_id"]


def test_a_token_of_another_tenant_is_not_accepted(kb_tenant, make_tenant):
    other = make_tenant(origins=[ORIGIN])
    theirs = _post({"widget_key": other.widget_key}).json()
    ours = _post({"widget_key": kb_tenant.widget_key, "token": theirs["token"]}).json()
    assert ours["conversation_id"] != theirs["conversation_id"]
    assert session_token_read(theirs["token"], tenant=kb_tenant) is None


def test_an_expired_token_starts_a_new_session(kb_tenant, settings):
    first = _post({"widget_key": kb_tenant.widget_key}).json()
    settings.WIDGET_SESSION_MAX_AGE = -1
    assert session_token_read(first["token"], tenant=kb_tenant) is None


def test_a_valid_signature_verifies_the_customer_in_a_conversation_of_her_own(kb_tenant):
    anonymous = _post({"widget_key": kb_tenant.widget_key}).json()
    asked = _say(kb_tenant, anonymous["token"], "Is roaming free?")
    verified = _post(
        {
            "widget_key": kb_tenant.widget_key,
            "token": anonymous["token"],
            "identity": _identity(kb_tenant, "c-1"),
        }
    ).json()
    assert verified["verified"] is True
    assert verified["identity"] == {"status": "verified"}
    assert verified["contact"] == {"external_id": "c-1", "name": "Maria"}
    # Whoever typed as a guest on this browser is not known to be her: their words stay out of her record.
    assert verified["conversation_id"] != anonymous["conversation_id"]
    guest = Conversation.objects.get(id=asked.conversation_id)
    assert guest.contact is None
    assert guest.visitor_ended_at is not None
    # Later page loads keep the verified session while the company keeps vouching.
    later = _post(
        {
            "widget_key": kb_tenant.widget_key,
            "token": verified["token"],
            "identity": _identity(kb_tenant, "c-1"),
        }
    ).json()
    assert later["conversation_id"] == verified["conversation_id"]


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        ("wrong_secret", "bad_signature"),
        ("other_users_signature", "bad_signature"),
        ("expired", "expired"),
        ("future", "issued_in_future"),
        ("garbage", "bad_signature"),
    ],
)
def test_a_forged_identity_is_treated_as_anonymous_and_never_touches_the_verified_contact(
    kb_tenant, forge, reason, caplog
):
    victim = accounts.contact_upsert(tenant=kb_tenant, external_id="victim", name="Victim")
    victim_session = _post(
        {"widget_key": kb_tenant.widget_key, "identity": _identity(kb_tenant, "victim")}
    ).json()
    _say(kb_tenant, victim_session["token"], "my private question")
    attacker = _post({"widget_key": kb_tenant.widget_key}).json()
    _say(kb_tenant, attacker["token"], "attacker's question")
    claim = {
        "wrong_secret": _identity(kb_tenant, "victim", secret="ids_guessed"),
        "other_users_signature": {**_identity(kb_tenant, "attacker-own-id"), "external_id": "victim"},
        "expired": _identity(kb_tenant, "victim", issued_at=int(time.time()) - 3 * 86400),
        "future": _identity(kb_tenant, "victim", issued_at=int(time.time()) + 3600),
        "garbage": {**_identity(kb_tenant, "victim"), "signature": "00" * 32},
    }[forge]
    before = Conversation.objects.filter(contact=victim).count()
    response = _post({"widget_key": kb_tenant.widget_key, "token": attacker["token"], "identity": claim})
    body = response.json()
    assert response.status_code == 200
    assert body["verified"] is False
    assert body["identity"] == {"status": "rejected", "reason": reason}
    assert body["contact"] is None
    assert body["conversation_id"] != victim_session["conversation_id"]
    assert Conversation.objects.filter(contact=victim).count() == before  # nothing merged into the victim
    assert Contact.objects.filter(tenant=kb_tenant).count() == 1
    assert all(
        "victim" not in r.getMessage() and claim["signature"] not in r.getMessage() for r in caplog.records
    )


def test_a_verified_session_without_identity_on_the_next_page_starts_over_anonymous(kb_tenant):
    verified = _post({"widget_key": kb_tenant.widget_key, "identity": _identity(kb_tenant, "c-2")}).json()
    _say(kb_tenant, verified["token"], "hello")
    logged_out = _post({"widget_key": kb_tenant.widget_key, "token": verified["token"]}).json()
    assert logged_out["verified"] is False
    assert logged_out["conversation_id"] != verified["conversation_id"]


def test_another_customers_valid_identity_never_continues_the_first_customers_conversation(kb_tenant):
    first = _post({"widget_key": kb_tenant.widget_key, "identity": _identity(kb_tenant, "c-3")}).json()
    _say(kb_tenant, first["token"], "first customer's message")
    second = _post(
        {"widget_key": kb_tenant.widget_key, "token": first["token"], "identity": _identity(kb_tenant, "c-4")}
    ).json()
    assert second["verified"] is True
    assert second["contact"]["external_id"] == "c-4"
    assert second["conversation_id"] != first["conversation_id"]


def test_a_verified_customer_resumes_their_open_conversation_on_another_device(kb_tenant):
    laptop = _post({"widget_key": kb_tenant.widget_key, "identity": _identity(kb_tenant, "c-5")}).json()
    _say(kb_tenant, laptop["token"], "started on my laptop")
    phone = _post({"widget_key": kb_tenant.widget_key, "identity": _identity(kb_tenant, "c-5")}).json()
    assert phone["conversation_id"] == laptop["conversation_id"]


def test_malformed_identity_is_a_clear_error(kb_tenant):
    response = _post({"widget_key": kb_tenant.widget_key, "identity": {"external_id": "x"}})
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


def test_sessions_per_ip_are_rate_limited_with_retry_after(kb_tenant, settings):
    settings.WIDGET_RATE_SESSIONS_IP = 2
    codes = [_post({"widget_key": kb_tenant.widget_key}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    limited = _post({"widget_key": kb_tenant.widget_key})
    assert limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert limited["Access-Control-Allow-Origin"] == ORIGIN  # the widget can read why


def test_events_and_passages_need_the_session_token_and_stay_in_its_tenant(kb_tenant, make_tenant):
    session = _post({"widget_key": kb_tenant.widget_key}).json()
    _say(kb_tenant, session["token"], "Is roaming free?")
    client = Client()
    auth = {"Authorization": f"Bearer {session['token']}", "Origin": ORIGIN}
    events = client.get("/api/widget/v1/events?after=0", headers=auth).json()
    assert [e["type"] for e in events["events"]] == ["message.created"]
    assert events["events"][0]["message"]["text"] == "Is roaming free?"
    assert events["last_seq"] == 1
    assert client.get("/api/widget/v1/events?after=1", headers=auth).json()["events"] == []
    assert client.get("/api/widget/v1/events?after=-1", headers=auth).status_code == 400
    assert client.get("/api/widget/v1/events", headers={"Origin": ORIGIN}).status_code == 401
    assert (
        client.get("/api/widget/v1/events", headers={**auth, "Origin": "https://evil.example"}).status_code
        == 403
    )
    from apps.knowledge.models import Chunk

    chunk = Chunk.objects.filter(tenant=kb_tenant, live=True).first()
    assert chunk is not None
    passage = client.get(f"/api/widget/v1/passages/{chunk.id}", headers=auth).json()
    assert passage["text"] == chunk.text
    assert passage["title"] == chunk.document.title
    other = make_tenant(origins=[ORIGIN])
    from tests.conversations.conftest import publish

    publish(
        other, b"# Secret\n\n## Internal\n\nOther tenant's policy text about secret discounts.\n", "secret.md"
    )
    foreign = Chunk.objects.filter(tenant=other, live=True).first()
    assert foreign is not None
    assert client.get(f"/api/widget/v1/passages/{foreign.id}", headers=auth).status_code == 404
    assert client.get("/api/widget/v1/passages/not-a-uuid", headers=auth).status_code == 404
