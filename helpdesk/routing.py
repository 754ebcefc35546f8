"""Websocket routes of every app, in one list."""

from django.urls import path

from apps.accounts.consumers import StaffConsumer

websocket_urlpatterns = [
    path("ws/staff/<slug:tenant_slug>/", StaffConsumer.as_asgi()),
]
