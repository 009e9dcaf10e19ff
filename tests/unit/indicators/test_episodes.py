"""Episode detection: hysteresis, peaks, drawdown and the source-label rule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.pressure.indicators import episodes


def bars(values) -> pd.Series:
    return pd.Series(values, index=pd.Index(np.arange(len(values)) * 60_000, name="bucket_ms"), dtype=float)


def test_enters_at_60_stays_through_50_and_ends_below_40():
    spi = bars([30, 55, 59.999, 60, 50, 45, 40, 39.999, 50, 61, 70, math.nan, 65])
    got = episodes.detect_episodes(spi)
    assert len(got) == 2
    first, second = got
    assert (first.start, first.end, first.bars) == (3 * 60_000, 7 * 60_000, 4)
    assert (first.peak_time, first.peak_spi) == (3 * 60_000, 60.0)
    assert (second.start, second.end, second.peak_spi) == (9 * 60_000, None, 70.0)
    assert second.open and second.bars == 4  # the NaN bar neither ends nor breaks it
    assert episodes.in_episode(spi).tolist() == [False] * 3 + [True] * 4 + [False] * 2 + [True] * 4


def in_episode_by_hand(values, enter=60.0, exit_=40.0):
    state, out = False, []
    for v in values:
        if not math.isnan(v):
            if v >= enter:
                state = True
            elif v < exit_:
                state = False
        out.append(state)
    return out


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 100), st.just(math.nan)), max_size=200))
def test_vectorised_hysteresis_equals_a_state_machine(values):
    spi = bars(values)
    assert episodes.in_episode(spi).tolist() == in_episode_by_hand(values)
    for e in episodes.detect_episodes(spi):
        assert e.peak_spi >= 60 and (e.end is None or spi[e.end] < 40)


def test_drawdown_is_the_largest_peak_to_trough_fall():
    spi = bars([70, 65, 62, 61, 70, 30])
    close = bars([100, 110, 99, 105, 88, 200])
    (e,) = episodes.detect_episodes(spi, close=close)
    assert e.drawdown == pytest.approx(1 - 88 / 110)  # the close of the bar that ended it is not included
    assert episodes.drawdown(np.array([1.0, 2.0, 3.0])) == 0.0
    assert math.isnan(episodes.drawdown(np.array([math.nan])))
    assert math.isnan(episodes.detect_episodes(spi)[0].drawdown)


def contributions(rows: dict[str, list[float]], n: int) -> pd.DataFrame:
    return pd.DataFrame(rows, index=bars([0] * n).index)


@pytest.mark.parametrize(("rows", "label"), [
    ({"long_liquidations": [0.8, 0.9], "oi_drop": [0.3, 0.2], "taker_sell_ratio": [0.4, 0.3]}, "deleveraging"),
    ({"taker_sell_ratio": [0.5, 0.6], "netflow_z": [0.4, 0.4], "spread_widening": [0.3, 0.2]}, "profit-taking"),
    ({"spread_widening": [0.9, 0.1], "dvol_rise": [0.5, 0.5], "bid_withdrawal": [0.2, -1.0],
      "taker_sell_ratio": [0.3, 0.3]}, "event-shock"),
    ({"long_liquidations": [0.5, 0.5], "taker_sell_ratio": [0.5, 0.5], "spread_widening": [0.4, 0.4]}, "mixed"),
    ({"ofi": [2.0, 2.0], "cvd_slope": [1.0, 1.0]}, "mixed"),  # only ungrouped components: no source
])
def test_source_label_rule(rows, label):
    spi = bars([65, 70])
    (e,) = episodes.detect_episodes(spi, contribution=contributions(rows, 2))
    assert e.source == label
    if label != "mixed" or sum(e.shares.values()):
        assert sum(e.shares.values()) == pytest.approx(1.0)


def test_negative_contributions_do_not_vote_and_ungrouped_ones_are_not_counted():
    rows = {"long_liquidations": [0.6, 0.0], "taker_sell_ratio": [-3.0, 0.5], "ofi": [5.0, 5.0]}
    label, shares = episodes.episode_source(contributions(rows, 2))
    assert shares["deleveraging"] == pytest.approx(0.6 / 1.1)
    assert label == "deleveraging"
    assert episodes.episode_source(contributions(rows, 2), dominance=0.6)[0] == "mixed"


def test_no_spi_gives_no_episode():
    assert episodes.detect_episodes(bars([])) == []
    assert episodes.detect_episodes(bars([math.nan] * 5)) == []


def test_an_episode_needs_confirm_bars_above_and_ends_after_persist_bars_below():
    idx = [i * 60_000 for i in range(14)]
    #        0   1   2   3   4   5   6   7   8   9  10  11  12  13
    spi = [50, 80, 50, 80, 80, 80, 30, 80, 30, 30, 30, 80, 80, 30]
    found = episodes.detect_episodes(pd.Series(spi, index=idx, dtype=float), enter=70.0, exit=40.0, confirm=2,
                                     persist=2)
    # bar 1 alone never confirms; 3-4 confirm on bar 4 (start 3); one calm bar (6) does not end it;
    # 8-9 do (end 8); 11-12 confirm a second one, still open at the end.
    assert [(e.start, e.confirmed, e.end, e.bars) for e in found] == [
        (3 * 60_000, 4 * 60_000, 8 * 60_000, 5), (11 * 60_000, 12 * 60_000, None, 3)]


def test_per_bar_thresholds_move_the_bar_of_entry():
    idx = [i * 60_000 for i in range(4)]
    spi = pd.Series([70.0, 70.0, 70.0, 70.0], index=idx)
    enter = np.array([75.0, 75.0, 65.0, 65.0])
    found = episodes.detect_episodes(spi, enter=enter, exit=np.full(4, 40.0))
    assert [(e.start, e.end) for e in found] == [(2 * 60_000, None)]


def test_outcomes_by_source_summarise_each_label_and_say_whether_it_differs():
    durations = [10, 12, 14, 16, 18, 60, 70, 80, 90, 100, 11, 13, 15, 17, 19]
    drawdowns = [0.01] * 5 + [0.05] * 5 + [0.012] * 5
    sources = ["profit-taking"] * 5 + ["deleveraging"] * 5 + ["mixed"] * 5
    got = episodes.outcomes_by_source(durations, drawdowns, sources)
    assert got["deleveraging"]["count"] == 5
    assert got["deleveraging"]["duration_median"] == 80.0
    assert got["deleveraging"]["duration_p90"] == pytest.approx(96.0)  # linear between 90 and 100
    assert got["deleveraging"]["drawdown_median"] == 0.05
    assert got["deleveraging"]["differs"] is True  # longer and deeper than the other ten
    assert got["mixed"]["differs"] is False  # just like profit-taking, and together they are most of the rest
    few = episodes.outcomes_by_source([1, 2], [0.1, 0.2], ["mixed", "event-shock"])
    assert few["mixed"]["differs"] is None
