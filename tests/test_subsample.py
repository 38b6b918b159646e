"""subsample: exact counts, determinism, nesting, no compounding, clear errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from sharegpt_tools.cli.main import app
from sharegpt_tools.records import LABELED_SCHEMA
from sharegpt_tools.subsample.stage import kept_count, run_subsample
from sharegpt_tools.workspace import (
    CONVERSATIONS,
    MANIFEST,
    StageError,
    Workspace,
    stage_manifest,
    write_json_atomic,
)


def labeled_row(index: int, klass: str) -> dict:
    turns = [{"from": "human", "value": f"question {index}"}, {"from": "gpt", "value": "answer"}]
    return {
        "id": f"{klass}-{index}",
        "conversations": turns,
        "model": "gpt-4" if klass == "gpt4" else "gpt-3.5",
        "model_evidence": "test",
        "language": "en",
        "language_score": 0.9,
        "refusal_turns": [],
        "num_turns": 2,
        "num_chars": 20,
        "source": f"raw.json:{index}",
        "class": klass,
        "weight": 1.0 if klass == "gpt4" else 0.1,
        "condition": "GPT4" if klass == "gpt4" else "GPT3",
        "turn_weights": [1.0, 1.0],
    }


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A labeled stage with 25 gpt4 and 75 gpt35 conversations, interleaved."""
    ws = Workspace(tmp_path / "ws")
    rows = [labeled_row(i, "gpt4" if i % 4 == 0 else "gpt35") for i in range(100)]
    with ws.writing_stage("labeled") as out:
        pq.write_table(pa.Table.from_pylist(rows, schema=LABELED_SCHEMA), out / CONVERSATIONS)
        manifest = stage_manifest(
            "labeled", {}, {"in": 100}, {}, parent={"stage": "clean", "fingerprint": "0" * 16}
        )
        write_json_atomic(out / MANIFEST, manifest)
    return ws


def ids(ws: Workspace) -> list[str]:
    return (
        pq.read_table(ws.stage("subsampled") / CONVERSATIONS, columns=["id"]).column(0).to_pylist()
    )


def test_exact_counts_per_class(workspace: Workspace) -> None:
    result = run_subsample(workspace, {"gpt4": 0.6, "gpt35": 0.5}, seed=0)
    assert result.before == {"gpt4": 25, "gpt35": 75}
    assert result.after == {"gpt4": 15, "gpt35": 38}  # round(0.6*25)=15, round(0.5*75)=38
    assert result.manifest["parent"]["fingerprint"] == workspace.manifest("labeled")["fingerprint"]


def test_ratio_zero_removes_a_class_and_order_is_kept(workspace: Workspace) -> None:
    run_subsample(workspace, {"gpt35": 0.0})
    kept = ids(workspace)
    assert kept == [f"gpt4-{i}" for i in range(0, 100, 4)]


def test_never_compounds(workspace: Workspace) -> None:
    run_subsample(workspace, {"gpt4": 0.6})
    first = ids(workspace)
    run_subsample(workspace, {"gpt4": 0.6})
    assert ids(workspace) == first and sum(i.startswith("gpt4") for i in first) == 15


def test_deterministic_per_seed_and_nested(workspace: Workspace) -> None:
    picks = {}
    for seed, ratio in ((0, 0.6), (0, 0.8), (1, 0.6)):
        run_subsample(workspace, {"gpt4": ratio}, seed=seed)
        picks[seed, ratio] = {i for i in ids(workspace) if i.startswith("gpt4")}
    assert picks[0, 0.6] < picks[0, 0.8]
    assert picks[0, 0.6] != picks[1, 0.6]


def test_rounding_is_half_up() -> None:
    assert kept_count(0.5, 5) == 3 and kept_count(0.6, 25) == 15 and kept_count(0.0, 9) == 0


def test_unknown_class_and_bad_ratio(workspace: Workspace) -> None:
    with pytest.raises(StageError, match="'gpt5' is not a class"):
        run_subsample(workspace, {"gpt5": 0.5})
    with pytest.raises(StageError, match="between 0 and 1"):
        run_subsample(workspace, {"gpt4": 1.5})


def test_missing_labeled_stage_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="sharegpt-tools label"):
        run_subsample(Workspace(tmp_path), {"gpt4": 0.5})


def test_cli_pairs_classes_with_ratios(workspace: Workspace) -> None:
    runner = CliRunner()
    args = ["subsample", "--class", "gpt4", "--ratio", "0.6", "-w", str(workspace.root)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "15" in result.output and "25" in result.output
    bad = runner.invoke(app, ["subsample", "--class", "gpt4", "-w", str(workspace.root)])
    assert bad.exit_code != 0


def test_cli_refuses_a_class_named_twice_and_keeps_the_stage(workspace: Workspace) -> None:
    runner = CliRunner()
    root = str(workspace.root)
    good = runner.invoke(app, ["subsample", "--class", "gpt4", "--ratio", "0.6", "-w", root])
    assert good.exit_code == 0, good.output
    before = (workspace.stage("subsampled") / "manifest.json").read_bytes()
    args = ["subsample", "--class", "gpt4", "--ratio", "0.6", "--class", "gpt4", "--ratio", "0.2"]
    twice = runner.invoke(app, [*args, "-w", root])
    assert twice.exit_code == 2
    assert "--class gpt4 is given more than once" in twice.output
    assert (workspace.stage("subsampled") / "manifest.json").read_bytes() == before
