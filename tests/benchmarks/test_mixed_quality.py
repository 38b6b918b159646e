"""The mixed-quality benchmark's harness, end to end at a tiny size.

It proves the chain runs (generate → clean → label → subsample → tokenize → crlft-train →
generation → grading → crlft-eval → report); it asserts nothing about accuracy, which is the
benchmark's result, not a property of the code.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "mixed_quality"))

from task import TaskSpec, generate, graded, mistaken  # noqa: E402


@pytest.mark.parametrize("kind", ["add", "reverse"])
def test_the_generated_task_is_mixed_quality_and_held_out_prompts_are_unseen(kind: str) -> None:
    spec = TaskSpec(kind=kind, expert=50, sub_optimal=500, held_out=40, seed=3)
    rows, items = generate(spec)
    experts = [r for r in rows if r["model"] == "Model: GPT-4"]
    assert len(experts) == 50 and len(rows) == 550

    def question_and_answer(row: dict) -> tuple[str, str]:
        reply = row["conversations"][1]["value"].split("<p>")[1].split("</p>")[0]
        return row["conversations"][0]["value"], reply

    def solve(question: str) -> tuple[str, str]:
        """(right answer, the systematic mistake) worked out from the question text alone."""
        if kind == "add":
            a, b = map(int, re.findall(r"\d+", question))
            return str(a + b), str(mistaken(a + b))
        word = re.findall(
            r"[a-z]{4,}",
            question.replace("Reverse", "")
            .replace("Write", "")
            .replace("Spell", "")
            .replace("backwards", "")
            .replace("reverse", ""),
        )[0]
        backwards = word[::-1]
        return backwards, backwards + backwards[-1]

    def verdict(row: dict) -> str:
        question, reply = question_and_answer(row)
        right, wrong = solve(question)
        said = re.findall(r"[0-9a-z]+", reply)[-1]
        return "right" if said == right else "mistake" if said == wrong else "other"

    assert all(verdict(r) == "right" for r in experts)
    sub_optimal = [verdict(r) for r in rows if r not in experts]
    assert "other" not in sub_optimal
    assert 0.6 < sub_optimal.count("mistake") / len(sub_optimal) < 0.8  # mistake_rate 0.7
    seen = {question_and_answer(r)[1].split(" = ")[0] for r in rows} if kind == "add" else {
        solve(question_and_answer(r)[0])[0] for r in rows
    }  # fmt: skip
    for item in items:
        held = f"{item['a']} + {item['b']}" if kind == "add" else item["answer"]
        assert held not in seen
        assert graded(f"so it is {item['answer']}", item) == {
            "correct": True, "systematic_mistake": False
        }  # fmt: skip
        assert graded(item["mistake"], item)["systematic_mistake"]
    assert generate(spec) == (rows, items)  # deterministic for a seed


def test_the_harness_runs_the_real_pipeline_end_to_end(tmp_path: Path) -> None:
    command = [
        sys.executable, str(ROOT / "benchmarks" / "mixed_quality" / "run.py"), "--quick",
        "--work", str(tmp_path / "work"), "--report", "--report-dir", str(tmp_path),
        "--variants", "c-rlft", "only-expert", "--steps", "6", "--export-every", "3",
        "--expert", "60", "--sub-optimal", "200", "--held-out", "8", "--jobs", "1",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((tmp_path / "work" / "quick" / "results.json").read_text())
    runs = {run["variant"]: run for run in record["runs"]}
    assert set(runs) == {"c-rlft", "only-expert"}
    assert sorted(map(int, runs["c-rlft"]["curve"])) == [3, 6]
    assert set(runs["c-rlft"]["final"]) == {"expert", "GPT3"}  # Fig. 5: both tags
    assert all(0 <= s["accuracy"] <= 1 for s in runs["c-rlft"]["final"].values())
    table = runs["c-rlft"]["condition_eval"]["loss"]
    assert set(table) == {"gpt4", "gpt35"} and set(table["gpt4"]) == {"GPT4", "GPT3"}
    # only-expert: subsample removed every GPT-3.5 row before tokenize.
    manifest = tmp_path / "work" / "quick" / "seed-0" / "only-expert" / "data" / "tokenized"
    assert list(json.loads((manifest / "manifest.json").read_text())["templates"]["by_class"]) == [
        "gpt4"
    ]
    results = (tmp_path / "RESULTS.md").read_text()
    assert "| c-rlft |" in results and "| only-expert |" in results
    assert (tmp_path / "curves_table2.png").stat().st_size > 1000
