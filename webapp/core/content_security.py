"""The site's Content-Security-Policy: django-csp's middleware, plus the page's own WebSocket origin.

The policy itself is CONTENT_SECURITY_POLICY in settings (only the site's own scripts, styles, fonts
and images). Older browsers do not count ws:// and wss:// of the page's host as 'self', so
connect-src names them for the host the request came to (already checked against ALLOWED_HOSTS).
"""

from csp.middleware import CSPMiddleware, PolicyParts
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase


class SiteCSPMiddleware(CSPMiddleware):
    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if report_only:
            return parts
        try:
            host = request.get_host()
        except DisallowedHost:
            return parts
        update = dict(parts.update or {})
        update["connect-src"] = [*update.get("connect-src", []), f"ws://{host}", f"wss://{host}"]
        parts.update = update
        return parts
