"""Workspace stage folders, manifests, fingerprints and atomic writes.

A workspace (default `./data`) holds one folder per stage. A stage is written into a hidden
temporary folder beside its final place and renamed into place only when complete, so an
interrupted run leaves the previous stage intact and never a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

STAGES = ("raw", "clean", "labeled", "subsampled", "tokenized")
MANIFEST = "manifest.json"


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root

    def stage(self, name: str) -> Path:
        return self.root / name

    def manifest(self, name: str) -> dict:
        path = self.stage(name) / MANIFEST
        return json.loads(path.read_text(encoding="utf-8"))

    @contextmanager
    def writing_stage(self, name: str) -> Iterator[Path]:
        """Yield a temporary folder; on success it atomically replaces the stage folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=self.root))
        try:
            yield temp
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        replace_dir(temp, self.stage(name))


def replace_dir(new: Path, final: Path) -> None:
    """Swap `new` into `final`: two renames, so `final` is always a complete stage."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
        new.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        new.rename(final)


def write_json_atomic(path: Path, obj: object) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    os.replace(temp, path)


def fingerprint(obj: object) -> str:
    """A short stable hash of any JSON-able description (inputs, options, parent stage)."""
    data = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()[:16]
