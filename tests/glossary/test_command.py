from io import StringIO

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def test_load_glossary_reports_counts_and_is_idempotent():
    out = StringIO()
    call_command("load_glossary", stdout=out, verbosity=0)
    assert "0 created, 0 updated" in out.getvalue()


def test_check_only_validates(tmp_path):
    out = StringIO()
    call_command("load_glossary", "--check", stdout=out)
    assert "term files are valid" in out.getvalue()
    (tmp_path / "broken.md").write_text("---\nslug: other\n---\n", encoding="utf-8")
    with pytest.raises(CommandError, match="does not match the file name"):
        call_command("load_glossary", "--check", "--dir", str(tmp_path))
