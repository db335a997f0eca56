#!/usr/bin/env python3
"""Checks that every include of Proxima's own headers points down the layers (README,
Development):

    util  <  dist  <  model, rl  <  io, data  <  rollout  <  train  <  cli

A file may include headers of its own layer and of the layers below it, never above. io sits
above model because a checkpoint holds models: io/checkpoint.c reads and writes a px_gpt (and
io/rollout.c stores rl's KL estimator); model and rl never touch a file. A header
in include/proxima/ belongs to the layer of the file that implements it (the table below); a
header beside its .c files (io/h5util.h, src/model/block.h) to that folder's layer.

    scripts/layers.py            check src/ and io/; exit 1 listing every include that points up
"""
import os
import re
import sys

ORDER = ["util", "dist", "model", "io", "rollout", "train", "cli"]
FOLDER = {"util": "util", "dist": "dist", "model": "model", "rl": "model", "io": "io",
          "data": "io", "rollout": "rollout", "train": "train", "cli": "cli"}
HEADER = {
    "util": "bpe config error fault finite fsutil log rng runlock signals simd text tokenizer",
    "dist": "comm",
    "model": "blas gpt kernels optim rl",
    "io": "checkpoint dataset hf jsonl rollout safetensors synth",
    "rollout": "generate sampler",
    "train": "batch ppo rm run sft stage trainer",
    "cli": "cli",
}
LAYER_OF_HEADER = {h: layer for layer, names in HEADER.items() for h in names.split()}


def layer_of_file(path):
    parts = path.split(os.sep)
    if parts[0] == "io":
        return "io"
    if parts[0] == "src" and len(parts) > 2:
        return FOLDER.get(parts[1])
    if parts[0] == "include":
        return LAYER_OF_HEADER.get(os.path.splitext(parts[-1])[0])
    return None


def main():
    if len(sys.argv) > 1:
        print(__doc__.strip())
        return 0 if sys.argv[1] in ("-h", "--help") else 1
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    os.chdir(root)
    bad, unknown = [], []
    files = []
    for top in ("src", "io", "include/proxima"):
        for d, _, names in os.walk(top):
            files += [os.path.join(d, n) for n in names if n.endswith((".c", ".h"))]
    for path in sorted(files):
        mine = layer_of_file(path)
        if mine is None:
            unknown.append(path)
            continue
        for n, line in enumerate(open(path, encoding="utf-8"), 1):
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if not m:
                continue
            inc = m.group(1)
            if inc.startswith("proxima/"):
                theirs = LAYER_OF_HEADER.get(os.path.splitext(inc[len("proxima/"):])[0])
                if theirs is None:
                    unknown.append("%s:%d: %s" % (path, n, inc))
                    continue
            else:  # a header beside the file: its own folder
                theirs = mine
            if ORDER.index(theirs) > ORDER.index(mine):
                bad.append("%s:%d: %s includes %s (%s)" % (path, n, mine, inc, theirs))
    for u in unknown:
        print("layers: no layer known for %s: add it to scripts/layers.py" % u)
    for b in bad:
        print("layers: upward include: " + b)
    if bad or unknown:
        return 1
    print("layers: %d files, every include points down (%s)" % (len(files), " < ".join(ORDER)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
