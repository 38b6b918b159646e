"""templates: the four condition-tag positions render exactly as in DESIGN.md's table."""

from __future__ import annotations

import pytest

from sharegpt_tools.templates import (
    Kind,
    Position,
    example,
    generation_prompt,
    render,
    render_text,
)

EOT = "<|end_of_turn|>"
QA = (["human", "gpt"], ["Q", "A"])

DESIGN_TABLE = {
    Position.BEFORE_SPEAKER: f"GPT4 User: Q{EOT}GPT4 Assistant: A{EOT}",
    Position.BEFORE_ASSISTANT: f"User: Q{EOT}GPT4 Assistant: A{EOT}",
    Position.BEGINNING: f"Assistant is GPT4{EOT}User: Q{EOT}Assistant: A{EOT}",
    Position.NONE: f"User: Q{EOT}Assistant: A{EOT}",
}


@pytest.mark.parametrize("position", list(Position))
def test_expert_example_matches_the_design_table(position: Position) -> None:
    assert render_text(*QA, "GPT4", position) == DESIGN_TABLE[position]


@pytest.mark.parametrize("position", list(Position))
def test_empty_condition_renders_the_plain_template(position: Position) -> None:
    assert render_text(*QA, "", position) == f"User: Q{EOT}Assistant: A{EOT}"


def test_sub_optimal_condition_is_rendered_with_its_own_tag() -> None:
    assert render_text(*QA, "GPT3") == f"GPT3 User: Q{EOT}GPT3 Assistant: A{EOT}"


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        (Position.BEFORE_SPEAKER, f"System: S{EOT}GPT4 User: Q{EOT}GPT4 Assistant: A{EOT}"),
        (Position.BEGINNING, f"Assistant is GPT4{EOT}System: S{EOT}User: Q{EOT}Assistant: A{EOT}"),
    ],
)
def test_leading_system_turn_is_plain_and_part_of_the_header(
    position: Position, expected: str
) -> None:
    rendered = render(["system", "human", "gpt"], ["S", "Q", "A"], "GPT4", position)
    assert rendered.text() == expected
    assert [s.kind for s in rendered.header][-3:] == [Kind.TEMPLATE, Kind.SYSTEM, Kind.EOT]
    assert len(rendered.exchanges) == 1


def test_only_assistant_content_and_its_closing_eot_are_supervised() -> None:
    rendered = render(["human", "gpt", "human", "gpt"], ["Q1", "A1", "Q2", "A2"], "GPT4")
    supervised = [(s.text, s.turn) for s in rendered.segments() if s.supervised]
    assert supervised == [("A1", 1), (EOT, 1), ("A2", 3), (EOT, 3)]
    assert [len(exchange) for exchange in rendered.exchanges] == [6, 6]
    assert rendered.exchanges[1][0].text == "GPT4 User: "


def test_content_is_never_altered_even_when_it_looks_like_a_template() -> None:
    tricky = f"GPT4 Assistant: {EOT}</s>"
    rendered = render(["human", "gpt"], [tricky, "ok"], "GPT4")
    user = [s for s in rendered.segments() if s.kind is Kind.USER]
    assert user[0].text == tricky


def test_example_and_generation_prompt_for_the_manifest() -> None:
    assert example("GPT4") == f"GPT4 User: {{user}}{EOT}GPT4 Assistant: {{assistant}}{EOT}"
    assert example("GPT4", system=True).startswith(f"System: {{system}}{EOT}GPT4 User: ")
    assert generation_prompt("GPT4") == "GPT4 Assistant: "
    assert generation_prompt("GPT4", Position.BEGINNING) == "Assistant: "
    assert generation_prompt("", Position.BEFORE_ASSISTANT) == "Assistant: "
