"""Content-Security-Policy on every response: django-csp's middleware, plus two things its settings
cannot express (the policy itself is CONTENT_SECURITY_POLICY in settings).

- connect-src names the websocket origin of the request's own host (ws:// or wss://, with its port).
  CSP Level 3 lets 'self' cover it, but browsers that stopped at Level 2 do not, and the agent console
  and the knowledge pages are live over websockets.
- Pages under CSP_INLINE_STYLE_PREFIXES (the demo company's website at /demo/, which embeds the customer
  widget) may inline styles: the page's own <style>, and the widget's, which it writes into its shadow
  root. Scripts there stay 'self' only, like everywhere else.
"""

from __future__ import annotations

from csp.constants import SELF, UNSAFE_INLINE
from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase


def _websocket_origin(request: HttpRequest) -> str | None:
    try:
        host = request.get_host()
    except DisallowedHost:
        return None  # the request is being refused anyway; 'self' alone is the stricter policy
    return f"{'wss' if request.is_secure() else 'ws'}://{host}"


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if report_only:
            return parts
        origin = _websocket_origin(request)
        if origin is not None:
            update = dict(parts.update or {})
            update["connect-src"] = [*(update.get("connect-src") or []), origin]
            parts.update = update
        if request.path_info.startswith(tuple(settings.CSP_INLINE_STYLE_PREFIXES)):
            parts.replace = {**(parts.replace or {}), "style-src": [SELF, UNSAFE_INLINE]}
        return parts
