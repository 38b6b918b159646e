"""Condition tags and the four tag positions: a conversation → segments, no tokenizer involved.

C-RLFT trains a class-conditioned policy: each conversation is rendered with its class's condition
tag (`GPT4`, `GPT3`, ...) at one of the positions the OpenChat paper compares (App. A):

    before-speaker     GPT4 User: Q<|end_of_turn|>GPT4 Assistant: A<|end_of_turn|>
    before-assistant   User: Q<|end_of_turn|>GPT4 Assistant: A<|end_of_turn|>
    beginning          Assistant is GPT4<|end_of_turn|>
                       User: Q<|end_of_turn|>Assistant: A<|end_of_turn|>   (one string)
    none               User: Q<|end_of_turn|>Assistant: A<|end_of_turn|>

An empty condition renders the plain (`none`) template whatever the position. A leading system
turn renders as OpenChat writes it, the bare text closed by the end-of-turn marker
(`S<|end_of_turn|>`; `SystemFormat.OPENCHAT`), or with a `System: ` prefix
(`SystemFormat.PREFIXED`); after the `beginning` header when there is one.

A rendering is a list of segments rather than a string, so that the tokenizer side can tokenize
content as plain text (never as control tokens), tokenize each template piece once, and weight
tokens by where they came from: only assistant content and the end-of-turn marker that closes an
assistant turn are ever supervised (`Segment.supervised`).

Where the space goes: a role prefix is `GPT4 User:` and the space after it belongs to the content
segment (` Q`). A tokenizer keeps a word-initial space with the word (` Q`, `▁Q`), so the prefix
ends on a token boundary and the generation prompt `GPT4 Assistant:` is a token prefix of every
training row at that turn: the model's first token is the answer's first word, space included, as
in OpenChat's own template. The end-of-turn marker splits the text into *sections*; the tokenizer
side encodes each section as a whole would be encoded (`Segment.opens_section` marks the first
segment of each).

The segments are grouped as a header (condition header and system turn: repeated at the start of
every piece when a long conversation is split) and exchanges (a user turn and the turns that
follow it up to the next user turn): the units a long conversation is split at.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import NamedTuple

from crlft_contract import END_OF_TURN
from sharegpt_tools.records import ROLE_GPT, ROLE_HUMAN, ROLE_SYSTEM

DEFAULT_EOT = END_OF_TURN  # the contract's (crlft_contract)
# Placeholders of the one-exchange example recorded in the tokenized manifest.
USER_PLACEHOLDER = "{user}"
ASSISTANT_PLACEHOLDER = "{assistant}"
SYSTEM_PLACEHOLDER = "{system}"

SPEAKERS = {ROLE_HUMAN: "User", ROLE_GPT: "Assistant", ROLE_SYSTEM: "System"}
SEPARATOR = " "  # between a role prefix and the content; tokenized with the content


class Position(StrEnum):
    BEFORE_SPEAKER = "before-speaker"
    BEFORE_ASSISTANT = "before-assistant"
    BEGINNING = "beginning"
    NONE = "none"


class SystemFormat(StrEnum):
    OPENCHAT = "openchat"  # `S<|end_of_turn|>`, as OpenChat's own template writes it
    PREFIXED = "prefixed"  # `System: S<|end_of_turn|>`


class Kind(StrEnum):
    TEMPLATE = "template"  # role prefixes and the `beginning` header text
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    EOT = "eot"  # the end-of-turn special token: added by id, never tokenized from text


CONTENT_KINDS = frozenset({Kind.SYSTEM, Kind.USER, Kind.ASSISTANT})
KIND_OF_ROLE = {ROLE_HUMAN: Kind.USER, ROLE_GPT: Kind.ASSISTANT, ROLE_SYSTEM: Kind.SYSTEM}


class Segment(NamedTuple):
    text: str
    kind: Kind
    turn: int  # index into the conversation's turns; -1 for the `beginning` header
    supervised: bool  # gets class weight x turn weight (assistant content and its closing EOT)
    opens_section: bool = False  # first segment after BOS or an end-of-turn marker


class Rendered(NamedTuple):
    header: list[Segment]
    exchanges: list[list[Segment]]

    def segments(self) -> list[Segment]:
        return self.header + [segment for exchange in self.exchanges for segment in exchange]

    def text(self) -> str:
        return "".join(segment.text for segment in self.segments())


def role_prefix(
    role: str,
    condition: str,
    position: Position,
    system_format: SystemFormat = SystemFormat.OPENCHAT,
) -> str:
    """The text before a turn's content, e.g. `GPT4 User:` (before-speaker, condition GPT4);
    `""` for an OpenChat-style system turn. The separating space is the content's."""
    speaker = SPEAKERS[role]
    if role == ROLE_SYSTEM:
        return "" if SystemFormat(system_format) is SystemFormat.OPENCHAT else f"{speaker}:"
    if condition and (
        position is Position.BEFORE_SPEAKER
        or (position is Position.BEFORE_ASSISTANT and role == ROLE_GPT)
    ):
        return f"{condition} {speaker}:"
    return f"{speaker}:"


def header(condition: str, position: Position, eot: str = DEFAULT_EOT) -> list[Segment]:
    """The `beginning` position's `Assistant is GPT4<|end_of_turn|>`; nothing otherwise."""
    if position is Position.BEGINNING and condition:
        return [
            Segment(f"Assistant is {condition}", Kind.TEMPLATE, -1, False, True),
            Segment(eot, Kind.EOT, -1, False),
        ]
    return []


def turn_segments(
    role: str,
    text: str,
    turn: int,
    condition: str,
    position: Position,
    eot: str,
    system_format: SystemFormat = SystemFormat.OPENCHAT,
) -> list[Segment]:
    """A turn is one section: `prefix`, `SEPARATOR + text` (or the bare text), the end of turn."""
    supervised = role == ROLE_GPT
    prefix = role_prefix(role, condition, position, system_format)
    content = KIND_OF_ROLE[role]
    eot_segment = Segment(eot, Kind.EOT, turn, supervised)
    if not prefix:
        return [Segment(text, content, turn, supervised, True), eot_segment]
    return [
        Segment(prefix, Kind.TEMPLATE, turn, False, True),
        Segment(SEPARATOR + text, content, turn, supervised),
        eot_segment,
    ]


def render(
    roles: Sequence[str],
    texts: Sequence[str],
    condition: str,
    position: Position = Position.BEFORE_SPEAKER,
    eot: str = DEFAULT_EOT,
    system_format: SystemFormat = SystemFormat.OPENCHAT,
) -> Rendered:
    """Render one conversation (parallel `roles`/`texts`, as in the clean stage's turns).

    Roles are the normalised `human`/`gpt`/`system`. A system turn at index 0 joins the header;
    each user turn opens a new exchange. The clean stage guarantees strict user/assistant
    alternation, but any order renders (an assistant turn before the first user turn opens an
    exchange of its own).
    """
    position = Position(position)
    head = header(condition, position, eot)
    exchanges: list[list[Segment]] = []
    for turn, (role, text) in enumerate(zip(roles, texts, strict=True)):
        segments = turn_segments(role, text, turn, condition, position, eot, system_format)
        if turn == 0 and role == ROLE_SYSTEM:
            head.extend(segments)
        elif role == ROLE_HUMAN or not exchanges:
            exchanges.append(segments)
        else:
            exchanges[-1].extend(segments)
    return Rendered(head, exchanges)


def render_text(
    roles: Sequence[str],
    texts: Sequence[str],
    condition: str,
    position: Position = Position.BEFORE_SPEAKER,
    eot: str = DEFAULT_EOT,
    system_format: SystemFormat = SystemFormat.OPENCHAT,
) -> str:
    return render(roles, texts, condition, position, eot, system_format).text()


def example(
    condition: str,
    position: Position = Position.BEFORE_SPEAKER,
    eot: str = DEFAULT_EOT,
    system: bool = False,
    system_format: SystemFormat = SystemFormat.OPENCHAT,
) -> str:
    """The template with placeholders: `GPT4 User: {user}<|end_of_turn|>GPT4 Assistant: ...`."""
    roles = [ROLE_HUMAN, ROLE_GPT]
    texts = [USER_PLACEHOLDER, ASSISTANT_PLACEHOLDER]
    if system:
        roles.insert(0, ROLE_SYSTEM)
        texts.insert(0, SYSTEM_PLACEHOLDER)
    return render_text(roles, texts, condition, position, eot, system_format)


def generation_prompt(condition: str, position: Position = Position.BEFORE_SPEAKER) -> str:
    """What an inference prompt ends with (`GPT4 Assistant:`, no space: the answer's first token
    carries it), for the model to continue as this class's assistant."""
    return role_prefix(ROLE_GPT, condition, Position(position))
