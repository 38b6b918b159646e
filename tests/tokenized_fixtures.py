"""Helpers for the tokenize/render tests: a labeled stage written as real Parquet + manifest, and
small tokenizers trained locally with `tokenizers` (byte-level BPE, and a SentencePiece-style
Metaspace BPE that adds a dummy prefix). Test files import the fixtures they use from here."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sharegpt_tools.records import LABELED_SCHEMA
from sharegpt_tools.synthetic.toy_tokenizer import train_toy_tokenizer
from sharegpt_tools.workspace import (
    CONVERSATIONS,
    MANIFEST,
    Workspace,
    stage_manifest,
    write_json_atomic,
)

TRAINING_TEXTS = [
    "How do I reverse a list in Python? Use slicing: items[::-1] or items.reverse().",
    "The quick brown fox jumps over the lazy dog. The dog sleeps.",
    "User: what is the capital of France? Assistant: Paris is the capital of France.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
    "Explain the difference between a list and a tuple in Python.",
    "Bonjour, comment ça va ? Très bien, merci.",
    "Ich habe eine Frage zu meinem Code. 你好，世界。こんにちは。",
    "I'm sorry, but I cannot help with that request.",
    "System: you are a helpful assistant. Answer briefly and precisely.",
] * 20

CLASSES = {  # class name -> (weight, condition)
    "gpt4": (1.0, "GPT4"),
    "gpt35": (0.1, "GPT3"),
}


def labeled_row(
    conversation_id: str,
    turns: list[tuple[str, str]],
    klass: str = "gpt4",
    turn_weights: list[float] | None = None,
    weight: float | None = None,
    condition: str | None = None,
) -> dict:
    """One row of LABELED_SCHEMA; weight and condition default to the class's."""
    class_weight, class_condition = CLASSES.get(klass, (1.0, ""))
    return {
        "id": conversation_id,
        "conversations": [{"from": role, "value": value} for role, value in turns],
        "model": "gpt-4" if klass == "gpt4" else "gpt-3.5",
        "model_evidence": "test",
        "language": "en",
        "language_score": 0.99,
        "refusal_turns": [],
        "num_turns": len(turns),
        "num_chars": sum(len(v) for _, v in turns),
        "source": f"test.json:{conversation_id}",
        "class": klass,
        "weight": class_weight if weight is None else weight,
        "condition": class_condition if condition is None else condition,
        "turn_weights": turn_weights if turn_weights is not None else [1.0] * len(turns),
    }


def write_stage(
    ws: Workspace, rows: list[dict], stage: str = "labeled", parent: dict | None = None
) -> dict:
    """Write `rows` as WORKSPACE/<stage>/ (Parquet with LABELED_SCHEMA + manifest); its manifest."""
    parent = parent or {"stage": "clean", "fingerprint": "0" * 16}
    with ws.writing_stage(stage) as out:
        pq.write_table(pa.Table.from_pylist(rows, schema=LABELED_SCHEMA), out / CONVERSATIONS)
        manifest = stage_manifest(stage, {"rows": len(rows)}, {"in": len(rows)}, {}, parent=parent)
        write_json_atomic(out / MANIFEST, manifest)
    return manifest


@pytest.fixture(scope="session")
def toy_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE with <s> </s> <unk> <pad>, saved as a Hugging Face folder."""
    return train_toy_tokenizer(TRAINING_TEXTS, tmp_path_factory.mktemp("tok") / "bpe", 600)


@pytest.fixture(scope="session")
def metaspace_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SentencePiece-style BPE (Metaspace, prepend_scheme=first): each separately tokenized piece
    gets a dummy-prefix space, as with Llama/Mistral tokenizers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    alphabet = sorted(set("".join(TRAINING_TEXTS)) | set("▁<>|/_{}=!?.,:;0123456789"))
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    letters += [c.upper() for c in letters]
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=["<s>", "</s>", "<unk>", "<pad>"],
        initial_alphabet=alphabet + letters,
        show_progress=False,
    )
    backend.train_from_iterator(TRAINING_TEXTS, trainer)
    out = tmp_path_factory.mktemp("tok") / "metaspace"
    PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        clean_up_tokenization_spaces=False,
    ).save_pretrained(out)
    return out


def read_manifest(stage: Path) -> dict:
    return json.loads((stage / MANIFEST).read_text(encoding="utf-8"))
