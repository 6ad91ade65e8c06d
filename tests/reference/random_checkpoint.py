#!/usr/bin/env python3
"""Fallback checkpoint for the reference tests: a randomly initialised M2FP saved in the ModelScope format.

  /usr/bin/python3 tests/reference/random_checkpoint.py --variant cihp|lip --seed N --out DIR

The project's real synthetic checkpoints come from tools/make_synthetic_checkpoint.py (tuned weights, ctest
fixtures). This file only exists so the reference tests can run where that tool or its output is absent:
it writes DIR/pytorch_model.pt (torch.save({'model': state_dict})) and DIR/configuration.json (the CIHP file
of tools/configs/, or the LIP one; when tools/configs/lip_configuration.json is absent the LIP configuration
is derived from CIHP's: 20 classes, single_human, semantic_on, input_single_human 384x512).

Weights: torch's default initialisation plus a few rescalings so outputs are not degenerate (BatchNorm
statistics near identity, the last BatchNorm of every residual branch damped, class and mask heads scaled
so that some queries are confident and mask logits take both signs). Not a trained model.
"""

import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import m2fp_ref as R  # noqa: E402

LIP_CLASSES = ['Background', 'Hat', 'Hair', 'Glove', 'Sunglasses', 'Upper-clothes', 'Dress', 'Coat', 'Socks',
               'Pants', 'Jumpsuits', 'Scarf', 'Skirt', 'Face', 'Left-arm', 'Right-arm', 'Left-leg', 'Right-leg',
               'Left-shoe', 'Right-shoe']


def variant_configuration(variant: str) -> dict:
    """The full configuration.json object for 'cihp' or 'lip'."""
    cihp_path = os.path.join(ROOT, 'tools', 'configs', 'cihp_configuration.json')
    with open(cihp_path, 'r', encoding='utf-8') as f:
        cfg = json.load(f)
    if variant == 'cihp':
        return cfg
    if variant != 'lip':
        raise R.ReferenceError('unknown variant %r (cihp or lip)' % (variant,))
    lip_path = os.path.join(ROOT, 'tools', 'configs', 'lip_configuration.json')
    if os.path.isfile(lip_path):
        with open(lip_path, 'r', encoding='utf-8') as f:
            return json.load(f)
    m = cfg['model']
    m['decoder']['num_classes'] = 20
    m['classes'] = list(LIP_CLASSES)
    m['single_human'] = True
    m['parsing_on'] = False
    m['semantic_on'] = True
    m['sem_seg_postprocess_before_inference'] = False
    m['input_single_human'] = {'sizes': [[384, 512]], 'scale_factor': 0.8}
    m.pop('num_parsing', None)
    m.pop('parsing_ins_score_thr', None)
    return cfg


def random_state_dict(model_cfg: dict, seed: int) -> dict:
    torch.manual_seed(seed)
    model = R.M2FP(model_cfg)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                c = mod.num_features
                mod.running_mean.copy_(torch.randn(c, generator=g) * 0.05)
                mod.running_var.copy_(1 + (torch.rand(c, generator=g) - 0.5) * 0.2)
                gamma = 0.15 if name.endswith('conv3.norm') else 1.0
                mod.weight.copy_(gamma * (1 + (torch.rand(c, generator=g) - 0.5) * 0.2))
                mod.bias.copy_(torch.randn(c, generator=g) * 0.05)
                mod.num_batches_tracked.fill_(1000)
            elif isinstance(mod, torch.nn.Conv2d) and 'backbone' in name:
                fan_in = mod.weight[0].numel()
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            elif isinstance(mod, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
                mod.weight.copy_(1 + (torch.rand(mod.weight.shape, generator=g) - 0.5) * 0.2)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.05)
        pred = model.sem_seg_head.predictor
        for emb in (pred.query_feat, pred.query_embed, pred.level_embed):
            emb.weight.copy_(torch.randn(emb.weight.shape, generator=g))
        pred.class_embed.weight.copy_(torch.randn(pred.class_embed.weight.shape, generator=g) * 0.4)
        pred.class_embed.bias.copy_(torch.randn(pred.class_embed.bias.shape, generator=g) * 1.5)
        last = pred.mask_embed.layers[-1]
        last.weight.copy_(torch.randn(last.weight.shape, generator=g) * 0.25)
        enc = model.sem_seg_head.pixel_decoder.transformer
        enc.level_embed.copy_(torch.randn(enc.level_embed.shape, generator=g))
        for layer in enc.encoder.layers:
            so = layer.self_attn.sampling_offsets
            so.weight.copy_(torch.randn(so.weight.shape, generator=g) * 0.01)
    return model.state_dict()


def write_checkpoint(out_dir: str, variant: str = 'cihp', seed: int = 0) -> str:
    cfg = variant_configuration(variant)
    cfg['m2fp_synthetic'] = {'seed': seed, 'generator': 'tests/reference/random_checkpoint.py',
                             'note': 'random weights, not a trained model'}
    state = random_state_dict(cfg['model'], seed)
    os.makedirs(out_dir, exist_ok=True)
    torch.save({'model': state}, os.path.join(out_dir, 'pytorch_model.pt'))
    with open(os.path.join(out_dir, 'configuration.json'), 'w', encoding='utf-8') as f:
        json.dump(cfg, f, indent=2)
    return out_dir


def main():
    p = argparse.ArgumentParser(description='random ModelScope-format M2FP checkpoint (test fallback)')
    p.add_argument('--variant', choices=['cihp', 'lip'], default='cihp')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', required=True)
    a = p.parse_args()
    write_checkpoint(a.out, a.variant, a.seed)
    print('random_checkpoint: %s checkpoint (seed %d) -> %s' % (a.variant, a.seed, a.out))


if __name__ == '__main__':
    main()
