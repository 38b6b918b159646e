"""crlft-eval: did the model learn its conditions? (paper Sec. 5.3, Fig. 5)

For every class of the validation split, its conversations are rendered again under **each**
class's condition tag (same template position, tokenizer and long-conversation rule as the
tokenized data; only the tag changes) and scored with the trained model: the mean cross-entropy
per supervised token (assistant content and its closing end-of-turn). A model that learned the
conditions finds expert responses more likely under the expert tag than under the sub-optimal
one, so the "condition gap" loss(expert data | sub-optimal tag) − loss(expert data | expert tag)
is positive; a model that ignores the tag has a gap near 0.

The renderings are written by `sharegpt-tools tokenize` into tokenized/condition_eval/ (with the
same code as the splits), so the scored tokens are exactly what training would have seen, and a
tokenized folder shipped alone can be evaluated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from crlft_contract import CONDITION_EVAL_DIR
from crlft_train.chat import model_folder
from crlft_train.data import DataError, TokenizedData, load_tokenized
from crlft_train.model import load_pretrained

RESULT_FILE = "condition_eval.json"
ProgressCallback = Callable[[int, int], None]  # (batches done, total)


@dataclass
class ConditionTable:
    classes: list[str]  # rows: the data's class
    conditions: dict[str, str]  # columns: condition tag → the class that owns it
    loss: dict[str, dict[str, float]]  # loss[class][condition]: mean CE per supervised token
    tokens: dict[str, int]  # supervised tokens scored per class
    expert_class: str
    expert_condition: str

    def gap(self, data_class: str) -> float | None:
        """loss under the lowest-weight class's condition − loss under the expert condition."""
        others = [c for c in self.conditions if c != self.expert_condition]
        if not others or data_class not in self.loss:
            return None
        sub_optimal = others[-1]
        row = self.loss[data_class]
        return row[sub_optimal] - row[self.expert_condition]

    def to_json(self) -> dict:
        return {
            "loss": self.loss,
            "supervised_tokens": self.tokens,
            "conditions": self.conditions,
            "expert_class": self.expert_class,
            "expert_condition": self.expert_condition,
            "condition_gap": {c: self.gap(c) for c in self.classes},
        }


# --- the validation split under every condition ------------------------------------------------


def validation_under_conditions(data: TokenizedData) -> dict[str, list[dict]]:
    """Condition tag → the validation rows rendered under it, as `tokenize` wrote them into
    tokenized/condition_eval/ (class weight 1, turn weights kept)."""
    import datasets

    info = data.manifest.get("condition_eval") or {}
    folder = data.folder / info.get("path", CONDITION_EVAL_DIR)
    if not info.get("conditions") or not (folder / "dataset_dict.json").is_file():
        raise DataError(
            f"{data.folder} has no condition_eval/ (the validation split rendered under every "
            "condition): it was written by an older sharegpt-tools; re-run `sharegpt-tools "
            "tokenize`"
        )
    try:
        splits = datasets.load_from_disk(str(folder))
        return {tag: splits[split].to_list() for split, tag in info["conditions"].items()}
    except (OSError, ValueError, KeyError) as exc:
        message = f"{folder}: cannot load it ({exc}); re-run `sharegpt-tools tokenize`"
        raise DataError(message) from exc


# --- scoring -------------------------------------------------------------------------------------


def load_model(run_dir: Path, device: torch.device) -> torch.nn.Module:
    folder = model_folder(run_dir)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = load_pretrained(folder, dtype=dtype, attn_implementation="sdpa")
    return model.to(device).eval()


def evaluate_conditions(
    run_dir: Path,
    data_path: Path,
    batch_max_len: int = 4096,
    device: torch.device | None = None,
    progress: ProgressCallback | None = None,
) -> ConditionTable:
    from crlft_train.checkpoint import expert_condition
    from crlft_train.forward import scoring_plan, summed_losses

    data = load_tokenized(data_path)
    if data.validation is None or len(data.validation) == 0:
        raise DataError(
            f"{data.folder} has no validation split: re-run `sharegpt-tools tokenize` with "
            "--val-fraction (e.g. 0.05)"
        )
    by_class = data.manifest["templates"]["by_class"]
    # Highest weight first; at equal weights the rules file's order (as the trainer decides).
    rank = {name: i for i, name in enumerate(data.manifest["templates"].get("class_order", []))}
    classes = sorted(
        by_class, key=lambda name: (-by_class[name].get("weight", 0.0), rank.get(name, len(rank)))
    )
    conditions: dict[str, str] = {}  # highest class weight first: the last is the sub-optimal tag
    for name in classes:
        conditions.setdefault(by_class[name]["condition"], name)
    expert = expert_condition(data.manifest["templates"])
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(run_dir, device)
    under = validation_under_conditions(data)
    missing = [tag for tag in conditions if tag not in under]
    if missing:
        raise DataError(
            f"{data.folder}/condition_eval lacks the condition(s) {', '.join(map(repr, missing))} "
            "of its manifest's classes: re-run `sharegpt-tools tokenize`"
        )
    rendered = {tag: under[tag] for tag in conditions}
    plans = {
        tag: scoring_plan([r["length"] for r in rows], batch_max_len, 1)
        for tag, rows in rendered.items()
    }
    total, done = sum(map(len, plans.values())), 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    class_index = {name: i for i, name in enumerate(classes)}
    loss: dict[str, dict[str, float]] = {name: {} for name in classes}
    tokens: dict[str, int] = {}
    for tag, rows in rendered.items():
        batches = ([rows[i] for i in bins[0]] for bins in plans[tag])
        _, per_class = summed_losses(model, batches, class_index, False, device, tick, True)
        for name, i in class_index.items():
            total_ce, weight = per_class[i].tolist()
            loss[name][tag] = total_ce / weight if weight else math.nan
            if tag == expert:
                tokens[name] = int(weight)
    present = [name for name in classes if tokens.get(name)]
    return ConditionTable(
        classes=present,
        conditions=conditions,
        loss={name: loss[name] for name in present},
        tokens={name: tokens[name] for name in present},
        expert_class=conditions.get(expert, classes[0]),
        expert_condition=expert,
    )


def write_result(run_dir: Path, data_path: Path, table: ConditionTable) -> Path:
    """RUN_DIR/condition_eval.json, written atomically."""
    out = run_dir / RESULT_FILE
    temp = out.with_suffix(".json.tmp")
    record = {"data": str(data_path), **table.to_json()}
    temp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    temp.replace(out)
    return out
