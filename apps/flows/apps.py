from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "apps.flows"
    label = "flows"
    verbose_name = "Exchange flows"

    def ready(self):
        from apps.flows.providers import flow_components
        from apps.pressure.providers import component_provider_register

        component_provider_register(name="flows", provider=flow_components)
