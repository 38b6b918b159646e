"""The files the two packages exchange, declared once: the rows of tokenized/ and the records of
metrics.jsonl.

`sharegpt_tools` writes tokenized/ and reads metrics.jsonl (`report --run`); `crlft_train` reads
tokenized/ and writes metrics.jsonl. Neither imports the other; both import this package, which
imports only the standard library. The JSON Schemas beside this file are the declaration (and are
checked against real output by the tests); every constant below is read from them.
"""

from __future__ import annotations

import json
from enum import StrEnum
from importlib import resources
from typing import Any


def load_schema(name: str) -> dict[str, Any]:
    """`tokenized` or `metrics`: the JSON Schema shipped in this package."""
    text = (resources.files(__package__) / f"{name}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


TOKENIZED_SCHEMA = load_schema("tokenized")
METRICS_SCHEMA = load_schema("metrics")

# --- tokenized/ ---------------------------------------------------------------------------------

IGNORE_INDEX: int = TOKENIZED_SCHEMA["x-ignore-index"]  # the label of a token that is no target
END_OF_TURN: str = TOKENIZED_SCHEMA["x-end-of-turn"]  # the default end-of-turn special token
# Column → its Arrow type in the `datasets` folder ("list<int32>", "int32", "string", ...).
COLUMN_TYPES: dict[str, str] = {
    name: spec["x-arrow"] for name, spec in TOKENIZED_SCHEMA["properties"].items()
}
COLUMNS: list[str] = list(COLUMN_TYPES)  # in the order they are written
REQUIRED_COLUMNS: tuple[str, ...] = tuple(TOKENIZED_SCHEMA["required"])  # what the trainer reads
SPLITS: tuple[str, ...] = tuple(TOKENIZED_SCHEMA["x-splits"])
# tokenized/condition_eval/: the validation split rendered under every class's condition.
CONDITION_EVAL_DIR: str = TOKENIZED_SCHEMA["x-condition-eval"]
MANIFEST_FILE: str = TOKENIZED_SCHEMA["x-manifest"]  # every stage's manifest has this name
TOKENIZER_DIR: str = TOKENIZED_SCHEMA["x-tokenizer-dir"]  # the tokenizer, inside tokenized/

# --- metrics.jsonl -----------------------------------------------------------------------------

# The fixed keys of a record, e.g. Metric.LOSS == "loss", Metric.VAL_LOSS == "val/loss".
Metric = StrEnum(  # type: ignore[misc]
    "Metric",
    {key.upper().replace("/", "_"): key for key in METRICS_SCHEMA["properties"]},
)
CLASS_LOSS_PREFIX: str = METRICS_SCHEMA["x-class-prefixes"]["train"]  # loss/<class>
VAL_CLASS_LOSS_PREFIX: str = METRICS_SCHEMA["x-class-prefixes"]["validation"]  # val/loss/<class>


def class_loss_key(name: str, validation: bool = False) -> str:
    """The record key of class `name`'s mean loss: `loss/<name>` or `val/loss/<name>`."""
    return f"{VAL_CLASS_LOSS_PREFIX if validation else CLASS_LOSS_PREFIX}{name}"
