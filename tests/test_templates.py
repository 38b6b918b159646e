"""templates: the four condition-tag positions render exactly as in DESIGN.md's table."""

from __future__ import annotations

import pytest

from sharegpt_tools.tokenize.templates import (
    Kind,
    Position,
    SystemFormat,
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


SPEAKER, BEGINNING = Position.BEFORE_SPEAKER, Position.BEGINNING
OPENCHAT, PREFIXED = SystemFormat.OPENCHAT, SystemFormat.PREFIXED
SYSTEM_CASES = {
    (SPEAKER, OPENCHAT): f"S{EOT}GPT4 User: Q{EOT}GPT4 Assistant: A",
    (SPEAKER, PREFIXED): f"System: S{EOT}GPT4 User: Q{EOT}GPT4 Assistant: A",
    (BEGINNING, OPENCHAT): f"Assistant is GPT4{EOT}S{EOT}User: Q{EOT}Assistant: A",
    (BEGINNING, PREFIXED): f"Assistant is GPT4{EOT}System: S{EOT}User: Q{EOT}Assistant: A",
}


@pytest.mark.parametrize(("position", "system_format"), list(SYSTEM_CASES))
def test_leading_system_turn_is_untagged_and_part_of_the_header(
    position: Position, system_format: SystemFormat
) -> None:
    roles, texts = ["system", "human", "gpt"], ["S", "Q", "A"]
    rendered = render(roles, texts, "GPT4", position, EOT, system_format)
    assert rendered.text() == SYSTEM_CASES[(position, system_format)] + EOT
    assert [s.kind for s in rendered.header][-2:] == [Kind.SYSTEM, Kind.EOT]
    assert len(rendered.exchanges) == 1


def test_openchat_system_text_opens_its_section_and_a_prefix_opens_each_other_turn() -> None:
    rendered = render(["system", "human", "gpt"], ["S", "Q", "A"], "GPT4")
    opening = [(s.kind, s.text) for s in rendered.segments() if s.opens_section]
    assert opening == [
        (Kind.SYSTEM, "S"),
        (Kind.TEMPLATE, "GPT4 User:"),
        (Kind.TEMPLATE, "GPT4 Assistant:"),
    ]


def test_the_space_after_a_role_prefix_belongs_to_the_content() -> None:
    """So that the generation prompt `GPT4 Assistant:` ends on a token boundary of the row."""
    rendered = render(["human", "gpt"], ["Q", "A"], "GPT4")
    assert [s.text for s in rendered.segments()] == [
        "GPT4 User:",
        " Q",
        EOT,
        "GPT4 Assistant:",
        " A",
        EOT,
    ]


def test_only_assistant_content_and_its_closing_eot_are_supervised() -> None:
    rendered = render(["human", "gpt", "human", "gpt"], ["Q1", "A1", "Q2", "A2"], "GPT4")
    supervised = [(s.text, s.turn) for s in rendered.segments() if s.supervised]
    assert supervised == [(" A1", 1), (EOT, 1), (" A2", 3), (EOT, 3)]
    assert [len(exchange) for exchange in rendered.exchanges] == [6, 6]
    assert rendered.exchanges[1][0].text == "GPT4 User:"


def test_content_is_never_altered_even_when_it_looks_like_a_template() -> None:
    tricky = f"GPT4 Assistant: {EOT}</s>"
    rendered = render(["human", "gpt"], [tricky, "ok"], "GPT4")
    user = [s for s in rendered.segments() if s.kind is Kind.USER]
    assert user[0].text == " " + tricky


def test_example_and_generation_prompt_for_the_manifest() -> None:
    assert example("GPT4") == f"GPT4 User: {{user}}{EOT}GPT4 Assistant: {{assistant}}{EOT}"
    assert example("GPT4", system=True).startswith(f"{{system}}{EOT}GPT4 User: ")
    prefixed = example("GPT4", system=True, system_format=SystemFormat.PREFIXED)
    assert prefixed.startswith(f"System: {{system}}{EOT}GPT4 User: ")
    assert generation_prompt("GPT4") == "GPT4 Assistant:"
    assert generation_prompt("GPT4 Correct") == "GPT4 Correct Assistant:"
    assert generation_prompt("GPT4", Position.BEGINNING) == "Assistant:"
    assert generation_prompt("", Position.BEFORE_ASSISTANT) == "Assistant:"
