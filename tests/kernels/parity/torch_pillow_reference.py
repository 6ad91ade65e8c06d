#!/usr/bin/env python3
"""PyTorch / Pillow reference outputs for tests/kernels/parity/test_parity_torch_pillow.cpp.

Usage: torch_pillow_reference.py DIR

DIR/cases.txt has one case per line, `op name k=v ...`; the inputs are raw little-endian files
DIR/<name>.<part>.bin written by the C++ test (float32, or uint8 for PIL). For each case this script
writes DIR/<name>.out.bin with what PyTorch 1.13 (CPU, float32) or Pillow computes:

  interp_planes  P H W OH OW        F.interpolate(x[1, P, H, W], (OH, OW), 'bilinear', align_corners=False)
  interp_nhwc    H W C OH OW        the same on x[H, W, C] seen as NCHW (permuted, contiguous), output [OH, OW, C]
  layernorm      R C eps res        torch.layer_norm(x (+ res), (C,), gamma, beta, eps)
  groupnorm      H W C G eps relu   torch.group_norm on x[H, W, C] seen as NCHW, optional ReLU, output NHWC
  softmax        R N                torch.softmax(x[R, N], -1)
  pil            H W ch OH OW       PIL Image.resize((OW, OH), BILINEAR) of an L (ch=1) or RGB (ch=3) image
"""
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import PIL
from PIL import Image


def load(d, name, part, shape, dtype=np.float32):
    a = np.fromfile(d / f"{name}.{part}.bin", dtype=dtype)
    if a.size != int(np.prod(shape)):
        raise SystemExit(f"{name}.{part}.bin: {a.size} values, expected {shape}")
    return a.reshape(shape)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    d = Path(sys.argv[1])
    torch.set_num_threads(1)
    n = 0
    for line in (d / "cases.txt").read_text().splitlines():
        if not line.strip():
            continue
        op, name, *kv = line.split()
        p = dict(x.split("=", 1) for x in kv)
        i = lambda k: int(p[k])
        if op == "interp_planes":
            x = torch.from_numpy(load(d, name, "in", (1, i("P"), i("H"), i("W"))))
            y = F.interpolate(x, size=(i("OH"), i("OW")), mode="bilinear", align_corners=False)
        elif op == "interp_nhwc":
            x = torch.from_numpy(load(d, name, "in", (1, i("H"), i("W"), i("C"))))
            x = x.permute(0, 3, 1, 2).contiguous()
            y = F.interpolate(x, size=(i("OH"), i("OW")), mode="bilinear", align_corners=False)
            y = y.permute(0, 2, 3, 1)
        elif op == "layernorm":
            R, C = i("R"), i("C")
            x = torch.from_numpy(load(d, name, "in", (R, C)))
            if i("res"):
                x = x + torch.from_numpy(load(d, name, "res", (R, C)))
            g = torch.from_numpy(load(d, name, "gamma", (C,)))
            b = torch.from_numpy(load(d, name, "beta", (C,)))
            y = torch.layer_norm(x, (C,), g, b, float(p["eps"]))
        elif op == "groupnorm":
            H, W, C = i("H"), i("W"), i("C")
            x = torch.from_numpy(load(d, name, "in", (1, H, W, C))).permute(0, 3, 1, 2).contiguous()
            g = torch.from_numpy(load(d, name, "gamma", (C,)))
            b = torch.from_numpy(load(d, name, "beta", (C,)))
            y = torch.group_norm(x, i("G"), g, b, float(p["eps"]))
            if i("relu"):
                y = torch.relu(y)
            y = y.permute(0, 2, 3, 1)
        elif op == "softmax":
            x = torch.from_numpy(load(d, name, "in", (i("R"), i("N"))))
            y = torch.softmax(x, dim=-1)
        elif op == "pil":
            H, W, ch = i("H"), i("W"), i("ch")
            a = load(d, name, "in", (H, W, ch), np.uint8)
            img = Image.fromarray(a[:, :, 0], "L") if ch == 1 else Image.fromarray(a, "RGB")
            y = np.asarray(img.resize((i("OW"), i("OH")), Image.BILINEAR), dtype=np.uint8)
            y.tofile(d / f"{name}.out.bin")
            n += 1
            continue
        else:
            raise SystemExit(f"unknown op {op!r} in cases.txt")
        y.contiguous().numpy().astype(np.float32).tofile(d / f"{name}.out.bin")
        n += 1
    print(f"torch_pillow_reference.py: wrote {n} reference outputs "
          f"(torch {torch.__version__}, Pillow {PIL.__version__})")


if __name__ == "__main__":
    main()
