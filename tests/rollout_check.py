#!/usr/bin/python3
"""Independent check of Proxima rollout files (issue 5, acceptance 3).

Recomputes, in numpy (float64) from a rollout file's logprobs, ref_logprobs, values, score,
mask, response_len, tokens and root attributes alone, what Proxima derived from them
(DESIGN.md section 2; the layout is in include/proxima/rollout.h):

  kl_t       = clamp(k(lp_t - ref_t), -kl_clamp, kl_clamp),  k1(d) = d,  k3(d) = e^-d - 1 + d
  rewards_t  = -beta kl_t at real tokens, + score at the last real token (response_len - 1)
  A          = GAE(gamma, lambda): delta_t = r_t + gamma V_{t+1} - V_t, A_t = delta_t +
               gamma lambda A_{t+1}, with V and A after the last real token 0
  whiten_mean, whiten_std = masked mean and sqrt(population variance + whiten_eps) of A over
               all rows (checked against the stored attributes)
  advantages = (A - whiten_shift_mean * whiten_mean) / whiten_std   (stored mean and std)
  returns    = A + values

for the seed's PPO (estimator gae). Critic-free files (estimator grpo, rloo or reinforce_pp) have
no values (0) and returns G_t = r_t + gamma G_{t+1} (A with V = 0, lambda = 1); with kl_in = loss
the rewards hold the score alone (beta 0). reinforce_pp whitens G as gae its A; grpo gives every
real token of row i (r_i - mean_g) / (std_g + group_eps) (sample std; without the division when
grpo_scale_std is 0), rloo r_i - (mean of the other group_size - 1 rows of its group), r_i the
row's summed rewards and g rows i // group_size, with whiten_mean 0 and whiten_std 1.

and compares with the stored rewards, advantages, returns and whitening statistics. It also
checks the file's own consistency: mask is the prefix of response_len, and a response without
EOS (its last real token is not eos_id) reached the length limit and has score no_eos_penalty.

Agreement means |stored - recomputed| <= 1e-5 * max(1, |recomputed|) (absolute 1e-5 for values up
to 1, relative beyond: the stored values are float32). Positions where mask is 0 must hold exactly
0 in rewards, advantages and returns; the inputs there are ignored.

Usage: /usr/bin/python3 rollout_check.py [--expect-mismatch] FILE...
Exit 0 when every file agrees, 1 with a table of errors otherwise (with --expect-mismatch, the
other way round: for checking that the checker catches a tampered file), 77 when h5py or numpy
is missing, 2 on a file that cannot be read as a rollout file.
"""
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {sys.executable} lacks h5py or numpy ({e}): install python3-h5py python3-numpy")
    sys.exit(77)

TOL = 1e-5


def attr(f, name):
    if name not in f.attrs:
        raise ValueError(f"attribute '{name}' is missing")
    v = f.attrs[name]
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v[()]
    return v


def load(path):
    with h5py.File(path, "r") as f:
        if attr(f, "format") != "proxima-rollouts" or int(attr(f, "format_version")) != 1:
            raise ValueError(f"format {attr(f, 'format')!r} v{attr(f, 'format_version')}, "
                             "expected 'proxima-rollouts' v1")
        a = {k: attr(f, k) for k in (
            "n_rows", "prompt_positions", "response_positions", "iteration", "beta", "gamma",
            "lambda", "kl_estimator", "kl_clamp", "no_eos_penalty", "whiten_mean", "whiten_std",
            "whiten_eps", "whiten_shift_mean", "pad_id", "bos_id", "eos_id")}
        # the estimator's attributes; files from before there was a choice are the seed's PPO
        for k, default in (("estimator", "gae"), ("group_size", 1), ("grpo_scale_std", 1),
                           ("group_eps", 1e-6), ("kl_in", "reward")):
            a[k] = attr(f, k) if k in f.attrs else default
        d = {k: f[k][()] for k in (
            "tokens", "prompt_len", "response_len", "logprobs", "ref_logprobs", "values",
            "rewards", "advantages", "returns", "mask", "score")}
    N, P, R = int(a["n_rows"]), int(a["prompt_positions"]), int(a["response_positions"])
    shapes = {"tokens": (N, P + R), "prompt_len": (N,), "response_len": (N,), "score": (N,)}
    for k, v in d.items():
        want = shapes.get(k, (N, R))
        if v.shape != want:
            raise ValueError(f"dataset '{k}' has shape {v.shape}, expected {want}")
    for k in ("logprobs", "ref_logprobs", "values", "rewards", "advantages", "returns", "score"):
        if d[k].dtype != np.float32:
            raise ValueError(f"dataset '{k}' is {d[k].dtype}, expected float32")
    if d["mask"].dtype != np.uint8:
        raise ValueError(f"dataset 'mask' is {d['mask'].dtype}, expected uint8")
    return a, d


def recompute(a, d):
    """The derived quantities, in float64, from the inputs and attributes only."""
    P, R = int(a["prompt_positions"]), int(a["response_positions"])
    rl = d["response_len"].astype(np.int64)
    N = rl.shape[0]
    real = np.arange(R)[None, :] < rl[:, None]  # the mask, from the lengths
    lp = d["logprobs"].astype(np.float64)
    ref = d["ref_logprobs"].astype(np.float64)
    v = np.where(real, d["values"].astype(np.float64), 0.0)
    score = d["score"].astype(np.float64)

    with np.errstate(over="ignore", invalid="ignore"):
        diff = np.where(real, lp - ref, 0.0)
        if a["kl_estimator"] == "k1":
            kl = diff
        elif a["kl_estimator"] == "k3":
            kl = np.expm1(-diff) + diff
        else:
            raise ValueError(f"unknown kl_estimator {a['kl_estimator']!r}")
    c = float(a["kl_clamp"])
    kl = np.where(real, np.clip(kl, -c, c), 0.0)

    beta = 0.0 if a["kl_in"] == "loss" else float(a["beta"])  # a KL loss term is not a reward
    rewards = -beta * kl
    rows = np.nonzero(rl > 0)[0]
    rewards[rows, rl[rows] - 1] += score[rows]
    rewards = np.where(real, rewards, 0.0)

    gamma, lam = float(a["gamma"]), float(a["lambda"])
    est = a["estimator"]
    if est != "gae":  # critic-free: no values; GAE with V = 0 and lambda = 1 is the returns
        v, lam = np.zeros_like(v), 1.0
    A = np.zeros((N, R))
    a_next = np.zeros(N)
    v_next = np.zeros(N)
    for t in range(R - 1, -1, -1):
        m = real[:, t]
        delta = rewards[:, t] + gamma * v_next - v[:, t]
        at = np.where(m, delta + gamma * lam * a_next, 0.0)
        A[:, t] = at
        a_next = at
        v_next = np.where(m, v[:, t], 0.0)

    ret = np.where(real, A + v, 0.0)
    if est in ("gae", "reinforce_pp"):
        vals = A[real]
        mean = float(vals.mean()) if vals.size else 0.0
        std = float(np.sqrt((vals.var() if vals.size else 0.0) + float(a["whiten_eps"])))
        shift = float(a["whiten_mean"]) if int(a["whiten_shift_mean"]) else 0.0
        adv = np.where(real, (A - shift) / float(a["whiten_std"]), 0.0)
    elif est in ("grpo", "rloo"):  # one advantage per response, against its group
        k = int(a["group_size"])
        seq = rewards.sum(axis=1).reshape(-1, k)
        if est == "grpo":
            a1 = seq - seq.mean(axis=1, keepdims=True)
            if int(a["grpo_scale_std"]):
                a1 = a1 / (seq.std(axis=1, ddof=1, keepdims=True) + float(a["group_eps"]))
        else:
            a1 = seq - (seq.sum(axis=1, keepdims=True) - seq) / (k - 1)
        adv = np.where(real, a1.reshape(-1)[:, None], 0.0)
        mean, std = 0.0, 1.0  # not whitened
    else:
        raise ValueError(f"unknown estimator {est!r}")

    # Consistency of the inputs themselves.
    eos = int(a["eos_id"])
    last_tok = np.full(N, -1, dtype=np.int64)
    last_tok[rows] = d["tokens"][rows, P + rl[rows] - 1]
    has_eos = last_tok == eos
    notes = []
    if not np.array_equal(d["mask"].astype(bool), real) or not np.isin(d["mask"], (0, 1)).all():
        bad = np.argwhere(d["mask"].astype(bool) != real)
        notes.append(f"mask is not the prefix of response_len (first at row/pos {bad[:1].tolist()})")
    if ((rl < 0) | (rl > R)).any() or ((d["prompt_len"] < 0) | (d["prompt_len"] > P)).any():
        notes.append("prompt_len or response_len out of range")
    cut = np.nonzero((rl > 0) & ~has_eos & (rl < R))[0]
    if cut.size:
        notes.append(f"rows {cut[:5].tolist()} end before the limit without EOS")
    no_eos = np.nonzero((rl > 0) & ~has_eos)[0]
    pen = np.float32(a["no_eos_penalty"])
    off = no_eos[d["score"][no_eos] != pen]
    if off.size:
        notes.append(f"rows {off[:5].tolist()} have no EOS but score != no_eos_penalty {pen}")

    return {"rewards": rewards, "advantages": adv, "returns": ret}, (mean, std), real, notes, \
        int(no_eos.size)


def compare(name, stored, want, real):
    stored = stored.astype(np.float64)
    err = np.abs(stored - want)
    over = err > TOL * np.maximum(1.0, np.abs(want))
    over |= ~real & (stored != 0)  # exactly 0 where masked out
    over |= ~np.isfinite(stored)
    idx = np.unravel_index(int(np.argmax(np.where(np.isfinite(err), err, np.inf))), err.shape)
    return (name, float(np.nanmax(err)) if err.size else 0.0, tuple(int(i) for i in idx),
            int(over.sum()), int(real.sum()))


def check(path):
    a, d = load(path)
    want, (mean, std), real, notes, n_no_eos = recompute(a, d)
    table = [compare(k, d[k], want[k], real) for k in ("rewards", "advantages", "returns")]
    for k, got, ref in (("whiten_mean", float(a["whiten_mean"]), mean),
                        ("whiten_std", float(a["whiten_std"]), std)):
        e = abs(got - ref)
        table.append((k, e, (), int(e > TOL * max(1.0, abs(ref))), 1))
    ok = not notes and all(row[3] == 0 for row in table)
    N, R = d["mask"].shape
    print(f"{path}: {N} rows x {R} positions, {int(real.sum())} real tokens, {n_no_eos} without "
          f"EOS, kl {a['kl_estimator']} clamp {float(a['kl_clamp']):g}, beta {float(a['beta']):g}, "
          f"gamma {float(a['gamma']):g}, lambda {float(a['lambda']):g}, "
          f"shift_mean {int(a['whiten_shift_mean'])}, estimator {a['estimator']} "
          f"(groups of {int(a['group_size'])}), KL in the {a['kl_in']}")
    print(f"  {'quantity':<12} {'max |error|':>12} {'at':>10} {'over tol':>9} {'of':>6}")
    for name, e, at, n_over, n in table:
        where = ",".join(map(str, at)) if at else "-"
        print(f"  {name:<12} {e:12.3e} {where:>10} {n_over:9d} {n:6d}")
    for n in notes:
        print(f"  inconsistent: {n}")
    print(f"  {'OK' if ok else 'MISMATCH'} (tolerance {TOL:g} x max(1, |value|))")
    return ok


def main(argv):
    expect_mismatch = "--expect-mismatch" in argv
    files = [x for x in argv if x != "--expect-mismatch"]
    if not files:
        print(__doc__)
        return 2
    all_ok = True
    for path in files:
        try:
            all_ok &= check(path)
        except (OSError, KeyError, ValueError) as e:
            print(f"{path}: cannot check: {e}")
            return 2
    if expect_mismatch:
        print("the checker found the mismatch, as expected" if not all_ok else
              "expected a mismatch, but every file agrees")
        return 0 if not all_ok else 1
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
