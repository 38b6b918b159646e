"""Which fields of a row hold its id, turns, roles, texts and model: the row layouts of the
public chat collections, told from each row's own keys.

* ShareGPT (2023 dumps): `id`, `conversations` of `{from, value}`, sometimes `model`;
* OpenAI-style messages: `id`, `messages` of `{role, content}`;
* WildChat: `conversation_hash`, `conversation` of `{role, content, ...}`, per-row `model`
  (`gpt-4-0314`, `gpt-4-1106-preview`, `gpt-3.5-turbo-0613`, ...), `language`, `toxic`,
  `redacted`, `openai_moderation`, `detoxify_moderation`;
* LMSYS-Chat-1M: `conversation_id`, `conversation` of `{role, content}`, per-row `model`
  (`vicuna-13b`, `llama-2-13b-chat`, `claude-2`, ...), `language`, `openai_moderation`,
  `redacted`.

`--id-field`, `--turns-field`, `--role-field`, `--text-field` and `--model-field` name the
fields of any other layout (and win over the detected one's).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sharegpt_tools.clean.options import CleanOptions


@dataclass(frozen=True, slots=True)
class RowLayout:
    name: str  # as counted in the manifest and the summary
    signature: frozenset[str]  # keys a row of this layout has
    id_fields: tuple[str, ...]
    turns_field: str
    role_fields: tuple[str, ...] = ("from", "role")
    text_fields: tuple[str, ...] = ("value", "content")
    model_field: str = "model"
    title: str = ""  # how the summary names it

    def describe(self) -> str:
        """ "WildChat (conversation_hash, conversation[role, content])": its name and fields."""
        fields = f"{self.id_fields[0]}, {self.turns_field}[{self.role_fields[0]}, "
        return f"{self.title or self.name} ({fields}{self.text_fields[0]}])"


SHAREGPT = RowLayout(
    "sharegpt", frozenset({"conversations"}), ("id",), "conversations", title="ShareGPT"
)
# Rows of role/content turns name those first (in a reject's message too).
ROLE_CONTENT = {"role_fields": ("role", "from"), "text_fields": ("content", "value")}
MESSAGES = RowLayout(
    "messages", frozenset({"messages"}), ("id",), "messages", title="messages", **ROLE_CONTENT
)
WILDCHAT = RowLayout(
    "wildchat", frozenset({"conversation_hash", "conversation"}), ("conversation_hash",),
    "conversation", title="WildChat", **ROLE_CONTENT,
)  # fmt: skip
LMSYS = RowLayout(
    "lmsys", frozenset({"conversation_id", "conversation"}), ("conversation_id",),
    "conversation", title="LMSYS-Chat", **ROLE_CONTENT,
)  # fmt: skip
# Most specific first; a row that matches none is read as ShareGPT (and rejected as such, naming
# the missing `conversations`).
KNOWN = (WILDCHAT, LMSYS, SHAREGPT, MESSAGES)
CUSTOM = "custom"  # the name of a layout the --*-field options made


def describe(name: str) -> str:
    """A manifest's layout name in words, for the summary."""
    if name == CUSTOM:
        return "the --*-field names"
    return next((layout.describe() for layout in KNOWN if layout.name == name), name)


def detect(row: dict) -> RowLayout:
    """The known layout whose keys the row has (a few set lookups per row)."""
    keys = row.keys()
    return next((layout for layout in KNOWN if layout.signature <= keys), SHAREGPT)


def with_overrides(layout: RowLayout, options: CleanOptions) -> RowLayout:
    """The layout with the fields the command line names; renamed `custom` when any is given."""
    if not options.names_fields():
        return layout
    return replace(
        layout,
        name=CUSTOM,
        id_fields=(options.id_field,) if options.id_field else layout.id_fields,
        turns_field=options.turns_field or layout.turns_field,
        role_fields=(options.role_field,) if options.role_field else layout.role_fields,
        text_fields=(options.text_field,) if options.text_field else layout.text_fields,
        model_field=options.model_field or layout.model_field,
    )


def layout_of(row: dict, options: CleanOptions) -> RowLayout:
    return with_overrides(detect(row), options)
