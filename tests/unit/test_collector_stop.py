"""The collector's flusher ends on stop by itself: it must not depend on a cancellation, which
Python 3.11's asyncio.wait_for can lose (the stop then hung for good)."""

import asyncio

from apps.exchanges.collector import Collector


def test_the_flusher_ends_on_stop_without_being_cancelled():
    async def scenario() -> bool:
        collector = Collector(writer="thread", publish=False, books=False, liquidations=False, batch_ms=50)
        flusher = asyncio.create_task(collector._flusher())
        await asyncio.sleep(0)  # the flusher starts waiting for its next batch
        collector.stop()
        done, _ = await asyncio.wait({flusher}, timeout=2)
        flusher.cancel()
        collector._writer.shutdown()
        return flusher in done and not flusher.cancelled()

    assert asyncio.run(scenario())
