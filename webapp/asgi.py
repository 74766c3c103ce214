"""The ASGI application: Django for HTTP, Channels for WebSockets (authenticated by session).

HTTP bodies above REQUEST_BODY_MAX_BYTES are refused before they are read (RequestBodyLimit); a
WebSocket opens only from the site's own origin, port included (SameOriginValidator).

Serve it with `python -m webapp.serve` (uvicorn with the site's options). With `SITE_CPUS` set (a CPU list,
"3" or "0-1,7") the server process runs on those CPUs only: on a host whose CPU also runs the
inference engine, the ones the engine's threads are not bound to (inference_contract/cpu_layout.py).
"""

import os

from django.core.asgi import get_asgi_application

from inference_contract.cpu_layout import pin_self_from_env

# Before Django starts any thread (the pool's, asgiref's), so every one of them inherits the mask.
pin_self_from_env()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
django_asgi_app = get_asgi_application()

from channels.auth import CookieMiddleware, SessionMiddleware  # noqa: E402 - after Django's set-up
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from webapp.core.body_limit import RequestBodyLimit  # noqa: E402
from webapp.core.origins import SameOriginValidator  # noqa: E402
from webapp.core.websocket import SessionUserMiddleware  # noqa: E402
from webapp.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": RequestBodyLimit(django_asgi_app),
        "websocket": SameOriginValidator(
            CookieMiddleware(
                SessionMiddleware(SessionUserMiddleware(URLRouter(websocket_urlpatterns)))
            )
        ),
    }
)
