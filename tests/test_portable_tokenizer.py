"""A tokenizer saved with `save_portable` encodes the same in transformers 4.40 and 4.57 as in 5.x.

Checkpoints are served and evaluated by older transformers too, and a tokenizer folder that loads
there but encodes a prompt differently would silently change what the model sees. So the slow test
loads each saved folder in a real transformers 4.40 and 4.57 (each in its own virtualenv, built
once with pip and cached under ~/.cache/crlft-test-venvs/, about a minute the first time; needs
PyPI) and compares ids with transformers 5 in this process. The fast tests check the rewritten
files themselves.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from old_transformers import old_transformers
from transformers import AutoTokenizer

from sharegpt_tools.synthetic.toy_tokenizer import train_toy_tokenizer
from sharegpt_tools.tokenize.packaged_tokenizers import build_mistral_tokenizer
from sharegpt_tools.tokenize.portable_tokenizer import save_portable

OLD_VERSIONS = ("4.40", "4.57")
END_OF_TURN = "<|end_of_turn|>"
TEMPLATE = (
    "{% for m in messages %}{{ 'GPT4 Correct ' + m['role'].title() + ': ' + m['content'] + "
    "'<|end_of_turn|>' }}{% endfor %}{% if add_generation_prompt %}GPT4 Correct Assistant:"
    "{% endif %}"
)
STRINGS = [
    "Hello world",
    "GPT4 Correct User: Hello<|end_of_turn|>GPT4 Correct Assistant:",
    "<|end_of_turn|> after, and before<|end_of_turn|>",
    " leading space",
    "two  spaces\n\nand\ttabs",
    "Grüße 世界 🙂 Привет",
    "[INST] hi [/INST]",
]
MESSAGES = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}]
TOY_TEXTS = ["Hello world, a toy corpus.", "Grüße 世界 🙂 Привет", "two  spaces\n\tand tabs"] * 40

# Runs in the old transformers: the same encodings, as JSON on stdout.
PROBE = """
import json, sys
from transformers import AutoTokenizer
strings, messages, folders = json.loads(sys.stdin.read())
out = {}
for folder in folders:
    tok = AutoTokenizer.from_pretrained(folder)
    chat = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    out[folder] = {
        "ids": [tok(s)["input_ids"] for s in strings],
        "plain": [tok(s, add_special_tokens=False)["input_ids"] for s in strings],
        "chat": chat,
        "chat_ids": tok(chat, add_special_tokens=False)["input_ids"],
        "end_of_turn": tok.convert_tokens_to_ids("<|end_of_turn|>"),
    }
print(json.dumps(out))
"""


def encodings(tok: Any) -> dict[str, Any]:
    """What PROBE prints, computed with this process's transformers."""
    chat = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    return {
        "ids": [tok(s)["input_ids"] for s in STRINGS],
        "plain": [tok(s, add_special_tokens=False)["input_ids"] for s in STRINGS],
        "chat": chat,
        "chat_ids": tok(chat, add_special_tokens=False)["input_ids"],
        "end_of_turn": tok.convert_tokens_to_ids(END_OF_TURN),
    }


@pytest.fixture(scope="module")
def portable(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Each kind, with a chat token and template added, saved portably; with its 5.x encodings."""
    root = tmp_path_factory.mktemp("portable")
    sources = {k: build_mistral_tokenizer(k, root / "src" / k) for k in ("v1", "v3", "tekken")}
    sources["toy"] = train_toy_tokenizer(TOY_TEXTS, root / "src" / "toy", 600)
    saved = {}
    for kind, source in sources.items():
        tok = AutoTokenizer.from_pretrained(source)
        tok.add_special_tokens(
            {"extra_special_tokens": [END_OF_TURN]}, replace_extra_special_tokens=False
        )
        tok.chat_template = TEMPLATE
        save_portable(tok, root / "out" / kind, source)
        saved[kind] = (root / "out" / kind, encodings(tok))
    return saved


@pytest.mark.parametrize("version", OLD_VERSIONS)
def test_old_transformers_encode_identically(
    portable: dict[str, tuple[Path, dict[str, Any]]], version: str
) -> None:
    """Slow the first time (builds the venv): 4.x must load every folder to 5.x's very ids."""
    folders = [str(folder) for folder, _ in portable.values()]
    done = subprocess.run(
        [str(old_transformers(version)), "-c", PROBE],
        input=json.dumps([STRINGS, MESSAGES, folders]),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    old = json.loads(done.stdout.strip().splitlines()[-1])
    for kind, (folder, expected) in portable.items():
        assert old[str(folder)] == expected, kind


def test_transformers_5_reloads_what_it_saved(
    portable: dict[str, tuple[Path, dict[str, Any]]],
) -> None:
    for kind, (folder, expected) in portable.items():
        assert encodings(AutoTokenizer.from_pretrained(folder)) == expected, kind


def test_files_are_in_the_shared_form(portable: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    for kind, (folder, _) in portable.items():
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        assert config["tokenizer_class"] != "TokenizersBackend", kind
        assert config["additional_special_tokens"] == [END_OF_TURN], kind
        assert not isinstance(config.get("extra_special_tokens", {}), list), kind
        assert config["chat_template"] == TEMPLATE, kind
        merges = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]
        assert all(isinstance(merge, str) for merge in merges["merges"]), kind
    for kind in ("v1", "v3"):
        folder = portable[kind][0]
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        assert config["legacy"] is True
        assert (folder / "tokenizer.model").is_file()


def test_saving_over_the_source_folder(tmp_path: Path) -> None:
    folder = build_mistral_tokenizer("v1", tmp_path / "v1")
    tok = AutoTokenizer.from_pretrained(folder)
    expected = encodings_without_template(tok)
    save_portable(tok, folder, folder)
    assert (folder / "tokenizer.model").stat().st_size > 0
    assert encodings_without_template(AutoTokenizer.from_pretrained(folder)) == expected


def encodings_without_template(tok: Any) -> list[list[int]]:
    """The ids of STRINGS, for tokenizers that have no chat template."""
    return [tok(s)["input_ids"] for s in STRINGS]
