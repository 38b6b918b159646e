"""Roles, alternation and the reason codes of structural rejects."""

from __future__ import annotations

import pytest

from sharegpt_tools.clean import structure
from sharegpt_tools.clean.structure import Turn
from sharegpt_tools.records import Reason, Rejected


def reason_of(call) -> Reason:
    with pytest.raises(Rejected) as verdict:
        call()
    return verdict.value.reason


def test_role_spellings_are_normalised() -> None:
    row = {
        "conversations": [
            {"from": "system", "value": "be brief"},
            {"from": "user", "value": "q"},
            {"role": "assistant", "content": "a"},
            {"from": "Human", "value": "q2"},
            {"from": "chatgpt", "value": "a2"},
            {"from": "bard", "value": "a3"},
        ]
    }
    assert [t.role for t in structure.parse_turns(row)] == [
        "system", "human", "gpt", "human", "gpt", "gpt",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"id": "x"}, Reason.MISSING_CONVERSATIONS),
        ({"conversations": "hello"}, Reason.MISSING_CONVERSATIONS),
        ({"conversations": ["hello"]}, Reason.TURN_NOT_AN_OBJECT),
        ({"conversations": [{"from": "human", "value": None}]}, Reason.VALUE_NOT_A_STRING),
        ({"conversations": [{"from": "human", "value": 42}]}, Reason.VALUE_NOT_A_STRING),
        ({"conversations": [{"from": "human"}]}, Reason.VALUE_NOT_A_STRING),
        ({"conversations": [{"from": "narrator", "value": "x"}]}, Reason.UNKNOWN_ROLE),
    ],
)
def test_malformed_turns(row: dict, reason: Reason) -> None:
    assert reason_of(lambda: structure.parse_turns(row)) == reason


def test_missing_or_empty_id() -> None:
    assert structure.row_id({"id": 17}) == "17"
    for row in ({}, {"id": ""}, {"id": None}, {"id": True}):
        assert reason_of(lambda row=row: structure.row_id(row)) == Reason.MISSING_ID


def test_leading_assistant_and_trailing_user_are_dropped() -> None:
    turns = [Turn("gpt", "hi"), Turn("human", "q"), Turn("gpt", "a"), Turn("human", "unanswered")]
    assert structure.normalise_order(turns, min_turns=2) == [Turn("human", "q"), Turn("gpt", "a")]


def test_system_prompt_stays_first() -> None:
    turns = [Turn("system", "s"), Turn("human", "q"), Turn("gpt", "a")]
    assert structure.normalise_order(turns, min_turns=2) == turns


def test_broken_alternation_and_too_short() -> None:
    doubled = [Turn("human", "q"), Turn("human", "q"), Turn("gpt", "a")]
    assert reason_of(lambda: structure.normalise_order(doubled, 2)) == Reason.NOT_ALTERNATING
    only_question = [Turn("human", "q")]
    assert reason_of(lambda: structure.normalise_order(only_question, 2)) == Reason.TOO_SHORT


def test_empty_and_giant_turns() -> None:
    blank = [Turn("human", "q"), Turn("gpt", " \n\t")]
    assert reason_of(lambda: structure.check_not_empty(blank)) == Reason.EMPTY_TURN
    giant = [Turn("human", "x" * 1_000_001)]
    assert reason_of(lambda: structure.check_max_chars(giant, 200_000)) == Reason.TURN_TOO_LONG
    structure.check_max_chars(giant, 0)  # 0 disables the limit


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda: structure.row_id({"id": None}), "got null"),
        (lambda: structure.row_id({}), "got missing"),
        (lambda: structure.row_id({"id": ""}), "got an empty string"),
        (lambda: structure.parse_turns({"conversations": None}), "got null"),
        (lambda: structure.parse_turns({"id": "x"}), "got missing"),
        (lambda: structure.parse_turns({"conversations": [{"from": "human"}]}), "got missing"),
        (lambda: structure.parse_turn({"from": "human", "value": None}, 0), "got null"),
    ],
)
def test_a_null_field_is_told_apart_from_a_missing_one(call, says: str) -> None:
    with pytest.raises(Rejected) as verdict:
        call()
    assert verdict.value.detail.endswith(says)
