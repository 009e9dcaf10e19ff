import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pressureweb.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator, WebsocketDenier  # noqa: E402
from django.urls import re_path  # noqa: E402

from apps.live.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # An unknown socket path is refused at the handshake (403) rather than failing the router (500).
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(
            [*websocket_urlpatterns, re_path(r"", WebsocketDenier.as_asgi())]))),
    }
)


def _first_request_warm() -> None:
    """Load now what the first request of each page would: the URL resolver, the project's page templates
    (compiled, with their tag libraries) and the instrument pages' figures. Otherwise the first visitor after a
    start waits over a second."""
    from django.conf import settings
    from django.template.loader import get_template
    from django.urls import get_resolver

    from apps.dashboard.views import instrument_figures_warm

    get_resolver().reverse_dict  # noqa: B018 - populates the resolver, as the first reverse() would
    for folder in settings.TEMPLATES[0]["DIRS"]:
        for path in sorted(folder.rglob("*.html")):
            get_template(path.relative_to(folder).as_posix())
    instrument_figures_warm()


_first_request_warm()

# A web process holds ~300,000 long-lived objects once Django, Twisted and the URL confs are loaded. Under
# a busy fan-out, a full collection walked all of them (and every socket's) every ~2.5 s: 140-180 ms with
# the event loop stopped, which was the whole p99 tail of live updates. Start-up objects are frozen out
# of the collector's view, and the young generation is collected less often, so a push burst's
# temporaries are freed by reference counting before they can be promoted.
gc.collect()
gc.freeze()
gc.set_threshold(10_000, 10, 10)
