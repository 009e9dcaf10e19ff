from django.db import models

from apps.markets.models import Instrument


class ReplayStream(models.Model):
    """A looping replay of a recording into one instrument, on a clock anchored to wall time.

    Event time on the wall = anchor_ms + loop * period + (event time - recording start).
    clock_ms is how far (in replay-clock ms since the anchor) events have been fed; it only
    moves forward with a conditional UPDATE, so two ticks never feed the same window.
    """

    name = models.SlugField(unique=True)
    instrument = models.OneToOneField(Instrument, on_delete=models.CASCADE, related_name="replay_stream")
    files = models.JSONField(help_text="Recording files, in order, relative to REPLAY_DIR.")
    anchor_ms = models.BigIntegerField()
    clock_ms = models.BigIntegerField(default=-1, help_text="-1: nothing fed yet (events at clock 0 come next).")
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
