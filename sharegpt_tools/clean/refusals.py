"""Refusal and AI-boilerplate phrases in assistant turns.

`drop` rejects the conversation, `mark` keeps it and records the matching assistant turns so that
`label` gives them weight 0 (kept as context, no loss), `keep` does nothing.
"""

from __future__ import annotations

from enum import StrEnum
from importlib import resources
from pathlib import Path


class RefusalMode(StrEnum):
    DROP = "drop"
    MARK = "mark"
    KEEP = "keep"


def load_phrases(path: Path | None = None) -> tuple[str, ...]:
    if path is None:
        text = (resources.files("sharegpt_tools.clean") / "refusal_phrases.txt").read_text(
            encoding="utf-8"
        )
    else:
        text = path.read_text(encoding="utf-8")
    lines = (line.strip().lower() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def find_refusal(text: str, phrases: tuple[str, ...]) -> str | None:
    """The first phrase found in `text`, if any. Apostrophes are normalised (’ → ')."""
    lowered = text.lower().replace("\u2019", "'")
    return next((phrase for phrase in phrases if phrase in lowered), None)
