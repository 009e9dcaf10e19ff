"""PressureWeb's shared library: one module per shared concern, imported by the apps, importing none of them."""
