"""ChatGPT-rendered HTML → Markdown, with fidelity.

The 2023 ShareGPT dumps store assistant turns as the HTML the ChatGPT web UI rendered: code blocks
with a language header, a "Copy code" button and `hljs` highlighting spans, KaTeX math, tables,
nested lists. We walk the DOM (lexbor via selectolax, never regexes over HTML) and write Markdown
back: fenced code with its language and the exact code text, `$...$` math from KaTeX's TeX
annotation, Markdown tables, and prose *without* escaping (`my_var` stays `my_var`; we never emit
`\\_` or `\\*` that the author did not write).

Human turns are text typed by a person: they are never parsed as HTML here (a `<script>` a user
pasted is content), only stripped of UI noise by `clean_human_text`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser, LexborNode

# A value is treated as HTML only when it contains tags the ChatGPT renderer emits; a later dump's
# plain-markdown answer such as "use a < b" is left alone.
HTML_MARKER = re.compile(
    r"<(?:div|p|pre|ol|ul|li|table|h[1-6]|blockquote|span|code|br|strong|em|hr)\b[^>]*>", re.I
)
# The "2 / 2" regenerate counter of the web UI: glued before the text of a human turn ("1 / 1Write
# a poem") or standing alone before the markdown div of an assistant turn.
GLUED_COUNTER = re.compile(r"^\s*(\d{1,2}) / (\d{1,2})(?=[^\d\s/])")
STANDALONE_COUNTER = re.compile(r"^\s*\d{1,2} / \d{1,2}\s*$")

SLUG_ATTRIBUTE = "data-message-model-slug"
HEADINGS = {f"h{i}": i for i in range(1, 7)}
BLOCK_TAGS = {
    "p", "div", "pre", "ul", "ol", "table", "blockquote", "hr", "section", "article", "header",
    "footer", "details", "summary", "figure", "main", "dl", "dt", "dd", *HEADINGS,
}  # fmt: skip
BLOCKISH = frozenset({*BLOCK_TAGS, "li"})
# Blocks that are only containers of other blocks and inline runs (no Markdown of their own).
CONTAINERS = BLOCK_TAGS - {"pre", "ul", "ol", "table", "blockquote", "hr", *HEADINGS}
LIST_BLOCK = re.compile(r"(?:- |\d+\. )")  # a block that is itself a list
# Browser UI that the copy of the page carried along; none of it is content.
DROPPED_TAGS = {"button", "svg", "script", "style", "noscript", "template", "head", "title"}
TABLE_SECTIONS = frozenset({"thead", "tbody", "tfoot"})
TABLE_CELLS = frozenset({"th", "td"})
EMPHASIS = {"strong": "**", "b": "**", "em": "*", "i": "*", "del": "~~", "s": "~~"}
# Where a <br> stood, until the paragraph is tidied: NUL never reaches a text node (the HTML
# parser replaces it), so it cannot collide with content.
BREAK = "\x00"
HARD_BREAK = "  \n"  # CommonMark's hard line break: the same paragraph, a new line
# A code block's language label: a short identifier ("python", "c++", "objective-c", "vb.net"),
# never a sentence, a file name with arguments or a button's text.
LANGUAGE = re.compile(r"[A-Za-z][A-Za-z0-9_+#.-]{0,31}")
# The code header's buttons, as some copies of the page kept their text outside a <button>.
BUTTON_LABELS = frozenset(
    label.casefold()
    for label in (
        "Copy", "Copy code", "Copied!", "Edit", "Run", "복사", "코드 복사", "편집", "نسخ",
        "نسخ الكود", "Copier", "Copier le code", "Kopieren", "Code kopieren", "Bearbeiten",
        "复制", "复制代码", "編集", "コピー", "コードをコピーする", "Copiar", "Copiar código",
        "Копировать", "Копировать код",
    )
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class AssistantTurn:
    """An assistant value converted to Markdown, plus what the HTML said about its author."""

    text: str
    model_slug: str | None = None  # `data-message-model-slug` of newer exports, e.g. "gpt-4"


def looks_like_html(value: str) -> bool:
    return HTML_MARKER.search(value) is not None


def clean_human_text(value: str) -> str:
    """Trim UI noise from a human turn without interpreting it: the glued regenerate counter."""
    match = GLUED_COUNTER.match(value)
    if match and int(match.group(1)) <= int(match.group(2)):
        value = value[match.end() :]
    return value.strip()


def convert_assistant_value(value: str) -> AssistantTurn:
    """Markdown for one assistant value (HTML or already Markdown)."""
    if not looks_like_html(value):
        return AssistantTurn(text=strip_leading_counter(value).strip())
    body = BODY.parse(value)
    slug = None
    if SLUG_ATTRIBUTE in value:  # a CSS search of every tree costs as much as rendering it
        slug_node = body.css_first(f"[{SLUG_ATTRIBUTE}]")
        slug = slug_node.attributes.get(SLUG_ATTRIBUTE) if slug_node else None
    markdown = join_blocks(render_blocks(body, top_level=True))
    return AssistantTurn(text=markdown.strip(), model_slug=slug)


class ReusedBody:
    """Values parsed into the <body> of one lexbor document, made anew every REUSE values.

    A new document costs ~30 µs before any parsing (lexbor sets up its memory pools): more than
    parsing a typical answer. Setting the body's inner HTML parses the value as a fragment in
    the body's context, which gives a body the same children as a whole-document parse of the
    value (the head-only tags a document would move to <head> stay in place, where the renderer
    drops or ignores them). The replaced children stay in the document's memory until it is
    dropped, hence the fresh document now and then. One per process: not thread-safe.
    """

    REUSE = 256

    def __init__(self) -> None:
        self.uses = self.REUSE

    def parse(self, value: str) -> LexborNode:
        if self.uses >= self.REUSE:
            body = LexborHTMLParser("").body
            assert body is not None, "lexbor always makes a body"
            self.body, self.uses = body, 0
        self.uses += 1
        self.body.inner_html = value
        return self.body


BODY = ReusedBody()


def html_to_markdown(html: str) -> str:
    """Convenience for callers that only want the text."""
    return convert_assistant_value(html).text


def strip_leading_counter(text: str) -> str:
    first, _, rest = text.partition("\n")
    if STANDALONE_COUNTER.match(first):
        return rest
    match = GLUED_COUNTER.match(text)
    return text[match.end() :] if match else text


# --- blocks -------------------------------------------------------------------------------------


def is_block(node: LexborNode) -> bool:
    return node.tag in BLOCKISH


def render_blocks(node: LexborNode, top_level: bool = False) -> list[str]:
    """Render a container's children as a list of Markdown blocks (paragraph-level pieces).

    Runs of inline children (text, emphasis, code, links) are gathered into one paragraph.
    """
    blocks: list[str] = []
    inline: list[str] = []
    for child in node.iter(include_text=True):
        tag = child.tag
        if tag == "-text":
            text = child.text_content or ""
            if top_level and not inline and STANDALONE_COUNTER.match(text):
                continue  # "1 / 2" in front of the markdown div
            inline.append(text)
        elif tag in DROPPED_TAGS:
            continue
        elif tag in BLOCKISH:
            if inline:
                add_paragraph(blocks, inline)
            blocks.extend(render_block(child))
        else:
            inline.append(render_inline(child))
    if inline:
        add_paragraph(blocks, inline)
    return [b for b in blocks if b and not b.isspace()]


def add_paragraph(blocks: list[str], inline: list[str]) -> None:
    """Close the pending run of inline pieces as one paragraph block."""
    text = tidy_inline("".join(inline))
    if text:
        blocks.append(text)
    inline.clear()


def render_block(node: LexborNode) -> list[str]:
    tag = node.tag
    if tag in CONTAINERS:  # most blocks (p, div): checked first
        return render_blocks(node)
    if tag in HEADINGS:  # a heading is one line: a <br> in it is a space
        text = tidy_inline(render_inline_children(node).replace(BREAK, " "))
        return [f"{'#' * HEADINGS[tag]} {text}"] if text else []
    if tag == "pre":
        return [render_code_block(node)]
    if tag in ("ul", "ol"):
        return [render_list(node)]
    if tag == "table":
        return [render_table(node)]
    if tag == "blockquote":
        inner = join_blocks(render_blocks(node))
        return ["\n".join(f"> {line}" if line else ">" for line in inner.split("\n"))]
    if tag == "hr":
        return ["---"]
    if tag == "li":  # a stray <li> outside a list
        return [render_list_item(node, "- ")]
    return render_blocks(node)


def join_blocks(blocks: list[str]) -> str:
    return "\n\n".join(blocks)


# --- code ---------------------------------------------------------------------------------------


def render_code_block(pre: LexborNode) -> str:
    """A fenced block from ChatGPT's <pre>: language from the header or class, exact code text."""
    code = first_descendant(pre, "code")
    if code is None:
        text = pre.text(deep=True)
        language = ""
    else:
        text = code.text(deep=True)  # all hljs spans flattened, entities decoded
        language = code_language(pre, code)
    text = text.rstrip("\n")
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{language}\n{text}\n{fence}"


def code_language(pre: LexborNode, code: LexborNode) -> str:
    """The `language-` class of the <code>, else the label of the block's header; "" if none."""
    for cls in (code.attributes.get("class") or "").split():
        if cls.startswith("language-"):
            return valid_language(cls.removeprefix("language-"))
    # The header bar names it too: "<span>python</span><button>Copy code</button>" (2023) or
    # "<div>python</div>…<button>Copy</button>" (2024–2025); empty when the block has none.
    for text in header_texts(pre):
        if text.casefold() not in BUTTON_LABELS:
            return valid_language(text)
    return ""


def header_texts(node: LexborNode) -> list[str]:
    """The text of the code block's chrome, before the code: buttons, icons and the code itself
    (nested in the header when a paste left its tags unclosed) are skipped."""
    texts: list[str] = []
    collect_header_texts(node, texts)
    return texts


def collect_header_texts(node: LexborNode, texts: list[str]) -> bool:
    """Append the texts under `node` that come before the code; True once the code is reached
    (nothing after it is the header)."""
    for child in node.iter(include_text=True):
        tag = child.tag
        if tag == "code":
            return True
        if tag == "-text":
            text = (child.text_content or "").strip()
            if text:
                texts.append(text)
        elif tag not in DROPPED_TAGS and collect_header_texts(child, texts):
            return True
    return False


def first_descendant(node: LexborNode, tag: str) -> LexborNode | None:
    """The first element named `tag` under `node`, in document order. A walk of the few nodes
    before it costs far less than a CSS query (~20 µs each in selectolax)."""
    return next((n for n in node.traverse() if n.tag == tag), None)


def valid_language(label: str) -> str:
    label = label.strip()
    return label if LANGUAGE.fullmatch(label) else ""


def render_inline_code(node: LexborNode) -> str:
    text = node.text(deep=True)
    if not text:
        return ""
    ticks = "`"
    while ticks in text:
        ticks += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


# --- lists --------------------------------------------------------------------------------------


def render_list(node: LexborNode) -> str:
    items = [c for c in node.iter() if c.tag == "li"]
    if node.tag != "ol":
        return "\n".join(render_list_item(item, "- ") for item in items)
    start = int_or(node.attributes.get("start"), 1)
    return "\n".join(
        render_list_item(item, f"{start + offset}. ") for offset, item in enumerate(items)
    )


def render_list_item(item: LexborNode, marker: str) -> str:
    """One item; continuation lines are indented under the text so nesting survives."""
    blocks = render_blocks(item)
    body = ""
    for block in blocks:
        if not body:
            body = block
        elif is_list_block(block):
            body += "\n" + block  # a nested list hugs its parent item
        else:
            body += "\n\n" + block
    if "\n" not in body:
        return marker + body
    indent = " " * len(marker)
    lines = body.split("\n")
    rest = [f"{indent}{line}" if line else "" for line in lines[1:]]
    return "\n".join([marker + lines[0], *rest])


def is_list_block(block: str) -> bool:
    return LIST_BLOCK.match(block) is not None


def int_or(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


# --- tables -------------------------------------------------------------------------------------


def render_table(table: LexborNode) -> str:
    rows = [[render_cell(cell) for cell in cells_of(row)] for row in table_rows(table)]
    rows = [row for row in rows if row]
    if not rows:
        return ""
    width = max(len(row) for row in rows)
    rows = [row + [""] * (width - len(row)) for row in rows]
    header, body = rows[0], rows[1:]
    lines = [table_line(header), table_line(["---"] * width), *(table_line(r) for r in body)]
    return "\n".join(lines)


def table_rows(table: LexborNode) -> list[LexborNode]:
    """The table's own rows, in its sections (thead, tbody, tfoot) or directly under it; the rows
    of a table nested in a cell stay in that cell."""
    rows = []
    for child in table.iter():
        if child.tag == "tr":
            rows.append(child)
        elif child.tag in TABLE_SECTIONS:
            rows.extend(row for row in child.iter() if row.tag == "tr")
    return rows


def cells_of(row: LexborNode) -> list[LexborNode]:
    return [cell for cell in row.iter() if cell.tag in TABLE_CELLS]


def render_cell(cell: LexborNode) -> str:
    # A table row is one line: a line break in a cell is GFM's inline <br>, as ChatGPT writes it.
    text = " ".join(render_blocks(cell)).replace(HARD_BREAK, "<br>").replace("\n", " ")
    return text.replace("|", "\\|")  # the one escape a Markdown table cannot do without


def table_line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# --- inline -------------------------------------------------------------------------------------


def render_inline_children(node: LexborNode) -> str:
    return "".join([render_inline(child) for child in node.iter(include_text=True)])


def render_inline(node: LexborNode) -> str:
    tag = node.tag
    if tag == "-text":
        return node.text_content or ""
    if tag in DROPPED_TAGS:
        return ""
    if tag == "br":
        return BREAK
    if tag == "code":
        return render_inline_code(node)
    if tag == "span" and is_katex(node):
        return render_math(node)
    if tag in EMPHASIS:
        return wrap_emphasis(render_inline_children(node), EMPHASIS[tag])
    if tag == "a":
        return render_link(node)
    if tag == "img":
        alt = node.attributes.get("alt") or ""
        return f"![{alt}]({node.attributes.get('src') or ''})"
    if is_block(node):  # a block inside inline context (e.g. <p> in a table cell)
        return " " + join_blocks(render_blocks(node)) + " "
    return render_inline_children(node)


def wrap_emphasis(text: str, marker: str) -> str:
    """`**x**`, keeping surrounding spaces outside the markers as Markdown requires."""
    stripped = text.strip()
    if not stripped:
        return text
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()) :]
    return f"{lead}{marker}{stripped}{marker}{trail}"


def render_link(node: LexborNode) -> str:
    text = tidy_inline(render_inline_children(node))
    href = node.attributes.get("href") or ""
    if not href:
        return text
    return f"[{text or href}]({href})"


def is_katex(node: LexborNode) -> bool:
    classes = (node.attributes.get("class") or "").split()
    return "katex" in classes or "math" in classes or "katex-display" in classes


def render_math(node: LexborNode) -> str:
    """KaTeX renders the TeX source into an <annotation>; that source is what the model saw."""
    display = "math-display" in (node.attributes.get("class") or "").split()
    for inner in node.traverse():  # KaTeX's display wrapper comes before the annotation
        tag = inner.tag
        if tag == "annotation" and inner.attributes.get("encoding") == "application/x-tex":
            tex = inner.text(deep=True).strip()
            return f"$${tex}$$" if display else f"${tex}$"
        if tag == "span" and "katex-display" in (inner.attributes.get("class") or "").split():
            display = True
    return tidy_inline(node.text(deep=True))


def tidy_inline(text: str) -> str:
    """Collapse HTML whitespace within each line of inline text; a <br> is a hard line break
    (the newline after it in ChatGPT's HTML is only whitespace), two in a row a new paragraph,
    one at either end nothing."""
    if BREAK not in text:
        return tidy_lines(text)
    tidied, gap = "", False
    for line in map(tidy_lines, text.split(BREAK)):
        if not line:
            gap = bool(tidied)
            continue
        if tidied:
            tidied += "\n\n" if gap else HARD_BREAK
        tidied, gap = tidied + line, False
    return tidied


def tidy_lines(text: str) -> str:
    if "\n" not in text:
        return tidy_line(text)
    return "\n".join(tidy_line(line) for line in text.split("\n")).strip()


def tidy_line(text: str) -> str:
    """Runs of whitespace as one space, none at the ends. str.split() treats every Unicode space
    (NBSP included) as HTML does, and is faster than a regex; faster still is to see that there
    is nothing to do: every whitespace character but " " is unprintable, so a printable text
    without "  " or an outer space is tidy already (most paragraphs: half the time)."""
    if text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text
    return " ".join(text.split())
