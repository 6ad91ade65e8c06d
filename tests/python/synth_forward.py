"""A compact functional PyTorch forward of M2FP, used to check that synthetic checkpoints give
non-degenerate outputs (tests/python/test_synthetic.py) and to tune tools/make_synthetic_checkpoint.py.

Written from SPEC.md with torch.nn.functional ops only (no modelscope, no nn.Module). The parity
reference for the C++ engine is tests/reference/m2fp_ref.py; this file only has to be right enough
to measure statistics of the heads and of the post-processed instance list.

    python: /usr/bin/python3 tests/python/synth_forward.py CKPT_DIR IMAGE.png   (prints statistics)
"""

import math
import os
import sys

import torch
import torch.nn.functional as F

MEAN = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)


def preprocess(image, short_edge=640, max_size=1333):
    """PIL RGB image -> (normalised padded [1, 3, Hp, Wp], (nh, nw))."""
    from PIL import Image
    import numpy as np
    w, h = image.size
    s = short_edge / min(h, w)
    nh, nw = (short_edge, s * w) if h < w else (s * h, short_edge)
    if max(nh, nw) > max_size:
        k = max_size / max(nh, nw)
        nh, nw = nh * k, nw * k
    nh, nw = int(nh + 0.5), int(nw + 0.5)
    resized = image.convert("RGB").resize((nw, nh), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(resized, dtype=np.float32).copy()).permute(2, 0, 1)   # [3, nh, nw]
    x = (x - MEAN) / STD
    hp, wp = (nh + 31) // 32 * 32, (nw + 31) // 32 * 32
    x = F.pad(x, (0, wp - nw, 0, hp - nh))
    return x[None], (nh, nw)


def conv_bn(sd, p, x, stride=1, pad=0, relu=True):
    w = sd[p + ".weight"]
    x = F.conv2d(x, w, None, stride, pad)
    x = F.batch_norm(x, sd[p + ".norm.running_mean"], sd[p + ".norm.running_var"],
                     sd[p + ".norm.weight"], sd[p + ".norm.bias"], False, 0.0, 1e-5)
    return F.relu(x) if relu else x


def backbone(sd, cfg, x):
    blocks = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}[cfg["backbone"]["depth"]]
    x = conv_bn(sd, "backbone.stem.conv1", x, 2, 1)
    x = conv_bn(sd, "backbone.stem.conv2", x, 1, 1)
    x = conv_bn(sd, "backbone.stem.conv3", x, 1, 1)
    x = F.max_pool2d(x, 3, 2, 1)
    feats = {}
    for si, n in enumerate(blocks):
        for b in range(n):
            p = "backbone.res%d.%d" % (si + 2, b)
            stride = 2 if (b == 0 and si > 0) else 1
            sc = conv_bn(sd, p + ".shortcut", x, stride, 0, False) if p + ".shortcut.weight" in sd else x
            y = conv_bn(sd, p + ".conv1", x)
            y = conv_bn(sd, p + ".conv2", y, stride, 1)
            y = conv_bn(sd, p + ".conv3", y, relu=False)
            x = F.relu(y + sc)
        feats["res%d" % (si + 2)] = x
    return feats


def sine_pos(h, w, d):
    """[d, h, w] sine encoding, d/2 features per axis (y first), normalised, scale 2*pi."""
    npf = d // 2
    y = (torch.arange(h, dtype=torch.float32) + 1) / (h + 1e-6) * 2 * math.pi
    x = (torch.arange(w, dtype=torch.float32) + 1) / (w + 1e-6) * 2 * math.pi
    dim_t = 10000 ** (2 * torch.div(torch.arange(npf), 2, rounding_mode="floor") / npf)
    py = y[:, None] / dim_t                                           # [h, npf]
    px = x[:, None] / dim_t                                           # [w, npf]
    py = torch.stack((py[:, 0::2].sin(), py[:, 1::2].cos()), 2).flatten(1)
    px = torch.stack((px[:, 0::2].sin(), px[:, 1::2].cos()), 2).flatten(1)
    pos_y = py[:, None, :].expand(h, w, npf)
    pos_x = px[None, :, :].expand(h, w, npf)
    return torch.cat((pos_y, pos_x), 2).permute(2, 0, 1)


def ms_deform_attn(sd, p, query, value_in, ref, shapes, nheads, npoints):
    """query/value_in [L, d], ref [L, 2] (x, y) in 0..1, shapes [(H, W)] per level."""
    L, d = query.shape
    nl = len(shapes)
    dh = d // nheads
    value = F.linear(value_in, sd[p + "value_proj.weight"], sd[p + "value_proj.bias"])
    off = F.linear(query, sd[p + "sampling_offsets.weight"], sd[p + "sampling_offsets.bias"])
    off = off.view(L, nheads, nl, npoints, 2)
    aw = F.linear(query, sd[p + "attention_weights.weight"], sd[p + "attention_weights.bias"])
    aw = aw.view(L, nheads, nl * npoints).softmax(-1).view(L, nheads, nl, npoints)
    norm = torch.tensor([[w, h] for h, w in shapes], dtype=torch.float32)          # [nl, 2]
    loc = ref[:, None, None, None, :] + off / norm[None, None, :, None, :]          # [L, nh, nl, np, 2]
    out = torch.zeros(nheads, dh, L)
    start = 0
    for l, (h, w) in enumerate(shapes):
        v = value[start:start + h * w].view(h, w, nheads, dh).permute(2, 3, 0, 1)     # [nh, dh, h, w]
        start += h * w
        grid = (2 * loc[:, :, l] - 1).permute(1, 0, 2, 3)                            # [nh, L, np, 2]
        s = F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        out += (s * aw[:, :, l].permute(1, 0, 2)[:, None]).sum(-1)                  # [nh, dh, L]
    out = out.permute(2, 0, 1).reshape(L, d)
    return F.linear(out, sd[p + "output_proj.weight"], sd[p + "output_proj.bias"])


def pixel_decoder(sd, cfg, feats):
    enc = cfg["encoder"]
    d = enc["conv_dim"]
    P = "sem_seg_head.pixel_decoder."
    levels = ["res5", "res4", "res3"]
    srcs, poss, shapes = [], [], []
    for i, f in enumerate(levels):
        x = F.conv2d(feats[f], sd[P + "input_proj.%d.0.weight" % i], sd[P + "input_proj.%d.0.bias" % i])
        x = F.group_norm(x, 32, sd[P + "input_proj.%d.1.weight" % i], sd[P + "input_proj.%d.1.bias" % i], 1e-5)
        h, w = x.shape[-2:]
        shapes.append((h, w))
        srcs.append(x[0].flatten(1).t())
        poss.append(sine_pos(h, w, d).flatten(1).t() + sd[P + "transformer.level_embed"][i])
    src = torch.cat(srcs)
    pos = torch.cat(poss)
    refs = []
    for h, w in shapes:
        ry, rx = torch.meshgrid((torch.arange(h, dtype=torch.float32) + 0.5) / h,
                                (torch.arange(w, dtype=torch.float32) + 0.5) / w, indexing="ij")
        refs.append(torch.stack((rx.reshape(-1), ry.reshape(-1)), -1))
    ref = torch.cat(refs)
    for l in range(enc["transformer_enc_layers"]):
        q = P + "transformer.encoder.layers.%d." % l
        a = ms_deform_attn(sd, q + "self_attn.", src + pos, src, ref, shapes, enc["transformer_nheads"], 4)
        src = F.layer_norm(src + a, (d,), sd[q + "norm1.weight"], sd[q + "norm1.bias"], 1e-5)
        f = F.linear(F.relu(F.linear(src, sd[q + "linear1.weight"], sd[q + "linear1.bias"])),
                     sd[q + "linear2.weight"], sd[q + "linear2.bias"])
        src = F.layer_norm(src + f, (d,), sd[q + "norm2.weight"], sd[q + "norm2.bias"], 1e-5)
    outs, start = [], 0
    for h, w in shapes:
        outs.append(src[start:start + h * w].t().reshape(1, d, h, w))
        start += h * w
    x = F.conv2d(feats["res2"], sd[P + "adapter_1.weight"])
    x = F.group_norm(x, 32, sd[P + "adapter_1.norm.weight"], sd[P + "adapter_1.norm.bias"], 1e-5)
    x = x + F.interpolate(outs[-1], size=x.shape[-2:], mode="bilinear", align_corners=False)
    x = F.conv2d(x, sd[P + "layer_1.weight"], None, 1, 1)
    x = F.relu(F.group_norm(x, 32, sd[P + "layer_1.norm.weight"], sd[P + "layer_1.norm.bias"], 1e-5))
    mask_features = F.conv2d(x, sd[P + "mask_features.weight"], sd[P + "mask_features.bias"])
    return mask_features, outs    # outs: strides 32, 16, 8


def mha(sd, p, q_in, k_in, v_in, nheads, mask=None):
    d = q_in.shape[1]
    W, b = sd[p + "in_proj_weight"], sd[p + "in_proj_bias"]
    q = F.linear(q_in, W[:d], b[:d]).view(-1, nheads, d // nheads).transpose(0, 1)
    k = F.linear(k_in, W[d:2 * d], b[d:2 * d]).view(-1, nheads, d // nheads).transpose(0, 1)
    v = F.linear(v_in, W[2 * d:], b[2 * d:]).view(-1, nheads, d // nheads).transpose(0, 1)
    s = q @ k.transpose(1, 2) / math.sqrt(d // nheads)          # [nh, Q, K]
    if mask is not None:
        s = s.masked_fill(mask[None], float("-inf"))
    o = (s.softmax(-1) @ v).transpose(0, 1).reshape(-1, d)
    return F.linear(o, sd[p + "out_proj.weight"], sd[p + "out_proj.bias"])


def decoder(sd, cfg, mask_features, feats):
    dec = cfg["decoder"]
    d, nh = dec["hidden_dim"], dec["nheads"]
    P = "sem_seg_head.predictor."
    srcs, poss, sizes = [], [], []
    for i, x in enumerate(feats):
        h, w = x.shape[-2:]
        sizes.append((h, w))
        poss.append(sine_pos(h, w, d).flatten(1).t())
        srcs.append(x[0].flatten(1).t() + sd[P + "level_embed.weight"][i])
    query_embed = sd[P + "query_embed.weight"]
    output = sd[P + "query_feat.weight"]
    mf = mask_features[0]                                          # [C, H, W]

    def heads(output, size):
        o = F.layer_norm(output, (d,), sd[P + "decoder_norm.weight"], sd[P + "decoder_norm.bias"], 1e-5)
        logits = F.linear(o, sd[P + "class_embed.weight"], sd[P + "class_embed.bias"])
        e = o
        for i in range(3):
            e = F.linear(e, sd[P + "mask_embed.layers.%d.weight" % i], sd[P + "mask_embed.layers.%d.bias" % i])
            if i < 2:
                e = F.relu(e)
        masks = torch.einsum("qc,chw->qhw", e, mf)
        am = F.interpolate(masks[None], size=size, mode="bilinear", align_corners=False)[0]
        am = am.sigmoid().flatten(1) < 0.5
        return logits, masks, am

    logits, masks, am = heads(output, sizes[0])
    for i in range(dec["dec_layers"]):
        l = i % 3
        am[am.all(-1)] = False
        q = P + "transformer_cross_attention_layers.%d." % i
        a = mha(sd, q + "multihead_attn.", output + query_embed, srcs[l] + poss[l], srcs[l], nh, am)
        output = F.layer_norm(output + a, (d,), sd[q + "norm.weight"], sd[q + "norm.bias"], 1e-5)
        q = P + "transformer_self_attention_layers.%d." % i
        a = mha(sd, q + "self_attn.", output + query_embed, output + query_embed, output, nh)
        output = F.layer_norm(output + a, (d,), sd[q + "norm.weight"], sd[q + "norm.bias"], 1e-5)
        q = P + "transformer_ffn_layers.%d." % i
        f = F.linear(F.relu(F.linear(output, sd[q + "linear1.weight"], sd[q + "linear1.bias"])),
                     sd[q + "linear2.weight"], sd[q + "linear2.bias"])
        output = F.layer_norm(output + f, (d,), sd[q + "norm.weight"], sd[q + "norm.bias"], 1e-5)
        logits, masks, am = heads(output, sizes[(i + 1) % 3])
    return logits, masks


@torch.no_grad()
def forward(sd, cfg, image, x=None):
    """sd: state dict (float tensors), cfg: "model" section, image: PIL image (multi-person
    pre-processing), or x: an already normalised [1, 3, H, W] input (H, W multiples of 32).
    Returns dict(pred_logits [Q, C+1], pred_masks [Q, Hp/4, Wp/4], size (nh, nw), padded (Hp, Wp))."""
    if x is None:
        x, size = preprocess(image)
    else:
        size = tuple(x.shape[-2:])
    feats = backbone(sd, cfg, x)
    mask_features, outs = pixel_decoder(sd, cfg, feats)
    logits, masks = decoder(sd, cfg, mask_features, outs)
    return {"pred_logits": logits, "pred_masks": masks, "size": size, "padded": tuple(x.shape[-2:]),
            "features": feats, "mask_features": mask_features}


@torch.no_grad()
def instances(out, orig_hw, num_classes=21, num_parsing=20, topk=100):
    """Multi-person post-processing (SPEC 5): list of (kind, class, score, area) and mask logits."""
    hp, wp = out["padded"]
    nh, nw = out["size"]
    m = F.interpolate(out["pred_masks"][None], size=(hp, wp), mode="bilinear", align_corners=False)
    m = m[:, :, :nh, :nw]
    m = F.interpolate(m, size=orig_hw, mode="bilinear", align_corners=False)[0]
    scores = out["pred_logits"].softmax(-1)[:, :num_classes]
    s, idx = scores.flatten().topk(topk, sorted=False)
    labels = idx % num_classes
    q = idx // num_classes
    mm = m[q]
    binm = (mm > 0).float()
    mask_score = (mm.sigmoid().flatten(1) * binm.flatten(1)).sum(1) / (binm.flatten(1).sum(1) + 1e-6)
    final = s * mask_score
    res = []
    for j in range(topk):
        c, sc = int(labels[j]), float(final[j])
        if c == num_parsing:
            if sc > 0.1:
                res.append(("human", c, sc, int(binm[j].sum())))
        elif c != 0 and sc >= 0.1:
            res.append(("part", c, sc, int(binm[j].sum())))
    return res


def head_statistics(out, human_class=20):
    """Statistics of the heads: how confident the queries are, how the mask logits spread."""
    probs = out["pred_logits"].softmax(-1)
    top_p, top_c = probs.max(-1)
    masks = out["pred_masks"]
    pos = (masks > 0).float().mean((1, 2))
    return {
        "logit_std": float(out["pred_logits"].std()),
        "queries_top_prob_gt_0.5": int((top_p > 0.5).sum()),
        "top_classes": sorted(set(int(c) for c in top_c[top_p > 0.5])),
        "queries_top_human": int((top_c == human_class).sum()),
        "queries_top_no_object": int((top_c == probs.shape[1] - 1).sum()),
        "mask_logit_mean": float(masks.mean()),
        "mask_logit_std": float(masks.std()),
        "queries_with_mixed_sign_masks": int(((pos > 0.05) & (pos < 0.95)).sum()),
        "mask_positive_fraction_mean": float(pos.mean()),
    }


def load_checkpoint(folder):
    import json
    sd = torch.load(os.path.join(folder, "pytorch_model.pt"), map_location="cpu")["model"]
    with open(os.path.join(folder, "configuration.json")) as f:
        cfg = json.load(f)["model"]
    return sd, cfg


if __name__ == "__main__":
    from PIL import Image
    import time
    sd, cfg = load_checkpoint(sys.argv[1])
    for path in sys.argv[2:]:
        img = Image.open(path).convert("RGB")
        t0 = time.time()
        out = forward(sd, cfg, img)
        print(path, "forward %.1f s" % (time.time() - t0), "input", out["size"], "padded", out["padded"])
        for k in ("res2", "res3", "res4", "res5"):
            f = out["features"][k]
            print("  %s mean %.3f std %.3f max %.2f" % (k, f.mean(), f.std(), f.max()))
        mf = out["mask_features"]
        print("  mask_features mean %.3f std %.3f" % (mf.mean(), mf.std()))
        for k, v in head_statistics(out, cfg["decoder"]["num_classes"] - 1).items():
            print("  %s: %s" % (k, v))
        if not cfg.get("single_human", False):
            inst = instances(out, (img.size[1], img.size[0]), cfg["decoder"]["num_classes"])
            parts = [r for r in inst if r[0] == "part"]
            humans = [r for r in inst if r[0] == "human"]
            print("  instances: %d parts (classes %s), %d humans (max score %.3f), parts >= 0.5: %d"
                  % (len(parts), sorted(set(r[1] for r in parts)), len(humans),
                     max([r[2] for r in humans] or [0]), sum(r[2] >= 0.5 for r in parts)))
