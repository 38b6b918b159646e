"""The conversation record, the reject reasons and the row accounting, defined once for every
stage.

Field names here are the data contract of `data/clean/` (see schemas/conversation.schema.json).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa

ROLE_HUMAN = "human"
ROLE_GPT = "gpt"
ROLE_SYSTEM = "system"

# Speaker spellings seen in public ShareGPT-style dumps, mapped to the three roles we keep.
ROLE_ALIASES: dict[str, str] = {
    "human": ROLE_HUMAN,
    "user": ROLE_HUMAN,
    "gpt": ROLE_GPT,
    "chatgpt": ROLE_GPT,
    "assistant": ROLE_GPT,
    "bard": ROLE_GPT,
    "bing": ROLE_GPT,
    "model": ROLE_GPT,
    "system": ROLE_SYSTEM,
}

MODEL_GPT4 = "gpt-4"
MODEL_GPT35 = "gpt-3.5"
MODEL_UNKNOWN = "unknown"


class Reason(StrEnum):
    """Stable reject codes of every stage: scripts and later stages match on these strings.

    clean rejects a row for the first group, label drops one for the second, tokenize for the
    third (a conversation that produced no row)."""

    # --- clean
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    # A lone UTF-16 surrogate escape (`\ud800` without its pair): valid JSON, not valid Unicode.
    INVALID_UNICODE = "invalid_unicode"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_ID = "missing_id"
    MISSING_CONVERSATIONS = "missing_conversations"
    TURN_NOT_AN_OBJECT = "turn_not_an_object"
    VALUE_NOT_A_STRING = "value_not_a_string"
    UNKNOWN_ROLE = "unknown_role"
    EMPTY_TURN = "empty_turn"
    TURN_TOO_LONG = "turn_too_long"
    NOT_ALTERNATING = "not_alternating"
    TOO_SHORT = "too_short"
    DUPLICATE_ID = "duplicate_id"
    EXACT_DUPLICATE = "exact_duplicate"
    NEAR_DUPLICATE = "near_duplicate"
    LANGUAGE_FILTERED = "language_filtered"
    REFUSAL = "refusal"
    # --- label
    UNMATCHED = "unmatched"  # no class matched and `default: drop`
    MISSING_WEIGHT = "missing_weight"  # the weight column is null/NaN and `missing: drop`
    # --- tokenize
    TOO_LONG = "too_long"  # longer than --max-length with --long drop
    NO_SUPERVISED_TOKEN_LEFT = "no_supervised_token_left"  # truncation cut every answer


@dataclass
class StageCounts:
    """Rows in, kept and rejected by reason: the accounting in every stage's manifest.

    in = kept + Σ rejected always holds when each row is counted once as in and once as kept or
    rejected; counts of batches or workers add up with `+`.
    """

    rows_in: int = 0
    kept: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def __add__(self, other: StageCounts) -> StageCounts:
        return StageCounts(
            self.rows_in + other.rows_in, self.kept + other.kept, self.rejected + other.rejected
        )

    def reject(self, reason: Reason, rows: int = 1) -> None:
        if rows:
            self.rejected[str(reason)] += rows

    def to_json(self) -> dict:
        """The manifest schema's accounting: in, kept, rejected, rejected_by_reason."""
        rejected = sum(self.rejected.values())
        if self.rows_in != self.kept + rejected:
            raise AssertionError(
                f"accounting broken: {self.rows_in} rows in, {self.kept} kept, {rejected} rejected"
            )
        return {
            "in": self.rows_in,
            "kept": self.kept,
            "rejected": rejected,
            "rejected_by_reason": {str(k): v for k, v in self.rejected.most_common()},
        }


class Rejected(Exception):
    """Raised by a cleaning step: the row goes to rejects.parquet with this reason and detail."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


TURN_TYPE = pa.struct([("from", pa.string()), ("value", pa.string())])

CLEAN_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("conversations", pa.list_(TURN_TYPE)),
        ("model", pa.string()),
        ("model_evidence", pa.string()),
        ("language", pa.string()),
        ("language_score", pa.float32()),
        # Indexes into `conversations` of assistant turns that matched a refusal phrase under
        # `--refusals mark`; `label` gives them weight 0 (kept as context, no loss).
        ("refusal_turns", pa.list_(pa.int32())),
        ("num_turns", pa.int32()),
        ("num_chars", pa.int64()),
        ("source", pa.string()),  # input path as given and row number, for tracing a record back
        # The model's spelling in the dump (`gpt-4-0314`, a slug, a "Model:" line); None if none.
        ("model_raw", pa.string()),
        # The collection's own moderation verdicts (WildChat, LMSYS); None where it has none.
        ("toxic", pa.bool_()),
        ("redacted", pa.bool_()),
        ("flagged", pa.bool_()),  # OpenAI's moderation flagged a turn
    ]
)

# `label` adds the C-RLFT fields. `turn_weights` has one entry per turn: a multiplier of the class
# weight for that turn's tokens (1.0, or 0.0 for an assistant turn kept only as context, such as a
# refusal that `clean --refusals mark` flagged). Only assistant turns are ever supervised.
LABELED_SCHEMA = (
    CLEAN_SCHEMA.append(pa.field("class", pa.string()))
    .append(pa.field("weight", pa.float32()))
    .append(pa.field("condition", pa.string()))
    .append(pa.field("turn_weights", pa.list_(pa.float32())))
)

REJECTS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("source", pa.string()),
        ("original", pa.string()),  # the input row as JSON text, so nothing is ever lost
    ]
)
