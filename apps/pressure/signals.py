from django.dispatch import Signal

# Sent after a batch's transaction commits, with instrument and changed={interval: [PressureBar]}.
# Live pushes listen; ingestion knows none of them.
bars_changed = Signal()

# Sent after bars became final (their bucket ended and the grace passed), with instrument and
# finalized={interval: [PressureBar]}: alerts and the live headline act on these only.
bars_finalized = Signal()
