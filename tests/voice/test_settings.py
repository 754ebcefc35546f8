"""A company admin turns voice on or off and chooses whether recordings are kept, in the "Voice messages"
section of the settings page; the widget session tells the widget whether to offer the microphone."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.voice.models import VoiceSettings
from apps.voice.selectors import voice_settings_for
from apps.voice.services import voice_settings_update
from tests.voice.conftest import ORIGIN, SESSION

pytestmark = pytest.mark.django_db


def _settings_row(tenant: Any) -> tuple[bool, bool]:
    found = voice_settings_for(tenant=tenant)
    return found.voice_enabled, found.voice_keep_audio


def _voice_limits(tenant: Any) -> Any:
    response = Client().post(
        SESSION,
        {"widget_key": tenant.widget_key},
        content_type="application/json",
        headers={"Origin": ORIGIN},
    )
    assert response.status_code == 200, response.content
    return response.json()["limits"]


def test_the_section_shows_the_defaults_with_a_form_for_admins(tenant_a: Any, client_as: Any) -> None:
    html = client_as(tenant_a.admin).get(f"/staff/{tenant_a.slug}/settings/").content.decode()
    assert '<h2 id="voice-h">Voice messages</h2>' in html
    assert (
        '<dd id="voice-enabled">Yes: the chat widget shows a microphone button; each recording (up to 60'
        in html
    )
    assert '<dd id="voice-audio">Deleted as soon as transcription ends; only the words are kept.</dd>' in html
    assert f'action="/staff/{tenant_a.slug}/voice/"' in html
    assert '<input type="checkbox" id="voice_enabled" name="voice_enabled" checked>' in html
    assert 'id="voice_audio_delete" name="voice_audio" value="delete" checked>' in html
    assert 'id="voice_audio_keep" name="voice_audio" value="keep">' in html
    assert '<label class="choice" for="voice_audio_keep">' in html
    assert "a customer's voice is personal data" in html


def test_an_admin_turns_voice_off_and_keeps_audio(tenant_a: Any, client_as: Any) -> None:
    page = client_as(tenant_a.admin).post(
        f"/staff/{tenant_a.slug}/voice/", {"voice_audio": "keep"}, follow=True
    )
    assert page.status_code == 200
    html = page.content.decode()
    assert "Voice settings are saved." in html
    assert _settings_row(tenant_a.tenant) == (False, True)
    assert (
        '<dd id="voice-enabled">No: the chat widget shows no microphone, and recordings are refused.</dd>'
        in html
    )
    assert (
        '<dd id="voice-audio">Kept after transcription, for as long as the data retention settings keep '
        "audio (forever when that is empty).</dd>"
    ) in html
    assert 'id="voice_audio_keep" name="voice_audio" value="keep" checked>' in html

    # And back on, deleting recordings again.
    client_as(tenant_a.admin).post(
        f"/staff/{tenant_a.slug}/voice/", {"voice_enabled": "on", "voice_audio": "delete"}
    )
    assert _settings_row(tenant_a.tenant) == (True, False)


@pytest.mark.parametrize("data", [{"voice_enabled": "on"}, {"voice_enabled": "on", "voice_audio": "forever"}])
def test_a_missing_or_unknown_retention_choice_changes_nothing(
    tenant_a: Any, client_as: Any, data: dict[str, str]
) -> None:
    voice_settings_update(tenant=tenant_a.tenant, voice_enabled=False, voice_keep_audio=True)
    page = client_as(tenant_a.admin).post(f"/staff/{tenant_a.slug}/voice/", data, follow=True)
    assert "Choose whether recordings are kept or deleted once they are transcribed." in page.content.decode()
    assert _settings_row(tenant_a.tenant) == (False, True)


def test_agents_and_editors_cannot_change_them_and_see_no_form(tenant_a: Any, client_as: Any) -> None:
    for user in (tenant_a.agent, tenant_a.editor):
        page = client_as(user).post(f"/staff/{tenant_a.slug}/voice/", {"voice_audio": "keep"})
        assert page.status_code == 403
    assert not VoiceSettings.objects.filter(tenant=tenant_a.tenant).exists()
    html = client_as(tenant_a.agent).get(f"/staff/{tenant_a.slug}/settings/").content.decode()
    assert '<dd id="voice-enabled">Yes:' in html
    assert "/voice/" not in html


def test_other_companies_and_strangers_cannot_change_them(
    tenant_a: Any, tenant_b: Any, client_as: Any
) -> None:
    assert (
        client_as(tenant_b.admin).post(f"/staff/{tenant_a.slug}/voice/", {"voice_audio": "keep"}).status_code
        == 404
    )
    anonymous = client_as(None).post(f"/staff/{tenant_a.slug}/voice/", {"voice_audio": "keep"})
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/")
    assert not VoiceSettings.objects.filter(tenant=tenant_a.tenant).exists()


def test_the_form_needs_the_csrf_token(tenant_a: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(tenant_a.admin)
    assert client.post(f"/staff/{tenant_a.slug}/voice/", {"voice_audio": "keep"}).status_code == 403
    assert not VoiceSettings.objects.filter(tenant=tenant_a.tenant).exists()


def test_the_widget_session_says_whether_voice_is_on(voice_tenant: Any) -> None:
    assert _voice_limits(voice_tenant)["voice"] == {"enabled": True, "max_seconds": 60}
    voice_settings_update(tenant=voice_tenant, voice_enabled=False)
    assert _voice_limits(voice_tenant) == {
        "max_message_chars": 4000,
        "voice": {"enabled": False, "max_seconds": 60},
    }
