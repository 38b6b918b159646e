"""`sharegpt-tools sample`: write the synthetic raw ShareGPT dump used by the demo and tests."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from sharegpt_tools.cli.common import console


class SampleLayout(StrEnum):
    """The dump's layout: sharegpt_tools.synthetic.collections.LAYOUTS and the ShareGPT one."""

    SHAREGPT = "sharegpt"
    WILDCHAT = "wildchat"
    LMSYS = "lmsys"


def sample(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the dump.", dir_okay=False)
    ] = Path("data/raw/sample.json"),
    n: Annotated[int, typer.Option("--n", min=1, help="Number of raw rows to generate.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 0,
    layout: Annotated[
        SampleLayout,
        typer.Option(
            help="sharegpt: the 2023 ShareGPT dump (a JSON array); wildchat or lmsys: rows in "
            "those collections' layouts, model spellings and moderation fields (JSON lines, or "
            "Parquet for a .parquet --output).",
        ),
    ] = SampleLayout.SHAREGPT,
) -> None:
    """Generate a realistic synthetic raw dump, deterministically: the ShareGPT one has ChatGPT
    HTML, several languages, GPT-4/GPT-3.5 model fields, duplicates and malformed rows."""
    output.parent.mkdir(parents=True, exist_ok=True)
    if layout == SampleLayout.SHAREGPT:
        from sharegpt_tools.synthetic.dump import write_sample

        written = write_sample(output, n=n, seed=seed).n
    else:
        from sharegpt_tools.synthetic.collections import write_collection

        written = write_collection(output, layout.value, n=n, seed=seed)
    console.print(f"wrote {written:,} {layout} rows to [bold]{output}[/] (seed {seed})")
