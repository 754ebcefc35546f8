from django.urls import path

from apps.voice import apis, views

widget = "api/widget/v1"

urlpatterns = [
    path(f"{widget}/voice", apis.VoiceUploadApi.as_view(), name="widget-voice"),
    path(f"{widget}/voice/<str:clip_id>", apis.VoiceClipApi.as_view(), name="widget-voice-clip"),
    path("staff/<slug:slug>/voice/", views.voice_settings_save, name="voice-settings"),
]
