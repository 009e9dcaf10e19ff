from allauth.core import ratelimit
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.alerts import services, tasks
from apps.alerts.forms import AlertRuleForm
from apps.alerts.metrics import METRICS
from apps.alerts.models import AlertEvent, AlertRule


def _own_rule(request, pk) -> AlertRule:
    return get_object_or_404(AlertRule, pk=pk, user=request.user)


@login_required
def index(request):
    rules = AlertRule.objects.filter(user=request.user).select_related("instrument__exchange", "watchlist")
    events = (AlertEvent.objects.filter(rule__user=request.user)
              .select_related("rule__instrument__exchange", "rule__watchlist", "instrument__exchange")[:100])
    return render(request, "alerts/index.html", {"rules": rules, "events": events})


@login_required
def create(request):
    metric = request.GET.get("metric", "taker_sell_ratio")
    initial = {"instrument": request.GET.get("instrument"), "metric": metric if metric in METRICS else "spi"}
    form = AlertRuleForm(request.POST or None, user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        rule = form.save()
        messages.success(request, f"Created the rule: {rule.describe()}.")
        return redirect("alerts:index")
    return _form_page(request, form, creating=True)


def _form_page(request, form: AlertRuleForm, **context):
    """The form with the chosen metric's unit and range, so it reads right before (and without) any script."""
    metric = METRICS.get(form["metric"].value() or "") or METRICS["spi"]
    return render(request, "alerts/form.html", {"form": form, "metric": metric, **context})


@login_required
def edit(request, pk):
    rule = _own_rule(request, pk)
    form = AlertRuleForm(request.POST or None, instance=rule, user=request.user)
    if request.method == "POST" and form.is_valid():
        rule = form.save()
        messages.success(request, f"Saved: {rule.describe()}.")
        return redirect("alerts:index")
    return _form_page(request, form, rule=rule)


@login_required
@require_POST
def delete(request, pk):
    _own_rule(request, pk).delete()
    messages.success(request, "Rule deleted.")
    return redirect("alerts:index")


@login_required
def event_detail(request, pk):
    event = get_object_or_404(AlertEvent.objects.select_related("rule", "instrument__exchange"), pk=pk,
                              rule__user=request.user)
    return render(request, "alerts/event.html", {"event": event})


@login_required
@require_POST
def test_email(request):
    if not request.user.email:
        messages.error(request, "Your account has no email address.")
    elif not ratelimit.consume(request, action="alert_test_email", user=request.user):
        messages.error(request, f"You have asked for {settings.ALERT_TEST_EMAILS_PER_10_MIN} test emails in the "
                                "last 10 minutes; try again in a few minutes.")
    else:
        tasks.test_email_send.delay(request.user.pk)
        messages.success(request, f"A test email is on its way to {request.user.email}.")
    return redirect("alerts:index")


@csrf_exempt  # RFC 8058 one-click unsubscribe: mail clients POST without a CSRF token; the signed token is the key
def unsubscribe(request, token):
    rule = services.unsubscribe_rule_from_token(token)
    if rule is None:
        return render(request, "alerts/unsubscribe.html", {"invalid": True}, status=400)
    if request.method == "POST":
        services.alert_rule_disable(rule=rule)
        return render(request, "alerts/unsubscribe.html", {"rule": rule, "done": True})
    return render(request, "alerts/unsubscribe.html", {"rule": rule, "token": token})
