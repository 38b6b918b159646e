"""A cached virtualenv with an older transformers, for tests that load our folders there.

Users serve and evaluate models with whatever transformers they have; a folder we write must load
and encode the same in 4.x as in 5.x. The virtualenv is built once per version from PyPI (about a
minute) and reused while its `.ready` marker is there; `CRLFT_TEST_VENVS` moves the cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

VENV_ROOT = Path(os.environ.get("CRLFT_TEST_VENVS", Path.home() / ".cache" / "crlft-test-venvs"))


def old_transformers(version: str) -> Path:
    """The python of a cached virtualenv with transformers `version`.*, built on first use."""
    venv = VENV_ROOT / f"tf{version}"
    python = venv / "bin" / "python"
    if (venv / ".ready").is_file():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    packages = [f"transformers=={version}.*", "sentencepiece", "protobuf", "jinja2"]
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run([*pip, *packages], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"pip could not build the transformers {version} venv:\n{done.stderr[-2000:]}")
    (venv / ".ready").write_text(" ".join(packages), encoding="utf-8")
    return python
