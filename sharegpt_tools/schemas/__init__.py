"""The JSON Schemas of the data contract (the *.schema.json files beside this module), shipped
as package data so that an installed wheel validates exactly like a checkout."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent


@cache
def load_schema(name: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


def validate(instance: object, name: str) -> None:
    """Raise `jsonschema.ValidationError` when `instance` breaks schema `name`."""
    import jsonschema

    jsonschema.validate(instance, load_schema(name))
