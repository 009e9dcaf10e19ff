"""Loads the bundled term files, so a fresh `migrate` has the glossary.

It runs the current loader against the historical model; later changes to the files are applied
with `manage.py load_glossary` (idempotent), not by new migrations.
"""

from django.db import migrations


def load_terms(apps, schema_editor):
    from apps.glossary.loader import glossary_load

    glossary_load(term_model=apps.get_model("glossary", "Term"))


class Migration(migrations.Migration):

    dependencies = [
        ("glossary", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(load_terms, migrations.RunPython.noop),
    ]
