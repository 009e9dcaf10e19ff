"""Alert evaluation and delivery."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from apps.alerts.decisions import alert_decide, in_quiet_hours
from apps.alerts.metrics import METRICS, format_value, metric_value
from apps.alerts.models import AlertEvent, AlertRule, AlertRuleState
from apps.markets.models import Instrument
from apps.markets.naming import instrument_full_name
from apps.pressure.models import PressureBar
from pressureweb.lib.channels import group_send
from pressureweb.lib.times import iso_z

logger = logging.getLogger(__name__)
UNSUBSCRIBE_SALT = "alerts.unsubscribe"
STALE_CLAIM = timedelta(minutes=5)
MAX_ATTEMPTS = 6


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def rules_for_instrument(*, instrument_id: int):
    return (AlertRule.objects.filter(enabled=True)
            .filter(Q(scope=AlertRule.Scope.INSTRUMENT, instrument_id=instrument_id)
                    | Q(scope=AlertRule.Scope.WATCHLIST, watchlist__items__instrument_id=instrument_id))
            .select_related("user").distinct())


def alert_rules_evaluate(*, instrument_id: int, now=None) -> list[AlertEvent]:
    """Evaluate the enabled rules that watch this instrument against its latest final bar."""
    now = now or timezone.now()
    fired = []
    instrument = Instrument.objects.filter(pk=instrument_id).first()
    if instrument is None:
        return fired
    latest: dict[str, PressureBar | None] = {}
    for rule in rules_for_instrument(instrument_id=instrument_id):
        if rule.interval not in latest:
            latest[rule.interval] = (PressureBar.objects.filter(instrument_id=instrument_id, interval=rule.interval,
                                                                final=True).order_by("-bucket_start").first())
        event = _rule_evaluate(rule=rule, instrument=instrument, bar=latest[rule.interval], now=now)
        if event:
            fired.append(event)
    return fired


def alert_rules_evaluate_flows(*, asset: str, now=None) -> list[AlertEvent]:
    """Evaluate the enabled rules on an asset's exchange flows against its newest flow bar."""
    from apps.flows.selectors import flow_bar_latest

    now = now or timezone.now()
    bar = flow_bar_latest(asset=asset)
    rules = AlertRule.objects.filter(enabled=True, scope=AlertRule.Scope.ASSET, asset__iexact=asset).select_related(
        "user")
    return [e for rule in rules if (e := _rule_evaluate(rule=rule, instrument=None, bar=bar, now=now))]


def _rule_evaluate(*, rule: AlertRule, instrument: Instrument | None, bar, now) -> AlertEvent | None:
    value = metric_value(rule.metric, bar)
    with transaction.atomic():
        AlertRuleState.objects.get_or_create(rule=rule, instrument=instrument)
        # The row lock makes concurrent evaluations of one rule take turns.
        state = AlertRuleState.objects.select_for_update().get(rule=rule, instrument=instrument)
        decision = alert_decide(
            value=value, armed=state.armed, comparator=rule.comparator, threshold=rule.threshold,
            rearm_level=rule.effective_rearm_level, last_fired_at=state.last_fired_at, cooldown=rule.cooldown, now=now,
        )
        state.armed, state.last_value = decision.armed, value
        if not decision.fire:
            state.save(update_fields=["armed", "last_value"])
            return None
        try:
            with transaction.atomic():
                event = AlertEvent.objects.create(
                    rule=rule, instrument=instrument, bucket_start=bar.bucket_start, value=value,
                    threshold=rule.threshold, details=_event_details(rule=rule, bar=bar),
                    **_email_plan(rule=rule, now=now),
                )
        except IntegrityError:  # already fired for this bar
            return None
        state.last_fired_at = now
        state.save(update_fields=["armed", "last_value", "last_fired_at"])
        transaction.on_commit(lambda: _dispatch(event))
    return event


def _event_details(*, rule: AlertRule, bar: PressureBar) -> dict:
    close = getattr(bar, "close", None)
    details = {"metric": rule.metric, "interval": rule.interval, "close": str(close) if close else None}
    components = getattr(bar, "spi_components", None)
    if components:
        details["components"] = components
    return details


def _email_plan(*, rule: AlertRule, now) -> dict:
    if not rule.deliver_email:
        return {"email_status": AlertEvent.Email.SKIPPED, "email_note": "email delivery is off for this rule"}
    if in_quiet_hours(now=now, start=rule.quiet_start, end=rule.quiet_end, tz_name=rule.user.time_zone):
        return {"email_status": AlertEvent.Email.SKIPPED, "email_note": "quiet hours"}
    if rule.daily_digest:
        return {"email_status": AlertEvent.Email.DIGEST}
    return {"email_status": AlertEvent.Email.PENDING}


def _dispatch(event: AlertEvent) -> None:
    from apps.alerts import tasks

    if event.email_status == AlertEvent.Email.PENDING:
        tasks.alert_event_deliver.delay(event.pk)
    if event.rule.deliver_inpage:
        alert_toast_push(event=event)


def alert_toast_push(*, event: AlertEvent) -> None:
    try:
        group_send([(user_group(event.rule.user_id), {
            "type": "alert.fired",
            "event": {
                "id": event.pk, "title": str(event.rule), "value": event.value, "threshold": event.threshold,
                "metric": METRICS[event.rule.metric].noun,
                "value_text": format_value(event.value, METRICS[event.rule.metric]),
                "threshold_text": format_value(event.threshold, METRICS[event.rule.metric]),
                "instrument": instrument_full_name(event.instrument) if event.instrument_id else None,
                "url": event.instrument.get_absolute_url() if event.instrument_id else None,
                "at": iso_z(event.bucket_start),
            },
        })])
    except Exception:  # the toast is a courtesy; the event and its email stand
        logger.exception("toast push failed for alert event %s", event.pk)


def unsubscribe_token(rule: AlertRule) -> str:
    return signing.dumps({"rule": rule.pk}, salt=UNSUBSCRIBE_SALT)


def unsubscribe_rule_from_token(token: str) -> AlertRule | None:
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    return AlertRule.objects.filter(pk=data.get("rule")).first()


def alert_rule_disable(*, rule: AlertRule) -> None:
    AlertRule.objects.filter(pk=rule.pk).update(enabled=False)


def _absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def _email_message(*, rule: AlertRule, subject: str, context: dict, template: str) -> EmailMultiAlternatives:
    unsubscribe = _absolute(reverse("alerts:unsubscribe", args=[unsubscribe_token(rule)]))
    context = {**context, "rule": rule, "unsubscribe_url": unsubscribe, "site_url": settings.SITE_URL,
               "metric": METRICS[rule.metric], "glossary_url": _absolute(f"/glossary/{METRICS[rule.metric].glossary}/")}
    text = render_to_string(f"alerts/email/{template}.txt", context)
    html = render_to_string(f"alerts/email/{template}.html", context)
    message = EmailMultiAlternatives(
        subject=subject, body=text, to=[rule.user.email],
        headers={"List-Unsubscribe": f"<{unsubscribe}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    )
    message.attach_alternative(html, "text/html")
    return message


def alert_event_email_send(*, event_id: int) -> bool:
    """Claim the event with a conditional UPDATE and send it; False when another worker has it."""
    now = timezone.now()
    claimed = AlertEvent.objects.filter(
        Q(email_status__in=[AlertEvent.Email.PENDING, AlertEvent.Email.RETRYING])
        | Q(email_status=AlertEvent.Email.SENDING, claimed_at__lt=now - STALE_CLAIM),
        pk=event_id,
    ).update(email_status=AlertEvent.Email.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return False
    event = AlertEvent.objects.select_related("rule__user", "instrument__exchange").get(pk=event_id)
    rule = event.rule
    subject_line = render_to_string("alerts/email/alert_subject.txt", {"event": event, "rule": rule,
                                                                       "metric": METRICS[rule.metric]})
    try:
        _email_message(
            rule=rule, subject=" ".join(subject_line.split()), template="alert",
            context={"event": event, "instrument_url": _absolute(event.instrument.get_absolute_url())
                     if event.instrument_id else None},
        ).send()
    except Exception as exc:
        final = event.attempts >= MAX_ATTEMPTS
        AlertEvent.objects.filter(pk=event_id).update(
            email_status=AlertEvent.Email.FAILED if final else AlertEvent.Email.RETRYING,
            claimed_at=None, last_error=f"{type(exc).__name__}: {exc}"[:1000],
        )
        raise
    AlertEvent.objects.filter(pk=event_id).update(email_status=AlertEvent.Email.SENT, sent_at=timezone.now(),
                                                  last_error="")
    return True


def alert_digests_send() -> int:
    """One email per user with the events waiting for the digest; claimed like single alerts."""
    sent = 0
    users = set(AlertEvent.objects.filter(email_status=AlertEvent.Email.DIGEST).values_list("rule__user", flat=True))
    for user_id in users:
        now = timezone.now()
        ids = list(AlertEvent.objects.filter(email_status=AlertEvent.Email.DIGEST, rule__user_id=user_id)
                   .values_list("pk", flat=True))
        claimed = AlertEvent.objects.filter(pk__in=ids, email_status=AlertEvent.Email.DIGEST).update(
            email_status=AlertEvent.Email.SENDING, claimed_at=now, attempts=F("attempts") + 1)
        if not claimed:
            continue
        events = list(AlertEvent.objects.filter(pk__in=ids, email_status=AlertEvent.Email.SENDING, claimed_at=now)
                      .select_related("rule__user", "rule__instrument__exchange", "rule__watchlist",
                                      "instrument__exchange"))
        if not events:
            continue
        rule = events[0].rule
        try:
            _email_message(rule=rule, subject=f"[PressureWeb] Daily digest: {len(events)} alerts",
                           template="digest", context={"events": events}).send()
        except Exception:
            AlertEvent.objects.filter(pk__in=[e.pk for e in events]).update(email_status=AlertEvent.Email.DIGEST,
                                                                             claimed_at=None)
            raise
        AlertEvent.objects.filter(pk__in=[e.pk for e in events]).update(email_status=AlertEvent.Email.SENT,
                                                                         sent_at=timezone.now())
        sent += 1
    return sent


def test_email_send(*, user) -> None:
    message = EmailMultiAlternatives(
        subject="[PressureWeb] Test email",
        body=render_to_string("alerts/email/test.txt", {"user": user, "site_url": settings.SITE_URL}),
        to=[user.email],
    )
    message.attach_alternative(render_to_string("alerts/email/test.html", {"user": user,
                                                                          "site_url": settings.SITE_URL}), "text/html")
    message.send()
