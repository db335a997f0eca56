#!/usr/bin/python3
"""crosscheck.py -- Proxima's GPT against an independent implementation (issue 3, acceptance 2).

Runs tests/crosscheck_dump (the C side) for a few model sizes and both heads; each run writes a
checkpoint with px_ckpt_write and a file with what Proxima computed on a fixed batch of padded
sequences of different lengths: the logits (LM head) or values (scalar head), the loss and the
gradient of every parameter tensor. This script loads the checkpoint with h5py, runs the same
batch through a GPT-2 written here from its definition in PyTorch (float64, autograd for the
gradients; nothing shared with the C code but the checkpoint and the batch), and compares:

  relative error of a tensor = max|proxima - torch| / max(max|torch|, 1e-30),

over the real (unpadded) positions for logits and values and over the whole tensor for the
gradients. Every figure must be within 1e-4. Prints a table of the errors; exits 1 on a failure,
77 (CTest's SKIP) when this Python lacks torch, h5py or numpy.

The model (DESIGN.md section 3): x = wte[tokens] + wpe[positions]; per layer, pre-LayerNorm
blocks x += attproj(attention(qkv(ln1(x)))), x += fcproj(gelu_tanh(fc(ln2(x)))); LayerNorm eps
1e-5; causal attention scaled by 1/sqrt(head_dim), keys past a sequence's length masked; then
lnf and the head: logits = x wte^T (tied) or value = x head_w^T + head_b. Linear weights are
[out, in] as in torch.nn.Linear.

Usage: crosscheck.py --tool PATH/crosscheck_dump [--workdir DIR]
"""
import argparse
import math
import os
import shutil
import subprocess
import sys

SKIP = 77
TOL = 1e-4

try:
    import h5py
    import numpy as np
    import torch
except ImportError as e:  # the CI installs them (python3-torch python3-h5py python3-numpy)
    print(f"SKIP: {sys.executable} cannot import {e.name}: install Debian's python3-torch, "
          "python3-h5py and python3-numpy to run the PyTorch cross-check", flush=True)
    sys.exit(SKIP)

# The cases: (name, head, V, T, L, H, C, B).
CASES = [
    ("lm-2x32", "lm", 259, 16, 2, 2, 32, 4),
    ("scalar-2x32", "scalar", 259, 16, 2, 2, 32, 4),
    ("lm-3x48", "lm", 300, 12, 3, 4, 48, 3),
]


# ----------------------------------------------------------------------------------------------
# GPT-2 in PyTorch, from the definition
# ----------------------------------------------------------------------------------------------

def layernorm(x, w, b, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased, as LayerNorm's
    return (x - mean) / torch.sqrt(var + eps) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def linear(x, w, b=None):
    y = x @ w.transpose(0, 1)
    return y if b is None else y + b


def gpt_forward(P, cfg, tokens, lengths):
    """Logits [B,T,V] (LM head) or values [B,T] (scalar head)."""
    B, T = tokens.shape
    C, NH, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    hs = C // NH
    x = P["wte"][tokens] + P["wpe"][:T].unsqueeze(0)
    q_pos = torch.arange(T).view(1, T, 1)
    k_pos = torch.arange(T).view(1, 1, T)
    allowed = (k_pos <= q_pos) & (k_pos < lengths.view(B, 1, 1))  # causal, padding masked
    allowed = allowed.unsqueeze(1)  # [B,1,T,T]
    for l in range(L):
        h = layernorm(x, P["ln1_w"][l], P["ln1_b"][l])
        qkv = linear(h, P["qkv_w"][l], P["qkv_b"][l])
        q, k, v = qkv.split(C, dim=-1)
        q, k, v = (z.view(B, T, NH, hs).transpose(1, 2) for z in (q, k, v))  # [B,NH,T,hs]
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        scores = scores.masked_fill(~allowed, float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v
        y = y.transpose(1, 2).reshape(B, T, C)
        x = x + linear(y, P["attproj_w"][l], P["attproj_b"][l])
        h = layernorm(x, P["ln2_w"][l], P["ln2_b"][l])
        h = gelu_tanh(linear(h, P["fc_w"][l], P["fc_b"][l]))
        x = x + linear(h, P["fcproj_w"][l], P["fcproj_b"][l])
    x = layernorm(x, P["lnf_w"], P["lnf_b"])
    if cfg["head"] == "lm":
        return linear(x, P["wte"])
    return linear(x, P["head_w"], P["head_b"]).squeeze(-1)


# ----------------------------------------------------------------------------------------------
# Comparison
# ----------------------------------------------------------------------------------------------

def attr_str(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def rel_error(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf"), float("inf"), 0.0
    if a.size == 0:
        return 0.0, 0.0, 0.0
    diff = float(np.max(np.abs(a - b)))
    scale = float(np.max(np.abs(b)))
    return diff / max(scale, 1e-30), diff, scale


def check_case(name, ckpt_path, dump_path, rows):
    with h5py.File(ckpt_path, "r") as f, h5py.File(dump_path, "r") as d:
        if attr_str(f.attrs["format"]) != "proxima-checkpoint":
            raise SystemExit(f"{ckpt_path}: not a Proxima checkpoint")
        group = attr_str(d.attrs["group"])
        g = f[group]
        cfg = {k: int(g.attrs[k]) for k in ("vocab_size", "max_seq_len", "n_layer", "n_head",
                                            "n_embd")}
        cfg["head"] = attr_str(g.attrs["head"])
        names = list(g.keys())
        P = {k: torch.tensor(np.asarray(g[k][...], dtype=np.float64), requires_grad=True)
             for k in names}
        tokens = torch.tensor(np.asarray(d["tokens"][...], dtype=np.int64))
        lengths = torch.tensor(np.asarray(d["lengths"][...], dtype=np.int64))
        B, T = tokens.shape
        real = torch.arange(T).view(1, T) < lengths.view(B, 1)  # [B,T]

        out = gpt_forward(P, cfg, tokens, lengths)
        if cfg["head"] == "lm":
            targets = torch.tensor(np.asarray(d["targets"][...], dtype=np.int64))
            weights = torch.tensor(np.asarray(d["weights"][...], dtype=np.float64))
            has = real & (targets >= 0)
            logp = torch.log_softmax(out, dim=-1)
            nll = -logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            w = weights * has
            loss = (w * nll).sum() / w.sum()
            mine_out, out_name = d["logits"][...], "logits"
        else:
            coef = torch.tensor(np.asarray(d["coef"][...], dtype=np.float64))
            loss = (coef * out * real).sum()
            mine_out, out_name = d["values"][...], "values"
        loss.backward()

        mask = real.numpy()
        rows.append((name, out_name, "real positions",
                     *rel_error(mine_out[mask], out.detach().numpy()[mask])))
        # Padded positions: Proxima's outputs there are zero by contract.
        pad = float(np.max(np.abs(mine_out[~mask]))) if (~mask).any() else 0.0
        rows.append((name, out_name + " (padding)", "must be 0", 0.0 if pad == 0.0 else
                     float("inf"), pad, 0.0))
        rows.append((name, "loss", "scalar", *rel_error(d["loss"][()], loss.item())))
        if sorted(d["grads"].keys()) != sorted(names):
            raise SystemExit(f"{dump_path}: gradient tensors {sorted(d['grads'].keys())} do not "
                             f"match the checkpoint's {sorted(names)}")
        for k in names:
            rows.append((name, "grad " + k, "x".join(map(str, P[k].shape)),
                         *rel_error(d["grads"][k][...], P[k].grad.numpy())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tool", required=True, help="the crosscheck_dump executable")
    ap.add_argument("--workdir", default="crosscheck-out")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    print(f"crosscheck: PyTorch {torch.__version__} (float64) against Proxima (float32), "
          f"tolerance {TOL:g} relative")

    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    rows = []
    for name, head, V, T, L, H, C, B in CASES:
        ckpt_dir = os.path.join(args.workdir, name)
        dump = os.path.join(args.workdir, name + ".h5")
        cmd = [args.tool, "--head", head, "--V", str(V), "--T", str(T), "--L", str(L),
               "--H", str(H), "--C", str(C), "--B", str(B), "--ckpt-dir", ckpt_dir,
               "--out", dump]
        r = subprocess.run(cmd)
        if r.returncode != 0:
            print(f"crosscheck: FAILED: {' '.join(cmd)} exited with {r.returncode}")
            return 1
        check_case(name, os.path.join(ckpt_dir, "ckpt-00000000.h5"), dump, rows)

    print(f"\n{'case':<12} {'what':<26} {'shape':<16} {'rel err':>10} {'max abs err':>12} "
          f"{'max |ref|':>10}  ok")
    worst, failed = 0.0, 0
    for case, what, shape, rel, diff, scale in rows:
        ok = rel <= TOL
        failed += not ok
        worst = max(worst, rel)
        print(f"{case:<12} {what:<26} {shape:<16} {rel:10.2e} {diff:12.3e} {scale:10.3e}  "
              f"{'yes' if ok else 'NO'}")
    print(f"\ncrosscheck: {len(rows)} figures, worst relative error {worst:.2e}, "
          f"{failed} over {TOL:g}: {'FAILED' if failed else 'passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
