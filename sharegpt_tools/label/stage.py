"""The `label` stage: data/clean/ → data/labeled/{conversations,dropped}.parquet + manifest.json.

Each conversation gets the C-RLFT fields of the first rules class it matches: `class`, `weight`
(the class reward, or a value mapped from a numeric column), `condition` (the prompt tag) and
`turn_weights` (1.0 per turn, 0.0 for an assistant turn that `clean --refusals mark` flagged).
Rows no class takes, and rows whose column weight is missing under `missing: drop`, go to
`dropped.parquet` with the full record and a reason, so nothing is lost: in = kept + dropped.

The rules become one set of polars expressions, built once and applied batch by batch while the
clean file is copied, so memory stays bounded by the batch size and not by the data set.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from sharegpt_tools.label.columns import check_columns, check_models
from sharegpt_tools.label.rules import ColumnWeight, FieldTest, LabelClass, Match, Range, Rules
from sharegpt_tools.records import CLEAN_SCHEMA, LABELED_SCHEMA, ROLE_GPT, Reason, StageCounts
from sharegpt_tools.workspace import (
    CONVERSATIONS,
    MANIFEST,
    StageError,
    Workspace,
    stage_manifest,
    write_json_atomic,
)

DROPPED = "dropped.parquet"
DROP_COLUMNS = [pa.field("reason", pa.string()), pa.field("detail", pa.string())]
BATCH_ROWS = 4096
CLASS_INDEX = "_class"


@dataclass
class LabelResult:
    stage: Path
    manifest: dict
    counts: dict
    source: Path  # the clean stage folder that was read


def run_label(workspace: Workspace, rules: Rules, input_dir: Path | None = None) -> LabelResult:
    """Label the clean stage (of `workspace`, or `input_dir`) into `workspace/labeled/`.

    Raises StageError when the clean stage is missing or malformed, and RulesError when the rules
    name columns the data lacks: both before the previous labeled/ is touched.
    """
    started = time.perf_counter()
    source, parent = read_clean_stage(workspace, input_dir)
    path = source / CONVERSATIONS
    input_schema = pq.read_schema(path)
    check_clean_columns(path, input_schema)
    check_columns(rules, column_kinds(input_schema), path)
    check_models(rules, models_in(path), path)
    kept_schema, dropped_schema = output_schemas(input_schema)
    labeler = Labeler(rules)
    tally = LabelTally.for_rules(rules)
    with workspace.writing_stage("labeled") as out:
        with (
            pq.ParquetWriter(out / CONVERSATIONS, kept_schema, compression="zstd") as kept_file,
            pq.ParquetWriter(out / DROPPED, dropped_schema, compression="zstd") as dropped_file,
        ):
            for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
                kept, dropped = labeler.label(pl.from_arrow(batch))
                kept_file.write_table(to_arrow(kept, kept_schema))
                dropped_file.write_table(to_arrow(dropped, dropped_schema))
                tally.add(batch.num_rows, kept, dropped)
        counts = tally.to_json()
        options = {"rules_file": str(rules.path), "input": str(input_dir) if input_dir else None}
        # The content hashes are options too, so the fingerprint changes whenever the rules do.
        options |= {"rules_sha256": rules.sha256, "ids_sha256": rules.ids_sha256}
        manifest = stage_manifest(
            "labeled",
            options,
            counts,
            {"total_s": time.perf_counter() - started},
            parent=parent,
            rules=rules.document,
            rules_sha256=rules.sha256,
            input=str(source),
            files={"conversations": CONVERSATIONS, "dropped": DROPPED},
        )
        write_json_atomic(out / MANIFEST, manifest)
    return LabelResult(workspace.stage("labeled"), manifest, counts, source)


# --- input and output shapes ----------------------------------------------------------------------


def read_clean_stage(workspace: Workspace, input_dir: Path | None) -> tuple[Path, dict]:
    """The clean stage folder and its manifest (the parent of labeled/)."""
    if input_dir is None:
        source, manifest = workspace.stage("clean"), workspace.require("clean")
    else:
        source = input_dir
        if not (source / MANIFEST).is_file():
            raise StageError(
                f"{source} has no {MANIFEST}: point -i at a folder `sharegpt-tools clean` wrote"
            )
        manifest = Workspace(source.parent).require(source.name)
    if manifest.get("stage") != "clean":
        raise StageError(
            f"{source} holds the {manifest.get('stage')!r} stage, not clean: label reads the "
            "output of `sharegpt-tools clean`"
        )
    if not (source / CONVERSATIONS).is_file():
        raise StageError(f"{source / CONVERSATIONS} is missing: re-run `sharegpt-tools clean`")
    return source, manifest


def models_in(path: Path) -> set[str]:
    """The distinct values of the model column (one column read; the file is not loaded)."""
    models = pl.scan_parquet(path).select(pl.col("model").unique()).collect()["model"]
    return {model for model in models.to_list() if model is not None}


def check_clean_columns(path: Path, schema: pa.Schema) -> None:
    missing = [name for name in CLEAN_SCHEMA.names if name not in schema.names]
    if missing:
        raise StageError(
            f"{path} lacks the clean columns {', '.join(missing)}: re-run `sharegpt-tools clean`"
        )
    written = [*LABELED_SCHEMA.names[len(CLEAN_SCHEMA) :], "reason", "detail"]
    clashing = [name for name in written if name in schema.names]
    if clashing:
        raise StageError(
            f"{path} already has the columns {', '.join(clashing)} that label writes: "
            "label a clean stage, or rename those columns"
        )


def output_schemas(input_schema: pa.Schema) -> tuple[pa.Schema, pa.Schema]:
    """LABELED_SCHEMA and clean + reason/detail; extra input columns (say, a judge score added
    for a column weight) are carried along after the declared ones rather than lost."""
    extras = [column for column in input_schema if column.name not in CLEAN_SCHEMA.names]
    kept = pa.schema([*LABELED_SCHEMA, *extras])
    dropped = pa.schema([*CLEAN_SCHEMA, *extras, *DROP_COLUMNS])
    return kept, dropped


def to_arrow(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    return frame.select(schema.names).to_arrow(compat_level=pl.CompatLevel.oldest()).cast(schema)


# --- rules → polars expressions -------------------------------------------------------------------


class Labeler:
    """The rules compiled into expressions once; `label` applies them to one batch."""

    def __init__(self, rules: Rules) -> None:
        names = [c.name for c in rules.classes]
        index = pl.col(CLASS_INDEX)
        self.class_index = first_match(rules)
        self.weight = class_weight(rules.classes, index)
        self.name = index.replace_strict(list(range(len(names))), names, default=None)
        conditions = [c.condition for c in rules.classes]
        self.condition = index.replace_strict(list(range(len(names))), conditions, default=None)
        self.reason = (
            pl.when(index.is_null())
            .then(pl.lit(str(Reason.UNMATCHED)))
            .when(pl.col("weight").is_null())
            .then(pl.lit(str(Reason.MISSING_WEIGHT)))
        )
        self.detail = drop_detail(rules.classes, index)

    def label(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(kept rows with the C-RLFT columns, dropped rows with reason and detail)."""
        decided = frame.with_columns(self.class_index.alias(CLASS_INDEX)).with_columns(
            self.weight.alias("weight"),
            self.name.alias("class"),
            self.condition.alias("condition"),
        )
        decided = decided.with_columns(self.reason.alias("reason"))
        kept = decided.filter(pl.col("reason").is_null())
        dropped = decided.filter(pl.col("reason").is_not_null())
        dropped = dropped.with_columns(self.detail.alias("detail"))
        return with_turn_weights(kept), dropped


def first_match(rules: Rules) -> pl.Expr:
    """Index of the first class whose match holds; else the default class, or null (= drop)."""
    names = {c.name for c in rules.classes}
    fallback = rules.index_of(rules.default) if rules.default in names else None
    cases = [(match_expr(c.match), pl.lit(i, dtype=pl.Int32)) for i, c in enumerate(rules.classes)]
    return first_true(cases, pl.lit(fallback, dtype=pl.Int32))


def first_true(cases: list[tuple[pl.Expr, pl.Expr]], otherwise: pl.Expr) -> pl.Expr:
    """`when(c0).then(v0).when(c1).then(v1)...otherwise(x)`: the value of the first true case."""
    expr = otherwise
    for test, value in reversed(cases):
        expr = pl.when(test).then(value).otherwise(expr)
    return expr


def match_expr(match: Match) -> pl.Expr:
    """All given criteria hold; a null anywhere (unknown) counts as no match."""
    tests: list[pl.Expr] = []
    if match.models:
        tests.append(pl.col("model").is_in(list(match.models)))
    if match.languages:
        tests.append(pl.col("language").is_in(list(match.languages)))
    tests.extend(field_expr(test) for test in match.fields)
    if match.turns:
        tests.append(range_expr(pl.col("num_turns"), match.turns))
    if match.chars:
        tests.append(range_expr(pl.col("num_chars"), match.chars))
    if match.ids:
        ids = pl.Series(sorted(match.ids.ids), dtype=pl.String)
        tests.append(pl.col("id").is_in(ids.implode()))
    if not tests:
        return pl.lit(True)
    return pl.all_horizontal(tests).fill_null(False)


def field_expr(test: FieldTest) -> pl.Expr:
    column = pl.col(test.column)
    if test.regex is not None:
        return column.str.contains(test.regex)
    if test.bounds is not None:
        return range_expr(column, test.bounds)
    values = [test.equals] if test.one_of is None else list(test.one_of)
    # Numbers compare as floats, so `in: [1, 2.5]` works on an integer column without casting 2.5.
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return column.cast(pl.Float64).is_in([float(v) for v in values])
    return column.is_in(values)


def range_expr(column: pl.Expr, bounds: Range) -> pl.Expr:
    tests = []
    if bounds.min is not None:
        tests.append(column >= bounds.min)
    if bounds.max is not None:
        tests.append(column <= bounds.max)
    return pl.all_horizontal(tests)


def class_weight(classes: tuple[LabelClass, ...], index: pl.Expr) -> pl.Expr:
    """The weight of the chosen class: its constant, or its mapped column (null = drop)."""
    cases = [(index == i, weight_expr(c.weight)) for i, c in enumerate(classes)]
    return first_true(cases, pl.lit(None, dtype=pl.Float64)).cast(pl.Float32)


def weight_expr(weight: float | ColumnWeight) -> pl.Expr:
    if not isinstance(weight, ColumnWeight):
        return pl.lit(weight, dtype=pl.Float64)
    value = pl.col(weight.column).cast(pl.Float64)
    (low, high), (start, end) = weight.source, weight.target
    # Clip the position inside `from` (not the mapped value): ±inf then lands on an end of `to`
    # instead of producing inf * 0 = NaN when both ends of `to` are equal.
    position = ((value - low) / (high - low)).clip(0.0, 1.0)
    mapped = start + position * (end - start)
    missing = pl.lit(weight.missing, dtype=pl.Float64)
    return pl.when(value.is_null() | value.is_nan()).then(missing).otherwise(mapped)


def drop_detail(classes: tuple[LabelClass, ...], index: pl.Expr) -> pl.Expr:
    """A sentence per dropped row that says why, with the values the rules looked at."""
    unmatched = pl.format(
        "no class matched (model {}, language {}, {} turns, {} chars) and default is drop",
        *(pl.col(c).cast(pl.String).fill_null("null") for c in ("model", "language")),
        pl.col("num_turns"),
        pl.col("num_chars"),
    )
    cases = [(index.is_null(), unmatched)]
    for i, label in enumerate(classes):
        if isinstance(label.weight, ColumnWeight):
            text = (
                f"class {label.name}: weight column {label.weight.column} is null or NaN "
                "and missing is drop"
            )
            cases.append((index == i, pl.lit(text)))
    return first_true(cases, pl.lit(None, dtype=pl.String))


def with_turn_weights(frame: pl.DataFrame) -> pl.DataFrame:
    """Add `turn_weights`: 1.0 per turn, 0.0 for assistant turns listed in `refusal_turns`."""
    turns = (
        frame.select(
            pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"),
            pl.col("conversations").list.eval(pl.element().struct.field("from")).alias("_role"),
            pl.col("refusal_turns"),
        )
        .with_columns(pl.int_ranges(0, pl.col("_role").list.len(), dtype=pl.Int32).alias("_turn"))
        .explode("_role", "_turn")
    )
    masked = (pl.col("_role") == ROLE_GPT) & pl.col("_turn").is_in(pl.col("refusal_turns"))
    weights = turns.group_by("_row").agg(
        pl.when(masked.fill_null(False))
        .then(0.0)
        .otherwise(1.0)
        .cast(pl.Float32)
        .sort_by("_turn")
        .alias("turn_weights")
    )
    # A left join keeps every row, including one with no turns at all (explode drops those).
    return (
        frame.with_row_index("_row")
        .join(weights, on="_row", how="left", maintain_order="left")
        .with_columns(pl.col("turn_weights").fill_null(pl.lit([], dtype=pl.List(pl.Float32))))
        .drop("_row")
    )


# --- counts ---------------------------------------------------------------------------------------


def column_kinds(schema: pa.Schema) -> dict[str, str]:
    """Column name -> text | number | boolean | other: what a rules test can compare it with."""

    def kind(dtype: pa.DataType) -> str:
        if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
            return "text"
        if pa.types.is_string_view(dtype):
            return "text"
        if pa.types.is_integer(dtype) or pa.types.is_floating(dtype):
            return "number"
        return "boolean" if pa.types.is_boolean(dtype) else "other"

    return {f.name: kind(f.type) for f in schema}


@dataclass
class ClassCounts:
    conversations: int = 0
    turns: int = 0
    chars: int = 0
    masked_turns: int = 0  # assistant turns with turn weight 0 (refusals kept as context)
    weight_min: float | None = None
    weight_max: float | None = None

    def add(self, row: dict) -> None:
        self.conversations += row["conversations"]
        self.turns += row["turns"]
        self.chars += row["chars"]
        self.masked_turns += row["masked_turns"]
        low, high = round(row["weight_min"], 6), round(row["weight_max"], 6)
        self.weight_min = low if self.weight_min is None else min(self.weight_min, low)
        self.weight_max = high if self.weight_max is None else max(self.weight_max, high)


@dataclass
class LabelTally:
    """Counts that add across batches, and up: in = kept + dropped."""

    classes: dict[str, ClassCounts]
    rows: StageCounts = field(default_factory=StageCounts)

    @classmethod
    def for_rules(cls, rules: Rules) -> LabelTally:
        return cls({c.name: ClassCounts() for c in rules.classes})

    def add(self, rows_in: int, kept: pl.DataFrame, dropped: pl.DataFrame) -> None:
        reasons = Counter(dict(dropped.group_by("reason").len().iter_rows()))
        self.rows += StageCounts(rows_in, len(kept), reasons)
        per_class = kept.group_by("class").agg(
            pl.len().alias("conversations"),
            pl.col("num_turns").sum().alias("turns"),
            pl.col("num_chars").sum().alias("chars"),
            pl.col("turn_weights").list.count_matches(0.0).sum().alias("masked_turns"),
            pl.col("weight").min().alias("weight_min"),
            pl.col("weight").max().alias("weight_max"),
        )
        for row in per_class.iter_rows(named=True):
            self.classes[row["class"]].add(row)

    def to_json(self) -> dict:
        rows = self.rows.to_json()
        return {
            **rows,
            "dropped": rows["rejected"],  # label's own word for its rejected rows
            "classes": {name: vars(counts) for name, counts in self.classes.items()},
        }
