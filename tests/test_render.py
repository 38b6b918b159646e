"""render and toy-tokenizer from the command line; tokenize's summary as a user sees it."""

from __future__ import annotations

from pathlib import Path

import pytest
import tokenized_fixtures as fx
from tokenized_fixtures import TRAINING_TEXTS, labeled_row, read_manifest, write_stage
from typer.testing import CliRunner

from sharegpt_tools.cli.main import app
from sharegpt_tools.tokenize.templates import DEFAULT_EOT as EOT
from sharegpt_tools.workspace import Workspace

toy_tokenizer = fx.toy_tokenizer  # session fixture shared with test_tokenization.py
runner = CliRunner()
GREEN = "\x1b[1;30;42m"  # bold black on green: weight 1
YELLOW = "\x1b[30;43m"  # black on yellow: 0 < weight < 1
DIM = "\x1b[2m"  # weight 0


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, toy_tokenizer: Path) -> Path:
    """A workspace tokenized through the CLI: one GPT-4 and one GPT-3.5 conversation."""
    root = tmp_path_factory.mktemp("ws")
    write_stage(
        Workspace(root),
        [
            labeled_row("expert", [("human", "What is 2+2?"), ("gpt", "It is four.")]),
            labeled_row("weak", [("human", "Name a color"), ("gpt", "Blue.")], klass="gpt35"),
            # a pasted terminal log: its escapes must not reach the user's terminal raw
            labeled_row("ansi", [("human", "Why \x1b[31mred\x1b[0m?"), ("gpt", "A bell\x07.")]),
        ],
    )
    args = ["tokenize", "--tokenizer", str(toy_tokenizer), "-w", str(root), "--val-fraction", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "gpt4" in result.output and "supervised" in result.output
    assert "added <|end_of_turn|>" in result.output
    return root


def test_render_highlights_weighted_tokens(workspace: Path) -> None:
    result = runner.invoke(app, ["render", "--id", "expert", "-w", str(workspace)], env=COLOR)
    assert result.exit_code == 0, result.output
    assert f"{GREEN} It is four.{EOT}" in result.output
    assert f"{DIM}<s>GPT4 User: What is 2+2?" in result.output
    plain = runner.invoke(app, ["render", "--id", "expert", "-w", str(workspace)], env=NO_COLOR)
    assert f"<s>GPT4 User: What is 2+2?{EOT}GPT4 Assistant: It is four.{EOT}" in plain.output
    assert "supervised" in plain.output and "class gpt4" in plain.output


def test_render_shows_control_characters_of_the_data_as_text(workspace: Path) -> None:
    result = runner.invoke(app, ["render", "--id", "ansi", "-w", str(workspace)], env=NO_COLOR)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "Why \\x1b[31mred\\x1b[0m?" in result.output and "A bell\\x07." in result.output


def test_render_marks_sub_optimal_weights_differently(workspace: Path) -> None:
    result = runner.invoke(app, ["render", "--id", "weak", "-w", str(workspace)], env=COLOR)
    assert result.exit_code == 0, result.output
    assert f"{YELLOW} Blue.{EOT}" in result.output
    assert "weights 0.1" in result.output


def test_render_sample_shows_several_rows(workspace: Path) -> None:
    result = runner.invoke(app, ["render", "--sample", "2", "-w", str(workspace)], env=NO_COLOR)
    assert result.exit_code == 0, result.output
    assert "class gpt4" in result.output and "class gpt35" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--id", "nope"], "no row with id 'nope'"),
        (["--split", "validation"], "has no split 'validation'"),
    ],
)
def test_render_errors_are_one_line(workspace: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["render", *args, "-w", str(workspace)], env=NO_COLOR)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


def test_render_without_a_tokenized_stage_says_what_to_run(tmp_path: Path) -> None:
    result = runner.invoke(app, ["render", "-w", str(tmp_path)], env=NO_COLOR)
    assert result.exit_code == 2 and "sharegpt-tools tokenize" in result.output


def test_toy_tokenizer_trains_a_loadable_hugging_face_folder(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TRAINING_TEXTS), encoding="utf-8")
    out = tmp_path / "tok"
    args = ["toy-tokenizer", str(texts), "-o", str(out), "--vocab-size", "400"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    tok = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    assert tok.is_fast and len(tok) == 400
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == (
        "<s>",
        "</s>",
        "<pad>",
        "<unk>",
    )
    assert tok("hello")["input_ids"][0] == tok.bos_token_id  # Llama-like: BOS prepended
    assert tok.decode(tok("naïve café 你好")["input_ids"][1:]) == "naïve café 你好"


def test_toy_tokenizer_without_clean_stage_names_the_command(tmp_path: Path) -> None:
    result = runner.invoke(app, ["toy-tokenizer", "-w", str(tmp_path)])
    assert result.exit_code == 2 and "sharegpt-tools clean" in result.output


def test_manifest_of_a_cli_run_names_its_input(workspace: Path) -> None:
    manifest = read_manifest(workspace / "tokenized")
    assert manifest["input"]["stage"] == "labeled"
    assert manifest["splits"] == ["train"]


COLOR = {"FORCE_COLOR": "1", "NO_COLOR": None, "TERM": "xterm-256color", "COLUMNS": "120"}
NO_COLOR = {"NO_COLOR": "1", "FORCE_COLOR": None, "COLUMNS": "120"}
