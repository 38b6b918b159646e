"""The rules files shipped with the package, usable by name: `label --rules paper`.

They reproduce the OpenChat paper's experiments and OpenChat-3.5's format. They are package data,
so an installed wheel has them too; `sharegpt-tools rules show NAME > mine.yaml` starts a file of
one's own from any of them.
"""

from __future__ import annotations

from pathlib import Path

PRESET_DIR = Path(__file__).resolve().parent
SUFFIX = ".yaml"


def preset_names() -> list[str]:
    return sorted(p.name.removesuffix(SUFFIX) for p in PRESET_DIR.glob(f"*{SUFFIX}"))


def preset_path(name: str) -> Path | None:
    """The file of preset `name`, or None when there is no such preset."""
    path = PRESET_DIR / f"{name}{SUFFIX}"
    return path if name in preset_names() else None


def preset_summary(name: str) -> str:
    """The first line of the preset's header comment: what the preset is for."""
    for line in (PRESET_DIR / f"{name}{SUFFIX}").read_text(encoding="utf-8").splitlines():
        if line.startswith("#") and line.strip("# "):
            return line.lstrip("# ").rstrip()
    return ""
