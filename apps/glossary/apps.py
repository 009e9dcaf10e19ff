from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_delete, post_save


class GlossaryConfig(AppConfig):
    name = "apps.glossary"
    verbose_name = "Glossary"

    def ready(self) -> None:
        from apps.glossary.models import Term
        from apps.glossary.selectors import term_links_clear
        from apps.glossary.services import glossary_changed

        # {% term %} reads an in-process cache; a saved or deleted term must show at once.
        post_save.connect(term_links_clear, sender=Term, dispatch_uid="glossary-term-saved")
        post_delete.connect(term_links_clear, sender=Term, dispatch_uid="glossary-term-deleted")
        # The glossary index's cached listing is kept per glossary version, in every web process.
        post_save.connect(glossary_changed, sender=Term, dispatch_uid="glossary-version-saved")
        post_delete.connect(glossary_changed, sender=Term, dispatch_uid="glossary-version-deleted")
        m2m_changed.connect(glossary_changed, sender=Term.related.through, dispatch_uid="glossary-version-related")
