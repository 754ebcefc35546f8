"""Content-Security-Policy on every page (strict for staff pages; the widget's demo host page may inline
styles), and HSTS with an HTTPS redirect in production settings only."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from apps.accounts import services
from apps.accounts.models import Role
from tests.production_env import PRODUCTION_ENV, PRODUCTION_SECRET_KEY

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
STRICT = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "connect-src": "'self' ws://testserver",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def policy(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    directives = [part.strip().split(" ", 1) for part in header.split(";") if part.strip()]
    return {name: value for name, value in directives}


def test_the_sign_in_page_has_the_strict_policy() -> None:
    response = Client().get("/accounts/login/")

    assert response.status_code == 200
    assert policy(response) == STRICT


def test_a_signed_in_staff_page_has_the_strict_policy(make_tenant, make_user) -> None:
    tenant = make_tenant(slug="acme")
    client = Client()
    client.force_login(make_user(tenant, roles=[Role.ADMIN]))

    for url in ("/staff/", "/staff/acme/settings/", "/staff/acme/knowledge/", "/staff/acme/reports/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert policy(response) == STRICT, url


def test_over_https_the_websocket_origin_is_wss(make_tenant, make_user) -> None:
    response = Client().get("/accounts/login/", secure=True)

    assert policy(response)["connect-src"] == "'self' wss://testserver"


def test_the_admin_and_error_pages_have_the_strict_policy(make_user) -> None:
    assert policy(Client().get("/admin/login/")) == STRICT
    assert policy(Client().get("/no/such/page/")) == STRICT


def test_the_widget_demo_host_page_may_inline_styles_but_not_scripts() -> None:
    services.tenant_create(slug="nimbus", name="Nimbus Telecom", origins=["http://testserver"])

    response = Client().get("/demo/")

    assert response.status_code == 200
    assert policy(response) == {**STRICT, "style-src": "'self' 'unsafe-inline'"}


def test_staff_templates_need_no_inline_script_style_or_handler() -> None:
    """What the strict policy would block: inline <script> or <style>, style="", on*="" handlers, and
    javascript: URLs. Only the widget's demo host page (its own policy) may inline styles."""
    offenders = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        text = template.read_text()
        name = str(template.relative_to(TEMPLATES))
        checks = {
            "inline script": re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text),
            "style attribute": re.search(r"\sstyle\s*=", text),
            "event handler": re.search(r"\son[a-z]+\s*=", text),
            "javascript: URL": re.search(r"javascript:", text, re.IGNORECASE),
            "style element": None if name == "widget/demo_host.html" else re.search(r"<style[\s>]", text),
        }
        offenders += [f"{name}: {what}" for what, found in checks.items() if found]
    assert offenders == []


# ---- HSTS and the HTTPS redirect ---------------------------------------------------------------------------

PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "helpdesk.settings.production",
    "DJANGO_SECRET_KEY": PRODUCTION_SECRET_KEY,
    **PRODUCTION_ENV,
}
# Sets Django up with the settings module the environment names and asks the sign-in page, which needs
# neither the database nor Redis for a GET, over https and over http.
PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
host = settings.ALLOWED_HOSTS[0]
secure = Client().get("/accounts/login/", secure=True, HTTP_HOST=host)
plain = Client().get("/accounts/login/", HTTP_HOST=host)
print(json.dumps({
    "hsts": secure.headers.get("Strict-Transport-Security"),
    "secure_status": secure.status_code,
    "plain_status": plain.status_code,
    "plain_location": plain.headers.get("Location"),
    "plain_hsts": plain.headers.get("Strict-Transport-Security"),
    "redirect_exempt": settings.SECURE_REDIRECT_EXEMPT,
}))
"""


def probe(**env: str) -> dict[str, object]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    environ.update(env)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_sends_hsts_over_https_and_redirects_plain_http() -> None:
    seen = probe(**PRODUCTION)

    assert seen == {
        "hsts": "max-age=31536000",
        "secure_status": 200,
        "plain_status": 301,
        "plain_location": "https://support.example.com/accounts/login/",
        "plain_hsts": None,
        "redirect_exempt": [r"^healthz$", r"^metrics$"],
    }


def test_production_hsts_subdomains_preload_and_the_redirect_follow_the_environment() -> None:
    seen = probe(
        **PRODUCTION,
        DJANGO_SECURE_HSTS_SECONDS="600",
        DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        DJANGO_SECURE_HSTS_PRELOAD="true",
        DJANGO_SECURE_SSL_REDIRECT="false",
    )

    assert seen["hsts"] == "max-age=600; includeSubDomains; preload"
    assert (seen["plain_status"], seen["plain_location"]) == (200, None)


def test_local_settings_serve_plain_http_without_hsts(tmp_path) -> None:
    seen = probe(DJANGO_SETTINGS_MODULE="helpdesk.settings.local", HELPDESK_VAR_DIR=str(tmp_path))

    assert (seen["hsts"], seen["plain_status"], seen["plain_location"]) == (None, 200, None)
