from django.dispatch import Signal

# Sent after a batch's transaction commits, with instrument and changed={interval: [PressureBar]}.
# Live pushes and alert evaluation listen; ingestion knows neither.
bars_changed = Signal()
