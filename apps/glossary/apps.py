from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class GlossaryConfig(AppConfig):
    name = "apps.glossary"
    verbose_name = "Glossary"

    def ready(self) -> None:
        from apps.glossary.models import Term
        from apps.glossary.selectors import term_links_clear

        # {% term %} reads an in-process cache; a saved or deleted term must show at once.
        post_save.connect(term_links_clear, sender=Term, dispatch_uid="glossary-term-saved")
        post_delete.connect(term_links_clear, sender=Term, dispatch_uid="glossary-term-deleted")
