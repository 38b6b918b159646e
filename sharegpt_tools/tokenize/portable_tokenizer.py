"""Save a tokenizer so that transformers 4.40, 4.57 and 5.x all load it to the same ids.

A checkpoint's tokenizer folder is read by whatever serves or evaluates the model, often an older
transformers. What transformers 5 writes with `save_pretrained` does not load there:

- 4.x has no `TokenizersBackend` class, the name 5.x gives a plain fast tokenizer;
- 4.57 expects `extra_special_tokens` to be a dict of named tokens, 5.x writes a list;
- 4.40's tokenizers (0.19) cannot parse BPE merges stored as pairs, only as "a b" strings;
- 4.40 reads the chat template only from tokenizer_config.json, 5.x writes chat_template.jinja;
- a Llama tokenizer is rebuilt on load from config flags, not taken from tokenizer.json: 5.x
  from `legacy` (which it does not save, so a reload puts "▁" after special tokens differently),
  4.x from `add_bos_token`/`add_eos_token` (which 5.x does not save either);
- 5.x does not save `tokenizer.model`, which 4.x's slow tokenizer and its re-conversions need.

`save_portable` saves as usual and then rewrites those few places in a form every version reads.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

CONFIG_FILE = "tokenizer_config.json"
TOKENIZER_FILE = "tokenizer.json"
TEMPLATE_FILE = "chat_template.jinja"
SENTENCEPIECE_FILE = "tokenizer.model"
# 5.x's name for a plain fast tokenizer and the name every version knows for it.
CLASS_RENAMES = {"TokenizersBackend": "PreTrainedTokenizerFast"}
# Facts about one load (where it came from), not about the tokenizer.
LOAD_KEYS = ("is_local", "local_files_only")
# Classes whose 4.x fast tokenizer rebuilds its pre-tokenizer and post-processor from flags.
LLAMA_CLASSES = {"LlamaTokenizer", "LlamaTokenizerFast"}


def save_portable(tokenizer: Any, folder: Path, source_dir: Path | None = None) -> None:
    """Save `tokenizer` into `folder` so that transformers 4.40 to 5.x load it to the same ids.

    `source_dir` is the folder the tokenizer came from: its `tokenizer.model` is copied along (a
    4.x slow tokenizer needs it) and its `legacy` is kept where the tokenizer does not say.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    source_config = _read_json(source_dir / CONFIG_FILE) if source_dir else {}
    if source_dir is not None and (source_dir / SENTENCEPIECE_FILE).is_file():
        _copy_unless_same(source_dir / SENTENCEPIECE_FILE, folder / SENTENCEPIECE_FILE)
    config = _portable_config(_read_json(folder / CONFIG_FILE), tokenizer, folder)
    if "legacy" not in config and "legacy" in source_config:
        config["legacy"] = source_config["legacy"]
    _write_json(folder / CONFIG_FILE, config)
    if (folder / TOKENIZER_FILE).is_file():
        _write_json(folder / TOKENIZER_FILE, _string_merges(_read_json(folder / TOKENIZER_FILE)))


def _portable_config(config: dict[str, Any], tokenizer: Any, folder: Path) -> dict[str, Any]:
    """The saved tokenizer_config.json with every version-specific key in a shared form."""
    config = {key: value for key, value in config.items() if key not in LOAD_KEYS}
    name = config.get("tokenizer_class")
    config["tokenizer_class"] = CLASS_RENAMES.get(name, name)
    config.update(_special_token_lists(config.pop("extra_special_tokens", None), tokenizer))
    if config["tokenizer_class"] in LLAMA_CLASSES:
        flags = _llama_flags(config, tokenizer)
        config.pop("add_prefix_space", None)
        config.update(flags)
    template = folder / TEMPLATE_FILE
    if "chat_template" not in config and template.is_file():
        config["chat_template"] = template.read_text(encoding="utf-8")
    return config


def _special_token_lists(extra: Any, tokenizer: Any) -> dict[str, Any]:
    """5.x's `extra_special_tokens` list as 4.x's `additional_special_tokens` (5.x reads both).

    A dict is 4.57's own form (named extra tokens) and stays; BOS/EOS/... that 5.x repeats in the
    list are left out, since they are special under their own names already.
    """
    if isinstance(extra, dict):
        return {"extra_special_tokens": extra}
    named = {
        str(token) for token in tokenizer.special_tokens_map.values() if isinstance(token, str)
    }
    additional = [str(token) for token in extra or [] if str(token) not in named]
    return {"additional_special_tokens": additional} if additional else {}


def _llama_flags(config: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    """The flags from which both 4.x and 5.x rebuild a Llama tokenizer's pipeline on load.

    Each version rebuilds what tokenizer.json already holds from these flags, with its own
    defaults, so they must state what the saved tokenizer does: BOS/EOS as measured (5.x's
    `add_bos_token` attribute is False even when its post-processor adds BOS), and `legacy` as the
    tokenizer has it (it decides "▁" after special tokens). A set `add_prefix_space` makes 4.x
    convert again from tokenizer.model, so the value 5.x assumes anyway (true) is left out.
    """
    bos, eos = _adds_bos_eos(tokenizer)
    flags: dict[str, Any] = {"add_bos_token": bos, "add_eos_token": eos}
    if isinstance(getattr(tokenizer, "legacy", None), bool):
        flags["legacy"] = tokenizer.legacy
    if config.get("add_prefix_space") is False:
        flags["add_prefix_space"] = False
    return flags


def _adds_bos_eos(tokenizer: Any) -> tuple[bool, bool]:
    """Whether encoding with special tokens puts BOS first and EOS last."""
    with_special = tokenizer("a")["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id is not None and with_special[:1] == [tokenizer.bos_token_id]
    eos = tokenizer.eos_token_id is not None and with_special[-1:] == [tokenizer.eos_token_id]
    return bos and plain[:1] != with_special[:1], eos and plain[-1:] != with_special[-1:]


def _string_merges(tokenizer_json: dict[str, Any]) -> dict[str, Any]:
    """BPE merges as "a b" strings, the only form tokenizers < 0.20 (transformers 4.40) parses."""
    model = tokenizer_json.get("model", {})
    merges = model.get("merges")
    if not merges or isinstance(merges[0], str):
        return tokenizer_json
    if any(" " in piece for pair in merges for piece in pair):
        return tokenizer_json  # a piece with a space cannot be written the old way: leave it
    model["merges"] = [" ".join(pair) for pair in merges]
    return tokenizer_json


def _copy_unless_same(source: Path, target: Path) -> None:
    """Copy `source` unless `target` already is that file (saving over the source folder)."""
    if not (target.exists() and target.samefile(source)):
        shutil.copyfile(source, target)


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from disk, empty when the file is missing."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """JSON the way transformers writes it: indented, UTF-8 kept readable."""
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
