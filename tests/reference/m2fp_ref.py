"""PyTorch reference of M2FP (Mask2Former for Parsing) for the m2fp.cpp parity tests.

What this file is
  The upstream ModelScope network (`damo/cv_resnet101_image-multiple-human-parsing` and its single-person
  sister), rebuilt from plain `torch.nn` layers with exactly the upstream module names, so that

      model.load_state_dict(torch.load(DIR/pytorch_model.pt)['model'], strict=True)

  works for all 928 CIHP entries (BatchNorm buffers included). Written from the public upstream source
  (modelscope/models/cv/image_human_parsing/...; see docs/INTERMEDIATES.md and SPEC.md), no mmcv, no
  detectron2: the deformable attention uses the grid_sample formulation that upstream falls back to on CPU.

  Beside the network it holds the upstream pre-processing (pipeline + ImageList padding) and post-processing
  (m2fp_net.py: parsing_on instance inference with the semantic paste, semantic_on single-person path), and
  records every named intermediate of docs/INTERMEDIATES.md while it runs.

Dimension key (shape comments below)
  B = 1 batch, C channels, H x W a feature map, Hp x Wp the padded input (multiples of 32),
  N = sum of H_l*W_l tokens over the 3 encoder levels, Q = 100 queries, K = num_classes (CIHP 21, LIP 20),
  D = 256 model width, M = 8 heads, L = 3 levels, P = 4 sampling points, H0 x W0 the original image.

Use /usr/bin/python3 (Debian torch 1.13, numpy, PIL).
"""

import copy
import fnmatch
import json
import math
import os
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image, ImageOps

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'tools'))
from convert_weights import RESNET_BLOCKS, STAGE_INDEX  # noqa: E402  (the one depth -> blocks table)

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
SIZE_DIVISIBILITY = 32
TEST_TOPK_PER_IMAGE = 100


class ReferenceError(RuntimeError):
    """A clear, user-facing failure of the reference (bad file, bad configuration, bad input)."""


# ================================================================================================
# Named intermediates
# ================================================================================================

def intermediate_names(model_cfg: dict) -> List[str]:
    """Every name of docs/INTERMEDIATES.md for this configuration, in forward order."""
    try:
        enc_layers = int(model_cfg['encoder']['transformer_enc_layers'])
        dec_layers = int(model_cfg['decoder']['dec_layers'])
    except (KeyError, TypeError, ValueError) as e:
        raise ReferenceError('configuration lacks encoder.transformer_enc_layers / decoder.dec_layers (%s)' % e) \
            from None
    names = ['input', 'image', 'stem', 'res2', 'res3', 'res4', 'res5', 'encoder.src', 'encoder.pos']
    names += ['encoder.layer%d' % i for i in range(enc_layers)]
    names += ['pixel_decoder.s32', 'pixel_decoder.s16', 'pixel_decoder.s8', 'pixel_decoder.s4', 'mask_features']
    names += ['decoder.logits0', 'decoder.masks0']
    for i in range(dec_layers):
        names += ['decoder.query%d' % i, 'decoder.logits%d' % (i + 1), 'decoder.masks%d' % (i + 1)]
    names += ['pred_logits', 'pred_masks', 'semantic', 'labels']
    return names


class Recorder:
    """Collects named intermediates as it goes; keeps only the names asked for (memory stays sane).

    wanted: None for every name, else names or fnmatch patterns ('decoder.*', 'res?').
    Tensors are stored detached, cloned (the backbone works in place), float32, batch dimension dropped
    by the caller: feature maps [C, H, W], tokens [N, D], query rows [Q, ...].
    """

    def __init__(self, wanted: Optional[Sequence[str]] = None):
        self.wanted = None if wanted is None else list(wanted)
        self.tensors: Dict[str, torch.Tensor] = {}

    def wants(self, name: str) -> bool:
        if self.wanted is None:
            return True
        return any(fnmatch.fnmatchcase(name, pat) for pat in self.wanted)

    def __call__(self, name: str, tensor: torch.Tensor) -> None:
        if self.wants(name):
            self.tensors[name] = tensor.detach().to(torch.float32).clone()


def _noop_recorder(name, tensor):
    return None


# ================================================================================================
# Backbone: DeepLab ResNet (upstream backbone/deeplab_resnet.py), BatchNorm in eval mode
# ================================================================================================

class Conv2d(nn.Conv2d):
    """nn.Conv2d with an optional norm and activation applied after it (detectron2-style wrapper).

    Parameter names: `weight`, `bias` (if any), `norm.*`, exactly as upstream.
    """

    def __init__(self, *args, norm: Optional[nn.Module] = None, activation=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    def forward(self, x):
        x = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == 'BN':
        return nn.BatchNorm2d(channels)
    if kind == 'GN':
        return nn.GroupNorm(32, channels)
    raise ReferenceError("backbone.norm %r is not supported (only 'BN' and 'GN')" % (kind,))


class BottleneckBlock(nn.Module):
    """1x1 -> 3x3 (stride, dilation) -> 1x1, each conv + norm; projection shortcut when channels change."""

    def __init__(self, in_channels, out_channels, *, bottleneck_channels, stride=1, num_groups=1,
                 norm='BN', stride_in_1x1=False, dilation=1):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        if in_channels != out_channels:
            self.shortcut = Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False,
                                   norm=_norm(norm, out_channels))
        else:
            self.shortcut = None
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(in_channels, bottleneck_channels, kernel_size=1, stride=stride_1x1, bias=False,
                            norm=_norm(norm, bottleneck_channels))
        self.conv2 = Conv2d(bottleneck_channels, bottleneck_channels, kernel_size=3, stride=stride_3x3,
                            padding=dilation, bias=False, groups=num_groups, dilation=dilation,
                            norm=_norm(norm, bottleneck_channels))
        self.conv3 = Conv2d(bottleneck_channels, out_channels, kernel_size=1, bias=False,
                            norm=_norm(norm, out_channels))

    def forward(self, x):
        out = F.relu(self.conv1(x))              # [B, Cb, H, W]
        out = F.relu(self.conv2(out))            # [B, Cb, H/s, W/s]
        out = self.conv3(out)                    # [B, Cout, H/s, W/s]
        shortcut = self.shortcut(x) if self.shortcut is not None else x
        return F.relu(out + shortcut)


class DeepLabStem(nn.Module):
    """3x3 s2 (C/2) -> 3x3 (C/2) -> 3x3 (C), each + norm + ReLU, then max-pool 3x3 s2 p1: stride 4."""

    def __init__(self, in_channels=3, out_channels=128, norm='BN'):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = 4
        half = out_channels // 2
        self.conv1 = Conv2d(in_channels, half, kernel_size=3, stride=2, padding=1, bias=False, norm=_norm(norm, half))
        self.conv2 = Conv2d(half, half, kernel_size=3, stride=1, padding=1, bias=False, norm=_norm(norm, half))
        self.conv3 = Conv2d(half, out_channels, kernel_size=3, stride=1, padding=1, bias=False,
                            norm=_norm(norm, out_channels))

    def forward(self, x):
        x = F.relu(self.conv1(x))                # [B, C/2, Hp/2, Wp/2]
        x = F.relu(self.conv2(x))                # [B, C/2, Hp/2, Wp/2]
        x = F.relu(self.conv3(x))                # [B, C, Hp/2, Wp/2]
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)  # [B, C, Hp/4, Wp/4]


class DeeplabResNet(nn.Module):
    """Stem + stages res2..res5 (nn.Sequential of bottlenecks), registered as upstream names them."""

    def __init__(self, cfg: dict):
        super().__init__()
        try:
            depth = int(cfg['depth'])
            num_groups = int(cfg['num_groups'])
            width_per_group = int(cfg['width_per_group'])
            norm = cfg['norm']
            stem_out = int(cfg['stem_out_channels'])
            res2_out = int(cfg['res2_out_channels'])
            stride_in_1x1 = bool(cfg['stride_in_1x1'])
            res4_dilation = int(cfg['res4_dilation'])
            res5_dilation = int(cfg['res5_dilation'])
            multi_grid = [int(v) for v in cfg['res5_multi_grid']]
            out_features = list(cfg['out_features'])
        except KeyError as e:
            raise ReferenceError('configuration model.backbone lacks key %s' % e) from None
        if depth not in RESNET_BLOCKS:
            raise ReferenceError('backbone.depth %d is not one of 50, 101, 152' % depth)
        for f in out_features:
            if f not in STAGE_INDEX:
                raise ReferenceError('backbone.out_features holds %r (expected res2..res5)' % (f,))
        max_stage = max(STAGE_INDEX[f] for f in out_features)

        self.stem = DeepLabStem(3, stem_out, norm)
        self._out_features = out_features
        self._strides = {}
        self._channels = {}
        self.stage_names = []
        in_ch, out_ch, bott = stem_out, res2_out, num_groups * width_per_group
        stride_now = self.stem.stride
        for idx, s in enumerate(range(2, max_stage + 1)):
            dilation = res4_dilation if s == 4 else res5_dilation if s == 5 else 1
            n = RESNET_BLOCKS[depth][idx]
            first_stride = 1 if idx == 0 or dilation > 1 else 2
            if s == 5:
                if len(multi_grid) != n:
                    raise ReferenceError('backbone.res5_multi_grid has %d entries, res5 has %d blocks'
                                         % (len(multi_grid), n))
                dilations = [dilation * mg for mg in multi_grid]
            else:
                dilations = [dilation] * n
            blocks = []
            for b in range(n):
                blocks.append(BottleneckBlock(in_ch if b == 0 else out_ch, out_ch, bottleneck_channels=bott,
                                              stride=first_stride if b == 0 else 1, num_groups=num_groups,
                                              norm=norm, stride_in_1x1=stride_in_1x1, dilation=dilations[b]))
            name = 'res%d' % s
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
            stride_now *= first_stride
            self._strides[name] = stride_now
            self._channels[name] = out_ch
            in_ch, out_ch, bott = out_ch, out_ch * 2, bott * 2

    def output_shape(self) -> Dict[str, dict]:
        return {n: {'channels': self._channels[n], 'stride': self._strides[n]} for n in self._out_features}

    def forward(self, x, rec=_noop_recorder):
        out = {}
        x = self.stem(x)                                          # [B, 128, Hp/4, Wp/4]
        rec('stem', x[0])
        for name in self.stage_names:
            x = getattr(self, name)(x)                            # res2 [B,256,Hp/4,..] .. res5 [B,2048,Hp/32,..]
            rec(name, x[0])
            if name in self._out_features:
                out[name] = x
        return out


# ================================================================================================
# Pixel decoder: sine position encoding, multi-scale deformable attention encoder, FPN level
# ================================================================================================

class PositionEmbeddingSine(nn.Module):
    """Normalised sine encoding: 2*F channels, first F for y then F for x, sin/cos interleaved."""

    def __init__(self, num_pos_feats=64, temperature=10000, normalize=False, scale=None):
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale

    def forward(self, x):
        """x: [B, C, H, W] (only its shape is used) -> [B, 2F, H, W]. No padding mask (upstream passes None)."""
        b, _, h, w = x.shape
        not_mask = torch.ones((b, h, w), dtype=torch.bool, device=x.device)
        y_embed = not_mask.cumsum(1, dtype=torch.float32)          # [B, H, W]: row + 1
        x_embed = not_mask.cumsum(2, dtype=torch.float32)          # [B, H, W]: col + 1
        if self.normalize:
            eps = 1e-6
            y_embed = y_embed / (y_embed[:, -1:, :] + eps) * self.scale
            x_embed = x_embed / (x_embed[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=x.device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode='floor') / self.num_pos_feats)
        pos_x = x_embed[:, :, :, None] / dim_t                     # [B, H, W, F]
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)  # [B, 2F, H, W]


def multi_scale_deformable_attn_pytorch(value, spatial_shapes, sampling_locations, attention_weights):
    """Deformable attention by F.grid_sample (bilinear, zeros outside, align_corners=False).

    value:              [B, N, M, Dh]     values of all levels, flattened and concatenated
    spatial_shapes:     [(H_l, W_l)] * L
    sampling_locations: [B, Nq, M, L, P, 2] (x, y) in [0, 1] of the level's extent
    attention_weights:  [B, Nq, M, L, P]  softmax-ed over (L, P)
    returns             [B, Nq, M*Dh]
    """
    b, _, m, dh = value.shape
    _, nq, _, nl, npt, _ = sampling_locations.shape
    values = value.split([int(h) * int(w) for h, w in spatial_shapes], dim=1)
    grids = 2 * sampling_locations - 1                                            # grid_sample's [-1, 1]
    sampled = []
    for lvl, (h, w) in enumerate(spatial_shapes):
        v = values[lvl].flatten(2).transpose(1, 2).reshape(b * m, dh, int(h), int(w))   # [B*M, Dh, H_l, W_l]
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)                           # [B*M, Nq, P, 2]
        sampled.append(F.grid_sample(v, g, mode='bilinear', padding_mode='zeros',
                                     align_corners=False))                             # [B*M, Dh, Nq, P]
    w = attention_weights.transpose(1, 2).reshape(b * m, 1, nq, nl * npt)             # [B*M, 1, Nq, L*P]
    out = (torch.stack(sampled, dim=-2).flatten(-2) * w).sum(-1)                      # [B*M, Dh, Nq]
    return out.view(b, m * dh, nq).transpose(1, 2).contiguous()                       # [B, Nq, M*Dh]


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention (Deformable DETR): value_proj, sampling_offsets, attention_weights,
    output_proj, as upstream maskdino/ms_deform_attn.py."""

    def __init__(self, d_model=256, n_levels=4, n_heads=8, n_points=4):
        super().__init__()
        if d_model % n_heads != 0:
            raise ReferenceError('d_model %d is not divisible by n_heads %d' % (d_model, n_heads))
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self._reset_parameters()

    def _reset_parameters(self):
        # Upstream's initialisation (only matters for a randomly initialised model): zero offset weights,
        # bias = head direction x (point index + 1).
        nn.init.constant_(self.sampling_offsets.weight, 0.)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.n_heads, 1, 1, 2)
        grid = grid.repeat(1, self.n_levels, self.n_points, 1)
        for i in range(self.n_points):
            grid[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.constant_(self.attention_weights.weight, 0.)
        nn.init.constant_(self.attention_weights.bias, 0.)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.)

    def forward(self, query, reference_points, input_flatten, spatial_shapes):
        """query [B, Nq, D], reference_points [B, Nq, L, 2] (x, y), input_flatten [B, N, D] -> [B, Nq, D]."""
        b, nq, _ = query.shape
        _, n_in, _ = input_flatten.shape
        m, nl, npt = self.n_heads, self.n_levels, self.n_points
        value = self.value_proj(input_flatten).view(b, n_in, m, self.d_model // m)              # [B, N, M, Dh]
        offsets = self.sampling_offsets(query).view(b, nq, m, nl, npt, 2)                         # [B,Nq,M,L,P,2]
        weights = F.softmax(self.attention_weights(query).view(b, nq, m, nl * npt), -1)
        weights = weights.view(b, nq, m, nl, npt)                                                 # [B,Nq,M,L,P]
        shapes = torch.as_tensor(spatial_shapes, dtype=torch.long, device=query.device)          # [L, 2] (H, W)
        normalizer = torch.stack([shapes[:, 1], shapes[:, 0]], -1)                                # [L, 2] (W, H)
        locations = (reference_points[:, :, None, :, None, :]
                     + offsets / normalizer[None, None, None, :, None, :])                         # [B,Nq,M,L,P,2]
        out = multi_scale_deformable_attn_pytorch(value, spatial_shapes, locations, weights)      # [B, Nq, D]
        return self.output_proj(out)


class MSDeformAttnTransformerEncoderLayer(nn.Module):
    """Post-norm: src = norm1(src + attn(src + pos)); src = norm2(src + linear2(relu(linear1(src))))."""

    def __init__(self, d_model=256, d_ffn=1024, n_levels=4, n_heads=8, n_points=4):
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src, pos, reference_points, spatial_shapes):
        src = self.norm1(src + self.self_attn(src + pos, reference_points, src, spatial_shapes))   # [B, N, D]
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))                           # [B, N, D]


class MSDeformAttnTransformerEncoder(nn.Module):

    def __init__(self, layer: nn.Module, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])
        self.num_layers = num_layers

    @staticmethod
    def get_reference_points(spatial_shapes, device):
        """Token centres ((col + 0.5)/W, (row + 0.5)/H) of every level, the same for all levels: [1, N, L, 2].
        (Upstream also multiplies by valid ratios, all 1 without a padding mask.)"""
        refs = []
        for h, w in spatial_shapes:
            ry, rx = torch.meshgrid(torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=device),
                                    torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=device),
                                    indexing='ij')
            refs.append(torch.stack((rx.reshape(-1)[None] / w, ry.reshape(-1)[None] / h), -1))  # [1, H*W, 2]
        ref = torch.cat(refs, 1)                                                                  # [1, N, 2]
        return ref[:, :, None].expand(-1, -1, len(spatial_shapes), -1)                            # [1, N, L, 2]

    def forward(self, src, spatial_shapes, pos, rec=_noop_recorder):
        output = src
        ref = self.get_reference_points(spatial_shapes, src.device)
        for i, layer in enumerate(self.layers):
            output = layer(output, pos, ref, spatial_shapes)                                      # [B, N, D]
            rec('encoder.layer%d' % i, output[0])
        return output


class MSDeformAttnTransformerEncoderOnly(nn.Module):

    def __init__(self, d_model=256, nhead=8, num_encoder_layers=6, dim_feedforward=1024,
                 num_feature_levels=4, enc_n_points=4):
        super().__init__()
        self.d_model = d_model
        self.nhead = nhead
        layer = MSDeformAttnTransformerEncoderLayer(d_model, dim_feedforward, num_feature_levels, nhead, enc_n_points)
        self.encoder = MSDeformAttnTransformerEncoder(layer, num_encoder_layers)
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model))
        nn.init.normal_(self.level_embed)

    def forward(self, srcs, pos_embeds, rec=_noop_recorder):
        """srcs, pos_embeds: L maps [B, D, H_l, W_l], low to high resolution.
        Returns memory [B, N, D], spatial_shapes [(H_l, W_l)], level_start_index [L]."""
        src_flat, pos_flat, shapes = [], [], []
        for lvl, (src, pos) in enumerate(zip(srcs, pos_embeds)):
            _, _, h, w = src.shape
            shapes.append((h, w))
            src_flat.append(src.flatten(2).transpose(1, 2))                                        # [B, HW, D]
            pos_flat.append(pos.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1))
        src_flat = torch.cat(src_flat, 1)                                                           # [B, N, D]
        pos_flat = torch.cat(pos_flat, 1)                                                           # [B, N, D]
        rec('encoder.src', src_flat[0])
        rec('encoder.pos', pos_flat[0])
        starts = [0]
        for h, w in shapes[:-1]:
            starts.append(starts[-1] + h * w)
        memory = self.encoder(src_flat, shapes, pos_flat, rec)
        return memory, shapes, starts


def _float(x: torch.Tensor) -> torch.Tensor:
    """Upstream casts backbone features with .float() (deformable attention has no half precision); float64
    is kept so the whole reference can also run in double precision for verification."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


class MSDeformAttnPixelDecoder(nn.Module):
    """input_proj (1x1 conv + GN) per transformer level, deformable encoder, FPN levels down to common_stride,
    mask_features 1x1 conv. Upstream m2fp/m2fp_encoder.py."""

    def __init__(self, input_shape: Dict[str, dict], *, transformer_dropout, transformer_nheads,
                 transformer_dim_feedforward, transformer_enc_layers, conv_dim, mask_dim,
                 transformer_in_features, common_stride):
        super().__init__()
        del transformer_dropout  # inference only
        self.conv_dim = conv_dim
        for f in transformer_in_features:
            if f not in input_shape:
                raise ReferenceError('encoder.transformer_in_features holds %r, not among encoder.in_features %s'
                                     % (f, sorted(input_shape)))
        shapes = sorted(input_shape.items(), key=lambda kv: kv[1]['stride'])       # res2 .. res5
        self.in_features = [k for k, _ in shapes]
        self.feature_strides = [v['stride'] for _, v in shapes]
        self.feature_channels = [v['channels'] for _, v in shapes]
        t_shapes = [(k, v) for k, v in shapes if k in transformer_in_features]
        self.transformer_in_features = [k for k, _ in t_shapes]
        t_channels = [v['channels'] for _, v in t_shapes]
        self.transformer_feature_strides = [v['stride'] for _, v in t_shapes]
        self.transformer_num_feature_levels = len(self.transformer_in_features)

        # from low resolution to high resolution (res5 -> res3)
        self.input_proj = nn.ModuleList([
            nn.Sequential(nn.Conv2d(c, conv_dim, kernel_size=1), nn.GroupNorm(32, conv_dim))
            for c in t_channels[::-1]])
        self.transformer = MSDeformAttnTransformerEncoderOnly(
            d_model=conv_dim, nhead=transformer_nheads, num_encoder_layers=transformer_enc_layers,
            dim_feedforward=transformer_dim_feedforward, num_feature_levels=self.transformer_num_feature_levels)
        self.pe_layer = PositionEmbeddingSine(conv_dim // 2, normalize=True)
        self.mask_dim = mask_dim
        self.mask_features = Conv2d(conv_dim, mask_dim, kernel_size=1, stride=1, padding=0)
        self.maskformer_num_feature_levels = 3
        self.common_stride = common_stride
        self.num_fpn_levels = int(np.log2(min(self.transformer_feature_strides)) - np.log2(common_stride))
        lateral, output = [], []
        for idx, c in enumerate(self.feature_channels[:self.num_fpn_levels]):
            lat = Conv2d(c, conv_dim, kernel_size=1, bias=False, norm=nn.GroupNorm(32, conv_dim))
            outc = Conv2d(conv_dim, conv_dim, kernel_size=3, stride=1, padding=1, bias=False,
                          norm=nn.GroupNorm(32, conv_dim), activation=F.relu)
            self.add_module('adapter_%d' % (idx + 1), lat)
            self.add_module('layer_%d' % (idx + 1), outc)
            lateral.append(lat)
            output.append(outc)
        # plain lists (not registered twice), top-down order: low to high resolution
        self.lateral_convs = lateral[::-1]
        self.output_convs = output[::-1]

    def forward_features(self, features, rec=_noop_recorder):
        """features: backbone maps. Returns mask_features [B, mask_dim, Hp/4, Wp/4], out[0], and the 3
        multi-scale maps [B, D, Hp/32..] [B, D, Hp/16..] [B, D, Hp/8..] for the transformer decoder."""
        srcs, pos = [], []
        for idx, f in enumerate(self.transformer_in_features[::-1]):                # res5, res4, res3
            x = _float(features[f])
            srcs.append(self.input_proj[idx](x))                                       # [B, D, H_l, W_l]
            pos.append(self.pe_layer(x))                                               # [B, D, H_l, W_l]
        y, shapes, starts = self.transformer(srcs, pos, rec)                           # [B, N, D]
        b = y.shape[0]
        sizes = [h * w for h, w in shapes]
        out = []
        strides_top_down = self.transformer_feature_strides[::-1]
        for i, z in enumerate(torch.split(y, sizes, dim=1)):
            m = z.transpose(1, 2).view(b, -1, shapes[i][0], shapes[i][1])             # [B, D, H_l, W_l]
            rec('pixel_decoder.s%d' % strides_top_down[i], m[0])
            out.append(m)
        fpn_features = self.in_features[:self.num_fpn_levels][::-1]
        for idx, f in enumerate(fpn_features):
            x = _float(features[f])
            cur = self.lateral_convs[idx](x)                                           # [B, D, Hp/4, Wp/4]
            yy = cur + F.interpolate(out[-1], size=cur.shape[-2:], mode='bilinear', align_corners=False)
            yy = self.output_convs[idx](yy)                                            # [B, D, Hp/4, Wp/4]
            stride = self.feature_strides[self.in_features.index(f)]
            rec('pixel_decoder.s%d' % stride, yy[0])
            out.append(yy)
        multi_scale = out[:self.maskformer_num_feature_levels]
        mask_features = self.mask_features(out[-1])                                    # [B, mask_dim, Hp/4, Wp/4]
        rec('mask_features', mask_features[0])
        return mask_features, out[0], multi_scale


# ================================================================================================
# Transformer decoder: masked attention (Mask2Former), nn.MultiheadAttention as upstream
# ================================================================================================

class SelfAttentionLayer(nn.Module):

    def __init__(self, d_model, nhead, normalize_before=False):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=0.0)
        self.norm = nn.LayerNorm(d_model)
        self.normalize_before = normalize_before

    def forward(self, tgt, query_pos):
        """tgt, query_pos [Q, B, D] -> [Q, B, D]"""
        if self.normalize_before:
            t2 = self.norm(tgt)
            q = k = t2 + query_pos
            return tgt + self.self_attn(q, k, value=t2)[0]
        q = k = tgt + query_pos
        return self.norm(tgt + self.self_attn(q, k, value=tgt)[0])


class CrossAttentionLayer(nn.Module):

    def __init__(self, d_model, nhead, normalize_before=False):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=0.0)
        self.norm = nn.LayerNorm(d_model)
        self.normalize_before = normalize_before

    def forward(self, tgt, memory, memory_mask, pos, query_pos):
        """tgt [Q, B, D], memory/pos [HW, B, D], memory_mask [B*M, Q, HW] bool (True = excluded)."""
        t2 = self.norm(tgt) if self.normalize_before else tgt
        att = self.multihead_attn(query=t2 + query_pos, key=memory + pos, value=memory,
                                  attn_mask=memory_mask)[0]
        if self.normalize_before:
            return tgt + att
        return self.norm(tgt + att)


class FFNLayer(nn.Module):

    def __init__(self, d_model, dim_feedforward=2048, normalize_before=False):
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.normalize_before = normalize_before

    def forward(self, tgt):
        if self.normalize_before:
            return tgt + self.linear2(F.relu(self.linear1(self.norm(tgt))))
        return self.norm(tgt + self.linear2(F.relu(self.linear1(tgt))))


class MLP(nn.Module):
    """num_layers linear layers with ReLU between (`layers.{i}`)."""

    def __init__(self, input_dim, hidden_dim, output_dim, num_layers):
        super().__init__()
        self.num_layers = num_layers
        h = [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(n, k) for n, k in zip([input_dim] + h, h + [output_dim]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < self.num_layers - 1 else layer(x)
        return x


class MultiScaleMaskedTransformerDecoder(nn.Module):
    """Upstream m2fp/m2fp_decoder.py: Q learnable queries, dec_layers x (masked cross-attn, self-attn, FFN)
    cycling through the 3 levels, prediction heads (class_embed, mask_embed) before the first layer and after
    each layer."""

    def __init__(self, in_channels, *, num_classes, hidden_dim, num_queries, nheads, dim_feedforward,
                 dec_layers, pre_norm, mask_dim, enforce_input_project):
        super().__init__()
        self.pe_layer = PositionEmbeddingSine(hidden_dim // 2, normalize=True)
        self.num_heads = nheads
        self.num_layers = dec_layers
        self.num_classes = num_classes
        self.transformer_self_attention_layers = nn.ModuleList()
        self.transformer_cross_attention_layers = nn.ModuleList()
        self.transformer_ffn_layers = nn.ModuleList()
        for _ in range(dec_layers):
            self.transformer_self_attention_layers.append(SelfAttentionLayer(hidden_dim, nheads, pre_norm))
            self.transformer_cross_attention_layers.append(CrossAttentionLayer(hidden_dim, nheads, pre_norm))
            self.transformer_ffn_layers.append(FFNLayer(hidden_dim, dim_feedforward, pre_norm))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.num_queries = num_queries
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.num_feature_levels = 3
        self.level_embed = nn.Embedding(self.num_feature_levels, hidden_dim)
        self.input_proj = nn.ModuleList()
        for _ in range(self.num_feature_levels):
            if in_channels != hidden_dim or enforce_input_project:
                self.input_proj.append(Conv2d(in_channels, hidden_dim, kernel_size=1))
            else:
                self.input_proj.append(nn.Sequential())
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)

    def forward(self, x, mask_features, rec=_noop_recorder):
        """x: 3 maps [B, D, H_l, W_l] (strides 32, 16, 8); mask_features [B, mask_dim, Hp/4, Wp/4].
        Returns pred_logits [B, Q, K+1], pred_masks [B, Q, Hp/4, Wp/4]."""
        if len(x) != self.num_feature_levels:
            raise ReferenceError('transformer decoder expects %d levels, got %d' % (self.num_feature_levels, len(x)))
        src, pos, size_list = [], [], []
        for i in range(self.num_feature_levels):
            size_list.append(x[i].shape[-2:])
            pos.append(self.pe_layer(x[i]).flatten(2).permute(2, 0, 1))                       # [HW, B, D]
            s = self.input_proj[i](x[i]).flatten(2) + self.level_embed.weight[i][None, :, None]
            src.append(s.permute(2, 0, 1))                                                     # [HW, B, D]
        bs = src[0].shape[1]
        query_embed = self.query_embed.weight.unsqueeze(1).repeat(1, bs, 1)                   # [Q, B, D]
        output = self.query_feat.weight.unsqueeze(1).repeat(1, bs, 1)                          # [Q, B, D]

        logits, masks, attn_mask = self.forward_prediction_heads(output, mask_features, size_list[0])
        rec('decoder.logits0', logits[0])
        rec('decoder.masks0', masks[0])
        for i in range(self.num_layers):
            level = i % self.num_feature_levels
            # a query whose mask excludes every key attends to all keys instead
            attn_mask[torch.where(attn_mask.sum(-1) == attn_mask.shape[-1])] = False
            output = self.transformer_cross_attention_layers[i](output, src[level], attn_mask, pos[level],
                                                                query_embed)
            output = self.transformer_self_attention_layers[i](output, query_embed)
            output = self.transformer_ffn_layers[i](output)                                    # [Q, B, D]
            rec('decoder.query%d' % i, output[:, 0])
            logits, masks, attn_mask = self.forward_prediction_heads(
                output, mask_features, size_list[(i + 1) % self.num_feature_levels])
            rec('decoder.logits%d' % (i + 1), logits[0])
            rec('decoder.masks%d' % (i + 1), masks[0])
        rec('pred_logits', logits[0])
        rec('pred_masks', masks[0])
        return {'pred_logits': logits, 'pred_masks': masks}

    def forward_prediction_heads(self, output, mask_features, target_size):
        out = self.decoder_norm(output).transpose(0, 1)                                        # [B, Q, D]
        logits = self.class_embed(out)                                                         # [B, Q, K+1]
        mask_embed = self.mask_embed(out)                                                      # [B, Q, mask_dim]
        masks = torch.einsum('bqc,bchw->bqhw', mask_embed, mask_features)                      # [B, Q, Hp/4, Wp/4]
        am = F.interpolate(masks, size=target_size, mode='bilinear', align_corners=False)      # [B, Q, H_l, W_l]
        am = am.sigmoid().flatten(2).unsqueeze(1).repeat(1, self.num_heads, 1, 1).flatten(0, 1) < 0.5
        return logits, masks, am.detach()                                                      # am [B*M, Q, H_l*W_l]


class M2FPHead(nn.Module):

    def __init__(self, pixel_decoder: nn.Module, transformer_predictor: nn.Module):
        super().__init__()
        self.pixel_decoder = pixel_decoder
        self.predictor = transformer_predictor


# ================================================================================================
# The model
# ================================================================================================

_ENCODER_KEYS = ('transformer_dropout', 'transformer_nheads', 'transformer_dim_feedforward',
                 'transformer_enc_layers', 'conv_dim', 'mask_dim', 'transformer_in_features', 'common_stride')
_DECODER_KEYS = ('num_classes', 'hidden_dim', 'num_queries', 'nheads', 'dim_feedforward', 'dec_layers',
                 'pre_norm', 'mask_dim', 'enforce_input_project')


def _pick(section: dict, keys, where: str) -> dict:
    missing = [k for k in keys if k not in section]
    if missing:
        raise ReferenceError('configuration %s lacks %s' % (where, ', '.join(missing)))
    return {k: section[k] for k in keys}


class M2FP(nn.Module):
    """backbone + sem_seg_head (pixel_decoder, predictor); model_cfg = configuration.json's "model" section."""

    def __init__(self, model_cfg: dict):
        super().__init__()
        for key in ('backbone', 'encoder', 'decoder'):
            if not isinstance(model_cfg.get(key), dict):
                raise ReferenceError('configuration model.%s is missing or not an object' % key)
        self.cfg = model_cfg
        self.register_buffer('pixel_mean', torch.tensor(PIXEL_MEAN).view(-1, 1, 1), False)
        self.register_buffer('pixel_std', torch.tensor(PIXEL_STD).view(-1, 1, 1), False)
        self.backbone = DeeplabResNet(model_cfg['backbone'])
        enc = model_cfg['encoder']
        in_features = enc.get('in_features')
        if not in_features:
            raise ReferenceError('configuration model.encoder lacks in_features')
        shapes = self.backbone.output_shape()
        missing = [f for f in in_features if f not in shapes]
        if missing:
            raise ReferenceError('encoder.in_features %s not produced by the backbone' % missing)
        encoder = MSDeformAttnPixelDecoder({k: v for k, v in shapes.items() if k in in_features},
                                           **_pick(enc, _ENCODER_KEYS, 'model.encoder'))
        decoder = MultiScaleMaskedTransformerDecoder(encoder.conv_dim,
                                                     **_pick(model_cfg['decoder'], _DECODER_KEYS, 'model.decoder'))
        self.sem_seg_head = M2FPHead(encoder, decoder)
        self.num_classes = decoder.num_classes
        self.num_queries = decoder.num_queries

    def forward(self, images, rec=_noop_recorder, timings: Optional[dict] = None):
        """images: normalised, padded [B, 3, Hp, Wp]. Returns pred_logits [B, Q, K+1], pred_masks [B, Q, Hp/4, Wp/4]."""
        t0 = time.perf_counter()
        features = self.backbone(images, rec)
        t1 = time.perf_counter()
        mask_features, _, multi_scale = self.sem_seg_head.pixel_decoder.forward_features(features, rec)
        t2 = time.perf_counter()
        out = self.sem_seg_head.predictor(multi_scale, mask_features, rec)
        t3 = time.perf_counter()
        if timings is not None:
            timings['backbone'] = t1 - t0
            timings['pixel_decoder'] = t2 - t1
            timings['transformer_decoder'] = t3 - t2
        return out


def read_model_config(model_dir: str) -> dict:
    """The "model" section of DIR/configuration.json (ReferenceError with the path on any problem)."""
    path = os.path.join(model_dir, 'configuration.json')
    if not os.path.isfile(path):
        raise ReferenceError('%s: not found (expected a ModelScope model folder)' % path)
    try:
        with open(path, 'r', encoding='utf-8') as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise ReferenceError('%s: cannot read JSON: %s' % (path, e)) from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get('model'), dict):
        raise ReferenceError('%s: no "model" object' % path)
    return copy.deepcopy(cfg['model'])


def load_state_dict_file(path: str) -> Dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise ReferenceError('%s: not found' % path)
    try:
        ckpt = torch.load(path, map_location='cpu')
    except Exception as e:  # torch raises many types for a bad file
        raise ReferenceError('%s: torch.load failed: %s' % (path, e)) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get('model'), dict):
        raise ReferenceError("%s: expected a dict with a 'model' state dict" % path)
    return ckpt['model']


def load_state_into(model: M2FP, state: Dict[str, torch.Tensor], where: str) -> None:
    """Strict load: every key present, none extra, every shape equal; ReferenceError naming the keys if not."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = ['%s: file %s, model %s' % (k, tuple(state[k].shape), tuple(own[k].shape))
             for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append('%d missing (%s)' % (len(missing), ', '.join(missing[:8])))
        if unexpected:
            parts.append('%d unexpected (%s)' % (len(unexpected), ', '.join(unexpected[:8])))
        if wrong:
            parts.append('%d mis-shaped (%s)' % (len(wrong), '; '.join(wrong[:8])))
        raise ReferenceError('%s: state dict does not match the configuration: %s' % (where, '; '.join(parts)))
    model.load_state_dict(state, strict=True)


def load_model(model_dir: str) -> Tuple[M2FP, dict]:
    """Build the network from DIR/configuration.json and load DIR/pytorch_model.pt strictly; eval mode."""
    model_cfg = read_model_config(model_dir)
    model = M2FP(model_cfg)
    path = os.path.join(model_dir, 'pytorch_model.pt')
    load_state_into(model, load_state_dict_file(path), path)
    model.eval()
    return model, model_cfg


# ================================================================================================
# Pre-processing (upstream pipeline: image_human_parsing_pipeline.py, parsing_utils.py, ImageList)
# ================================================================================================

def load_rgb(path: str) -> np.ndarray:
    """PIL decode as upstream's LoadImage: open, ImageOps.exif_transpose, convert('RGB') -> uint8 [H0, W0, 3]."""
    if not os.path.isfile(path):
        raise ReferenceError('%s: image not found' % path)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert('RGB')).copy()
    except (OSError, ValueError, SyntaxError) as e:
        raise ReferenceError('%s: cannot decode image: %s' % (path, e)) from None


def check_rgb(rgb: np.ndarray, where: str = 'image') -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ReferenceError('%s: expected a uint8 array [H, W, 3], got %s %s'
                             % (where, getattr(rgb, 'dtype', type(rgb)), getattr(rgb, 'shape', '')))
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ReferenceError('%s: empty image %s' % (where, rgb.shape))
    return np.ascontiguousarray(rgb)


def get_preprocess_shape(oldh: int, oldw: int, short_edge_length: float, max_size: float) -> Tuple[int, int]:
    """Upstream _get_preprocess_shape: short edge to short_edge_length, long edge capped at max_size."""
    h, w = oldh, oldw
    size = short_edge_length * 1.0
    scale = size / min(h, w)
    if h < w:
        newh, neww = size, scale * w
    else:
        newh, neww = scale * h, size
    if max(newh, neww) > max_size:
        scale = max_size * 1.0 / max(newh, neww)
        newh = newh * scale
        neww = neww * scale
    return int(newh + 0.5), int(neww + 0.5)


def normalize_and_pad(x: torch.Tensor, divisibility: int = SIZE_DIVISIBILITY) -> torch.Tensor:
    """x [3, h, w] (0..255, float or uint8) -> (x - mean) / std, zero-padded bottom/right: [1, 3, Hp, Wp]."""
    mean = torch.tensor(PIXEL_MEAN).view(-1, 1, 1)
    std = torch.tensor(PIXEL_STD).view(-1, 1, 1)
    y = (x - mean) / std
    h, w = y.shape[-2:]
    hp = (h + divisibility - 1) // divisibility * divisibility
    wp = (w + divisibility - 1) // divisibility * divisibility
    return F.pad(y, [0, wp - w, 0, hp - h], value=0.0).unsqueeze(0).contiguous()


def preprocess_multi(rgb: np.ndarray, short_edge: int = 640, max_size: int = 1333) -> dict:
    """Multi-person: PIL BILINEAR resize (T.Resize on a PIL image), ToTensor (/255) then *255, normalise, pad."""
    rgb = check_rgb(rgb)
    h0, w0 = rgb.shape[:2]
    nh, nw = get_preprocess_shape(h0, w0, short_edge, max_size)
    if nh < 1 or nw < 1:
        raise ReferenceError('resized size %dx%d is empty (image %dx%d, short edge %s, max size %s)'
                             % (nh, nw, h0, w0, short_edge, max_size))
    resized = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR))           # uint8 [nh, nw, 3]
    x = torch.from_numpy(resized.copy()).permute(2, 0, 1).contiguous()                      # uint8 [3, nh, nw]
    x = x.to(torch.float32).div(255) * 255.                                                 # as ToTensor() * 255.
    return {'input': x, 'image': normalize_and_pad(x), 'image_size': (nh, nw), 'resized': resized,
            'height': h0, 'width': w0, 'crop_box': None}


def center_to_target_size_test(img: np.ndarray, target_size: Sequence[int]):
    """Upstream parsing_utils.center_to_target_size_test: shrink to fit (PIL BILINEAR) when larger than the
    canvas, then centre on a canvas filled with 128. target_size = (W, H). Returns (image, box [x0, y0, x1, y1]).

    Quirks kept from upstream: the centring pad is skipped entirely when pad_left == 0 and pad_top == 0 (the
    image then stays smaller than the canvas); new sizes truncate with int()."""
    src_h, src_w = img.shape[0], img.shape[1]
    trg_h, trg_w = int(target_size[1]), int(target_size[0])
    resize = True
    if src_h > trg_h and src_w > trg_w:
        new_h = new_w = 0
        if src_h > src_w:
            new_h = trg_h
            new_w = int(new_h * src_w / src_h)
            if new_w > trg_w:
                new_w = trg_w
                new_h = int(new_w * src_h / src_w)
        elif src_w > src_h:
            new_w = trg_w
            new_h = int(new_w * src_h / src_w)
            if new_h > trg_h:
                new_h = trg_h
                new_w = int(new_h * src_w / src_h)
        else:
            # Upstream leaves new_h = new_w = 0 here and PIL then refuses the 0x0 resize.
            raise ReferenceError('single-person pre-processing: a square %dx%d image larger than the %dx%d canvas '
                                 'gets size 0x0 in upstream center_to_target_size_test (upstream fails here too)'
                                 % (src_h, src_w, trg_h, trg_w))
    elif src_h > trg_h and src_w <= trg_w:
        new_h = trg_h
        new_w = int(new_h * src_w / src_h)
    elif src_h <= trg_h and src_w > trg_w:
        new_w = trg_w
        new_h = int(new_w * src_h / src_w)
    else:
        new_h, new_w = src_h, src_w
        resize = False
    if new_h < 1 or new_w < 1:
        raise ReferenceError('single-person pre-processing: %dx%d image shrinks to an empty %dx%d'
                             % (src_h, src_w, new_h, new_w))
    out = img
    if resize:
        out = np.asarray(Image.fromarray(img).resize((new_w, new_h), Image.BILINEAR))
    pad_left = int((trg_w - new_w) / 2)
    pad_right = trg_w - new_w - pad_left
    pad_top = int((trg_h - new_h) / 2)
    pad_bottom = trg_h - new_h - pad_top
    if not (pad_left == 0 and pad_top == 0):
        out = np.pad(out, ((pad_top, pad_bottom), (pad_left, pad_right), (0, 0)), 'constant', constant_values=128)
    box = [int((trg_w - new_w) / 2), int((trg_h - new_h) / 2), 0, 0]
    box[2] = new_w + box[0]
    box[3] = new_h + box[1]
    return out, box


def preprocess_single(rgb: np.ndarray, target_size: Sequence[int]) -> dict:
    """Single-person: centre on the canvas (uint8), then normalise and pad to 32."""
    rgb = check_rgb(rgb)
    h0, w0 = rgb.shape[:2]
    canvas, box = center_to_target_size_test(rgb, target_size)                               # uint8 [h, w, 3]
    x = torch.as_tensor(np.ascontiguousarray(canvas.transpose(2, 0, 1)))                    # uint8 [3, h, w]
    return {'input': x.to(torch.float32), 'image': normalize_and_pad(x), 'image_size': tuple(canvas.shape[:2]),
            'height': h0, 'width': w0, 'crop_box': box}


def preprocess(model_cfg: dict, rgb: np.ndarray, short_edge: int = 640, max_size: int = 1333) -> dict:
    if model_cfg.get('single_human', False):
        sizes = (model_cfg.get('input_single_human') or {}).get('sizes')
        if not sizes or len(sizes[0]) != 2:
            raise ReferenceError('single_human configuration lacks input_single_human.sizes [[W, H]]')
        return preprocess_single(rgb, sizes[0])
    return preprocess_multi(rgb, short_edge, max_size)


# ================================================================================================
# Post-processing (upstream m2fp_net.py postprocess)
# ================================================================================================

def _bilinear(x: torch.Tensor, size) -> torch.Tensor:
    """[..., h, w] -> [..., H, W], F.interpolate bilinear, align_corners=False (not antialiased)."""
    lead = x.shape[:-2]
    y = F.interpolate(x.reshape(1, -1, *x.shape[-2:]), size=tuple(int(s) for s in size), mode='bilinear',
                      align_corners=False)
    return y.reshape(*lead, *y.shape[-2:])


class QueryMasks:
    """Mask logits of one query at the original image size, computed on demand.

    Upstream upsamples all Q masks to (Hp, Wp), crops to the resized image (and, single-person, to the crop
    box), then upsamples all to (H0, W0): Q*H0*W0 floats at once. Interpolation is per channel, so doing it one
    query at a time gives the same numbers with O(H0*W0) memory; results are cached up to `cache_bytes`."""

    def __init__(self, pred_masks: torch.Tensor, padded_size, image_size, crop_box, out_size,
                 cache_bytes: int = 1 << 30):
        self.pred_masks = pred_masks              # [Q, Hp/4, Wp/4]
        self.padded_size = tuple(padded_size)      # (Hp, Wp)
        self.image_size = tuple(image_size)        # (nh, nw) or the single-person canvas
        self.crop_box = crop_box                   # [x0, y0, x1, y1] or None
        self.out_size = tuple(out_size)            # (H0, W0)
        self.cache: Dict[int, torch.Tensor] = {}
        self.cache_left = cache_bytes

    def get(self, q: int) -> torch.Tensor:
        if q in self.cache:
            return self.cache[q]
        m = _bilinear(self.pred_masks[q], self.padded_size)                     # [Hp, Wp]
        m = m[:self.image_size[0], :self.image_size[1]]                          # [nh, nw]
        if self.crop_box is not None:
            x0, y0, x1, y1 = self.crop_box
            m = m[y0:y1, x0:x1]
        m = _bilinear(m, self.out_size)                                          # [H0, W0]
        nbytes = m.numel() * 4
        if nbytes <= self.cache_left:
            self.cache[q] = m
            self.cache_left -= nbytes
        return m


def instance_parsing_inference(mask_cls: torch.Tensor, masks: QueryMasks, num_parsing: int,
                               ins_score_thr: float, topk: int = TEST_TOPK_PER_IMAGE):
    """Upstream instance_parsing_inference + paste_instance_to_semseg_probs.

    mask_cls: [Q, K+1] logits. Returns (instances, semantic [num_parsing, H0, W0]).
    instances: parts (label != num_parsing, label != 0, score >= 0.1) then humans (label == num_parsing,
    score > 0.1), each list in descending final score; {kind, category_id, score, area, query}.
    The top-k is taken sorted (upstream: sorted=False, whose order is unspecified): same set of pairs."""
    q_count, k1 = mask_cls.shape
    k = k1 - 1
    scores = F.softmax(mask_cls, dim=-1)[:, :-1]                              # [Q, K]
    top_scores, top_idx = scores.flatten(0, 1).topk(min(topk, q_count * k), sorted=True)
    labels = top_idx % k                                                      # [topk]
    queries = torch.div(top_idx, k, rounding_mode='floor')                    # [topk]

    mask_score, area = {}, {}
    for q in sorted(set(queries.tolist())):
        m = masks.get(q)                                                      # [H0, W0]
        binary = (m > 0).float()
        mask_score[q] = (m.sigmoid().flatten() * binary.flatten()).sum() / (binary.flatten().sum() + 1e-6)
        area[q] = int((m > 0).sum())
    final = top_scores * torch.stack([mask_score[q] for q in queries.tolist()])  # [topk]

    # semantic paste: per class, ascending score, score >= thr; where p = sigmoid*score > 0.5 add p and count
    h0, w0 = masks.out_size
    semantic = torch.zeros((num_parsing, h0, w0), dtype=torch.float32)
    for c in range(num_parsing):
        entries = [(float(final[j]), j) for j in range(len(labels)) if int(labels[j]) == c]
        entries.sort(key=lambda e: e[0])
        probs = torch.zeros((h0, w0), dtype=torch.float32)
        times = torch.zeros((h0, w0), dtype=torch.float32)
        for _, j in entries:
            s = final[j]
            if s < ins_score_thr:
                continue
            p = masks.get(int(queries[j])).sigmoid() * s
            hit = p > 0.5
            probs = torch.where(hit, p + probs, probs)
            times += hit.float()
        times = torch.where(times == 0, times + 1, times)
        semantic[c] = probs / times

    parts, humans = [], []
    for j in range(len(labels)):
        lab, s, q = int(labels[j]), float(final[j]), int(queries[j])
        rec = {'category_id': lab, 'score': s, 'area': area[q], 'query': q}
        if lab == num_parsing:
            if s > 0.1:
                humans.append(dict(kind='human', **rec))
        elif lab != 0 and s >= 0.1:
            parts.append(dict(kind='part', **rec))
    parts.sort(key=lambda r: -r['score'])
    humans.sort(key=lambda r: -r['score'])
    return parts + humans, semantic


def semantic_inference(mask_cls: torch.Tensor, mask_pred: torch.Tensor) -> torch.Tensor:
    """softmax(logits)[:, :-1]^T . sigmoid(masks): [Q, K+1], [Q, h, w] -> [K, h, w]."""
    return torch.einsum('qc,qhw->chw', F.softmax(mask_cls, dim=-1)[..., :-1], mask_pred.sigmoid())


def postprocess(model_cfg: dict, pred_logits: torch.Tensor, pred_masks: torch.Tensor, prep: dict,
                padded_size) -> dict:
    """pred_logits [Q, K+1], pred_masks [Q, Hp/4, Wp/4] -> semantic [C, H0, W0], labels [H0, W0], instances."""
    single = bool(model_cfg.get('single_human', False))
    parsing_on = bool(model_cfg.get('parsing_on', False))
    semantic_on = bool(model_cfg.get('semantic_on', True))
    before = bool(model_cfg.get('sem_seg_postprocess_before_inference', True)) or parsing_on
    if not semantic_on and not parsing_on:
        raise ReferenceError('configuration has neither parsing_on nor semantic_on: nothing to compute')
    out_size = (prep['height'], prep['width'])
    crop_box = prep['crop_box'] if single else None
    masks = QueryMasks(pred_masks, padded_size, prep['image_size'], crop_box, out_size)
    result = {'instances': []}
    if semantic_on:
        if before:
            # masks at the original size first (upstream computes this but, quirk, never stores it as sem_seg)
            full = torch.stack([masks.get(q) for q in range(pred_masks.shape[0])])  # [Q, H0, W0]
            result['sem_seg'] = semantic_inference(pred_logits, full)                # [K, H0, W0]
        else:
            r = semantic_inference(pred_logits, _bilinear(pred_masks, padded_size))  # [K, Hp, Wp]
            r = r[:, :prep['image_size'][0], :prep['image_size'][1]]
            if crop_box is not None:
                x0, y0, x1, y1 = crop_box
                r = r[:, y0:y1, x0:x1]
            result['sem_seg'] = _bilinear(r, out_size)                               # [K, H0, W0]
    if parsing_on:
        if 'num_parsing' not in model_cfg:
            raise ReferenceError('parsing_on configuration lacks num_parsing')
        instances, semantic = instance_parsing_inference(
            pred_logits, masks, int(model_cfg['num_parsing']), float(model_cfg.get('parsing_ins_score_thr', 0.5)))
        result['instances'] = instances
        result['semantic'] = semantic                                                # [num_parsing, H0, W0]
    else:
        result['semantic'] = result['sem_seg']
    result['labels'] = result['semantic'].argmax(dim=0)                             # [H0, W0]
    return result


# ================================================================================================
# The whole pipeline
# ================================================================================================

class M2FPReference:
    """Model + configuration; run() = upstream pre-processing, forward, post-processing, with timings."""

    def __init__(self, model: M2FP, model_cfg: dict):
        self.model = model
        self.cfg = model_cfg

    @classmethod
    def from_model_dir(cls, model_dir: str) -> 'M2FPReference':
        return cls(*load_model(model_dir))

    def names(self) -> List[str]:
        return intermediate_names(self.cfg)

    @torch.no_grad()
    def run(self, rgb: np.ndarray, short_edge: int = 640, max_size: int = 1333,
            rec: Optional[Recorder] = None, postprocess_on: bool = True) -> dict:
        """rgb uint8 [H0, W0, 3] -> dict(pred_logits [Q, K+1], pred_masks [Q, Hp/4, Wp/4], semantic, labels,
        instances, timings {preprocess, backbone, pixel_decoder, transformer_decoder, postprocess, total} s)."""
        r = rec if rec is not None else _noop_recorder
        timings = {}
        t0 = time.perf_counter()
        prep = preprocess(self.cfg, rgb, short_edge, max_size)
        r('input', prep['input'])
        r('image', prep['image'][0])
        t1 = time.perf_counter()
        timings['preprocess'] = t1 - t0
        out = self.model(prep['image'], r, timings)
        t2 = time.perf_counter()
        logits, masks = out['pred_logits'][0], out['pred_masks'][0]
        result = {'pred_logits': logits, 'pred_masks': masks, 'prep': prep}
        if postprocess_on:
            post = postprocess(self.cfg, logits, masks, prep, prep['image'].shape[-2:])
            r('semantic', post['semantic'])
            r('labels', post['labels'].to(torch.float32))
            result.update(post)
        t3 = time.perf_counter()
        timings['postprocess'] = t3 - t2
        timings['total'] = t3 - t0
        result['timings'] = timings
        return result
