"""Shape and structure checks: what a row must look like to be a conversation we can train on.

Each check raises `Rejected` with its own reason code, so the manifest says exactly why rows left.
"""

from __future__ import annotations

from typing import NamedTuple

from sharegpt_tools.clean.row_layout import SHAREGPT, RowLayout
from sharegpt_tools.records import (
    ROLE_ALIASES,
    ROLE_GPT,
    ROLE_HUMAN,
    ROLE_SYSTEM,
    Reason,
    Rejected,
)


class Turn(NamedTuple):  # a tuple: made for every turn of every row, twice as fast as a dataclass
    role: str
    value: str


def row_id(row: dict, layout: RowLayout = SHAREGPT) -> str:
    """The row's id as a string, from the layout's id field; numeric ids (seen in some exports)
    are accepted."""
    key = next((k for k in layout.id_fields if k in row), layout.id_fields[0])
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        found = "an empty string" if isinstance(value, str) else found_kind(row, (key,))
        raise Rejected(
            Reason.MISSING_ID, f"row has no usable {key!r} (a non-empty string), got {found}"
        )
    return str(value)


def found_kind(mapping: dict, keys: tuple[str, ...]) -> str:
    """What a field holds, for an error: `missing` (no such key), `null`, or the value's type.

    A null field and an absent one call for different fixes (an export bug vs a wrong layout)."""
    key = next((k for k in keys if k in mapping), None)
    if key is None:
        return "missing"
    return "null" if mapping[key] is None else type(mapping[key]).__name__


def parse_turns(row: dict, layout: RowLayout = SHAREGPT) -> list[Turn]:
    """The raw turns with normalised roles; values are still raw (HTML or text)."""
    turns = row.get(layout.turns_field)
    if not isinstance(turns, list):
        found = found_kind(row, (layout.turns_field,))
        raise Rejected(
            Reason.MISSING_CONVERSATIONS,
            f"{layout.turns_field!r} must be a list of turns, got {found}",
        )
    return [parse_turn(turn, position, layout) for position, turn in enumerate(turns)]


def parse_turn(turn: object, position: int, layout: RowLayout = SHAREGPT) -> Turn:
    if not isinstance(turn, dict):
        raise Rejected(
            Reason.TURN_NOT_AN_OBJECT,
            f"turn {position} is a {type(turn).__name__}, not an object with "
            f"{layout.role_fields[0]!r} and {layout.text_fields[0]!r}",
        )
    role_raw = first_present(turn, layout.role_fields)
    role = ROLE_ALIASES.get(role_raw) if type(role_raw) is str else None  # "human", "gpt": as is
    if role is None and role_raw is not None:
        role = ROLE_ALIASES.get(str(role_raw).strip().lower())
    if role is None:
        raise Rejected(Reason.UNKNOWN_ROLE, f"turn {position} has unknown speaker {role_raw!r}")
    value = first_present(turn, layout.text_fields)
    if not isinstance(value, str):
        found = found_kind(turn, layout.text_fields)
        text_key = next((k for k in layout.text_fields if k in turn), layout.text_fields[0])
        raise Rejected(
            Reason.VALUE_NOT_A_STRING, f"turn {position} {text_key!r} must be a string, got {found}"
        )
    return Turn(role, value)


def first_present(mapping: dict, keys: tuple[str, ...]) -> object:
    """The value of the first of `keys` that `mapping` has, else None (a loop: cheaper per turn
    than a generator)."""
    for key in keys:
        if key in mapping:
            return mapping[key]
    return None


def check_not_empty(turns: list[Turn]) -> None:
    """An empty turn (after HTML conversion) breaks the alternation contract downstream."""
    for position, turn in enumerate(turns):
        if not turn.value.strip():
            raise Rejected(Reason.EMPTY_TURN, f"turn {position} ({turn.role}) is empty")


def check_max_chars(turns: list[Turn], max_chars: int) -> None:
    """Giant turns are usually paste accidents; checked on the raw value, before parsing it."""
    if not max_chars:
        return
    for position, turn in enumerate(turns):
        if len(turn.value) > max_chars:
            raise Rejected(
                Reason.TURN_TOO_LONG,
                f"turn {position} ({turn.role}) has {len(turn.value):,} characters "
                f"(limit {max_chars:,}; raise it with --max-turn-chars, 0 = no limit)",
            )


def normalise_order(turns: list[Turn], min_turns: int) -> list[Turn]:
    """System prompt first, then strict user/assistant alternation starting with the user.

    As the reference pipelines do, a leading assistant turn (the greeting of a resumed chat) and a
    trailing user turn (a question that got no answer) are dropped rather than rejecting the row.
    """
    system = [t for t in turns[:1] if t.role == ROLE_SYSTEM]
    body = turns[len(system) :]
    while body and body[0].role == ROLE_GPT:
        body = body[1:]
    if body and body[-1].role == ROLE_HUMAN:
        body = body[:-1]
    for position, turn in enumerate(body):
        expected = ROLE_HUMAN if position % 2 == 0 else ROLE_GPT
        if turn.role != expected:
            raise Rejected(
                Reason.NOT_ALTERNATING,
                f"turn {position + len(system)} is {turn.role} where {expected} was expected",
            )
    if len(body) < min_turns:
        raise Rejected(
            Reason.TOO_SHORT,
            f"{len(body)} turn(s) left after dropping unanswered/leading turns; at least "
            f"{min_turns} needed",
        )
    return system + body
