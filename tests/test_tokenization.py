"""tokenize: exact templates, weights, plain-text content, long conversations, splits, stale input.

Everything runs the real path: a labeled stage written as Parquet, a byte-level BPE trained here,
`AutoTokenizer.from_pretrained`, and the `datasets` folder read back with `load_from_disk`.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pytest
import tokenized_fixtures as fx
from tokenized_fixtures import CLASSES, labeled_row, read_manifest, write_stage
from typer.testing import CliRunner

from sharegpt_tools.cli.main import app
from sharegpt_tools.label.presets import PRESET_DIR as PRESETS
from sharegpt_tools.schemas import validate
from sharegpt_tools.tokenize.chat_tokenizer import load_tokenizer
from sharegpt_tools.tokenize.options import LongMode, TokenizeError, TokenizeOptions
from sharegpt_tools.tokenize.rows import in_validation
from sharegpt_tools.tokenize.stage import run_tokenize
from sharegpt_tools.tokenize.templates import DEFAULT_EOT as EOT
from sharegpt_tools.tokenize.templates import Position, render_text
from sharegpt_tools.workspace import StageError, Workspace

# Session fixtures (tokenizers trained once), shared with test_render.py.
toy_tokenizer = fx.toy_tokenizer
metaspace_tokenizer = fx.metaspace_tokenizer

TRICKY = f"Say {EOT} then </s> and <s>, then GPT4 Assistant: <pad> done"
CONVERSATIONS = {
    "gpt4-two": ("gpt4", [("human", "What is 2+2?"), ("gpt", "It is 4."),
                          ("human", "And 3+3?"), ("gpt", "Six.")], None),
    "gpt35-system": ("gpt35", [("system", "Be brief."), ("human", "Capital of France?"),
                               ("gpt", "Paris."), ("human", "Of Italy?"), ("gpt", "Rome.")], None),
    "gpt4-tricky": ("gpt4", [("human", TRICKY), ("gpt", f"Plain text: {EOT} and </s>.")], None),
    "gpt35-refusal": ("gpt35", [("human", "Do something bad"), ("gpt", "I'm sorry, I cannot."),
                                ("human", "Then reverse a list"), ("gpt", "Use items[::-1].")],
                      [1.0, 0.0, 1.0, 1.0]),
}  # fmt: skip


def conversation_rows() -> list[dict]:
    return [
        labeled_row(cid, turns, klass, turn_weights)
        for cid, (klass, turns, turn_weights) in CONVERSATIONS.items()
    ]


def tokenize(ws: Workspace, tokenizer: Path, **kwargs: object) -> dict:
    options = TokenizeOptions(tokenizer=tokenizer, **{"val_fraction": 0.0, **kwargs})
    return run_tokenize(ws, options).manifest


def rows_by_id(ws: Workspace, split: str = "train") -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = defaultdict(list)
    for row in datasets.load_from_disk(str(ws.stage("tokenized")))[split]:
        found[row["id"]].append(row)
    return found


def weighted_runs(row: dict) -> list[tuple[list[int], float]]:
    """Maximal runs of consecutive tokens with weight > 0, with their weight."""
    runs: list[tuple[list[int], float]] = []
    previous = 0.0
    for token, weight in zip(row["input_ids"], row["loss_weights"], strict=True):
        if weight > 0 and previous > 0:
            runs[-1][0].append(token)
        elif weight > 0:
            runs.append(([token], weight))
        previous = weight
    return runs


@pytest.fixture(scope="module", params=list(Position))
def tokenized(request: pytest.FixtureRequest, tmp_path_factory, toy_tokenizer: Path):
    """One tokenized workspace per tag position, holding every conversation above."""
    ws = Workspace(tmp_path_factory.mktemp(f"ws-{request.param}"))
    write_stage(ws, conversation_rows())
    manifest = tokenize(ws, toy_tokenizer, position=request.param)
    chat = load_tokenizer(ws.stage("tokenized") / "tokenizer")
    return request.param, ws, manifest, chat, rows_by_id(ws)


@pytest.mark.parametrize("cid", list(CONVERSATIONS))
def test_decoding_input_ids_gives_exactly_the_rendered_template(tokenized, cid: str) -> None:
    position, _, _, chat, rows = tokenized
    klass, turns, _ = CONVERSATIONS[cid]
    roles, texts = zip(*turns, strict=True)
    expected = "<s>" + render_text(roles, texts, CLASSES[klass][1], position)
    (row,) = rows[cid]
    assert chat.decode(row["input_ids"]) == expected


@pytest.mark.parametrize("cid", list(CONVERSATIONS))
def test_weighted_tokens_are_the_assistant_turns_each_closed_by_eot(tokenized, cid: str) -> None:
    _, _, _, chat, rows = tokenized
    klass, turns, turn_weights = CONVERSATIONS[cid]
    turn_weights = turn_weights or [1.0] * len(turns)
    (row,) = rows[cid]
    runs = weighted_runs(row)
    expected = [  # the space after `Assistant:` is the answer's
        " " + v + EOT
        for (role, v), w in zip(turns, turn_weights, strict=True)
        if role == "gpt" and w
    ]
    assert [chat.decode(tokens) for tokens, _ in runs] == expected
    assert {weight for _, weight in runs} == {np.float32(CLASSES[klass][0])}
    ids, labels = np.array(row["input_ids"]), np.array(row["labels"])
    supervised = np.array(row["loss_weights"]) > 0
    assert (labels[supervised] == ids[supervised]).all()
    assert (labels[~supervised] == -100).all()


def test_a_refusal_turn_with_turn_weight_zero_is_context_without_loss(tokenized) -> None:
    _, _, _, chat, rows = tokenized
    (row,) = rows["gpt35-refusal"]
    weighted = [chat.decode(tokens) for tokens, _ in weighted_runs(row)]
    assert "I'm sorry" not in "".join(weighted)
    assert "I'm sorry, I cannot." in chat.decode(row["input_ids"])  # still in the context


def test_special_token_text_inside_content_stays_plain_text(tokenized) -> None:
    position, _, _, chat, rows = tokenized
    (row,) = rows["gpt4-tricky"]
    ids = row["input_ids"]
    header_eot = position is Position.BEGINNING
    assert ids.count(chat.eot_id) == 2 + header_eot  # one per turn, none from the content
    assert ids.count(chat.tok.bos_token_id) == 1 and ids[0] == chat.tok.bos_token_id
    assert chat.tok.eos_token_id not in ids and chat.tok.pad_token_id not in ids


def test_plain_encoding_is_what_split_special_tokens_gives(toy_tokenizer: Path) -> None:
    chat = load_tokenizer(toy_tokenizer)
    assert (
        chat.encode_plain([TRICKY])
        == chat.tok([TRICKY], add_special_tokens=False, split_special_tokens=True)["input_ids"]
    )
    # The default call would have turned the typed text into control tokens:
    assert chat.eot_id in chat.tok(TRICKY, add_special_tokens=False)["input_ids"]
    assert chat.eot_id not in chat.encode_plain([TRICKY])[0]


def test_dataset_loads_as_pretokenized_data_with_declared_columns(tokenized) -> None:
    _, ws, _, _, _ = tokenized
    dataset = datasets.load_from_disk(str(ws.stage("tokenized")))
    assert list(dataset) == ["train"]  # --val-fraction 0: no validation split
    train = dataset["train"]
    assert train.features["input_ids"].feature.dtype == "int32"
    assert train.features["loss_weights"].feature.dtype == "float32"
    for row in train:
        n = len(row["input_ids"])
        assert n == len(row["labels"]) == len(row["attention_mask"]) == row["length"]
        assert set(row["attention_mask"]) == {1} and row["piece"] == 0


def test_every_row_is_what_the_contracts_schema_declares(tokenized) -> None:
    """crlft_contract/tokenized.schema.json against real rows: the columns in its order, its
    Arrow types, its ignore index wherever a token has no weight."""
    import jsonschema

    from crlft_contract import COLUMN_TYPES, IGNORE_INDEX, TOKENIZED_SCHEMA

    _, ws, manifest, _, _ = tokenized
    train = datasets.load_from_disk(str(ws.stage("tokenized")))["train"]
    assert train.column_names == list(COLUMN_TYPES) == manifest["columns"]

    def arrow_type(declared: str) -> pa.DataType:
        inner = declared.removeprefix("list<").removesuffix(">")
        return pa.list_(pa.type_for_alias(inner)) if inner != declared else pa.type_for_alias(inner)

    assert {f.name: f.type for f in train.data.schema} == {
        name: arrow_type(declared) for name, declared in COLUMN_TYPES.items()
    }
    validator = jsonschema.Draft202012Validator(TOKENIZED_SCHEMA)
    for row in train:
        validator.validate(row)
        for label, weight in zip(row["labels"], row["loss_weights"], strict=True):
            assert (label == IGNORE_INDEX) == (weight == 0)


def test_manifest_records_tokenizer_templates_and_counts(tokenized, toy_tokenizer) -> None:
    position, ws, manifest, chat, rows = tokenized
    validate(manifest, "manifest")  # the schema every stage's manifest follows
    tokenizer = manifest["tokenizer"]
    assert tokenizer["vocab_size_after"] == tokenizer["vocab_size_before"] + 1 == len(chat.tok)
    assert tokenizer["added_special_tokens"] == [EOT]
    assert tokenizer["eot"] == {"token": EOT, "id": chat.eot_id}
    assert set(tokenizer["files"]) >= {"tokenizer.json", "tokenizer_config.json"}
    assert manifest["options"]["tokenizer_sha256"] == tokenizer["sha256"]
    templates = manifest["templates"]["by_class"]
    assert templates["gpt4"]["template"] == render_text(
        ["human", "gpt"], ["{user}", "{assistant}"], "GPT4", position
    )
    assert templates["gpt35"]["condition"] == "GPT3" and templates["gpt35"]["weight"] == 0.1
    assert manifest["input"]["stage"] == "labeled"
    assert manifest["parent"]["fingerprint"] == ws.manifest("labeled")["fingerprint"]
    by_class = manifest["counts"]["by_class"]
    for klass in ("gpt4", "gpt35"):
        mine = [r for rs in rows.values() for r in rs if r["class"] == klass]
        assert by_class[klass]["conversations_in"] == by_class[klass]["rows"] == len(mine) == 2
        assert by_class[klass]["tokens"] == sum(r["length"] for r in mine)
        assert by_class[klass]["supervised_tokens"] == sum(
            sum(w > 0 for w in r["loss_weights"]) for r in mine
        )


# --- long conversations ------------------------------------------------------------------------


def long_conversation(exchanges: int = 6) -> list[tuple[str, str]]:
    turns = [("system", "You answer in full sentences.")]
    for i in range(exchanges):
        turns.append(("human", f"Question {i}: how do I reverse a list in Python?"))
        turns.append(("gpt", f"Answer {i}: use slicing, items[::-1], or items.reverse()."))
    return turns


@pytest.fixture(scope="module")
def full_length(tmp_path_factory, toy_tokenizer: Path) -> tuple[list[int], int]:
    """The whole long conversation's input_ids, and the length of its header."""
    ws = Workspace(tmp_path_factory.mktemp("full"))
    write_stage(ws, [labeled_row("long", long_conversation())])
    tokenize(ws, toy_tokenizer)
    (row,) = rows_by_id(ws)["long"]
    chat = load_tokenizer(toy_tokenizer)
    # BOS, the system text (OpenChat style: no prefix), the end of turn.
    header = 1 + len(chat.encode_content([long_conversation()[0][1]], [True])[0]) + 1
    return row["input_ids"], header


def test_split_cuts_at_exchanges_and_repeats_the_header(
    tmp_path, toy_tokenizer, full_length
) -> None:
    full, header = full_length
    max_length = header + (len(full) - header) // 3 + 5  # about two exchanges per piece
    ws = Workspace(tmp_path)
    write_stage(
        ws, [labeled_row("long", long_conversation()), labeled_row("short", long_conversation(1))]
    )
    manifest = tokenize(ws, toy_tokenizer, max_length=max_length)
    pieces = rows_by_id(ws)["long"]
    chat = load_tokenizer(ws.stage("tokenized") / "tokenizer")
    assert [p["piece"] for p in pieces] == list(range(len(pieces))) and len(pieces) >= 3
    bodies = []
    for piece in pieces:
        ids = piece["input_ids"]
        assert len(ids) <= max_length
        assert ids[:header] == full[:header]  # BOS + system turn in every piece
        assert chat.decode(ids[header:]).startswith("GPT4 User: Question ")
        bodies += ids[header:]
    assert bodies == full[header:]  # nothing lost, nothing truncated
    counts = manifest["counts"]
    assert counts["long_conversations"] == counts["split_conversations"] == 1
    assert counts["pieces_from_splits"] == len(pieces) and counts["truncated_exchanges"] == 0
    assert rows_by_id(ws)["short"][0]["piece"] == 0


def test_an_exchange_longer_than_the_limit_is_truncated_in_split_mode(
    tmp_path, toy_tokenizer
) -> None:
    huge = " ".join(f"word{i}" for i in range(400))
    turns = [("human", "Tell me a story"), ("gpt", huge), ("human", "Thanks"), ("gpt", "Welcome.")]
    ws = Workspace(tmp_path)
    write_stage(ws, [labeled_row("huge", turns)])
    manifest = tokenize(ws, toy_tokenizer, max_length=64)
    first, second = rows_by_id(ws)["huge"]
    assert first["length"] == 64 and sum(w > 0 for w in first["loss_weights"]) > 0
    chat = load_tokenizer(ws.stage("tokenized") / "tokenizer")
    assert (
        chat.decode(second["input_ids"])
        == f"<s>GPT4 User: Thanks{EOT}GPT4 Assistant: Welcome.{EOT}"
    )
    assert manifest["counts"]["truncated_exchanges"] == 1


def test_truncate_keeps_the_first_tokens(tmp_path, toy_tokenizer, full_length) -> None:
    full, _ = full_length
    ws = Workspace(tmp_path)
    write_stage(ws, [labeled_row("long", long_conversation())])
    manifest = tokenize(ws, toy_tokenizer, max_length=100, long=LongMode.TRUNCATE)
    (row,) = rows_by_id(ws)["long"]
    assert row["input_ids"] == full[:100]
    assert manifest["counts"]["truncated_conversations"] == 1


def test_drop_removes_long_conversations_and_counts_them(tmp_path, toy_tokenizer) -> None:
    ws = Workspace(tmp_path)
    write_stage(
        ws, [labeled_row("long", long_conversation()), labeled_row("short", long_conversation(1))]
    )
    manifest = tokenize(ws, toy_tokenizer, max_length=100, long=LongMode.DROP)
    assert set(rows_by_id(ws)) == {"short"}
    assert manifest["counts"]["dropped_too_long"] == 1
    assert manifest["counts"]["rejected_by_reason"]["too_long"] == 1
    assert (manifest["counts"]["in"], manifest["counts"]["kept"]) == (2, 1)
    assert manifest["counts"]["by_class"]["gpt4"]["conversations_out"] == 1


def test_no_row_without_supervised_tokens_unless_all_its_turns_weigh_zero(
    tmp_path, toy_tokenizer
) -> None:
    question = " ".join(f"word{i}" for i in range(200))
    ws = Workspace(tmp_path)
    write_stage(
        ws,
        [
            labeled_row("cut", [("human", question), ("gpt", "Short answer.")]),
            labeled_row(
                "refusal", [("human", "Hi"), ("gpt", "I cannot.")], turn_weights=[1.0, 0.0]
            ),
        ],
    )
    manifest = tokenize(ws, toy_tokenizer, max_length=64, long=LongMode.TRUNCATE)
    rows = rows_by_id(ws)
    assert "cut" not in rows  # truncation left it nothing to learn from
    assert set(rows["refusal"][0]["labels"]) == {-100}  # kept as it was labeled
    counts = manifest["counts"]
    assert counts["dropped_no_supervision_after_truncation"] == 1
    assert counts["rejected_by_reason"]["no_supervised_token_left"] == 1
    assert counts["rows_without_supervision"] == 1


# --- validation split, input stage, errors ----------------------------------------------------


def test_validation_split_is_deterministic_per_id_and_seed(tmp_path, toy_tokenizer) -> None:
    ws = Workspace(tmp_path)
    rows = [labeled_row(f"c{i}", long_conversation(1 + i % 3)) for i in range(120)]
    write_stage(ws, rows)

    def validation_ids(seed: int) -> set[str]:
        tokenize(ws, toy_tokenizer, val_fraction=0.25, seed=seed, max_length=70)
        train, val = rows_by_id(ws, "train"), rows_by_id(ws, "validation")
        assert not set(train) & set(val)  # all pieces of a conversation share its split
        assert any(len(pieces) > 1 for pieces in val.values())
        return set(val)

    first = validation_ids(0)
    assert validation_ids(0) == first
    assert first == {f"c{i}" for i in range(120) if in_validation(f"c{i}", 0, 0.25)}
    assert 10 <= len(first) <= 50
    assert validation_ids(1) != first


def test_the_validation_split_is_also_written_under_every_condition(
    tmp_path: Path, toy_tokenizer: Path
) -> None:
    """condition_eval/ (what crlft-eval scores): under its own condition a row is the validation
    row with class weight 1; under another only the condition tag's tokens change."""
    ws = Workspace(tmp_path)
    write_stage(ws, conversation_rows())
    manifest = tokenize(ws, toy_tokenizer, val_fraction=1.0)
    info = manifest["condition_eval"]
    assert info["conditions"] == {"condition_0": "GPT4", "condition_1": "GPT3"}
    assert info["rows"] == {"condition_0": len(CONVERSATIONS), "condition_1": len(CONVERSATIONS)}
    under = datasets.load_from_disk(str(ws.stage("tokenized") / info["path"]))
    validation = rows_by_id(ws, "validation")
    chat = load_tokenizer(ws.stage("tokenized") / "tokenizer")
    for split, tag in info["conditions"].items():
        for row in under[split]:
            (original,) = validation[row["id"]]
            weight, own = CLASSES[row["class"]]
            roles, texts = zip(*CONVERSATIONS[row["id"]][1], strict=True)
            assert chat.decode(row["input_ids"]) == "<s>" + render_text(roles, texts, tag)
            assert [ids for ids, _ in weighted_runs(row)] == [
                ids for ids, _ in weighted_runs(original)
            ]
            if tag == own:
                assert row["input_ids"] == original["input_ids"]
                assert row["labels"] == original["labels"]
                assert np.allclose(np.array(row["loss_weights"]) * weight, original["loss_weights"])
            else:
                assert row["input_ids"] != original["input_ids"]
    no_validation = tokenize(ws, toy_tokenizer, val_fraction=0.0)
    assert no_validation["condition_eval"] is None
    assert not (ws.stage("tokenized") / "condition_eval").exists()


def test_up_to_date_subsampled_stage_is_used(tmp_path, toy_tokenizer) -> None:
    ws = Workspace(tmp_path)
    labeled = write_stage(ws, conversation_rows())
    sub = write_stage(ws, conversation_rows()[:1], stage="subsampled", parent=labeled)
    manifest = tokenize(ws, toy_tokenizer)
    assert manifest["input"]["stage"] == "subsampled"
    assert manifest["parent"] == {"stage": "subsampled", "fingerprint": sub["fingerprint"]}
    assert set(rows_by_id(ws)) == {"gpt4-two"}


def test_stale_subsampled_stage_is_refused(tmp_path, toy_tokenizer) -> None:
    ws = Workspace(tmp_path)
    write_stage(ws, conversation_rows())
    write_stage(
        ws,
        conversation_rows(),
        stage="subsampled",
        parent={"stage": "labeled", "fingerprint": "f" * 16},
    )
    with pytest.raises(StageError, match=r"stale.*sharegpt-tools subsample"):
        tokenize(ws, toy_tokenizer)
    result = CliRunner().invoke(
        app, ["tokenize", "--tokenizer", str(toy_tokenizer), "-w", str(tmp_path)]
    )
    assert result.exit_code == 2 and "stale" in result.output and "Traceback" not in result.output
    assert not ws.stage("tokenized").exists()


def test_explicit_input_folder_is_read_as_given(tmp_path, toy_tokenizer) -> None:
    ws = Workspace(tmp_path)
    labeled = write_stage(ws, conversation_rows())
    stale = {"stage": "labeled", "fingerprint": "f" * 16}
    write_stage(ws, conversation_rows(), stage="subsampled", parent=stale)
    options = TokenizeOptions(tokenizer=toy_tokenizer, val_fraction=0.0)
    result = run_tokenize(ws, options, input_dir=ws.stage("labeled"))
    assert result.manifest["input"]["stage"] == "labeled"
    assert result.manifest["parent"]["fingerprint"] == labeled["fingerprint"]
    assert len(rows_by_id(ws)) == len(CONVERSATIONS)


def test_max_length_smaller_than_the_template_is_a_clear_error(tmp_path, toy_tokenizer) -> None:
    ws = Workspace(tmp_path)
    write_stage(ws, conversation_rows())
    with pytest.raises(TokenizeError, match="too small"):
        tokenize(ws, toy_tokenizer, max_length=5)
    args = ["tokenize", "--tokenizer", str(toy_tokenizer), "-w", str(tmp_path), "--max-length", "5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--max-length 5 is too small" in result.output


@pytest.mark.parametrize(
    ("problem", "says"),
    [
        ("missing", "does not exist"),
        ("empty", "holds no tokenizer file"),
        ("only a model config", "holds no tokenizer file"),
        ("broken tokenizer.json", "cannot load a tokenizer"),
    ],
)
def test_unusable_tokenizer_folder_is_one_line(tmp_path: Path, problem: str, says: str) -> None:
    ws = Workspace(tmp_path / "ws")
    write_stage(ws, conversation_rows())
    folder = tmp_path / "tok"
    if problem != "missing":
        folder.mkdir()
    if problem == "only a model config":
        (folder / "config.json").write_text("{}")
    if problem == "broken tokenizer.json":
        (folder / "tokenizer.json").write_text('{"model": ')
    result = CliRunner().invoke(
        app, ["tokenize", "--tokenizer", str(folder), "-w", str(ws.root)], terminal_width=2000
    )
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert str(folder) in line and says in line
    assert "Traceback" not in result.output
    assert not line.rstrip().endswith(":"), f"a message cut at its first line break: {line}"


def test_tokenizer_whose_merges_cross_the_prefix_boundary_is_refused(tmp_path: Path) -> None:
    """Without a pre-tokenizer a BPE can merge `:` with the space after it, so the generation
    prompt `GPT4 Assistant:` would not be a token prefix of the rows: refused, in one line."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(
        ["GPT4 User: Hi GPT4 Assistant: Hello! How can I help?"] * 50, trainer
    )
    folder = tmp_path / "no-pre-tokenizer"
    PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>"
    ).save_pretrained(folder)
    ws = Workspace(tmp_path / "ws")
    write_stage(ws, conversation_rows())
    result = CliRunner().invoke(app, ["tokenize", "--tokenizer", str(folder), "-w", str(ws.root)])
    assert result.exit_code == 2, result.output
    assert "differently when it is tokenized as a whole than piece by piece" in result.output
    assert "Traceback" not in result.output and not ws.stage("tokenized").exists()


def test_missing_labeled_stage_names_the_command_to_run(tmp_path, toy_tokenizer) -> None:
    result = CliRunner().invoke(
        app, ["tokenize", "--tokenizer", str(toy_tokenizer), "-w", str(tmp_path)]
    )
    assert result.exit_code == 2 and "sharegpt-tools label" in result.output


def test_sentencepiece_style_dummy_prefix_is_detected_and_decoding_stays_exact(
    tmp_path,
    metaspace_tokenizer,
) -> None:
    ws = Workspace(tmp_path)
    write_stage(ws, conversation_rows()[:2])
    manifest = tokenize(ws, metaspace_tokenizer)
    assert manifest["tokenizer"]["dummy_prefix"] is True
    # prepend_scheme "first" (like `legacy: false`): no `▁` after BOS or an end-of-turn
    assert manifest["tokenizer"]["word_start_after_special_tokens"] is False
    chat = load_tokenizer(ws.stage("tokenized") / "tokenizer")
    for cid, rows in rows_by_id(ws).items():
        klass, turns, _ = CONVERSATIONS[cid]
        roles, texts = zip(*turns, strict=True)
        assert chat.decode(rows[0]["input_ids"]) == "<s>" + render_text(
            roles, texts, CLASSES[klass][1]
        )
        answers = [chat.decode(tokens) for tokens, _ in weighted_runs(rows[0])]
        assert [a.strip() for a in answers] == [v + EOT for role, v in turns if role == "gpt"]


def test_classes_keep_the_rules_order_so_equal_weights_pick_the_first_declared_as_expert(
    sample_raw: Path, toy_tokenizer: Path, tmp_path: Path
) -> None:
    """sources-no-reward.yaml gives both classes weight 1.0: the inference (expert) condition must
    still be GPT4, the class the rules file declares first, not the more frequent gpt35."""
    from crlft_train.checkpoint import expert_condition
    from sharegpt_tools.clean.options import CleanOptions
    from sharegpt_tools.clean.pipeline import run_clean
    from sharegpt_tools.label.rules import load_rules
    from sharegpt_tools.label.stage import run_label

    ws = Workspace(tmp_path / "ws")
    run_clean([sample_raw], ws, CleanOptions(workers=1))
    run_label(ws, load_rules(PRESETS / "no-reward.yaml"))
    run_tokenize(ws, TokenizeOptions(toy_tokenizer, val_fraction=0))
    templates = ws.manifest("tokenized")["templates"]  # as the trainer reads it, from disk
    counts = ws.manifest("labeled")["counts"]["classes"]
    assert counts["gpt35"]["conversations"] > counts["gpt4"]["conversations"]
    assert templates["class_order"] == ["gpt4", "gpt35"]
    assert expert_condition(templates) == "GPT4"


def test_a_class_left_without_supervised_tokens_is_warned_about(tmp_path, toy_tokenizer) -> None:
    """Truncated to its prompt, a class trains nothing: the summary says so for that class."""
    ws = Workspace(tmp_path)
    prompt_only = [("human", "Please explain this at length: " + "why? " * 60), ("gpt", "Yes.")]
    write_stage(ws, [labeled_row("long", prompt_only), *conversation_rows()[1:2]])
    args = ["tokenize", "--tokenizer", str(toy_tokenizer), "-w", str(ws.root), "--val-fraction"]
    args += ["0", "--max-length", "40", "--long", "truncate"]
    result = CliRunner().invoke(app, args, terminal_width=400)
    assert result.exit_code == 0, result.output
    manifest = read_manifest(ws.stage("tokenized"))
    assert manifest["counts"]["by_class"]["gpt4"].get("supervised_tokens", 0) == 0
    assert manifest["counts"]["by_class"]["gpt35"]["supervised_tokens"] > 0
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "class gpt4 has no supervised token" in warnings[0]
