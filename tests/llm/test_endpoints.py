"""Registering model endpoints (apps/llm/endpoints.py): the probe against a real HTTP server on loopback (the
scriptable fake), each refusal in one sentence with nothing stored, the sealed key, the audit rows, and the
operator's registration through the Django admin."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from apps.accounts.models import Role
from apps.audit.models import AuditEvent
from apps.core.errors import BadRequest, Forbidden, NotFound
from apps.llm.endpoint_selectors import access_endpoint, endpoints_for
from apps.llm.endpoints import endpoint_api_key, endpoint_delete, endpoint_register, endpoint_update
from apps.llm.models import Canary, ModelEndpoint, TenantModel
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.django_db

KEY = "sk-right-3f9c2a"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=["good-model", "other-small"]) as fake:
        fake.api_key = KEY
        fake.hang_seconds = 5.0
        yield fake


def register(tenant_a: Any, server: FakeOpenAI, **overrides: Any) -> ModelEndpoint:
    arguments: dict[str, Any] = {
        "tenant": tenant_a.tenant,
        "name": "Candidate",
        "base_url": server.base_url,
        "model": "good-model",
        "api_key": KEY,
        "style": "auto",
        "actor": tenant_a.admin,
        **overrides,
    }
    return endpoint_register(**arguments)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stored_keys() -> list[str]:
    """The key column as the database holds it."""
    return list(ModelEndpoint.objects.values_list("api_key_sealed", flat=True))


def test_a_good_endpoint_is_registered_with_its_key_sealed_and_audited(tenant_a, server):
    endpoint = register(tenant_a, server, name="  Candidate  ", base_url=server.base_url + "/")

    assert (endpoint.tenant, endpoint.name, endpoint.base_url) == (
        tenant_a.tenant,
        "Candidate",
        server.base_url,
    )
    assert (endpoint.model, endpoint.style, endpoint.created_by) == ("good-model", "auto", tenant_a.admin)
    assert endpoint.checked_at is not None
    report = endpoint.check_report
    assert report["models"] == ["good-model", "other-small"]
    # The fake streams a role chunk, one chunk per word up to the 8 tokens asked for, a finish chunk.
    assert report["chunks"] == 1 + 8 + 1
    assert isinstance(report["first_token_ms"], float)
    assert 0 < report["first_token_ms"] < 10_000
    # The probe asked for a stream, with the key, for the model registered.
    [chat] = server.chat_requests
    assert (chat["model"], chat["stream"], chat["max_tokens"]) == ("good-model", True, 8)

    [column] = stored_keys()
    assert KEY not in column
    assert column.startswith("sealed:v1:")
    assert endpoint_api_key(ModelEndpoint.objects.get()) == KEY

    [row] = AuditEvent.objects.filter(action="model_endpoint.register")
    assert (row.tenant_id, row.actor_id, row.target_id) == (
        tenant_a.tenant.id,
        tenant_a.admin.id,
        str(endpoint.id),
    )
    assert (row.data["name"], row.data["model"]) == ("Candidate", "good-model")
    # The host is kept; audit rows redact an IP address as they would in any text.
    assert row.data["host"] == f"<IP_ADDRESS>:{server.base_url.split(':')[2].split('/')[0]}"
    assert KEY not in json.dumps(row.data)


def refusal_cases() -> list[tuple[str, Any, str]]:
    """(id, how to break it, the sentence with {base} for the base URL)."""
    return [
        (
            "not_openai",
            {"behaviour": "not_openai"},
            "{base}/models does not answer in the OpenAI format (a JSON "
            "list of models), so this is not an OpenAI-compatible base URL.",
        ),
        (
            "no_stream",
            {"behaviour": "no_stream"},
            "{base} does not stream: it answered a streamed test chat with "
            "one JSON reply instead of server-sent events.",
        ),
        (
            "model_not_served",
            {"model": "gpt-9"},
            '{base} does not serve the model "gpt-9" (it serves: good-model, other-small).',
        ),
        ("wrong_key", {"api_key": "sk-wrong"}, "{base} rejected the API key (HTTP 401)."),
        ("no_key", {"api_key": ""}, "{base} rejected the API key (HTTP 401)."),
        (
            "not_the_v1_root",
            {"strip_v1": True},
            "{base}/models answered HTTP 404 instead of a list of models, so "
            "this is not an OpenAI-compatible base URL (it usually ends in /v1).",
        ),
        (
            "server_error",
            {"behaviour": "error_503"},
            "{base} answered HTTP 503 to GET /models; try again once it is ready.",
        ),
        # Models listed as they should be, then a chat that is not OpenAI's.
        (
            "chat_not_openai",
            {"chat": "not_openai"},
            "{base} answered a test chat in another format than OpenAI's chat completions.",
        ),
        (
            "chat_events_not_json",
            {"chat": "malformed"},
            "{base} answered a test chat in another format than OpenAI's chat completions.",
        ),
        (
            "chat_refused",
            {"chat": "error_400"},
            '{base} refused a test chat with the model "good-model" (HTTP 400).',
        ),
    ]


@pytest.mark.parametrize(
    ("breakage", "sentence"), [c[1:] for c in refusal_cases()], ids=[c[0] for c in refusal_cases()]
)
def test_each_refusal_is_one_sentence_and_stores_nothing(tenant_a, server, breakage, sentence):
    server.behaviour = breakage.get("behaviour", "ok")
    server.script([breakage["chat"]] if "chat" in breakage else [])
    base = server.base_url.removesuffix("/v1") if breakage.get("strip_v1") else server.base_url
    overrides = {k: v for k, v in breakage.items() if k in ("model", "api_key")}

    with pytest.raises(BadRequest) as refused:
        register(tenant_a, server, base_url=base, **overrides)

    assert refused.value.message == sentence.format(base=base)
    assert ModelEndpoint.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="model_endpoint.").exists()


def test_an_unreachable_port_is_refused(tenant_a, server):
    base = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(BadRequest) as refused:
        register(tenant_a, server, base_url=base)
    assert refused.value.message == f"Could not reach {base}: the connection was refused."
    assert ModelEndpoint.objects.count() == 0


def test_a_server_that_never_answers_is_refused_after_the_timeout(tenant_a, server, settings):
    settings.MODEL_ENDPOINT_PROBE_TIMEOUT_SECONDS = 0.5
    server.behaviour = "hang"
    with pytest.raises(BadRequest) as refused:
        register(tenant_a, server)
    assert (
        refused.value.message == f"Could not reach {server.base_url}: it did not answer within 0.5 seconds."
    )
    assert ModelEndpoint.objects.count() == 0


@pytest.mark.parametrize("company", [True, False])
def test_a_name_that_does_not_resolve_is_refused(tenant_a, server, company):
    # A company's address is resolved by the host check first; the operator's by the HTTP client.
    tenant = tenant_a.tenant if company else None
    with pytest.raises(BadRequest) as refused:
        register(tenant_a, server, tenant=tenant, actor=None, base_url="http://no-such-host.invalid/v1")
    assert (
        refused.value.message
        == "Could not reach http://no-such-host.invalid/v1: its host name does not resolve."
    )
    assert ModelEndpoint.objects.count() == 0


def test_a_company_may_not_point_the_desk_at_link_local_addresses(tenant_a, server):
    with pytest.raises(BadRequest) as refused:
        register(tenant_a, server, base_url="http://169.254.169.254/v1")
    assert refused.value.message == (
        "169.254.169.254 is a link-local, multicast or reserved address, which a company's endpoint may not "
        "use."
    )
    assert ModelEndpoint.objects.count() == 0


@pytest.mark.parametrize(
    ("overrides", "sentence"),
    [
        ({"name": "  "}, "Give the endpoint a name of 1 to 100 characters."),
        ({"model": ""}, "Give the model's name as the server lists it, 1 to 200 characters."),
        ({"style": "verbose"}, "The answer style must be auto, quote or compose."),
        ({"api_key": "sk with space"}, "An API key is up to 1000 visible ASCII characters, without spaces."),
        (
            {"base_url": "ftp://models.example/v1"},
            "The base URL must be an http or https address, such as https://models.example/v1.",
        ),
        (
            {"base_url": "http://user:pw@127.0.0.1/v1"},
            "The base URL must not carry a user name, a password, a query or a fragment.",
        ),
    ],
)
def test_bad_fields_are_refused_before_any_call(tenant_a, server, overrides, sentence):
    with pytest.raises(BadRequest) as refused:
        register(tenant_a, server, **overrides)
    assert refused.value.message == sentence
    assert server.requests == []
    assert ModelEndpoint.objects.count() == 0


def test_the_same_model_at_the_same_address_is_registered_once(tenant_a, server):
    register(tenant_a, server)
    calls = len(server.requests)
    with pytest.raises(BadRequest) as refused:
        register(tenant_a, server, name="Again", base_url=server.base_url + "/")
    assert refused.value.message == f"good-model at {server.base_url} is already registered here."
    assert len(server.requests) == calls  # refused before probing
    assert ModelEndpoint.objects.count() == 1


def test_only_the_companys_admins_register_and_strangers_learn_nothing(tenant_a, tenant_b, server):
    for actor, error in (
        (tenant_a.agent, Forbidden),
        (tenant_a.editor, Forbidden),
        (tenant_b.admin, NotFound),
    ):
        with pytest.raises(error):
            register(tenant_a, server, actor=actor)
    assert server.requests == []
    assert ModelEndpoint.objects.count() == 0


def test_a_company_sees_its_own_endpoints_and_the_operators(tenant_a, tenant_b, server):
    own = register(tenant_a, server)
    operator = register(tenant_a, server, tenant=None, actor=None, name="Shared", model="other-small")
    theirs = register(tenant_b, server, actor=tenant_b.admin, name="Theirs")

    assert operator.tenant_id is None
    assert set(endpoints_for(tenant_a.tenant)) == {own, operator}
    assert access_endpoint(tenant=tenant_a.tenant, endpoint_id=operator.id) == operator
    for missing in (theirs.id, "not-a-uuid"):
        with pytest.raises(NotFound):
            access_endpoint(tenant=tenant_a.tenant, endpoint_id=missing)
    [row] = AuditEvent.objects.filter(action="model_endpoint.register", tenant__isnull=True)
    assert (row.actor_kind, row.data["operator"]) == ("system", True)


def test_update_renames_and_a_new_key_is_probed_before_it_is_sealed(tenant_a, server):
    endpoint = register(tenant_a, server)
    endpoint = endpoint_update(endpoint=endpoint, actor=tenant_a.admin, name="Renamed", style="quote")
    assert (endpoint.name, endpoint.style) == ("Renamed", "quote")

    with pytest.raises(BadRequest) as refused:
        endpoint_update(endpoint=endpoint, actor=tenant_a.admin, api_key="sk-wrong")
    assert refused.value.message == f"{server.base_url} rejected the API key (HTTP 401)."
    assert endpoint_api_key(ModelEndpoint.objects.get()) == KEY

    server.api_key = "sk-rotated"
    endpoint_update(endpoint=endpoint, actor=tenant_a.admin, api_key="sk-rotated")
    assert endpoint_api_key(ModelEndpoint.objects.get()) == "sk-rotated"
    assert "sk-rotated" not in stored_keys()[0]

    # Saving it as it is writes no row.
    endpoint_update(endpoint=ModelEndpoint.objects.get(), actor=tenant_a.admin, name="Renamed")
    rows = AuditEvent.objects.filter(action="model_endpoint.update").order_by("seq")
    assert [row.data["fields"] for row in rows] == [["name", "style"], ["api_key"]]
    assert not any("sk-" in json.dumps(row.data) for row in rows)


def test_delete_is_refused_while_in_use_and_audited_when_done(tenant_a, tenant_b, server):
    endpoint = register(tenant_a, server)
    TenantModel.objects.create(tenant=tenant_a.tenant, endpoint=endpoint)
    with pytest.raises(BadRequest) as refused:
        endpoint_delete(tenant=tenant_a.tenant, endpoint=endpoint, actor=tenant_a.admin)
    assert refused.value.message == "Candidate answers this company's conversations now; switch models first."
    TenantModel.objects.filter(tenant=tenant_a.tenant).update(endpoint=None)

    canary = Canary.objects.create(
        tenant=tenant_a.tenant, candidate=endpoint, share=20, status=Canary.Status.RUNNING
    )
    with pytest.raises(BadRequest) as refused:
        endpoint_delete(tenant=tenant_a.tenant, endpoint=endpoint, actor=tenant_a.admin)
    assert refused.value.message == "Candidate is in a canary now; promote or stop the canary first."
    canary.status = Canary.Status.CANCELLED
    canary.save(update_fields=["status"])
    with pytest.raises(BadRequest) as refused:
        endpoint_delete(tenant=tenant_a.tenant, endpoint=endpoint, actor=tenant_a.admin)
    assert refused.value.message == "Candidate is kept because a past canary's comparison refers to it."
    canary.delete()

    for actor, error in ((tenant_a.agent, Forbidden), (tenant_b.admin, NotFound)):
        with pytest.raises(error):
            endpoint_delete(tenant=tenant_a.tenant, endpoint=endpoint, actor=actor)
    with pytest.raises(NotFound):  # another company's endpoint, whoever asks
        endpoint_delete(tenant=tenant_b.tenant, endpoint=endpoint, actor=tenant_b.admin)
    assert ModelEndpoint.objects.count() == 1
    assert not AuditEvent.objects.filter(action="model_endpoint.delete").exists()

    endpoint_id = endpoint.id
    endpoint_delete(tenant=tenant_a.tenant, endpoint=endpoint, actor=tenant_a.admin)
    assert ModelEndpoint.objects.count() == 0
    [row] = AuditEvent.objects.filter(action="model_endpoint.delete")
    assert (row.tenant_id, row.target_id, row.data["model"]) == (
        tenant_a.tenant.id,
        str(endpoint_id),
        "good-model",
    )


def test_a_company_cannot_remove_the_operators_endpoint(tenant_a, server):
    operator = register(tenant_a, server, tenant=None, actor=None, name="Shared")
    with pytest.raises(Forbidden):
        endpoint_delete(tenant=tenant_a.tenant, endpoint=operator, actor=tenant_a.admin)
    assert ModelEndpoint.objects.filter(id=operator.id).exists()


# The operator's registration, through the Django admin.


@pytest.fixture
def operator_client(make_user: Any) -> Client:
    user = make_user(username="operator")
    user.is_staff = user.is_superuser = True
    user.save(update_fields=["is_staff", "is_superuser"])
    client = Client()
    client.force_login(user)
    return client


def admin_form(server: FakeOpenAI, **overrides: str) -> dict[str, str]:
    return {
        "name": "Operator's model",
        "base_url": server.base_url,
        "model": "good-model",
        "style": "compose",
        "api_key": KEY,
        **overrides,
    }


def test_the_operator_registers_an_endpoint_in_the_admin_with_the_probe_and_the_seal(operator_client, server):
    response = operator_client.post("/admin/llm/modelendpoint/add/", admin_form(server))
    assert response.status_code == 302, response.content.decode()[:2000]

    endpoint = ModelEndpoint.objects.get()
    assert (endpoint.tenant_id, endpoint.name, endpoint.style) == (None, "Operator's model", "compose")
    assert endpoint.check_report["models"] == ["good-model", "other-small"]
    assert KEY not in stored_keys()[0]
    assert endpoint_api_key(endpoint) == KEY
    [row] = AuditEvent.objects.filter(action="model_endpoint.register")
    assert (row.tenant_id, row.actor_label) == (None, "operator")

    page = operator_client.get(f"/admin/llm/modelendpoint/{endpoint.id}/change/").content.decode()
    assert "Operator&#x27;s model" in page
    assert KEY not in page
    assert endpoint.api_key_sealed not in page

    # A change without a key keeps the stored one and probes nothing.
    calls = len(server.requests)
    response = operator_client.post(
        f"/admin/llm/modelendpoint/{endpoint.id}/change/", {"name": "Renamed", "style": "auto", "api_key": ""}
    )
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.name, endpoint.style, endpoint_api_key(endpoint)) == ("Renamed", "auto", KEY)
    assert len(server.requests) == calls


def test_the_admin_shows_a_refusal_on_the_form_and_stores_nothing(operator_client, server):
    server.behaviour = "no_stream"
    response = operator_client.post("/admin/llm/modelendpoint/add/", admin_form(server))
    assert response.status_code == 200
    page = response.content.decode()
    assert "does not stream: it answered a streamed test chat with one JSON reply" in page
    assert KEY not in page
    assert ModelEndpoint.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="model_endpoint.").exists()


def test_the_admin_lists_only_the_operators_endpoints(operator_client, tenant_a, server):
    register(tenant_a, server, name="Company's own")
    operator = register(tenant_a, server, tenant=None, actor=None, name="Shared one", model="other-small")
    page = operator_client.get("/admin/llm/modelendpoint/").content.decode()
    assert "Shared one" in page
    assert "Company&#x27;s own" not in page
    assert operator_client.get(f"/admin/llm/modelendpoint/{operator.id}/change/").status_code == 200


def test_a_membership_role_is_not_an_operator_permission(tenant_a, server, make_user):
    staff = make_user(tenant_a.tenant, roles=[Role.ADMIN], username="company_admin_only")
    with pytest.raises(Forbidden):
        register(tenant_a, server, tenant=None, actor=staff)
    assert ModelEndpoint.objects.count() == 0
