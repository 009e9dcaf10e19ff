from django.dispatch import Signal

# Sent after flow bars of an asset were written (chain, asset): alert evaluation listens.
flow_bars_changed = Signal()
