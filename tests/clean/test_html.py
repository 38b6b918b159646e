"""HTML → Markdown fidelity on ChatGPT-rendered fixtures."""

from __future__ import annotations

from pathlib import Path

from sharegpt_tools.clean.html import clean_human_text, convert_assistant_value, html_to_markdown


def load(fixtures: Path, name: str) -> str:
    return (fixtures / "html" / name).read_text(encoding="utf-8")


def test_code_block_keeps_language_and_exact_code_text(fixtures: Path) -> None:
    markdown = html_to_markdown(load(fixtures, "code_block.html"))
    expected_code = (
        "```python\n"
        "def escape(text: str) -> str:\n"
        "    # order matters: & first\n"
        '    return text.replace("&", "&amp;").replace("<", "&lt;")\n'
        "\n"
        "print(escape('<div class=\"x\">'))  # my_var * 2\n"
        "```"
    )
    assert expected_code in markdown
    assert "Copy code" not in markdown
    assert "hljs" not in markdown
    assert markdown.startswith("Here is a function that escapes HTML & checks `a < b`:")
    assert markdown.endswith("That's all.")


def test_nested_lists_table_quote_and_link(fixtures: Path) -> None:
    markdown = html_to_markdown(load(fixtures, "lists_table.html"))
    assert markdown == (
        "## Plan\n\n"
        "1. Preheat the oven to 180 °C.\n"
        "2. Mix the **dry** ingredients:\n"
        "   - flour\n"
        "   - sugar\n"
        "     - brown\n"
        "     - white\n"
        "3. Bake for *25 minutes*.\n\n"
        "| Ingredient | Amount |\n"
        "| --- | --- |\n"
        "| Flour | 200 g |\n"
        "| Sugar \\| brown | `50 g` |\n\n"
        "> Tip: use [room-temperature butter](https://example.org/butter)."
    )


def test_katex_becomes_its_tex_source(fixtures: Path) -> None:
    markdown = html_to_markdown(load(fixtures, "math.html"))
    assert markdown == (
        "The area is $\\pi r^2$ and in general:\n\n"
        "$$\\int_0^{2\\pi} \\int_0^r \\rho \\, d\\rho \\, d\\theta$$"
    )


def test_model_slug_and_regenerate_counter(fixtures: Path) -> None:
    turn = convert_assistant_value(load(fixtures, "slug_counter.html"))
    assert turn.model_slug == "gpt-4"
    # No escaping artifacts: underscores and asterisks stay as the author wrote them.
    assert turn.text == (
        "Use `snake_case` names like `my_var_name` and *args in Python; 2 * 3 = 6."
    )


def test_plain_markdown_values_pass_through() -> None:
    value = "Use `a < b` when\n\n- one\n- two_three"
    assert convert_assistant_value(value).text == value


def test_human_text_is_never_parsed_as_html() -> None:
    typed = "1 / 1Why does <script>alert(1)</script> run? a < b && c > d, my_var"
    assert clean_human_text(typed) == (
        "Why does <script>alert(1)</script> run? a < b && c > d, my_var"
    )


def test_human_counter_only_stripped_when_glued() -> None:
    assert clean_human_text("2 / 2can you help") == "can you help"
    assert clean_human_text("1 / 2 cup of sugar is how much?") == "1 / 2 cup of sugar is how much?"
    assert clean_human_text("3 / 2Hello") == "3 / 2Hello"  # not a counter: 3 of 2


def test_code_with_backticks_gets_a_longer_fence() -> None:
    html = (
        '<div class="markdown prose"><pre><code class="language-markdown">'
        "```js\nx\n```</code></pre></div>"
    )
    assert html_to_markdown(html) == "````markdown\n```js\nx\n```\n````"
