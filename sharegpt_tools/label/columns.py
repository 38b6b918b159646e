"""The rules meet the data: every column the rules name exists and holds the right kind of value.

Run by the label stage against its input's schema before any row is written, so that a rules
file that parses but does not fit the data fails with one `RulesError` line, not mid-run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sharegpt_tools.label.rules import ColumnWeight, FieldTest, Rules, RulesError, Scalar


def check_columns(rules: Rules, kinds: Mapping[str, str], source: Path) -> None:
    """Every column the rules name exists in `source` and holds what its test compares with.

    `kinds` maps column name -> text | number | boolean | other. Run before any row is written.
    """
    for label in rules.classes:
        for test in label.match.fields:
            need = needed_kind(rules.path, test)
            check_column(rules.path, test.where, test.column, need, kinds, source)
        if isinstance(label.weight, ColumnWeight):
            weight = label.weight
            check_column(rules.path, weight.where, weight.column, "number", kinds, source)


def check_models(rules: Rules, models_in_data: set[str], source: Path) -> None:
    """Every model a class names is one clean writes: in the data, or a name the built-in model
    table gives to itself (`gpt-4o` for a dump that has none). A typo (`gpt3`) would silently
    match nothing."""
    from sharegpt_tools.clean.attribution import ModelTable

    table = ModelTable.load()
    for index, label in enumerate(rules.classes):
        for position, model in enumerate(label.match.models):
            if model in models_in_data or table.normalise(model) == model:
                continue
            where = f"classes[{index}].match.model" + (
                f"[{position}]" if len(label.match.models) > 1 else ""
            )
            raise RulesError(
                f"{rules.path}: {where}: {model!r} is neither a model of {source} "
                f"({', '.join(sorted(models_in_data)) or 'none'}) nor one clean writes "
                "(gpt-4, gpt-3.5, gpt-4o, gpt-4o-mini, claude-2, …, unknown): fix the spelling"
            )


def needed_kind(path: Path, test: FieldTest) -> str:
    if test.regex is not None:
        return "text"
    if test.bounds is not None:
        return "number"
    values = [test.equals] if test.one_of is None else list(test.one_of)
    found = {value_kind(v) for v in values}
    if len(found) > 1:
        raise RulesError(
            f"{path}: {test.where}: the values mix {' and '.join(sorted(found))}; "
            "a column holds one kind of value, so use one kind"
        )
    return found.pop()


def value_kind(value: Scalar) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, int | float) else "text"


def check_column(
    path: Path, where: str, column: str, need: str, kinds: Mapping[str, str], source: Path
) -> None:
    if column not in kinds:
        raise RulesError(
            f"{path}: {where}.column: {source} has no column {column!r}; "
            f"use one of: {', '.join(kinds)}"
        )
    if kinds[column] != need:
        advice = {
            "text": "a regex or quoted values",
            "number": "numbers (no quotes) or min/max",
            "boolean": "true or false",
        }.get(kinds[column], "another column: lists and structs cannot be tested")
        raise RulesError(
            f"{path}: {where}.column: {column!r} holds {kinds[column]} values but this needs "
            f"{need}; compare it with {advice}"
        )
