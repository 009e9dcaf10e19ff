import json
import re

from apps.glossary.rendering import json_ld_script, markdown_plain, markdown_render


def test_markdown_is_rendered():
    html = markdown_render("Uses `taker_sell_ratio` and **bold**.\n\n- one\n- two")
    assert "<code>taker_sell_ratio</code>" in html
    assert "<strong>bold</strong>" in html
    assert "<li>one</li>" in html


def test_script_and_dangerous_markup_are_stripped():
    html = markdown_render(
        'Before <script>alert("x")</script> after.\n\n'
        '<img src=x onerror="alert(1)"> <a href="javascript:alert(1)" onclick="alert(2)">link</a> '
        '<iframe src="https://evil.example"></iframe> <style>body{}</style> [ok](https://example.com/)'
    )
    assert "<script" not in html and "alert(\"x\")" not in html
    assert "onerror" not in html and "onclick" not in html and "javascript:" not in html
    assert "<iframe" not in html and "<img" not in html and "<style" not in html
    assert '<a href="https://example.com/" rel="noopener noreferrer">ok</a>' in html
    assert "Before" in html and "after." in html


def test_placeholders_are_filled_before_markdown(settings):
    settings.BOOK_DEPTH_BANDS = (0.2, 0.8)
    assert "0.2% and 0.8%" in markdown_render("bands {{ BOOK_DEPTH_BANDS }}")


def test_placeholder_values_cannot_inject_markup(settings):
    settings.SPI_WINDOW_BARS = "<script>alert(1)</script>"
    assert "<script" not in markdown_render("{{ SPI_WINDOW_BARS }}")


def test_plain_text_for_answers():
    assert markdown_plain("A `code` & **b**\n\nnext") == "A code & b next"


def test_json_ld_script_escapes_markup():
    block = json_ld_script({"name": "</script><script>alert(1)</script> & more"})
    assert block.startswith('<script type="application/ld+json">') and block.endswith("</script>")
    payload = re.fullmatch(r'<script type="application/ld\+json">(.*)</script>', str(block), re.DOTALL).group(1)
    assert "<" not in payload and ">" not in payload and "&" not in payload
    assert json.loads(payload) == {"name": "</script><script>alert(1)</script> & more"}
