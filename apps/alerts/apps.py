from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "apps.alerts"

    def ready(self):
        from apps.alerts import checks  # noqa: F401 - registers the deploy check
        from apps.alerts.receivers import bars_finalized_evaluate, flow_bars_changed_evaluate
        from apps.flows.signals import flow_bars_changed
        from apps.pressure.signals import bars_finalized

        bars_finalized.connect(bars_finalized_evaluate, weak=False, dispatch_uid="alerts-evaluate")
        flow_bars_changed.connect(flow_bars_changed_evaluate, weak=False, dispatch_uid="alerts-evaluate-flows")
