from django.apps import AppConfig


class WatchlistsConfig(AppConfig):
    name = "apps.watchlists"

    def ready(self):
        # Ingestion collects what anyone watches without knowing about watchlists.
        from apps.markets.providers import watched_provider_register
        from apps.watchlists.selectors import watched_instrument_ids

        watched_provider_register(name="watchlists", provider=watched_instrument_ids)
