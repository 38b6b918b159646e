"""GPT-4 / GPT-3.5 attribution from every signal, and which one decided."""

from __future__ import annotations

import pytest

from sharegpt_tools.clean.attribution import attribute_model, split_leading_model_line


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
    ],
)
def test_model_field_spellings(field: object, model: str) -> None:
    assert attribute_model(field, [], None)[0] == model


def test_turn_slugs_outrank_the_model_field() -> None:
    model, evidence = attribute_model("Model: Default (GPT-3.5)", ["gpt-4", "gpt-4"], None)
    assert model == "gpt-4" and "slug" in evidence


def test_mixed_slugs_are_not_expert() -> None:
    model, _ = attribute_model("Model: GPT-4", ["gpt-4", "text-davinci-002-render-sha"], None)
    assert model == "gpt-3.5"


def test_leading_model_line_is_evidence_and_is_removed() -> None:
    spelling, rest = split_leading_model_line("Model: GPT-4\nWrite a haiku")
    assert (spelling, rest) == ("GPT-4", "Write a haiku")
    model, evidence = attribute_model(None, [], spelling)
    assert model == "gpt-4" and "leading line" in evidence
    assert split_leading_model_line("Modeling clay tips?") == (None, "Modeling clay tips?")
