"""`sharegpt-tools sample`: write the synthetic raw ShareGPT dump used by the demo and tests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sharegpt_tools.cli.common import console


def sample(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the JSON array.", dir_okay=False)
    ] = Path("data/raw/sample.json"),
    n: Annotated[int, typer.Option("--n", min=1, help="Number of raw rows to generate.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 0,
) -> None:
    """Generate a realistic synthetic raw ShareGPT dump (ChatGPT HTML, several languages,
    GPT-4/GPT-3.5 model fields, duplicates and malformed rows), deterministically."""
    from sharegpt_tools.synthetic.dump import write_sample

    output.parent.mkdir(parents=True, exist_ok=True)
    stats = write_sample(output, n=n, seed=seed)
    console.print(f"wrote {stats.n:,} rows to [bold]{output}[/] (seed {seed})")
