"""ASGI entry point: HTTP through Django, websockets through Channels (served by Daphne)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings.local")

from apps.core.tracing import tracing_setup

# Before Django builds its middleware: the Django instrumentation adds its own (tracing.md).
tracing_setup()

# Django must be set up before anything that imports models.
django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from apps.core.clientip import ClientAddressMiddleware  # noqa: E402
from apps.guardrails.pii import pii_warm_up  # noqa: E402
from apps.llm.embeddings import warm_up as warm_up_embeddings  # noqa: E402
from helpdesk import daphne_close_codes  # noqa: E402
from helpdesk.routing import websocket_urlpatterns  # noqa: E402

# Daphne delivers 1008/1009/1011/1013 to the client and refuses huge frames unread (see the module).
daphne_close_codes.install()

# Web processes embed and redact every customer message: load both models now, in the background.
warm_up_embeddings()
pii_warm_up()

http_app = ASGIStaticFilesHandler(django_http) if settings.SERVE_STATIC else django_http

# The client address every per-IP limit keys on, from the trusted proxy hops only (apps/core/clientip.py).
application = ClientAddressMiddleware(
    ProtocolTypeRouter(
        {
            "http": http_app,
            "websocket": URLRouter(websocket_urlpatterns),
        }
    )
)
