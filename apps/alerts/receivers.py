from apps.alerts.models import AlertRule


def bars_finalized_evaluate(sender, instrument, finalized, **kwargs):
    # Rules act on final bars only (a forming bar's values still move). Only instruments someone has
    # a rule on cost a task.
    if AlertRule.objects.filter(enabled=True).exists():
        from apps.alerts.tasks import alert_rules_evaluate

        alert_rules_evaluate.delay(instrument.pk)


def flow_bars_changed_evaluate(sender, chain, asset, **kwargs):
    if AlertRule.objects.filter(enabled=True, scope=AlertRule.Scope.ASSET).exists():
        from apps.alerts.tasks import alert_rules_evaluate_flows

        alert_rules_evaluate_flows.delay(asset)
