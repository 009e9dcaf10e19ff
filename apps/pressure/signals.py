from django.dispatch import Signal

# Sent after a batch's transaction commits, with instrument, changed={interval: [PressureBar]} and
# finalized={interval: [PressureBar]} (the bars among them that became final). Live pushes listen;
# ingestion knows none of them.
bars_changed = Signal()

# Sent after bars became final (their bucket ended and the grace passed), with instrument and
# finalized={interval: [PressureBar]}: alerts and the live headline act on these only.
bars_finalized = Signal()
