"""Websocket routes of every app, in one list, each with the checks its audience needs.

Staff sockets carry session cookies: they must come from our own pages (AllowedHostsOriginValidator) and
are authenticated by the session. Widget sockets come from customers' websites: the consumer checks the
Origin against the allowed origins of the tenant whose widget key it was given, and uses no cookies.

Every route is inside DatabaseOutageGuard: while the database is down, a socket gets `temporarily_unavailable`
and close 1013 (reconnect shortly), including when the session lookup of AuthMiddlewareStack is what fails.
"""

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from apps.accounts.consumers import StaffConsumer
from apps.conversations.consumers import WidgetConsumer
from apps.core.outage import database_outage_guarded
from apps.handoff.consumers import ConsoleConsumer

websocket_urlpatterns = [
    path(
        "ws/staff/<slug:tenant_slug>/",
        AllowedHostsOriginValidator(database_outage_guarded(AuthMiddlewareStack(StaffConsumer.as_asgi()))),
    ),
    path(
        "ws/console/<slug:tenant_slug>/",
        AllowedHostsOriginValidator(database_outage_guarded(AuthMiddlewareStack(ConsoleConsumer.as_asgi()))),
    ),
    path("ws/widget/", database_outage_guarded(WidgetConsumer.as_asgi())),
]
