"""The chunked LM-head cross-entropy against the plain one: values and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from crlft_train.chunked_ce import default_chunk, linear_cross_entropy


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_values_and_gradients_equal_the_plain_cross_entropy(chunk: int) -> None:
    torch.manual_seed(0)
    hidden = torch.randn(50, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(300, 16, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 300, (50,))
    upstream = torch.rand(50, dtype=torch.float64)  # per-token weights, as the trainer's Σ w·CE
    plain = F.cross_entropy(hidden @ weight.T, targets, reduction="none")
    (plain * upstream).sum().backward()
    expected = (hidden.grad.clone(), weight.grad.clone())
    hidden.grad = weight.grad = None
    chunked = linear_cross_entropy(hidden, weight, targets, chunk)
    (chunked * upstream).sum().backward()
    torch.testing.assert_close(chunked, plain, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(hidden.grad, expected[0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(weight.grad, expected[1], rtol=1e-9, atol=1e-12)


def test_only_the_inputs_that_need_it_get_a_gradient_and_chunks_fit_the_budget() -> None:
    hidden = torch.randn(5, 8, requires_grad=True)
    weight = torch.randn(40, 8)  # a frozen head (e.g. LoRA elsewhere)
    linear_cross_entropy(hidden, weight, torch.randint(0, 40, (5,)), 2).sum().backward()
    assert hidden.grad is not None and weight.grad is None
    assert default_chunk(128_256) == 523 and default_chunk(32_000) == 2097
