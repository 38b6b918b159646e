"""The LM head's cross-entropy without the [tokens × vocab] logits.

With a 128k vocabulary (Llama-3, Tekken) the fp32 logits of a 16k-token micro-batch are 8 GB,
more than the rest of a 7B step's activations. `linear_cross_entropy` computes the per-token CE
of `hidden @ weightᵀ` a chunk of tokens at a time and keeps only each token's log-sum-exp; its
backward recomputes each chunk's logits, so at most `chunk × vocab` logits exist at once, in the
forward and in the backward. Values and gradients equal the plain `F.cross_entropy(hidden @
weightᵀ)` (tested); the weighting (Σ w·CE) stays with the caller (`loss.weighted_sums`).
"""

from __future__ import annotations

from typing import Any

import torch

# Logits held at once: 2^26 fp32 values = 256 MiB (and as much for their softmax in backward).
CHUNK_ELEMENTS = 1 << 26


def default_chunk(vocab_size: int) -> int:
    """Tokens per chunk so that a chunk's logits stay within CHUNK_ELEMENTS."""
    return max(1, CHUNK_ELEMENTS // max(1, vocab_size))


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int | None = None
) -> torch.Tensor:
    """Per-token cross-entropy [K] (float32; float64 for float64 inputs) of the logits
    `hidden [K, H] @ weight [V, H]ᵀ` against `targets [K]`, never holding more than `chunk`
    tokens' logits."""
    return ChunkedLinearCrossEntropy.apply(
        hidden, weight, targets, chunk or default_chunk(weight.shape[0])
    )


def accumulation_dtype(hidden: torch.Tensor) -> torch.dtype:
    """float32 for half-precision and fp32 models (as the plain path's `.float()`), float64 for
    float64 inputs."""
    return torch.promote_types(hidden.dtype, torch.float32)


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int
    ) -> torch.Tensor:
        count = hidden.shape[0]
        wide = accumulation_dtype(hidden)
        ce = torch.empty(count, dtype=wide, device=hidden.device)
        lse = torch.empty_like(ce)
        for start in range(0, count, chunk):
            part = slice(start, start + chunk)
            logits = (hidden[part] @ weight.T).to(wide)  # the model's dtype, then fp32 as the CE
            lse[part] = torch.logsumexp(logits, dim=-1)
            ce[part] = lse[part] - logits.gather(1, targets[part, None]).squeeze(1)
        ctx.save_for_backward(hidden, weight, targets, lse)
        ctx.chunk = chunk
        return ce

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_ce: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        hidden, weight, targets, lse = ctx.saved_tensors
        want_hidden, want_weight = ctx.needs_input_grad[:2]
        grad_hidden = torch.empty_like(hidden) if want_hidden else None
        wide = accumulation_dtype(hidden)
        # A frozen head (LoRA) needs no [V, H] gradient: none is allocated.
        grad_weight = (
            torch.zeros(weight.shape, dtype=wide, device=weight.device) if want_weight else None
        )
        for start in range(0, hidden.shape[0], ctx.chunk):
            part = slice(start, start + ctx.chunk)
            # d CE / d logits = softmax − onehot(target), scaled by the incoming gradient.
            grad_logits = torch.exp((hidden[part] @ weight.T).to(wide) - lse[part, None])
            rows = torch.arange(grad_logits.shape[0], device=grad_logits.device)
            grad_logits[rows, targets[part]] -= 1
            grad_logits *= grad_ce[part, None].to(wide)
            if want_hidden:
                grad_hidden[part] = (grad_logits.to(weight.dtype) @ weight).to(hidden.dtype)
            if want_weight:
                grad_weight += grad_logits.T @ hidden[part].to(wide)
        return grad_hidden, grad_weight.to(weight.dtype) if want_weight else None, None, None
