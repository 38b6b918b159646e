"""RESULTS.md and its plots from a mixed-quality results.json (see run.py).

python benchmarks/mixed_quality/report.py benchmarks/.work/mixed_quality/full/results.json
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

TABLE2 = ("c-rlft", "no-reward", "no-condition", "sft", "only-expert", "only-sub-optimal")
FIG6 = ("gpt4-0.6", "gpt4-0.8", "c-rlft", "gpt35-0.6", "gpt35-0.8")
FIG7 = ("c-rlft", "before-assistant", "beginning")
LABELS = {  # what the c-rlft row means in each figure
    "Fig. 6: sub-sampling one class": {"c-rlft": "c-rlft (both classes at 1.0)"},
    "Fig. 7: where the tag goes": {"c-rlft": "before-speaker (c-rlft, the default)"},
}
TASKS = {
    "add": "{digits}-digit addition; the mistake makes the last digit of the sum one too high",
    "reverse": "writing random lowercase words ({letters[0]}-{letters[1]} letters) backwards; the "
    'mistake doubles the answer\'s last letter ("olleh" → "ollehh")',
}


def cell(values: list[float]) -> str:
    if not values:
        return "—"
    mean = statistics.mean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1%} ± {spread:.1%}"


def accuracy_row(name: str, entry: dict, condition: str = "expert") -> str:
    scores = entry["by"].get(condition, {})
    gap = entry.get("condition_gap")
    gap_text = f"{statistics.mean(gap):+.3f}" if gap else "—"
    return (
        f"| {name} | {cell(scores.get('accuracy', []))} | "
        f"{cell(scores.get('systematic_mistake', []))} | {gap_text} |"
    )


def curves(record: dict) -> dict[str, dict[int, list[float]]]:
    """variant → step → accuracies over seeds (expert condition)."""
    out: dict[str, dict[int, list[float]]] = {}
    for run in record["runs"]:
        for step, scores in run["curve"].items():
            out.setdefault(run["variant"], {}).setdefault(int(step), []).append(
                scores["expert"]["accuracy"]
            )
    return out


def plot_curves(record: dict, names: tuple[str, ...], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = curves(record)
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=110)
    for name in names:
        if name not in data:
            continue
        steps = sorted(data[name])
        means = [statistics.mean(data[name][s]) for s in steps]
        low = [min(data[name][s]) for s in steps]
        high = [max(data[name][s]) for s in steps]
        axes.plot(steps, means, marker="o", label=name)
        axes.fill_between(steps, low, high, alpha=0.15)
    axes.set_xlabel("training step")
    axes.set_ylabel("held-out exact match (expert tag)")
    axes.set_ylim(0, 1)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def curve_table(record: dict) -> list[str]:
    """Mean accuracy (expert tag) of every variant at every snapshot step."""
    data = curves(record)
    steps = sorted({step for by_step in data.values() for step in by_step})
    if not steps:
        return []
    lines = ["", "## Accuracy along training (expert tag, mean over seeds)", "",
             "| variant | " + " | ".join(f"step {s}" for s in steps) + " |",
             "| --- |" + " --- |" * len(steps)]  # fmt: skip
    for name, by_step in data.items():
        cells = [f"{statistics.mean(by_step[s]):.0%}" if s in by_step else "—" for s in steps]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def fresh_grid(record: dict) -> str:
    minutes = record.get("fresh_grid_min")
    return "(unknown)" if minutes is None else f"≈ {minutes:.0f} min"


def markdown(record: dict, plots: dict[str, str]) -> str:
    summary = record["summary"]
    settings = record["settings"]
    task = settings["task"]
    lines = [
        "# Mixed-quality benchmark: C-RLFT's ablations in miniature",
        "",
        f"Measured {record['date']} on {record['cpus']} CPUs; this invocation took "
        f"{record['wall_s'] / 60:.1f} min, the whole grid from scratch "
        f"{fresh_grid(record)} (Σ per-run training + evaluation / parallel jobs); "
        f"seeds {', '.join(map(str, settings['seeds']))}, {settings['steps']} steps per run "
        f"(batch ≤ {settings['batch_max_len']} tokens, lr {settings['lr']}).",
        "",
        f"Task: {TASKS[task.get('kind', 'add')].format(**task)}. {task['expert']:,} expert "
        f"(GPT-4, always right) and {task['sub_optimal']:,} sub-optimal (GPT-3.5) conversations, "
        f"{task['mistake_rate']:.0%} of which make the systematic mistake; "
        f"{task['held_out']} held-out prompts. Exact match of the greedy reply; "
        "'mistake' is the share of replies that make exactly the sub-optimal mistake; the "
        "condition gap is crlft-eval's loss(GPT-4 data | GPT3 tag) − loss(GPT-4 data | GPT4 tag).",
        "",
        "```bash",
        record["command"],
        "```",
        *(["", record["note"]] if record.get("note") else []),
        "",
        "## Table 2: variants (expert tag at inference, final step; mean ± std over seeds)",
        "",
        "| variant | accuracy | mistake | condition gap |",
        "| --- | --- | --- | --- |",
    ]
    lines += [accuracy_row(n, summary[n]) for n in TABLE2 if n in summary]
    if "c-rlft" in summary and "GPT3" in summary["c-rlft"]["by"]:
        lines += [
            "",
            "## Fig. 5: the C-RLFT model under each tag",
            "",
            "| prompted with | accuracy | mistake | condition gap |",
            "| --- | --- | --- | --- |",
            accuracy_row("GPT4 (expert)", summary["c-rlft"]),
            accuracy_row("GPT3 (sub-optimal)", summary["c-rlft"], "GPT3"),
        ]
    for title, names in (("Fig. 6: sub-sampling one class", FIG6),
                         ("Fig. 7: where the tag goes", FIG7)):  # fmt: skip
        present = [n for n in names if n in summary]
        if any(summary[n]["figure"] != "Table 2" for n in present):
            lines += ["", f"## {title}", "", "| variant | accuracy | mistake | condition gap |",
                      "| --- | --- | --- | --- |"]  # fmt: skip
            lines += [accuracy_row(LABELS[title].get(n, n), summary[n]) for n in present]
    lines += curve_table(record)
    for caption, file in plots.items():
        lines += ["", f"![{caption}]({file})"]
    return "\n".join(lines) + "\n"


def write_report(record: dict, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    plots = {}
    for caption, names, file in (
        ("accuracy against steps, Table 2 variants", TABLE2, "curves_table2.png"),
        (
            "accuracy against steps, sub-sampling and tag position",
            FIG6 + FIG7[1:],
            "curves_fig6_7.png",
        ),
    ):
        shown = {run["variant"] for run in record["runs"]} & set(names)
        if shown - {"c-rlft"} or (shown and names == TABLE2):
            plot_curves(record, names, folder / file, caption)
            plots[caption] = file
    out = folder / "RESULTS.md"
    out.write_text(markdown(record, plots), encoding="utf-8")
    return out


if __name__ == "__main__":
    results = Path(sys.argv[1])
    print(write_report(json.loads(results.read_text()), Path(__file__).resolve().parent))
