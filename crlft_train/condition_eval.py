"""crlft-eval: did the model learn its conditions? (paper Sec. 5.3, Fig. 5)

For every class of the validation split, its conversations are rendered again under **each**
class's condition tag (same template position, tokenizer and long-conversation rule as the
tokenized data; only the tag changes) and scored with the trained model: the mean cross-entropy
per supervised token (assistant content and its closing end-of-turn). A model that learned the
conditions finds expert responses more likely under the expert tag than under the sub-optimal
one, so the "condition gap" loss(expert data | sub-optimal tag) − loss(expert data | expert tag)
is positive; a model that ignores the tag has a gap near 0.

Rendering reuses `sharegpt_tools.tokenization` on the stage the data was tokenized from (its
fingerprint must still match), so the scored tokens are exactly what training would have seen.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from crlft_train.chat import model_folder
from crlft_train.data import DataError, TokenizedData, load_tokenized

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


# --- rendering the validation split under every condition ----------------------------------------


def source_stage(data: TokenizedData) -> Path:
    """The labeled/subsampled stage the data was tokenized from, if it is unchanged."""
    from sharegpt_tools.workspace import CONVERSATIONS, MANIFEST

    recorded = data.manifest.get("input", {})
    expected = data.manifest.get("parent", {}).get("fingerprint")
    candidates = [Path(recorded.get("path", "")), data.folder.parent / recorded.get("stage", "")]
    for folder in candidates:
        if (folder / CONVERSATIONS).is_file() and stage_fingerprint(folder / MANIFEST) == expected:
            return folder
    raise DataError(
        f"{data.folder}: the stage it was tokenized from ({recorded.get('path')}) is gone or has "
        "changed since; crlft-eval re-renders its conversations: re-run `sharegpt-tools tokenize`"
    )


def stage_fingerprint(manifest: Path) -> str | None:
    if not manifest.is_file():
        return None
    return json.loads(manifest.read_text(encoding="utf-8")).get("fingerprint")


def tokenize_options(data: TokenizedData) -> object:
    from sharegpt_tools.templates import Position, SystemFormat
    from sharegpt_tools.tokenize_options import LongMode, TokenizeOptions

    options = data.manifest.get("options", {})
    return TokenizeOptions(
        tokenizer=data.tokenizer_dir,
        position=Position(options.get("position", Position.BEFORE_SPEAKER)),
        max_length=int(data.manifest.get("max_length", options.get("max_length", 4096))),
        long=LongMode(options.get("long", LongMode.SPLIT)),
        system_format=SystemFormat(options.get("system_format", SystemFormat.OPENCHAT)),
        eot=data.manifest.get("templates", {}).get("eot", options.get("eot")),
        val_fraction=float(options.get("val_fraction", 0.01)),
        seed=int(options.get("seed", 0)),
    )


def rerendered_validation(data: TokenizedData, condition: str) -> list[dict]:
    """The validation conversations rendered with `condition`; weights kept per turn, class 1.0."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from sharegpt_tools.chat_tokenizer import load_tokenizer
    from sharegpt_tools.token_rows import INPUT_COLUMNS, Counts
    from sharegpt_tools.tokenization import tokenize_record_batches
    from sharegpt_tools.workspace import CONVERSATIONS

    options = tokenize_options(data)
    ids = pa.array(sorted(set(data.validation["id"])))
    table = pq.read_table(source_stage(data) / CONVERSATIONS, columns=INPUT_COLUMNS)
    table = table.filter(pc.is_in(table.column("id"), ids))
    table = table.set_column(
        table.schema.get_field_index("condition"), "condition",
        pa.array([condition] * len(table), pa.string()),
    )  # fmt: skip
    table = table.set_column(
        table.schema.get_field_index("weight"), "weight", pa.array([1.0] * len(table), pa.float32())
    )
    chat = load_tokenizer(options.tokenizer, options.eot)
    batches = table.to_batches(max_chunksize=options.batch_rows)
    rows: list[dict] = []
    for split_rows in tokenize_record_batches(batches, len(table), chat, options, Counts()):
        if "validation" in split_rows:
            rows.extend(split_rows["validation"].to_pylist())
    return rows


# --- scoring -------------------------------------------------------------------------------------


def load_model(run_dir: Path, device: torch.device) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    folder = model_folder(run_dir)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(
        str(folder), local_files_only=True, dtype=dtype, attn_implementation="sdpa"
    )
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
    rendered = {tag: rerendered_validation(data, tag) for tag in conditions}
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
        _, per_class = summed_losses(model, batches, class_index, False, device, tick)
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
