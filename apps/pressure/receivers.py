"""What the pressure app does after its own writes commit."""

from apps.pressure.models import ForecastModel
from apps.pressure.tasks import drop_risk_predict
from pressureweb.lib.times import dt_to_ms


def bars_finalized_forecast(sender, instrument, finalized, **kwargs):
    """The newest final bar of each interval gets its drop risk in a task (a few tens of ms of features that
    the live batch does not wait for), where a model exists."""
    for interval, bars in finalized.items():
        if bars and not bars[-1].drop_risk_model and ForecastModel.objects.filter(
                instrument=instrument, interval=interval).exists():
            drop_risk_predict.delay(instrument.pk, interval, dt_to_ms(bars[-1].bucket_start))
