"""Shared fixtures: paths to shipped fixtures and a generated raw sample."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def sample_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic raw dump the demo uses, at a size that keeps tests fast."""
    from sharegpt_tools.synthetic.dump import write_sample

    path = tmp_path_factory.mktemp("raw") / "sample.json"
    write_sample(path, n=600, seed=0)
    return path
