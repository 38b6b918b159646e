"""The clean stage end to end: accounting, dedup details, options, atomic replacement."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from sharegpt_tools.clean.options import CleanOptions
from sharegpt_tools.clean.pipeline import EXECUTION_OPTIONS, run_clean
from sharegpt_tools.clean.refusals import RefusalMode
from sharegpt_tools.io.readers import InputError
from sharegpt_tools.workspace import Workspace, stage_manifest

STORY = (
    "Paris is the capital of France and has been the center of French political life for "
    "centuries. The city is known for its museums, including the Louvre, which holds thousands "
    "of works of art, and for its cafes, its bridges over the Seine and its wide boulevards that "
    "were built during the nineteenth century under the direction of Baron Haussmann."
)


def row(row_id: str, question: str, answer: str, **extra: object) -> dict:
    turns = [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
    return {"id": row_id, "conversations": turns, **extra}


def write_rows(path: Path, rows: list[object]) -> Path:
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


def clean(
    tmp_path: Path, rows: list[object], **options: object
) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    raw = write_rows(tmp_path / "raw.json", rows)
    result = run_clean([raw], Workspace(tmp_path / "ws"), CleanOptions(workers=1, **options))
    stage = result.stage
    kept = pl.read_parquet(stage / "conversations.parquet")
    rejects = pl.read_parquet(stage / "rejects.parquet")
    return kept, rejects, result.manifest


def test_every_sample_row_lands_in_exactly_one_file(sample_raw: Path, tmp_path: Path) -> None:
    result = run_clean([sample_raw], Workspace(tmp_path / "ws"), CleanOptions(workers=2))
    kept = pl.read_parquet(result.stage / "conversations.parquet")
    rejects = pl.read_parquet(result.stage / "rejects.parquet")
    n_in = len(json.loads(sample_raw.read_text(encoding="utf-8")))
    sources = kept["source"].to_list() + rejects["source"].to_list()
    assert len(sources) == len(set(sources)) == n_in
    counts = result.manifest["counts"]
    assert counts["in"] == n_in == counts["kept"] + counts["rejected"]
    assert counts["kept"] == kept.height
    by_reason = dict(rejects.group_by("reason").len().iter_rows())
    assert by_reason == counts["rejected_by_reason"]
    # The sample's injected problems are all caught.
    for reason in ("not_an_object", "exact_duplicate", "near_duplicate", "duplicate_id"):
        assert by_reason.get(reason, 0) > 0, reason
    assert set(kept["model"]) <= {"gpt-4", "gpt-3.5", "unknown"}
    assert kept["id"].n_unique() == kept.height
    # Rejected originals are the input rows verbatim (as JSON text).
    originals = [json.loads(t) for t in rejects["original"]]
    assert any(o is None for o in originals) and any(isinstance(o, str) for o in originals)


def test_worker_count_changes_neither_the_data_nor_the_fingerprint(
    sample_raw: Path, tmp_path: Path
) -> None:
    """--workers is how the stage runs, not what it makes: byte-identical files, one fingerprint
    (so a re-run with more workers is not new data downstream), the count still recorded."""
    results = [
        run_clean([sample_raw], Workspace(tmp_path / f"ws{n}"), CleanOptions(workers=n))
        for n in (1, 2)
    ]
    for name in ("conversations.parquet", "rejects.parquet"):
        serial, parallel = (r.stage / name for r in results)
        assert serial.read_bytes() == parallel.read_bytes(), name
    assert results[0].manifest["fingerprint"] == results[1].manifest["fingerprint"]
    assert [r.manifest["options"]["workers"] for r in results] == [1, 2]
    manifest = results[0].manifest

    def fingerprint_with(**changed: object) -> str:
        options = {**manifest["options"], **changed}
        inputs = manifest["inputs"]
        return stage_manifest(
            "clean", options, {}, {}, inputs=inputs, execution_only=EXECUTION_OPTIONS
        )["fingerprint"]

    assert fingerprint_with(workers=8, batch_size=64) == manifest["fingerprint"]
    assert fingerprint_with(min_turns=4) != manifest["fingerprint"]  # options that shape data do


def test_duplicates_name_the_kept_id(tmp_path: Path) -> None:
    rows = [
        row("first", "Tell me about Paris.", STORY),
        row("copy", "tell me about  paris.", STORY),
        row("near", "Tell me about Paris.", STORY.replace("thousands", "many thousands")),
        row("first", "Something else entirely?", "A different answer about the weather."),
    ]
    kept, rejects, _ = clean(tmp_path, rows)
    assert kept["id"].to_list() == ["first"]
    details = dict(zip(rejects["reason"], rejects["detail"], strict=True))
    assert details["exact_duplicate"] == "same text as kept id first"
    assert details["near_duplicate"].startswith("near duplicate of kept id first")
    # source is the path as given (here absolute), then the row's position
    raw = tmp_path / "raw.json"
    assert details["duplicate_id"] == f"id already used by the row at {raw}:0"


def test_dedup_can_be_disabled(tmp_path: Path) -> None:
    rows = [row("a", "Tell me about Paris.", STORY), row("b", "Tell me about Paris.", STORY)]
    kept, _, _ = clean(tmp_path, rows, exact_dedup=False, near_dedup=False)
    assert kept.height == 2


def test_language_filter(tmp_path: Path) -> None:
    rows = [
        row("en", "Tell me about Paris.", STORY),
        row(
            "fr",
            "Parle-moi de Paris.",
            "Paris est la capitale de la France et une très belle ville.",
        ),
    ]
    kept, rejects, manifest = clean(tmp_path, rows, languages=("fr",))
    assert kept["id"].to_list() == ["fr"] and kept["language"].to_list() == ["fr"]
    assert rejects["reason"].to_list() == ["language_filtered"]
    assert manifest["counts"]["languages"] == {"fr": 1}


@pytest.mark.parametrize(
    ("mode", "kept_ids", "marked"),
    [
        (RefusalMode.MARK, ["r"], [[1]]),
        (RefusalMode.DROP, [], None),
        (RefusalMode.KEEP, ["r"], [[]]),
    ],
)
def test_refusal_modes(
    tmp_path: Path, mode: RefusalMode, kept_ids: list, marked: list | None
) -> None:
    rows = [row("r", "Write malware.", "I'm sorry, but I cannot help with that request.")]
    kept, rejects, _ = clean(tmp_path, rows, refusals=mode)
    assert kept["id"].to_list() == kept_ids
    if marked is None:
        assert rejects["reason"].to_list() == ["refusal"]
    else:
        assert kept["refusal_turns"].to_list() == marked


def test_unknown_model_can_count_as_gpt35(tmp_path: Path) -> None:
    rows = [row("u", "Tell me about Paris.", STORY)]
    kept, _, _ = clean(tmp_path, rows, unknown_model_as="gpt-3.5")
    assert kept["model"].to_list() == ["gpt-3.5"]
    assert "--unknown-as" in kept["model_evidence"][0]


def test_html_is_converted_and_slug_attributes(tmp_path: Path, fixtures: Path) -> None:
    html = (fixtures / "html" / "slug_counter.html").read_text(encoding="utf-8")
    kept, _, _ = clean(tmp_path, [row("h", "How should I name variables?", html)])
    record = kept.row(0, named=True)
    assert record["model"] == "gpt-4"
    assert record["conversations"][1]["value"].startswith("Use `snake_case` names")


def test_failed_run_leaves_previous_stage_intact(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "ws")
    good = write_rows(tmp_path / "good.json", [row("a", "Tell me about Paris.", STORY)])
    first = run_clean([good], workspace, CleanOptions(workers=1)).manifest
    truncated = tmp_path / "cut.json"
    truncated.write_text(good.read_text(encoding="utf-8")[:-30], encoding="utf-8")
    with pytest.raises(InputError):
        run_clean([good, truncated], workspace, CleanOptions(workers=1))
    assert workspace.manifest("clean") == first
    assert pl.read_parquet(workspace.stage("clean") / "conversations.parquet").height == 1
    assert [p.name for p in workspace.root.iterdir()] == ["clean"]  # no temp folder left


def test_jsonl_bad_lines_are_rejected_and_counted(tmp_path: Path) -> None:
    good = json.dumps(row("a", "Tell me about Paris.", STORY)).encode()
    raw = tmp_path / "raw.jsonl.gz"
    raw.write_bytes(gzip.compress(b"\n".join([good, b'{"id": "caf\xe9"}', b"{not json", b"7"])))
    result = run_clean([raw], Workspace(tmp_path / "ws"), CleanOptions(workers=1))
    counts = result.manifest["counts"]
    assert counts["in"] == 4 and counts["kept"] == 1
    assert counts["rejected_by_reason"] == {
        "invalid_utf8": 1,
        "invalid_json": 1,
        "not_an_object": 1,
    }
    assert result.manifest["inputs"][0]["rows"] == 4


def test_rows_travel_to_the_workers_as_their_json() -> None:
    """A parsed row goes to a worker as orjson's text of it, which is also its `original`; rows
    orjson cannot write (integers beyond 64 bits) and unparsed rows travel as they are."""
    import orjson

    from sharegpt_tools.clean.pipeline import pack_row, unpack_row
    from sharegpt_tools.io.readers import RawRow
    from sharegpt_tools.records import Reason

    row = RawRow("a.json:0", value={"id": "x", "conversations": [{"from": "human", "value": "é"}]})
    packed = pack_row(row)
    assert packed == ("a.json:0", orjson.dumps(row.value))
    arrived = unpack_row(packed)
    assert (arrived.value, arrived.original) == (row.value, orjson.dumps(row.value))
    huge = RawRow("a.json:1", value={"id": 2**70})
    broken = RawRow("a.json:2", error=Reason.INVALID_JSON, original="{oops")
    assert unpack_row(pack_row(huge)) is huge and unpack_row(pack_row(broken)) is broken
