"""Linear + cross-entropy without the logits: the (tokens x vocab) float32 logits of the LM head are
the largest tensor of a small model's step (50304 x 16k tokens = 3.2 GB), written and read twice.

`chunked_linear_cross_entropy` runs the head and the loss a chunk of rows at a time and computes the
gradients of the hidden states and of the head's weight in the same pass (softmax minus one-hot, times
the hidden rows), so only one chunk's logits ever exist; backward scales the saved gradients. The same
idea as Liger's and Apple's cut-cross-entropy kernels, in plain PyTorch (it runs under torch.compile);
`liger_linear_cross_entropy` uses Liger's fused kernel where liger-kernel is installed (CUDA).
Tested on CPU against `F.cross_entropy(h @ W.T)`: the same loss and gradients within 1e-5.
"""

from __future__ import annotations

import functools
import logging

import torch

log = logging.getLogger("crawl2model")


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_rows: int,
                ignore_index: int) -> torch.Tensor:  # fmt: skip
        valid = targets != ignore_index
        n = valid.sum().clamp(min=1).to(torch.float32)
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        for start in range(0, hidden.shape[0], chunk_rows):
            h, t, keep = (
                hidden[start : start + chunk_rows],
                targets[start : start + chunk_rows],
                valid[start : start + chunk_rows],
            )
            logits = (h @ weight.t()).float()
            lse = torch.logsumexp(logits, dim=-1)
            safe = torch.where(keep, t, torch.zeros_like(t))
            picked = logits.gather(1, safe[:, None]).squeeze(1)
            loss = loss + ((lse - picked) * keep).sum()
            # d loss / d logits = (softmax - onehot) / n on kept rows, 0 on ignored ones.
            grad = torch.softmax(logits, dim=-1)
            grad.scatter_add_(1, safe[:, None], -torch.ones_like(picked)[:, None])
            grad = grad * (keep[:, None] / n)
            grad_hidden[start : start + chunk_rows] = (grad.to(weight.dtype) @ weight).to(hidden.dtype)
            grad_weight += grad.t() @ h.float()
        ctx.save_for_backward(grad_hidden, grad_weight.to(weight.dtype))
        return loss / n

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        return (
            grad_hidden * grad_output.to(grad_hidden.dtype),
            grad_weight * grad_output.to(grad_weight.dtype),
            None,
            None,
            None,
        )


def chunked_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                                 chunk_rows: int = 4096, ignore_index: int = -100) -> torch.Tensor:  # fmt: skip
    """Mean cross-entropy of `hidden @ weight.T` against `targets` (rows x dim, vocab x dim, rows)."""
    return _ChunkedLinearCrossEntropy.apply(hidden, weight, targets, chunk_rows, ignore_index)


def liger_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

    return liger_fused_linear_cross_entropy(hidden, weight, targets)


def liger_available() -> bool:
    try:
        import liger_kernel.transformers.functional  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


@functools.cache
def liger_usable(device: str) -> bool:
    """Liger is installed and its kernel runs here: one tiny forward and backward on `device`, since a
    Triton kernel can fail only when it is first compiled (a Triton or driver it was not built for)."""
    if not liger_available():
        return False
    try:
        g = torch.Generator(device=device).manual_seed(0)
        hidden = torch.randn(16, 64, device=device, generator=g, requires_grad=True)
        weight = torch.randn(128, 64, device=device, generator=g, requires_grad=True)
        liger_linear_cross_entropy(hidden, weight, torch.arange(16, device=device)).backward()
    except Exception as error:  # noqa: BLE001 -- any failure means: use our own kernel instead
        log.warning("train: Liger's fused loss failed a trial on %s (%s); using the chunked loss", device, error)
        return False
    return True
