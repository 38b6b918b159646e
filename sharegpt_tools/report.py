"""`sharegpt-tools report`: one self-contained HTML page (and PNGs) to look at a workspace.

What each stage did to the data (rejects by reason, models, languages, duplicate clusters), what
the classes look like (turns, lengths, tokens, supervised-token share, long-conversation handling)
and, given a run folder, how training went (loss per class, learning rate, tokens/s). Charts are
drawn with matplotlib and embedded as base64 PNGs, so the page opens offline and runs no script;
the same PNGs are written beside it for READMEs. Stages that do not exist yet are left out with a
note, so the report works from the first `clean` on.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crlft_contract import CLASS_LOSS_PREFIX, VAL_CLASS_LOSS_PREFIX, Metric
from sharegpt_tools.records import Reason
from sharegpt_tools.workspace import CONVERSATIONS, MANIFEST, REJECTS, Workspace

KEPT_ID = re.compile(r"kept id (\S+)")
DUPLICATE_REASONS = (Reason.EXACT_DUPLICATE, Reason.NEAR_DUPLICATE)
TOP_LANGUAGES = 15


@dataclass
class Chart:
    name: str  # file stem of the PNG
    title: str
    png: bytes


@dataclass
class Section:
    title: str
    notes: list[str] = field(default_factory=list)
    tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)


class ReportError(Exception):
    """Nothing to report on (no stage at all): one line."""


# --- charts ---------------------------------------------------------------------------------------


def pyplot() -> object:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    return plt


def png(figure: object) -> bytes:
    plt = pyplot()
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def bar_chart(name: str, title: str, counts: dict[str, float], xlabel: str = "") -> Chart:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, max(2.2, 0.32 * len(counts) + 1)))
    labels = list(counts)[::-1]
    axes.barh(labels, [counts[k] for k in labels], color="#4c72b0")
    axes.set_xlabel(xlabel)
    axes.set_title(title)
    axes.grid(axis="x", alpha=0.3)
    return Chart(name, title, png(figure))


def histograms(
    name: str, title: str, by_class: dict[str, np.ndarray], xlabel: str, log: bool = False
) -> Chart:
    """Overlaid per-class distributions, each normalised (classes differ in size by 10x).

    Log-scaled bins for lengths; one bin per integer otherwise (turn counts)."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 3.4))
    values = np.concatenate([v for v in by_class.values() if len(v)] or [np.zeros(1)])
    if log:
        bins = np.geomspace(max(values.min(), 1), max(values.max(), 2), 40)
    else:
        bins = np.arange(values.min(), values.max() + 2) - 0.5
    for label, data in by_class.items():
        if len(data):
            axes.hist(data, bins=bins, histtype="step", density=True, linewidth=1.6, label=label)
    if log:
        axes.set_xscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("share (density)")
    axes.set_title(title)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return Chart(name, title, png(figure))


def line_chart(
    name: str, title: str, series: dict[str, tuple[list[float], list[float]]], ylabel: str
) -> Chart:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 3.4))
    for label, (xs, ys) in series.items():
        axes.plot(xs, ys, label=label, linewidth=1.3, marker="o" if len(xs) < 30 else None)
    axes.set_xlabel("step")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    if len(series) > 1:
        axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return Chart(name, title, png(figure))


# --- sections -------------------------------------------------------------------------------------


def count_rows(counts: dict[str, int], total: int) -> list[list[str]]:
    return [[k, f"{v:,}", f"{v / total:.1%}" if total else "—"] for k, v in counts.items()]


def clean_section(ws: Workspace) -> Section:
    section = Section("clean: what was kept and why rows were rejected")
    manifest = ws.manifest("clean")
    counts = manifest["counts"]
    total = counts["in"]
    section.tables.append((
        ["rows", "count", "share"],
        count_rows({"in": total, "kept": counts["kept"], "rejected": counts["rejected"]}, total),
    ))  # fmt: skip
    reasons = dict(sorted(counts["rejected_by_reason"].items(), key=lambda kv: -kv[1]))
    if reasons:
        section.tables.append(
            (["reject reason", "rows", "share of input"], count_rows(reasons, total))
        )
        section.charts.append(bar_chart("rejects", "rejected rows by reason", reasons, "rows"))
    models = dict(sorted(counts["models"].items(), key=lambda kv: -kv[1]))
    section.charts.append(bar_chart("models", "kept conversations by model", models, "rows"))
    languages = sorted(counts["languages"].items(), key=lambda kv: -kv[1])
    top = dict(languages[:TOP_LANGUAGES])
    if len(languages) > TOP_LANGUAGES:
        top[f"{len(languages) - TOP_LANGUAGES} others"] = sum(
            v for _, v in languages[TOP_LANGUAGES:]
        )
    section.charts.append(bar_chart("languages", "kept conversations by language", top, "rows"))
    dedup = duplicate_clusters(ws.stage("clean") / REJECTS)
    if dedup:
        sizes = {f"{size} copies": clusters for size, clusters in sorted(dedup.items())}
        section.charts.append(
            bar_chart(
                "dedup_clusters",
                "duplicate clusters by size (kept row + its duplicates)",
                sizes,
                "clusters",
            )
        )
    return section


def duplicate_clusters(rejects: Path) -> dict[int, int]:
    """Cluster size (kept row + rejected copies) → number of clusters, from the reject details."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not rejects.is_file():
        return {}
    table = pq.read_table(rejects, columns=["reason", "detail"])
    wanted = pc.is_in(table.column("reason"), value_set=pa_strings(DUPLICATE_REASONS))
    details = table.filter(wanted).column("detail").to_pylist()
    kept = Counter(m.group(1) for d in details if d and (m := KEPT_ID.search(d)))
    return dict(Counter(copies + 1 for copies in kept.values()))


def pa_strings(values: tuple) -> object:
    import pyarrow as pa

    return pa.array([str(v) for v in values], pa.string())


def conversation_shapes(parquet: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per class: turns per conversation and characters per conversation.

    Read batch by batch: only three numbers per conversation stay in memory, not the text.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    classes, turns, chars = [], [], []
    for batch in pq.ParquetFile(parquet).iter_batches(columns=["class", "conversations"]):
        conversations = batch.column("conversations")
        lengths = pc.utf8_length(conversations.flatten().field("value")).to_numpy(
            zero_copy_only=False
        )
        offsets = conversations.offsets.to_numpy()
        running = np.concatenate([[0], np.cumsum(lengths)])
        starts, ends = offsets[:-1] - offsets[0], offsets[1:] - offsets[0]
        chars.append(running[ends] - running[starts])
        turns.append(ends - starts)
        classes.append(np.array(batch.column("class").to_pylist(), dtype=object))
    names, turns_all, chars_all = (np.concatenate(a) for a in (classes, turns, chars))
    return {
        str(name): {"turns": turns_all[names == name], "chars": chars_all[names == name]}
        for name in sorted(set(names))
    }


def classes_section(ws: Workspace) -> Section:
    stage = "subsampled" if (ws.stage("subsampled") / MANIFEST).is_file() else "labeled"
    section = Section(f"classes ({stage} stage): conversations, turns and lengths")
    manifest = ws.manifest("labeled")
    by_class = manifest["counts"]["classes"]
    rows = [
        [name, f"{c['conversations']:,}", f"{c['turns']:,}", f"{c['chars']:,}",
         f"{c['weight_min']:g}" + ("" if c["weight_min"] == c["weight_max"] else
                                    f"–{c['weight_max']:g}")]
        for name, c in by_class.items()
    ]  # fmt: skip
    section.tables.append((["class", "conversations", "turns", "characters", "weight"], rows))
    dropped = manifest["counts"].get("dropped", 0)
    if dropped:
        section.notes.append(f"{dropped:,} conversations matched no class and were dropped.")
    if stage == "subsampled":
        section.notes.append(
            "Distributions below are of the subsampled stage (what tokenize read)."
        )
    shapes = conversation_shapes(ws.stage(stage) / CONVERSATIONS)
    section.charts.append(histograms(
        "turns_per_class", "turns per conversation, by class",
        {k: v["turns"] for k, v in shapes.items()}, "turns",
    ))  # fmt: skip
    section.charts.append(histograms(
        "chars_per_class", "characters per conversation, by class",
        {k: v["chars"] for k, v in shapes.items()}, "characters (log scale)", log=True,
    ))  # fmt: skip
    return section


def tokens_section(ws: Workspace) -> Section:
    import datasets

    manifest = ws.manifest("tokenized")
    counts = manifest["counts"]
    section = Section("tokenized: tokens per class, supervision, long conversations")
    by_class = counts["by_class"]
    rows = [
        [name, f"{c['rows']:,}", f"{c['tokens']:,}", f"{c['supervised_tokens']:,}",
         f"{c['supervised_tokens'] / c['tokens']:.1%}" if c["tokens"] else "—"]
        for name, c in by_class.items()
    ]  # fmt: skip
    section.tables.append(
        (["class", "rows", "tokens", "supervised tokens", "supervised share"], rows)
    )
    section.charts.append(bar_chart(
        "tokens_per_class", "tokens per class", {k: c["tokens"] for k, c in by_class.items()},
        "tokens",
    ))  # fmt: skip
    share = {k: c["supervised_tokens"] / max(c["tokens"], 1) for k, c in by_class.items()}
    section.charts.append(
        bar_chart("supervised_share", "supervised-token share per class", share, "share")
    )
    long_keys = ("long_conversations", "split_conversations", "pieces_from_splits",
                 "truncated_conversations", "truncated_exchanges", "dropped_too_long",
                 "dropped_no_supervision_after_truncation")  # fmt: skip
    section.tables.append((
        [f"long conversations (--long {manifest.get('long')}, --max-length "
         f"{manifest.get('max_length')})", "count"],
        [[k.replace("_", " "), f"{counts.get(k, 0):,}"] for k in long_keys],
    ))  # fmt: skip
    train = datasets.load_from_disk(str(ws.stage("tokenized")))["train"]
    table = train.data.table  # the memory-mapped Arrow table: no Python list per row
    lengths = table.column("length").to_numpy()
    classes = np.asarray(table.column("class").to_pylist(), dtype=object)
    section.charts.append(histograms(
        "token_lengths", "tokens per row, by class",
        {str(c): lengths[classes == c] for c in sorted(set(classes))}, "tokens (log scale)",
        log=True,
    ))  # fmt: skip
    return section


def training_section(run_dir: Path) -> Section:
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        raise ReportError(f"{run_dir} has no metrics.jsonl: is it a crlft-train run folder?")
    records = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines()]
    step, loss, val_loss = Metric.STEP, Metric.LOSS, Metric.VAL_LOSS
    steps = {r[step]: r for r in records if loss in r}  # a resumed run: its last record wins
    validations = [r for r in records if val_loss in r]
    section = Section(f"training: {run_dir}")
    ordered = [steps[s] for s in sorted(steps)]

    def series(key: str, pool: list[dict]) -> tuple[list[float], list[float]]:
        points = [(r[step], r[key]) for r in pool if r.get(key) is not None]
        return [p[0] for p in points], [p[1] for p in points]

    def keys_of(pool: list[dict], prefix: str) -> list[str]:
        return sorted({k for r in pool for k in r if k.startswith(prefix)})

    section.charts.append(line_chart(
        "loss", "training loss (weighted) and mean CE per class",
        {"loss (weighted)": series(loss, ordered),
         **{k: series(k, ordered) for k in keys_of(ordered, CLASS_LOSS_PREFIX)}},
        "loss",
    ))  # fmt: skip
    if validations:
        val_keys = [val_loss, *keys_of(validations, VAL_CLASS_LOSS_PREFIX)]
        section.charts.append(line_chart(
            "validation", "validation loss", {k: series(k, validations) for k in val_keys}, "loss"
        ))  # fmt: skip
    section.charts.append(
        line_chart("lr", "learning rate", {"lr": series(Metric.LR, ordered)}, "lr")
    )
    section.charts.append(line_chart(
        "tokens_per_s", "throughput", {"tokens/s": series(Metric.TOKENS_PER_S, ordered)},
        "tokens/s",
    ))  # fmt: skip
    if ordered:
        last = ordered[-1]
        last_loss = "not finite" if last[loss] is None else f"{last[loss]:.4f}"  # NaN → null
        section.notes.append(
            f"{len(ordered)} steps; last loss {last_loss}, lr {last[Metric.LR]:.2e}; median "
            f"{np.median([r[Metric.TOKENS_PER_S] for r in ordered]):,.0f} tokens/s; packing "
            f"{np.mean([r.get(Metric.PACKING_EFFICIENCY, 0) for r in ordered]):.1%}."
        )
    return section


# --- the page -------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; } th { background: #f3f3f3; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } img { max-width: 530px; border: 1px solid #eee; }
.note { color: #555; } .missing { color: #a33; }
"""


def table_html(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def section_html(section: Section) -> str:
    parts = [f"<section><h2>{html.escape(section.title)}</h2>"]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in section.notes]
    parts += [table_html(h, r) for h, r in section.tables]
    figures = [
        f'<figure><img alt="{html.escape(c.title)}" data-chart="{c.name}" '
        f'src="data:image/png;base64,{base64.b64encode(c.png).decode()}"></figure>'
        for c in section.charts
    ]
    if figures:
        parts.append(f'<div class="charts">{"".join(figures)}</div>')
    return "".join(parts) + "</section>"


def page(title: str, sections: list[Section], missing: list[str]) -> str:
    notes = "".join(f'<p class="missing">{html.escape(m)}</p>' for m in missing)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f'<p class="note">made {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())} by '
        f"sharegpt-tools report</p>{notes}{''.join(section_html(s) for s in sections)}"
        "</body></html>"
    )


def build_sections(ws: Workspace, run_dir: Path | None) -> tuple[list[Section], list[str]]:
    builders = (
        ("clean", clean_section),
        ("labeled", classes_section),
        ("tokenized", tokens_section),
    )
    sections, missing = [], []
    for stage, build in builders:
        if (ws.stage(stage) / MANIFEST).is_file():
            sections.append(build(ws))
        else:
            missing.append(f"no {stage}/ stage in {ws.root} yet: its section is left out")
    if run_dir is not None:
        sections.append(training_section(run_dir))
    if not sections:
        raise ReportError(f"{ws.root} has no stage to report on: run `sharegpt-tools clean` first")
    return sections, missing


def write_report(
    ws: Workspace, out: Path, run_dir: Path | None = None, png_dir: Path | None = None
) -> tuple[Path, Path]:
    """The HTML page at `out` and one PNG per chart in `png_dir` (default: OUT's stem + _charts)."""
    sections, missing = build_sections(ws, run_dir)
    png_dir = png_dir or out.with_name(f"{out.stem}_charts")
    png_dir.mkdir(parents=True, exist_ok=True)
    for chart in (c for s in sections for c in s.charts):
        (png_dir / f"{chart.name}.png").write_bytes(chart.png)
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_name(f".{out.name}.tmp")
    temp.write_text(page(f"sharegpt-tools report: {ws.root}", sections, missing), encoding="utf-8")
    temp.replace(out)
    return out, png_dir
