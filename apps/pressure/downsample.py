"""Largest-Triangle-Three-Buckets (Steinarsson 2013): keep the points that preserve a line's shape."""

from __future__ import annotations

import numpy as np


def lttb_indices(x: np.ndarray, y: np.ndarray, threshold: int) -> np.ndarray:
    """Indices of the points to keep (always the first and last), at most `threshold` of them."""
    n = len(x)
    if threshold >= n or threshold < 3:
        return np.arange(n)
    x = np.asarray(x, dtype=float)
    y = np.nan_to_num(np.asarray(y, dtype=float), nan=0.0)
    keep = np.empty(threshold, dtype=np.int64)
    keep[0], keep[-1] = 0, n - 1
    edges = np.linspace(1, n - 1, threshold - 1).astype(np.int64)
    a = 0
    for i in range(threshold - 2):
        lo, hi = edges[i], edges[i + 1]
        nxt_lo, nxt_hi = edges[i + 1], edges[i + 2] if i + 2 < len(edges) else n
        avg_x, avg_y = x[nxt_lo:max(nxt_hi, nxt_lo + 1)].mean(), y[nxt_lo:max(nxt_hi, nxt_lo + 1)].mean()
        area = np.abs((x[a] - avg_x) * (y[lo:hi] - y[a]) - (x[a] - x[lo:hi]) * (avg_y - y[a]))
        a = lo + int(np.argmax(area))
        keep[i + 1] = a
    return keep
