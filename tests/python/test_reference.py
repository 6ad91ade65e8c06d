"""Tests of the PyTorch reference (tests/reference/): strict loading, each building block against an
independent formulation, the upstream post-processing against a batched transcription of upstream's
loops, and the dump / bench scripts end to end on a small image.

Run by ctest (python_tests) with M2FP_TESTDATA pointing at the synthetic checkpoints
($M2FP_TESTDATA/cihp_synth, $M2FP_TESTDATA/lip_synth). Without them the checkpoints are generated into a
temporary folder with tools/make_synthetic_checkpoint.py.

    /usr/bin/python3 -m unittest discover -s tests/python -p test_reference.py -v

In-process checks use one torch thread (the machine is shared; OpenMP with 2 threads on a loaded 2-core
box makes small element-wise ops 10-30x slower); the scripts are run with --threads 2 once.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REF_DIR = os.path.join(ROOT, 'tests', 'reference')
sys.path.insert(0, REF_DIR)
import m2fp_ref as R  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, 'tools'))
import make_synthetic_checkpoint  # noqa: E402

PY = sys.executable

_TMP = None
_CKPT = {}
_THREADS = None


def setUpModule():
    global _THREADS
    _THREADS = torch.get_num_threads()
    torch.set_num_threads(1)


def _tmpdir():
    global _TMP
    if _TMP is None:
        _TMP = tempfile.mkdtemp(prefix='m2fp_ref_test_')
    return _TMP


def tearDownModule():
    if _THREADS is not None:
        torch.set_num_threads(_THREADS)
    if _TMP is not None:
        shutil.rmtree(_TMP, ignore_errors=True)


def checkpoint(variant):
    """Folder of the synthetic checkpoint for 'cihp' or 'lip' (ctest fixture, else generated here)."""
    if variant in _CKPT:
        return _CKPT[variant]
    testdata = os.environ.get('M2FP_TESTDATA')
    if testdata:
        d = os.path.join(testdata, '%s_synth' % variant)
        if os.path.isfile(os.path.join(d, 'pytorch_model.pt')) and os.path.isfile(os.path.join(d, 'configuration.json')):
            _CKPT[variant] = d
            return d
    d = os.path.join(_tmpdir(), '%s_synth' % variant)
    make_synthetic_checkpoint.write_checkpoint(variant, 0 if variant == 'cihp' else 1, d)
    _CKPT[variant] = d
    return d


def small_image(h=70, w=93, seed=0):
    """A deterministic RGB test picture at awkward sizes: smooth gradients, a few blocks, some noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([255 * xx / (w - 1), 255 * yy / (h - 1), 128 + 100 * np.sin(xx / 7.0 + yy / 5.0)], -1)
    img[h // 4:h // 2, w // 5:w // 2] = (220, 40, 30)
    img[h // 2:h - 5, w // 2:w - 10] = (20, 60, 200)
    img += rng.normal(0, 6, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def max_diff(label, a, b):
    a = a.detach().double() if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a, dtype=np.float64))
    b = b.detach().double() if isinstance(b, torch.Tensor) else torch.as_tensor(np.asarray(b, dtype=np.float64))
    d = float((a - b).abs().max()) if a.numel() else 0.0
    print('  %-44s max |diff| = %.3g' % (label, d))
    return d


# ---------------------------------------------------------------------------------------------------
# Independent formulations (float64, written from SPEC.md, not from the module code)
# ---------------------------------------------------------------------------------------------------

def sine_pos_spec(h, w, npf=128, temperature=10000.0):
    """SPEC section 3: y = (row + 1)/(H + 1e-6)*2pi, x likewise; t_i = T^(2*floor(i/2)/npf); channels: npf for y
    then npf for x, sin on even i, cos on odd i. -> [2*npf, h, w] float64."""
    y = (np.arange(h, dtype=np.float64)[:, None] + 1) / (h + 1e-6) * 2 * math.pi * np.ones((1, w))
    x = (np.arange(w, dtype=np.float64)[None, :] + 1) / (w + 1e-6) * 2 * math.pi * np.ones((h, 1))
    out = np.zeros((2 * npf, h, w))
    for i in range(npf):
        t = temperature ** (2 * (i // 2) / npf)
        f = np.sin if i % 2 == 0 else np.cos
        out[i] = f(y / t)
        out[npf + i] = f(x / t)
    return out


def bilinear_zero_pad(img, x, y):
    """img [C, H, W]; sample at normalised (x, y) with align_corners=False, zeros outside."""
    c, h, w = img.shape
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    fx, fy = px - x0, py - y0
    acc = np.zeros(c)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            if 0 <= xi < w and 0 <= yi < h:
                acc += wy * wx * img[:, yi, xi]
    return acc


def linear_np(x, lin):
    return x @ lin.weight.detach().double().numpy().T + lin.bias.detach().double().numpy()


def layernorm_np(x, ln):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + ln.eps) * ln.weight.detach().double().numpy() + ln.bias.detach().double().numpy()


def msdeform_attn_direct(attn, query, ref, value_in, shapes):
    """Per-point loop. query [Nq, D], ref [Nq, 2] (x, y), value_in [N, D], shapes [(H, W)] -> [Nq, D], and the
    number of sampling points that fell outside their level."""
    m, nl, npt, d = attn.n_heads, attn.n_levels, attn.n_points, attn.d_model
    dh = d // m
    value = linear_np(value_in, attn.value_proj).reshape(-1, m, dh)                          # [N, M, Dh]
    off = linear_np(query, attn.sampling_offsets).reshape(-1, m, nl, npt, 2)                 # [Nq, M, L, P, 2]
    logits = linear_np(query, attn.attention_weights).reshape(-1, m, nl * npt)
    wts = np.exp(logits - logits.max(-1, keepdims=True))
    wts = (wts / wts.sum(-1, keepdims=True)).reshape(-1, m, nl, npt)                          # [Nq, M, L, P]
    starts = np.cumsum([0] + [h * w for h, w in shapes])
    out = np.zeros((query.shape[0], m, dh))
    outside = 0
    for q in range(query.shape[0]):
        for h_ in range(m):
            for lv, (hh, ww) in enumerate(shapes):
                img = value[starts[lv]:starts[lv + 1], h_].T.reshape(dh, hh, ww)             # [Dh, H_l, W_l]
                for p in range(npt):
                    x = ref[q, 0] + off[q, h_, lv, p, 0] / ww
                    y = ref[q, 1] + off[q, h_, lv, p, 1] / hh
                    outside += not (0 <= x <= 1 and 0 <= y <= 1)
                    out[q, h_] += wts[q, h_, lv, p] * bilinear_zero_pad(img, x, y)
    return linear_np(out.reshape(-1, d), attn.output_proj), outside


def mha_direct(q_in, k_in, v_in, mha, mask=None):
    """nn.MultiheadAttention by hand: packed in_proj [3D, D], scale 1/sqrt(Dh), mask True = excluded."""
    d = q_in.shape[1]
    m = mha.num_heads
    dh = d // m
    w = mha.in_proj_weight.detach().double().numpy()
    b = mha.in_proj_bias.detach().double().numpy()
    q = q_in @ w[:d].T + b[:d]
    k = k_in @ w[d:2 * d].T + b[d:2 * d]
    v = v_in @ w[2 * d:].T + b[2 * d:]
    out = np.zeros((q_in.shape[0], d))
    for h in range(m):
        sl = slice(h * dh, (h + 1) * dh)
        s = q[:, sl] @ k[:, sl].T / math.sqrt(dh)
        if mask is not None:
            s = np.where(mask, -np.inf, s)
        s = np.exp(s - s.max(-1, keepdims=True))
        out[:, sl] = (s / s.sum(-1, keepdims=True)) @ v[:, sl]
    return linear_np(out, mha.out_proj)


def decoder_direct(dec, feats, mask_features):
    """The masked-attention decoder by hand (float64 numpy; torch only for the bilinear resize).
    feats: 3 maps [D, H, W]; mask_features [Dm, h, w]. Returns logits, masks, and counts of fully masked
    rows / partially masked rows seen (so the test knows both cases were exercised)."""
    d = feats[0].shape[0]
    srcs = [f.reshape(d, -1).T + dec.level_embed.weight[i].detach().double().numpy() for i, f in enumerate(feats)]
    poss = [sine_pos_spec(f.shape[1], f.shape[2], d // 2).reshape(d, -1).T for f in feats]
    sizes = [f.shape[1:] for f in feats]
    out = dec.query_feat.weight.detach().double().numpy()
    qe = dec.query_embed.weight.detach().double().numpy()
    stats = {'full': 0, 'partial': 0}

    def heads(o, target):
        x = layernorm_np(o, dec.decoder_norm)
        logits = linear_np(x, dec.class_embed)
        me = x
        for j, lin in enumerate(dec.mask_embed.layers):
            me = linear_np(me, lin)
            if j < len(dec.mask_embed.layers) - 1:
                me = np.maximum(me, 0)
        masks = np.einsum('qc,chw->qhw', me, mask_features)
        am = F.interpolate(torch.from_numpy(masks)[None], size=tuple(target), mode='bilinear',
                           align_corners=False)[0].numpy()
        am = (1 / (1 + np.exp(-am)) < 0.5).reshape(masks.shape[0], -1)
        return logits, masks, am

    logits, masks, am = heads(out, sizes[0])
    for i in range(dec.num_layers):
        lv = i % 3
        full = am.all(-1)
        stats['full'] += int(full.sum())
        stats['partial'] += int((am.any(-1) & ~full).sum())
        am = am.copy()
        am[full] = False
        ca = dec.transformer_cross_attention_layers[i]
        out = layernorm_np(out + mha_direct(out + qe, srcs[lv] + poss[lv], srcs[lv], ca.multihead_attn, am), ca.norm)
        sa = dec.transformer_self_attention_layers[i]
        out = layernorm_np(out + mha_direct(out + qe, out + qe, out, sa.self_attn), sa.norm)
        ff = dec.transformer_ffn_layers[i]
        out = layernorm_np(out + linear_np(np.maximum(linear_np(out, ff.linear1), 0), ff.linear2), ff.norm)
        logits, masks, am = heads(out, sizes[(i + 1) % 3])
    return logits, masks, stats


def parsing_batched(mask_cls, pred_masks, padded, image_size, out_size, num_parsing, thr, crop_box=None):
    """Upstream's multi-person post-processing as upstream orders it, all queries at once: upsample every
    mask to the padded size, crop, upsample to the original size; top-100 of the flattened class scores
    (K = columns - 1); mask score; instance split; per class: argsort, loop, paste where p > 0.5, average."""
    k = mask_cls.shape[1] - 1
    m = F.interpolate(pred_masks[None], size=padded, mode='bilinear', align_corners=False)[0]
    m = m[:, :image_size[0], :image_size[1]]
    if crop_box is not None:
        m = m[:, crop_box[1]:crop_box[3], crop_box[0]:crop_box[2]]
    m = F.interpolate(m[None], size=out_size, mode='bilinear', align_corners=False)[0]      # [Q, H0, W0]
    scores = F.softmax(mask_cls, -1)[:, :-1]
    labels_all = torch.arange(k).repeat(mask_cls.shape[0])
    top, idx = scores.flatten().topk(100, sorted=False)
    labels = labels_all[idx]
    q = idx // k
    mp = m[q]
    binary = (mp > 0).float()
    mscore = (mp.sigmoid().flatten(1) * binary.flatten(1)).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    final = top * mscore
    keep = labels != num_parsing
    bl, bs, bm = labels[keep], final[keep], mp[keep]
    sem = []
    for c in range(num_parsing):
        sel = torch.where(bl == c)[0]
        s, probs = bs[sel], bm[sel].sigmoid()
        acc = torch.zeros(out_size)
        cnt = torch.zeros(out_size)
        order = s.argsort()
        for j in range(len(order)):
            if s[order[j]] < thr:
                continue
            p = probs[order[j]] * s[order[j]]
            acc = torch.where(p > 0.5, p + acc, acc)
            cnt += torch.where(p > 0.5, 1, 0)
        cnt = torch.where(cnt == 0, cnt + 1, cnt)
        sem.append(acc / cnt)
    instances = {}
    for j in range(100):
        lab, sc, qq = int(labels[j]), float(final[j]), int(q[j])
        area = int((mp[j] > 0).sum())
        if lab == num_parsing and sc > 0.1:
            instances[('human', lab, qq)] = (area, sc)
        elif lab != num_parsing and lab != 0 and sc >= 0.1:
            instances[('part', lab, qq)] = (area, sc)
    return instances, torch.stack(sem)


def synthetic_heads(q=100, k=21, h=12, w=17, seed=0):
    """Class logits with confident winners spread over all classes (Human included) and smooth mask logits
    of both signs: a stand-in for decoder outputs that makes the post-processing non-trivial."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(q, k + 1, generator=g)
    winners = torch.randint(0, k, (q,), generator=g)
    logits[torch.arange(q), winners] += 2 + 4 * torch.rand(q, generator=g)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing='ij')
    cy, cx = torch.rand(q, 1, 1, generator=g) * 2 - 1, torch.rand(q, 1, 1, generator=g) * 2 - 1
    r = 0.3 + 0.5 * torch.rand(q, 1, 1, generator=g)
    masks = 6 * (r - ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()) / r + torch.randn(q, h, w, generator=g) * 0.5
    return logits, masks


# ---------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------

class TestStructureAndLoading(unittest.TestCase):

    def test_cihp_names_shapes_dtypes_match_tsv(self):
        with open(os.path.join(ROOT, 'tools', 'configs', 'cihp_configuration.json')) as f:
            cfg = json.load(f)['model']
        sd = R.M2FP(cfg).state_dict()
        with open(os.path.join(ROOT, 'tests', 'data', 'cihp_state_dict.tsv')) as f:
            rows = [line.rstrip('\n').split('\t') for line in f if line.strip()]
        self.assertEqual(len(rows), 928)
        self.assertEqual(list(sd.keys()), [r[0] for r in rows], 'names or order differ from cihp_state_dict.tsv')
        for name, shape, dtype in rows:
            self.assertEqual('x'.join(str(s) for s in sd[name].shape), shape, name)
            self.assertEqual(str(sd[name].dtype).replace('torch.', ''), dtype, name)
        n_params = sum(v.numel() for k, v in sd.items() if not k.endswith(('running_mean', 'running_var',
                                                                            'num_batches_tracked')))
        self.assertEqual(n_params, 63124118)

    def test_strict_load_synthetic_checkpoints(self):
        for variant, k in (('cihp', 21), ('lip', 20)):
            d = checkpoint(variant)
            model, cfg = R.load_model(d)
            self.assertFalse(model.training)
            state = torch.load(os.path.join(d, 'pytorch_model.pt'), map_location='cpu')['model']
            own = model.state_dict()
            self.assertEqual(set(own), set(state))
            for name in ('backbone.stem.conv1.norm.running_var', 'backbone.res4.22.conv3.norm.num_batches_tracked',
                         'sem_seg_head.pixel_decoder.transformer.level_embed',
                         'sem_seg_head.predictor.class_embed.weight'):
                self.assertTrue(torch.equal(own[name], state[name]), name)
            self.assertEqual(tuple(own['sem_seg_head.predictor.class_embed.weight'].shape), (k + 1, 256))
            self.assertEqual(model.num_classes, k)

    def test_mismatched_state_dict_is_a_clear_error(self):
        with open(os.path.join(ROOT, 'tools', 'configs', 'cihp_configuration.json')) as f:
            cfg = json.load(f)['model']
        model = R.M2FP(cfg)
        good = model.state_dict()
        bad = dict(good)
        del bad['backbone.res3.1.conv2.norm.running_mean']
        with self.assertRaisesRegex(R.ReferenceError, r'missing.*backbone\.res3\.1\.conv2\.norm\.running_mean'):
            R.load_state_into(model, bad, 'test')
        bad = dict(good)
        bad['sem_seg_head.predictor.class_embed.weight'] = torch.zeros(21, 256)
        with self.assertRaisesRegex(R.ReferenceError, r'mis-shaped.*class_embed\.weight'):
            R.load_state_into(model, bad, 'test')
        bad = dict(good)
        bad['extra.tensor'] = torch.zeros(1)
        with self.assertRaisesRegex(R.ReferenceError, r'unexpected.*extra\.tensor'):
            R.load_state_into(model, bad, 'test')
        with self.assertRaisesRegex(R.ReferenceError, 'configuration.json: not found'):
            R.load_model(_tmpdir())
        broken = cfg.copy()
        broken['decoder'] = {k: v for k, v in cfg['decoder'].items() if k != 'dec_layers'}
        with self.assertRaisesRegex(R.ReferenceError, 'lacks dec_layers'):
            R.M2FP(broken)


class TestBuildingBlocks(unittest.TestCase):

    def test_sine_encoding_matches_spec_formula(self):
        for h, w, npf in ((5, 7, 128), (1, 3, 128), (20, 33, 128), (4, 6, 16)):
            got = R.PositionEmbeddingSine(npf, normalize=True)(torch.zeros(1, 1, h, w))[0].double()
            self.assertEqual(tuple(got.shape), (2 * npf, h, w))
            d = max_diff('sine %dx%d (npf %d) vs SPEC formula' % (h, w, npf), got, sine_pos_spec(h, w, npf))
            self.assertLess(d, 2e-5)

    def test_encoder_reference_points(self):
        shapes = [(2, 3), (5, 4)]
        ref = R.MSDeformAttnTransformerEncoder.get_reference_points(shapes, 'cpu')
        self.assertEqual(tuple(ref.shape), (1, 6 + 20, 2, 2))
        expect = [((c + 0.5) / w, (r + 0.5) / h) for h, w in shapes for r in range(h) for c in range(w)]
        d = max_diff('reference points', ref[0, :, 0], np.array(expect))
        self.assertLess(d, 1e-6)
        self.assertTrue(torch.equal(ref[:, :, 0], ref[:, :, 1]))

    def test_msdeform_attn_vs_per_point_loop(self):
        torch.manual_seed(3)
        shapes = [(3, 5), (2, 2), (1, 3)]          # awkward, includes a 1-row level
        d, m, p = 12, 2, 3                          # Dh = 6
        attn = R.MSDeformAttn(d, len(shapes), m, p).double()
        with torch.no_grad():
            attn.sampling_offsets.weight.normal_(0, 0.5)
            attn.sampling_offsets.bias.normal_(0, 2.0)   # several pixels: some points land outside
            attn.attention_weights.weight.normal_(0, 0.5)
            attn.attention_weights.bias.normal_(0, 0.5)
            attn.value_proj.bias.normal_(0, 0.1)
            attn.output_proj.bias.normal_(0, 0.1)
        n = sum(h * w for h, w in shapes)
        value_in = torch.randn(n, d, dtype=torch.float64)
        query = torch.randn(7, d, dtype=torch.float64)
        ref = torch.rand(7, 2, dtype=torch.float64)
        ref[0] = torch.tensor([0.0, 1.0], dtype=torch.float64)                 # corners
        with torch.no_grad():
            got = attn(query[None], ref[None, :, None, :].expand(-1, -1, len(shapes), -1), value_in[None], shapes)[0]
        want, outside = msdeform_attn_direct(attn, query.numpy(), ref.numpy(), value_in.numpy(), shapes)
        self.assertGreater(outside, 0, 'no sampling point fell outside: the zero padding was not exercised')
        dd = max_diff('MSDeformAttn grid_sample vs per-point loop (f64)', got, want)
        self.assertLess(dd, 1e-10)
        # float32 module on the same weights stays close
        attn32 = attn.float()
        with torch.no_grad():
            got32 = attn32(query[None].float(), ref[None, :, None, :].expand(-1, -1, len(shapes), -1).float(),
                           value_in[None].float(), shapes)[0]
        self.assertLess(max_diff('MSDeformAttn float32 vs per-point loop', got32, want), 1e-4)

    def test_encoder_layer_post_norm(self):
        torch.manual_seed(4)
        shapes = [(2, 3), (3, 4)]
        layer = R.MSDeformAttnTransformerEncoderLayer(16, 24, len(shapes), 4, 2).double()
        for prm in layer.parameters():
            with torch.no_grad():
                prm.add_(torch.randn_like(prm) * 0.2)
        n = sum(h * w for h, w in shapes)
        src = torch.randn(1, n, 16, dtype=torch.float64)
        pos = torch.randn(1, n, 16, dtype=torch.float64)
        ref = R.MSDeformAttnTransformerEncoder.get_reference_points(shapes, 'cpu').double()
        with torch.no_grad():
            got = layer(src, pos, ref, shapes)[0]
        attn, _ = msdeform_attn_direct(layer.self_attn, (src + pos)[0].numpy(), ref[0, :, 0].numpy(), src[0].numpy(),
                                       shapes)
        x = layernorm_np(src[0].numpy() + attn, layer.norm1)
        x = layernorm_np(x + linear_np(np.maximum(linear_np(x, layer.linear1), 0), layer.linear2), layer.norm2)
        self.assertLess(max_diff('encoder layer vs by-hand post-norm layer', got, x), 1e-10)

    def test_masked_decoder_vs_by_hand(self):
        torch.manual_seed(5)
        d, dm = 32, 32
        dec = R.MultiScaleMaskedTransformerDecoder(
            d, num_classes=3, hidden_dim=d, num_queries=6, nheads=4, dim_feedforward=24, dec_layers=4,
            pre_norm=False, mask_dim=dm, enforce_input_project=False).double()
        with torch.no_grad():
            for prm in dec.parameters():
                prm.add_(torch.randn_like(prm) * 0.3)
        feats = [torch.randn(d, 2, 2, dtype=torch.float64), torch.randn(d, 3, 4, dtype=torch.float64),
                 torch.randn(d, 5, 7, dtype=torch.float64)]
        mf = torch.randn(dm, 10, 13, dtype=torch.float64)
        # a constant mask-feature channel with a strongly query-dependent coefficient shifts whole masks up or
        # down, so that some attention rows are fully masked, some partially, some not at all
        mf[0] = 3.0
        with torch.no_grad():
            dec.mask_embed.layers[-1].weight[0] *= 8
        rec = R.Recorder()
        with torch.no_grad():
            out = dec([f[None] for f in feats], mf[None], rec)
        logits, masks, stats = decoder_direct(dec, [f.numpy() for f in feats], mf.numpy())
        print('  attention rows seen: %d fully masked (reset to none), %d partially masked'
              % (stats['full'], stats['partial']))
        self.assertGreater(stats['full'], 0, 'the fully-masked-row rule was not exercised')
        self.assertGreater(stats['partial'], 0, 'no partially masked row: masking was not exercised')
        # the module's sine encoding is float32 (as upstream), the by-hand one float64: relative 1e-6 bounds
        scale = max(1.0, float(np.abs(masks).max()))
        self.assertLess(max_diff('decoder logits vs by-hand', out['pred_logits'][0], logits), 1e-5)
        self.assertLess(max_diff('decoder masks vs by-hand (max |mask| %.0f)' % scale, out['pred_masks'][0], masks),
                        1e-6 * scale)
        names = R.intermediate_names({'encoder': {'transformer_enc_layers': 0}, 'decoder': {'dec_layers': 4}})
        for name in names:
            if name.startswith('decoder.'):
                self.assertIn(name, rec.tensors)
        self.assertEqual(tuple(rec.tensors['decoder.query3'].shape), (6, d))
        self.assertTrue(torch.equal(rec.tensors['decoder.logits4'], rec.tensors['pred_logits']))


class TestPreprocess(unittest.TestCase):

    def test_preprocess_shape(self):
        cases = {(512, 512): (640, 640), (480, 640): (640, 853), (100, 1000): (133, 1333),
                 (1000, 100): (1333, 133), (70, 93): (640, 850), (3000, 4000): (640, 853)}
        for (h, w), want in cases.items():
            self.assertEqual(R.get_preprocess_shape(h, w, 640, 1333), want, (h, w))
        self.assertEqual(R.get_preprocess_shape(70, 93, 128, 1333), (128, 170))

    def test_multi_person_input_and_padding(self):
        rgb = small_image()
        prep = R.preprocess_multi(rgb, 128, 1333)
        nh, nw = prep['image_size']
        self.assertEqual((nh, nw), (128, 170))
        resized = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR)).astype(np.float64)
        x = prep['input']
        self.assertEqual(tuple(x.shape), (3, nh, nw))
        self.assertLess(max_diff('input vs PIL resize (0..255)', x, resized.transpose(2, 0, 1)), 1e-4)
        img = prep['image'][0]
        self.assertEqual(tuple(img.shape), (3, 128, 192))
        mean = np.array(R.PIXEL_MEAN).reshape(3, 1, 1)
        std = np.array(R.PIXEL_STD).reshape(3, 1, 1)
        self.assertLess(max_diff('normalised vs (x - mean)/std', img[:, :nh, :nw], (resized.transpose(2, 0, 1) - mean)
                                 / std), 1e-5)
        self.assertTrue(torch.all(img[:, :, nw:] == 0) and torch.all(img[:, nh:, :] == 0))

    def test_center_to_target_size(self):
        target = (384, 512)  # (W, H) as configuration.json's input_single_human.sizes[0]
        # small image: no resize, centred on a 128 canvas
        img = small_image(100, 80)
        out, box = R.center_to_target_size_test(img, target)
        self.assertEqual(out.shape, (512, 384, 3))
        self.assertEqual(box, [152, 206, 232, 306])
        self.assertTrue(np.array_equal(out[206:306, 152:232], img))
        self.assertTrue(np.all(out[:206] == 128) and np.all(out[:, :152] == 128) and np.all(out[306:] == 128))
        # tall: height to 512, width int(512 * 300 / 1000) = 153
        out, box = R.center_to_target_size_test(small_image(1000, 300), target)
        self.assertEqual(out.shape, (512, 384, 3))
        self.assertEqual(box, [115, 0, 268, 512])
        # wide: width to 384, height int(384 * 300 / 1000) = 115
        out, box = R.center_to_target_size_test(small_image(300, 1000), target)
        self.assertEqual(box, [0, 198, 384, 313])
        resized = np.asarray(Image.fromarray(small_image(300, 1000)).resize((384, 115), Image.BILINEAR))
        self.assertTrue(np.array_equal(out[198:313], resized))
        # both larger, wider than the canvas ratio: width first, then height capped
        out, box = R.center_to_target_size_test(small_image(600, 500), target)
        self.assertEqual(box, [0, 26, 384, 486])   # new_h 512 -> new_w 426 > 384 -> new_w 384, new_h 460
        # upstream quirk: pad_left == 0 and pad_top == 0 -> returned unpadded (smaller than the canvas)
        out, box = R.center_to_target_size_test(small_image(511, 383), target)
        self.assertEqual(out.shape, (511, 383, 3))
        self.assertEqual(box, [0, 0, 383, 511])
        out, box = R.center_to_target_size_test(small_image(512, 384), target)
        self.assertEqual(out.shape, (512, 384, 3))
        # upstream quirk: a square image larger than the canvas gets 0x0 -> clear error
        with self.assertRaisesRegex(R.ReferenceError, 'square'):
            R.center_to_target_size_test(small_image(600, 600), target)
        prep = R.preprocess_single(small_image(511, 383), target)
        self.assertEqual(tuple(prep['image'].shape), (1, 3, 512, 384))
        self.assertEqual(prep['image_size'], (511, 383))

    def test_exif_orientation_applied(self):
        img = small_image(30, 50)
        path = os.path.join(_tmpdir(), 'rotated.jpg')
        exif = Image.Exif()
        exif[0x0112] = 6      # "rotate 90 CW to display"
        Image.fromarray(img).save(path, quality=95, exif=exif)
        rgb = R.load_rgb(path)
        self.assertEqual(rgb.shape, (50, 30, 3))
        plain = np.asarray(Image.open(path).convert('RGB'))
        self.assertTrue(np.array_equal(rgb, np.rot90(plain, k=-1)))

    def test_bad_inputs(self):
        with self.assertRaisesRegex(R.ReferenceError, 'uint8'):
            R.preprocess_multi(np.zeros((4, 4, 3), np.float32))
        with self.assertRaisesRegex(R.ReferenceError, 'uint8'):
            R.preprocess_multi(np.zeros((4, 4), np.uint8))
        with self.assertRaisesRegex(R.ReferenceError, 'not found'):
            R.load_rgb(os.path.join(_tmpdir(), 'nope.png'))
        junk = os.path.join(_tmpdir(), 'junk.png')
        with open(junk, 'wb') as f:
            f.write(b'not an image at all')
        with self.assertRaisesRegex(R.ReferenceError, 'cannot decode'):
            R.load_rgb(junk)


class TestPostprocess(unittest.TestCase):

    def test_parsing_vs_batched_upstream_loop(self):
        logits, masks = synthetic_heads(k=21, h=12, w=17)
        padded, image_size, out_size = (48, 68), (45, 61), (83, 57)
        for cache in (1 << 30, 0):
            qm = R.QueryMasks(masks, padded, image_size, None, out_size, cache_bytes=cache)
            inst, sem = R.instance_parsing_inference(logits, qm, 20, 0.5)
            want_inst, want_sem = parsing_batched(logits, masks, padded, image_size, out_size, 20, 0.5)
            got_inst = {(i['kind'], i['category_id'], i['query']): (i['area'], i['score']) for i in inst}
            self.assertEqual(set(got_inst), set(want_inst))
            for key, (area, score) in want_inst.items():
                self.assertEqual(got_inst[key][0], area, key)
                self.assertAlmostEqual(got_inst[key][1], score, delta=1e-6, msg=str(key))
            self.assertLess(max_diff('semantic paste vs batched loop (cache %d)' % cache, sem, want_sem), 1e-6)
            self.assertTrue(torch.equal(sem.argmax(0), want_sem.argmax(0)))
        pasted = [c for c in range(20) if float(sem[c].max()) > 0]
        kinds = {i['kind'] for i in inst}
        print('  %d instances (%s), classes pasted: %s' % (len(inst), sorted(kinds), pasted))
        self.assertGreaterEqual(len(pasted), 3)
        self.assertEqual(kinds, {'part', 'human'})
        self.assertTrue(all(i['category_id'] != 0 for i in inst))
        scores = [i['score'] for i in inst if i['kind'] == 'part']
        self.assertEqual(scores, sorted(scores, reverse=True))

    def test_postprocess_labels_and_single_person(self):
        # multi-person through postprocess(): labels = argmax of the pasted maps
        logits, masks = synthetic_heads(k=21, h=12, w=17, seed=1)
        cfg = {'single_human': False, 'parsing_on': True, 'semantic_on': False,
               'sem_seg_postprocess_before_inference': True, 'num_parsing': 20, 'parsing_ins_score_thr': 0.5}
        prep = {'height': 83, 'width': 57, 'image_size': (45, 61), 'crop_box': None}
        res = R.postprocess(cfg, logits, masks, prep, (48, 68))
        self.assertEqual(tuple(res['semantic'].shape), (20, 83, 57))
        self.assertTrue(torch.equal(res['labels'], res['semantic'].argmax(0)))
        self.assertTrue(torch.all(res['labels'][res['semantic'].max(0).values == 0] == 0))
        # single-person, LIP style (before_inference false): semantic at padded size, crop, box, resize
        logits, masks = synthetic_heads(k=20, h=16, w=12, seed=2)
        cfg = {'single_human': True, 'parsing_on': False, 'semantic_on': True,
               'sem_seg_postprocess_before_inference': False}
        box = [10, 3, 40, 57]
        prep = {'height': 101, 'width': 77, 'image_size': (60, 45), 'crop_box': box}
        res = R.postprocess(cfg, logits, masks, prep, (64, 48))
        cls = F.softmax(logits.double(), -1)[:, :-1]
        up = F.interpolate(masks[None].double(), size=(64, 48), mode='bilinear', align_corners=False)[0].sigmoid()
        sem = torch.zeros(20, 64, 48, dtype=torch.float64)
        for q in range(100):
            sem += cls[q][:, None, None] * up[q][None]
        sem = sem[:, :60, :45][:, 3:57, 10:40]
        sem = F.interpolate(sem[None], size=(101, 77), mode='bilinear', align_corners=False)[0]
        self.assertLess(max_diff('single-person semantic vs sum over queries', res['semantic'], sem), 1e-5)
        self.assertEqual(res['instances'], [])
        self.assertEqual(tuple(res['labels'].shape), (101, 77))
        # single-person with before_inference: masks to the original size first, same formula after
        cfg['sem_seg_postprocess_before_inference'] = True
        res2 = R.postprocess(cfg, logits, masks, prep, (64, 48))
        m = F.interpolate(masks[None].double(), size=(64, 48), mode='bilinear', align_corners=False)[0]
        m = m[:, :60, :45][:, 3:57, 10:40]
        m = F.interpolate(m[None], size=(101, 77), mode='bilinear', align_corners=False)[0]
        sem2 = torch.einsum('qc,qhw->chw', cls, m.sigmoid())
        self.assertLess(max_diff('single-person (before) vs by hand', res2['semantic'], sem2), 1e-4)


class TestEndToEnd(unittest.TestCase):
    """The whole reference on a small image: wiring checked against functional re-computations from the
    recorded intermediates, and the dump script's files and shapes."""

    @classmethod
    def setUpClass(cls):
        cls.ref = R.M2FPReference.from_model_dir(checkpoint('cihp'))
        cls.rgb = small_image()
        cls.rec = R.Recorder()
        cls.res = cls.ref.run(cls.rgb, 128, 1333, cls.rec)

    def test_backbone_stem_by_hand(self):
        t = self.rec.tensors
        bb = self.ref.model.backbone.stem

        def conv_bn_relu(x, conv, stride):
            y = F.conv2d(x, conv.weight, None, stride, 1)
            bn = conv.norm
            y = (y - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + 1e-5)
            return torch.relu(y * bn.weight[:, None, None] + bn.bias[:, None, None])

        with torch.no_grad():
            x = conv_bn_relu(t['image'][None], bb.conv1, 2)
            x = conv_bn_relu(x, bb.conv2, 1)
            x = conv_bn_relu(x, bb.conv3, 1)
            x = F.max_pool2d(x, 3, 2, 1)[0]
        self.assertLess(max_diff('stem vs conv/BN-formula/ReLU/max-pool', t['stem'], x), 1e-4)

    def test_pixel_decoder_wiring(self):
        t = self.rec.tensors
        pd = self.ref.model.sem_seg_head.pixel_decoder
        with torch.no_grad():
            srcs = [pd.input_proj[i](t[n][None])[0].flatten(1).T for i, n in enumerate(('res5', 'res4', 'res3'))]
            self.assertLess(max_diff('encoder.src vs input_proj(res5,res4,res3)', t['encoder.src'], torch.cat(srcs)),
                            1e-5)
            hp, wp = t['image'].shape[-2:]
            pos = [torch.from_numpy(sine_pos_spec(hp // s, wp // s)).float().flatten(1).T + pd.transformer.level_embed[i]
                   for i, s in enumerate((32, 16, 8))]
            self.assertLess(max_diff('encoder.pos vs SPEC sine + level_embed', t['encoder.pos'], torch.cat(pos)), 1e-4)
            y = t['encoder.layer5']
            n32, n16 = (hp // 32) * (wp // 32), (hp // 16) * (wp // 16)
            self.assertTrue(torch.equal(t['pixel_decoder.s32'].flatten(1).T, y[:n32]))
            self.assertTrue(torch.equal(t['pixel_decoder.s16'].flatten(1).T, y[n32:n32 + n16]))
            self.assertTrue(torch.equal(t['pixel_decoder.s8'].flatten(1).T, y[n32 + n16:]))
            lat = pd.adapter_1(t['res2'][None])
            up = F.interpolate(t['pixel_decoder.s8'][None], size=lat.shape[-2:], mode='bilinear', align_corners=False)
            s4 = pd.layer_1(lat + up)[0]
            self.assertLess(max_diff('s4 vs layer_1(adapter_1(res2) + up(s8))', t['pixel_decoder.s4'], s4), 1e-5)
            mf = F.conv2d(t['pixel_decoder.s4'][None], pd.mask_features.weight, pd.mask_features.bias)[0]
            self.assertLess(max_diff('mask_features vs 1x1 conv(s4)', t['mask_features'], mf), 1e-5)

    def test_decoder_heads_from_recorded_queries(self):
        t = self.rec.tensors
        dec = self.ref.model.sem_seg_head.predictor
        with torch.no_grad():
            x = dec.decoder_norm(t['decoder.query8'])
            logits = dec.class_embed(x)
            masks = torch.einsum('qc,chw->qhw', dec.mask_embed(x), t['mask_features'])
        self.assertLess(max_diff('pred_logits vs heads(query8)', t['pred_logits'], logits), 1e-5)
        self.assertLess(max_diff('pred_masks vs heads(query8)', t['pred_masks'], masks), 1e-4)
        self.assertTrue(torch.equal(t['pred_logits'], self.res['pred_logits']))

    def _run_dump(self, variant, out, extra=(), threads=1):
        cmd = [PY, os.path.join(REF_DIR, 'dump_reference.py'), '--model-dir', checkpoint(variant), '--out', out,
               '--short-edge', '128', '--threads', str(threads)] + list(extra)
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return r

    def _check_shapes(self, out, k, single):
        with open(os.path.join(out, 'meta.json')) as f:
            meta = json.load(f)
        h0, w0 = meta['height'], meta['width']
        nh, nw = meta['image_size']
        hp, wp = meta['padded_size']
        self.assertEqual((hp % 32, wp % 32), (0, 0))
        n = sum((hp // s) * (wp // s) for s in (32, 16, 8))
        expect = {'input': (3, nh, nw), 'image': (3, hp, wp), 'stem': (128, hp // 4, wp // 4),
                  'res2': (256, hp // 4, wp // 4), 'res3': (512, hp // 8, wp // 8), 'res4': (1024, hp // 16, wp // 16),
                  'res5': (2048, hp // 32, wp // 32), 'encoder.src': (n, 256), 'encoder.pos': (n, 256),
                  'pixel_decoder.s32': (256, hp // 32, wp // 32), 'pixel_decoder.s16': (256, hp // 16, wp // 16),
                  'pixel_decoder.s8': (256, hp // 8, wp // 8), 'pixel_decoder.s4': (256, hp // 4, wp // 4),
                  'mask_features': (256, hp // 4, wp // 4), 'pred_logits': (100, k + 1),
                  'pred_masks': (100, hp // 4, wp // 4), 'semantic': (20 if not single else k, h0, w0),
                  'labels': (h0, w0)}
        for i in range(6):
            expect['encoder.layer%d' % i] = (n, 256)
        for i in range(10):
            expect['decoder.logits%d' % i] = (100, k + 1)
            expect['decoder.masks%d' % i] = (100, hp // 4, wp // 4)
        for i in range(9):
            expect['decoder.query%d' % i] = (100, 256)
        self.assertEqual(len(expect), 53)
        with open(os.path.join(ROOT, 'docs', 'INTERMEDIATES.md')) as f:
            doc = f.read()
        for name, shape in expect.items():
            base = name.rstrip('0123456789')
            if name not in ('res3', 'res4') and not name.startswith('pixel_decoder.'):   # documented as ranges
                self.assertTrue(('`%s`' % name) in doc or ('`%s{i}`' % base) in doc,
                                '%s is not documented in docs/INTERMEDIATES.md' % name)
            a = np.load(os.path.join(out, name + '.npy'))
            self.assertEqual(a.dtype, np.float32, name)
            self.assertEqual(a.shape, shape, name)
            self.assertTrue(np.all(np.isfinite(a)), name)
        self.assertEqual(sorted(meta['names']), sorted(expect))
        with open(os.path.join(out, 'timings.json')) as f:
            tm = json.load(f)
        self.assertEqual(set(tm), {'preprocess', 'backbone', 'pixel_decoder', 'transformer_decoder', 'postprocess',
                                   'total'})
        with open(os.path.join(out, 'instances.json')) as f:
            inst = json.load(f)
        for i in inst:
            self.assertEqual(set(i), {'kind', 'category_id', 'score', 'area', 'query'})
            self.assertIn(i['kind'], ('part', 'human'))
            self.assertTrue(0 <= i['query'] < 100 and 0 <= i['area'] <= h0 * w0)
        return meta, inst

    def test_dump_cihp_all_names_and_rgb_npy(self):
        png = os.path.join(_tmpdir(), 'small.png')
        Image.fromarray(self.rgb).save(png)
        out = os.path.join(_tmpdir(), 'dump_cihp')
        r = self._run_dump('cihp', out, ['--image', png])
        self.assertEqual(r.returncode, 0, r.stderr)
        print('  ' + r.stdout.strip())
        meta, inst = self._check_shapes(out, 21, False)
        self.assertEqual((meta['height'], meta['width'], meta['image_size']), (70, 93, [128, 170]))
        # the in-process run on the same pixels gives the same numbers
        self.assertLess(max_diff('dump pred_logits vs in-process', np.load(os.path.join(out, 'pred_logits.npy')),
                                 self.rec.tensors['pred_logits']), 1e-4)
        # --rgb-npy and --names: only the asked names, identical to the PNG route (lossless decode)
        npy = os.path.join(_tmpdir(), 'small.npy')
        np.save(npy, self.rgb)
        out2 = os.path.join(_tmpdir(), 'dump_cihp_npy')
        r = self._run_dump('cihp', out2, ['--rgb-npy', npy, '--names', 'input,pred_*,decoder.logits?'])
        self.assertEqual(r.returncode, 0, r.stderr)
        got = sorted(f[:-4] for f in os.listdir(out2) if f.endswith('.npy'))
        self.assertEqual(got, sorted(['input', 'pred_logits', 'pred_masks'] + ['decoder.logits%d' % i
                                                                               for i in range(10)]))
        for name in ('input', 'pred_logits'):
            self.assertLess(max_diff('--rgb-npy vs --image: ' + name, np.load(os.path.join(out2, name + '.npy')),
                                     np.load(os.path.join(out, name + '.npy'))), 1e-4)

    def test_dump_lip_single_person(self):
        # the LIP checkpoint with a smaller canvas (input_single_human.sizes [[96, 128]]) keeps the test fast;
        # the canvas size is only a configuration value, the code path is the same as for 384x512
        lip = os.path.join(_tmpdir(), 'lip_small_canvas')
        os.makedirs(lip, exist_ok=True)
        src = os.path.abspath(checkpoint('lip'))  # the link's target: M2FP_TESTDATA may be relative
        if not os.path.exists(os.path.join(lip, 'pytorch_model.pt')):
            os.symlink(os.path.join(src, 'pytorch_model.pt'), os.path.join(lip, 'pytorch_model.pt'))
        with open(os.path.join(src, 'configuration.json')) as f:
            cfg = json.load(f)
        self.assertEqual(cfg['model']['input_single_human']['sizes'][0], [384, 512])
        cfg['model']['input_single_human']['sizes'] = [[96, 128]]
        with open(os.path.join(lip, 'configuration.json'), 'w') as f:
            json.dump(cfg, f)
        out = os.path.join(_tmpdir(), 'dump_lip')
        npy = os.path.join(_tmpdir(), 'small_lip.npy')
        img = small_image(90, 61, seed=3)
        np.save(npy, img)
        r = subprocess.run([PY, os.path.join(REF_DIR, 'dump_reference.py'), '--model-dir', lip, '--out', out,
                            '--rgb-npy', npy, '--threads', '1'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        print('  ' + r.stdout.strip())
        meta, inst = self._check_shapes(out, 20, True)
        self.assertEqual(inst, [])
        self.assertEqual(meta['image_size'], [128, 96])
        self.assertEqual(meta['crop_box'], [17, 19, 78, 109])
        x = np.load(os.path.join(out, 'input.npy'))
        self.assertTrue(np.all(x[:, :19] == 128) and np.all(x[:, :, :17] == 128))
        self.assertTrue(np.array_equal(x[:, 19:109, 17:78], img.transpose(2, 0, 1).astype(np.float32)))

    def test_dump_errors_are_clear(self):
        out = os.path.join(_tmpdir(), 'dump_err')
        r = self._run_dump('cihp', out, ['--image', os.path.join(_tmpdir(), 'missing.png')])
        self.assertEqual(r.returncode, 1)
        self.assertIn('image not found', r.stderr)
        self.assertNotIn('Traceback', r.stderr)
        npy = os.path.join(_tmpdir(), 'small2.npy')
        np.save(npy, self.rgb)
        r = self._run_dump('cihp', out, ['--rgb-npy', npy, '--names', 'pred_logits,no_such_tensor'])
        self.assertEqual(r.returncode, 1)
        self.assertIn('no_such_tensor match no intermediate', r.stderr)
        r = subprocess.run([PY, os.path.join(REF_DIR, 'dump_reference.py'), '--model-dir', _tmpdir(), '--out', out,
                            '--rgb-npy', npy], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn('configuration.json: not found', r.stderr)

    def test_bench_script(self):
        npy = os.path.join(_tmpdir(), 'bench.npy')
        np.save(npy, self.rgb)
        js = os.path.join(_tmpdir(), 'bench.json')
        r = subprocess.run([PY, os.path.join(REF_DIR, 'bench_reference.py'), '--model-dir', checkpoint('cihp'),
                            '--rgb-npy', npy, '--threads', '2', '--runs', '2', '--warmup', '0', '--short-edge', '64',
                            '--json', js], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        print('\n'.join('  ' + line for line in r.stdout.strip().splitlines()))
        for stage in ('preprocess', 'backbone', 'pixel_decoder', 'transformer_decoder', 'postprocess', 'total'):
            self.assertRegex(r.stdout, r'\n%s\s+\d+\.\d' % stage)
        with open(js) as f:
            j = json.load(f)
        self.assertEqual(len(j['per_run_s']), 2)
        self.assertEqual(j['padded_size'], [64, 96])


if __name__ == '__main__':
    unittest.main()
