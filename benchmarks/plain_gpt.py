"""The baseline for training-step throughput: a minimal GPT in plain PyTorch, the loop people write
by hand (random batches from an in-memory tensor, AdamW, clip, step).

Same shape as ours: pre-norm RMSNorm, rotary position embeddings, SwiGLU (hidden 8/3 d rounded up to
64), SDPA causal attention, tied embeddings, so the parameter counts match. Written for this
benchmark only; nothing in the pipeline imports it.
"""

from __future__ import annotations

import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        hidden = 64 * math.ceil(8 * d / 3 / 64)
        self.heads = heads
        self.norm1, self.norm2 = nn.RMSNorm(d, eps=1e-6), nn.RMSNorm(d, eps=1e-6)
        self.qkv, self.proj = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.gate_up, self.down = nn.Linear(d, 2 * hidden, bias=False), nn.Linear(hidden, d, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).transpose(1, 3).unbind(2)

        def rotate(u: torch.Tensor) -> torch.Tensor:
            u1, u2 = u.chunk(2, dim=-1)
            return torch.cat([u1 * cos - u2 * sin, u1 * sin + u2 * cos], dim=-1)

        y = F.scaled_dot_product_attention(rotate(q), rotate(k), v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        gate, up = self.gate_up(self.norm2(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


class PlainGPT(nn.Module):
    def __init__(self, vocab: int, seq_len: int, layers: int, heads: int, d: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.norm = nn.RMSNorm(d, eps=1e-6)
        half = d // heads // 2
        freqs = 1.0 / 10000 ** (torch.arange(half) / half)
        angles = torch.outer(torch.arange(seq_len), freqs)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)
        cos, sin = self.cos[: idx.shape[1]], self.sin[: idx.shape[1]]
        for block in self.blocks:
            x = block(x, cos, sin)
        logits = self.norm(x) @ self.embed.weight.T  # tied embeddings
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


def tokens_per_second(
    vocab: int,
    seq_len: int,
    layers: int,
    heads: int,
    d: int,
    batch: int,
    steps: int,
    device: str = "cpu",
    compile: bool = False,
) -> dict[str, float]:
    """One measurement after warm-up steps: tokens/s and parameters. On CUDA the loop a careful person
    writes: bf16 autocast, TF32, fused AdamW, and torch.compile when asked.

    On CPU each step is synchronous, so each is timed alone and `tokens_per_s` is the median step (a
    spell where the machine is busy elsewhere moves the mean, not the median); `tokens_per_s_window`
    is the whole window. On CUDA timing a step alone would need a sync per step, so both are the window."""
    torch.manual_seed(0)
    model = PlainGPT(vocab, seq_len, layers, heads, d).to(device)
    use_bf16 = device == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = use_bf16
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, fused=use_bf16)
    data = torch.randint(0, vocab, (4096, seq_len + 1))
    forward = torch.compile(model) if compile else model

    def step() -> None:
        rows = data[torch.randint(0, len(data), (batch,))].to(device)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=use_bf16):
            loss = forward(rows[:, :-1], rows[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(5 if compile else 2):  # compilation happens in the first steps
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    step_seconds = []
    started = time.perf_counter()
    for _ in range(steps):
        step_started = time.perf_counter()
        step()
        step_seconds.append(time.perf_counter() - step_started)
    if device == "cuda":
        torch.cuda.synchronize()
    window = steps * batch * seq_len / (time.perf_counter() - started)
    median_step = batch * seq_len / statistics.median(step_seconds)
    return {"tokens_per_s": window if device == "cuda" else median_step, "tokens_per_s_window": window,
            "params": sum(p.numel() for p in model.parameters())}  # fmt: skip
