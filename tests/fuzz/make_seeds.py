#!/usr/bin/env python3
"""Writes the seed recipes of the structure-aware targets (fuzz_dataset, fuzz_ckpt,
fuzz_rollout, fuzz_safetensors) into corpus/dataset/, corpus/ckpt/, corpus/rollout/ and
corpus/safetensors/: inputs that build valid files (each kind of data set; a policy checkpoint,
one with Adam moments, a reward checkpoint; rollout files of a few shapes, read whole or as one
part of several; safetensors files of every dtype with edge values, unaligned, empty) and a few
faulty ones, from which the fuzzer mutates. Each byte below is one draw of the recipe, in the
order fuzz_dataset.c, fuzz_ckpt.c, fuzz_rollout.c, fuzz_safetensors.c and fuzz_h5.h read them (px_fuzz_pick(n) takes a byte modulo n); the comments
name the choice.
Run: python3 tests/fuzz/make_seeds.py   (check with PX_FUZZ_VERBOSE=1 fuzz_replay_<target>)"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
INTENDED = [0]  # px_fz_attr: the attribute as intended
USUAL = [7]  # px_fuzz_int / px_fuzz_real: the usual value


def dataset_1d(type_, layout):
    """px_fz_dataset: file type index, shape as intended, layout; a chunked Fletcher-32 layout
    (2) also draws whether to corrupt a chunk (1: no)."""
    return [type_, 8, layout] + ([1] if layout == 2 else [])


def dataset_seed(kind, fields, records):
    b = [0, 0, 0]  # parts 1, part 0, any kind
    b += [len(records)]  # records
    b += [1] + INTENDED  # format "proxima-dataset"
    b += USUAL + INTENDED  # format_version (the usual: 2)
    b += [kind] + INTENDED  # kind
    b += USUAL + INTENDED  # n_records
    for name in ["text", "prompt", "completion", "chosen", "rejected", "reference"]:
        if name not in fields:
            b += [0]  # no such group
            continue
        b += [4]  # a group with offsets and tokens
        total = 0
        for rec in records:
            text = rec[fields.index(name)].encode()
            b += [len(text)] + list(text)  # at most 8 bytes a record
            total += len(text)
        b += [1]  # no offset overwritten
        if total:
            b += [1]  # no token overwritten
        b += dataset_1d(0, 2)  # offsets: int64, chunked with checksums
        b += dataset_1d(1, 0)  # tokens: int32, contiguous
    return bytes(b)


def ckpt_model(head_lm, optim, reward):
    b = [1]  # head as the group's name says
    b += [1, 1, 0, 0, 1]  # n_head 2, vocab 260, max_seq_len 2, n_layer 1, n_embd 4
    b += (USUAL + INTENDED) * 5  # the five configuration attributes
    b += [1] + INTENDED  # head
    if reward:
        b += USUAL + INTENDED + USUAL + INTENDED  # gain, bias
    else:
        b += [1]  # no gain and bias
    tensor = [8, 5, 1]  # as written, ordinary values, no corrupted chunk
    n = 16 if head_lm else 18
    b += tensor * n
    if optim:
        b += [1] + USUAL + INTENDED  # moments, step
        b += ([1] + tensor * n) * 2  # m and v
    else:
        b += [0]
    return b


def ckpt_seed(groups, optim):
    b = [1] + INTENDED  # format "proxima-checkpoint"
    b += USUAL + INTENDED  # format_version
    b += USUAL + INTENDED + USUAL + INTENDED  # step, iteration
    b += INTENDED  # config
    for m, name in enumerate(["policy", "reference", "value", "reward"]):
        if name in groups:
            b += [0] + ckpt_model(m < 2, optim, name == "reward")
        else:
            b += [1] + ([0] if m == 0 else [])  # absent
    b += [1]  # /state
    ints = [1, 1, 1, 0, 1, 1, 1, 1, 1, 0]  # PX_PPO_STATE: which are int64
    for is_int in ints:
        b += [1]  # present
        b += USUAL + (dataset_1d(0, 0) if is_int else dataset_1d(5, 0))
    return bytes(b)


def gpt2_files():
    """A small gpt2 tokenizer: the 256 bytes as GPT-2 spells them, the merges "h e" and "Ġ t",
    <|endoftext|> at 258; its vocab.json and merges.txt, and bpe.h's canonical hash."""
    import hashlib, json
    printable = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    spell, nxt = {}, 0x100
    for c in range(256):
        if c in printable:
            spell[c] = chr(c)
        else:
            spell[c] = chr(nxt)
            nxt += 1
    tokens = [spell[c] for c in range(256)] + ["he", spell[0x20] + "t", "<|endoftext|>"]
    merges = [("h", "e"), (spell[0x20], "t")]
    vocab = json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False).encode()
    merges_txt = ("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)).encode()
    canon = f"gpt2-bpe\nvocab {len(tokens)}\n" + "".join(t + "\n" for t in tokens)
    canon += f"merges {len(merges)}\n" + "".join(f"{a} {b}\n" for a, b in merges)
    return vocab, merges_txt, hashlib.sha256(canon.encode()).hexdigest()


def ckpt_gpt2_tokenizer():
    """fuzz_ckpt's /tokenizer recipe for gpt2_files(), every part as intended."""
    vocab, merges, digest = gpt2_files()
    b = [1, 1, 1] + list(digest.encode())  # a group; gpt2; the hash spelt out
    b += INTENDED * 2  # kind, sha256
    b += (USUAL + INTENDED) * 4  # n_vocab, pad_id, bos_id, eos_id: the usual (gpt2's) values
    for text in (vocab, merges):
        b += [len(text) >> 8, len(text) & 255] + list(text)
        b += [2, 15, 2, 1]  # uint8, the intended shape, chunked with Fletcher-32, not corrupted
    return b


def rollout_seed(parts, part, attrs, rows, P, R, kl, shift):
    """rows: (prompt_len, response_len) per row; kl 0 for k1, 1 for k3; shift 0 or 1."""
    n = len(rows)
    b = [parts - 1, part, 1 if attrs else 0]  # the part read; attrs wanted or NULL
    b += [n, P - 1, R - 1]  # N, P, R
    b += [1]  # n_rows declared as stored
    b += [1] + INTENDED  # format "proxima-rollouts"
    b += (USUAL + INTENDED) * 5  # format_version, n_rows, prompt/response_positions, iteration
    b += (USUAL + INTENDED) * 3  # beta, gamma, lambda
    b += [kl] + INTENDED  # kl_estimator
    b += (USUAL + INTENDED) * 5  # kl_clamp, no_eos_penalty, whiten_mean, whiten_std, whiten_eps
    b += ([7] if shift else [0]) + INTENDED  # whiten_shift_mean: usual 1, or the edge 0
    b += (USUAL + INTENDED) * 3  # pad_id, bos_id, eos_id
    for pl, rl in rows:
        assert 0 <= pl <= P and 0 <= rl <= R
        b += [pl, rl]
    b += [1, 1]  # no length and no mask byte overwritten
    for _ in range(11):  # tokens ... score: the intended type and shape, chunked, Fletcher-32
        b += [15, 15, 15, 2] + ([1] if n > 0 else [])  # (a stored chunk: not corrupted)
    b += [0]  # the file left as written
    return bytes(b)


def st_tensor(dtype, shape, values, fault=0, fault_draws=()):
    """fuzz_safetensors.c's px_fz_entry: dtype (0 F32, 1 F16, 2 BF16), ndim, the dimensions (each
    0-3), the fault byte (under 16: none; 15 + k: fault k) and the element bytes, then the
    fault's own draws."""
    import struct
    raw = b"".join(struct.pack("<f" if dtype == 0 else "<H", v) for v in values)
    return [dtype, len(shape)] + list(shape) + [15 + fault if fault else 0] + list(raw) + \
        list(fault_draws)


def st_seed(meta, tensors, pad, tail=(0, 0)):
    """A safetensors recipe: how many tensors, the metadata (0 none, 1 good, 2 a number, 3 not an
    object), the tensors, whether to pad the header to 8, then extra data (0: none) and the
    declared header length (0: true)."""
    b = [len(tensors), meta]
    for t in tensors:
        b += t
    return bytes(b + [pad] + list(tail))


def write(target, name, data):
    with open(os.path.join(HERE, "corpus", target, name), "wb") as f:
        f.write(data)


write("dataset", "text", dataset_seed(0, ["text"], [("hello",), ("",), ("37+45=82",)]))
write("dataset", "sft", dataset_seed(1, ["prompt", "completion"], [("37+45=", "82"), ("1+1=", "2")]))
write("dataset", "prefs", dataset_seed(2, ["prompt", "chosen", "rejected"], [("9+9=", "18", "17")]))
write("dataset", "prompts", dataset_seed(3, ["prompt", "reference"], [("2+2=", "4"), ("5+5=", "10")]))
write("ckpt", "policy", ckpt_seed(["policy"], False))
write("ckpt", "policy-optim", ckpt_seed(["policy"], True))
write("ckpt", "policy-reward", ckpt_seed(["policy", "reward"], False))
write("ckpt", "policy-gpt2", ckpt_seed(["policy"], False) + bytes(ckpt_gpt2_tokenizer()))
write("rollout", "one-row", rollout_seed(1, 0, True, [(1, 1)], 1, 1, 0, 1))
write("rollout", "batch", rollout_seed(1, 0, True, [(3, 6), (4, 2), (1, 0), (2, 5)], 4, 6, 0, 1))
write("rollout", "part-of-3", rollout_seed(3, 1, True, [(8, 8), (5, 3), (2, 1), (7, 8), (1, 4),
                                                        (6, 7)], 8, 8, 1, 0))
write("rollout", "uneven-no-attrs", rollout_seed(4, 3, False, [(2, 3)] * 5, 3, 4, 1, 1))
write("rollout", "empty", rollout_seed(2, 1, True, [], 2, 2, 0, 1))
F16_EDGES = [0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0xFC00, 0x7E00]  # 0, -0,
# subnormals, the smallest normal, the largest, inf, -inf, NaN
BF16_EDGES = [0x3F80, 0x8000, 0x0001, 0x7F80, 0xFF80, 0x7FC0]
write("safetensors", "gpt2-like", st_seed(1, [st_tensor(0, [2, 3], [0.5, -1, 2, 1e-40, 3e38, -0.0]),
                                            st_tensor(1, [3, 3], F16_EDGES),
                                            st_tensor(2, [2, 3], BF16_EDGES),
                                            st_tensor(0, [], [7.25]),
                                            st_tensor(1, [0, 2], [])], 1))
write("safetensors", "unaligned", st_seed(0, [st_tensor(1, [3], [0x3C00, 0xC000, 0x3800]),
                                            st_tensor(0, [2, 2], [1, 2, 3, 4])], 0))
write("safetensors", "empty", st_seed(1, [], 1))
write("safetensors", "overlap", st_seed(0, [st_tensor(0, [2], [1, 2]),
                                          st_tensor(0, [2], [3, 4], 4, [0, 0])], 1))
write("safetensors", "huge-shape", st_seed(0, [st_tensor(2, [2, 2, 2], [0] * 8, 3, [42, 42, 42])], 1))
write("safetensors", "bad-dtype", st_seed(0, [st_tensor(1, [1], [0], 1, [0])], 1))
