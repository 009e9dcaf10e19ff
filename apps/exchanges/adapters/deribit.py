"""Deribit options: the DVOL index and at-the-money implied volatility (no trades)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from apps.exchanges.adapters.base import ExchangeAdapter
from apps.exchanges.adapters.shapes import OptionIVPoint, VolIndexPoint, num_str
from pressureweb.lib import times


class Deribit(ExchangeAdapter):
    """Deribit options: the DVOL index and at-the-money implied volatility; no trade cursor."""

    slug = "deribit-options"
    exchange = "deribit"
    exchange_name = "Deribit"
    ccxt_id = "deribit"
    market = "option"
    ccxt_market_types = ("option",)
    currencies: ClassVar[tuple[str, ...]] = ("BTC", "ETH")

    def _options(self) -> dict:
        return {"defaultType": "option"}

    def fetch_dvol(self, currency: str, *, since_ms: int | None, resolution: str = "60") -> list[VolIndexPoint]:
        now = times.now_ms()
        start = since_ms if since_ms is not None else now - 6 * 3_600_000
        res = self.rest.publicGetGetVolatilityIndexData({
            "currency": currency, "start_timestamp": start, "end_timestamp": now, "resolution": resolution,
        })
        # Candles [time, open, high, low, close]: the close is the index at the end of the candle.
        return [VolIndexPoint(int(row[0]), num_str(row[4])) for row in res["result"]["data"]]

    def fetch_option_iv(self, currency: str, *, min_days: float = 1.0) -> OptionIVPoint | None:
        """ATM IV: mean mark IV of the call and put nearest the underlying on the nearest expiry
        at least ``min_days`` away (the front expiry's IV is noise in its last hours)."""
        res = self.rest.publicGetGetBookSummaryByCurrency({"currency": currency, "kind": "option"})
        return option_atm_iv(res["result"], min_days=min_days, now_ms=int(res.get("usOut", 0) // 1000) or None)


_MONTHS = {m: i for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}


def _deribit_expiry_ms(code: str) -> int | None:
    """'27DEC24' -> 08:00 UTC that day (Deribit's expiry time)."""
    try:
        day, mon, year = int(code[:-5]), _MONTHS[code[-5:-2]], 2000 + int(code[-2:])
    except (KeyError, ValueError):
        return None
    return times.dt_to_ms(datetime(year, mon, day, 8, tzinfo=UTC))


def option_atm_iv(rows: list[dict], *, min_days: float, now_ms: int | None = None) -> OptionIVPoint | None:
    now_ms = now_ms or times.now_ms()
    by_expiry: dict[int, list[tuple[float, str, float, float]]] = {}
    for row in rows:
        name = row.get("instrument_name") or ""
        parts = name.split("-")
        iv, under = row.get("mark_iv"), row.get("underlying_price")
        if len(parts) != 4 or iv is None or under is None:
            continue
        expiry = _deribit_expiry_ms(parts[1])
        try:
            strike = float(parts[2])
        except ValueError:
            continue
        if expiry is None or expiry - now_ms < min_days * 86_400_000:
            continue
        by_expiry.setdefault(expiry, []).append((abs(strike - float(under)), parts[3], float(iv), float(under)))
    if not by_expiry:
        return None
    expiry = min(by_expiry)
    options = sorted(by_expiry[expiry])
    nearest = options[0][0]
    atm = [o for o in options if o[0] == nearest]
    iv = sum(o[2] for o in atm) / len(atm)
    return OptionIVPoint(now_ms, num_str(round(iv, 4)), expiry, num_str(atm[0][3]))

