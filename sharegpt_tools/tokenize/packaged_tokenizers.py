"""Real Mistral/OpenChat tokenizers, built offline from the files `mistral-common` ships.

No model repository can be downloaded on the machines this project runs on, yet the tests and
benchmarks should meet the tokenizers real models use, not only the toy BPE: a SentencePiece
Llama tokenizer (OpenChat-3.5 = Mistral-7B v0.1), its v3 variant whose `[INST]`-style control
tokens must stay single ids, and the tiktoken-style Tekken BPE. The PyPI package `mistral-common`
carries all three in `mistral_common/data/`; this module turns each into a Hugging Face folder
that `AutoTokenizer.from_pretrained` loads (with `tokenizer.json`, so nothing is converted again).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

BOS, EOS, UNK = "<s>", "</s>", "<unk>"

# kind -> file name inside mistral_common/data/
SOURCE_FILES = {
    "v1": "tokenizer.model.v1",
    "v3": "mistral_instruct_tokenizer_240323.model.v3",
    "tekken": "tekken_240911.json",
}

# What a Llama SentencePiece folder needs so that transformers converts it right: without the
# config, `LlamaTokenizer(vocab_file=...)` silently builds a 3-token vocabulary. `legacy: true`
# puts "▁" after special tokens too, as SentencePiece does when each piece is encoded on its own
# (how mistral-common and OpenChat build their prompts).
LLAMA_CONFIG: dict[str, Any] = {
    "tokenizer_class": "LlamaTokenizer",
    "bos_token": BOS,
    "eos_token": EOS,
    "unk_token": UNK,
    "legacy": True,
    "add_bos_token": True,
    "add_eos_token": False,
    "clean_up_tokenization_spaces": False,
}


def source_file(kind: str) -> Path:
    """The packaged tokenizer file for `kind`, with one-line errors for the two usual mistakes."""
    if kind not in SOURCE_FILES:
        raise ValueError(f"unknown tokenizer kind {kind!r}: expected one of {sorted(SOURCE_FILES)}")
    try:
        import mistral_common
    except ImportError:
        raise ValueError(
            "the packaged tokenizers come from mistral-common: pip install mistral-common"
        ) from None
    path = Path(mistral_common.__file__).parent / "data" / SOURCE_FILES[kind]
    if not path.is_file():
        raise ValueError(f"mistral-common {mistral_common.__version__} lacks {path.name}")
    return path


def build_mistral_tokenizer(kind: str, out_dir: Path) -> Path:
    """Write the Hugging Face tokenizer folder of `kind` ("v1", "v3", "tekken") into `out_dir`."""
    source = source_file(kind)
    out_dir.mkdir(parents=True, exist_ok=True)
    if kind == "tekken":
        _build_tekken(source, out_dir)
    else:
        _build_sentencepiece(source, out_dir)
    return out_dir


def _build_sentencepiece(model_file: Path, out_dir: Path) -> None:
    """Convert a SentencePiece model; keep `tokenizer.model` and `legacy` for older loaders."""
    from transformers import AutoTokenizer

    shutil.copyfile(model_file, out_dir / "tokenizer.model")
    config_path = out_dir / "tokenizer_config.json"
    config_path.write_text(json.dumps(LLAMA_CONFIG, indent=2), encoding="utf-8")
    tok = AutoTokenizer.from_pretrained(out_dir)
    # Control tokens ([INST], [TOOL_CALLS], ...) of v3 come out special already; insist anyway,
    # since a control token that splits into pieces would silently corrupt every prompt.
    control = [t for t in tok.added_tokens_decoder.values() if not t.special]
    if control:
        tok.add_special_tokens({"additional_special_tokens": [str(t) for t in control]})
    tok.save_pretrained(out_dir)
    # transformers 5 drops `legacy`, lists only BOS/EOS again as "extra" specials, and records
    # how this one load went (is_local, local_files_only), which says nothing about the tokenizer.
    saved = json.loads(config_path.read_text(encoding="utf-8"))
    saved["legacy"] = LLAMA_CONFIG["legacy"]
    for key in ("extra_special_tokens", "is_local", "local_files_only"):
        saved.pop(key, None)
    config_path.write_text(json.dumps(saved, indent=2, ensure_ascii=False), encoding="utf-8")
    _order_merges_by_score(out_dir / "tokenizer.json", model_file)


def _order_merges_by_score(tokenizer_json: Path, model_file: Path) -> None:
    """Merges in SentencePiece's priority: the merged piece's score, highest first.

    transformers 5's conversion puts whitespace-run merges (`▁▁`, score -1e9) first, so indented
    code tokenizes unlike SentencePiece (`\n    return` → `▁▁▁▁ return`, not `▁▁▁ ▁return`);
    model repositories ship tokenizer.json files converted by transformers 4.x, which agree with
    SentencePiece, and transformers 5 keeps their merges. This makes our folders like those.
    """
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
    score = {processor.id_to_piece(i): processor.get_score(i) for i in range(len(processor))}
    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    merges = spec["model"]["merges"]
    pairs = [m.split(" ") if isinstance(m, str) else m for m in merges]
    order = sorted(range(len(pairs)), key=lambda i: -score.get("".join(pairs[i]), float("-inf")))
    spec["model"]["merges"] = [merges[i] for i in order]
    tokenizer_json.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")


def _build_tekken(tekken_file: Path, out_dir: Path) -> None:
    """Convert Tekken with transformers' own converter, adding BOS like the Llama folders do."""
    from transformers.integrations.mistral import MistralConverter

    from sharegpt_tools.synthetic.toy_tokenizer import save_byte_level

    backend = MistralConverter(str(tekken_file)).converted()
    # No vocab_file: a `tekken.json` in the folder would make AutoTokenizer pick mistral-common's
    # own backend instead of this `tokenizer.json`.
    save_byte_level(backend, out_dir)
