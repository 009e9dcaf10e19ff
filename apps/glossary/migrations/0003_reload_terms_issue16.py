"""Reloads the bundled term files once more: issue #16 corrected what several terms say about the index
(components, robust z-scores, calibrated regimes, final bars, episode labels, the VPIN bar proxy) and added
terms (final bar, robust z-score, contributions, drop risk, base rate, AUC, Brier score, calibration, mark and
index price, basis). A fresh database gets them from 0002; this brings existing databases, whose upgrade step
is `migrate`, to the same text. Idempotent like `load_glossary`: unchanged terms are not written.
"""

from django.db import migrations


def reload_terms(apps, schema_editor):
    from apps.glossary.loader import glossary_load

    glossary_load(term_model=apps.get_model("glossary", "Term"))


class Migration(migrations.Migration):

    dependencies = [
        ("glossary", "0002_load_terms"),
    ]

    operations = [
        migrations.RunPython(reload_terms, migrations.RunPython.noop),
    ]
