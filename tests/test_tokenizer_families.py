"""Real tokenizer families, end to end: tokenize → crlft-train → export → reload → invariants.

The families users bring: SentencePiece Llama/Mistral v1 (Mistral-7B = OpenChat-3.5's tokenizer,
from the `tokenizer.model.v1` that the `mistral-common` wheel ships), SentencePiece with control
tokens (its v3 file: `[INST]`...), a tiktoken-style BPE (its Tekken file) and byte-level BPE (the
project's toy tokenizer). For each, every whole-conversation row of the tokenized sample must meet
the three invariants of `token_invariants` against the exported model folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tokenized_fixtures as fx
from old_transformers import old_transformers
from token_invariants import Outcome, check_folder, check_tokenized, whole_conversations
from typer.testing import CliRunner

from sharegpt_tools.cli.main import app
from sharegpt_tools.tokenize.packaged_tokenizers import build_mistral_tokenizer
from sharegpt_tools.tokenize.templates import Position

# family -> (dummy prefix, word-start `▁` after special tokens), as `tokenize` must detect them
FAMILIES = {
    "byte-level": (False, False),
    "mistral-v1": (True, True),
    "mistral-v3": (True, True),
    "tekken": (False, False),
    "sentencepiece-first": (True, False),
}
TINY = {
    "model_type": "llama",
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}

toy_tokenizer = fx.toy_tokenizer
metaspace_tokenizer = fx.metaspace_tokenizer
runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


# What the synthetic sample lacks: system prompts, text around which tokenizers differ (leading
# spaces and line breaks, code, scripts without spaces), and control-token text typed by a user.
SYSTEM_PROMPTS = ["You are a helpful assistant.", "  Answer in French.\n", "回答要简洁。"]
QUESTIONS = [
    "How do I write `<|end_of_turn|>` literally in a prompt?",
    "What does </s> mean in a tokenizer? And <s>? [INST] and [/INST]?",
    "\n  indented first line\n\tand a tab",
    "日本語で説明してください：東京の人口は？",
    "def f(x):\n    return x  # why does this fail?",
    "Ünïcödé test — «quotes» and emoji 🤖🚀",
]
ANSWERS = [
    " A leading space, then the answer.",
    "```python\nprint('hi')\n```\nDone.",
    "Voilà : la réponse est 42 !",
    "東京都の人口は約1400万人です。",
    "Trailing spaces   ",
    "Use `[TOOL_CALLS]` and <|end_of_turn|> as plain text.",
]


@pytest.fixture(scope="module")
def tricky_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = []
    for i in range(24):
        turns = [{"from": "system", "value": SYSTEM_PROMPTS[i % 3]}] if i % 2 == 0 else []
        for k in range(1 + i % 3):
            turns.append({"from": "human", "value": f"{QUESTIONS[(i + k) % 6]} (case {i}.{k})"})
            turns.append({"from": "gpt", "value": f"{ANSWERS[(i + 2 * k) % 6]} [{i}.{k}]"})
        rows.append(
            {"id": f"tricky{i}", "model": "gpt-4" if i % 3 else "gpt-3.5", "conversations": turns}
        )
    path = tmp_path_factory.mktemp("raw") / "tricky.json"
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def labeled(tmp_path_factory: pytest.TempPathFactory, sample_raw: Path, tricky_raw: Path) -> Path:
    """The shipped sample and the tricky rows, cleaned and labeled with OpenChat-3.5's rules
    (`GPT4 Correct`)."""
    root = tmp_path_factory.mktemp("families") / "ws"
    invoke("clean", sample_raw, tricky_raw, "-w", root, "--no-near-dedup", "--lang-backend", "none")
    invoke("label", "--rules", "openchat-3.5", "-w", root)  # a preset, by name
    return root


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request: pytest.FixtureRequest, tmp_path_factory, toy_tokenizer: Path) -> Path:
    if request.param == "byte-level":
        return toy_tokenizer
    if request.param == "sentencepiece-first":  # `legacy: false`: `▁` only at a text's start
        return request.getfixturevalue("metaspace_tokenizer")
    kind = request.param.removeprefix("mistral-")
    return build_mistral_tokenizer(kind, tmp_path_factory.mktemp("tok") / request.param)


def tokenized_copy(labeled: Path, tmp_path: Path, tokenizer: Path, *options: str) -> Path:
    """A workspace with the shared labeled stage, tokenized with `tokenizer`."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "labeled").symlink_to(labeled / "labeled", target_is_directory=True)
    invoke("tokenize", "--tokenizer", tokenizer, "-w", ws, "--max-length", "4096", *options)
    return ws


def assert_invariants(outcome: Outcome) -> None:
    assert not outcome.failures, (dict(outcome.checked), outcome.failures)
    assert outcome.rows > 100 and outcome.checked["(a)"] > 100 and outcome.checked["(b)"] > 100
    assert outcome.checked["(c) template refused control text"] >= 8
    assert outcome.checked["with a system turn"] >= 10


def test_trained_and_exported_model_folder_meets_the_invariants(
    family: Path, labeled: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    ws = tokenized_copy(labeled, tmp_path, family, "--val-fraction", "0.05")
    described = json.loads((ws / "tokenized" / "manifest.json").read_text())["tokenizer"]
    detected = (described["dummy_prefix"], described["word_start_after_special_tokens"])
    assert detected == FAMILIES[request.node.callspec.params["family"]]
    (tmp_path / "tiny.json").write_text(json.dumps(TINY), encoding="utf-8")
    run = tmp_path / "run"
    command = [sys.executable, "-m", "crlft_train", ws, "--output", run, "--max-steps", "2"]
    command += ["--model-config", tmp_path / "tiny.json", "--batch-max-len", "4096"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert_invariants(check_folder(run / "final", ws / "tokenized"))
    # transformers 4.x's slow tokenizer needs the SentencePiece model the input came with
    assert (run / "final" / "tokenizer.model").is_file() == (family / "tokenizer.model").is_file()
    assert_chat_template_ids_in_transformers_4(run / "final", ws / "tokenized")


# Runs in a transformers 4.57 virtualenv: the chat template's ids for each conversation.
TEMPLATE_IDS = """
import json, sys
from transformers import AutoTokenizer
folder, conversations = json.loads(sys.stdin.read())
tok = AutoTokenizer.from_pretrained(folder)
out = []
for messages, condition in conversations:
    ids = tok.apply_chat_template(messages, condition=condition, tokenize=True)
    out.append(list(ids["input_ids"] if hasattr(ids, "keys") else ids))
print(json.dumps(out))
"""


def assert_chat_template_ids_in_transformers_4(folder: Path, tokenized: Path) -> None:
    """Invariant (a) where users often serve models: the exported folder in transformers 4.57."""
    from transformers import AutoTokenizer

    controls = list(AutoTokenizer.from_pretrained(folder).get_added_vocab())
    rows = whole_conversations(tokenized, controls)[:120]
    done = subprocess.run(
        [str(old_transformers("4.57")), "-c", TEMPLATE_IDS],
        input=json.dumps([str(folder), [(messages, condition) for _, messages, condition in rows]]),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    old = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(old) == len(rows) >= 100
    assert [i for i, (ids, _, _) in enumerate(rows) if old[i] != ids] == []


@pytest.mark.parametrize("position", [p for p in Position if p is not Position.BEFORE_SPEAKER])
def test_every_tag_position_meets_the_invariants(
    family: Path, labeled: Path, tmp_path: Path, position: Position
) -> None:
    ws = tokenized_copy(labeled, tmp_path, family, "--position", position, "--val-fraction", "0")
    assert_invariants(check_tokenized(ws / "tokenized", ordinary_rows=150))


def test_prefixed_system_format_meets_the_invariants(
    family: Path, labeled: Path, tmp_path: Path
) -> None:
    ws = tokenized_copy(labeled, tmp_path, family, "--system-format", "prefixed")
    assert_invariants(check_tokenized(ws / "tokenized", ordinary_rows=150))
