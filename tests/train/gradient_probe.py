"""Write the gradient of one C-RLFT step, for the rank-equivalence test (run by torchrun).

Usage: python gradient_probe.py DATA MODEL_CONFIG OUT.pt INDEX [INDEX ...]
The step's global batch is the given train-split indices, dealt to the ranks in order (two
ranks: the first half to rank 0, the second to rank 1). Rank 0 saves every parameter's gradient.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from crlft_train.config import TrainConfig
from crlft_train.train import backward, setup


def main() -> None:
    data, model_config, out, *indices = sys.argv[1:]
    run = setup(TrainConfig(data=Path(data), model_config=model_config, lr=1e-3, seed=0))
    rows = [int(i) for i in indices]
    share = len(rows) // run.world
    bins = [rows[r * share : (r + 1) * share] for r in range(run.world)]
    backward(run, bins)
    if run.rank == 0:
        grads = {n: p.grad.detach().clone() for n, p in run.engine.module.named_parameters()}
        torch.save(grads, out)


if __name__ == "__main__":
    main()
