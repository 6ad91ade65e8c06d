#!/usr/bin/env python3
"""Convert an M2FP ModelScope checkpoint (PyTorch zip) to a safetensors file for m2fp.cpp.

Usage:
    python3 tools/convert_weights.py SRC -o OUT.safetensors [--config CONFIG.json] [--verbose]

SRC is a ModelScope model folder (``pytorch_model.pt`` + ``configuration.json``), or a ``.pt``
file together with ``--config`` (a configuration.json; without it, one beside the ``.pt`` is used).
``--config`` also overrides the folder's configuration.json.

Safety and dependencies
-----------------------
Standard library only (zipfile, pickle, json, struct): it runs under any Python 3.8+ without
torch or numpy. The pickle inside the checkpoint is NEVER executed: a restricted
``pickle.Unpickler`` resolves only the few globals a state dict needs (``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter``, ``torch._tensor._rebuild_from_type_v2``
for plain tensors, ``torch.<Type>Storage``) to inert stand-ins defined here, and refuses any other
global (``os.system``, ``builtins.eval``, ...) with an error naming it. Tensor bytes are read from
``<archive>/data/<key>`` records of the zip; storage offsets and strides are honoured
(non-contiguous tensors are copied to row-major order).

Input layout (PyTorch >= 1.6 ``torch.save``, zip)
--------------------------------------------------
    <archive>/data.pkl     pickle (protocol 2) of {'model': OrderedDict(name -> tensor)}
    <archive>/data/<key>   raw little-endian bytes of storage <key>
    <archive>/version, <archive>/byteorder (optional: 'little')
The legacy pre-1.6 format (a bare pickle stream) and TorchScript archives are refused.

Output layout (safetensors, https://huggingface.co/docs/safetensors)
--------------------------------------------------------------------
    bytes [0, 8)        N: header length, unsigned 64-bit little-endian
    bytes [8, 8 + N)    UTF-8 JSON, padded with spaces so that 8 + N is a multiple of 8:
                        {"__metadata__": {...},
                         "<tensor name>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...}
    bytes [8 + N, end)  tensor data, raw little-endian, row-major, back to back (no holes);
                        data_offsets are relative to byte 8 + N.
Tensors appear (in the JSON and in the data) grouped by element size, largest first (I64/F64,
then F32/I32, then F16/BF16, then 1-byte types) and, within a group, in the order of the
expected-tensor table below (= upstream state-dict order), so every tensor starts at a multiple
of its element size. Names, dtypes and values are exactly those of the checkpoint (bit-identical).

``__metadata__`` (string values only):
    "format":          "pt"
    "m2fp.config":     JSON text of configuration.json's "model" section
    "m2fp.synthetic":  "true" if configuration.json has a top-level "m2fp_synthetic" object
                       (tools/make_synthetic_checkpoint.py writes one), else "false"
    "m2fp.source":     the file that was read (folder name / file name)
    "m2fp.converter":  CONVERTER_VERSION

Checks: the tensors the network needs are derived from the configuration
(``expected_tensors``); a missing or mis-shaped tensor is an error naming it (exit status 1,
message on stderr, no output file: data is written to a temporary name that is renamed at the
end). Tensors the network does not use are listed and skipped.
"""

import argparse
import collections
import io
import json
import lzma
import math
import os
import pickle
import struct
import sys
import time
import zipfile
import zlib

CONVERTER_VERSION = "m2fp convert_weights.py 1.0"


class ConvertError(Exception):
    """A problem with the input or the configuration; the message says what and where."""


# ------------------------------------------------------------------------------------------------
# Data types
# ------------------------------------------------------------------------------------------------

# torch storage class name -> (safetensors dtype, element size in bytes)
STORAGE_DTYPES = {
    "FloatStorage": ("F32", 4),
    "DoubleStorage": ("F64", 8),
    "HalfStorage": ("F16", 2),
    "BFloat16Storage": ("BF16", 2),
    "LongStorage": ("I64", 8),
    "IntStorage": ("I32", 4),
    "ShortStorage": ("I16", 2),
    "CharStorage": ("I8", 1),
    "ByteStorage": ("U8", 1),
    "BoolStorage": ("BOOL", 1),
}
FLOAT_DTYPES = {"F32", "F64", "F16", "BF16"}
INT_DTYPES = {"I64", "I32", "I16", "I8", "U8"}


# ------------------------------------------------------------------------------------------------
# Expected tensors: one readable function per module, mirroring upstream's module registration
# order (state_dict order). For the CIHP configuration this equals tests/data/cihp_state_dict.tsv.
# ------------------------------------------------------------------------------------------------

class Expected(collections.namedtuple("Expected", "name shape dtype")):
    """One tensor the network reads: name, shape (tuple), safetensors dtype."""


# Bottleneck blocks of res2..res5 per backbone depth: the one copy in Python (the generator and the
# reference, tests/reference/m2fp_ref.py, import it); C++: model_loader/config.cpp.
RESNET_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
STAGE_INDEX = {"res2": 2, "res3": 3, "res4": 4, "res5": 5}
DEFORM_ATTN_POINTS = 4      # MSDeformAttnTransformerEncoderOnly(enc_n_points=4)
DECODER_FEATURE_LEVELS = 3  # MultiScaleMaskedTransformerDecoder always uses 3 scales
GROUP_NORM_GROUPS = 32


def _get(section, key, kind, where):
    """section[key], checked to be of `kind` (int, bool, str, list, dict); ConvertError otherwise."""
    if not isinstance(section, dict) or key not in section:
        raise ConvertError("configuration: missing key '%s.%s'" % (where, key))
    value = section[key]
    ok = isinstance(value, kind)
    if kind is int and isinstance(value, bool):
        ok = False
    if not ok:
        raise ConvertError("configuration: '%s.%s' must be %s, got %r"
                           % (where, key, kind.__name__, value))
    return value


def _positive(value, where, at_most=65536):
    """value in [1, at_most]. The bounds are far above any M2FP model and keep the tensor table
    small: transformer_enc_layers = 10**9 made expected_tensors() run out of time and memory."""
    if value <= 0:
        raise ConvertError("configuration: '%s' must be positive, got %d" % (where, value))
    if value > at_most:
        raise ConvertError("configuration: '%s' must be at most %d, got %d" % (where, at_most, value))
    return value


MAX_LAYERS = 1000
MAX_COUNT = 100000
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError,
              RuntimeError, zlib.error, lzma.LZMAError)   # zipfile and its decompressors (bz2: OSError)


def _feature_list(section, key, where):
    names = _get(section, key, list, where)
    for n in names:
        if n not in STAGE_INDEX:
            raise ConvertError("configuration: '%s.%s' has unknown feature %r (expected res2..res5)"
                               % (where, key, n))
    if not names:
        raise ConvertError("configuration: '%s.%s' is empty" % (where, key))
    return names


def _norm_tensors(prefix, channels, norm):
    """Parameters (and BatchNorm buffers) of a norm layer over `channels` channels."""
    out = [Expected(prefix + ".weight", (channels,), "F32"),
           Expected(prefix + ".bias", (channels,), "F32")]
    if norm in ("BN", "nnSyncBN"):
        out += [Expected(prefix + ".running_mean", (channels,), "F32"),
                Expected(prefix + ".running_var", (channels,), "F32"),
                Expected(prefix + ".num_batches_tracked", (), "I64")]
    return out


def _conv_norm(prefix, cout, cin_per_group, k, norm):
    """detectron2-style Conv2d without bias followed by its `norm` child."""
    return [Expected(prefix + ".weight", (cout, cin_per_group, k, k), "F32")] + \
        _norm_tensors(prefix + ".norm", cout, norm)


def backbone_layout(bb):
    """DeepLab ResNet: returns (tensors, {feature: (channels, stride)}) in out_features order."""
    w = "model.backbone"
    depth = _get(bb, "depth", int, w)
    if depth not in RESNET_BLOCKS:
        raise ConvertError("configuration: '%s.depth' must be 50, 101 or 152, got %d" % (w, depth))
    groups = _positive(_get(bb, "num_groups", int, w), w + ".num_groups")
    width = _positive(_get(bb, "width_per_group", int, w), w + ".width_per_group")
    stem_out = _positive(_get(bb, "stem_out_channels", int, w), w + ".stem_out_channels")
    res2_out = _positive(_get(bb, "res2_out_channels", int, w), w + ".res2_out_channels")
    out_features = _feature_list(bb, "out_features", w)
    norm = bb.get("norm", "BN")
    if norm not in ("BN", "nnSyncBN", "GN"):
        raise ConvertError("configuration: '%s.norm' must be BN, nnSyncBN or GN, got %r" % (w, norm))
    res4_dil = _positive(_get(bb, "res4_dilation", int, w), w + ".res4_dilation") if "res4_dilation" in bb else 1
    res5_dil = _positive(_get(bb, "res5_dilation", int, w), w + ".res5_dilation") if "res5_dilation" in bb else 1
    if stem_out % 2:
        raise ConvertError("configuration: '%s.stem_out_channels' must be even" % w)

    t = []
    # stem: 3x3 s2 3 -> stem/2, 3x3 stem/2 -> stem/2, 3x3 stem/2 -> stem
    t += _conv_norm("backbone.stem.conv1", stem_out // 2, 3, 3, norm)
    t += _conv_norm("backbone.stem.conv2", stem_out // 2, stem_out // 2, 3, norm)
    t += _conv_norm("backbone.stem.conv3", stem_out, stem_out // 2, 3, norm)

    shapes = {}
    cin, cout, mid, stride = stem_out, res2_out, groups * width, 4
    if mid % groups:
        raise ConvertError("configuration: bottleneck width not divisible by num_groups")
    _positive(mid, w + ".width_per_group * num_groups")
    last_stage = max(STAGE_INDEX[f] for f in out_features)
    for idx, stage in enumerate(range(2, last_stage + 1)):
        dilation = res4_dil if stage == 4 else res5_dil if stage == 5 else 1
        first_stride = 1 if idx == 0 or dilation > 1 else 2
        for b in range(RESNET_BLOCKS[depth][idx]):
            p = "backbone.res%d.%d" % (stage, b)
            block_in = cin if b == 0 else cout
            if block_in != cout:   # projection shortcut (first block of a stage)
                t += _conv_norm(p + ".shortcut", cout, block_in, 1, norm)
            t += _conv_norm(p + ".conv1", mid, block_in, 1, norm)
            t += _conv_norm(p + ".conv2", mid, mid // groups, 3, norm)
            t += _conv_norm(p + ".conv3", cout, mid, 1, norm)
        stride *= first_stride
        shapes["res%d" % stage] = (cout, stride)
        cin, cout, mid = cout, cout * 2, mid * 2
    return t, collections.OrderedDict((f, shapes[f]) for f in out_features)


def pixel_decoder_layout(enc, backbone_shapes):
    """MSDeformAttnPixelDecoder: returns (tensors, conv_dim, mask_dim)."""
    w = "model.encoder"
    in_features = _feature_list(enc, "in_features", w)
    tr_features = _feature_list(enc, "transformer_in_features", w)
    nheads = _positive(_get(enc, "transformer_nheads", int, w), w + ".transformer_nheads")
    ffn = _positive(_get(enc, "transformer_dim_feedforward", int, w), w + ".transformer_dim_feedforward")
    layers = _get(enc, "transformer_enc_layers", int, w)
    if layers > MAX_LAYERS:
        raise ConvertError("configuration: '%s.transformer_enc_layers' must be at most %d" % (w, MAX_LAYERS))
    conv_dim = _positive(_get(enc, "conv_dim", int, w), w + ".conv_dim")
    mask_dim = _positive(_get(enc, "mask_dim", int, w), w + ".mask_dim")
    common_stride = _positive(_get(enc, "common_stride", int, w), w + ".common_stride")
    if layers < 0:
        raise ConvertError("configuration: '%s.transformer_enc_layers' must be >= 0" % w)
    if conv_dim % GROUP_NORM_GROUPS:
        raise ConvertError("configuration: '%s.conv_dim' (%d) must be a multiple of %d (GroupNorm)"
                           % (w, conv_dim, GROUP_NORM_GROUPS))
    if conv_dim % nheads:
        raise ConvertError("configuration: '%s.conv_dim' (%d) must be divisible by transformer_nheads (%d)"
                           % (w, conv_dim, nheads))

    # the pixel decoder sees backbone outputs that are in in_features, sorted by stride (stable)
    inputs = [(f, s) for f, s in backbone_shapes.items() if f in in_features]
    missing = [f for f in in_features if f not in backbone_shapes]
    if missing:
        raise ConvertError("configuration: encoder.in_features %s not in backbone.out_features" % missing)
    inputs.sort(key=lambda fs: fs[1][1])
    tr_inputs = [(f, s) for f, s in inputs if f in tr_features]
    missing = [f for f in tr_features if f not in dict(inputs)]
    if missing:
        raise ConvertError("configuration: encoder.transformer_in_features %s not in encoder.in_features"
                           % missing)
    levels = len(tr_inputs)
    min_stride = min(s[1] for _, s in tr_inputs)
    num_fpn = int(round(math.log2(min_stride) - math.log2(common_stride)))
    if num_fpn < 0 or num_fpn > len(inputs):
        raise ConvertError("configuration: encoder.common_stride %d gives %d FPN levels; only %d inputs"
                           % (common_stride, num_fpn, len(inputs)))
    if levels + num_fpn < DECODER_FEATURE_LEVELS:
        raise ConvertError("configuration: the pixel decoder yields %d feature levels, the decoder needs %d"
                           % (levels + num_fpn, DECODER_FEATURE_LEVELS))

    p = "sem_seg_head.pixel_decoder."
    t = []
    # input_proj.{i}: 1x1 conv (bias) + GroupNorm, from low to high resolution (res5 first)
    proj_in = [s[0] for _, s in tr_inputs][::-1] if levels > 1 else [tr_inputs[-1][1][0]]
    for i, cin in enumerate(proj_in):
        t += [Expected(p + "input_proj.%d.0.weight" % i, (conv_dim, cin, 1, 1), "F32"),
              Expected(p + "input_proj.%d.0.bias" % i, (conv_dim,), "F32")]
        t += _norm_tensors(p + "input_proj.%d.1" % i, conv_dim, "GN")
    # deformable transformer encoder
    t.append(Expected(p + "transformer.level_embed", (levels, conv_dim), "F32"))
    for l in range(layers):
        q = p + "transformer.encoder.layers.%d." % l
        n_off = nheads * levels * DEFORM_ATTN_POINTS
        t += [Expected(q + "self_attn.sampling_offsets.weight", (n_off * 2, conv_dim), "F32"),
              Expected(q + "self_attn.sampling_offsets.bias", (n_off * 2,), "F32"),
              Expected(q + "self_attn.attention_weights.weight", (n_off, conv_dim), "F32"),
              Expected(q + "self_attn.attention_weights.bias", (n_off,), "F32"),
              Expected(q + "self_attn.value_proj.weight", (conv_dim, conv_dim), "F32"),
              Expected(q + "self_attn.value_proj.bias", (conv_dim,), "F32"),
              Expected(q + "self_attn.output_proj.weight", (conv_dim, conv_dim), "F32"),
              Expected(q + "self_attn.output_proj.bias", (conv_dim,), "F32")]
        t += _norm_tensors(q + "norm1", conv_dim, "LN")
        t += [Expected(q + "linear1.weight", (ffn, conv_dim), "F32"),
              Expected(q + "linear1.bias", (ffn,), "F32"),
              Expected(q + "linear2.weight", (conv_dim, ffn), "F32"),
              Expected(q + "linear2.bias", (conv_dim,), "F32")]
        t += _norm_tensors(q + "norm2", conv_dim, "LN")
    # mask_features: 1x1 conv with bias
    t += [Expected(p + "mask_features.weight", (mask_dim, conv_dim, 1, 1), "F32"),
          Expected(p + "mask_features.bias", (mask_dim,), "F32")]
    # extra FPN levels: adapter_{i} 1x1 conv + GN (no bias), layer_{i} 3x3 conv + GN (no bias)
    for i, (_, (cin, _)) in enumerate(inputs[:num_fpn]):
        t += _conv_norm(p + "adapter_%d" % (i + 1), conv_dim, cin, 1, "GN")
        t += _conv_norm(p + "layer_%d" % (i + 1), conv_dim, conv_dim, 3, "GN")
    return t, conv_dim, mask_dim


def transformer_decoder_layout(dec, in_channels, pixel_mask_dim):
    """MultiScaleMaskedTransformerDecoder (mask classification)."""
    w = "model.decoder"
    num_classes = _positive(_get(dec, "num_classes", int, w), w + ".num_classes", MAX_COUNT)
    hidden = _positive(_get(dec, "hidden_dim", int, w), w + ".hidden_dim")
    queries = _positive(_get(dec, "num_queries", int, w), w + ".num_queries", MAX_COUNT)
    nheads = _positive(_get(dec, "nheads", int, w), w + ".nheads")
    ffn = _positive(_get(dec, "dim_feedforward", int, w), w + ".dim_feedforward")
    layers = _get(dec, "dec_layers", int, w)
    if layers > MAX_LAYERS:
        raise ConvertError("configuration: '%s.dec_layers' must be at most %d" % (w, MAX_LAYERS))
    mask_dim = _positive(_get(dec, "mask_dim", int, w), w + ".mask_dim")
    enforce_proj = dec.get("enforce_input_project", False)
    if layers < 0:
        raise ConvertError("configuration: '%s.dec_layers' must be >= 0" % w)
    if hidden % nheads:
        raise ConvertError("configuration: '%s.hidden_dim' (%d) must be divisible by nheads (%d)"
                           % (w, hidden, nheads))
    if mask_dim != pixel_mask_dim:
        raise ConvertError("configuration: decoder.mask_dim (%d) != encoder.mask_dim (%d)"
                           % (mask_dim, pixel_mask_dim))

    p = "sem_seg_head.predictor."
    t = []

    def attention(prefix):   # nn.MultiheadAttention with packed q/k/v projection
        return [Expected(prefix + ".in_proj_weight", (3 * hidden, hidden), "F32"),
                Expected(prefix + ".in_proj_bias", (3 * hidden,), "F32"),
                Expected(prefix + ".out_proj.weight", (hidden, hidden), "F32"),
                Expected(prefix + ".out_proj.bias", (hidden,), "F32")]

    for l in range(layers):
        q = p + "transformer_self_attention_layers.%d" % l
        t += attention(q + ".self_attn") + _norm_tensors(q + ".norm", hidden, "LN")
    for l in range(layers):
        q = p + "transformer_cross_attention_layers.%d" % l
        t += attention(q + ".multihead_attn") + _norm_tensors(q + ".norm", hidden, "LN")
    for l in range(layers):
        q = p + "transformer_ffn_layers.%d." % l
        t += [Expected(q + "linear1.weight", (ffn, hidden), "F32"),
              Expected(q + "linear1.bias", (ffn,), "F32"),
              Expected(q + "linear2.weight", (hidden, ffn), "F32"),
              Expected(q + "linear2.bias", (hidden,), "F32")]
        t += _norm_tensors(q + "norm", hidden, "LN")
    t += _norm_tensors(p + "decoder_norm", hidden, "LN")
    t += [Expected(p + "query_feat.weight", (queries, hidden), "F32"),
          Expected(p + "query_embed.weight", (queries, hidden), "F32"),
          Expected(p + "level_embed.weight", (DECODER_FEATURE_LEVELS, hidden), "F32")]
    if in_channels != hidden or enforce_proj:   # otherwise input_proj is an empty nn.Sequential
        for i in range(DECODER_FEATURE_LEVELS):
            t += [Expected(p + "input_proj.%d.weight" % i, (hidden, in_channels, 1, 1), "F32"),
                  Expected(p + "input_proj.%d.bias" % i, (hidden,), "F32")]
    t += [Expected(p + "class_embed.weight", (num_classes + 1, hidden), "F32"),
          Expected(p + "class_embed.bias", (num_classes + 1,), "F32")]
    # mask_embed: MLP hidden -> hidden -> hidden -> mask_dim
    dims = [hidden, hidden, hidden, mask_dim]
    for i in range(3):
        t += [Expected(p + "mask_embed.layers.%d.weight" % i, (dims[i + 1], dims[i]), "F32"),
              Expected(p + "mask_embed.layers.%d.bias" % i, (dims[i + 1],), "F32")]
    return t


def expected_tensors(model_cfg):
    """Every tensor of the M2FP state dict for configuration.json's "model" section, in order."""
    if not isinstance(model_cfg, dict):
        raise ConvertError("configuration: the 'model' section must be an object")
    backbone, shapes = backbone_layout(_get(model_cfg, "backbone", dict, "model"))
    pixel, conv_dim, mask_dim = pixel_decoder_layout(_get(model_cfg, "encoder", dict, "model"), shapes)
    decoder = transformer_decoder_layout(_get(model_cfg, "decoder", dict, "model"), conv_dim, mask_dim)
    return backbone + pixel + decoder


# ------------------------------------------------------------------------------------------------
# Restricted unpickling of the state dict (nothing from the file is ever executed)
# ------------------------------------------------------------------------------------------------

class StorageType(object):
    """Stand-in for a torch.<Type>Storage class: only records the dtype."""
    __slots__ = ("name", "dtype", "itemsize")

    def __init__(self, name):
        self.name = name
        self.dtype, self.itemsize = STORAGE_DTYPES[name]


class StorageRef(object):
    """A storage record of the zip: <archive>/data/<key>, `numel` elements of `stype`."""
    __slots__ = ("stype", "key", "numel")

    def __init__(self, stype, key, numel):
        self.stype, self.key, self.numel = stype, key, numel


class TensorRef(object):
    """What _rebuild_tensor_v2 would build: a strided view of a storage."""
    __slots__ = ("storage", "offset", "shape", "stride")

    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride

    @property
    def dtype(self):
        return self.storage.stype.dtype

    @property
    def numel(self):
        return math.prod(self.shape) if self.shape else 1


class TensorClass(object):
    """Stand-in for torch.Tensor / torch.nn.Parameter as a type argument."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


def _is_int_tuple(v):
    return isinstance(v, tuple) and all(isinstance(x, int) and not isinstance(x, bool) for x in v)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if not isinstance(storage, StorageRef):
        raise ConvertError("_rebuild_tensor_v2: storage argument is not a storage record")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise ConvertError("_rebuild_tensor_v2: bad storage offset %r" % (storage_offset,))
    if not _is_int_tuple(size) or not _is_int_tuple(stride) or len(size) != len(stride):
        raise ConvertError("_rebuild_tensor_v2: bad size/stride %r / %r" % (size, stride))
    if any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise ConvertError("_rebuild_tensor_v2: negative size/stride %r / %r" % (size, stride))
    return TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    if not isinstance(data, TensorRef):
        raise ConvertError("_rebuild_parameter: data is not a tensor")
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    if state:
        raise ConvertError("_rebuild_parameter_with_state: parameters with extra state are not supported")
    return _rebuild_parameter(data)


def _rebuild_from_type_v2(func, new_type, args, state):
    if func is not _rebuild_tensor_v2 or not isinstance(new_type, TensorClass):
        raise ConvertError("_rebuild_from_type_v2: only plain tensors are supported")
    if state:
        raise ConvertError("_rebuild_from_type_v2: tensors with Python attributes are not supported")
    if not isinstance(args, tuple):
        raise ConvertError("_rebuild_from_type_v2: bad arguments")
    return _rebuild_tensor_v2(*args)


SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): TensorClass("Tensor"),
    ("torch.nn.parameter", "Parameter"): TensorClass("Parameter"),
}
for _name in STORAGE_DTYPES:
    SAFE_GLOBALS[("torch", _name)] = StorageType(_name)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only SAFE_GLOBALS and the ('storage', ...) persistent ids."""

    def __init__(self, data_file):
        pickle.Unpickler.__init__(self, data_file)

    def find_class(self, module, name):
        obj = SAFE_GLOBALS.get((module, name))
        if obj is None:
            raise ConvertError("refusing to load global '%s.%s' from the checkpoint pickle "
                               "(only tensors and OrderedDict are allowed)" % (module, name))
        return obj

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ConvertError("unsupported persistent id %r in data.pkl" % (pid,))
        _, stype, key, _location, numel = pid
        if not isinstance(stype, StorageType):
            raise ConvertError("persistent id names an unknown storage type %r" % (stype,))
        if not isinstance(key, str) or not key or "/" in key or key in (".", ".."):
            raise ConvertError("persistent id has a bad storage key %r" % (key,))
        if not isinstance(numel, int) or numel < 0:
            raise ConvertError("persistent id has a bad element count %r" % (numel,))
        return StorageRef(stype, key, numel)


# ------------------------------------------------------------------------------------------------
# Reading the checkpoint
# ------------------------------------------------------------------------------------------------

class Checkpoint(object):
    """An opened PyTorch zip checkpoint: its state dict (name -> TensorRef or other) and records."""

    def __init__(self, path):
        self.path = path
        try:
            size = os.path.getsize(path)
        except OSError as e:
            raise ConvertError("cannot read checkpoint %s: %s" % (path, e.strerror))
        if size == 0:
            raise ConvertError("checkpoint %s is an empty (zero-byte) file" % path)
        with open(path, "rb") as f:
            head = f.read(4)
        if head[:1] == b"\x80" or head[:2] == b"\x8a\x0a":
            raise ConvertError("checkpoint %s is in the legacy (pre-1.6, non-zip) torch.save format, "
                               "which is not supported; re-save it with torch >= 1.6 "
                               "(_use_new_zipfile_serialization=True)" % path)
        if head != b"PK\x03\x04":
            raise ConvertError("checkpoint %s is not a PyTorch zip archive (starts with %r)" % (path, head))
        try:
            self.zip = zipfile.ZipFile(path)
            names = self.zip.namelist()
        except ZIP_ERRORS as e:
            raise ConvertError("checkpoint %s is not a readable zip archive (truncated or corrupt?): %s"
                               % (path, e))
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            raise ConvertError("checkpoint %s is a TorchScript archive (torch.jit.save), "
                               "not a torch.save state dict" % path)
        pkl = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        pkl = [n for n in pkl if n.count("/") <= 1]
        if not pkl:
            raise ConvertError("checkpoint %s has no data.pkl record (not a torch.save archive)" % path)
        if len(pkl) > 1:
            raise ConvertError("checkpoint %s has several data.pkl records: %s" % (path, pkl))
        self.prefix = pkl[0][:-len("data.pkl")]
        order = self._read_record("byteorder", optional=True)
        if order is not None and order.strip() not in (b"little",):
            raise ConvertError("checkpoint %s stores %r byte order; only little-endian is supported"
                               % (path, order))
        raw = self._read_record("data.pkl")
        try:
            obj = RestrictedUnpickler(io.BytesIO(raw)).load()
        except ConvertError:
            raise
        except Exception as e:   # malformed pickle: UnpicklingError, EOFError, TypeError, ...
            raise ConvertError("checkpoint %s: cannot unpickle %sdata.pkl: %s: %s"
                               % (path, self.prefix, type(e).__name__, e))
        self.state_dict = self._find_state_dict(obj)

    def _read_record(self, name, optional=False):
        full = self.prefix + name
        try:
            return self.zip.read(full)
        except KeyError:
            if optional:
                return None
            raise ConvertError("checkpoint %s: record %s is missing" % (self.path, full))
        except ZIP_ERRORS as e:
            raise ConvertError("checkpoint %s: cannot read record %s (truncated or corrupt?): %s"
                               % (self.path, full, e))

    def _find_state_dict(self, obj):
        if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
            return obj["model"]
        if isinstance(obj, dict) and obj and all(isinstance(v, TensorRef) for v in obj.values()):
            return obj   # a bare state dict
        keys = list(obj.keys())[:5] if isinstance(obj, dict) else type(obj).__name__
        raise ConvertError("checkpoint %s: expected {'model': state_dict} (torch.save of a ModelScope "
                           "model), found %s" % (self.path, keys))

    def tensor_bytes(self, name, t):
        """Row-major bytes of tensor `t` (bit-identical values)."""
        item = t.storage.stype.itemsize
        raw = self._read_record("data/" + t.storage.key)
        if len(raw) < t.storage.numel * item:
            raise ConvertError("checkpoint %s: tensor %s: storage %s holds %d bytes, expected %d"
                               % (self.path, name, t.storage.key, len(raw), t.storage.numel * item))
        numel = t.numel
        if numel == 0:
            return b""
        last = t.offset + sum((n - 1) * s for n, s in zip(t.shape, t.stride))
        if last >= t.storage.numel:
            raise ConvertError("checkpoint %s: tensor %s (shape %s, stride %s, offset %d) reads past the "
                               "end of its storage (%d elements)" % (self.path, name, list(t.shape),
                                                                     list(t.stride), t.offset, t.storage.numel))
        contiguous, expect = True, 1
        for n, s in zip(reversed(t.shape), reversed(t.stride)):
            if n != 1 and s != expect:
                contiguous = False
                break
            expect *= n
        if contiguous:
            return raw[t.offset * item:(t.offset + numel) * item]
        return _gather_strided(raw, item, t.offset, t.shape, t.stride)


def _gather_strided(raw, item, offset, shape, stride):
    """Copies a strided view of `raw` (elements of `item` bytes) to row-major bytes."""
    fmt = {1: "B", 2: "H", 4: "I", 8: "Q"}[item]
    mv = memoryview(raw)[:len(raw) - len(raw) % item].cast(fmt)   # bytes are copied, not converted
    out = bytearray()
    n_last, s_last = shape[-1], stride[-1]

    def rec(dim, base):
        if dim == len(shape) - 1:
            if s_last == 0:
                out.extend(mv[base:base + 1].tobytes() * n_last)
            else:
                out.extend(mv[base:base + (n_last - 1) * s_last + 1:s_last].tobytes())
            return
        for i in range(shape[dim]):
            rec(dim + 1, base + i * stride[dim])

    rec(0, offset)
    return bytes(out)


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------

def load_configuration(path):
    """Returns (model section dict, synthetic flag) of a configuration.json."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except FileNotFoundError:
        raise ConvertError("configuration file %s does not exist" % path)
    except (OSError, UnicodeDecodeError) as e:
        raise ConvertError("cannot read configuration file %s: %s" % (path, e))
    try:
        cfg = json.loads(text)
    except ValueError as e:
        raise ConvertError("configuration file %s is not valid JSON: %s" % (path, e))
    if not isinstance(cfg, dict):
        raise ConvertError("configuration file %s: top level must be an object" % path)
    if isinstance(cfg.get("model"), dict):
        model = cfg["model"]
    elif "backbone" in cfg and "decoder" in cfg:
        model = cfg     # the "model" section on its own
    else:
        raise ConvertError("configuration file %s has no 'model' section" % path)
    return model, isinstance(cfg.get("m2fp_synthetic"), dict)


# ------------------------------------------------------------------------------------------------
# Conversion
# ------------------------------------------------------------------------------------------------

def _fmt_shape(shape):
    return "[" + ", ".join(str(x) for x in shape) + "]"


def check_tensors(state_dict, expected, source):
    """Matches the state dict against the expected table. Returns (ordered [(Expected, TensorRef)],
    extras, dtype notes). Raises ConvertError naming missing or mis-shaped tensors."""
    problems, matched, notes = [], [], []
    for e in expected:
        t = state_dict.get(e.name)
        if t is None:
            problems.append("missing tensor %s (expected shape %s)" % (e.name, _fmt_shape(e.shape)))
            continue
        if not isinstance(t, TensorRef):
            problems.append("entry %s is not a tensor (%s)" % (e.name, type(t).__name__))
            continue
        if tuple(t.shape) != tuple(e.shape):
            problems.append("tensor %s has shape %s, expected %s"
                            % (e.name, _fmt_shape(t.shape), _fmt_shape(e.shape)))
            continue
        if t.dtype != e.dtype:
            same_kind = (t.dtype in FLOAT_DTYPES) == (e.dtype in FLOAT_DTYPES) and t.dtype != "BOOL"
            if not same_kind:
                problems.append("tensor %s has dtype %s, expected %s" % (e.name, t.dtype, e.dtype))
                continue
            notes.append("%s is %s (network uses %s); kept unchanged" % (e.name, t.dtype, e.dtype))
        matched.append((e, t))
    if problems:
        shown = problems[:20]
        more = "" if len(problems) <= 20 else "\n  ... and %d more" % (len(problems) - 20)
        raise ConvertError("checkpoint %s does not match the configuration (%d problem%s):\n  %s%s"
                           % (source, len(problems), "s" if len(problems) > 1 else "",
                              "\n  ".join(shown), more))
    names = set(e.name for e in expected)
    extras = [k for k in state_dict if k not in names]
    return matched, extras, notes


def build_header(matched, metadata):
    """Returns (header bytes incl. the 8-byte length, [(name, TensorRef, begin, end)] in data order)."""
    itemsize = {d: s for d, s in STORAGE_DTYPES.values()}
    order = sorted(range(len(matched)), key=lambda i: (-itemsize[matched[i][1].dtype], i))
    header = collections.OrderedDict()
    header["__metadata__"] = metadata
    layout, pos = [], 0
    for i in order:
        e, t = matched[i]
        size = t.numel * itemsize[t.dtype]
        header[e.name] = collections.OrderedDict(
            [("dtype", t.dtype), ("shape", list(t.shape)), ("data_offsets", [pos, pos + size])])
        layout.append((e.name, t, pos, pos + size))
        pos += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    return struct.pack("<Q", len(text)) + text, layout


def convert(src, out, config=None, verbose=False, log=print):
    """Converts checkpoint `src` (folder or .pt) to safetensors `out`. Returns a summary dict."""
    start = time.time()
    if os.path.isdir(src):
        pt = os.path.join(src, "pytorch_model.pt")
        if not os.path.isfile(pt):
            raise ConvertError("model folder %s has no pytorch_model.pt" % src)
        cfg_path = config or os.path.join(src, "configuration.json")
        if not config and not os.path.isfile(cfg_path):
            raise ConvertError("model folder %s has no configuration.json (pass --config)" % src)
        source = os.path.basename(os.path.normpath(os.path.abspath(src))) + "/pytorch_model.pt"
    elif os.path.isfile(src) or os.path.islink(src):
        pt = src
        cfg_path = config or os.path.join(os.path.dirname(os.path.abspath(src)), "configuration.json")
        if not config and not os.path.isfile(cfg_path):
            raise ConvertError("%s is a file: pass --config CONFIG.json (no configuration.json beside it)"
                               % src)
        source = os.path.basename(src)
    else:
        raise ConvertError("source %s does not exist" % src)

    model_cfg, synthetic = load_configuration(cfg_path)
    expected = expected_tensors(model_cfg)
    ckpt = Checkpoint(pt)
    matched, extras, notes = check_tensors(ckpt.state_dict, expected, pt)
    for n in notes:
        log("note: " + n, file=sys.stderr)
    if extras:
        log("skipping %d extra tensor%s not used by the network: %s"
            % (len(extras), "s" if len(extras) > 1 else "", ", ".join(extras)), file=sys.stderr)

    metadata = collections.OrderedDict([
        ("format", "pt"),
        ("m2fp.config", json.dumps(model_cfg, separators=(",", ":"))),
        ("m2fp.synthetic", "true" if synthetic else "false"),
        ("m2fp.source", source),
        ("m2fp.converter", CONVERTER_VERSION),
    ])
    header, layout = build_header(matched, metadata)

    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise ConvertError("output folder %s does not exist" % out_dir)
    tmp = os.path.join(out_dir, ".%s.tmp-%d" % (os.path.basename(out), os.getpid()))
    try:
        with open(tmp, "wb") as f:
            f.write(header)
            for name, t, begin, end in layout:
                data = ckpt.tensor_bytes(name, t)
                if len(data) != end - begin:
                    raise ConvertError("tensor %s: got %d bytes, expected %d" % (name, len(data), end - begin))
                f.write(data)
        os.replace(tmp, out)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise ConvertError("cannot write %s: %s" % (out, e))
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise

    if verbose:
        log("%-90s %-20s %s" % ("name", "shape", "dtype"))
        for e, t in matched:
            log("%-90s %-20s %s" % (e.name, _fmt_shape(t.shape), t.dtype))
    learnable = sum(t.numel for e, t in matched
                    if not e.name.endswith(("running_mean", "running_var", "num_batches_tracked")))
    summary = {
        "tensors": len(matched),
        "values": sum(t.numel for _, t in matched),
        "parameters": learnable,
        "bytes": os.path.getsize(out),
        "seconds": time.time() - start,
        "extras": extras,
    }
    log("wrote %s: %d tensors, %s parameters (%s values incl. BatchNorm statistics), %s bytes, %.2f s"
        % (out, summary["tensors"], format(learnable, ","), format(summary["values"], ","),
           format(summary["bytes"], ","), summary["seconds"]))
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Convert an M2FP ModelScope checkpoint (pytorch_model.pt + configuration.json) "
                    "to safetensors, without torch and without executing the pickle.")
    ap.add_argument("src", metavar="SRC", help="ModelScope model folder, or a .pt file (with --config)")
    ap.add_argument("-o", "--output", required=True, metavar="OUT.safetensors")
    ap.add_argument("--config", metavar="CONFIG.json", help="configuration.json (default: the one in SRC)")
    ap.add_argument("--verbose", action="store_true", help="print a per-tensor table")
    ap.add_argument("--traceback", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:
        convert(args.src, args.output, config=args.config, verbose=args.verbose)
    except ConvertError as e:
        print("convert_weights.py: error: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("convert_weights.py: interrupted", file=sys.stderr)
        return 130
    except Exception as e:   # a bug or an input this converter did not foresee: still no traceback
        if args.traceback:
            raise
        print("convert_weights.py: error: unexpected %s: %s (rerun with --traceback for details)"
              % (type(e).__name__, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
