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


# --- the 2024–2025 markup (issue 12) -------------------------------------------------------------


def test_2025_code_blocks_take_the_label_or_class_never_a_button(fixtures: Path) -> None:
    """`<pre class="overflow-visible!">`, a header `div` whose label is plain text (or empty),
    Copy/Edit buttons with icons and aria-labels, `whitespace-pre! language-…` code with token
    spans and data-start/data-end attributes everywhere."""
    markdown = html_to_markdown(load(fixtures, "code_2025.html"))
    assert markdown == (
        "Read the file line by line:\n\n"
        "```python\n"
        'with open("data.txt", encoding="utf-8") as handle:\n'
        "    for line in handle:\n"
        "        print(line.rstrip())\n"
        "```\n\n"
        "No language on this one:\n\n"
        "```\n$ make test\n```\n\n"
        "Done."
    )


def test_localized_button_labels_are_never_a_language(fixtures: Path) -> None:
    """In buttons (a span inside, the 2023 fallback's trap) or as bare header text."""
    markdown = html_to_markdown(load(fixtures, "code_localized_buttons.html"))
    assert markdown == (
        "Voici trois blocs :\n\n```\nls -la\n```\n\n```\necho 안녕\n```\n\n```\nx = 1\n```"
    )


def test_a_malformed_paste_keeps_its_code_out_of_the_language(fixtures: Path) -> None:
    """The header's tags were never closed before <code>: the code sits inside the label."""
    markdown = html_to_markdown(load(fixtures, "code_malformed_paste.html"))
    assert markdown == "Run it with:\n\n```\npython3 main.py -a 2\n```\n\nThen check the output."


def test_a_language_is_a_short_identifier() -> None:
    def fenced(header: str, code_class: str = "hljs") -> str:
        html = (
            f'<div class="markdown"><pre><div class="flex">{header}</div>'
            f'<code class="{code_class}">x</code></pre></div>'
        )
        return html_to_markdown(html).split("\n")[0]

    for label in ("python", "c++", "c#", "objective-c", "vb.net", "shell-session"):
        assert fenced(f"<span>{label}</span>") == f"```{label}"
    for label in ("python3 main.py -a 2", "Copy code", "a" * 40, "1 / 2", "?"):
        assert fenced(f"<span>{label}</span>") == "```"
    assert fenced("<span>Copy</span>", "hljs language-rust") == "```rust"


def test_br_is_a_hard_line_break_in_its_paragraph(fixtures: Path) -> None:
    from markdown_it import MarkdownIt

    markdown = html_to_markdown(load(fixtures, "line_breaks.html"))
    assert markdown == (
        "Dear Sam,  \nthank you for the letter.  \nBest,  \nAlex\n\n"
        "Roses are red\n\nviolets are blue\n\n"  # two in a row: a new paragraph
        "- first line  \n  second line\n\n"
        "| Step | Note |\n| --- | --- |\n| 1 | mix<br>then bake |\n\n"  # a row stays one line
        "### A title"
    )
    # What a CommonMark renderer makes of it: one paragraph with line breaks, as the page showed.
    rendered = MarkdownIt("commonmark").enable("table").render(markdown)
    assert "<p>Dear Sam,<br />\nthank you for the letter.<br />\nBest,<br />\nAlex</p>" in rendered
    assert "<li>first line<br />\nsecond line</li>" in rendered
    assert "<td>mix<br>then bake</td>" in rendered


def test_tidy_line_is_whitespace_collapsing_whatever_the_spaces() -> None:
    """The shortcut for already tidy text never changes what the split-and-join would give:
    NBSP, ideographic and line separators, control whitespace, emoji and zero-width marks."""
    import random

    from sharegpt_tools.clean.html import tidy_line

    pool = " \t\n\r\x0b\x0c\x1c\x85\xa0\u2000\u2028\u3000\u200b\u200dab✓😀"
    rng = random.Random(12)
    for _ in range(20000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 8)))
        assert tidy_line(text) == " ".join(text.split()), repr(text)


def test_a_nested_tables_rows_stay_in_their_cell() -> None:
    """Rows are the table's own (in thead/tbody or directly under it): a table inside a cell
    does not add rows to the outer one."""
    html = (
        "<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody>"
        "<tr><td>1</td><td><table><tr><td>x</td></tr><tr><td>y</td></tr></table></td></tr>"
        "</tbody></table>"
    )
    lines = html_to_markdown(f"<div>{html}</div>").splitlines()
    assert len(lines) == 3 and lines[:2] == ["| a | b |", "| --- | --- |"]
    assert lines[2].startswith("| 1 | ")


def test_a_reused_document_converts_as_a_fresh_one_does(fixtures: Path) -> None:
    """Values are parsed into one document's body, made anew every REUSE values: each value
    gives what a whole-document parse of it gives, whatever came before it (unclosed tags
    included), and head-only tags change nothing."""
    from selectolax.lexbor import LexborHTMLParser

    from sharegpt_tools.clean import html

    values = [load(fixtures, path.name) for path in sorted((fixtures / "html").glob("*.html"))]
    values += [
        "<html><head><title>Tab</title><style>p{}</style><meta charset=utf-8></head>"
        "<body><p>A <b>bold</b> start.</p></body></html>",
        "<div><p>Unclosed <em>emphasis<ul><li>and a list",
        "<p>After the unclosed one.</p>",
    ]

    def fresh(value: str) -> str:
        body = LexborHTMLParser(value).body
        assert body is not None
        return html.join_blocks(html.render_blocks(body, top_level=True)).strip()

    reused = html.ReusedBody()
    for _ in range(3 * html.ReusedBody.REUSE // len(values) + 1):  # across several documents
        for value in values:
            body = reused.parse(value)
            assert html.join_blocks(html.render_blocks(body, top_level=True)).strip() == fresh(
                value
            )
    assert reused.uses <= html.ReusedBody.REUSE
