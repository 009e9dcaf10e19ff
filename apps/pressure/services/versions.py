"""The bars version of an instrument moved on after every write of its bars, so cached reads are rebuilt."""

from __future__ import annotations

from django.db import connection, transaction

from apps.pressure.selectors import bars_version_key
from pressureweb.payload_cache import version_bump


def bars_version_bump(instrument_id: int) -> None:
    version_bump(bars_version_key(instrument_id))


_bumps_pending: dict[int, object] = {}  # instrument id -> its bump waiting for the current transaction's commit


def bars_version_bump_on_commit(instrument_id: int) -> None:
    """bars_version_bump once the current transaction commits, once however many writes ask for it."""
    pending = _bumps_pending.get(instrument_id)
    # Still queued by this transaction (registered at this savepoint level or an outer one of it): a rolled-back
    # transaction drops it, and the next write queues a new one.
    current = set(connection.savepoint_ids)
    if pending is not None and any(func is pending and set(sids) <= current
                                   for sids, func, _ in connection.run_on_commit):
        return

    def bump():
        _bumps_pending.pop(instrument_id, None)
        bars_version_bump(instrument_id)

    _bumps_pending[instrument_id] = bump
    transaction.on_commit(bump)
