"""Pushes bar updates to WebSocket groups: one coalesced message per instrument and batch.

Each message is serialised to JSON once here, not once per connected client: the group message
carries the frame's text, and every consumer writes it to its socket as it is.
"""

from __future__ import annotations

import logging
from datetime import datetime

import orjson

from apps.pressure.overview import cvd_change
from apps.pressure.selectors import bar_serialize, decimal_plain, index_headline
from pressureweb.lib.channels import group_send

logger = logging.getLogger(__name__)


def instrument_group(instrument_id: int) -> str:
    return f"instrument.{instrument_id}"


OVERVIEW_GROUP = "overview"


def bars_message(*, group: str, instrument_id: int, bars: dict, headline: dict | None = None) -> dict:
    """The group message for a bars update: the client frame {"type": "bars", ...} as ready JSON text,
    and the group it is for (one relay channel per web process receives every group's updates).

    ``headline`` ({interval: index headline}) rides in the same frame as the final bars it describes, so
    a page never shows a headline and a chart point that disagree."""
    frame = {"type": "bars", "instrument": instrument_id, "bars": bars}
    if headline:
        frame["headline"] = headline
    text = orjson.dumps(frame).decode()
    return {"type": "bars.update", "group": group, "instrument": instrument_id, "text": text}


def bars_payload_send(*, instrument_id: int, payload: dict, headline: dict | None = None,
                      overview: dict | None = None) -> None:
    """Send serialised bars ({interval: [bar, ...]}) to the instrument's group and the newest 1m bar to the
    overview (with the 1m headline and ``overview`` extras when a minute closed)."""
    group = instrument_group(instrument_id)
    messages = [(group, bars_message(group=group, instrument_id=instrument_id, bars=payload, headline=headline))]
    latest = payload.get("1m", [])[-1:]
    if latest:
        shown = {"1m": headline["1m"]} if headline and "1m" in headline else None
        message = bars_message(group=OVERVIEW_GROUP, instrument_id=instrument_id, bars={"1m": latest}, headline=shown)
        if shown and overview:
            message.update(overview)
        messages.append((OVERVIEW_GROUP, message))
    group_send(messages)


def bars_publish(*, instrument, changed: dict, finalized: dict | None = None) -> None:
    """Send the bars a batch changed, and the headline of each interval that got a final bar; clients merge
    bars by bucket_start."""
    payload = {interval: [bar_serialize(b) for b in bars] for interval, bars in changed.items() if bars}
    if not payload:
        return
    try:
        headline = {interval: shown for interval, bars in (finalized or {}).items()
                    if bars and (shown := index_headline(instrument=instrument, interval=interval))}
        overview = None
        if "1m" in headline:
            change = cvd_change(instrument_id=instrument.pk, end=datetime.fromisoformat(headline["1m"]["bucket_start"]))
            overview = {"cvd_change_1h": decimal_plain(change)}
        bars_payload_send(instrument_id=instrument.pk, payload=payload, headline=headline, overview=overview)
    except Exception:  # a live push must never fail the ingestion that already committed
        logger.exception("live push failed for %s", instrument)
