"""Chain reorganisation detection from block hashes by height (pure).

The stored chain is what flows were computed from; the incoming chain is what the node reports
now. Callers should re-fetch a few blocks below their stored tip (say 6) so the two overlap: a
reorg can only be seen where both chains name a block at the same height.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["DeepReorg", "find_fork_point", "heights_to_roll_back"]


class DeepReorg(ValueError):
    """The chains disagree at every height they share: the fork is below the overlap, fetch further back."""


def find_fork_point(stored: Mapping[int, str], incoming: Mapping[int, str]) -> int | None:
    """Height of the last block both chains share, or None when they agree wherever they overlap.

    The fork point is the highest shared height with equal hashes that lies below the lowest
    height where the hashes differ; stored blocks above it are stale. Hashes compare
    case-insensitively. Raises :class:`DeepReorg` when no shared height below the first
    disagreement has equal hashes.
    """
    common = sorted(stored.keys() & incoming.keys())
    mismatches = [h for h in common if stored[h].lower() != incoming[h].lower()]
    if not mismatches:
        return None
    first_bad = mismatches[0]
    agreeing = [h for h in common if h < first_bad]
    if not agreeing:
        raise DeepReorg(f"chains differ at every shared height up to {first_bad}; fetch blocks below {common[0]}")
    return agreeing[-1]


def heights_to_roll_back(stored: Mapping[int, str], fork_height: int) -> list[int]:
    """Stored heights above the fork point, ascending: their flows must be deleted and recomputed."""
    return sorted(h for h in stored if h > fork_height)
