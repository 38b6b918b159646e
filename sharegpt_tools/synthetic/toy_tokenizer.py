"""A small byte-level BPE tokenizer trained locally, for the demo and the tests.

No model can be downloaded on the machines this project runs on, yet `tokenize` must exercise the
real loading path (`AutoTokenizer.from_pretrained` on a local Hugging Face folder). So we train a
GPT-2-style byte-level BPE with `tokenizers` on our own texts and save it the way a model repository
ships it: `tokenizer.json` + `tokenizer_config.json`, with `<s>`/`</s>`/`<unk>`/`<pad>` set and a
Llama-like post-processor that prepends `<s>` when `add_special_tokens=True`.

Byte-level means every string round-trips exactly through encode → decode, which is what lets the
tokenize stage check that decoding a row gives back the rendered template character for character.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

BOS, EOS, UNK, PAD = "<s>", "</s>", "<unk>", "<pad>"
SPECIAL_TOKENS = [BOS, EOS, UNK, PAD]
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)  # the bytes and the special tokens: no merges
DEFAULT_VOCAB_SIZE = 4000


def train_toy_tokenizer(
    texts: Iterable[str], out_dir: Path, vocab_size: int = DEFAULT_VOCAB_SIZE
) -> Path:
    """Train a byte-level BPE on `texts` and save it as a Hugging Face tokenizer folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"vocab size {vocab_size} is below the 256 bytes + special tokens")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    return save_byte_level(backend, out_dir)


def save_byte_level(backend: Any, out_dir: Path) -> Path:
    """Save a byte-level BPE backend as a Hugging Face folder with <s> </s> <unk> <pad> and a
    Llama-like post-processor that prepends <s> when `add_special_tokens=True`."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    bos_id = backend.token_to_id(BOS)
    backend.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
            ),
        ]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        # Byte-level BPE decodes exactly; the English-oriented space clean-up would not.
        clean_up_tokenization_spaces=False,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(out_dir)
    return out_dir


def stage_texts(conversations_parquet: Path, batch_rows: int = 2000) -> Iterator[str]:
    """Every turn's text of a stage's conversations.parquet, streamed (memory stays flat)."""
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(conversations_parquet).iter_batches(
        batch_size=batch_rows, columns=["conversations"]
    ):
        turns = batch.column(0).flatten()
        yield from (v for v in turns.field("value").to_pylist() if v)


def file_texts(paths: Iterable[Path]) -> Iterator[str]:
    """Lines of plain-text files (blank lines skipped)."""
    for path in paths:
        with path.open(encoding="utf-8", errors="replace") as handle:
            yield from (line for line in handle if line.strip())
