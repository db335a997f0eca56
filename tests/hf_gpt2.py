#!/usr/bin/python3
"""hf_gpt2.py -- `proxima model import` and `model export` against Hugging Face's GPT-2 layout
(issue 23, Tests).

Nothing is downloaded: the script writes small random GPT-2s as a Hugging Face directory would
hold them -- config.json with GPT-2's keys, the weights under Hugging Face's names in GPT-2's
Conv1D layout ([in, out]) through its own safetensors writer, and the tokenizer as vocab.json +
merges.txt (copies of $PX_GPT2_DIR's encoder.json and vocab.bpe, GPT-2's own files). Then:

 1. import: each variant (F32 without prefix; F16 with "transformer.", the attn.bias /
    masked_bias buffers and a tied lm_head.weight; BF16 in two shards with an index) is imported
    and Proxima's logits (tests/hf_logits on the checkpoint) on sequences of several lengths are
    compared with a GPT-2 written here in PyTorch that reads the same safetensors files by
    Hugging Face's names (Conv1D: y = x @ W + b; gelu_new; causal attention scaled by
    1/sqrt(head_dim); layer norms with eps 1e-5; the LM head tied to wte), in float64 on the
    stored values converted to float32: max |difference| <= 1e-4.
 2. export: the directory `model export` writes is read back with this script's own reader:
    config.json, every tensor bit for bit the imported float32 values, the same logits from the
    PyTorch model, the tokenizer files byte for byte; import -> export -> import gives the same
    checkpoint file, byte for byte.
 3. bad directories: each `model import` exits 1 with a message naming the file and the tensor
    or key, and leaves no output file.
 4. sft --init -> rm --init -> ppo from an imported model on JSONL data (data import --tokenizer
    the checkpoint), under a 2-rank launch; then export of the tuned policy, generate from it,
    the tokenizer each checkpoint stores, and the exported directory's logits through the
    PyTorch model against Proxima's.

Exits 1 on a failure (a missing $PX_GPT2_DIR included), 77 (CTest's SKIP) only when this Python
lacks torch or numpy.

Usage: hf_gpt2.py [--workdir DIR]; the environment names the programs: PX_PROXIMA (proxima),
PX_HF_LOGITS (tests/hf_logits), PX_LAUNCH_2 (a 2-rank launch prefix), PX_GPT2_DIR.
"""
import argparse
import filecmp
import json
import math
import os
import shlex
import shutil
import struct
import subprocess
import sys
import time
import traceback

SKIP = 77
TOL = 1e-4
N_VOCAB = 50257  # GPT-2's vocabulary: the logit columns compared

try:
    import numpy as np
    import torch
except ImportError as e:  # the CI installs them (python3-torch python3-numpy)
    print(f"SKIP: {sys.executable} cannot import {e.name}: install Debian's python3-torch and "
          "python3-numpy to run the Hugging Face GPT-2 test", flush=True)
    sys.exit(SKIP)

FAILURES = []
T0 = time.time()


def check(ok, what):
    """Records a failed assertion and goes on, so that one run reports every failure."""
    print(f"  {'ok  ' if ok else 'FAIL'} {what} [{time.time() - T0:.1f}s]", flush=True)
    if not ok:
        FAILURES.append(what)
    return ok


def guarded(what, fn, *args):
    """fn(*args), or math.inf and a recorded failure when it raises (say, on a malformed export):
    the other parts still run and report."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 -- any exception is a failure of this part
        traceback.print_exc()
        check(False, f"{what}: {type(e).__name__}: {e}")
        return math.inf


# ----------------------------------------------------------------------------------------------
# safetensors, written and read here (the format note: an 8-byte little-endian header length,
# a JSON header of {"dtype", "shape", "data_offsets"} per tensor and "__metadata__", the data)
# ----------------------------------------------------------------------------------------------

def encode(a, dtype):
    """The bytes of float32 array a stored as dtype (F32, F16, BF16; little-endian)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    if dtype == "F32":
        return a.astype("<f4").tobytes()
    if dtype == "F16":
        return a.astype("<f2").tobytes()
    if dtype == "BF16":  # round to nearest even, as torch converts
        return torch.from_numpy(a).to(torch.bfloat16).view(torch.int16).numpy().astype(
            "<i2").tobytes()
    raise ValueError(dtype)


def decode(raw, dtype, shape):
    """Float32 values of raw bytes stored as dtype (F16 and BF16 convert exactly)."""
    if dtype == "F32":
        a = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    elif dtype == "F16":
        a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    elif dtype == "BF16":  # the top half of a float32
        a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        raise ValueError(f"dtype {dtype}")
    return a.reshape(shape)


def st_write(path, tensors, metadata=None):
    """tensors: a list of (name, float32 array, dtype) or (name, raw bytes, dtype, shape)."""
    header, chunks, offset = {}, [], 0
    for t in tensors:
        name, dtype = t[0], t[2]
        if len(t) == 4:
            data, shape = t[1], list(t[3])
        else:
            data, shape = encode(t[1], dtype), list(t[1].shape)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    header["__metadata__"] = metadata if metadata is not None else {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data 8-byte aligned, as the reference writer pads
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def st_read(path):
    """(header dict, {name: float32 array}, {name: raw bytes}) of a safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError(f"{path}: header length {n} past the end")
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    arrays, raws = {}, {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        if not 0 <= b <= end <= len(data):
            raise ValueError(f"{path}: tensor {name} outside the data")
        raws[name] = data[b:end]
        arrays[name] = decode(data[b:end], e["dtype"], e["shape"])
    return header, arrays, raws


# ----------------------------------------------------------------------------------------------
# Hugging Face GPT-2 directories
# ----------------------------------------------------------------------------------------------

def hf_config(C, L, H, T):
    """config.json as a published GPT-2 has it (dropout 0.1 included), at these sizes."""
    return {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": 50256,
        "embd_pdrop": 0.1,
        "eos_token_id": 50256,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": T,
        "n_embd": C,
        "n_head": H,
        "n_inner": None,
        "n_layer": L,
        "n_positions": T,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        "transformers_version": "4.36.2",
        "use_cache": True,
        "vocab_size": N_VOCAB,
    }


def random_gpt2(C, L, T, seed):
    """GPT2Model's tensors under Hugging Face's names (no prefix), Conv1D weights [in, out],
    float32. Values far from GPT-2's initialisation (layer norms not 1 and 0, larger matrices)
    so that every tensor moves the logits."""
    rng = np.random.default_rng(seed)

    def n(shape, std, mean=0.0):
        return (mean + std * rng.standard_normal(shape)).astype(np.float32)

    w = {"wte.weight": n((N_VOCAB, C), 0.1), "wpe.weight": n((T, C), 0.1)}
    for i in range(L):
        p = f"h.{i}."
        w[p + "ln_1.weight"], w[p + "ln_1.bias"] = n(C, 0.2, 1.0), n(C, 0.1)
        w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"] = n((C, 3 * C), 0.15), n(3 * C, 0.05)
        w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"] = n((C, C), 0.1), n(C, 0.05)
        w[p + "ln_2.weight"], w[p + "ln_2.bias"] = n(C, 0.2, 1.0), n(C, 0.1)
        w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"] = n((C, 4 * C), 0.15), n(4 * C, 0.05)
        w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"] = n((4 * C, C), 0.08), n(C, 0.05)
    w["ln_f.weight"], w["ln_f.bias"] = n(C, 0.2, 1.0), n(C, 0.1)
    return w


def write_tokenizer(d, gpt2_dir):
    shutil.copyfile(os.path.join(gpt2_dir, "encoder.json"), os.path.join(d, "vocab.json"))
    shutil.copyfile(os.path.join(gpt2_dir, "vocab.bpe"), os.path.join(d, "merges.txt"))


def write_hf_dir(d, cfg, weights, gpt2_dir, dtype="F32", prefix="", buffers=False, lm_head=False,
                 shards=1):
    """A Hugging Face GPT-2 directory: config.json, the weights (one file, or `shards` files
    and model.safetensors.index.json), vocab.json and merges.txt."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_tokenizer(d, gpt2_dir)
    T = cfg["n_positions"]
    tensors = []
    for name, a in weights.items():
        tensors.append((prefix + name, a, dtype))
        if buffers and name.endswith("ln_1.weight"):  # what GPT2Attention registers
            layer = name[:-len("ln_1.weight")]
            mask = np.tril(np.ones((T, T), np.float32)).reshape(1, 1, T, T)
            tensors.append((prefix + layer + "attn.bias", mask, dtype))
            tensors.append((prefix + layer + "attn.masked_bias", np.float32(-1e4).reshape(()),
                            dtype))
    if lm_head:  # GPT2LMHeadModel's tied head, saved beside wte
        tensors.append(("lm_head.weight", weights["wte.weight"], dtype))
    if shards == 1:
        st_write(os.path.join(d, "model.safetensors"), tensors)
        return
    per = (len(tensors) + shards - 1) // shards
    weight_map, total = {}, 0
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = tensors[s * per:(s + 1) * per]
        st_write(os.path.join(d, fname), part)
        for t in part:
            weight_map[t[0]] = fname
            total += len(encode(t[1], dtype))
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def read_hf_dir(d):
    """(config, {name without "transformer.": float32 array}) of a Hugging Face directory, read
    with this script's reader: model.safetensors or the shards its index names."""
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(os.path.join(d, "model.safetensors")):
        files = ["model.safetensors"]
    else:
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    w = {}
    for fname in files:
        _, arrays, _ = st_read(os.path.join(d, fname))
        for name, a in arrays.items():
            w[name[len("transformer."):] if name.startswith("transformer.") else name] = a
    return cfg, w


# ----------------------------------------------------------------------------------------------
# GPT-2 in PyTorch, by Hugging Face's names and Conv1D semantics (float64)
# ----------------------------------------------------------------------------------------------

def gelu_new(x):  # GPT-2's activation: GELU's tanh form
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def conv1d(x, W, prefix):
    """transformers' Conv1D: weight [in, out], y = x @ W + b."""
    return x @ W[prefix + ".weight"] + W[prefix + ".bias"]


def hf_logits_torch(cfg, weights, ids):
    """Logits [len(ids), vocab_size] of one sequence."""
    W = {k: torch.from_numpy(np.asarray(v, np.float32)).double() for k, v in weights.items()}
    C, H, L, eps = cfg["n_embd"], cfg["n_head"], cfg["n_layer"], cfg["layer_norm_epsilon"]
    hs, T = C // H, len(ids)
    ids = torch.tensor(ids, dtype=torch.long)
    x = W["wte.weight"][ids] + W["wpe.weight"][:T]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(L):
        p = f"h.{i}."
        h = layer_norm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps)
        q, k, v = conv1d(h, W, p + "attn.c_attn").split(C, dim=-1)
        q, k, v = (t.view(T, H, hs).transpose(0, 1) for t in (q, k, v))  # [H, T, hs]
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(0, 1).reshape(T, C)
        x = x + conv1d(y, W, p + "attn.c_proj")
        h = layer_norm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps)
        x = x + conv1d(gelu_new(conv1d(h, W, p + "mlp.c_fc")), W, p + "mlp.c_proj")
    x = layer_norm(x, W["ln_f.weight"], W["ln_f.bias"], eps)
    head = W.get("lm_head.weight", W["wte.weight"])  # tied: lm_head, when saved, is wte
    return (x @ head.transpose(0, 1)).numpy()


# ----------------------------------------------------------------------------------------------
# Running Proxima
# ----------------------------------------------------------------------------------------------

class Env:
    def __init__(self, workdir):
        self.work = os.path.abspath(workdir)
        self.proxima = os.environ.get("PX_PROXIMA", "")
        self.tool = os.environ.get("PX_HF_LOGITS", "")
        self.launch = shlex.split(os.environ.get("PX_LAUNCH_2", ""))
        self.gpt2 = os.environ.get("PX_GPT2_DIR", "")

    def run(self, args, launch=False):
        """(exit status, stdout, stderr) of proxima with args, on one rank or the 2-rank
        launch."""
        cmd = (self.launch if launch else []) + [self.proxima] + args
        p = subprocess.run(cmd, cwd=self.work, capture_output=True, text=True, timeout=300)
        return p.returncode, p.stdout, p.stderr

    def ok(self, args, launch=False):
        """proxima's stdout, or None (a recorded failure) when it does not exit 0."""
        rc, out, err = self.run(args, launch)
        if not check(rc == 0, f"proxima {' '.join(args)}{' (2 ranks)' if launch else ''}: exit "
                     f"{rc}"):
            print(err[-3000:])
            return None
        return out

    def logits(self, ckpt, seqs):
        """Proxima's logits of each sequence, [len, N_VOCAB] float32 each."""
        tokens, out = os.path.join(self.work, "tokens.bin"), os.path.join(self.work, "logits.bin")
        with open(tokens, "wb") as f:
            f.write(struct.pack("<i", len(seqs)))
            for s in seqs:
                f.write(struct.pack(f"<i{len(s)}i", len(s), *s))
        p = subprocess.run([self.tool, ckpt, tokens, out], cwd=self.work, capture_output=True,
                           text=True)
        if not check(p.returncode == 0, f"hf_logits {ckpt}: exit {p.returncode}"):
            print(p.stderr[-2000:])
            return None
        flat = np.fromfile(out, dtype="<f4")
        result, at = [], 0
        for s in seqs:
            result.append(flat[at:at + len(s) * N_VOCAB].reshape(len(s), N_VOCAB))
            at += len(s) * N_VOCAB
        check(at == flat.size, f"hf_logits wrote {flat.size} floats, {at} expected")
        return result


def sequences(T, seed):
    """A few token sequences: the model's whole context, shorter ones and a single token; the
    end-of-text id and ids from the whole vocabulary."""
    rng = np.random.default_rng(seed)
    lengths = [T, T // 2 + 3, 7, 1]
    seqs = [[int(t) for t in rng.integers(0, N_VOCAB, n)] for n in lengths]
    seqs[1][0] = seqs[2][-1] = 50256
    return seqs


def compare(env, ckpt, hf_dir, seqs, what):
    """Max |Proxima - PyTorch| over the sequences' logits (Proxima from ckpt, PyTorch from the
    Hugging Face directory hf_dir); checks it against TOL and returns it, the torch logits and
    Proxima's (None when hf_logits failed)."""
    cfg, w = read_hf_dir(hf_dir)
    ref = [hf_logits_torch(cfg, w, s) for s in seqs]
    mine = env.logits(ckpt, seqs)
    if mine is None:
        return math.inf, ref, None
    worst = max(float(np.max(np.abs(a.astype(np.float64) - b))) for a, b in zip(mine, ref))
    scale = max(float(np.max(np.abs(b))) for b in ref)
    check(worst <= TOL, f"{what}: max |logit difference| {worst:.3e} (logits up to {scale:.2f}; "
          f"lengths {[len(s) for s in seqs]})")
    return worst, ref, mine


# ----------------------------------------------------------------------------------------------
# 1 and 2: import, logits, export
# ----------------------------------------------------------------------------------------------

# (name, (C, L, H, T), dtype, prefix, buffers and lm_head, shards)
VARIANTS = [
    ("f32", (32, 2, 2, 64), "F32", "", False, 1),
    ("f16-prefix", (32, 2, 2, 64), "F16", "transformer.", True, 1),
    ("bf16-sharded", (48, 3, 4, 40), "BF16", "transformer.", False, 2),
]


def test_import_export(env):
    """{variant: max |logit difference| of the import}."""
    return {v[0]: guarded(v[0], import_variant, env, i, v) for i, v in enumerate(VARIANTS)}


def import_variant(env, i, variant):
    name, (C, L, H, T), dtype, prefix, extras, shards = variant
    print(f"\n{name}: C={C} L={L} H={H} T={T}, {dtype}, prefix '{prefix}'"
          f"{', attn.bias/masked_bias and lm_head.weight' if extras else ''}"
          f"{f', {shards} shards' if shards > 1 else ''}", flush=True)
    src = os.path.join(env.work, name)
    weights = random_gpt2(C, L, T, seed=100 + i)
    write_hf_dir(src, hf_config(C, L, H, T), weights, env.gpt2, dtype, prefix, extras, extras,
                 shards)
    ckpt = f"{name}.h5"
    rc, _, err = env.run(["model", "import", name, ckpt])
    if not check(rc == 0, f"proxima model import {name} {ckpt}: exit {rc}"):
        print(err[-3000:])
        return math.inf
    # published configs set dropout 0.1: accepted, and the log says it is not used
    check("trains without dropout" in err, f"{name}: the import's log says Proxima trains "
          "without the config's dropout")
    seqs = sequences(T, seed=7 + i)
    worst, ref, mine = compare(env, ckpt, src, seqs, f"{name}: imported vs PyTorch")

    # export: config, tensors, tokenizer, logits
    out = os.path.join(env.work, f"{name}-export")
    if env.ok(["model", "export", ckpt, f"{name}-export"]) is None:
        return worst
    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    want = {"model_type": "gpt2", "n_embd": C, "n_layer": L, "n_head": H, "n_positions": T,
            "vocab_size": N_VOCAB, "activation_function": "gelu_new",
            "layer_norm_epsilon": 1e-5, "architectures": ["GPT2LMHeadModel"]}
    check(all(cfg.get(k) == v for k, v in want.items()),
          f"{name}: exported config.json has {json.dumps({k: cfg.get(k) for k in want})}")
    header, arrays, raws = st_read(os.path.join(out, "model.safetensors"))
    check(header.get("__metadata__", {}).get("format") == "pt",
          f"{name}: exported metadata {header.get('__metadata__')} has format pt")
    check(sorted(arrays) == sorted(weights),
          f"{name}: exported tensors are GPT2Model's {len(weights)} (no padding rows, "
          f"no buffers): {len(arrays)}")
    stored = {k: decode(encode(v, dtype), dtype, v.shape) for k, v in weights.items()}
    same = [k for k in weights if k in raws and header[k]["dtype"] == "F32"
            and header[k]["shape"] == list(weights[k].shape)
            and raws[k] == stored[k].astype("<f4").tobytes()]
    check(len(same) == len(weights), f"{name}: {len(same)} of {len(weights)} exported tensors "
          f"are bit for bit the imported {dtype} values as float32")
    for f in ("vocab.json", "merges.txt"):
        check(filecmp.cmp(os.path.join(out, f), os.path.join(src, f), shallow=False),
              f"{name}: exported {f} is the imported file, byte for byte")
    mine = mine or [np.full((len(s), N_VOCAB), np.inf) for s in seqs]
    cfg_out, w_out = read_hf_dir(out)
    again = [hf_logits_torch(cfg_out, w_out, s) for s in seqs]
    check(all(np.array_equal(a, b) for a, b in zip(again, ref)),
          f"{name}: PyTorch on the exported directory gives the original's logits exactly")
    worst_out = max(float(np.max(np.abs(a.astype(np.float64) - b)))
                    for a, b in zip(mine, again))
    check(worst_out <= TOL, f"{name}: exported (PyTorch) vs Proxima: max |logit difference| "
          f"{worst_out:.3e}")

    # import -> export -> import: the same checkpoint bytes
    ckpt2 = f"{name}-again.h5"
    env.ok(["model", "import", f"{name}-export", ckpt2])
    check(os.path.exists(os.path.join(env.work, ckpt2)) and filecmp.cmp(
        os.path.join(env.work, ckpt), os.path.join(env.work, ckpt2), shallow=False),
          f"{name}: import -> export -> import gives the same checkpoint file, byte for byte")
    return worst


# ----------------------------------------------------------------------------------------------
# 3: bad directories
# ----------------------------------------------------------------------------------------------

def bad_directories(env):
    """Each case: (name, function making the directory from a good copy, the strings the
    message must hold)."""
    C, L, H, T = 32, 2, 2, 16
    weights = random_gpt2(C, L, T, seed=5)
    good_cfg = hf_config(C, L, H, T)

    def st_of(d):
        return os.path.join(d, "model.safetensors")

    def tensors_without(drop=(), change=None):
        change = change or {}
        return [(k, change.get(k, v), "F32") for k, v in weights.items() if k not in drop]

    def missing_tensor(d):
        st_write(st_of(d), tensors_without(drop=("h.1.mlp.c_fc.bias",)))

    def wrong_shape(d):  # c_attn as torch's Linear would store it, [out, in]
        st_write(st_of(d), tensors_without(
            change={"h.0.attn.c_attn.weight": weights["h.0.attn.c_attn.weight"].T.copy()}))

    cut = {}

    def truncated(d):
        path = st_of(d)
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size // 2)
        # the tensors whose data the cut removed: the message must name one of them
        header, n = read_header(path)
        data = size // 2 - 8 - n
        cut["names"] = [k for k, e in header.items()
                        if k != "__metadata__" and e["data_offsets"][1] > data]

    def offsets_past_end(d):
        path = st_of(d)
        header, n = read_header(path)
        e = header["ln_f.bias"]
        b, end = e["data_offsets"]
        e["data_offsets"] = [b + 4096, end + 4096]  # same length, past the data
        rewrite_header(path, header, n)

    def header_1gb(d):
        with open(st_of(d), "r+b") as f:
            f.write(struct.pack("<Q", 1 << 30))

    def config_key(key, value):
        def make(d):
            cfg = dict(good_cfg)
            cfg[key] = value
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(cfg, f, indent=2)
        return make

    def remove(fname):
        return lambda d: os.remove(os.path.join(d, fname))

    def untied_head(d):
        st_write(st_of(d), tensors_without() + [("lm_head.weight", weights["wte.weight"] * 2,
                                                  "F32")])

    def unknown_tensor(d):
        st_write(st_of(d), tensors_without() + [("h.2.ln_1.weight", weights["ln_f.weight"],
                                                 "F32")])

    def missing_shard(d):
        os.remove(st_of(d))
        st_write(os.path.join(d, "model-00001-of-00002.safetensors"), tensors_without())
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"weight_map": {"wte.weight": "model-00001-of-00002.safetensors",
                                      "ln_f.bias": "model-00002-of-00002.safetensors"}}, f)

    return weights, good_cfg, [
        ("missing tensor", missing_tensor, ["model.safetensors", "h.1.mlp.c_fc.bias"]),
        ("wrong shape", wrong_shape, ["model.safetensors", "h.0.attn.c_attn.weight"]),
        ("truncated file", truncated, ["model.safetensors", lambda msg: any(
            f"'{n}'" in msg for n in cut["names"])]),
        ("offsets past the end", offsets_past_end, ["model.safetensors", "ln_f.bias"]),
        ("header of 1 GB", header_1gb, ["model.safetensors", "header", "1073741824"]),
        ("scale_attn_by_inverse_layer_idx", config_key("scale_attn_by_inverse_layer_idx", True),
         ["config.json", "scale_attn_by_inverse_layer_idx"]),
        ("n_inner 100", config_key("n_inner", 100), ["config.json", "n_inner"]),
        ("relu", config_key("activation_function", "relu"), ["config.json",
                                                             "activation_function"]),
        ("unknown config key", config_key("rotary_dim", 8), ["config.json", "rotary_dim"]),
        ("layer_norm_epsilon 1e-6", config_key("layer_norm_epsilon", 1e-6),
         ["config.json", "layer_norm_epsilon"]),
        ("missing config.json", remove("config.json"), ["config.json"]),
        ("missing vocab.json", remove("vocab.json"), ["vocab.json"]),
        ("untied lm_head", untied_head, ["model.safetensors", "lm_head.weight"]),
        ("tensor of a third layer", unknown_tensor, ["model.safetensors", "h.2.ln_1.weight"]),
        ("a shard the index names is missing", missing_shard,
         ["model-00002-of-00002.safetensors"]),
    ]


def read_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)), n


def rewrite_header(path, header, n):
    """Replaces the header by one of the same length (padded with spaces), data unchanged."""
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= n
    with open(path, "r+b") as f:
        f.seek(8)
        f.write(text + b" " * (n - len(text)))


def test_bad_directories(env):
    print("\nbad directories", flush=True)
    weights, cfg, cases = bad_directories(env)
    good = os.path.join(env.work, "bad-good")
    write_hf_dir(good, cfg, weights, env.gpt2)
    # the good directory imports: every failure below is the change's
    env.ok(["model", "import", "bad-good", "bad-good.h5"])
    for i, (name, make, wants) in enumerate(cases):
        d = os.path.join(env.work, f"bad-{i:02d}")
        shutil.copytree(good, d)
        make(d)
        out_dir = os.path.join(env.work, f"bad-{i:02d}-out")
        os.makedirs(out_dir)
        rc, _, err = env.run(["model", "import", f"bad-{i:02d}", f"bad-{i:02d}-out/model.h5"])
        named = all(w(err) if callable(w) else w in err for w in wants)
        left = os.listdir(out_dir)
        if check(rc == 1 and named and not left,
                 f"{name}: exit {rc}, message names {[w for w in wants if not callable(w)]}"
                 f"{' and a cut tensor' if any(callable(w) for w in wants) else ''}: "
                 f"{'yes' if named else 'NO'}, files left: {left}"):
            print(f"       {err.strip().splitlines()[-1] if err.strip() else '(no message)'}")
        else:
            print(f"       stderr: {err.strip()[-600:]}")


# ----------------------------------------------------------------------------------------------
# 4: sft -> rm -> ppo from an imported model, 2 ranks
# ----------------------------------------------------------------------------------------------

WORDS = ["the", "cat", "sat", "on", "a", "mat", "caf\u00e9", "Hello", "world", "42", "it's",
         "we'll", "WORLD", "\u6771\u4eac", "3.14", "blue", "sky"]


def phrase(rng, n):
    return " ".join(WORDS[int(k)] for k in rng.integers(0, len(WORDS), n))


def test_pipeline(env):
    print("\nsft -> rm -> ppo from an imported model, 2 ranks", flush=True)
    C, L, H, T = 32, 2, 2, 64
    src = os.path.join(env.work, "pipe-hf")
    write_hf_dir(src, hf_config(C, L, H, T), random_gpt2(C, L, T, seed=11), env.gpt2)
    base = "pipe-base.h5"
    env.ok(["model", "import", "pipe-hf", base])
    rng = np.random.default_rng(3)
    fields = {"sft": ("prompt", "completion"), "prefs": ("prompt", "chosen", "rejected"),
              "prompts": ("prompt",)}
    for kind, names in fields.items():
        with open(os.path.join(env.work, f"pipe-{kind}.jsonl"), "w") as f:
            for _ in range(48 if kind != "prompts" else 16):
                f.write(json.dumps({k: phrase(rng, int(rng.integers(2, 6))) for k in names}) +
                        "\n")
        env.ok(["data", "import", "--kind", kind, "--tokenizer", base, f"pipe-{kind}.jsonl",
                f"pipe-{kind}.h5"], launch=True)
    quiet = ["run.log_level=warn"]
    stages = [
        ["sft", "--init", base, "--data", "pipe-sft.h5", "--run", "pipe-sft", "--steps", "3",
         "sft.batch_size=8", "sft.micro_batch=4", "sft.heldout=8", "sft.lr=1e-3"],
        ["rm", "--init", "pipe-sft", "--data", "pipe-prefs.h5", "--run", "pipe-rm",
         "rm.epochs=0.5", "rm.batch_size=8", "rm.micro_batch=4", "rm.heldout=8",
         "rm.norm_samples=0"],
        ["ppo", "--policy", "pipe-sft", "--reward", "pipe-rm", "--prompts", "pipe-prompts.h5",
         "--eval-prompts", "pipe-prompts.h5", "--run", "pipe-ppo", "--iterations", "2",
         "ppo.batch_size=8", "ppo.minibatch=8", "ppo.micro_batch=4", "ppo.eval_every=0",
         "sample.batch=4", "sample.max_new_tokens=6"],
    ]
    ran = all(env.ok(stage + quiet, launch=True) is not None for stage in stages)
    if not ran:
        return math.inf

    # every checkpoint stores the imported tokenizer: its files come back out byte for byte
    hashes = set()
    for run, model in (("pipe-base.h5", "policy"), ("pipe-sft", "policy"), ("pipe-rm", "reward"),
                       ("pipe-ppo", "policy")):
        out = f"pipe-tok-{model}-{run}"
        env.ok(["model", "export", run, out, "--model", model])
        out = os.path.join(env.work, out)
        for f in ("vocab.json", "merges.txt"):
            check(os.path.exists(os.path.join(out, f)) and filecmp.cmp(
                os.path.join(out, f), os.path.join(src, f), shallow=False),
                f"{run} /{model}: its stored tokenizer's {f} is the imported one")
        info = env.ok(["ckpt", "info", run]) or ""
        hashes.update(line.split("sha256")[-1].strip() for line in info.splitlines()
                      if line.strip().startswith("tokenizer") and "sha256" in line)
    check(len(hashes) == 1, f"the four checkpoints record one tokenizer hash: {sorted(hashes)}")

    # the tuned policy: exported, generated from, and its logits through PyTorch
    out = env.ok(["generate", "--ckpt", "pipe-ppo", "--prompt", "Hello world", "--greedy",
                  "--max-new-tokens", "5"] + quiet, launch=True) or ""
    check("Hello world\t" in out, f"generate --ckpt pipe-ppo prints the prompt and a response: "
          f"{out.strip()[:80]!r}")
    if env.ok(["model", "export", "pipe-ppo", "pipe-export"], launch=True) is None:
        return math.inf
    seqs = sequences(T, seed=21)
    worst, tuned, _ = compare(env, "pipe-ppo", os.path.join(env.work, "pipe-export"), seqs,
                           "ppo's policy: exported (PyTorch) vs Proxima")
    cfg0, w0 = read_hf_dir(src)
    moved = max(float(np.max(np.abs(a - hf_logits_torch(cfg0, w0, s))))
                for a, s in zip(tuned, seqs))
    # sft's steps at lr 1e-3 move the weights: else this comparison would only repeat the import
    check(moved > 1e-3, f"the tuned policy's logits differ from the imported model's (max "
          f"{moved:.3e}), so the comparison is of the tuned weights")
    return worst


# ----------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", default="hf-gpt2")
    args = ap.parse_args()
    env = Env(args.workdir)
    missing = [k for k, v in (("PX_PROXIMA", env.proxima), ("PX_HF_LOGITS", env.tool),
                              ("PX_LAUNCH_2", " ".join(env.launch))) if not v]
    if missing:
        print(f"FAIL: {', '.join(missing)} not set (ctest sets them)")
        return 1
    if not env.gpt2 or not all(os.path.isfile(os.path.join(env.gpt2, f))
                               for f in ("encoder.json", "vocab.bpe")):
        print(f"FAIL: PX_GPT2_DIR ({env.gpt2!r}) does not hold GPT-2's encoder.json and "
              "vocab.bpe: run scripts/install-deps.sh")
        return 1
    torch.set_num_threads(1)
    shutil.rmtree(env.work, ignore_errors=True)
    os.makedirs(env.work)
    t0 = time.time()
    imported = test_import_export(env)
    guarded("bad directories", test_bad_directories, env)
    tuned = guarded("sft -> rm -> ppo", test_pipeline, env)
    print("\nmax |logit difference|, Proxima vs PyTorch: " +
          ", ".join(f"{k} {v:.3e}" for k, v in imported.items()) +
          f", ppo's policy {tuned:.3e} (tolerance {TOL:g}); {time.time() - t0:.1f}s")
    if FAILURES:
        print(f"\n{len(FAILURES)} FAILED:\n  " + "\n  ".join(FAILURES))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
