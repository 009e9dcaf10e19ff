import numpy as np
import pytest

from apps.pressure.downsample import lttb_indices


def stride(n: int, threshold: int) -> set[int]:
    """Plain decimation, both ways it is usually written: what LTTB must do better than."""
    return set(np.linspace(0, n - 1, threshold).astype(int)) | set(range(0, n, -(-n // threshold)))


def test_a_spike_off_the_stride_grid_is_kept_and_the_ends_and_budget_hold():
    n, threshold = 10_000, 2_000
    x = np.arange(n, dtype=float)
    y = np.sin(x / 500)
    spike = 4_323
    assert spike not in stride(n, threshold)  # so stride decimation would lose it
    y[spike] = 50.0  # a flash crash must survive thinning
    keep = lttb_indices(x, y, threshold)
    assert len(keep) <= threshold
    assert keep[0] == 0 and keep[-1] == n - 1
    assert spike in keep
    assert np.all(np.diff(keep) > 0)


def test_in_each_bucket_the_point_making_the_largest_triangle_wins():
    # Ten points, four kept: two middle buckets of four points each (indices 1-4 and 5-8); each
    # holds one outlier, neither on a stride position, and LTTB must pick exactly those.
    x = np.arange(10, dtype=float)
    y = np.zeros(10)
    y[2], y[7] = 9.0, -9.0
    assert {2, 7}.isdisjoint(stride(10, 4))
    assert list(lttb_indices(x, y, 4)) == [0, 2, 7, 9]


@pytest.mark.parametrize("threshold", [2, 3])
def test_tiny_budgets_keep_only_the_ends_and_one_middle_point(threshold):
    x = np.arange(50, dtype=float)
    y = np.where(x == 31, 8.0, 1.0)
    keep = list(lttb_indices(x, y, threshold))
    assert keep == ([0, 49] if threshold == 2 else [0, 31, 49])


def test_a_budget_below_two_points_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        lttb_indices(np.arange(10, dtype=float), np.zeros(10), 1)


def test_short_series_are_untouched():
    x = np.arange(10, dtype=float)
    assert list(lttb_indices(x, x, 2_000)) == list(range(10))
    assert list(lttb_indices(x, x, 10)) == list(range(10))
