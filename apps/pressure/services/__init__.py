"""The pressure app's writes: ingestion and bars (ingest), and the index, final bars, regimes and episodes (index)."""

from apps.pressure.services.forecast import (
    drop_risk_history_refresh,
    drop_risk_predict,
    final_bars_frame,
    forecast_model_refit,
    track_record_compute,
    track_record_refresh,
)
from apps.pressure.services.index import (
    bars_finalize,
    episodes_refresh,
    regime_calibration_get,
    spi_refresh,
)
from apps.pressure.services.ingest import (
    BAR_FIELDS,
    AppendedTrades,
    IngestResult,
    appended_trades,
    bars_finalize_due,
    bars_publish,
    bars_refresh,
    book_arrays,
    drop_risk_publish,
    market_batch_ingest,
    minute_bars_compute,
    minute_bars_extend,
    trade_arrays,
)

__all__ = [
    "BAR_FIELDS",
    "AppendedTrades",
    "IngestResult",
    "appended_trades",
    "bars_finalize",
    "bars_finalize_due",
    "bars_publish",
    "bars_refresh",
    "book_arrays",
    "drop_risk_history_refresh",
    "drop_risk_predict",
    "drop_risk_publish",
    "episodes_refresh",
    "final_bars_frame",
    "forecast_model_refit",
    "market_batch_ingest",
    "minute_bars_compute",
    "minute_bars_extend",
    "regime_calibration_get",
    "spi_refresh",
    "track_record_compute",
    "track_record_refresh",
    "trade_arrays",
]
