"""crlft-train with the real DeepSpeed engine on CPU: packing semantics, end to end, resume.

Training runs go through the command line in a subprocess (as a user runs it): each builds its
own one-process gloo group, which a pytest process could not tear down and rebuild cleanly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tokenized_fixtures import labeled_row, toy_tokenizer, write_stage  # noqa: F401

from crlft_train.attention import register_varlen_attention
from crlft_train.data import block_causal_mask, load_tokenized, pack
from crlft_train.loss import token_losses, weighted_sums
from crlft_train.train import free_port, packed_loss_sums
from sharegpt_tools.tokenization import TokenizeOptions, run_tokenize
from sharegpt_tools.workspace import Workspace

TINY = {
    "model_type": "llama",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "tie_word_embeddings": False,
}
QUESTIONS = [
    "How do I reverse a list in Python?",
    "What is the capital of France?",
    "Explain the difference between a list and a tuple.",
    "Bonjour, comment ça va ?",
]
ANSWERS = [
    "Use slicing: items[::-1] or items.reverse().",
    "Paris is the capital of France.",
    "A list is mutable; a tuple is not.",
    "Très bien, merci.",
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, toy_tokenizer: Path) -> Path:  # noqa: F811
    """A tokenized workspace with 48 short conversations of two classes and a validation split."""
    root = tmp_path_factory.mktemp("train") / "ws"
    ws = Workspace(root)
    rows = []
    for i in range(48):
        turns = [("human", QUESTIONS[i % 4]), ("gpt", ANSWERS[i % 4] + f" ({i})")]
        # Every third row is expert: the validation split (ids c3, c6, c9, c30...) has both classes.
        rows.append(labeled_row(f"c{i}", turns, "gpt4" if i % 3 == 0 else "gpt35"))
    write_stage(ws, rows)
    run_tokenize(ws, TokenizeOptions(tokenizer=toy_tokenizer, max_length=256, val_fraction=0.1))
    (root / "tiny.json").write_text(json.dumps(TINY), encoding="utf-8")
    return root


def crlft_train(workspace: Path, out: Path, *args: str) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "crlft_train", str(workspace), "--output", str(out),
        "--model-config", str(workspace / "tiny.json"), "--batch-max-len", "512", "--lr", "3e-3",
        *args,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def finish(process: subprocess.Popen, timeout: float = 600) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]
    return output


def metrics_lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def metrics(run: Path) -> dict[int, dict]:
    """The last training record logged for each step (a resumed run appends to the file)."""
    return {r["step"]: r for r in metrics_lines(run) if "loss" in r}


@pytest.mark.parametrize(
    ("attention", "kv_heads"), [("padded", 2), ("varlen", 2), ("varlen", 1)]
)  # varlen runs the reference kernel on a CPU; kv_heads 1 is grouped-query attention
def test_packed_loss_equals_the_sum_over_single_sequences(
    workspace: Path, attention: str, kv_heads: int
) -> None:
    """Attention never crosses a packed sequence's boundary, and no loss does either."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    data = load_tokenized(workspace)
    classes = {name: i for i, name in enumerate(data.classes)}
    rows = [data.train[i] for i in range(5)]
    torch.manual_seed(0)
    config = LlamaConfig(**{**TINY, "vocab_size": 1024, "num_key_value_heads": kv_heads})
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").double().eval()
    batch = pack(rows, classes)
    mask = block_causal_mask(batch.lengths, torch.double)
    logits = model(
        input_ids=batch.input_ids, position_ids=batch.position_ids, attention_mask=mask
    ).logits
    reference = weighted_sums(token_losses(logits[0], batch.labels[0]), batch.weights[0])
    if attention == "varlen":
        model.set_attn_implementation(register_varlen_attention())
    cpu = torch.device("cpu")
    packed = packed_loss_sums(model, batch, len(classes), False, cpu)
    singles = [packed_loss_sums(model, pack([r], classes), len(classes), False, cpu) for r in rows]
    torch.testing.assert_close(packed.loss_sum, sum(s.loss_sum for s in singles))
    torch.testing.assert_close(packed.weight_sum, sum(s.weight_sum for s in singles))
    # Computing logits only at the supervised positions equals the loss over all logits.
    torch.testing.assert_close(packed.loss_sum, reference.loss_sum.float())


def test_train_end_to_end_produces_a_usable_hf_model(workspace: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = tmp_path / "run"
    output = finish(crlft_train(workspace, run, "--max-steps", "4"))
    assert "final Hugging Face model" in output
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in lines if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    for key in ("loss", "lr", "tokens_per_s", "packing_efficiency", "grad_norm"):
        assert key in steps[0]
    assert {"loss/gpt4", "loss/gpt35"} <= set(steps[0])
    validation = [r for r in lines if "val/loss" in r]
    assert validation and validation[-1]["step"] == 4 and "val/loss/gpt4" in validation[-1]
    assert list((run / "tensorboard").iterdir())
    final = run / "final"
    record = json.loads((final / "crlft.json").read_text())
    manifest = json.loads((workspace / "tokenized" / "manifest.json").read_text())
    assert record["data_fingerprint"] == manifest["fingerprint"]
    assert record["expert_condition"] == "GPT4"
    tokenizer = AutoTokenizer.from_pretrained(final, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(final, local_files_only=True)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == "<s>GPT4 User: What is the capital of France?<|end_of_turn|>GPT4 Assistant:"
    other = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, condition="GPT3"
    )
    assert other.endswith("GPT3 Assistant:")
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    generated = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]
    eot = tokenizer.convert_tokens_to_ids("<|end_of_turn|>")
    assert eot in model.generation_config.eos_token_id
    for condition in ("GPT4", "GPT3"):  # crlft-chat, one shot, under either condition
        chat = subprocess.run(
            [sys.executable, "-c", "from crlft_train.cli import chat_main; chat_main()", str(run),
             "--condition", condition, "--prompt", "Hello?", "--max-new-tokens", "3"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert chat.returncode == 0, chat.stderr[-2000:]
    untrained = subprocess.run(
        [sys.executable, "-c", "from crlft_train.cli import chat_main; chat_main()", str(run),
         "--condition", "GPT5", "--prompt", "Hello?"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert untrained.returncode == 2, untrained.stderr[-2000:]
    assert "unknown condition 'GPT5': this run knows 'GPT3', 'GPT4'" in untrained.stderr
    assert "Traceback" not in untrained.stderr


RESUME_ARGS = ("--max-steps", "8", "--save-every", "2", "--seed", "1")


@pytest.fixture(scope="module")
def uninterrupted(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8-step run with a checkpoint every 2 steps: the reference for every resume test."""
    run = tmp_path_factory.mktemp("resume") / "whole"
    finish(crlft_train(workspace, run, *RESUME_ARGS))
    return run


def assert_same_losses(resumed: Path, whole: Path, steps: range) -> None:
    got, expected = metrics(resumed), metrics(whole)
    assert sorted(got) == list(range(1, 9))
    for step in steps:
        assert got[step]["loss"] == pytest.approx(expected[step]["loss"], rel=1e-6)
        assert got[step]["lr"] == pytest.approx(expected[step]["lr"], rel=1e-9)


def test_resume_after_sigkill_reproduces_the_uninterrupted_losses(
    workspace: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    interrupted = tmp_path / "killed"
    process = crlft_train(workspace, interrupted, *RESUME_ARGS)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # kill it after step 5: past the step-4 checkpoint
        if (interrupted / "metrics.jsonl").is_file() and len(metrics(interrupted)) >= 5:
            break
        if process.poll() is not None:
            pytest.fail("the run ended before it could be killed")
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (interrupted / "final").exists()
    finish(crlft_train(workspace, interrupted, *RESUME_ARGS, "--resume"))
    assert_same_losses(interrupted, uninterrupted, range(5, 9))


def test_resume_skips_an_unreadable_checkpoint(
    workspace: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    """A truncated newest checkpoint (a crash mid-copy, say) falls back to the one before."""
    run = tmp_path / "damaged"
    shutil.copytree(uninterrupted, run, ignore=shutil.ignore_patterns("final"))
    newest = run / "checkpoints" / "step-8"
    assert (run / "checkpoints" / "latest").read_text() == "step-8"
    for state in newest.glob("*model_states.pt"):
        state.write_bytes(state.read_bytes()[:100])
    output = finish(crlft_train(workspace, run, *RESUME_ARGS, "--resume"))
    assert "skipped unreadable checkpoints (step-8" in output and "resuming from step-6" in output
    assert_same_losses(run, uninterrupted, range(7, 9))
    assert (run / "final" / "config.json").is_file()


def test_resume_with_no_loadable_checkpoint_is_one_readable_line(
    workspace: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    run = tmp_path / "ruined"
    shutil.copytree(uninterrupted / "checkpoints", run / "checkpoints")
    for state in (run / "checkpoints").glob("step-*/*model_states.pt"):
        state.write_bytes(b"")
    process = crlft_train(workspace, run, *RESUME_ARGS, "--resume")
    output, _ = process.communicate(timeout=600)
    assert process.returncode != 0 and "Traceback" not in output
    assert "no checkpoint in" in output and "step-6" in output and "step-8" in output


def test_zero3_export_gathers_the_full_weights(workspace: Path, tmp_path: Path) -> None:
    """Also trains through the varlen attention path (its reference kernel on a CPU)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = tmp_path / "zero3"
    finish(crlft_train(workspace, run, "--max-steps", "2", "--zero", "3", "--attention", "varlen"))
    assert "crlft_varlen" not in (run / "final" / "config.json").read_text()
    model = AutoModelForCausalLM.from_pretrained(run / "final", local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(run / "final", local_files_only=True)
    embeddings = model.get_input_embeddings().weight
    assert embeddings.shape[0] == len(tokenizer)  # resized for <|end_of_turn|>, then gathered
    assert all(p.numel() > 0 and p.abs().sum() > 0 for p in model.parameters())


def test_bad_inputs_are_one_readable_line(workspace: Path, tmp_path: Path) -> None:
    process = crlft_train(tmp_path / "nothing", tmp_path / "run")
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 2 and "Traceback" not in output
    assert "holds no tokenized dataset" in output
    process = crlft_train(workspace, tmp_path / "run", "--batch-max-len", "16", "--max-steps", "1")
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 2 and "raise --batch-max-len" in output
    typo = tmp_path / "ds.json"
    typo.write_text('{"zero_optimisation": {"stage": 2}}', encoding="utf-8")
    process = crlft_train(workspace, tmp_path / "run", "--deepspeed", str(typo))
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 2 and "did you mean 'zero_optimization'" in output
    empty_model = tmp_path / "model"
    empty_model.mkdir()
    (empty_model / "config.json").write_text(json.dumps(TINY), encoding="utf-8")
    process = crlft_train(workspace, tmp_path / "run", "--model", str(empty_model))
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 2 and "no weights" in output and "Traceback" not in output


def test_two_ranks_give_the_gradient_of_one_rank_on_the_same_global_batch(
    workspace: Path, tmp_path: Path
) -> None:
    """The weighted mean is over the global batch: Σ w is all-reduced before backward."""
    probe = Path(__file__).with_name("gradient_probe.py")
    # Sequences of different classes (weights 1.0 and 0.1) and lengths on each rank.
    indices = ["0", "1", "2", "5", "3", "4", "6", "7"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = [str(workspace), str(workspace / "tiny.json")]
    one = subprocess.run(
        [sys.executable, str(probe), *common, str(tmp_path / "one.pt"), *indices],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert one.returncode == 0, one.stdout[-2000:] + one.stderr[-2000:]
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", str(free_port()), str(probe), *common, str(tmp_path / "two.pt"),
         *indices],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-2000:]
    single, double = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert single.keys() == double.keys()
    for name in single:
        torch.testing.assert_close(double[name], single[name], rtol=1e-5, atol=1e-7)
    assert any(g.abs().sum() > 0 for g in single.values())


def test_crlft_eval_reproduces_the_trainers_validation_loss(
    workspace: Path, uninterrupted: Path
) -> None:
    """Each class under its own condition is exactly what training validated on: the same
    tokens, so the same loss; the other condition re-renders the same conversations."""
    command = [sys.executable, "-c", "from crlft_train.cli import eval_main; eval_main()",
               str(uninterrupted), str(workspace)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "condition gap" in done.stdout + done.stderr
    result = json.loads((uninterrupted / "condition_eval.json").read_text())
    assert result["expert_condition"] == "GPT4" and result["conditions"] == {
        "GPT4": "gpt4", "GPT3": "gpt35"
    }  # fmt: skip
    validated = [r for r in metrics_lines(uninterrupted) if "val/loss" in r][-1]
    for name, own in (("gpt4", "GPT4"), ("gpt35", "GPT3")):
        assert result["loss"][name][own] == pytest.approx(validated[f"val/loss/{name}"], rel=1e-4)
        other = "GPT3" if own == "GPT4" else "GPT4"
        assert result["loss"][name][other] != pytest.approx(result["loss"][name][own], rel=1e-6)
    gap = result["loss"]["gpt4"]["GPT3"] - result["loss"]["gpt4"]["GPT4"]
    assert result["condition_gap"]["gpt4"] == pytest.approx(gap)


def test_crlft_eval_without_a_validation_split_is_one_readable_line(
    workspace: Path,
    uninterrupted: Path,
    tmp_path: Path,
    toy_tokenizer: Path,  # noqa: F811
) -> None:
    no_validation = tmp_path / "ws"
    shutil.copytree(workspace / "labeled", no_validation / "labeled")
    run_tokenize(Workspace(no_validation), TokenizeOptions(tokenizer=toy_tokenizer, val_fraction=0))
    command = [sys.executable, "-c", "from crlft_train.cli import eval_main; eval_main()",
               str(uninterrupted), str(no_validation)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr
    assert "no validation split" in done.stdout + done.stderr
