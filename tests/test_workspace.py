"""workspace: stages are written atomically and end up as ordinary folders."""

from __future__ import annotations

import os
from pathlib import Path

from sharegpt_tools.workspace import Workspace


def test_a_stage_folder_gets_the_users_umask_not_mkdtemps_private_mode(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    previous = os.umask(0o022)
    try:
        with ws.writing_stage("clean") as out:
            (out / "conversations.parquet").write_bytes(b"")
    finally:
        os.umask(previous)
    assert ws.stage("clean").stat().st_mode & 0o777 == 0o755
    assert not list(ws.root.glob(".clean.tmp-*"))
