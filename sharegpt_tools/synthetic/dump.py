"""Deterministic generator of a realistic synthetic *raw* ShareGPT dump (2023, ShareGPT90k style).

The real dumps (`sg_90k_part1.json` and friends) are one JSON array of rows shaped like
``{"id": "QWJhYmF", "conversations": [{"from": "human", "value": ...}, ...], "model": ...}``
whose assistant turns are the HTML the ChatGPT web UI rendered (code blocks with hljs spans and
a "Copy code" button, KaTeX math, tables, nested lists), mixed with everything a cleaner has to
survive: duplicates, broken structure, malformed rows, refusals and the odd 1 MB paste.

Everything is drawn from one `random.Random(seed)`, so the same (n, seed) gives the same bytes.
Memory stays flat in n: duplicates are copied from a small ring buffer of recent rows.
"""

from __future__ import annotations

import html
import itertools
import os
import random
import re
import string
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import orjson

from sharegpt_tools.synthetic import phrases as ph

MALFORMED_KINDS = (
    "bare_string",
    "null",
    "number",
    "list",
    "no_conversations",
    "conversations_not_list",
    "turn_is_string",
    "value_number",
    "value_null",
    "no_id",
)
STRUCTURE_KINDS = (
    "leading_gpt",
    "trailing_human",
    "roles_user_assistant",
    "role_chatgpt",
    "role_bard",
    "system_first",
    "empty_value",
    "whitespace_value",
    "missing_value",
    "human_only",
)

# Per-row probabilities of each injected kind; every other row is an ordinary conversation.
P_HUGE_TURN = 1 / 5000
P_MALFORMED = 0.009  # plus one forced row per kind when n >= 200, so ~1% overall
P_EXACT_DUPLICATE = 0.03
P_NEAR_DUPLICATE = 0.03
P_DUPLICATE_ID = 0.005
P_STRUCTURE = 0.05
P_REFUSAL_TURN = 0.02  # per assistant turn
P_SPLIT_ID = 0.04  # a conversation the exporter split into id_0, id_1, ...
P_MARKDOWN_ROW = 0.03  # later dumps stored plain markdown instead of HTML
RING_SIZE = 256
HUGE_TURN_CHARS = 1_000_000

ID_ALPHABET = string.ascii_letters + string.digits
EXCHANGE_CUM_WEIGHTS = list(itertools.accumulate((45, 22, 13, 9, 6, 5)))
LANGS = list(ph.LANGUAGE_WEIGHTS)
LANG_CUM_WEIGHTS = list(itertools.accumulate(ph.LANGUAGE_WEIGHTS.values()))

WRAPPER_CLASSES = (  # the markdown div's class over the 2023 UI versions; {turn} = turn number
    "markdown prose w-full break-words dark:prose-invert light",
    "request-:r0:-{turn} markdown prose break-words dark:prose-invert light",
    "request-:r0:-{turn} markdown prose break-words dark:prose-invert dark",
)
WRAPPER_CUM_WEIGHTS = [0.8, 0.92, 1.0]
SLUG_WRAPPER = (
    '<div data-message-author-role="assistant" data-message-id="{uuid}" '
    'data-message-model-slug="{slug}" class="min-h-[20px] flex flex-col items-start gap-4 '
    'whitespace-pre-wrap break-words">{inner}</div>'
)
CODE_BLOCK = (
    '<pre><div class="bg-black mb-4 rounded-md"><div class="flex items-center relative '
    'text-gray-200 bg-gray-800 px-4 py-2 text-xs font-sans"><span class="">{lang}</span>'
    '<button class="flex ml-auto gap-2"><svg stroke="currentColor" fill="none" stroke-width="2" '
    'viewBox="0 0 24 24" stroke-linecap="round" stroke-linejoin="round" class="h-4 w-4" '
    'height="1em" width="1em" xmlns="http://www.w3.org/2000/svg"><path d="M16 4h2a2 2 0 0 1 2 '
    '2v14a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2h2"></path><rect x="8" y="2" width="8" '
    'height="4" rx="1" ry="1"></rect></svg>Copy code</button></div><div class="p-4 '
    'overflow-y-auto"><code class="!whitespace-pre hljs language-{lang}">{code}</code></div>'
    "</div></pre>"
)


@dataclass
class SampleStats:
    """How many rows were written and how many carry each injected kind or label."""

    n: int
    counts: dict[str, int] = field(default_factory=dict)

    def fraction(self, kind: str) -> float:
        return self.counts.get(kind, 0) / self.n if self.n else 0.0


def generate_records(n: int, seed: int = 0) -> Iterator[object]:
    """Yield n raw rows (mostly dicts, some malformed non-dicts), deterministic for (n, seed)."""
    for row, _labels in _DumpGenerator(n, seed).rows():
        yield row


def write_sample(path: Path, n: int, seed: int = 0) -> SampleStats:
    """Stream the rows as ONE JSON array to path, atomically; return counts per kind."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    counts: Counter[str] = Counter()
    try:
        with open(tmp, "wb") as out:
            out.write(b"[")
            for index, (row, labels) in enumerate(_DumpGenerator(n, seed).rows()):
                if index:
                    out.write(b",\n")
                out.write(orjson.dumps(row))
                counts.update(labels)
            out.write(b"]")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return SampleStats(n=n, counts=dict(sorted(counts.items())))


# --------------------------------------------------------------------------------------------
# Rows: which kind each row is, and the ring buffer that duplicates are copied from.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Style:
    """What stays the same across one conversation's turns."""

    lang: str
    model: str | None  # value of the row's "model" key; None = no key
    slug: str | None  # per-turn data-message-model-slug; None = no attribution wrapper
    wrapper: str
    markdown: bool
    labels: tuple[str, ...]  # model family and language, counted in SampleStats


@dataclass(frozen=True)
class _Recent:
    id: str
    conversations: list[dict]
    model: str | None
    labels: tuple[str, ...]


class _DumpGenerator:
    def __init__(self, n: int, seed: int) -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.n = n
        self.rng = random.Random(seed)
        self.recent: deque[_Recent] = deque(maxlen=RING_SIZE)
        self.pending_split_ids: list[str] = []
        self.forced = self._plan_forced_rows()

    def _plan_forced_rows(self) -> dict[int, str]:
        """Rare kinds get fixed positions so that small samples still contain each of them."""
        kinds = [f"malformed:{kind}" for kind in MALFORMED_KINDS] if self.n >= 200 else []
        if self.n >= 1000:
            kinds.append("huge_turn")
        return dict(zip(self.rng.sample(range(self.n), len(kinds)), kinds, strict=True))

    def rows(self) -> Iterator[tuple[object, list[str]]]:
        for index in range(self.n):
            yield self._row(self.forced.get(index) or self._draw_kind())

    def _draw_kind(self) -> str:
        r = self.rng.random()
        for probability, kind in (
            (P_HUGE_TURN, "huge_turn"),
            (P_MALFORMED, "malformed"),
            (P_EXACT_DUPLICATE, "exact_duplicate"),
            (P_NEAR_DUPLICATE, "near_duplicate"),
            (P_DUPLICATE_ID, "duplicate_id"),
            (P_STRUCTURE, "structure"),
        ):
            if r < probability:
                return kind
            r -= probability
        return "normal"

    def _row(self, kind: str) -> tuple[object, list[str]]:
        rng = self.rng
        if kind in ("exact_duplicate", "near_duplicate", "duplicate_id") and not self.recent:
            kind = "normal"  # nothing earlier to duplicate yet
        if kind in ("exact_duplicate", "near_duplicate"):
            source = rng.choice(self.recent)
            conversations = [dict(turn) for turn in source.conversations]
            if kind == "near_duplicate":
                conversations[0]["value"] = _perturb(rng, conversations[0]["value"])
            row = _make_row(_random_id(rng), conversations, source.model)
            return row, [kind, *source.labels]
        if kind == "malformed":
            kind = f"malformed:{rng.choice(MALFORMED_KINDS)}"
        if kind.startswith("malformed:"):
            return _malformed_row(rng, kind.partition(":")[2], self._fresh_row), ["malformed", kind]

        reused_id = rng.choice(self.recent).id if kind == "duplicate_id" else None
        row, style, labels = self._fresh_row(reused_id)
        labels.insert(0, kind)
        if kind == "normal":
            turns = [dict(turn) for turn in row["conversations"]]
            self.recent.append(_Recent(row["id"], turns, row.get("model"), tuple(labels[1:])))
        elif kind == "structure":
            problem = rng.choice(STRUCTURE_KINDS)
            _break_structure(rng, row["conversations"], problem, style.lang)
            labels.append(f"structure:{problem}")
        elif kind == "huge_turn":
            turn = rng.choice([t for t in row["conversations"] if t["from"] == "human"])
            turn["value"] += "\n\n" + _huge_log_paste(rng)
        return row, labels

    def _fresh_row(self, row_id: str | None = None) -> tuple[dict, _Style, list[str]]:
        """A new well-formed conversation and its labels (model family, language, refusal)."""
        style = _pick_style(self.rng)
        conversations, refused = _conversation(self.rng, style)
        if "gpt4:leading_line" in style.labels:  # some exports put the model atop the first turn
            conversations[0]["value"] = "Model: GPT-4\n" + conversations[0]["value"]
        labels = [*style.labels, "refusal"] if refused else list(style.labels)
        return _make_row(row_id or self._fresh_id(), conversations, style.model), style, labels

    def _fresh_id(self) -> str:
        """A new id; now and then a conversation split by the exporter (id_0, id_1, ...)."""
        if self.pending_split_ids:
            return self.pending_split_ids.pop(0)
        base = _random_id(self.rng)
        if self.rng.random() >= P_SPLIT_ID:
            return base
        parts = self.rng.randint(2, 3)
        self.pending_split_ids = [f"{base}_{part}" for part in range(1, parts)]
        return f"{base}_0"


def _random_id(rng: random.Random) -> str:
    return "".join(rng.choices(ID_ALPHABET, k=7))


def _make_row(row_id: str, conversations: list, model: str | None) -> dict:
    row: dict = {"id": row_id, "conversations": conversations}
    if model is not None:
        row["model"] = model
    return row


def _pick_style(rng: random.Random) -> _Style:
    lang = rng.choices(LANGS, cum_weights=LANG_CUM_WEIGHTS)[0]
    model, slug, family = _pick_model(rng)
    wrapper = rng.choices(WRAPPER_CLASSES, cum_weights=WRAPPER_CUM_WEIGHTS)[0]
    markdown = slug is None and rng.random() < P_MARKDOWN_ROW
    return _Style(lang, model, slug, wrapper, markdown, (*family, f"lang:{lang}"))


def _pick_model(rng: random.Random) -> tuple[str | None, str | None, tuple[str, ...]]:
    """(model key, per-turn slug, labels). ~10% "Model: GPT-4", a few other GPT-4 spellings."""
    r = rng.random()
    if r < 0.10:
        return "Model: GPT-4", ("gpt-4" if rng.random() < 0.1 else None), ("gpt4",)
    if r < 0.108:
        return rng.choice(("gpt-4", "GPT-4", "gpt4")), None, ("gpt4", "gpt4:alt_spelling")
    if r < 0.115:
        return None, "gpt-4", ("gpt4", "gpt4:slug_only")
    if r < 0.118:
        return None, None, ("gpt4", "gpt4:leading_line")
    if r < 0.50:
        slug = "text-davinci-002-render-sha" if rng.random() < 0.1 else None
        return "Model: Default (GPT-3.5)", slug, ("gpt35",)
    if r < 0.60:
        return "Model: Legacy (GPT-3.5)", None, ("gpt35",)
    if r < 0.66:
        return "Model: Default", None, ("gpt35",)
    if r < 0.675:
        return "Model: Plugins", None, ("plugins",)  # Plugins ran on several tiers: unknown
    return None, None, ("no_model",)


# --------------------------------------------------------------------------------------------
# Conversations and turns.
# --------------------------------------------------------------------------------------------


def _conversation(rng: random.Random, style: _Style) -> tuple[list[dict], bool]:
    """1-6 human/gpt exchanges, and whether any assistant turn carries refusal boilerplate."""
    exchanges = rng.choices(range(1, 7), cum_weights=EXCHANGE_CUM_WEIGHTS)[0]
    turns, refused = [], False
    for index in range(exchanges):
        turns.append({"from": "human", "value": _human_value(rng, style.lang, index == 0)})
        refusal = rng.choice(ph.REFUSALS[style.lang]) if rng.random() < P_REFUSAL_TURN else None
        refused = refused or refusal is not None
        turns.append({"from": "gpt", "value": _gpt_value(rng, style, index, refusal)})
    return turns, refused


def _regenerate_counter(rng: random.Random) -> str:
    """The "2 / 2" the UI showed above a regenerated message; exports glued it to the text."""
    total = rng.choice((1, 1, 1, 2, 2, 3))
    return f"{rng.randint(1, total)} / {total}"


def _human_value(rng: random.Random, lang: str, first: bool) -> str:
    bank = ph.PROMPTS[lang] if first or rng.random() < 0.3 else ph.FOLLOWUPS[lang]
    text = rng.choice(bank)
    r = rng.random()
    if r < 0.12:  # pasted code stays raw: "<script>" here is text, never HTML
        text += "\n\n" + rng.choice(_PASTABLE_CODE)
    elif r < 0.20:  # a pasted draft to fix
        text += "\n\n" + " ".join(rng.choices(ph.SENTENCES[lang], k=rng.randint(3, 12)))
    if rng.random() < 0.08:
        text = _regenerate_counter(rng) + text
    return text


def _gpt_value(rng: random.Random, style: _Style, turn: int, refusal: str | None) -> str:
    if style.markdown:
        return _markdown_answer(rng, style.lang, refusal)
    body = _html_answer(rng, style.lang, refusal)
    value = f'<div class="{style.wrapper.format(turn=turn)}">{body}</div>'
    if style.slug:
        uuid = "-".join(f"{rng.getrandbits(4 * k):0{k}x}" for k in (8, 4, 4, 4, 12))
        value = SLUG_WRAPPER.format(uuid=uuid, slug=style.slug, inner=value)
    if rng.random() < 0.05:
        value = _regenerate_counter(rng) + value
    return value


def _perturb(rng: random.Random, text: str) -> str:
    """A near-duplicate edit: drop, repeat or append a few words (always changes the text)."""
    words = text.split(" ")
    op = rng.randrange(3)
    if op == 0 and len(words) > 4:
        del words[rng.randrange(1, len(words))]
    elif op == 1 and len(words) > 2:
        at = rng.randrange(len(words))
        words.insert(at, words[at])
    else:
        return text + rng.choice(ph.NEAR_DUPLICATE_TAILS)
    changed = " ".join(words)
    return changed if changed != text else text + rng.choice(ph.NEAR_DUPLICATE_TAILS)


def _break_structure(rng: random.Random, turns: list[dict], problem: str, lang: str) -> None:
    """Apply one of STRUCTURE_KINDS in place; the row stays a dict with a conversations list."""
    if problem == "leading_gpt":
        del turns[0]
    elif problem == "trailing_human":
        turns.append({"from": "human", "value": rng.choice(ph.FOLLOWUPS[lang])})
    elif problem == "human_only":
        del turns[1:]
    elif problem == "system_first":
        turns.insert(0, {"from": "system", "value": rng.choice(ph.SYSTEM_PROMPTS)})
    elif problem.startswith("role"):
        renames = {
            "roles_user_assistant": {"human": "user", "gpt": "assistant"},
            "role_chatgpt": {"gpt": "chatgpt"},
            "role_bard": {"gpt": "bard"},
        }[problem]
        for turn in turns:
            turn["from"] = renames.get(turn["from"], turn["from"])
    else:
        turn = rng.choice(turns)
        if problem == "missing_value":
            del turn["value"]
        else:
            turn["value"] = "" if problem == "empty_value" else rng.choice((" ", "\n", " \n\t "))


def _malformed_row(rng: random.Random, kind: str, fresh: Callable[[], tuple]) -> object:
    """One of MALFORMED_KINDS; most are a real row broken in one place."""
    if kind == "bare_string":
        return rng.choice(ph.PROMPTS["en"])
    if kind == "null":
        return None
    if kind == "number":
        return rng.choice((0, 1, 42, -7, 3.14))
    row = fresh()[0]
    turns = row["conversations"]
    if kind == "list":
        return turns
    if kind == "no_conversations":
        row.pop("conversations")
        if rng.random() < 0.5:
            row["conversation"] = turns  # the misspelt key some scrapers wrote
    elif kind == "conversations_not_list":
        row["conversations"] = rng.choice((turns[0], orjson.dumps(turns).decode(), None))
    elif kind == "turn_is_string":
        turns[0] = turns[0]["value"]
    elif kind == "value_number":
        rng.choice(turns)["value"] = rng.choice((0, 42, 3.5))
    elif kind == "value_null":
        rng.choice(turns)["value"] = None
    elif kind == "no_id":
        row.pop("id")
    return row


def _huge_log_paste(rng: random.Random) -> str:
    """~1 MB of pasted log lines: the kind of turn a max-length filter must catch."""
    pool = [  # a few hundred distinct lines, then resampled: drawing every field of 1 MB is slow
        f"2023-03-{rng.randint(1, 31):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
        f":{rng.randint(0, 59):02d} {rng.choice(('INFO', 'WARN', 'ERROR', 'DEBUG'))} "
        f"worker-{rng.randint(1, 16)} processed batch {rng.randint(1, 99999)} "
        f"in {rng.random() * 3:.3f}s"
        for _ in range(256)
    ]
    average = sum(len(line) + 1 for line in pool) / len(pool)
    return "\n".join(rng.choices(pool, k=int(HUGE_TURN_CHARS / average) + 1))


# --------------------------------------------------------------------------------------------
# Assistant answers: ChatGPT's 2023 HTML, or plain markdown.
# --------------------------------------------------------------------------------------------


def _esc(text: str) -> str:
    return html.escape(text, quote=True)  # & < > " ' as &amp; &lt; &gt; &quot; &#x27;


_ESCAPED_SENTENCES = {lang: [_esc(s) for s in bank] for lang, bank in ph.SENTENCES.items()}
_ESCAPED_TERMS = {lang: [_esc(s) for s in bank] for lang, bank in ph.TERMS.items()}
_PASTABLE_CODE = ph.HUMAN_PASTES + [c for snippets in ph.CODE_SNIPPETS.values() for c in snippets]
_CODE_CHOICES = [
    (lang, i) for lang, snippets in ph.CODE_SNIPPETS.items() for i in range(len(snippets))
]


def _html_answer(rng: random.Random, lang: str, refusal: str | None) -> str:
    blocks = [f"<p>{_esc(refusal)}</p>"] if refusal else []
    # ChatGPT nearly always opened with prose. At least two sentences and one more block keep
    # accidental duplicates rare: only the injected ones should count as duplicates.
    blocks.append(_paragraph(rng, lang, min_sentences=2))
    r = rng.random()
    extra = 1 if r < 0.3 else rng.randint(2, 3) if r < 0.75 else rng.randint(4, 8)
    if r > 0.95:
        extra = rng.randint(9, 30)  # the long tail: answers of several KB
    makers = rng.choices(_BLOCK_MAKERS, cum_weights=_BLOCK_CUM_WEIGHTS, k=extra)
    blocks.extend(make(rng, lang) for make in makers)
    return "".join(blocks)


def _paragraph(rng: random.Random, lang: str, min_sentences: int = 1) -> str:
    sentences = rng.choices(_ESCAPED_SENTENCES[lang], k=rng.randint(min_sentences, 4))
    if rng.random() < 0.1:
        sentences[0] = f"<em>{sentences[0]}</em>"
    if rng.random() < 0.2:
        sentences.insert(0, f"<strong>{rng.choice(_ESCAPED_TERMS[lang])}</strong>:")
    if rng.random() < 0.15:
        sentences.append(f"<code>{_esc(rng.choice(ph.INLINE_CODE))}</code>")
    if rng.random() < 0.08:
        url, text = rng.choice(ph.LINKS)
        sentences.append(f'<a href="{_esc(url)}" target="_new">{_esc(text)}</a>')
    if rng.random() < 0.06:
        sentences.append(_math_markup(rng.randrange(len(ph.MATH_EXPRESSIONS)), display=False))
    separator = "&nbsp; " if rng.random() < 0.05 else " "
    return f"<p>{separator.join(sentences)}</p>"


def _list_item_text(rng: random.Random, lang: str) -> str:
    sentence = rng.choice(_ESCAPED_SENTENCES[lang])
    if rng.random() < 0.5:
        return f"<strong>{rng.choice(_ESCAPED_TERMS[lang])}</strong>: {sentence}"
    return sentence


def _html_list(rng: random.Random, lang: str) -> str:
    tag = rng.choice(("ul", "ol"))
    nested = rng.random() < 0.3
    items = []
    for _ in range(rng.randint(2, 6)):
        text = _list_item_text(rng, lang)
        if nested:  # ChatGPT wrapped items in <p> once any item held a sub-list
            sub = "".join(
                f"<li>{_list_item_text(rng, lang)}</li>" for _ in range(rng.randint(1, 3))
            )
            items.append(f"<li><p>{text}</p><ul>{sub}</ul></li>")
        else:
            items.append(f"<li>{text}</li>")
    return f"<{tag}>{''.join(items)}</{tag}>"


def _heading(rng: random.Random, lang: str) -> str:
    level = rng.choice((2, 3))
    return f"<h{level}>{rng.choice(_ESCAPED_TERMS[lang])}</h{level}>{_paragraph(rng, lang)}"


def _blockquote(rng: random.Random, lang: str) -> str:
    return f"<blockquote><p>{rng.choice(_ESCAPED_SENTENCES[lang])}</p></blockquote>"


def _table(rng: random.Random, lang: str) -> str:
    columns = rng.randint(2, 4)
    head = "".join(f"<th>{t}</th>" for t in rng.sample(_ESCAPED_TERMS[lang], columns))
    body = "".join(
        "<tr>"
        + "".join(f"<td>{_esc(rng.choice(ph.TABLE_CELLS))}</td>" for _ in range(columns))
        + "</tr>"
        for _ in range(rng.randint(2, 5))
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _code_block(rng: random.Random, lang: str) -> str:
    if rng.random() < 0.1:  # prose or output that ChatGPT mislabelled as code
        label, text = rng.choice(ph.PLAIN_CODE_BLOCKS)
        return CODE_BLOCK.format(lang=label, code=_esc(text))
    code_lang, index = rng.choice(_CODE_CHOICES)
    return CODE_BLOCK.format(lang=code_lang, code=_highlighted(code_lang, index))


def _display_math(rng: random.Random, lang: str) -> str:
    return _math_markup(rng.randrange(len(ph.MATH_EXPRESSIONS)), display=True)


_BLOCK_MAKERS: list[Callable[[random.Random, str], str]] = [
    _paragraph,
    _html_list,
    _heading,
    _code_block,
    _table,
    _blockquote,
    _display_math,
]
_BLOCK_CUM_WEIGHTS = list(itertools.accumulate((38, 22, 10, 17, 5, 4, 4)))


def _markdown_answer(rng: random.Random, lang: str, refusal: str | None) -> str:
    parts = [refusal] if refusal else []
    parts.append(" ".join(rng.choices(ph.SENTENCES[lang], k=rng.randint(2, 4))))
    if rng.random() < 0.7:
        terms = rng.sample(ph.TERMS[lang], rng.randint(2, 4))
        sentences = rng.choices(ph.SENTENCES[lang], k=len(terms))
        parts.append(
            "\n".join(
                f"{i}. **{t}**: {s}"
                for i, (t, s) in enumerate(zip(terms, sentences, strict=True), 1)
            )
        )
    if rng.random() < 0.3:
        code_lang, index = rng.choice(_CODE_CHOICES)
        parts.append(f"```{code_lang}\n{ph.CODE_SNIPPETS[code_lang][index]}```")
    if rng.random() < 0.1:
        parts.append(f"The formula is ${rng.choice(ph.MATH_EXPRESSIONS)[0]}$.")
    return "\n\n".join(parts)


# --------------------------------------------------------------------------------------------
# highlight.js and KaTeX output, rendered once per fixed snippet (cached: they never change).
# --------------------------------------------------------------------------------------------

_HLJS_LANGS: dict[str, tuple[str, str]] = {  # language: (comment regex, keywords)
    "python": (
        r"#[^\n]*",
        "def return if elif else for in while import from as class with try except raise "
        "lambda yield not and or is pass None True False",
    ),
    "javascript": (
        r"//[^\n]*|/\*.*?\*/",
        "const let var function return if else for while async await new throw class null "
        "true false undefined",
    ),
    "bash": (r"#![^\n]*|#[^\n]*", "if then fi for do done in while echo mkdir tar gzip"),
    "sql": (
        r"--[^\n]*",
        "SELECT FROM WHERE LEFT JOIN ON GROUP BY HAVING ORDER DESC AS CREATE TABLE INT PRIMARY "
        "KEY NOT NULL UNIQUE DEFAULT VARCHAR TIMESTAMP AUTO_INCREMENT COUNT CURRENT_TIMESTAMP",
    ),
    "java": (r"//[^\n]*", "import public class static void new for return int String"),
    "cpp": (r"//[^\n]*|#include[^\n]*", "int return for std auto"),
}
_TITLE_AFTER = {"def": "function_", "function": "function_", "class": "class_"}


def _span(css: str, text: str) -> str:
    return f'<span class="hljs-{css}">{text}</span>'


@cache
def _highlighted(lang: str, index: int) -> str:
    """hljs-style markup of ph.CODE_SNIPPETS[lang][index]: escaped text in hljs-* spans."""
    code = ph.CODE_SNIPPETS[lang][index]
    if lang == "html":
        return _highlighted_html(code)
    comment, words = _HLJS_LANGS[lang]
    keywords = set(words.split())
    token = re.compile(
        rf"(?P<comment>{comment})|(?P<string>\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|`[^`]*`)"
        r"|(?P<number>\b\d+(?:\.\d+)?\b)|(?P<word>[A-Za-z_]\w*)|(?P<other>.)",
        re.S,
    )
    out: list[str] = []
    title = params = None
    for match in token.finditer(code):
        kind, text = match.lastgroup, match.group()
        escaped = _esc(text)
        if kind == "word" and title:
            out.append(_span(f"title {title}", escaped))
            params, title = title == "function_" and lang == "python", None
        elif kind == "word" and (text in keywords or (lang == "sql" and text.upper() in keywords)):
            out.append(_span("keyword", escaped))
            title = _TITLE_AFTER.get(text)
        elif kind in ("comment", "string", "number"):
            meta = kind == "comment" and text.startswith(("#!", "#include"))
            out.append(_span("meta" if meta else kind, escaped))
        elif params and text == "(":
            out.append('(<span class="hljs-params">')
        elif params and text == ")":
            out.append("</span>)")
            params = False
        else:
            out.append(escaped)
    return "".join(out)


def _highlighted_html(code: str) -> str:
    def tag(match: re.Match[str]) -> str:
        slash, name, attrs = match.group(1), match.group(2), match.group(3)
        attrs = re.sub(
            r'([\w-]+)=("[^"]*"|\'[^\']*\')',
            lambda a: f"{_span('attr', a.group(1))}={_span('string', _esc(a.group(2)))}",
            attrs,
        )
        return _span("tag", f"&lt;{slash}{_span('name', name)}{attrs}&gt;")

    out = []
    for piece in re.split(r"(<!--.*?-->|<!DOCTYPE[^>]*>|</?[A-Za-z][^>]*>)", code):
        if piece.startswith("<!--"):
            out.append(_span("comment", _esc(piece)))
        elif piece.startswith("<!"):
            out.append(_span("meta", _esc(piece)))
        elif piece.startswith("<"):
            out.append(re.sub(r"<(/?)([A-Za-z][\w-]*)([^>]*)>", tag, piece))
        else:
            out.append(_esc(piece))
    return "".join(out)


_MO_CLASS = {"=": "mrel", "<": "mrel", "≈": "mrel", "(": "mopen", ")": "mclose"}
_MO_SPACE = {"mrel": "0.2778em", "mbin": "0.2222em"}
_SUPSUB = (  # KaTeX's vlist scaffolding around a superscript or subscript
    '<span class="msupsub"><span class="vlist-t{t2}"><span class="vlist-r"><span class="vlist" '
    'style="height:0.8141em;"><span style="top:{top};margin-right:0.05em;"><span class="pstrut" '
    'style="height:2.7em;"></span><span class="sizing reset-size6 size3 mtight">{inner}</span>'
    "</span></span>{tail}</span></span></span>"
)
_VLIST_TAIL = (
    '<span class="vlist-s">\u200b</span></span><span class="vlist-r"><span class="vlist" '
    'style="height:0.15em;"><span></span></span>'
)


def _mathml(nodes: list[list]) -> str:
    out = []
    for node in nodes:
        kind = node[0]
        if kind in ("mi", "mn", "mo"):
            out.append(f"<{kind}>{_esc(node[1])}</{kind}>")
        elif kind in ("sup", "sub"):
            out.append(f"<m{kind}>{_mathml([node[1]])}<mrow>{_mathml(node[2])}</mrow></m{kind}>")
        elif kind == "frac":
            out.append(
                f"<mfrac><mrow>{_mathml(node[1])}</mrow><mrow>{_mathml(node[2])}</mrow></mfrac>"
            )
        elif kind == "sqrt":
            out.append(f"<msqrt>{_mathml(node[1])}</msqrt>")
    return "".join(out)


def _katex_html(nodes: list[list], tight: bool = False) -> str:
    out = []
    extra = " mtight" if tight else ""
    for index, node in enumerate(nodes):
        kind = node[0]
        if kind == "mi":
            out.append(f'<span class="mord mathnormal{extra}">{_esc(node[1])}</span>')
        elif kind == "mn":
            out.append(f'<span class="mord{extra}">{_esc(node[1])}</span>')
        elif kind == "mo":
            css = _MO_CLASS.get(node[1], "mbin" if index else "mord")
            space = _MO_SPACE.get(css)
            gap = f'<span class="mspace" style="margin-right:{space};"></span>' if space else ""
            out.append(f'{gap}<span class="{css}{extra}">{_esc(node[1])}</span>{gap}')
        elif kind in ("sup", "sub"):
            sup = kind == "sup"
            inner = _katex_html(node[2], tight=True)
            supsub = _SUPSUB.format(
                t2="" if sup else " vlist-t2",
                top="-3.063em" if sup else "-2.55em",
                inner=inner,
                tail="" if sup else _VLIST_TAIL,
            )
            out.append(f'<span class="mord">{_katex_html([node[1]])}{supsub}</span>')
        elif kind == "frac":
            num, den = _katex_html(node[1], True), _katex_html(node[2], True)
            out.append(
                '<span class="mord"><span class="mopen nulldelimiter"></span><span class="mfrac">'
                '<span class="vlist-t vlist-t2"><span class="vlist-r"><span class="vlist" '
                'style="height:1.3214em;"><span style="top:-2.314em;"><span class="pstrut" '
                f'style="height:3em;"></span><span class="mord">{den}</span></span>'
                '<span style="top:-3.23em;"><span class="pstrut" style="height:3em;"></span>'
                '<span class="frac-line" style="border-bottom-width:0.04em;"></span></span>'
                '<span style="top:-3.677em;"><span class="pstrut" style="height:3em;"></span>'
                f'<span class="mord">{num}</span></span></span>{_VLIST_TAIL}</span></span>'
                '</span><span class="mclose nulldelimiter"></span></span>'
            )
        elif kind == "sqrt":
            out.append(
                '<span class="mord sqrt"><span class="vlist-t vlist-t2"><span class="vlist-r">'
                '<span class="vlist" style="height:0.9561em;"><span class="svg-align" '
                'style="top:-3em;"><span class="pstrut" style="height:3em;"></span>'
                f'<span class="mord" style="padding-left:0.833em;">{_katex_html(node[1])}</span>'
                '</span><span style="top:-2.9161em;"><span class="pstrut" style="height:3em;">'
                '</span><span class="hide-tail" style="min-width:0.853em;height:1.08em;"><svg '
                'width="400em" height="1.08em" viewBox="0 0 400000 1080" '
                'preserveAspectRatio="xMinYMin slice"><path d="M95,702 c-2.7,0,-7.17,-2.7,-13.5,'
                f'-8z"></path></svg></span></span></span>{_VLIST_TAIL}</span></span></span>'
            )
    return "".join(out)


@cache
def _math_markup(index: int, display: bool) -> str:
    """KaTeX's output for ph.MATH_EXPRESSIONS[index]: hidden MathML plus the visible spans."""
    tex, nodes = ph.MATH_EXPRESSIONS[index]
    block = ' display="block"' if display else ""
    katex = (
        f'<span class="katex"><span class="katex-mathml"><math '
        f'xmlns="http://www.w3.org/1998/Math/MathML"{block}><semantics><mrow>{_mathml(nodes)}'
        f'</mrow><annotation encoding="application/x-tex">{_esc(tex)}</annotation></semantics>'
        '</math></span><span class="katex-html" aria-hidden="true"><span class="base">'
        '<span class="strut" style="height:0.8641em;vertical-align:-0.1944em;"></span>'
        f"{_katex_html(nodes)}</span></span></span>"
    )
    if display:
        return f'<span class="math math-display"><span class="katex-display">{katex}</span></span>'
    return f'<span class="math math-inline">{katex}</span>'
