from smtplib import SMTPException

from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.accounts.models import User
from apps.alerts import services

# The database dropped the connection: the work was transactional (or claimed with a conditional
# UPDATE), so retrying is safe; Celery's Django fixup closes the dead connection after the task.
DB_ERRORS = (OperationalError, InterfaceError)
DB_RETRY = {"autoretry_for": DB_ERRORS, "retry_backoff": 1, "retry_backoff_max": 30, "retry_jitter": True,
            "max_retries": 5}


@shared_task(ignore_result=True, **DB_RETRY)
def alert_rules_evaluate(instrument_id: int) -> int:
    return len(services.alert_rules_evaluate(instrument_id=instrument_id))


@shared_task(ignore_result=True, **DB_RETRY)
def alert_rules_evaluate_flows(asset: str) -> int:
    return len(services.alert_rules_evaluate_flows(asset=asset))


@shared_task(bind=True, ignore_result=True, autoretry_for=(SMTPException, OSError, *DB_ERRORS),
             retry_backoff=5, retry_backoff_max=300, retry_jitter=True, max_retries=services.MAX_ATTEMPTS - 1)
def alert_event_deliver(self, event_id: int) -> bool:
    return services.alert_event_email_send(event_id=event_id)


@shared_task(ignore_result=True, autoretry_for=(SMTPException, OSError, *DB_ERRORS), retry_backoff=30,
             max_retries=5)
def alert_digests_send() -> int:
    return services.alert_digests_send()


@shared_task(ignore_result=True, autoretry_for=(SMTPException, OSError, *DB_ERRORS), retry_backoff=5,
             max_retries=3)
def test_email_send(user_id: int) -> None:
    services.test_email_send(user=User.objects.get(pk=user_id))
