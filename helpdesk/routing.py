"""Websocket routes of every app, in one list, each with the checks its audience needs.

Staff sockets carry session cookies: they must come from our own pages (AllowedHostsOriginValidator) and
are authenticated by the session. Widget sockets come from customers' websites: the consumer checks the
Origin against the allowed origins of the tenant whose widget key it was given, and uses no cookies.
"""

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from apps.accounts.consumers import StaffConsumer
from apps.conversations.consumers import WidgetConsumer
from apps.handoff.consumers import ConsoleConsumer

websocket_urlpatterns = [
    path(
        "ws/staff/<slug:tenant_slug>/",
        AllowedHostsOriginValidator(AuthMiddlewareStack(StaffConsumer.as_asgi())),
    ),
    path(
        "ws/console/<slug:tenant_slug>/",
        AllowedHostsOriginValidator(AuthMiddlewareStack(ConsoleConsumer.as_asgi())),
    ),
    path("ws/widget/", WidgetConsumer.as_asgi()),
]
