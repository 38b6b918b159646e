"""The wording of a rules file's YAML and JSON Schema errors: one sentence of advice each.

`rules.load_rules` finds the error (PyYAML, jsonschema); this module says it in the words of
someone writing YAML: where it is (`classes[1].match.model`), what is wrong and what to write
instead. Pure functions over the libraries' error objects; nothing here raises.
"""

from __future__ import annotations

from typing import Any

import yaml


def describe_yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(exc, "problem", None) or str(exc)
    if "could not determine a constructor for the tag" in problem:
        tag = problem.split("'")[1].replace("tag:yaml.org,2002:", "!!")
        return f"{where}YAML tag {tag} is not allowed; rules files are plain data, remove the tag"
    return f"{where}not valid YAML ({' '.join(problem.split())}); fix the syntax"


def most_useful_error(error: Any, relevance: Any) -> Any:
    """For a failed oneOf/anyOf, report the error inside the one alternative whose type fits.

    `weight: {colum: x}` is plainly meant to be the mapping form of a weight, so "unknown field
    'colum'" helps; "not valid under any of the given schemas" does not. When no alternative or
    several fit, the alternatives' own description (written as advice) is reported instead.
    (jsonschema's `best_match` descends by a different heuristic, hence this.)
    """
    while error.validator in ("oneOf", "anyOf") and error.context:
        by_branch: dict[int, list[Any]] = {}
        for sub in error.context:
            by_branch.setdefault(sub.relative_schema_path[0], []).append(sub)
        fitting = [
            errors
            for errors in by_branch.values()
            if not any(e.validator in ("type", "const") and not e.relative_path for e in errors)
        ]
        if len(fitting) != 1:
            return error
        error = max(fitting[0], key=relevance)
    return error


def location(path: Any) -> str:
    """`classes[1].match.model` from a JSON path; `(top level)` for the document itself."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(top level)"


def show(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


# JSON Schema type names in the words of a YAML file, with what to write instead.
TYPE_ADVICE = {
    "object": "a mapping (key: value)",
    "array": "a list ([a, b] or one `- item` per line)",
    "string": "a string (put it in quotes)",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
}


def explain(error: Any) -> str:
    """One sentence: what is wrong and what to do, from a jsonschema error."""
    kind, value, schema = error.validator, error.instance, error.schema
    hint = schema.get("description", "") if error.absolute_path else ROOT_HINT
    if kind == "additionalProperties":
        allowed = ", ".join(schema.get("properties", {}))
        unknown = sorted(str(k) for k in value if k not in schema.get("properties", {}))
        return f"unknown field {unknown[0]!r}; fix the spelling or remove it (allowed: {allowed})"
    if kind == "required":
        missing = next(k for k in error.validator_value if k not in value)
        about = schema.get("properties", {}).get(missing, {}).get("description", "")
        return f"missing field {missing!r}; add it" + (f" ({about})" if about else "")
    if kind == "type":
        wanted = error.validator_value
        wanted = wanted if isinstance(wanted, list) else [wanted]
        text = f"got {show(value)}; write {' or '.join(TYPE_ADVICE[w] for w in wanted)}"
        if isinstance(value, bool):
            text += " (YAML reads yes/no/on/off/true/false as booleans: quote the value)"
        return text + (f": {hint}" if hint and wanted == ["object"] else "")
    if kind == "enum":
        return f"{show(value)} is not allowed; use one of {', '.join(error.validator_value)}"
    if kind in ("minimum", "exclusiveMinimum"):
        return f"{show(value)} is too small; use a value ≥ {error.validator_value}"
    if kind in ("minItems", "maxItems") and schema.get("minItems") == schema.get("maxItems"):
        return f"needs exactly {error.validator_value} items, got {len(value)}"
    if kind == "minItems":
        return f"needs at least {error.validator_value} item(s); {hint or 'add one'}"
    return f"got {show(value)}; use {hint}" if hint else error.message


ROOT_HINT = "a mapping that starts with `classes:` (`sharegpt-tools rules show paper` prints one)"
