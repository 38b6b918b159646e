"""The label stage end to end: class choice, weights, turn weights, accounting, atomicity, CLI."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from sharegpt_tools.clean.options import CleanOptions
from sharegpt_tools.clean.pipeline import run_clean
from sharegpt_tools.cli.main import app
from sharegpt_tools.label.presets import PRESET_DIR as PRESETS
from sharegpt_tools.label.rules import RulesError, load_rules
from sharegpt_tools.label.stage import LabelResult, run_label
from sharegpt_tools.records import CLEAN_SCHEMA, LABELED_SCHEMA, Reason
from sharegpt_tools.schemas import validate
from sharegpt_tools.workspace import StageError, Workspace, stage_manifest, write_json_atomic

runner = CliRunner()


# --- fixtures: a clean stage made by the real `clean`, and small hand-built ones --------------


@pytest.fixture(scope="module")
def real_clean(sample_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The clean stage of the synthetic sample (made once; tests copy it)."""
    workspace = Workspace(tmp_path_factory.mktemp("real") / "ws")
    return run_clean([sample_raw], workspace, CleanOptions(workers=1)).stage


@pytest.fixture
def real_ws(real_clean: Path, tmp_path: Path) -> Workspace:
    shutil.copytree(real_clean, tmp_path / "ws" / "clean")
    return Workspace(tmp_path / "ws")


def record(
    row_id: str,
    model: str = "gpt-4",
    language: str = "en",
    turns: int = 2,
    chars_per_turn: int = 10,
    refusals: tuple[int, ...] = (),
    **extra: object,
) -> dict:
    conversation = [
        {"from": "human" if i % 2 == 0 else "gpt", "value": "x" * chars_per_turn}
        for i in range(turns)
    ]
    return {
        "id": row_id,
        "conversations": conversation,
        "model": model,
        "model_evidence": f"model field {model!r}",
        "language": language,
        "language_score": 0.99,
        "refusal_turns": list(refusals),
        "num_turns": turns,
        "num_chars": turns * chars_per_turn,
        "source": f"hand.json:{row_id}",
        **extra,
    }


def write_clean(root: Path, rows: list[dict], extra: list[pa.Field] = ()) -> Workspace:
    """A clean stage as `clean` would leave it: CLEAN_SCHEMA parquet (+ extras) and a manifest."""
    stage = root / "ws" / "clean"
    stage.mkdir(parents=True)
    schema = pa.schema([*CLEAN_SCHEMA, *extra])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), stage / "conversations.parquet")
    counts = {"in": len(rows), "kept": len(rows), "rejected": 0, "rejected_by_reason": {}}
    inputs = [{"path": "hand.json", "bytes": 0, "sha256": "0" * 64}]
    write_json_atomic(
        stage / "manifest.json", stage_manifest("clean", {}, counts, {}, None, inputs)
    )
    return Workspace(root / "ws")


def write_rules(root: Path, text: str, name: str = "rules.yaml") -> Path:
    path = root / name
    path.write_text(text, encoding="utf-8")
    return path


def label(ws: Workspace, root: Path, text: str) -> tuple[pl.DataFrame, pl.DataFrame, LabelResult]:
    result = run_label(ws, load_rules(write_rules(root, text)))
    kept = pl.read_parquet(result.stage / "conversations.parquet")
    dropped = pl.read_parquet(result.stage / "dropped.parquet")
    return kept, dropped, result


ROWS = [
    record("a", "gpt-4", "en", turns=2, chars_per_turn=10),
    record("b", "gpt-4", "zh", turns=4, chars_per_turn=50),
    record("c", "gpt-3.5", "en", turns=6, chars_per_turn=100),
    record("d", "gpt-3.5", "fr", turns=2, chars_per_turn=500),
    record("e", "unknown", "en", turns=8, chars_per_turn=20),
]


# --- the paper's rules on a real clean stage ----------------------------------------------------


def test_paper_rules_label_every_clean_row(real_ws: Workspace) -> None:
    result = run_label(real_ws, load_rules(PRESETS / "paper.yaml"))
    clean = pl.read_parquet(real_ws.stage("clean") / "conversations.parquet")
    kept = pl.read_parquet(result.stage / "conversations.parquet")
    assert pq.read_schema(result.stage / "conversations.parquet").equals(LABELED_SCHEMA)
    assert kept.height == clean.height and kept["id"].to_list() == clean["id"].to_list()
    expected = kept.select(
        pl.when(pl.col("model") == "gpt-4").then(pl.lit("gpt4")).otherwise(pl.lit("gpt35"))
    )
    assert kept["class"].to_list() == expected.to_series().to_list()
    by_class = {row["class"]: row for row in kept.unique("class").iter_rows(named=True)}
    assert (by_class["gpt4"]["condition"], by_class["gpt4"]["weight"]) == ("GPT4", 1.0)
    assert by_class["gpt35"]["condition"] == "GPT3"
    assert by_class["gpt35"]["weight"] == pytest.approx(0.1)
    assert (kept["turn_weights"].list.len() == kept["num_turns"]).all()

    manifest = result.manifest
    validate(manifest, "manifest")
    assert manifest["parent"]["fingerprint"] == real_ws.manifest("clean")["fingerprint"]
    assert manifest["rules"]["classes"][0]["name"] == "gpt4"
    assert manifest["rules_sha256"] == load_rules(PRESETS / "paper.yaml").sha256
    assert json.loads((result.stage / "manifest.json").read_text()) == manifest
    counts = manifest["counts"]
    assert counts["in"] == clean.height == counts["kept"] + counts["dropped"]
    assert counts["classes"]["gpt4"]["conversations"] == (clean["model"] == "gpt-4").sum()
    assert sum(c["turns"] for c in counts["classes"].values()) == clean["num_turns"].sum()
    for row in kept.iter_rows(named=True):
        validate(row, "conversation")


def test_refusals_marked_by_clean_get_turn_weight_zero(real_ws: Workspace) -> None:
    result = run_label(real_ws, load_rules(PRESETS / "paper.yaml"))
    kept = pl.read_parquet(result.stage / "conversations.parquet")
    refused = kept.filter(pl.col("refusal_turns").list.len() > 0)
    assert refused.height > 0, "the sample has refusals that clean marks"
    for row in refused.iter_rows(named=True):
        zeros = [i for i, w in enumerate(row["turn_weights"]) if w == 0.0]
        assert zeros == sorted(row["refusal_turns"])
    masked = sum(c["masked_turns"] for c in result.counts["classes"].values())
    assert masked == refused["refusal_turns"].list.len().sum()


def test_only_assistant_turns_are_masked(tmp_path: Path) -> None:
    rows = [record("a", turns=4, refusals=(1, 3)), record("b", turns=4, refusals=(0,))]
    kept, _, _ = label(write_clean(tmp_path, rows), tmp_path, "classes: [{name: all, weight: 1}]")
    assert kept["turn_weights"].to_list() == [[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]]


# --- choosing the class ---------------------------------------------------------------------------


def test_first_matching_class_wins(tmp_path: Path) -> None:
    ws = write_clean(tmp_path, ROWS)
    kept, _, result = label(
        ws,
        tmp_path,
        "classes:\n"
        "  - {name: english, weight: 0.5, condition: EN, match: {language: en}}\n"
        "  - {name: gpt4, weight: 1.0, condition: GPT4, match: {model: gpt-4}}\n"
        "  - {name: rest, weight: 0.1}\n",
    )
    classes = dict(zip(kept["id"], kept["class"], strict=True))
    assert classes == {"a": "english", "b": "gpt4", "c": "english", "d": "rest", "e": "english"}
    assert result.counts["classes"]["english"]["conversations"] == 3


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ("{model: gpt-4}", {"a", "b"}),
        ("{model: [gpt-3.5, unknown]}", {"c", "d", "e"}),
        ("{language: [zh, fr]}", {"b", "d"}),
        ("{field: {column: model_evidence, equals: \"model field 'unknown'\"}}", {"e"}),
        ("{field: {column: id, in: [a, c, z]}}", {"a", "c"}),
        ("{field: {column: source, regex: '(?i)HAND\\.json:[b-c]$'}}", {"b", "c"}),
        ("{field: {column: num_chars, min: 100, max: 600}}", {"b", "c", "e"}),
        ("{field: {column: num_turns, in: [2, 8.0]}}", {"a", "d", "e"}),
        ("{field: [{column: model, equals: gpt-3.5}, {column: language, equals: en}]}", {"c"}),
        ("{turns: {min: 4}}", {"b", "c", "e"}),
        ("{turns: {min: 4, max: 6}}", {"b", "c"}),
        ("{chars: {max: 200}}", {"a", "b", "e"}),
        ("{ids_file: ids.txt}", {"b", "e"}),
        ("{model: gpt-4, language: en}", {"a"}),
        ("{}", {"a", "b", "c", "d", "e"}),
    ],
)
def test_each_criterion_selects_its_rows(match: str, expected: set[str], tmp_path: Path) -> None:
    (tmp_path / "ids.txt").write_text("b\ne\nnot-in-data\n", encoding="utf-8")
    ws = write_clean(tmp_path, ROWS)
    kept, dropped, result = label(
        ws, tmp_path, f"classes: [{{name: x, weight: 1, match: {match}}}]"
    )
    assert set(kept["id"]) == expected
    assert set(dropped["id"]) == {r["id"] for r in ROWS} - expected
    assert result.counts["in"] == result.counts["kept"] + result.counts["dropped"] == len(ROWS)


def test_unmatched_rows_are_dropped_with_the_full_record(tmp_path: Path) -> None:
    ws = write_clean(tmp_path, ROWS)
    _, dropped, result = label(
        ws, tmp_path, "classes: [{name: gpt4, weight: 1, match: {model: gpt-4}}]\ndefault: drop\n"
    )
    assert set(dropped["id"]) == {"c", "d", "e"}
    assert dropped.columns == [*CLEAN_SCHEMA.names, "reason", "detail"]
    assert set(dropped["reason"]) == {Reason.UNMATCHED}
    row = dropped.filter(pl.col("id") == "d").row(0, named=True)
    assert row["conversations"] == ROWS[3]["conversations"]
    assert "model gpt-3.5, language fr, 2 turns, 1000 chars" in row["detail"]
    counts = result.counts
    assert (counts["kept"], counts["dropped"], counts["rejected_by_reason"]) == (
        2,
        3,
        {Reason.UNMATCHED: 3},
    )


def test_default_class_takes_unmatched_rows(tmp_path: Path) -> None:
    ws = write_clean(tmp_path, ROWS)
    kept, dropped, _ = label(
        ws,
        tmp_path,
        "classes:\n"
        "  - {name: gpt4, weight: 1, condition: GPT4, match: {model: gpt-4}}\n"
        "  - {name: other, weight: 0.1, condition: GPT3, match: {model: gpt-3.5}}\n"
        "default: other\n",
    )
    assert dropped.height == 0
    assert kept.filter(pl.col("id") == "e").row(0, named=True)["class"] == "other"


# --- weights from a column ------------------------------------------------------------------------

SCORES = [-5.0, 0.0, 2.5, 10.0, 15.0, None, math.nan]
SCORE_FIELD = [pa.field("judge_score", pa.float64())]


def scored_rows() -> list[dict]:
    return [record(f"r{i}", judge_score=score) for i, score in enumerate(SCORES)]


def test_weight_from_a_column_is_mapped_and_clipped(tmp_path: Path) -> None:
    ws = write_clean(tmp_path, scored_rows(), SCORE_FIELD)
    kept, _, result = label(
        ws,
        tmp_path,
        "classes:\n  - name: judged\n    condition: GPT4\n"
        "    weight: {column: judge_score, map: {from: [0, 10], to: [0.0, 1.0]}, missing: 0.25}\n",
    )
    assert kept["weight"].to_list() == pytest.approx([0.0, 0.0, 0.25, 1.0, 1.0, 0.25, 0.25])
    assert "judge_score" in kept.columns, "extra input columns are carried along"
    stats = result.counts["classes"]["judged"]
    assert (stats["weight_min"], stats["weight_max"]) == (0.0, 1.0)


def test_reversed_map_and_missing_drop(tmp_path: Path) -> None:
    ws = write_clean(tmp_path, scored_rows(), SCORE_FIELD)
    kept, dropped, result = label(
        ws,
        tmp_path,
        "classes:\n  - name: judged\n"
        "    weight: {column: judge_score, map: {from: [0, 10], to: [1.0, 0.5]}, missing: drop}\n",
    )
    assert kept["weight"].to_list() == pytest.approx([1.0, 1.0, 0.875, 0.5, 0.5])
    assert dropped["id"].to_list() == ["r5", "r6"]
    assert set(dropped["reason"]) == {Reason.MISSING_WEIGHT}
    assert "judge_score" in dropped["detail"][0]
    assert result.counts["rejected_by_reason"] == {Reason.MISSING_WEIGHT: 2}


# --- errors and atomicity -------------------------------------------------------------------------


def test_rules_naming_an_absent_column_fail_and_keep_the_previous_stage(tmp_path: Path) -> None:
    ws = write_clean(tmp_path, ROWS)
    _, _, first = label(ws, tmp_path, "classes: [{name: all, weight: 1}]")
    before = (first.stage / "manifest.json").read_bytes()
    bad = write_rules(
        tmp_path,
        "classes:\n  - name: judged\n"
        "    weight: {column: judge_score, map: {from: [0, 10], to: [0, 1]}, missing: 0}\n",
        "bad.yaml",
    )
    with pytest.raises(RulesError, match=r"bad\.yaml: classes\[0\]\.weight\.column: .*judge_score"):
        run_label(ws, load_rules(bad))
    assert (first.stage / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in ws.root.iterdir()) == ["clean", "labeled"], "no temp left over"


def test_a_test_of_the_wrong_kind_is_a_rules_error(tmp_path: Path) -> None:
    ws = write_clean(tmp_path, ROWS)
    rules = write_rules(
        tmp_path, "classes: [{name: x, weight: 1, match: {field: {column: num_turns, regex: '2'}}}]"
    )
    with pytest.raises(RulesError, match="holds number values"):
        run_label(ws, load_rules(rules))


def test_a_misspelt_model_is_a_rules_error_and_any_model_clean_writes_is_not(
    tmp_path: Path,
) -> None:
    ws = write_clean(tmp_path, ROWS)
    typo = write_rules(
        tmp_path, "classes: [{name: x, weight: 1, match: {model: [gpt-4, gpt3]}}]", "typo.yaml"
    )
    with pytest.raises(RulesError, match=r"typo\.yaml: classes\[0\]\.match\.model\[1\]: 'gpt3'"):
        run_label(ws, load_rules(typo))
    # Models absent from this data but written by clean for other dumps are fine.
    others = write_rules(
        tmp_path, "classes: [{name: x, weight: 1, match: {model: [gpt-4o-mini, claude-2]}}]"
    )
    run_label(ws, load_rules(others))


def test_missing_clean_stage_is_a_stage_error(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="sharegpt-tools clean"):
        run_label(Workspace(tmp_path / "ws"), load_rules(PRESETS / "paper.yaml"))
    assert not (tmp_path / "ws" / "labeled").exists()


def test_input_option_reads_another_clean_folder(tmp_path: Path) -> None:
    elsewhere = write_clean(tmp_path / "other", ROWS)
    ws = Workspace(tmp_path / "ws")
    result = run_label(ws, load_rules(PRESETS / "sft.yaml"), elsewhere.stage("clean"))
    assert result.stage == ws.stage("labeled") and result.counts["kept"] == len(ROWS)
    assert result.manifest["parent"]["fingerprint"] == elsewhere.manifest("clean")["fingerprint"]


# --- the command line -----------------------------------------------------------------------------


def test_cli_labels_and_prints_the_summary(tmp_path: Path) -> None:
    ws = write_clean(tmp_path, ROWS)
    result = runner.invoke(app, ["label", "--rules", "paper", "-w", str(ws.root)])  # a preset
    assert result.exit_code == 0, result.output
    for text in ("gpt4", "gpt35", "GPT4", "GPT3", "0.1", "dropped", "wrote"):
        assert text in result.output
    assert (ws.stage("labeled") / "manifest.json").is_file()


def test_cli_bad_rules_exit_2_with_one_error_line_and_keep_the_stage(tmp_path: Path) -> None:
    ws = write_clean(tmp_path, ROWS)
    good = runner.invoke(app, ["label", "--rules", str(PRESETS / "paper.yaml"), "-w", str(ws.root)])
    assert good.exit_code == 0, good.output
    before = (ws.stage("labeled") / "manifest.json").read_bytes()
    bad = write_rules(tmp_path, "classes:\n  - name: a\n    weight: .nan\n", "bad.yaml")
    result = runner.invoke(app, ["label", "--rules", str(bad), "-w", str(ws.root)])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "bad.yaml" in errors[0] and "classes[0].weight" in errors[0]
    assert "Traceback" not in result.output
    assert (ws.stage("labeled") / "manifest.json").read_bytes() == before


def test_cli_missing_clean_stage_is_one_error_line(tmp_path: Path) -> None:
    rules = str(PRESETS / "paper.yaml")
    result = runner.invoke(app, ["label", "--rules", rules, "-w", str(tmp_path / "ws")])
    assert result.exit_code == 2
    assert [line for line in result.output.splitlines() if line.startswith("error:")]


def test_cli_help_explains_the_options() -> None:
    result = runner.invoke(app, ["label", "--help"])
    assert result.exit_code == 0
    for option in ("--rules", "--workspace", "--input"):
        assert option in result.output
