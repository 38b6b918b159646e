"""The `label` rules file: YAML → validated, typed rules (see schemas/rules.schema.json).

A rules file is a path, or the name of a preset shipped with the package (`paper`, ...).

Validation happens in three layers so that every mistake surfaces before any data is touched:
YAML parsing (plain data only, duplicate keys refused), the JSON Schema (shape, types, unknown
fields), and the checks a schema cannot express (finite weights, regexes that compile, unique
names, a `default` that exists, ids files that exist). Every failure is one `RulesError` line:
the rules file, the place inside it, what is wrong and what to do. This module owns the typed
rules and the three layers; the advice wording of YAML and schema errors is in `messages`,
and the check of the rules against an input's columns (made by the label stage) in
`columns`.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sharegpt_tools.label.messages import describe_yaml_error, explain, location, most_useful_error
from sharegpt_tools.label.presets import preset_names, preset_path
from sharegpt_tools.schemas import load_schema

DROP = "drop"
Scalar = str | int | float | bool


class RulesError(Exception):
    """A rules file that cannot be used: printed as one line, no traceback."""


@dataclass(frozen=True)
class Range:
    """Inclusive bounds; either side may be open."""

    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class FieldTest:
    """One test on a column: exactly one of equals / one_of / regex / bounds is set."""

    column: str
    where: str  # place in the rules file, for errors found later against the data
    equals: Scalar | None = None
    one_of: tuple[Scalar, ...] | None = None
    regex: str | None = None
    bounds: Range | None = None


@dataclass(frozen=True)
class IdList:
    path: Path  # resolved
    ids: frozenset[str]
    sha256: str


@dataclass(frozen=True)
class Match:
    """Criteria that must all hold; an empty Match holds for every row."""

    models: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    fields: tuple[FieldTest, ...] = ()
    turns: Range | None = None
    chars: Range | None = None
    ids: IdList | None = None


@dataclass(frozen=True)
class ColumnWeight:
    """A per-conversation weight read from a numeric column, mapped linearly and clipped."""

    column: str
    source: tuple[float, float]  # `map.from`
    target: tuple[float, float]  # `map.to`
    missing: float | None  # None: drop rows whose column is null or NaN
    where: str


@dataclass(frozen=True)
class LabelClass:
    name: str
    weight: float | ColumnWeight
    condition: str  # "" = no tag: the tokenizer renders the plain template
    match: Match
    where: str


@dataclass(frozen=True)
class Rules:
    path: Path
    classes: tuple[LabelClass, ...]
    default: str  # a class name or DROP
    sha256: str  # of the rules file's bytes
    # The validated document with the defaults filled in and ids files as resolved paths: what
    # the manifest records, so a labeled/ stage says exactly which rules made it.
    document: dict = field(default_factory=dict)
    ids_sha256: dict[str, str] = field(default_factory=dict)  # ids file path -> sha256

    def index_of(self, name: str) -> int:
        return next(i for i, c in enumerate(self.classes) if c.name == name)


# --- loading --------------------------------------------------------------------------------------


def resolve_rules(spec: str) -> Path:
    """The rules file `spec` names: a file, or else the shipped preset of that name."""
    path = Path(spec)
    if path.is_file():
        return path
    preset = preset_path(spec)
    if preset is not None:
        return preset
    what = "is a folder, not a rules file" if path.exists() else "no such file"
    raise RulesError(
        f"{spec}: {what}, and no preset has that name; give a rules file, or one of the presets "
        f"{', '.join(preset_names())} (`sharegpt-tools rules list` describes them)"
    )


def load_rules(path: Path) -> Rules:
    """Read, validate and type a rules file; raise RulesError (one line) on any problem."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RulesError(f"{path}: cannot read the rules file ({exc.strerror})") from exc
    document = parse_yaml(path, data)
    check_schema(path, document)
    return build_rules(path, document, hashlib.sha256(data).hexdigest())


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader (no Python objects) that also refuses duplicate keys, which PyYAML would
    otherwise resolve silently to the last one: two `weight:` lines must not pass unnoticed."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}: keep one of them", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 (PyYAML) reads `1e-2` and `1.0e2` as text: its floats need a dot and a signed
# exponent. Users write weights the way YAML 1.2, JSON and Python do, so exponent forms are
# floats here too.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(path: Path, data: bytes) -> object:
    try:
        document = yaml.load(data, Loader=_StrictLoader)  # a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        raise RulesError(f"{path}: {describe_yaml_error(exc)}") from exc
    if document is None:
        raise RulesError(
            f"{path}: the file is empty; start it with `classes:` "
            "(`sharegpt-tools rules show paper` prints an example)"
        )
    return document


# --- schema ---------------------------------------------------------------------------------------


def check_schema(path: Path, document: object) -> None:
    import jsonschema
    from jsonschema.exceptions import by_relevance

    validator = jsonschema.Draft202012Validator(load_schema("rules"))
    # At equal depth an unknown field explains more than the missing one it was probably meant
    # to be (`colum:` instead of `column:`).
    relevance = by_relevance(strong={"additionalProperties"})
    errors = list(validator.iter_errors(document))
    if not errors:
        return
    error = most_useful_error(max(errors, key=relevance), relevance)
    raise RulesError(f"{path}: {location(error.absolute_path)}: {explain(error)}")


# --- checks the schema cannot express, and typing -------------------------------------------------


def build_rules(path: Path, document: dict, sha256: str) -> Rules:
    classes = tuple(
        build_class(path, raw, f"classes[{i}]") for i, raw in enumerate(document["classes"])
    )
    check_names(path, classes)
    default = document.get("default", DROP)
    if default != DROP and default not in {c.name for c in classes}:
        names = ", ".join(c.name for c in classes)
        raise RulesError(
            f"{path}: default: {default!r} names no class; use `drop` or one of: {names}"
        )
    ids = {str(c.match.ids.path): c.match.ids.sha256 for c in classes if c.match.ids}
    return Rules(path, classes, default, sha256, normalised(document, classes, default), ids)


def normalised(document: dict, classes: tuple[LabelClass, ...], default: str) -> dict:
    out = copy.deepcopy(document) | {"default": default}
    for raw, label in zip(out["classes"], classes, strict=True):
        raw["condition"] = label.condition
        if label.match.ids:
            raw["match"]["ids_file"] = str(label.match.ids.path)
    return out


def check_names(path: Path, classes: tuple[LabelClass, ...]) -> None:
    seen: dict[str, str] = {}
    for label in classes:
        if label.name == DROP:
            raise RulesError(
                f"{path}: {label.where}.name: `drop` is reserved (it means `default: drop`); "
                "rename the class"
            )
        if label.name in seen:
            raise RulesError(
                f"{path}: {label.where}.name: {label.name!r} is already the name of "
                f"{seen[label.name]}; class names must be unique"
            )
        seen[label.name] = label.where


def build_class(path: Path, raw: dict, where: str) -> LabelClass:
    weight: float | ColumnWeight
    if isinstance(raw["weight"], dict):
        weight = build_column_weight(path, raw["weight"], f"{where}.weight")
    else:
        check_finite(path, raw["weight"], f"{where}.weight")
        weight = float(raw["weight"])
    match = build_match(path, raw.get("match") or {}, f"{where}.match")
    return LabelClass(raw["name"], weight, raw.get("condition", ""), match, where)


def check_finite(path: Path, value: float, where: str) -> None:
    # NaN and inf pass the schema's `minimum: 0` (comparisons with NaN are false), so check here:
    # one NaN weight would turn the whole training loss into NaN.
    if not math.isfinite(value):
        raise RulesError(f"{path}: {where}: {value} is not a finite number; use a number ≥ 0")


def build_column_weight(path: Path, raw: dict, where: str) -> ColumnWeight:
    source = raw["map"]["from"]
    target = raw["map"]["to"]
    for i, value in enumerate(source):
        check_finite(path, value, f"{where}.map.from[{i}]")
    for i, value in enumerate(target):
        check_finite(path, value, f"{where}.map.to[{i}]")
    if source[0] == source[1]:
        raise RulesError(
            f"{path}: {where}.map.from: both ends are {source[0]}; give two different numbers"
        )
    missing = raw["missing"]
    if missing != DROP:
        check_finite(path, missing, f"{where}.missing")
    return ColumnWeight(
        raw["column"],
        (float(source[0]), float(source[1])),
        (float(target[0]), float(target[1])),
        None if missing == DROP else float(missing),
        where,
    )


def build_match(path: Path, raw: dict, where: str) -> Match:
    tests = raw.get("field", [])
    tests = [tests] if isinstance(tests, dict) else tests
    return Match(
        models=as_tuple(raw.get("model")),
        languages=as_tuple(raw.get("language")),
        fields=tuple(
            build_field_test(path, test, f"{where}.field[{i}]") for i, test in enumerate(tests)
        ),
        turns=build_range(path, raw.get("turns"), f"{where}.turns"),
        chars=build_range(path, raw.get("chars"), f"{where}.chars"),
        ids=load_ids(path, raw["ids_file"], f"{where}.ids_file") if "ids_file" in raw else None,
    )


def as_tuple(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (str(value),)


def build_range(path: Path, raw: dict | None, where: str) -> Range | None:
    if raw is None:
        return None
    low, high = raw.get("min"), raw.get("max")
    for side, value in (("min", low), ("max", high)):
        if value is not None:
            check_finite(path, value, f"{where}.{side}")
    if low is not None and high is not None and low > high:
        raise RulesError(f"{path}: {where}: min {low} is above max {high}; swap or fix them")
    return Range(low, high)


def build_field_test(path: Path, raw: dict, where: str) -> FieldTest:
    regex = raw.get("regex")
    if regex is not None:
        check_regex(path, regex, f"{where}.regex")
    has_bounds = "min" in raw or "max" in raw
    return FieldTest(
        column=raw["column"],
        where=where,
        equals=raw.get("equals"),
        one_of=tuple(raw["in"]) if "in" in raw else None,
        regex=regex,
        bounds=build_range(path, raw, where) if has_bounds else None,
    )


def check_regex(path: Path, pattern: str, where: str) -> None:
    """Compile with the engine that will run it (polars: Rust regex, no look-around)."""
    import polars as pl

    try:
        pl.Series([""]).str.contains(pattern)
    except pl.exceptions.PolarsError as exc:
        reason = str(exc).rsplit("error:", 1)[-1].strip().splitlines()[0]
        raise RulesError(
            f"{path}: {where}: {pattern!r} is not a valid regex ({reason}); "
            "use Rust regex syntax (no look-around or backreferences)"
        ) from exc


def load_ids(path: Path, name: str, where: str) -> IdList:
    """Ids files are resolved next to the rules file, so a rules folder can move as a whole."""
    ids_path = (path.parent / name).resolve()
    try:
        data = ids_path.read_bytes()
        text = data.decode("utf-8")
    except OSError as exc:
        raise RulesError(
            f"{path}: {where}: cannot read {ids_path} ({exc.strerror}); the path is relative "
            "to the rules file"
        ) from exc
    except UnicodeDecodeError as exc:
        raise RulesError(f"{path}: {where}: {ids_path} is not UTF-8 text") from exc
    ids = frozenset(line.strip() for line in text.splitlines() if line.strip())
    return IdList(ids_path, ids, hashlib.sha256(data).hexdigest())
