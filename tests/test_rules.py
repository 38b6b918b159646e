"""Rules files: the shipped examples validate; every broken file is one readable RulesError line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sharegpt_tools.cli.main import app
from sharegpt_tools.label.presets import PRESET_DIR as PRESETS
from sharegpt_tools.label.presets import preset_names
from sharegpt_tools.label.rules import DROP, ColumnWeight, RulesError, load_rules, resolve_rules

DOCS = Path(__file__).resolve().parent.parent / "docs"


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rules_error(path: Path) -> str:
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    message = str(caught.value)
    assert "\n" not in message, "a rules error must be one line"
    assert message.startswith(f"{path}: "), "a rules error names the rules file first"
    return message


@pytest.mark.parametrize("name", sorted(p.name for p in PRESETS.glob("*.yaml")))
def test_each_shipped_example_validates(name: str) -> None:
    rules = load_rules(PRESETS / name)
    assert rules.classes
    assert rules.document["classes"][0]["name"] == rules.classes[0].name
    assert len(rules.sha256) == 64


def test_examples_reproduce_the_paper_settings() -> None:
    def summary(name: str) -> list[tuple]:
        rules = load_rules(PRESETS / name)
        return [(c.name, c.weight, c.condition, c.match.models) for c in rules.classes]

    gpt35_models = ("gpt-3.5", "unknown")  # the paper counts every non-GPT-4 row as GPT-3.5
    assert summary("paper.yaml") == [
        ("gpt4", 1.0, "GPT4", ("gpt-4",)),
        ("gpt35", 0.1, "GPT3", gpt35_models),
    ]
    assert summary("no-reward.yaml") == [
        ("gpt4", 1.0, "GPT4", ("gpt-4",)),
        ("gpt35", 1.0, "GPT3", gpt35_models),
    ]
    assert summary("no-condition.yaml") == [
        ("gpt4", 1.0, "", ("gpt-4",)),
        ("gpt35", 0.1, "", gpt35_models),
    ]
    assert summary("sft.yaml") == [("all", 1.0, "", ())]
    for name in ("paper.yaml", "no-reward.yaml", "no-condition.yaml"):
        assert load_rules(PRESETS / name).default == DROP


def test_the_format_example_in_the_readme_validates(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "docs" / "rules.md").read_text(
        encoding="utf-8"
    )
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL)
    full = next(block for block in blocks if block.startswith("classes:"))
    (tmp_path / "gpt4-ids.txt").write_text("a\nb\n", encoding="utf-8")
    rules = load_rules(write(tmp_path, full))
    assert [c.name for c in rules.classes] == ["gpt4", "gpt35"]
    assert len(rules.classes[0].match.fields) == 2


def test_column_weight_and_defaults_are_typed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "classes:\n"
        "  - name: judged\n"
        "    weight: {column: judge_score, map: {from: [0, 10], to: [1, 0]}, missing: drop}\n",
    )
    rules = load_rules(path)
    weight = rules.classes[0].weight
    assert isinstance(weight, ColumnWeight)
    assert (weight.source, weight.target, weight.missing) == ((0.0, 10.0), (1.0, 0.0), None)
    assert rules.classes[0].condition == ""
    assert rules.default == DROP
    assert rules.document["default"] == DROP and rules.document["classes"][0]["condition"] == ""


def test_ids_file_is_resolved_next_to_the_rules_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "ids.txt").write_text("a\n\n  b  \n", encoding="utf-8")
    path = write(
        folder, "classes:\n  - name: picked\n    weight: 1\n    match: {ids_file: ids.txt}\n"
    )
    monkeypatch.chdir(tmp_path)  # somewhere else than the rules file
    ids = load_rules(path).classes[0].match.ids
    assert ids is not None and ids.ids == {"a", "b"}
    assert ids.path == (folder / "ids.txt").resolve()


ONE_CLASS = "classes:\n  - name: a\n    weight: 1\n"

BAD_RULES = {
    "unknown field": (
        ONE_CLASS + "    colour: red\n",
        ["classes[0]", "unknown field 'colour'", "allowed: name, weight"],
    ),
    "unknown match field": (
        ONE_CLASS + "    match: {modle: gpt-4}\n",
        ["classes[0].match", "unknown field 'modle'"],
    ),
    "unknown top-level field": (ONE_CLASS + "defualt: drop\n", ["(top level)", "'defualt'"]),
    "wrong type": (
        "classes:\n  - name: a\n    weight: high\n",
        ["classes[0].weight", "got 'high'", "a number ≥ 0"],
    ),
    "condition not a string": (
        ONE_CLASS + "    condition: 4\n",
        ["classes[0].condition", "got 4", "put it in quotes"],
    ),
    "YAML boolean": (
        ONE_CLASS + "    match: {language: no}\n",
        ["classes[0].match.language", "got false", "quote"],
    ),
    "negative weight": (
        ONE_CLASS + "  - name: b\n    weight: -0.1\n",
        ["classes[1].weight", "-0.1", "≥ 0"],
    ),
    "NaN weight": ("classes:\n  - name: a\n    weight: .nan\n", ["classes[0].weight", "finite"]),
    "infinite weight": (
        "classes:\n  - name: a\n    weight: .inf\n",
        ["classes[0].weight", "finite"],
    ),
    "python tag": (
        "classes: !!python/object/apply:os.getcwd []\n",
        ["line 1", "!!python/object/apply:os.getcwd", "not allowed"],
    ),
    "default naming no class": (ONE_CLASS + "default: gpt4\n", ["default", "'gpt4'", "a"]),
    "bad regex": (
        ONE_CLASS + "    match: {field: {column: source, regex: '(unclosed'}}\n",
        ["classes[0].match.field[0].regex", "'(unclosed'", "not a valid regex"],
    ),
    "look-around regex": (
        ONE_CLASS + "    match: {field: {column: source, regex: '(?<=a)b'}}\n",
        ["classes[0].match.field[0].regex", "look-around"],
    ),
    "missing ids file": (
        ONE_CLASS + "    match: {ids_file: nope.txt}\n",
        ["classes[0].match.ids_file", "nope.txt", "relative to the rules file"],
    ),
    "duplicate class names": (
        ONE_CLASS + "  - name: a\n    weight: 2\n",
        ["classes[1].name", "classes[0]", "unique"],
    ),
    "duplicate key": (ONE_CLASS + "    weight: 2\n", ["line 4", "duplicate key 'weight'"]),
    "reserved name": ("classes:\n  - name: drop\n    weight: 1\n", ["classes[0].name", "reserved"]),
    "two tests in one field test": (
        ONE_CLASS + "    match: {field: {column: id, equals: x, regex: y}}\n",
        ["classes[0].match.field", "exactly one test"],
    ),
    "empty range": (
        ONE_CLASS + "    match: {turns: {min: 6, max: 2}}\n",
        ["classes[0].match.turns", "min 6 is above max 2"],
    ),
    "equal map ends": (
        "classes:\n  - name: a\n"
        "    weight: {column: s, map: {from: [1, 1], to: [0, 1]}, missing: 0}\n",
        ["classes[0].weight.map.from", "two different numbers"],
    ),
    "typo in the column weight": (
        "classes:\n  - name: a\n"
        "    weight: {colum: s, map: {from: [0, 1], to: [0, 1]}, missing: 0}\n",
        ["classes[0].weight", "unknown field 'colum'"],
    ),
    "no classes": ("classes: []\n", ["classes", "at least 1"]),
    "empty file": ("", ["empty", "classes:"]),
    "not a mapping": ("- a\n- b\n", ["(top level)", "got a list", "classes:"]),
    "YAML syntax": ("classes:\n  - name: a\n   weight: 1\n", ["line 3", "not valid YAML"]),
}


@pytest.mark.parametrize("case", list(BAD_RULES))
def test_bad_rules_give_one_clear_line(case: str, tmp_path: Path) -> None:
    text, fragments = BAD_RULES[case]
    message = rules_error(write(tmp_path, text))
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"


def test_python_tags_are_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = write(tmp_path, f"classes: !!python/object/apply:os.mkdir ['{marker}']\n")
    rules_error(path)
    assert not marker.exists()


def test_unreadable_rules_file_is_one_line(tmp_path: Path) -> None:
    assert "cannot read" in rules_error(tmp_path / "missing.yaml")


# --- presets: the shipped rules by name ---------------------------------------------------------


def test_rules_list_names_every_preset_with_what_it_is() -> None:
    result = CliRunner().invoke(app, ["rules", "list"])
    assert result.exit_code == 0, result.output
    for name in preset_names():
        line = next(line for line in result.output.splitlines() if line.split()[:1] == [name])
        assert len(line.split()) > 3, f"{name} has no description"
    assert {"paper", "no-reward", "no-condition", "sft", "openchat-3.5"} <= set(preset_names())


def test_rules_show_prints_a_file_that_loads_as_the_preset(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["rules", "show", "paper"])
    assert result.exit_code == 0, result.output
    copy = write(tmp_path, result.stdout, "mine.yaml")
    assert load_rules(copy).document == load_rules(resolve_rules("paper")).document


def test_a_rules_file_wins_over_a_preset_of_the_same_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "classes:\n  - name: mine\n    weight: 0.5\n", "paper")
    assert resolve_rules("paper") == Path("paper")
    assert load_rules(resolve_rules("paper")).classes[0].name == "mine"


def test_an_unknown_rules_name_is_one_line_listing_the_presets(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as caught:
        resolve_rules(str(tmp_path / "papr"))
    message = str(caught.value)
    assert "\n" not in message and "no such file" in message
    assert all(name in message for name in preset_names())
    shown = CliRunner().invoke(app, ["rules", "show", "papr"])
    assert shown.exit_code == 2 and "paper" in shown.output


@pytest.mark.parametrize(("text", "value"), [("1e-2", 0.01), ("1.5E1", 15.0), ("+2e0", 2.0)])
def test_exponent_weights_are_numbers_as_in_yaml_1_2(tmp_path: Path, text: str, value: float):
    # PyYAML alone (YAML 1.1) reads `1e-2` as the string '1e-2' and the schema refused it
    path = write(tmp_path, f"classes:\n  - name: a\n    weight: {text}\n")
    assert load_rules(path).classes[0].weight == value


def test_exponent_lookalike_text_stays_text(tmp_path: Path) -> None:
    path = write(tmp_path, "classes:\n  - name: a\n    weight: 1.0\n    condition: 1e5x\n")
    assert load_rules(path).classes[0].condition == "1e5x"
