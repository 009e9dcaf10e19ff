"""`manage.py check --deploy`: alert emails need the site's public address for their links."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def site_url_check(app_configs, **kwargs):
    url = settings.SITE_URL
    parts = urlsplit(url)
    if not url or parts.scheme not in ("http", "https") or not parts.hostname:
        return [Error(f"SITE_URL is {url!r}: alert emails and their one-click unsubscribe links would point nowhere.",
                      hint="Set SITE_URL to the public base URL, e.g. SITE_URL=https://pressure.example.com",
                      id="alerts.E001")]
    if parts.scheme == "http" and not settings.DEBUG:
        return [Warning(f"SITE_URL {url} is plain HTTP: email links would send people (and unsubscribe tokens) "
                        "over an unencrypted connection.", hint="Use the https:// address.", id="alerts.W002")]
    return []
