"""Write the gradient and the update of one C-RLFT optimiser step, for the rank- and
accumulation-equivalence tests (run directly, or by torchrun).

Usage: python gradient_probe.py DATA MODEL_CONFIG OUT.pt BATCH_TOKENS INDEX [INDEX ...]
The step's global batch is the given train-split indices. BATCH_TOKENS 0 trains one micro-batch
per rank; otherwise it is --batch-tokens (with --batch-max-len 8192), so that each rank
accumulates k micro-batches. The indices are cut in order into ranks × k micro-batches, rank r
training every ranks-th one (as the sampler deals them). Rank 0 saves every parameter's gradient
(`grad/NAME`, summed over the micro-batches and averaged over ranks) and its value after the
optimiser step (`param/NAME`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from crlft_train.config import TrainConfig
from crlft_train.train import backward, setup


def main() -> None:
    data, model_config, out, batch_tokens, *indices = sys.argv[1:]
    config = TrainConfig(
        data=Path(data), model_config=model_config, lr=1e-3, seed=0,
        batch_tokens=int(batch_tokens) or None,
    )  # fmt: skip
    run = setup(config)
    rows = [int(i) for i in indices]
    slots = run.world * run.accumulation
    share = len(rows) // slots
    step = [rows[s * share : (s + 1) * share] for s in range(slots)]
    backward(run, step)
    module = run.engine.module
    grads = {f"grad/{n}": p.grad.detach().clone() for n, p in module.named_parameters()}
    run.engine.step()
    if run.rank == 0:
        params = {f"param/{n}": p.detach().clone() for n, p in module.named_parameters()}
        torch.save({**grads, **params}, out)


if __name__ == "__main__":
    main()
