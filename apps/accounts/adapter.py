from allauth.account.adapter import DefaultAccountAdapter

from pressureweb.client_ip import client_ip


class AccountAdapter(DefaultAccountAdapter):
    """allauth with the project's one notion of the client's address (pressureweb/client_ip.py), so the login
    throttles key on the same client as the API's, behind TRUSTED_PROXY_COUNT proxies too. (allauth's own reading
    of X-Forwarded-For raises ImproperlyConfigured, a 500, on a header shorter than the proxy count.)"""

    def get_client_ip(self, request) -> str:
        return client_ip(request)
