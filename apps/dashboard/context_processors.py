from django.conf import settings


def site(request):
    return {"theme": "light" if request.COOKIES.get("theme") == "light" else "dark", "site_debug": settings.DEBUG,
            "live_stale_ms": round(settings.LIVE_STALE_SECONDS * 1000)}
