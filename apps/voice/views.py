"""The "Voice messages" section of the company settings page posts here (admins only)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from apps.accounts.models import Role
from apps.accounts.selectors import access_tenant
from apps.voice.services import voice_settings_update

# The retention choice's radio values.
AUDIO_CHOICES = {"delete": False, "keep": True}


@login_required
@require_POST
def voice_settings_save(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, _ = access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
    audio = request.POST.get("voice_audio", "")
    if audio not in AUDIO_CHOICES:
        messages.error(request, "Choose whether recordings are kept or deleted once they are transcribed.")
        return redirect("tenant-settings", slug=tenant.slug)
    voice_settings_update(
        tenant=tenant,
        # An unticked box is not sent: the form always sends the retention choice, so absent means off.
        voice_enabled=request.POST.get("voice_enabled") == "on",
        voice_keep_audio=AUDIO_CHOICES[audio],
    )
    messages.success(request, "Voice settings are saved.")
    return redirect("tenant-settings", slug=tenant.slug)
