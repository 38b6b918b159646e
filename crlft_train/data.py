"""The tokenized Arrow dataset → packed micro-batches.

`crlft_train` reads only `tokenized/` (the contract written by `sharegpt-tools tokenize`): a
`datasets` DatasetDict, its manifest and the tokenizer saved beside it. A micro-batch is several
whole sequences that the packer chose to share a step, held as one concatenated row with
per-sequence `position_ids`; `forward.logits_at` runs them side by side so that no token ever sees
another sequence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from crlft_contract import IGNORE_INDEX, MANIFEST_FILE, REQUIRED_COLUMNS, TOKENIZER_DIR


class DataError(ValueError):
    """A missing, incomplete or mismatched dataset: printed as one line by the CLI."""


@dataclass
class TokenizedData:
    folder: Path
    manifest: dict
    train: object  # datasets.Dataset
    validation: object | None
    classes: list[str]

    @property
    def tokenizer_dir(self) -> Path:
        return self.folder / self.manifest.get("tokenizer", {}).get("saved_to", TOKENIZER_DIR)


def resolve_folder(data: Path) -> Path:
    """A workspace (uses DATA/tokenized/) or the tokenized folder itself."""
    for folder in (data / "tokenized", data):
        if (folder / MANIFEST_FILE).is_file() and (folder / "dataset_dict.json").is_file():
            return folder
    raise DataError(
        f"{data} holds no tokenized dataset (expected {data}/tokenized/ or a folder with "
        "dataset_dict.json and manifest.json): run `sharegpt-tools tokenize` first"
    )


def load_tokenized(data: Path) -> TokenizedData:
    import datasets

    folder = resolve_folder(data)
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        splits = datasets.load_from_disk(str(folder))
    except (OSError, ValueError, FileNotFoundError) as exc:
        raise DataError(f"{folder}: cannot load the dataset ({exc}); re-run tokenize") from exc
    if "train" not in splits:
        raise DataError(f"{folder} has no 'train' split (splits: {', '.join(splits)})")
    train = splits["train"]
    missing = [c for c in REQUIRED_COLUMNS if c not in train.column_names]
    if missing:
        raise DataError(f"{folder}: the train split lacks column(s) {', '.join(missing)}")
    if len(train) == 0:
        raise DataError(f"{folder}: the train split is empty")
    check_templates(folder, manifest)
    validation = splits.get("validation")
    classes = sorted(set(train.unique("class")) | set(manifest_classes(manifest)))
    return TokenizedData(folder, manifest, train, validation, classes)


def check_supervised(data: TokenizedData) -> None:
    """Refuse a split (train, or a non-empty validation) without a single supervised token.

    Such data "trains" with a loss of exactly 0 and zero gradients (`loss.weighted_mean_loss`),
    which looks like success; it comes from a --max-length too short for any answer to survive
    truncation, or from rules that weight every class 0.
    """
    splits = {"train": data.train, "validation": data.validation}
    for name, split in splits.items():
        if split is not None and len(split) and not has_supervised_token(split):
            raise DataError(
                f"{data.folder}: the {name} split has no supervised token (every loss weight is "
                "0: training would report a loss of 0 and learn nothing): re-run `sharegpt-tools "
                "tokenize` with a larger --max-length, or --long split instead of truncate"
            )


def has_supervised_token(split: object, batch_rows: int = 4096) -> bool:
    """Whether any row has a non-zero loss weight; stops at the first batch that has one."""
    import pyarrow.compute as pc

    for batch in split.with_format("arrow").iter(batch_size=batch_rows):
        weights = pc.list_flatten(batch.column("loss_weights"))
        if pc.any(pc.not_equal(weights, 0)).as_py():
            return True
    return False


def check_templates(folder: Path, manifest: dict) -> None:
    """The final model's chat template is built from these: fail now, not after training."""
    by_class = manifest.get("templates", {}).get("by_class", {})
    encoders = manifest.get("tokenizer", {}).get("section_encoders")
    if not by_class or not encoders or any("ids" not in info for info in by_class.values()):
        raise DataError(
            f"{folder}/manifest.json lacks the template pieces (templates.by_class.*.ids, "
            "tokenizer.section_encoders): "
            "it was written by an older sharegpt-tools; re-run `sharegpt-tools tokenize`"
        )


def manifest_classes(manifest: dict) -> list[str]:
    return list(manifest.get("templates", {}).get("by_class", {}))


@dataclass
class PackedBatch:
    """One micro-batch: sequences concatenated into a single row of T tokens."""

    input_ids: torch.Tensor  # [1, T] int64
    position_ids: torch.Tensor  # [1, T]
    labels: torch.Tensor  # [1, T] int64, IGNORE_INDEX where no loss
    weights: torch.Tensor  # [1, T] float32, the loss weight of the token as a target
    class_ids: torch.Tensor  # [1, T] int64, the class of the sequence each token belongs to
    lengths: list[int]  # sequence lengths, for the attention mask and per-sequence weights
    real_tokens: int  # 0 for the dummy micro-batch of a rank that got no sequence this step


def pack(rows: list[dict], class_index: dict[str, int]) -> PackedBatch:
    """Concatenate whole sequences; the first token of each sequence is never a target.

    The model predicts token t from tokens < t *of the same sequence*; the first token of a
    sequence would otherwise be "predicted" from the previous sequence's last token.
    """
    if not rows:
        return dummy_batch()
    ids, positions, labels, weights, classes, lengths = [], [], [], [], [], []
    for row in rows:
        n = len(row["input_ids"])
        ids.extend(row["input_ids"])
        positions.extend(range(n))
        row_labels = list(row["labels"])
        row_weights = list(row["loss_weights"])
        row_labels[0], row_weights[0] = IGNORE_INDEX, 0.0
        labels.extend(row_labels)
        weights.extend(row_weights)
        classes.extend([class_index[row["class"]]] * n)
        lengths.append(n)

    def row_tensor(values: list, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor(values, dtype=dtype).unsqueeze(0)

    return PackedBatch(
        input_ids=row_tensor(ids, torch.long),
        position_ids=row_tensor(positions, torch.long),
        labels=row_tensor(labels, torch.long),
        weights=row_tensor(weights, torch.float32),
        class_ids=row_tensor(classes, torch.long),
        lengths=lengths,
        real_tokens=len(ids),
    )


def dummy_batch() -> PackedBatch:
    """A one-token micro-batch with no target, for a rank whose step got no sequence."""
    zero = torch.zeros((1, 1), dtype=torch.long)
    return PackedBatch(
        zero, zero.clone(), torch.full((1, 1), IGNORE_INDEX), torch.zeros((1, 1)), zero, [1], 0
    )


def block_causal_mask(lengths: list[int], dtype: torch.dtype) -> torch.Tensor:
    """[1, 1, T, T] additive mask: causal within each sequence, nothing across sequences.

    The reference semantics of a packed row (the tests compare the trainer's loss with a forward
    under this mask). Training does not use it: the dense mask costs T² attention (see
    `forward.logits_at`). An additive float mask works with both the SDPA and eager attention of
    transformers; a bool mask is misread by eager attention.
    """
    total = sum(lengths)
    sequence = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    allowed = (sequence[:, None] == sequence[None, :]) & torch.ones(
        total, total, dtype=torch.bool
    ).tril()
    mask = torch.zeros((total, total), dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[None, None]
