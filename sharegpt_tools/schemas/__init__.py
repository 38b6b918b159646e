"""Load and apply the JSON Schemas of `schemas/` (the contract that both packages share)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@cache
def load_schema(name: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


def validate(instance: object, name: str) -> None:
    """Raise `jsonschema.ValidationError` when `instance` breaks schema `name`."""
    import jsonschema

    jsonschema.validate(instance, load_schema(name))
