"""Start of the collector's writer process.

Kept free of Django imports at module level: the spawned process unpickles this initializer
before Django is set up, and a module that imports models could not even be loaded then.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal


def writer_init(parent_pid: int, databases: dict, api_base: str | None, ws_base: str | None) -> None:
    """Die with the collector, then set up Django on the collector's databases and exchange URLs."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(1)  # the collector died before prctl took effect
    # Ctrl-C and SIGTERM go to the collector, which flushes through this process and then stops it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import django

    django.setup()
    from django.db import connections

    for alias, cfg in databases.items():
        connections[alias].close()
        connections[alias].settings_dict.update(cfg)
    from apps.exchanges import collector  # noqa: F401 - the writer's code, loaded before the freeze
    from apps.exchanges.services import adapters_point_at

    if api_base or ws_base:
        adapters_point_at(api_base=api_base, ws_base=ws_base)
    # Modules, settings and ccxt's tables live as long as the process: a full collection walking
    # them cost ~100 ms in the middle of a batch. Freeze them and collect young objects less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
