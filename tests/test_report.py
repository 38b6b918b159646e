"""sharegpt-tools report: the page is checked in a real headless Chromium (Debian's, through
Selenium), and the numbers behind the charts are checked directly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tokenized_fixtures import toy_tokenizer  # noqa: F401

from sharegpt_tools.clean.options import CleanOptions
from sharegpt_tools.clean.pipeline import run_clean
from sharegpt_tools.label.presets import PRESET_DIR as PRESETS
from sharegpt_tools.label.rules import load_rules
from sharegpt_tools.label.stage import run_label
from sharegpt_tools.report import duplicate_clusters, write_report
from sharegpt_tools.tokenize.stage import TokenizeOptions, run_tokenize
from sharegpt_tools.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from report_screenshot import BrowserMissing, chromium_driver  # noqa: E402


@pytest.fixture(scope="module")
def workspace(
    sample_raw: Path,
    toy_tokenizer: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Workspace:
    """The sample through clean → label → tokenize, and a run folder's metrics.jsonl."""
    ws = Workspace(tmp_path_factory.mktemp("report") / "data")
    run_clean([sample_raw], ws, CleanOptions(workers=1))
    run_label(ws, load_rules(PRESETS / "paper.yaml"))
    run_tokenize(ws, TokenizeOptions(tokenizer=toy_tokenizer, max_length=512, val_fraction=0.05))
    run = ws.root.parent / "run"
    run.mkdir()
    records = [
        {"step": s, "loss": 3 / s, "loss/gpt4": 2 / s, "loss/gpt35": None if s == 2 else 4 / s,
         "lr": 1e-3, "tokens_per_s": 1000.0 + s, "packing_efficiency": 0.99}
        for s in range(1, 6)
    ] + [{"step": 5, "val/loss": 0.7, "val/loss/gpt4": 0.5, "val/loss/gpt35": 0.9}]  # fmt: skip
    (run / "metrics.jsonl").write_text("\n".join(map(json.dumps, records)) + "\n")
    return ws


def browser() -> object:
    try:
        return chromium_driver()
    except BrowserMissing as exc:
        pytest.fail(str(exc))


def test_the_report_loads_in_chromium_with_every_chart(
    workspace: Workspace, tmp_path: Path
) -> None:
    page, charts = write_report(
        workspace, tmp_path / "report.html", workspace.root.parent / "run", tmp_path / "png"
    )
    pngs = sorted(p.stem for p in charts.glob("*.png"))
    expected = {"rejects", "models", "languages", "dedup_clusters", "turns_per_class",
                "chars_per_class", "tokens_per_class", "supervised_share", "token_lengths",
                "loss", "validation", "lr", "tokens_per_s"}  # fmt: skip
    assert expected <= set(pngs)
    driver = browser()
    try:
        driver.get(page.as_uri())
        shown = driver.execute_script(
            "return Array.from(document.images).map(i => [i.dataset.chart, i.complete && "
            "i.naturalWidth > 0 && i.naturalHeight > 0])"
        )
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        headings = [h.text for h in driver.find_elements("tag name", "h2")]
        driver.save_screenshot(str(tmp_path / "screenshot.png"))
    finally:
        driver.quit()
    assert errors == []
    assert sorted(name for name, _ in shown) == pngs  # one <img> per chart, all decoded
    assert all(ok for _, ok in shown)
    assert [h.split(":")[0] for h in headings] == [
        "clean", "classes (labeled stage)", "tokenized", "training"
    ]  # fmt: skip
    assert (tmp_path / "screenshot.png").stat().st_size > 10_000


def test_duplicate_clusters_count_the_kept_row_and_its_copies(tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.parquet"
    reasons = ["exact_duplicate", "near_duplicate", "exact_duplicate", "too_short"]
    details = ["same text as kept id a", "near duplicate of kept id a (Jaccard 0.91)",
               "same text as kept id b", "1 turn, 2 needed"]  # fmt: skip
    pq.write_table(pa.table({"reason": reasons, "detail": details}), rejects)
    assert duplicate_clusters(rejects) == {3: 1, 2: 1}  # a + 2 copies; b + 1 copy


def test_a_workspace_without_stages_is_one_readable_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sharegpt_tools", "report", "-w", str(tmp_path / "empty")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no stage to report on" in done.stdout + done.stderr
