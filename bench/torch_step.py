"""The original recipe's training step in PyTorch, for comparison with `mmgpt bench`.

    python3 bench/torch_step.py --batch 32,256 --device cpu|cuda [--steps N] [--warmup N]
        [--threads N] [--compile] [--forward] [--budget-s S]

The same GPT as src/gpt/model.ts (nanoGPT's model.py without dropout or weight tying): token +
learned positional embeddings, pre-LN blocks (LayerNorm eps 1e-5), causal self-attention written
as matmul + masked softmax (not scaled_dot_product_attention, which our engine does not have
either), a 4x MLP with GeLU (tanh approximation), final LayerNorm and an lm_head without bias.
Init: N(0, 0.02), residual projections N(0, 0.02/sqrt(2*n_layer)), biases 0, LayerNorm 1/0.
The step: zero_grad, loss, backward, Adam(lr 1e-3) step, then synchronise (CUDA) and read the
loss, so each step is timed to completion as in our benchmark. With --compile the model's
forward is also run through torch.compile (PyTorch >= 2) and reported separately.

The last line of stdout is one JSON object:
  {"torch": version, "device": ..., "threads": n, "eager": {"32": ms, ...},
   "compile": {...} | null, "forward_b1_ms": ms | null, "peak_rss_mb": MiB,
   "blas": {"build": {"BLAS_INFO": ..., ...}, "loaded": [paths]}, ...}
"blas" says what the CPU matmuls run on: the build settings of torch.__config__.show() and the
BLAS libraries mapped into this process after a matmul (`mmgpt bench` names it and warns when
it is the slow reference BLAS, as Debian's torch gets without libopenblas0-pthread).
"""

import argparse
import json
import math
import os
import re
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 1058  # 1024 image codes + 31 words + 3 specials
BLOCK = 57  # a 58-token sequence: 57 inputs, 57 targets
N_LAYER, N_HEAD, N_EMBD = 4, 4, 128
LR = 1e-3


def gelu_tanh(x):
    """GeLU, tanh approximation (GPT-2's gelu_new)."""
    try:
        return F.gelu(x, approximate="tanh")
    except TypeError:  # PyTorch < 1.12
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


class CausalSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = nn.Linear(N_EMBD, 3 * N_EMBD)
        self.c_proj = nn.Linear(N_EMBD, N_EMBD)
        mask = torch.tril(torch.ones(BLOCK, BLOCK, dtype=torch.bool))
        self.register_buffer("mask", mask.view(1, 1, BLOCK, BLOCK), persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        hs = C // N_HEAD
        q, k, v = self.c_attn(x).split(C, dim=2)  # [B, T, C] each
        q = q.view(B, T, N_HEAD, hs).transpose(1, 2)  # [B, nh, T, hs]
        k = k.view(B, T, N_HEAD, hs).transpose(1, 2)  # [B, nh, T, hs]
        v = v.view(B, T, N_HEAD, hs).transpose(1, 2)  # [B, nh, T, hs]
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # [B, nh, T, T]
        att = att.masked_fill(~self.mask[:, :, :T, :T], float("-inf"))
        att = F.softmax(att, dim=-1)
        y = att @ v  # [B, nh, T, hs]
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # [B, T, C]
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_fc = nn.Linear(N_EMBD, 4 * N_EMBD)
        self.c_proj = nn.Linear(4 * N_EMBD, N_EMBD)

    def forward(self, x):
        return self.c_proj(gelu_tanh(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(N_EMBD, eps=1e-5)
        self.attn = CausalSelfAttention()
        self.ln_2 = nn.LayerNorm(N_EMBD, eps=1e-5)
        self.mlp = MLP()

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, N_EMBD)
        self.wpe = nn.Embedding(BLOCK, N_EMBD)
        self.h = nn.ModuleList([Block() for _ in range(N_LAYER)])
        self.ln_f = nn.LayerNorm(N_EMBD, eps=1e-5)
        self.lm_head = nn.Linear(N_EMBD, VOCAB, bias=False)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * N_LAYER))
            elif name.endswith(".weight") and "ln_" not in name:
                nn.init.normal_(p, 0.0, 0.02)
            elif name.endswith(".bias") and "ln_" not in name:
                nn.init.zeros_(p)

    def forward(self, idx):
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)  # [B, T, C]
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))  # [B, T, V]


def loss_fn(model, tokens):
    logits = model(tokens[:, :-1])  # [B, 57, V]
    return F.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step, device, warmup, steps, budget_s):
    """Median ms of `steps` timed calls after `warmup` (steps None: fill budget_s)."""
    warm = []
    for _ in range(warmup):
        t0 = time.perf_counter()
        step()
        sync(device)
        warm.append(time.perf_counter() - t0)
    if steps is None:
        per = statistics.median(warm) if warm else budget_s
        steps = int(max(3, min(200, round(budget_s / max(per, 1e-6)))))
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times), times


def bench_train(batch, device, warmup, steps, budget_s, compile_model):
    torch.manual_seed(1337)
    model = GPT().to(device)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8)
    forward = torch.compile(model) if compile_model else model
    gen = torch.Generator().manual_seed(1337)
    batches = [torch.randint(0, VOCAB, (batch, BLOCK + 1), generator=gen) for _ in range(4)]
    state = {"i": 0, "loss": float("nan")}

    def step():
        tokens = batches[state["i"] % len(batches)].to(device)  # [B, 58]
        state["i"] += 1
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(forward, tokens)
        loss.backward()
        opt.step()
        state["loss"] = loss.item()

    ms, times = time_steps(step, device, warmup, steps, budget_s)
    return ms, times, state["loss"]


def bench_forward_b1(device):
    torch.manual_seed(1337)
    model = GPT().to(device).eval()
    tokens = torch.randint(0, VOCAB, (1, BLOCK)).to(device)  # [1, 57]

    def step():
        with torch.no_grad():
            model(tokens)

    ms, _ = time_steps(step, device, 5, None, 1.0)
    return ms


def blas_info():
    """The BLAS of torch's CPU matmuls: build settings and the libraries mapped after a matmul."""
    show = torch.__config__.show()
    build = {}
    for key in ("BLAS_INFO", "LAPACK_INFO", "USE_MKL", "USE_OPENMP"):
        m = re.search(key + r"=([^,\s]+)", show)
        build[key] = m.group(1) if m else None
    a = torch.randn(64, 64)
    float((a @ a).sum())
    loaded = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 6:
                    continue
                lib = fields[-1]
                base = os.path.basename(lib).lower()
                if any(k in base for k in ("blas", "mkl", "blis", "atlas")) and lib not in loaded:
                    loaded.append(lib)
    except OSError:
        pass
    return {"build": build, "loaded": loaded}


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", default="32", help="comma-separated batch sizes")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: fill --budget-s)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 1 cpu, 5 cuda)")
    ap.add_argument("--budget-s", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(model)")
    ap.add_argument("--forward", action="store_true", help="also time a batch-1 forward")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("torch_step: --device cuda but torch.cuda.is_available() is False")
    device = torch.device(args.device)
    warmup = args.warmup if args.warmup is not None else (5 if device.type == "cuda" else 1)
    batches = [int(b) for b in args.batch.split(",") if b]

    result = {
        "torch": torch.__version__,
        "device": args.device,
        "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "eager": {},
        "eager_all_ms": {},
        "compile": None,
        "compile_error": None,
        "last_loss": {},
        "forward_b1_ms": None,
        "blas": blas_info(),
    }
    for b in batches:
        ms, times, loss = bench_train(b, device, warmup, args.steps, args.budget_s, False)
        result["eager"][str(b)] = ms
        result["eager_all_ms"][str(b)] = times
        result["last_loss"][str(b)] = loss
    if args.compile:
        if not hasattr(torch, "compile"):
            result["compile_error"] = "torch.compile needs PyTorch >= 2.0"
        else:
            result["compile"] = {}
            for b in batches:
                try:
                    ms, _, _ = bench_train(b, device, max(warmup, 3), args.steps, args.budget_s, True)
                    result["compile"][str(b)] = ms
                except Exception as e:  # compilation needs a compiler toolchain; report, go on
                    result["compile_error"] = f"{type(e).__name__}: {e}"[:500]
                    break
    if args.forward:
        result["forward_b1_ms"] = bench_forward_b1(device)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if device.type == "cuda":
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
