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


class PhraseFinder:
    """Finds the first of the phrases (in their order) that a text holds.

    A phrase can only be in a text that holds its longest word, and many phrases share one
    ("language", "cannot", "provide"): one search per distinct word rules most phrases out at
    once (half the searches of trying every phrase, the same answer).
    """

    def __init__(self, phrases: tuple[str, ...]) -> None:
        self.phrases = phrases
        self._anchored = [(phrase, max(phrase.split() or [phrase], key=len)) for phrase in phrases]
        self._anchors = tuple(dict.fromkeys(anchor for _, anchor in self._anchored))

    def find(self, text: str) -> str | None:
        """The first phrase found in `text`, if any. Apostrophes are normalised (’ → ')."""
        return self.find_in_lowered(text.lower())

    def find_in_lowered(self, lowered: str) -> str | None:
        """`find` for a text lower-cased already."""
        lowered = lowered.replace("\u2019", "'")
        present = {anchor for anchor in self._anchors if anchor in lowered}
        if not present:
            return None
        return next((p for p, a in self._anchored if a in present and p in lowered), None)
