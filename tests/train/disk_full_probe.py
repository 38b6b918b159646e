"""crlft-train on a disk that fills up at one write, for the disk-full test.

Usage: python disk_full_probe.py WHERE DATA [CRLFT-TRAIN OPTIONS...]
WHERE is `checkpoint:step-N` (every file DeepSpeed writes for that checkpoint, through torch.save)
or `final` (the safetensors weights of final/). Such a write puts half of its bytes on disk and
then fails with ENOSPC, as a write onto a full disk does; everything else runs as usual.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from pathlib import Path

import torch


def fill_up(path: str | os.PathLike, payload: bytes) -> None:
    Path(path).write_bytes(payload[: len(payload) // 2])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def fail_checkpoint(tag: str) -> None:
    real_save = torch.save

    def save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        if isinstance(f, str | os.PathLike) and f"{os.sep}{tag}{os.sep}" in str(f):
            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            fill_up(f, buffer.getvalue())
        real_save(obj, f, *args, **kwargs)

    torch.save = save  # DeepSpeed's TorchCheckpointEngine calls torch.save at write time


def fail_final() -> None:
    import safetensors.torch
    import transformers.modeling_utils

    real_save = transformers.modeling_utils.safe_save_file

    def save(tensors: dict, filename: str, metadata: dict | None = None) -> None:
        if ".final.tmp" in str(filename):
            fill_up(filename, safetensors.torch.save(tensors, metadata))
        real_save(tensors, filename, metadata=metadata)

    transformers.modeling_utils.safe_save_file = save  # what save_pretrained calls


def main() -> None:
    where, *arguments = sys.argv[1:]
    if where == "final":
        fail_final()
    else:
        fail_checkpoint(where.removeprefix("checkpoint:"))
    from crlft_train.cli import main as crlft_train

    sys.argv = ["crlft-train", *arguments]
    crlft_train()


if __name__ == "__main__":
    main()
