from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "apps.alerts"

    def ready(self):
        from apps.alerts.receivers import bars_changed_evaluate
        from apps.pressure.signals import bars_changed

        bars_changed.connect(bars_changed_evaluate, weak=False, dispatch_uid="alerts-evaluate")
