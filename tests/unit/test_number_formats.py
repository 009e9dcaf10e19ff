"""Numbers and times as the pages write them, from one place (apps/dashboard/templatetags/numbers.py)."""

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest

from apps.dashboard.templatetags.numbers import percent, price, signed, utc
from pressureweb.lib.ranges import chart_range_parse


def test_prices_at_the_instrument_precision_with_separators():
    btc = SimpleNamespace(price_decimals=2)
    assert price(Decimal("61660"), btc) == "61,660.00" and price(Decimal("61633.2"), btc) == "61,633.20"
    assert price(Decimal("0.00142"), SimpleNamespace(price_decimals=6)) == "0.001420"
    assert price(None, btc) == "\u2013"


def test_changes_signed_percentages_and_utc_times():
    assert signed(Decimal("-1.5")) == "\u22121.5000" and signed(Decimal("12.34567"), 2) == "+12.35"
    assert percent(0.0022, 2) == "0.22%" and percent(None) == ""
    assert utc(datetime(2026, 12, 4, 5, 47, 9, 123456, tzinfo=UTC)) == "2026-12-04 05:47 UTC"
    assert utc("2026-12-04T05:47:09.123456+00:00", True) == "2026-12-04 05:47:09 UTC"
    assert utc(None) == "never"


@pytest.mark.parametrize("start", ["2024-08-08 23:50", "2024-08-08T23:50", "2024-08-08T23:50:00Z",
                                   " 2024-08-08 23:50 "])
def test_range_inputs_read_24_hour_utc_text(start):
    got, error = chart_range_parse({"range": "custom", "start": start, "end": "2024-08-09 00:10"})
    assert error is None
    assert (got.start, got.end) == (datetime(2024, 8, 8, 23, 50, tzinfo=UTC), datetime(2024, 8, 9, 0, 10, tzinfo=UTC))


def test_a_12_hour_time_is_refused_with_a_message():
    got, error = chart_range_parse({"range": "custom", "start": "08/08/2024 11:50 PM"})
    assert got.key == "1h" and "start must be an ISO 8601 time" in error
