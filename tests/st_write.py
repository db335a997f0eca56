#!/usr/bin/env python3
"""An independent safetensors writer for tests/test_safetensors.c: the format written by hand
(8-byte little-endian header length, JSON header, data) with numpy, no safetensors package.

    /usr/bin/python3 tests/st_write.py OUT_DIR

Writes OUT_DIR/hf.safetensors with F32, F16 and BF16 tensors of known values (subnormals,
infinities, NaN, negative zero) and, for each tensor NAME, OUT_DIR/NAME.f32: the float32 values
it must read as (numpy's float16 -> float32 conversion; for BF16 the top 16 bits of float32
values, widened back). The header is not padded and the tensors are packed end to end, so some
of them start at odd addresses, as a careless writer may leave them."""
import json
import os
import struct
import sys

import numpy as np


def main(out):
    f16 = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, -65504.0, 2.0 ** -24, -(2.0 ** -24),
                    3 * 2.0 ** -20, 2.0 ** -14, 2.0 ** -14 - 2.0 ** -24, 1 / 3, np.inf,
                    -np.inf, np.nan, 0.1], dtype=np.float16).reshape(4, 4)
    f16_bits = f16.view(np.uint16).copy()
    f16_bits[3, 3] = 0xFE01  # a negative NaN with a payload (quiet)
    f16 = f16_bits.view(np.float16)
    f32_src = np.array([0.0, -0.0, 1.0, -1.5, 3.1415927, 1e-40, -1e-45, 1.1754944e-38, 3e38,
                        -3e38, np.inf, -np.inf, np.nan, 1e-3, 123456.78, -7.0], dtype=np.float32)
    bf16_bits = (f32_src.view(np.uint32) >> 16).astype(np.uint16).reshape(2, 2, 4)
    bf16_as_f32 = (bf16_bits.astype(np.uint32) << 16).view(np.float32)
    odd = np.array([1.0, -2.0, 0.5], dtype=np.float16)  # 6 bytes: what follows is unaligned
    f32 = np.arange(-6, 6, dtype=np.float32).reshape(3, 4) / np.float32(7)
    scalar = np.array(2.5, dtype=np.float32)

    tensors = [  # name, dtype, shape, raw bytes, expected float32
        ("odd.f16", "F16", odd.shape, odd.tobytes(), odd.astype(np.float32)),
        ("w.f32", "F32", f32.shape, f32.tobytes(), f32),
        ("h.f16", "F16", f16.shape, f16.tobytes(), f16.astype(np.float32)),
        ("b.bf16", "BF16", bf16_bits.shape, bf16_bits.tobytes(), bf16_as_f32),
        ("scalar", "F32", (), scalar.tobytes(), scalar),
        ("empty", "BF16", (0, 3), b"", np.zeros((0, 3), dtype=np.float32)),
    ]
    header, data = {"__metadata__": {"format": "pt", "note": "hand-written"}}, b""
    for name, dtype, shape, raw, _ in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    with open(os.path.join(out, "hf.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
    for name, _, _, _, want in tensors:
        with open(os.path.join(out, name + ".f32"), "wb") as f:
            f.write(np.ascontiguousarray(want, dtype=np.float32).tobytes())


if __name__ == "__main__":
    main(sys.argv[1])
