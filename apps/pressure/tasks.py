from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.markets.models import Instrument
from apps.pressure import selectors, services
from apps.pressure.services import forecast

# Every task here is idempotent (a bar is made final once, a prediction or an evaluation is rewritten whole):
# a dropped connection just retries.
DB_RETRY = {"autoretry_for": (OperationalError, InterfaceError), "retry_backoff": 1, "retry_backoff_max": 10,
            "max_retries": 3}


@shared_task(ignore_result=True, **DB_RETRY)
def bars_finalize_due() -> int:
    """Make due bars final where no batch arrived to do it (a quiet market, a stopped feed)."""
    count = 0
    for instrument in selectors.instruments_with_due_bars():
        count += sum(len(v) for v in services.bars_finalize_due(instrument=instrument).values())
    return count


@shared_task(ignore_result=True, **DB_RETRY)
def drop_risk_predict(instrument_id: int, interval: str, bucket_ms: int) -> float | None:
    instrument = Instrument.objects.with_exchange().get(pk=instrument_id)
    return services.drop_risk_publish(instrument=instrument, interval=interval, bucket_ms=bucket_ms)


@shared_task(ignore_result=True, **DB_RETRY)
def forecast_models_refit() -> int:
    """This month's drop-risk model for every instrument and interval with enough final history."""
    fitted = 0
    for instrument, interval in selectors.instruments_with_final_bars():
        fitted += forecast.forecast_model_refit(instrument=instrument, interval=interval) is not None
    return fitted


@shared_task(ignore_result=True, **DB_RETRY)
def track_records_refresh() -> int:
    """The stored track record of every instrument and interval (the pages read it)."""
    count = 0
    for instrument, interval in selectors.instruments_with_final_bars():
        count += forecast.track_record_refresh(instrument=instrument, interval=interval) is not None
    return count
