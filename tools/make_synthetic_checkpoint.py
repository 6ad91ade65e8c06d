#!/usr/bin/env python3
"""Write a synthetic (random-weight) M2FP checkpoint in ModelScope format, for tests.

Usage (needs torch; use Debian's /usr/bin/python3):
    /usr/bin/python3 tools/make_synthetic_checkpoint.py --variant cihp|lip --seed N --out DIR \
        [--convert OUT.safetensors]

Writes
    DIR/pytorch_model.pt      torch.save({'model': state_dict}) with the exact upstream tensor names,
                              shapes, dtypes and order (tools/convert_weights.py: expected_tensors)
    DIR/configuration.json    tools/configs/<variant>_configuration.json plus a top-level
                              "m2fp_synthetic": {"seed", "generator", "note"} object
and, with --convert, runs tools/convert_weights.py DIR -o OUT.safetensors.

The weights are random (torch.Generator seeded with N: same seed, same bytes) but scaled so that
activations stay in a realistic range through the 101-layer backbone, the deformable encoder and
the 9-layer masked decoder, and so that the outputs on a photo are not degenerate: many queries
have a confident class (spread over the part classes and the Human class), mask logits take both
signs with a spread of a few units. init_tensor() gives the rule applied to each tensor; then
calibrate() runs the backbone once on a synthetic photo-like image (in float64) and sets the
BatchNorm running statistics to that data's statistics, as training would, and centres the pixel
decoder's input projections. The scale constants below were measured, see their comment.
This is not a trained model: its "parsing" is meaningless, only its arithmetic is exercised.
"""

import argparse
import collections
import json
import math
import os
import re
import subprocess
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import convert_weights  # noqa: E402  (expected tensor table, shared with the converter)

VARIANTS = {
    "cihp": os.path.join(HERE, "configs", "cihp_configuration.json"),
    "lip": os.path.join(HERE, "configs", "lip_configuration.json"),
}

# Scales, chosen by measuring the heads on photos with tests/python/synth_forward.py (seed 0, CIHP,
# skimage's astronaut.png and coffee.png). Without the decoder damping below, the nine decoder layers
# pull all 100 queries towards one vector (cross-attention adds the same level_embed-dominated
# average to every query) and every query predicts the same class.
BRANCH_GAMMA = (0.10, 0.20)    # gamma range of the last BN of each residual branch (conv3.norm)
CLASS_WEIGHT_STD = 0.25        # class_embed weight std: logits std ~ 4 on LayerNorm-ed queries
NO_OBJECT_BIAS = -1.0          # class_embed bias of the "no object" class (the last one)
HUMAN_BIAS = 4.0               # added to the bias of the Human class (multi-person variant only)
MASK_EMBED_GAIN = 0.3          # gain of the last mask_embed layer: mask logits std ~ 5, both signs
ENC_ATTN_OUT_GAIN = 0.5        # output_proj of the deformable attention (pixel decoder)
DEC_CROSS_OUT_GAIN = 0.15      # out_proj of the decoder's cross-attention  \  small: keeps the
DEC_SELF_OUT_GAIN = 0.1        # out_proj of the decoder's self-attention    | queries distinct
DEC_FFN_GAIN = 0.5             # linear2 of the decoder's FFN               /

# GroupNorm / LayerNorm parameters outside the backbone: adapter_1.norm, layer_1.norm, norm1, norm2,
# decoder_norm, transformer_*_layers.N.norm, and input_proj.N.1 (the GroupNorm of nn.Sequential).
NORM_PARAM = re.compile(r"(\.norm|\.norm1|\.norm2|\.decoder_norm|\.input_proj\.\d+\.1)\.(weight|bias)$")


def _normal(shape, std, gen, mean=0.0):
    return torch.randn(shape, generator=gen, dtype=torch.float32) * std + mean


def _uniform(shape, low, high, gen):
    return torch.rand(shape, generator=gen, dtype=torch.float32) * (high - low) + low


def _xavier(shape, gen, gain=1.0):
    fan_out, fan_in = shape[0], int(math.prod(shape[1:]))
    return _normal(shape, gain * math.sqrt(2.0 / (fan_in + fan_out)), gen)


def _he_conv(shape, gen):
    fan_in = int(math.prod(shape[1:]))
    return _normal(shape, math.sqrt(2.0 / fan_in), gen)


def _sampling_offsets_bias(nheads, levels, points):
    """Deformable-DETR grid: head h points along angle 2*pi*h/heads, point i at distance i+1."""
    thetas = torch.arange(nheads, dtype=torch.float32) * (2.0 * math.pi / nheads)
    grid = torch.stack([thetas.cos(), thetas.sin()], -1)
    grid = grid / grid.abs().max(-1, keepdim=True)[0]
    grid = grid.view(nheads, 1, 1, 2).repeat(1, levels, points, 1)
    for i in range(points):
        grid[:, :, i, :] *= i + 1
    return grid.reshape(-1)


def init_tensor(name, shape, dtype, gen, model_cfg):
    """The random value of one tensor; the rule depends on the module the name belongs to.
    (BatchNorm statistics and the input_proj biases are then replaced by calibrate().)"""
    shape = tuple(shape)
    if dtype == "I64":                                    # BatchNorm num_batches_tracked
        return torch.randint(10000, 200000, shape, generator=gen, dtype=torch.int64)
    leaf = name.rsplit(".", 1)[-1]
    if name.startswith("backbone."):
        if ".norm." in name:                              # BatchNorm: near identity
            if leaf == "weight":
                if name.endswith("conv3.norm.weight"):    # damp the residual branch
                    return _uniform(shape, BRANCH_GAMMA[0], BRANCH_GAMMA[1], gen)
                return _normal(shape, 0.1, gen, 1.0)
            if leaf == "bias":
                return _normal(shape, 0.05, gen)
            if leaf == "running_mean":
                return _normal(shape, 0.05, gen)
            if leaf == "running_var":
                return _uniform(shape, 0.9, 1.1, gen)
            raise ValueError(name)
        return _he_conv(shape, gen)                       # conv, He-scaled

    if NORM_PARAM.search(name):                           # GroupNorm / LayerNorm
        return _normal(shape, 0.1, gen, 1.0) if leaf == "weight" else _normal(shape, 0.05, gen)

    if name.endswith("transformer.level_embed") or name.endswith("predictor.level_embed.weight") \
            or name.endswith("query_feat.weight") or name.endswith("query_embed.weight"):
        return _normal(shape, 1.0, gen)

    if ".sampling_offsets." in name:
        if leaf == "bias":
            enc = model_cfg["encoder"]
            nheads = enc["transformer_nheads"]
            levels = len(enc["transformer_in_features"])
            return _sampling_offsets_bias(nheads, levels, shape[0] // (2 * nheads * levels)) + \
                _normal(shape, 0.1, gen)
        return _normal(shape, 0.02, gen)               # offsets of a fraction of a cell
    if ".attention_weights." in name:                  # non-uniform softmax over (level, point)
        return _normal(shape, 0.04, gen) if leaf == "weight" else _normal(shape, 0.5, gen)

    if name.endswith("class_embed.weight"):
        return _normal(shape, CLASS_WEIGHT_STD, gen)
    if name.endswith("class_embed.bias"):
        b = _normal(shape, 0.5, gen)
        b[-1] = NO_OBJECT_BIAS
        if not model_cfg.get("single_human", False):
            b[-2] += HUMAN_BIAS
        return b
    if ".mask_embed.layers." in name:
        last = name.endswith("layers.2.weight") or name.endswith("layers.2.bias")
        if leaf == "weight":                           # He for the ReLU layers, then the gain
            return _normal(shape, (MASK_EMBED_GAIN if last else 1.0) * math.sqrt(2.0 / shape[1]), gen)
        return _normal(shape, 0.1, gen)

    if leaf == "bias":                                 # every other bias: small
        return _normal(shape, 0.02, gen)
    if len(shape) == 4:                                # pixel-decoder convs (input_proj, adapter,
        return _he_conv(shape, gen)                    # layer, mask_features): as the backbone's
    if "output_proj" in name:                          # attention outputs: damped Xavier
        return _xavier(shape, gen, ENC_ATTN_OUT_GAIN)
    if "multihead_attn.out_proj" in name:
        return _xavier(shape, gen, DEC_CROSS_OUT_GAIN)
    if "self_attn.out_proj" in name:
        return _xavier(shape, gen, DEC_SELF_OUT_GAIN)
    if "transformer_ffn_layers" in name and "linear2" in name:
        return _xavier(shape, gen, DEC_FFN_GAIN)
    if "in_proj_weight" in name:                       # q, k, v blocks each Xavier over [d, d]
        d = shape[1]
        return torch.cat([_xavier((d, d), gen) for _ in range(shape[0] // d)], 0)
    return _xavier(shape, gen)                         # value_proj and FFN linears


def calibration_image(gen, height=256, width=320):
    """A deterministic photo-like input [1, 3, H, W], normalised like the model's input: smooth
    colour regions (low-frequency noise), some texture (mid-frequency) and pixel noise."""
    def noise(h, w, amp):
        z = torch.randn((1, 3, h, w), generator=gen)
        return F.interpolate(z, size=(height, width), mode="bicubic", align_corners=False) * amp
    rgb = 128 + noise(4, 5, 60) + noise(16, 20, 25) + noise(height, width, 5)
    rgb = rgb.clamp(0, 255)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    return (rgb - mean) / std


@torch.no_grad()
def calibrate(sd, model_cfg, gen):
    """Data-dependent statistics, as training would leave them. A random ResNet whose BatchNorm
    running statistics are not those of its data maps every position to nearly the same feature
    (each conv turns the positive mean of its ReLU input into a per-channel constant, which grows
    layer after layer). So run the backbone once on calibration_image() and set every BN's
    running_mean / running_var to the batch statistics of its input (times a small random factor);
    then give the pixel decoder's input_proj convs the bias that centres their output."""
    bb = model_cfg["backbone"]
    blocks = convert_weights.RESNET_BLOCKS[bb["depth"]]
    groups = bb.get("num_groups", 1)
    stride_in_1x1 = bb.get("stride_in_1x1", False)

    # float64 throughout, so that the float32 results do not depend on the machine's conv kernels
    # or thread count (the checkpoint must be the same bytes everywhere for a seed)
    def conv_bn(prefix, x, stride=1, dilation=1, relu=True, g=1):
        w = sd[prefix + ".weight"].double()
        pad = dilation * (w.shape[-1] // 2)
        y = F.conv2d(x, w, None, stride, pad, dilation, g)
        n = prefix + ".norm."
        mean, var = y.mean((0, 2, 3)), y.var((0, 2, 3), unbiased=False)
        mean = mean + _normal(mean.shape, 0.05, gen).double() * var.sqrt()
        var = var * _uniform(var.shape, 0.9, 1.1, gen).double()
        sd[n + "running_mean"] = mean.float().contiguous()
        sd[n + "running_var"] = var.float().contiguous()
        y = F.batch_norm(y, mean, var, sd[n + "weight"].double(), sd[n + "bias"].double(), False, 0.0, 1e-5)
        return F.relu(y) if relu else y

    x = calibration_image(gen).double()
    x = conv_bn("backbone.stem.conv1", x, 2)
    x = conv_bn("backbone.stem.conv2", x)
    x = conv_bn("backbone.stem.conv3", x)
    x = F.max_pool2d(x, 3, 2, 1)
    feats = {}
    for idx, n_blocks in enumerate(blocks):
        stage = idx + 2
        dil = bb.get("res4_dilation", 1) if stage == 4 else bb.get("res5_dilation", 1) if stage == 5 else 1
        for b in range(n_blocks):
            p = "backbone.res%d.%d" % (stage, b)
            stride = 2 if (b == 0 and idx > 0 and dil == 1) else 1
            d = dil * bb.get("res5_multi_grid", [1] * n_blocks)[b] if stage == 5 else dil
            s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
            sc = conv_bn(p + ".shortcut", x, stride, relu=False) if p + ".shortcut.weight" in sd else x
            y = conv_bn(p + ".conv1", x, s1)
            y = conv_bn(p + ".conv2", y, s3, d, g=groups)
            y = conv_bn(p + ".conv3", y, relu=False)
            x = F.relu(y + sc)
        feats["res%d" % stage] = x

    # pixel decoder input_proj.{i}: 1x1 conv + GroupNorm, levels from low to high resolution
    enc = model_cfg["encoder"]
    levels = sorted(enc["transformer_in_features"], key=lambda f: -convert_weights.STAGE_INDEX[f])
    for i, f in enumerate(levels):
        p = "sem_seg_head.pixel_decoder.input_proj.%d.0." % i
        y = F.conv2d(feats[f], sd[p + "weight"].double())
        sd[p + "bias"] = (-y.mean((0, 2, 3)).float() + _normal(y.shape[1:2], 0.02, gen)).contiguous()


def make_state_dict(model_cfg, seed):
    """OrderedDict name -> tensor, in upstream state-dict order, deterministic for `seed`."""
    gen = torch.Generator().manual_seed(seed)
    sd = collections.OrderedDict()
    for e in convert_weights.expected_tensors(model_cfg):
        t = init_tensor(e.name, e.shape, e.dtype, gen, model_cfg)
        assert tuple(t.shape) == tuple(e.shape), (e.name, t.shape, e.shape)
        sd[e.name] = t.contiguous()
    calibrate(sd, model_cfg, gen)
    return sd


def write_checkpoint(variant, seed, out_dir):
    with open(VARIANTS[variant]) as f:
        cfg = json.load(f, object_pairs_hook=collections.OrderedDict)
    cfg["m2fp_synthetic"] = collections.OrderedDict([
        ("seed", seed),
        ("generator", "tools/make_synthetic_checkpoint.py"),
        ("note", "random weights, not a trained model"),
    ])
    sd = make_state_dict(cfg["model"], seed)
    os.makedirs(out_dir, exist_ok=True)
    torch.save({"model": sd}, os.path.join(out_dir, "pytorch_model.pt"))
    with open(os.path.join(out_dir, "configuration.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    return sd, cfg


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write a random-weight M2FP checkpoint (ModelScope format).")
    ap.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True, metavar="DIR")
    ap.add_argument("--convert", metavar="OUT.safetensors", help="then convert it with convert_weights.py")
    args = ap.parse_args(argv)
    sd, _ = write_checkpoint(args.variant, args.seed, args.out)
    n = sum(t.numel() for t in sd.values())
    print("wrote %s: %s synthetic checkpoint, seed %d, %d tensors, %s values"
          % (args.out, args.variant, args.seed, len(sd), format(n, ",")))
    if args.convert:
        rc = subprocess.call([sys.executable, os.path.join(HERE, "convert_weights.py"), args.out,
                              "-o", args.convert])
        if rc != 0:
            print("make_synthetic_checkpoint.py: error: conversion failed (status %d)" % rc, file=sys.stderr)
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
