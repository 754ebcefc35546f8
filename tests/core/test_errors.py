"""The error contract over HTTP: stable codes, a sentence, `retryable`; JSON under /api/."""

from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_unknown_api_url_is_a_json_not_found(client):
    response = client.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json() == {
        "code": "not_found",
        "message": "That doesn't exist, or you can't see it.",
        "retryable": False,
    }


@pytest.mark.django_db
def test_unknown_page_is_a_page(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert b"That doesn&#x27;t exist, or you can&#x27;t see it." in response.content


@pytest.mark.django_db
def test_anonymous_api_call_is_401_unauthorized(client):
    response = client.get("/api/v1/tenants/")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert response.json()["retryable"] is False


@pytest.mark.django_db
def test_openapi_schema_is_served(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "Helpdesk API"
    assert "/api/v1/tenants/{slug}/" in schema["paths"]


def test_root_redirects_to_the_staff_pages(client):
    response = client.get("/")
    assert (response.status_code, response["Location"]) == (302, "/staff/")
