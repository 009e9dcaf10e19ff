"""Thinning long chart series with Largest-Triangle-Three-Buckets (Steinarsson 2013), from tsdownsample."""

from __future__ import annotations

import numpy as np
from tsdownsample import LTTBDownsampler


def lttb_indices(x: np.ndarray, y: np.ndarray, threshold: int) -> np.ndarray:
    """Ascending indices of the points to keep: at most ``threshold``, always the first and the last.

    A series no longer than ``threshold`` is kept whole; with ``threshold`` 2 only the ends remain.
    ``x`` must ascend. A missing y (NaN) counts as 0, so a gap stays visible in the thinned line.
    """
    n = len(x)
    if threshold < 2:
        raise ValueError(f"threshold must be at least 2 (the first and the last point), got {threshold}")
    if n <= threshold:
        return np.arange(n)
    if threshold == 2:  # tsdownsample's LTTB needs 3 buckets: the first point, one middle, the last
        return np.array([0, n - 1])
    x = np.asarray(x, dtype=np.float64)
    y = np.nan_to_num(np.asarray(y, dtype=np.float64), nan=0.0)
    return LTTBDownsampler().downsample(x, y, n_out=threshold).astype(np.int64)
