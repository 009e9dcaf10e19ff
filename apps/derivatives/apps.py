from django.apps import AppConfig


class DerivativesConfig(AppConfig):
    name = "apps.derivatives"
    verbose_name = "Derivatives"
