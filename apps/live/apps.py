from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "apps.live"

    def ready(self):
        from apps.live.publish import bars_publish
        from apps.pressure.signals import bars_changed

        bars_changed.connect(lambda sender, instrument, changed, finalized=None, **kw: bars_publish(
            instrument=instrument, changed=changed, finalized=finalized), weak=False, dispatch_uid="live-bars-publish")
