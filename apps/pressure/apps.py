from django.apps import AppConfig


class PressureConfig(AppConfig):
    name = "apps.pressure"
