"""Pushes bar updates to WebSocket groups: one coalesced message per instrument and batch."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.pressure.selectors import bar_serialize

logger = logging.getLogger(__name__)


def instrument_group(instrument_id: int) -> str:
    return f"instrument.{instrument_id}"


OVERVIEW_GROUP = "overview"


def bars_publish(*, instrument, changed: dict) -> None:
    """Send the bars a batch changed; clients merge them by bucket_start."""
    layer = get_channel_layer()
    payload = {interval: [bar_serialize(b) for b in bars] for interval, bars in changed.items() if bars}
    if not payload:
        return
    try:
        async_to_sync(layer.group_send)(
            instrument_group(instrument.pk),
            {"type": "bars.update", "instrument": instrument.pk, "bars": payload},
        )
        latest = payload.get("1m", [])[-1:]
        if latest:
            async_to_sync(layer.group_send)(
                OVERVIEW_GROUP, {"type": "bars.update", "instrument": instrument.pk, "bars": {"1m": latest}}
            )
    except Exception:  # a live push must never fail the ingestion that already committed
        logger.exception("live push failed for %s", instrument)
