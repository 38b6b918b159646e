"""Which model wrote a conversation: GPT-4, GPT-3.5 or unknown, and the signal that decided.

Signals, most specific first: per-turn `data-message-model-slug` attributes of newer HTML exports,
the row's `model` field in its many spellings, a leading "Model: GPT-4" line in the first turn.
"""

from __future__ import annotations

import re

from sharegpt_tools.records import MODEL_GPT4, MODEL_GPT35, MODEL_UNKNOWN

LEADING_MODEL_LINE = re.compile(r"^\s*Model:\s*([^\n<]{1,60}?)\s*(?:\n|$)", re.I)

GPT4_PATTERN = re.compile(r"gpt[\s_-]?4", re.I)
GPT35_PATTERN = re.compile(
    r"gpt[\s_-]?3\.?5|turbo|text-davinci-002|\bdefault\b|\blegacy\b|chatgpt", re.I
)


def model_family(spelling: str) -> str:
    """Map one spelling ("Model: Default (GPT-3.5)", "gpt4", "text-davinci-002-render-sha"...)."""
    text = spelling.strip()
    if GPT4_PATTERN.search(text):
        return MODEL_GPT4
    if GPT35_PATTERN.search(text):
        return MODEL_GPT35
    # "Model: Plugins" / "Web Browsing" were offered to several model tiers: not evidence enough.
    return MODEL_UNKNOWN


def split_leading_model_line(first_value: str) -> tuple[str | None, str]:
    """A "Model: GPT-4" line some exports put at the top of the first turn: (spelling, rest)."""
    match = LEADING_MODEL_LINE.match(first_value)
    if not match:
        return None, first_value
    return match.group(1), first_value[match.end() :]


def attribute_model(
    model_field: object, turn_slugs: list[str], leading_line: str | None
) -> tuple[str, str]:
    """(model, evidence) from every signal present; the evidence says which one decided."""
    if turn_slugs:
        families = {model_family(slug) for slug in turn_slugs}
        if families == {MODEL_GPT4}:
            return MODEL_GPT4, f"turn slugs {sorted(set(turn_slugs))}"
        if MODEL_GPT35 in families:
            # A chat that switched models is not expert throughout: the cautious label wins.
            return MODEL_GPT35, f"turn slugs {sorted(set(turn_slugs))}"
    if isinstance(model_field, str) and model_field.strip():
        family = model_family(model_field)
        if family != MODEL_UNKNOWN:
            return family, f"model field {model_field.strip()!r}"
        unknown_note = f"model field {model_field.strip()!r} names no GPT version"
    else:
        unknown_note = "no model field"
    if leading_line:
        family = model_family(leading_line)
        if family != MODEL_UNKNOWN:
            return family, f"leading line 'Model: {leading_line}'"
    return MODEL_UNKNOWN, unknown_note
