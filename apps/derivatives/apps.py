from django.apps import AppConfig


class DerivativesConfig(AppConfig):
    name = "apps.derivatives"
    verbose_name = "Derivatives"

    def ready(self):
        from apps.derivatives.providers import derivatives_components
        from apps.pressure.providers import component_provider_register

        component_provider_register(name="derivatives", provider=derivatives_components)
