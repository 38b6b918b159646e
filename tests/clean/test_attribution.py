"""Model attribution from every signal, the spelling kept, the model table and which signal
decided."""

from __future__ import annotations

from pathlib import Path

import pytest

from sharegpt_tools.clean.attribution import (
    ModelTable,
    ModelTableError,
    attribute_model,
    split_leading_model_line,
)

TABLE = ModelTable.load()


@pytest.mark.parametrize(
    ("field", "model"),
    [
        ("Model: GPT-4", "gpt-4"),
        ("GPT-4", "gpt-4"),
        ("gpt-4", "gpt-4"),
        ("gpt4", "gpt-4"),
        ("Model: Default (GPT-3.5)", "gpt-3.5"),
        ("Model: Legacy (GPT-3.5)", "gpt-3.5"),
        ("Model: Default", "gpt-3.5"),
        ("gpt-3.5-turbo", "gpt-3.5"),
        ("Model: Plugins", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
        (42, "unknown"),
        # The spellings of WildChat and LMSYS-Chat-1M: dated snapshots keep their family...
        ("gpt-4-0314", "gpt-4"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4-1106-preview", "gpt-4"),
        ("gpt-4-0125-preview", "gpt-4"),
        ("gpt-4-turbo-2024-04-09", "gpt-4"),
        ("gpt-3.5-turbo-0613", "gpt-3.5"),
        ("gpt-3.5-turbo-0301", "gpt-3.5"),
        ("gpt-35-turbo", "gpt-3.5"),  # Azure's spelling
        ("text-davinci-002-render-sha", "gpt-3.5"),
        # ...newer and smaller models are never silently GPT-4...
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o"),
        ("chatgpt-4o-latest", "gpt-4o"),
        ("gpt-4.1-mini", "gpt-4.1-mini"),
        ("gpt-4.5-preview", "gpt-4.5-preview"),
        ("o1-preview", "o1-preview"),
        ("gpt4all-13b-snoozy", "gpt4all-13b-snoozy"),
        # ...and the open and other models keep their own names.
        ("vicuna-13b", "vicuna-13b"),
        ("llama-2-13b-chat", "llama-2-13b-chat"),
        ("claude-2", "claude-2"),
        ("Claude Instant 1", "claude-instant-1"),
        ("palm-2", "palm-2"),
        ("some-new-model", "unknown"),
    ],
)
def test_model_field_spellings(field: object, model: str) -> None:
    found = attribute_model(TABLE, field, [], None)
    assert found.model == model
    assert found.raw == (field.strip() if isinstance(field, str) and field.strip() else None)


def test_turn_slugs_outrank_the_model_field() -> None:
    found = attribute_model(TABLE, "Model: Default (GPT-3.5)", ["gpt-4", "gpt-4"], None)
    assert found.model == "gpt-4" and "slug" in found.evidence and found.raw == "gpt-4"


def test_mixed_slugs_are_not_expert() -> None:
    found = attribute_model(TABLE, "Model: GPT-4", ["gpt-4", "text-davinci-002-render-sha"], None)
    assert found.model == "gpt-3.5"


def test_leading_model_line_is_evidence_and_is_removed() -> None:
    spelling, rest = split_leading_model_line("Model: GPT-4\nWrite a haiku")
    assert (spelling, rest) == ("GPT-4", "Write a haiku")
    found = attribute_model(TABLE, None, [], spelling)
    assert found.model == "gpt-4" and "leading line" in found.evidence and found.raw == "GPT-4"
    assert split_leading_model_line("Modeling clay tips?") == (None, "Modeling clay tips?")


def test_a_models_file_extends_and_wins_over_the_built_in_table(tmp_path: Path) -> None:
    mine = tmp_path / "models.yaml"
    mine.write_text(
        "models:\n"
        "  - {model: gpt-4, match: ['gpt-4o(?!-mini)']}  # count GPT-4o as expert\n"
        "  - {model: mistral-large, match: ['^mistral-large']}\n",
        encoding="utf-8",
    )
    table = ModelTable.load(mine)
    assert table.normalise("gpt-4o-2024-05-13") == "gpt-4"
    assert table.normalise("gpt-4o-mini") == "gpt-4o-mini"  # the built-in entry still applies
    assert table.normalise("mistral-large-2407") == "mistral-large"
    assert table.normalise("vicuna-13b") == "vicuna-13b"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[1, 2]", "expected a top-level `models:` list"),
        ("models:\n  - {match: ['x']}", "models[0] needs `model: NAME`"),
        ("models:\n  - {model: a}", "models[0] (a) needs `match:`"),
        ("models:\n  - {model: a, match: ['(']}", "'(' is not a regular expression"),
        ("models: [", "not a readable YAML file"),
    ],
)
def test_a_bad_models_file_is_one_line_naming_the_entry(
    tmp_path: Path, text: str, says: str
) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ModelTableError) as error:
        ModelTable.load(path)
    assert says in str(error.value) and str(path) in str(error.value)
    assert "\n" not in str(error.value)
