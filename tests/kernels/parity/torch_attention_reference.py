#!/usr/bin/env python3
"""PyTorch references for the kernels of tests/kernels/parity/test_parity_torch_attention.cpp (semantic parity).

Usage: torch_attention_reference.py DIR

DIR/manifest.json lists the cases written by the C++ test; every array is a raw little-endian
file in DIR (float32 ``.f32``, int64 ``.i64``, uint8 ``.u8``). For each case this script computes
the upstream formulation with torch ops and writes ``DIR/<name>.out.f32``:

* ``msda``: MSDeformAttn's CPU path: softmax of the attention logits per head, sampling
  locations ``ref + offset / (W_l, H_l)`` and mmcv's ``multi_scale_deformable_attn_pytorch``
  (F.grid_sample bilinear, padding zeros, align_corners=False), re-written here with torch ops.
* ``mha``: ``torch.nn.functional.multi_head_attention_forward`` with identity projections (so
  only the attention itself remains) and a bool attn_mask, after Mask2Former's rule that a query
  whose mask row is all True attends to every key.
* ``pos``: PositionEmbeddingSine(num_pos_feats=F, temperature=T, normalize=True, scale=2*pi)
  re-written with the same torch ops, output as [H*W, 2F].

Only torch and the standard library are needed (Debian's python3-torch).
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F


def read(path, dtype, shape):
    with open(path, 'rb') as f:
        data = bytearray(f.read())
    t = torch.frombuffer(data, dtype=dtype) if len(data) else torch.empty(0, dtype=dtype)
    return t.reshape(shape)


def write(path, t):
    with open(path, 'wb') as f:
        f.write(t.contiguous().to(torch.float32).numpy().tobytes())


def msda_torch(value, shapes, sampling_locations, attention_weights):
    # value [1, Len_in, heads, dh]; shapes [L, 2] (H, W); locations [1, Lq, heads, L, P, 2];
    # weights [1, Lq, heads, L, P]  ->  [1, Lq, heads*dh]
    bs, _, heads, dh = value.shape
    _, lq, _, levels, points, _ = sampling_locations.shape
    value_list = value.split([int(h) * int(w) for h, w in shapes.tolist()], dim=1)
    grids = 2 * sampling_locations - 1
    sampled = []
    for lvl, (h, w) in enumerate(shapes.tolist()):
        v = value_list[lvl].flatten(2).transpose(1, 2).reshape(bs * heads, dh, int(h), int(w))
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)  # [bs*heads, Lq, P, 2]
        sampled.append(F.grid_sample(v, g, mode='bilinear', padding_mode='zeros',
                                     align_corners=False))  # [bs*heads, dh, Lq, P]
    w = attention_weights.transpose(1, 2).reshape(bs * heads, 1, lq, levels * points)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * w).sum(-1).view(bs, heads * dh, lq)
    return out.transpose(1, 2).contiguous()


def run_msda(d, c):
    L, P, heads, dh, lq = c['L'], c['P'], c['heads'], c['dh'], c['Lq']
    ld = c['ld_qp']
    shapes = read(os.path.join(d, c['shapes']), torch.int64, (L, 2))
    len_in = int((shapes[:, 0] * shapes[:, 1]).sum())
    value = read(os.path.join(d, c['value']), torch.float32, (1, len_in, heads, dh))
    ref = read(os.path.join(d, c['ref']), torch.float32, (1, lq, 2))
    qp = read(os.path.join(d, c['qp']), torch.float32, (lq, ld))
    n1 = heads * L * P
    offsets = qp[:, c['off_col']:c['off_col'] + 2 * n1].reshape(1, lq, heads, L, P, 2)
    logits = qp[:, c['logit_col']:c['logit_col'] + n1].reshape(1, lq, heads, L * P)
    weights = F.softmax(logits, -1).view(1, lq, heads, L, P)
    reference_points = ref[:, :, None, :].expand(1, lq, L, 2)
    normalizer = torch.stack([shapes[..., 1], shapes[..., 0]], -1)
    locations = (reference_points[:, :, None, :, None, :]
                 + offsets / normalizer[None, None, None, :, None, :])
    return msda_torch(value, shapes, locations, weights)[0]


def run_mha(d, c):
    lq, lk, heads, dh = c['Lq'], c['Lk'], c['heads'], c['dh']
    e = heads * dh
    q = read(os.path.join(d, c['q']), torch.float32, (lq, e))
    k = read(os.path.join(d, c['k']), torch.float32, (lk, e))
    v = read(os.path.join(d, c['v']), torch.float32, (lk, e))
    mask = None
    if c.get('mask'):
        mask = read(os.path.join(d, c['mask']), torch.uint8, (lq, lk)).bool()
        mask[torch.where(mask.sum(-1) == mask.shape[-1])] = False  # Mask2Former's rule
    eye = torch.eye(e, dtype=torch.float32)
    out, _ = F.multi_head_attention_forward(
        q[:, None], k[:, None], v[:, None], e, heads,
        in_proj_weight=torch.cat([eye, eye, eye]), in_proj_bias=torch.zeros(3 * e),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
        out_proj_weight=eye, out_proj_bias=torch.zeros(e), training=False,
        need_weights=False, attn_mask=mask)
    return out[:, 0]


def run_pos(c):
    h, w, nf, temp = c['H'], c['W'], c['F'], c['T']
    scale = 2 * math.pi
    not_mask = torch.ones((1, h, w), dtype=torch.bool)
    y_embed = not_mask.cumsum(1, dtype=torch.float32)
    x_embed = not_mask.cumsum(2, dtype=torch.float32)
    eps = 1e-6
    y_embed = y_embed / (y_embed[:, -1:, :] + eps) * scale
    x_embed = x_embed / (x_embed[:, :, -1:] + eps) * scale
    dim_t = torch.arange(nf, dtype=torch.float32)
    dim_t = temp ** (2 * (dim_t // 2) / nf)
    pos_x = x_embed[:, :, :, None] / dim_t
    pos_y = y_embed[:, :, :, None] / dim_t
    pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
    pos = torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)  # [1, 2F, H, W]
    return pos[0].permute(1, 2, 0).reshape(h * w, 2 * nf)


def main():
    if len(sys.argv) != 2:
        sys.exit('usage: torch_attention_reference.py DIR')
    d = sys.argv[1]
    torch.set_num_threads(1)
    with open(os.path.join(d, 'manifest.json')) as f:
        cases = json.load(f)
    with torch.no_grad():
        for c in cases:
            if c['kind'] == 'msda':
                out = run_msda(d, c)
            elif c['kind'] == 'mha':
                out = run_mha(d, c)
            elif c['kind'] == 'pos':
                out = run_pos(c)
            else:
                sys.exit('unknown case kind %r in %s' % (c['kind'], c['name']))
            write(os.path.join(d, c['name'] + '.out.f32'), out)
    print('torch_attention_reference: %d cases written' % len(cases))


if __name__ == '__main__':
    main()
