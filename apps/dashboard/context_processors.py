from django.conf import settings


def site(request):
    return {"theme": "light" if request.COOKIES.get("theme") == "light" else "dark", "site_debug": settings.DEBUG}
