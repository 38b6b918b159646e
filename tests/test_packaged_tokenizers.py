"""The real Mistral/OpenChat tokenizers built from mistral-common's files.

These folders stand in for downloaded model repositories elsewhere in the tests, so each must load
with AutoTokenizer, have the real vocabulary and special ids, keep control tokens whole, and agree
with the reference implementation (SentencePiece, mistral-common's Tekkenizer) on plain text.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from sharegpt_tools.tokenize.packaged_tokenizers import build_mistral_tokenizer, source_file

VOCAB_SIZES = {"v1": 32000, "v3": 32768, "tekken": 131072}
V3_CONTROL = ["[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[TOOL_RESULTS]"]
# No leading space: transformers 5's Llama tokenizer adds no dummy-prefix `▁` before one, unlike
# SentencePiece (`▁leading` vs `▁ ▁leading`), which these folders cannot change.
PLAIN_TEXTS = [
    "Hello world",
    "Grüße aus Köln, ça va?",
    "世界你好，今天天气很好。",
    "Привет, как дела? 🙂",
    "def f(x): return x**2\nprint(f(3))",
    "def f(x):\n    if x:\n        return  x  # runs of spaces, as in indented code",
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each kind built once: the Tekken conversion takes a few seconds."""
    root = tmp_path_factory.mktemp("packaged")
    return {kind: build_mistral_tokenizer(kind, root / kind) for kind in VOCAB_SIZES}


@pytest.mark.parametrize("kind", sorted(VOCAB_SIZES))
def test_vocab_and_special_ids(folders: dict[str, Path], kind: str) -> None:
    tok = AutoTokenizer.from_pretrained(folders[kind])
    assert len(tok) == VOCAB_SIZES[kind]
    assert (tok.bos_token, tok.bos_token_id) == ("<s>", 1)
    assert (tok.eos_token, tok.eos_token_id) == ("</s>", 2)
    assert tok("Hi")["input_ids"][0] == 1
    assert tok("Hi")["input_ids"][-1] != 2


@pytest.mark.parametrize("kind", sorted(VOCAB_SIZES))
def test_round_trip(folders: dict[str, Path], kind: str) -> None:
    tok = AutoTokenizer.from_pretrained(folders[kind])
    for text in PLAIN_TEXTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text


def test_sentencepiece_folders_keep_model_and_legacy(folders: dict[str, Path]) -> None:
    for kind in ("v1", "v3"):
        names = {p.name for p in folders[kind].iterdir()}
        assert {"tokenizer.model", "tokenizer.json", "tokenizer_config.json"} <= names
        assert AutoTokenizer.from_pretrained(folders[kind]).legacy is True


def test_openchat_prompt_after_added_special(folders: dict[str, Path]) -> None:
    tok = AutoTokenizer.from_pretrained(folders["v1"])
    tok.add_special_tokens({"additional_special_tokens": ["<|end_of_turn|>"]})
    pieces = tok.convert_ids_to_tokens(tok("GPT4 Correct User: Hello<|end_of_turn|>")["input_ids"])
    assert pieces[:2] == ["<s>", "▁G"]
    assert pieces[-1] == "<|end_of_turn|>"


@pytest.mark.parametrize("kind", ["v3", "tekken"])
def test_control_tokens_are_single_special_ids(folders: dict[str, Path], kind: str) -> None:
    tok = AutoTokenizer.from_pretrained(folders[kind])
    for control in V3_CONTROL:
        ids = tok(control, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, control
        assert tok.added_tokens_decoder[ids[0]].special, control
        assert tok.decode(ids, skip_special_tokens=True) == ""


@pytest.mark.parametrize("kind", ["v1", "v3"])
def test_sentencepiece_agrees_on_plain_text(folders: dict[str, Path], kind: str) -> None:
    import sentencepiece

    reference = sentencepiece.SentencePieceProcessor(model_file=str(source_file(kind)))
    tok = AutoTokenizer.from_pretrained(folders[kind])
    for text in PLAIN_TEXTS:
        assert tok(text)["input_ids"] == [1, *reference.encode(text)], text


def test_tekken_agrees_with_mistral_common(folders: dict[str, Path]) -> None:
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    reference = Tekkenizer.from_file(source_file("tekken"))
    tok = AutoTokenizer.from_pretrained(folders["tekken"])
    for text in [*PLAIN_TEXTS, "  two  spaces\n\n\ttab", " leading"]:
        assert tok(text)["input_ids"] == reference.encode(text, bos=True, eos=False), text


def test_unknown_kind_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tokenizer kind 'v9'"):
        build_mistral_tokenizer("v9", tmp_path)


def test_missing_mistral_common_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mistral_common", None)
    with pytest.raises(ValueError, match="pip install mistral-common"):
        build_mistral_tokenizer("v1", tmp_path)
