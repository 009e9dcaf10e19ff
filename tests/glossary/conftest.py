import pytest

from apps.glossary.selectors import term_links_clear


@pytest.fixture(autouse=True)
def fresh_term_links():
    # Tests roll back their writes, which post_save cannot see: never reuse links across tests.
    term_links_clear()
    yield
    term_links_clear()
