"""Variable-length ("varlen") attention over a packed row, for Hugging Face models.

A packed micro-batch is one row of T tokens holding several sequences. With varlen attention the
model runs on that row as it is: no padding, one shape per step, and attention restricted to each
sequence by the cumulative sequence offsets `cu_seq_lens` (what flash-attention calls them). On
CUDA the kernel is PyTorch's own flash-attention varlen (`torch.nn.attention.varlen`), so no
`flash-attn` build is needed; elsewhere a reference kernel runs SDPA sequence by sequence, which
keeps the same code path testable on a CPU.

The function is registered in transformers' `AttentionInterface` under `VARLEN`; transformers builds
no attention mask for an implementation it has no mask function for, and passes our keyword
arguments (`cu_seq_lens_q`, `max_length_q`) through the model to every attention layer.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable

import torch

VARLEN = "crlft_varlen"


def torch_varlen_kernel() -> Callable | None:
    """PyTorch's flash-attention varlen function, or None on versions without it."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def varlen_available(device: torch.device) -> bool:
    """Whether packed rows can run with the fast kernel on this device (CUDA + torch's varlen)."""
    return device.type == "cuda" and torch_varlen_kernel() is not None


def register_varlen_attention() -> str:
    """Make `attn_implementation=VARLEN` known to transformers; returns the name."""
    from transformers import AttentionInterface

    AttentionInterface.register(VARLEN, varlen_attention_forward)
    return VARLEN


def varlen_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """transformers' attention signature: q/k/v [1, heads, T, dim] → output [1, T, heads, dim]."""
    if query.shape[0] != 1 or "cu_seq_lens_q" not in kwargs:
        raise ValueError(
            f"{VARLEN} attention runs one packed row with cu_seq_lens_q; got batch "
            f"{query.shape[0]} (use the model with attn_implementation='sdpa' for padded batches)"
        )
    offsets = kwargs["cu_seq_lens_q"]
    longest = int(kwargs["max_length_q"])
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # [T, heads, dim]
    groups = q.shape[1] // k.shape[1]
    if q.is_cuda and torch_varlen_kernel() is not None:
        out = flash_varlen(q, k, v, offsets, longest, scaling, groups)
    else:
        out = reference_varlen(q, k, v, offsets, scaling, groups)
    return out.unsqueeze(0), None


def flash_varlen(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    offsets: torch.Tensor,
    longest: int,
    scaling: float | None,
    groups: int,
) -> torch.Tensor:
    kernel = torch_varlen_kernel()
    parameters = inspect.signature(kernel).parameters
    options: dict = {"scale": scaling}
    if "window_size" in parameters:  # torch ≥ 2.12 spells causal as a (-1, 0) window
        options["window_size"] = (-1, 0)
    else:
        options["is_causal"] = True
    if groups > 1:
        if "enable_gqa" in parameters:
            options["enable_gqa"] = True
        else:
            k, v = (t.repeat_interleave(groups, dim=1) for t in (k, v))
    offsets = offsets.to(device=q.device, dtype=torch.int32)
    return kernel(q, k, v, offsets, offsets, longest, longest, **options)


def reference_varlen(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    offsets: torch.Tensor,
    scaling: float | None,
    groups: int,
) -> torch.Tensor:
    """Causal SDPA sequence by sequence: the definition the fast kernel must match."""
    bounds = offsets.tolist()
    pieces = []
    for start, end in itertools.pairwise(bounds):
        qs, ks, vs = (t[start:end].transpose(0, 1) for t in (q, k, v))  # [heads, L, dim]
        if groups > 1:
            ks, vs = (t.repeat_interleave(groups, dim=0) for t in (ks, vs))
        out = torch.nn.functional.scaled_dot_product_attention(
            qs, ks, vs, is_causal=True, scale=scaling
        )
        pieces.append(out.transpose(0, 1))
    return torch.cat(pieces)


def varlen_inputs(lengths: list[int], device: torch.device) -> dict:
    """The keyword arguments a packed row's forward passes down to `varlen_attention_forward`."""
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    offsets[1:] = torch.cumsum(torch.tensor(lengths, dtype=torch.int32), 0)
    offsets = offsets.to(device)
    longest = max(lengths)
    return {
        "cu_seq_lens_q": offsets,
        "cu_seq_lens_k": offsets,
        "max_length_q": longest,
        "max_length_k": longest,
    }
