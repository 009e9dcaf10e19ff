import numpy as np

from apps.pressure.downsample import lttb_indices


def test_lttb_keeps_ends_and_spikes_within_the_budget():
    x = np.arange(10_000, dtype=float)
    y = np.sin(x / 500)
    y[4321] = 50.0  # a flash crash must survive thinning
    keep = lttb_indices(x, y, 2_000)
    assert len(keep) <= 2_000
    assert keep[0] == 0 and keep[-1] == 9_999
    assert 4321 in keep
    assert np.all(np.diff(keep) > 0)


def test_short_series_are_untouched():
    x = np.arange(10, dtype=float)
    assert list(lttb_indices(x, x, 2_000)) == list(range(10))
