"""What the `clean` stage is asked to do: its options and their choices.

The CLI takes its defaults from here (one declaration), and imports it at start-up: nothing here
imports numpy or the steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sharegpt_tools.clean.refusals import RefusalMode
from sharegpt_tools.records import MODEL_GPT4, MODEL_GPT35, MODEL_UNKNOWN


class LangBackend(StrEnum):
    FASTTEXT = "fasttext"
    LANGDETECT = "langdetect"
    NONE = "none"


class UnknownAs(StrEnum):
    """What an unattributed row becomes."""

    UNKNOWN = MODEL_UNKNOWN
    GPT35 = MODEL_GPT35
    GPT4 = MODEL_GPT4


@dataclass(frozen=True)
class CleanOptions:
    """Every knob of the clean stage; recorded verbatim in the manifest."""

    html: bool = True
    min_turns: int = 2
    max_turn_chars: int = 200_000
    exact_dedup: bool = True
    near_dedup: bool = True
    near_threshold: float = 0.8
    near_ngram: int = 5
    num_perm: int = 128
    languages: tuple[str, ...] = ()
    lang_backend: LangBackend = LangBackend.FASTTEXT
    lang_threshold: float = 0.5
    unknown_model_as: UnknownAs = UnknownAs.UNKNOWN
    refusals: RefusalMode = RefusalMode.MARK
    refusal_phrases: Path | None = None
    workers: int = 0  # 0 = one per core
    batch_size: int = 256
    # The fields of a row layout the detection does not know (clean.row_layout); None = detected.
    id_field: str | None = None
    turns_field: str | None = None
    role_field: str | None = None
    text_field: str | None = None
    model_field: str | None = None
    models: Path | None = None  # a model table (YAML) read before the built-in one

    def names_fields(self) -> bool:
        fields = (self.id_field, self.turns_field, self.role_field, self.text_field)
        return any(fields) or self.model_field is not None

    def to_json(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["languages"] = list(self.languages)
        for choice in ("lang_backend", "unknown_model_as", "refusals"):
            out[choice] = str(out[choice])  # plain strings in the manifest, whatever was passed
        for path in ("refusal_phrases", "models"):
            out[path] = str(getattr(self, path)) if getattr(self, path) else None
        return out
