"""crlft-train with the real DeepSpeed engine on CPU: packing semantics, end to end, resume.

Training runs go through the command line in a subprocess (as a user runs it): each builds its
own one-process gloo group, which a pytest process could not tear down and rebuild cleanly.
Refusals that happen before the process group starts run in-process (`invoke_train`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest.mock import patch

import datasets
import pytest
import torch
from tokenized_fixtures import labeled_row, toy_tokenizer, write_stage  # noqa: F401

from crlft_train.attention import register_varlen_attention
from crlft_train.checkpoint import folder_bytes, human_bytes
from crlft_train.data import block_causal_mask, load_tokenized, pack
from crlft_train.forward import chunkable_head, packed_loss_sums
from crlft_train.loss import token_losses, weighted_sums
from crlft_train.train import free_port
from sharegpt_tools.tokenize.stage import TokenizeOptions, run_tokenize
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


def train_args(workspace: Path, out: Path, *args: str) -> list[str]:
    return [
        str(workspace), "--output", str(out), "--model-config", str(workspace / "tiny.json"),
        "--batch-max-len", "512", "--lr", "3e-3", *args,
    ]  # fmt: skip


def crlft_train(
    workspace: Path, out: Path, *args: str, launcher: tuple[str, ...] = ("-m", "crlft_train")
) -> subprocess.Popen:
    command = [sys.executable, *launcher, *train_args(workspace, out, *args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def invoke_train(*args: object) -> object:
    """crlft-train in this process, for refusals made before any process group starts."""
    from typer.testing import CliRunner

    from crlft_train.cli import command_app, train_command

    wide = {"COLUMNS": "200"}  # a usage error's box would wrap at 80 columns
    return CliRunner().invoke(command_app(train_command), [str(a) for a in args], env=wide)


def assert_one_line_error(result: object, *fragments: str) -> None:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


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
    # Computing logits only at the supervised positions equals the loss over all logits (the
    # sums are float64 either way; the trainer's per-token losses are float32).
    torch.testing.assert_close(packed.loss_sum, reference.loss_sum, rtol=1.3e-6, atol=1e-5)
    # The chunked head's cross-entropy (the trainer's default): the same loss and gradients,
    # without the [targets × vocab] logits (chunks of 7 tokens here).
    assert chunkable_head(model) is model.lm_head.weight  # a Llama head: the chunked path is taken
    gradients = []
    for chunked in (False, True):
        model.zero_grad()
        with patch("crlft_train.chunked_ce.CHUNK_ELEMENTS", 7 * 1024):
            sums = packed_loss_sums(model, batch, len(classes), False, cpu, chunked=chunked)
        sums.loss_sum.backward()
        gradients.append({n: p.grad.clone() for n, p in model.named_parameters()})
        torch.testing.assert_close(sums.loss_sum, packed.loss_sum, rtol=1.3e-6, atol=1e-5)
    for name, plain in gradients[0].items():
        torch.testing.assert_close(gradients[1][name], plain, rtol=1e-5, atol=1e-7)  # fp32 CE


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
EVAL_MAIN = "from crlft_train.cli import eval_main; eval_main()"


@pytest.fixture(scope="module")
def uninterrupted(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8-step run with a checkpoint every 2 steps: the reference for every resume test."""
    run = tmp_path_factory.mktemp("resume") / "whole"
    finish(crlft_train(workspace, run, *RESUME_ARGS))
    return run


def assert_same_losses(resumed: Path, whole: Path, steps: range) -> None:
    got, expected = metrics(resumed), metrics(whole)
    # Resuming drops what the run logged after its checkpoint: each step is in the file once.
    assert [r["step"] for r in metrics_lines(resumed) if "loss" in r] == list(range(1, 9))
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


def test_zero3_export_gathers_the_full_weights_with_and_without_offload(
    workspace: Path, tmp_path: Path
) -> None:
    """Also trains through the varlen attention path (its reference kernel on a CPU). With
    --offload params (parameters and optimiser states in CPU memory, stepped by DeepSpeed's
    compiled CPU Adam) the run gives the same losses."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    args = ("--max-steps", "3", "--zero", "3", "--attention", "varlen")
    runs = {"plain": tmp_path / "zero3", "offload": tmp_path / "offload"}
    started = [
        crlft_train(workspace, runs["plain"], *args),
        crlft_train(workspace, runs["offload"], *args, "--offload", "params"),
    ]
    outputs = [finish(process) for process in started]
    assert "CPU Adam" in outputs[1] and "cannot be built" not in outputs[1]
    for step in (1, 2, 3):
        assert metrics(runs["offload"])[step]["loss"] == pytest.approx(
            metrics(runs["plain"])[step]["loss"], rel=1e-6
        )
    for run in runs.values():
        assert "crlft_varlen" not in (run / "final" / "config.json").read_text()
        model = AutoModelForCausalLM.from_pretrained(run / "final", local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(run / "final", local_files_only=True)
        embeddings = model.get_input_embeddings().weight
        assert embeddings.shape[0] == len(tokenizer)  # resized for <|end_of_turn|>, gathered
        assert all(p.numel() > 0 and p.abs().sum() > 0 for p in model.parameters())


def test_bad_inputs_are_one_readable_line(workspace: Path, tmp_path: Path) -> None:
    # In this process: both are refused before DeepSpeed is set up (a subprocess would spend
    # most of its time importing it)
    missing = invoke_train(tmp_path / "nothing", "--output", tmp_path / "run")
    assert_one_line_error(missing, "holds no tokenized dataset")
    for args, message in (
        (("--offload", "optimizer"), "--offload optimizer needs ZeRO: add --zero 2"),
        (("--offload", "params", "--zero", "2"), "--offload params needs --zero 3 (ZeRO stage 2"),
    ):
        refused = invoke_train(*train_args(workspace, tmp_path / "run", *args))
        assert_one_line_error(refused, message)
    typo = tmp_path / "ds.json"
    typo.write_text('{"zero_optimisation": {"stage": 2}}', encoding="utf-8")
    misspelt = invoke_train(workspace, "--output", tmp_path / "run", "--deepspeed", typo)
    # (reading the config imports DeepSpeed, which logs its accelerator first: not our line)
    errors = [line for line in misspelt.output.splitlines() if line.startswith("error:")]
    assert misspelt.exit_code == 2 and "Traceback" not in misspelt.output
    assert len(errors) == 1 and "did you mean 'zero_optimization'" in errors[0]


def test_bad_batch_and_model_are_one_line_in_a_real_process(
    workspace: Path, tmp_path: Path
) -> None:
    process = crlft_train(workspace, tmp_path / "run", "--batch-max-len", "16", "--max-steps", "1")
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 2 and "raise --batch-max-len" in output
    empty_model = tmp_path / "model"
    empty_model.mkdir()
    (empty_model / "config.json").write_text(json.dumps(TINY), encoding="utf-8")
    process = crlft_train(workspace, tmp_path / "run", "--model", str(empty_model))
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 2, output[-3000:]
    assert "no weights" in output and "Traceback" not in output


def probe_step(workspace: Path, out: Path, ranks: int, batch_tokens: int) -> dict:
    """One optimiser step of tests/train/gradient_probe.py over the same 8 sequences (of both
    classes, weights 1.0 and 0.1, and various lengths): its gradient and its update."""
    probe = Path(__file__).with_name("gradient_probe.py")
    indices = ["0", "1", "2", "5", "3", "4", "6", "7"]
    launcher = [sys.executable]
    if ranks > 1:
        launcher += ["-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
                     "--master_port", str(free_port())]  # fmt: skip
    done = subprocess.run(
        [*launcher, str(probe), str(workspace), str(workspace / "tiny.json"), str(out),
         str(batch_tokens), *indices],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return torch.load(out)


def test_ranks_and_accumulation_give_the_gradient_and_update_of_one_large_batch(
    workspace: Path, tmp_path: Path
) -> None:
    """The weighted mean is over the global batch of the optimiser step, however it is split:
    Σ w is all-reduced once per step, the micro-batches' gradients add up (no 1/k scaling) and
    DeepSpeed averages them over ranks. 1 rank × 1 micro-batch of all 8 sequences, 1 rank × 4 and
    2 ranks × 2 (--batch-tokens 32768 at --batch-max-len 8192) agree."""
    large = probe_step(workspace, tmp_path / "large.pt", ranks=1, batch_tokens=0)
    assert any(g.abs().sum() > 0 for name, g in large.items() if name.startswith("grad/"))
    for ranks, batch_tokens in ((1, 4 * 8192), (2, 4 * 8192)):
        split = probe_step(workspace, tmp_path / f"{ranks}-{batch_tokens}.pt", ranks, batch_tokens)
        assert split.keys() == large.keys()
        for name in large:
            torch.testing.assert_close(
                split[name], large[name], rtol=1e-5, atol=1e-7, msg=f"{ranks} {batch_tokens} {name}"
            )


def test_batch_tokens_on_one_process_and_on_two_nodes_over_loopback(
    workspace: Path, tmp_path: Path
) -> None:
    """--batch-tokens 1024 at --batch-max-len 512: one process accumulates 2 packed micro-batches
    per step, recorded, and a resume with another global batch is refused in one line. A 2-node
    run simulated on one machine (torchrun --nnodes 2, node ranks 0 and 1 as two processes meeting
    at 127.0.0.1), one micro-batch per rank, trains the same losses."""
    args = ("--batch-tokens", "1024", "--epochs", "1", "--seed", "1")
    single = finish(crlft_train(workspace, tmp_path / "one", *args))
    assert "2 micro-batch(es) of ≤ 512 tokens per rank and step (≤ 1,024 tokens)" in single
    one = metrics(tmp_path / "one")
    tokens = [r["tokens"] for r in one.values()]
    lengths = datasets.load_from_disk(str(workspace / "tokenized"))["train"]["length"]
    assert sum(tokens) == sum(lengths)  # every sequence once in the epoch, nothing dropped
    assert max(tokens) <= 1024 and len(one) < sum(lengths) / 512  # fewer, larger steps
    recorded = json.loads((tmp_path / "one" / "final" / "crlft.json").read_text())["config"]
    assert recorded["batch_tokens"] == 1024 and recorded["max_grad_norm"] == 1.0
    assert_one_line_error(
        invoke_train(
            workspace, "--output", tmp_path / "one", "--resume", "--batch-max-len", "256",
            "--batch-tokens", 1024,
        ),
        "the micro-batches per rank and step (--batch-tokens) 4 (checkpoint: 2)",
    )  # fmt: skip
    port = str(free_port())
    nodes = [
        crlft_train(
            workspace, tmp_path / "two", *args,
            launcher=("-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node),
                      "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", port,
                      "-m", "crlft_train"),
        )
        for node in (0, 1)
    ]  # fmt: skip
    with ThreadPoolExecutor(2) as pool:  # both pipes drained at once: neither node blocks
        first, _ = pool.map(finish, nodes)
    assert "on 2 rank(s)" in first and "1 micro-batch(es) of ≤ 512 tokens per rank" in first
    two = metrics(tmp_path / "two")
    assert one.keys() == two.keys() and len(one) >= 2
    for step in one:
        assert two[step]["tokens"] == one[step]["tokens"]
        assert two[step]["loss"] == pytest.approx(one[step]["loss"], rel=1e-5)


def test_metrics_lines_are_what_the_contracts_schema_declares(uninterrupted: Path) -> None:
    """crlft_contract/metrics.schema.json (what `report --run` reads) against a real run's log:
    valid JSON (no NaN), only declared keys, a class loss per class and split."""
    import jsonschema

    from crlft_contract import METRICS_SCHEMA, Metric, class_loss_key

    validator = jsonschema.Draft202012Validator(METRICS_SCHEMA)
    lines = (uninterrupted / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line, parse_constant=pytest.fail) for line in lines]
    for record in records:
        validator.validate(record)
    steps = [r for r in records if Metric.LOSS in r]
    validations = [r for r in records if Metric.VAL_LOSS in r]
    assert len(steps) == 8 and validations
    for name in ("gpt4", "gpt35"):
        assert all(class_loss_key(name) in r for r in steps)
        assert all(class_loss_key(name, validation=True) in r for r in validations)


def test_crlft_eval_reproduces_the_trainers_validation_loss(
    workspace: Path, uninterrupted: Path
) -> None:
    """Each class under its own condition is exactly what training validated on: the same
    tokens, so the same loss; the other condition re-renders the same conversations."""
    command = [sys.executable, "-c", EVAL_MAIN, str(uninterrupted), str(workspace)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "condition gap" in done.stdout + done.stderr
    result = json.loads((uninterrupted / "condition_eval.json").read_text())
    assert result["expert_condition"] == "GPT4" and result["conditions"] == {
        "GPT4": "gpt4", "GPT3": "gpt35"
    }  # fmt: skip
    validated = [r for r in metrics_lines(uninterrupted) if "val/loss" in r][-1]
    for name, own in (("gpt4", "GPT4"), ("gpt35", "GPT3")):
        # float64 sums: the same tokens packed differently give the same loss (float32 sums of
        # the 0.1 weights drifted by ~3e-7 here, by ~3e-5 on the demo's data).
        assert result["loss"][name][own] == pytest.approx(validated[f"val/loss/{name}"], rel=1e-9)
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
    command = [sys.executable, "-c", EVAL_MAIN, str(uninterrupted), str(no_validation)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr
    assert "no validation split" in done.stdout + done.stderr


def test_crlft_eval_needs_only_the_tokenized_folder(
    workspace: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    """A tokenized folder shipped alone, on a machine without the data tool: its
    condition_eval/ split holds the validation conversations under every condition."""
    shipped = tmp_path / "shipped"
    shutil.copytree(workspace / "tokenized", shipped)
    run = tmp_path / "run"
    shutil.copytree(uninterrupted / "final", run / "final")
    alone = "import sys; sys.modules['sharegpt_tools'] = None; " + EVAL_MAIN
    done = subprocess.run(
        [sys.executable, "-c", alone, str(run), str(shipped)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads((run / "condition_eval.json").read_text())
    validated = [r for r in metrics_lines(uninterrupted) if "val/loss" in r][-1]
    for name, own in (("gpt4", "GPT4"), ("gpt35", "GPT3")):
        assert result["loss"][name][own] == pytest.approx(validated[f"val/loss/{name}"], rel=1e-9)
    older = tmp_path / "older"  # a folder tokenized before condition_eval/ existed
    shutil.copytree(shipped, older, ignore=shutil.ignore_patterns("condition_eval"))
    done = subprocess.run(
        [sys.executable, "-c", alone, str(run), str(older)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr
    assert "has no condition_eval/" in done.stderr and "re-run `sharegpt-tools tokenize`" in (
        done.stderr
    )


# --- bad input and faults (issue 9) ---------------------------------------------------------------


def run_skeleton(run: Path, dest: Path) -> Path:
    """A run folder's checkpoint records, `latest` and metrics.jsonl without any weights: what the
    checks made before training starts read."""
    for record in (run / "checkpoints").glob("step-*/crlft_run.json"):
        target = dest / record.relative_to(run)
        target.parent.mkdir(parents=True)
        shutil.copyfile(record, target)
    shutil.copyfile(run / "checkpoints" / "latest", dest / "checkpoints" / "latest")
    shutil.copyfile(run / "metrics.jsonl", dest / "metrics.jsonl")
    return dest


def test_a_folder_holding_a_run_is_refused_without_resume_or_overwrite(
    workspace: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    run = run_skeleton(uninterrupted, tmp_path / "run")
    before = (run / "metrics.jsonl").read_bytes()
    assert_one_line_error(
        invoke_train(workspace, "--output", run, "--max-steps", "2"),
        f"{run} already holds a run (2 checkpoints, step 8): pass --resume to continue it or "
        "--overwrite to replace it",
    )
    assert (run / "metrics.jsonl").read_bytes() == before
    assert_one_line_error(invoke_train(workspace, "--output", run, "--resume", "--overwrite"))
    shutil.rmtree(run / "checkpoints")  # a run killed before its first checkpoint: still a run
    assert_one_line_error(
        invoke_train(workspace, "--output", run), "(0 checkpoints, step 8)", "--overwrite"
    )


@pytest.fixture(scope="module")
def variants(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tokenized folders beside the workspace's: every loss weight 0 (all splits, or validation
    only), and the same conversations tokenized with another validation split."""
    import datasets

    root = tmp_path_factory.mktemp("variants")
    source = workspace / "tokenized"
    splits = datasets.load_from_disk(str(source))
    folders = {}
    for name, zeroed in (("unsupervised", {"train", "validation"}), ("val_zero", {"validation"})):
        out = root / name
        datasets.DatasetDict({
            split: data.map(
                lambda row: {"loss_weights": [0.0] * len(row["loss_weights"])},
                features=data.features,
            ) if split in zeroed else data
            for split, data in splits.items()
        }).save_to_disk(str(out))  # fmt: skip
        shutil.copyfile(source / "manifest.json", out / "manifest.json")
        shutil.copytree(source / "tokenizer", out / "tokenizer")
        folders[name] = out
    other = root / "other_split"
    shutil.copytree(workspace / "labeled", other / "labeled")
    tokenizer = source / "tokenizer"
    run_tokenize(Workspace(other), TokenizeOptions(tokenizer=tokenizer, val_fraction=0.2))
    folders["other_split"] = other
    return folders


def test_data_without_supervised_tokens_is_refused_naming_the_split(
    variants: dict[str, Path], tmp_path: Path
) -> None:
    """All weights 0 would "train" with a loss of 0.0000 and zero gradients."""
    for name, split in (("unsupervised", "train"), ("val_zero", "validation")):
        assert_one_line_error(
            invoke_train(variants[name], "--output", tmp_path / name),
            f"the {split} split has no supervised token", "--max-length", "--long split",
        )  # fmt: skip
        assert not (tmp_path / name).exists()


def test_resume_with_another_data_order_is_one_readable_line(
    workspace: Path, uninterrupted: Path, variants: dict[str, Path], tmp_path: Path
) -> None:
    """What fixes the data order must match the checkpoint's record; refused before loading."""
    run = run_skeleton(uninterrupted, tmp_path / "run")
    tiny = workspace / "tiny.json"
    common = ("--output", run, "--model-config", tiny, "--resume", "--seed", "1")
    assert_one_line_error(
        invoke_train(workspace, *common, "--batch-max-len", "256"),
        "--resume: --batch-max-len 256 (checkpoint: 512)", "must match", "--overwrite",
    )  # fmt: skip
    assert_one_line_error(
        invoke_train(variants["other_split"], *common, "--batch-max-len", "512"),
        "DATA (tokenized fingerprint)", "DATA (training sequences)", "must match",
    )  # fmt: skip


def test_resume_falls_back_past_a_missing_file_and_the_command_line_lr_wins(
    workspace: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    """A deleted file of the newest checkpoint: resume from the one before, saying so; a new --lr
    and --weight-decay are announced and used from the resumed step on; metrics.jsonl keeps each
    step once."""
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run, ignore=shutil.ignore_patterns("final", "condition_*"))
    (run / "checkpoints" / "step-8" / "mp_rank_00_model_states.pt").unlink()
    output = finish(
        crlft_train(
            workspace, run, *RESUME_ARGS, "--resume", "--lr", "1.5e-3", "--weight-decay", "0.05"
        )
    )
    assert (
        "skipped unreadable checkpoints (step-8: mp_rank_00_model_states.pt is missing); "
        "resuming from step-6" in output
    )
    assert (
        "--resume: options differ from the checkpoint's: --lr 0.0015 (checkpoint: 0.003)" in output
    )
    assert "; --weight-decay 0.05 (checkpoint: 0.1)" in output and "the command line wins" in output
    lines, whole = metrics_lines(run), metrics_lines(uninterrupted)
    assert [r["step"] for r in lines if "loss" in r] == list(range(1, 9))
    assert [r["step"] for r in lines if "val/loss" in r] == [8]
    assert lines[:6] == whole[:6]  # the records up to the checkpoint, untouched
    got, expected = metrics(run), metrics(uninterrupted)
    assert got[7]["loss"] == pytest.approx(expected[7]["loss"], rel=1e-6)  # step 6's weights
    for step in (7, 8):
        assert got[step]["lr"] == pytest.approx(expected[step]["lr"] / 2, rel=1e-9)
    recorded = json.loads((run / "final" / "crlft.json").read_text())
    assert recorded["peak_lr"] == 1.5e-3 and recorded["config"]["weight_decay"] == 0.05


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_how_much_space(
    workspace: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    """ENOSPC at the real writes (disk_full_probe.py): the step-2 checkpoint, then final/.

    The first run also replaces an older run with --overwrite."""
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    args = ("--max-steps", "3", "--save-every", "1", "--seed", "1")
    probe = (str(Path(__file__).with_name("disk_full_probe.py")),)
    first = crlft_train(
        workspace, run, *args, "--overwrite", launcher=(*probe, "checkpoint:step-2")
    )
    output, _ = first.communicate(timeout=600)
    checkpoints = run / "checkpoints"
    need = human_bytes(folder_bytes(checkpoints / "step-1"))
    assert first.returncode == 2 and "Traceback" not in output, output[-3000:]
    assert (
        f"disk full while writing checkpoint {checkpoints / 'step-2'} "
        f"({checkpoints / 'step-2' / 'mp_rank_00_model_states.pt'}): it needs about {need} free"
        in output
    )
    assert f"the previous checkpoint {checkpoints / 'step-1'} is intact" in output
    assert (checkpoints / "latest").read_text() == "step-1"
    assert sorted(p.name for p in checkpoints.iterdir() if p.is_dir()) == ["step-1"]
    assert not (run / "final").exists() and [r["step"] for r in metrics_lines(run)] == [1, 2]
    second = crlft_train(workspace, run, *args, "--resume", launcher=(*probe, "final"))
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 2 and "Traceback" not in output, output[-3000:]
    assert "resumed from step 1" in output  # the checkpoint kept through the full disk loads
    assert f"disk full while writing the Hugging Face model {run / 'final'}" in output
    assert "it needs about" in output and "the run's checkpoints are intact" in output
    assert not (run / "final").exists() and not (run / ".final.tmp").exists()
    assert (checkpoints / "latest").read_text() == "step-3"


NO_TRAIN_EXTRA = textwrap.dedent(
    """
    import contextlib, io, json, sys
    sys.modules.update(torch=None, deepspeed=None)  # what `import` meets when they are absent
    from crlft_train import cli
    results = []
    for entry, *argv in json.loads(sys.argv[1]):
        sys.argv, out = [entry, *argv], io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                getattr(cli, entry)()
            except SystemExit as exit:
                results.append([exit.code, out.getvalue()])
    print(json.dumps(results))
    """
)


def test_commands_without_the_train_extra_say_how_to_install_it(tmp_path: Path) -> None:
    calls = [
        ["main", str(tmp_path)], ["chat_main", str(tmp_path)],
        ["eval_main", str(tmp_path), str(tmp_path)],
        ["main", "--help"], ["chat_main", "--help"], ["eval_main", "--help"],
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", NO_TRAIN_EXTRA, json.dumps(calls)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    assert len(results) == len(calls)
    commands = ("crlft-train", "crlft-chat", "crlft-eval")
    for (code, output), command in zip(results[:3], commands, strict=True):
        assert code == 2 and "Traceback" not in output, output
        assert f"{command} needs torch" in output
        assert "pip install 'sharegpt-tools[train]'" in output
    for code, output in results[3:]:
        assert code == 0 and "Usage" in output, output


def test_every_option_has_a_description_and_attention_is_a_choice(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from crlft_train.cli import chat_command, command_app, eval_command, train_command

    for command in (train_command, chat_command, eval_command):
        app = command_app(command)
        params = typer.main.get_command(app).params
        undescribed = [p.opts[0] for p in params if not (p.help or "").strip()]
        assert not undescribed, f"{command.__name__}: {undescribed} have no --help text"
        shown = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
        assert shown.exit_code == 0 and all(p.opts[0] in shown.output for p in params)
        assert "<bool>" not in shown.output, "an on/off flag takes no value"
    assert "(0: only at the end" in invoke_train("--help").output
    # --attention is a choice: a typo is a usage error listing the implemented modes.
    typo = invoke_train(tmp_path, "--attention", "varlan")
    assert typo.exit_code == 2 and "'auto', 'varlen', 'padded'" in typo.output
