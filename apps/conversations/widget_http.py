"""The base of every widget HTTP endpoint (in this app and others, e.g. apps.voice): cross-origin,
token-authenticated, no cookies."""

from __future__ import annotations

from typing import Any

from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Tenant
from apps.accounts.selectors import origin_allowed_by_any_tenant
from apps.conversations import selectors
from apps.conversations.identity import SessionClaims, session_token_read, session_token_tenant
from apps.conversations.models import Conversation
from apps.conversations.widget import origin_allowed
from apps.core.errors import Forbidden, Unauthorized

CORS_MAX_AGE = "600"


class WidgetApi(APIView):
    """Cross-origin endpoints: CORS headers only for an origin the tenant allows (so another site's page
    can't read the answers), no cookies, identity from the session token."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []
    parser_classes = [JSONParser]
    cors_origin: str | None = None
    conversation: Conversation | None = None  # the session's, once `session()` has checked it

    def options(self, request: Request, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        # A preflight carries neither the widget key nor the token: it is answered for an origin that some
        # tenant allows; the request itself is then checked against its own tenant.
        origin = request.headers.get("Origin", "")
        response = Response(status=204)
        if origin and origin_allowed_by_any_tenant(origin=origin):
            response["Access-Control-Allow-Origin"] = origin
            response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response["Access-Control-Max-Age"] = CORS_MAX_AGE
            response["Vary"] = "Origin"
        return response

    def allow_origin(self, tenant: Tenant) -> None:
        origin = self.request.headers.get("Origin", "")
        if origin:
            if not origin_allowed(tenant=tenant, origin=origin):
                raise Forbidden("This website may not embed this chat widget.")
            self.cors_origin = origin

    def session(self) -> tuple[Tenant, SessionClaims]:
        header = self.request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        tenant = session_token_tenant(token)
        if tenant is None:
            raise Unauthorized("Your chat session has expired. Reload the page to start again.")
        self.allow_origin(tenant)
        claims = session_token_read(token, tenant=tenant)
        if claims is None:
            raise Unauthorized("Your chat session has expired. Reload the page to start again.")
        # Epochs, expiry and the conversation it opens: SessionRevoked (401) when it no longer stands.
        self.conversation = selectors.session_conversation(tenant=tenant, claims=claims)
        return tenant, claims

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if self.cors_origin:
            response["Access-Control-Allow-Origin"] = self.cors_origin
            response["Access-Control-Expose-Headers"] = "Retry-After"
        response["Vary"] = "Origin"
        response["Cache-Control"] = "no-store"
        return response
