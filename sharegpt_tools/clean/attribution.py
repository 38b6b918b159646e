"""Which model wrote a conversation, the spelling that said so, and the signal that decided.

Signals, most specific first: per-turn `data-message-model-slug` attributes of newer HTML exports,
the row's model field in its many spellings (`gpt-4-0314`, `Model: Default (GPT-3.5)`,
`text-davinci-002-render-sha`, `gpt-4o-mini`, `claude-2`...), a leading "Model: GPT-4" line in
the first turn. A spelling becomes a `model` through the model table (`models.yaml`, and
`clean --models FILE.yaml` before it); the spelling itself is kept as `model_raw`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from sharegpt_tools.records import MODEL_GPT35, MODEL_UNKNOWN

LEADING_MODEL_LINE = re.compile(r"^\s*Model:\s*([^\n<]{1,60}?)\s*(?:\n|$)", re.I)
BUILT_IN_TABLE = Path(__file__).with_name("models.yaml")
OWN_SPELLING = "*"  # a table entry's model: the spelling itself, normalised


class ModelTableError(ValueError):
    """A --models file that cannot be used: one line naming the file, the entry and the fix."""


@dataclass(frozen=True, slots=True)
class Attribution:
    model: str
    raw: str | None  # the spelling that decided, as the dump wrote it
    evidence: str


@dataclass(frozen=True, slots=True)
class ModelEntry:
    model: str
    patterns: tuple[re.Pattern[str], ...]


class ModelTable:
    """Ordered entries: the first whose pattern finds a spelling names its model."""

    def __init__(self, entries: list[ModelEntry]) -> None:
        self.entries = entries
        self.normalise = lru_cache(maxsize=4096)(self._normalise)  # few spellings, many rows

    @classmethod
    def load(cls, extra: Path | None = None) -> ModelTable:
        files = [extra, BUILT_IN_TABLE] if extra else [BUILT_IN_TABLE]
        return cls([entry for path in files for entry in read_table(path)])

    def _normalise(self, spelling: str) -> str:
        text = spelling.strip()
        for entry in self.entries:
            if any(pattern.search(text) for pattern in entry.patterns):
                if entry.model == OWN_SPELLING:
                    return "-".join(text.lower().split())
                return entry.model
        return MODEL_UNKNOWN


def read_table(path: Path) -> list[ModelEntry]:
    """The entries of a model table file, each checked: one `ModelTableError` line otherwise."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())  # PyYAML's message spans lines: one line here
        raise ModelTableError(f"{path}: not a readable YAML file: {reason}") from exc
    rows = loaded.get("models") if isinstance(loaded, dict) else None
    if not isinstance(rows, list):
        raise ModelTableError(
            f"{path}: expected a top-level `models:` list of {{model: NAME, match: [REGEX, ...]}}"
        )
    return [table_entry(path, index, row) for index, row in enumerate(rows)]


def table_entry(path: Path, index: int, row: object) -> ModelEntry:
    where = f"{path}: models[{index}]"
    if not isinstance(row, dict) or not isinstance(row.get("model"), str) or not row["model"]:
        raise ModelTableError(f"{where} needs `model: NAME` (a non-empty string)")
    patterns = row.get("match")
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list) or not patterns:
        raise ModelTableError(f"{where} ({row['model']}) needs `match:` regular expressions")
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(str(pattern), re.I))
        except re.error as exc:
            raise ModelTableError(
                f"{where}: {pattern!r} is not a regular expression: {exc}"
            ) from exc
    return ModelEntry(row["model"], tuple(compiled))


def split_leading_model_line(first_value: str) -> tuple[str | None, str]:
    """A "Model: GPT-4" line some exports put at the top of the first turn: (spelling, rest)."""
    match = LEADING_MODEL_LINE.match(first_value)
    if not match:
        return None, first_value
    return match.group(1), first_value[match.end() :]


def attribute_model(
    table: ModelTable, model_field: object, turn_slugs: list[str], leading_line: str | None
) -> Attribution:
    """The model from every signal present; the evidence says which one decided."""
    if turn_slugs:
        slugs = sorted(set(turn_slugs))
        models = {table.normalise(slug) for slug in slugs}
        raw = ", ".join(slugs)
        if len(models) == 1 and MODEL_UNKNOWN not in models:
            return Attribution(models.pop(), raw, f"turn slugs {slugs}")
        if MODEL_GPT35 in models:
            # A chat that switched models is not expert throughout: the cautious label wins.
            return Attribution(MODEL_GPT35, raw, f"turn slugs {slugs}")
    if isinstance(model_field, str) and model_field.strip():
        spelling = model_field.strip()
        model = table.normalise(spelling)
        if model != MODEL_UNKNOWN:
            return Attribution(model, spelling, f"model field {spelling!r}")
        unknown = Attribution(MODEL_UNKNOWN, spelling, f"model field {spelling!r} names no model")
    else:
        unknown = Attribution(MODEL_UNKNOWN, None, "no model field")
    if leading_line:
        model = table.normalise(leading_line)
        if model != MODEL_UNKNOWN:
            return Attribution(model, leading_line, f"leading line 'Model: {leading_line}'")
    return unknown
