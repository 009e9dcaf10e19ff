from django.apps import AppConfig


class PressureConfig(AppConfig):
    name = "apps.pressure"

    def ready(self):
        from apps.pressure.receivers import bars_finalized_forecast
        from apps.pressure.signals import bars_finalized

        bars_finalized.connect(bars_finalized_forecast, weak=False, dispatch_uid="pressure-forecast")
