#!/usr/bin/python3
"""torch_train.py -- the PyTorch baseline of benchmarks/bench_train.c (issue 3, issue 9):
training steps, and KV-cache generation (its own section below).

The same GPT-2 (pre-LayerNorm, tanh GELU, tied LM head, no dropout), the same shapes, float32,
and the same training step: forward, cross-entropy, backward, AdamW (torch.optim.AdamW). Written
as a PyTorch user would (nn.Linear, F.layer_norm, a causal mask), without torch.compile.

Fairness (PLATFORM.md): Debian's python3-torch does its matrix products in Debian's libblas.so.3,
which is BLIS. Set BLIS_ARCH_TYPE to the kernel set Proxima uses (benchmarks/run passes the id
bench_train reports) and BLIS_NUM_THREADS to the thread count, or BLIS runs its generic kernels;
this script also calls torch.set_num_threads(OMP_NUM_THREADS). On an AVX-512 CPU,
ATEN_CPU_CAPABILITY=avx512 gives PyTorch's own kernels AVX-512 (1.13 defaults to AVX2);
benchmarks/run sets it. Run it with /usr/bin/python3.

Prints "result <figure> <value>" lines with the same figure names as bench_train.

Usage: torch_train.py [--warmup N] [--iters N] [--gen-iters N] [--only NAME]
"""
import argparse
import math
import os
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print(f"torch_train: {sys.executable} has no torch: install Debian's python3-torch and run "
          "this with /usr/bin/python3", file=sys.stderr)
    sys.exit(77)

MODELS = [  # name, L, NH, C, V, T, B: as bench_train.c
    ("gpt6x384", 6, 6, 384, 512, 256, 4),
    ("gpt4x128", 4, 4, 128, 512, 256, 4),
    # GPT-2 124M with Hugging Face's 50257 rows; bench_train's has 50304 (padded, as `proxima
    # model import` pads it) with the softmax over the first 50257 (px_gpt_set_live_vocab)
    ("gpt2_124m", 12, 12, 768, 50257, 256, 4),
]


class Block(nn.Module):
    def __init__(self, C, NH, T):
        super().__init__()
        self.NH = NH
        self.ln1 = nn.LayerNorm(C, eps=1e-5)
        self.qkv = nn.Linear(C, 3 * C)
        self.attproj = nn.Linear(C, C)
        self.ln2 = nn.LayerNorm(C, eps=1e-5)
        self.fc = nn.Linear(C, 4 * C)
        self.fcproj = nn.Linear(4 * C, C)
        self.register_buffer("causal", torch.tril(torch.ones(T, T, dtype=torch.bool)))

    def forward(self, x):
        B, T, C = x.shape
        hs = C // self.NH
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (z.view(B, T, self.NH, hs).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(~self.causal[:T, :T], float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.attproj(y)
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, NH, C, V, T):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.blocks = nn.ModuleList(Block(C, NH, T) for _ in range(L))
        self.lnf = nn.LayerNorm(C, eps=1e-5)
        for name, p in self.named_parameters():  # GPT-2's initialisation
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * L) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, tokens, targets):
        B, T = tokens.shape
        x = self.wte(tokens) + self.wpe(torch.arange(T))
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.lnf(x), self.wte.weight)  # tied head
        return F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))


def bench(name, L, NH, C, V, T, B, warmup, iters):
    torch.manual_seed(42)
    model = GPT(L, NH, C, V, T)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, foreach=True)
    except TypeError:  # an older torch without foreach
        opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    b = torch.arange(B).view(B, 1)
    t = torch.arange(T + 1).view(1, T + 1)
    seq = (b * 977 + t * 131 + 7) % V  # the pattern of bench_train.c
    tokens, targets = seq[:, :T].contiguous(), seq[:, 1:].contiguous()

    times = []
    for it in range(warmup + iters):
        t0 = time.perf_counter()
        loss = model(tokens, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        if it >= warmup:
            times.append(dt)
    times.sort()
    median = times[iters // 2] if iters % 2 else 0.5 * (times[iters // 2 - 1] + times[iters // 2])
    n_params = sum(p.numel() for p in model.parameters())
    N = n_params - T * C  # all but wpe, as bench_train.c
    flops = B * T * (6.0 * N + 12.0 * L * T * C)
    tok_s, gflop_s = B * T / median, flops / median * 1e-9
    print(f"train {name}: L={L} NH={NH} C={C} V={V} T={T} B={B}, {n_params * 1e-6:.2f}M "
          f"parameters, {flops * 1e-9:.1f} GFLOP per step")
    print(f"  step (fwd + xent + bwd + AdamW): median {median * 1e3:.2f} ms (min "
          f"{times[0] * 1e3:.2f}, max {times[-1] * 1e3:.2f} over {iters} steps after {warmup} "
          f"warm-up), loss {loss.item():.4f}")
    print(f"  {tok_s:.0f} tokens/s, {gflop_s:.1f} GFLOP/s effective")
    print(f"result train_{name}_tokens_per_s {tok_s:.1f}")
    print(f"result train_{name}_gflop_per_s {gflop_s:.2f}", flush=True)


# ---------------------------------------------------------------------------------------------
# Generation: PyTorch's KV-cache loop, beside bench_train's px_generate
#
# The same model (random GPT-2 init), B prompts of BOS + 15 bytes (the pattern of bench_train.c),
# GEN_NEW new tokens each, float32 under torch.no_grad(): one prefill of the prompts, then one
# token at a time, each layer's keys and values cached in preallocated [B, NH, T, hs] tensors.
# Each step samples with torch.multinomial at temperature 1 over the tokens bench_train's model
# can draw (the 256 bytes: Proxima's sampler allows bytes and EOS, and bench_train pins EOS off
# so that every response has GEN_NEW tokens; this loop never stops early either; for GPT-2 all
# 50257 ids but EOS = BOS = 50256, the prompts' ids below it), and records
# the token's log-prob (log_softmax over the whole vocabulary, as px_generate does). A timed run
# is prefill + all steps; the effective FLOPs are bench_train.c's:
#   B [ G 2 N + 4 L C (G P + G (G - 1) / 2) ].
# ---------------------------------------------------------------------------------------------

GEN_PROMPT, GEN_NEW = 16, 128
GENS = [("gen_gpt6x384_b1", "gpt6x384", 1), ("gen_gpt6x384_b64", "gpt6x384", 64),
        ("gen_gpt2_124m_b1", "gpt2_124m", 1), ("gen_gpt2_124m_b64", "gpt2_124m", 64)]
TOK_BOS = 257  # the byte tokenizer's; GPT-2's BOS (and EOS) is 50256
GPT2_EOS = 50256


def block_step(block, x, kc, vc, pos):
    """x [B, n, C]: n new tokens at positions pos .. pos+n-1; kc, vc [B, NH, T, hs] the cache."""
    B, n, C = x.shape
    NH = block.NH
    hs = C // NH
    q, k, v = block.qkv(block.ln1(x)).split(C, dim=2)
    q, k, v = (z.view(B, n, NH, hs).transpose(1, 2) for z in (q, k, v))
    kc[:, :, pos:pos + n] = k
    vc[:, :, pos:pos + n] = v
    K, V = kc[:, :, :pos + n], vc[:, :, :pos + n]
    att = (q @ K.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
    if n > 1:  # the prefill: causal within the new tokens
        att = att.masked_fill(~block.causal[pos:pos + n, :pos + n], float("-inf"))
    y = (F.softmax(att, dim=-1) @ V).transpose(1, 2).contiguous().view(B, n, C)
    x = x + block.attproj(y)
    return x + block.fcproj(F.gelu(block.fc(block.ln2(x)), approximate="tanh"))


def model_step(model, tokens, caches, pos):
    """tokens [B, n] at positions pos..; returns the logits [B, V] after the last of them."""
    n = tokens.shape[1]
    x = model.wte(tokens) + model.wpe(torch.arange(pos, pos + n))
    for block, (kc, vc) in zip(model.blocks, caches):
        x = block_step(block, x, kc, vc, pos)
    return F.linear(model.lnf(x[:, -1]), model.wte.weight)


def generate(model, prompts, caches, G, gen, gpt2):
    B, P = prompts.shape
    out = torch.empty(B, G, dtype=torch.long)
    logprobs = torch.empty(B, G)
    logits = model_step(model, prompts, caches, 0)
    for j in range(G):
        masked = logits.clone()
        if gpt2:
            masked[:, GPT2_EOS] = float("-inf")  # every id but EOS (see above)
        else:
            masked[:, 256:] = float("-inf")  # bytes only (see above)
        tok = torch.multinomial(F.softmax(masked, dim=-1), 1, generator=gen)  # temperature 1
        out[:, j:j + 1] = tok
        logprobs[:, j:j + 1] = F.log_softmax(logits, dim=-1).gather(1, tok)
        if j + 1 < G:
            logits = model_step(model, tok, caches, P + j)
    return out, logprobs


def bench_generate(name, model_name, B, warmup, iters):
    _, L, NH, C, V, T, _ = next(m for m in MODELS if m[0] == model_name)
    torch.manual_seed(42)
    model = GPT(L, NH, C, V, T).eval()
    P, G = GEN_PROMPT, GEN_NEW
    gpt2 = model_name == "gpt2_124m"
    bos, n_plain = (GPT2_EOS, GPT2_EOS) if gpt2 else (TOK_BOS, 256)  # bench_train.c's prompts
    b = torch.arange(B).view(B, 1)
    t = torch.arange(1, P).view(1, P - 1)
    prompts = torch.cat([torch.full((B, 1), bos), (b * 977 + t * 131 + 7) % n_plain], dim=1)
    hs = C // NH
    caches = [(torch.zeros(B, NH, T, hs), torch.zeros(B, NH, T, hs)) for _ in range(L)]
    gen = torch.Generator().manual_seed(1234)
    times = []
    with torch.no_grad():
        for it in range(warmup + iters):
            t0 = time.perf_counter()
            tokens, logprobs = generate(model, prompts, caches, G, gen, gpt2)
            dt = time.perf_counter() - t0
            if it >= warmup:
                times.append(dt)
    times.sort()
    median = times[iters // 2] if iters % 2 else 0.5 * (times[iters // 2 - 1] + times[iters // 2])
    N = sum(p.numel() for p in model.parameters()) - T * C  # all but wpe, as bench_train.c
    flops = B * (2.0 * N * G + 4.0 * L * C * (G * P + 0.5 * G * (G - 1)))
    tok_s, gflop_s = B * G / median, flops / median * 1e-9
    print(f"generate {name}: L={L} NH={NH} C={C} V={V}, batch {B}, prompt {P}, {G} new tokens "
          f"each, temperature 1, {flops * 1e-9:.2f} GFLOP per run")
    print(f"  KV-cache loop (prefill + {G} steps): median {median * 1e3:.2f} ms (min "
          f"{times[0] * 1e3:.2f}, max {times[-1] * 1e3:.2f} over {iters} runs after {warmup} "
          f"warm-up), {median * 1e3 / G:.3f} ms per step, mean log-prob "
          f"{logprobs.mean().item():.3f}")
    print(f"  {tok_s:.0f} tokens/s, {gflop_s:.1f} GFLOP/s effective")
    print(f"result {name}_tokens_per_s {tok_s:.1f}")
    print(f"result {name}_gflop_per_s {gflop_s:.2f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description="PyTorch baseline of bench_train")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--gen-iters", type=int, default=3)
    ap.add_argument("--only")
    args = ap.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or os.cpu_count()
    torch.set_num_threads(threads)
    print(f"torch_train: PyTorch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"BLIS_ARCH_TYPE {os.environ.get('BLIS_ARCH_TYPE', '(unset: BLIS chooses)')}, "
          f"BLIS_NUM_THREADS {os.environ.get('BLIS_NUM_THREADS', '(unset)')}, "
          f"ATEN_CPU_CAPABILITY {os.environ.get('ATEN_CPU_CAPABILITY', '(unset)')}")
    print(f"result threads {torch.get_num_threads()}")
    with torch.no_grad():  # a check that the BLAS is the fast one: 512^3 SGEMM
        a = torch.randn(512, 512)
        a @ a
        t0 = time.perf_counter()
        for _ in range(10):
            a @ a
        gemm = 10 * 2 * 512 ** 3 / (time.perf_counter() - t0) * 1e-9
    print(f"  SGEMM 512^3 through torch: {gemm:.0f} GFLOP/s")
    print(f"result torch_sgemm512_gflop_per_s {gemm:.1f}")
    for m in MODELS:
        if args.only is None or args.only == m[0]:
            bench(*m, args.warmup, args.iters)
    for name, model_name, B in GENS:
        if args.only is None or args.only == name:
            bench_generate(name, model_name, B, min(args.warmup, 1), args.gen_iters)


if __name__ == "__main__":
    main()
