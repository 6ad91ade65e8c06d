#!/usr/bin/env python3
"""Dump the named intermediates of the PyTorch reference for one image (docs/INTERMEDIATES.md).

  /usr/bin/python3 tests/reference/dump_reference.py --model-dir DIR --image IMG --out OUTDIR
        [--rgb-npy FILE.npy] [--short-edge 640] [--max-size 1333] [--threads 2] [--names a,b,decoder.*]

DIR is a ModelScope model folder (pytorch_model.pt + configuration.json). --rgb-npy gives the decoded pixels
(uint8 [H, W, 3], RGB) instead of decoding IMG with PIL, so that decoder differences (stb_image vs libjpeg)
can be kept out of a comparison; --image may then be left out.

Writes into OUTDIR:
  <name>.npy       float32, batch dimension dropped: feature maps [C, H, W], tokens [N, 256], queries [100, ...];
                   every name by default, or only those matching --names (names or fnmatch patterns): for large
                   images ask only for what you need, the recorder keeps nothing else in memory.
  instances.json   [{"kind": "part"|"human", "category_id", "score", "area", "query"}] (parts, then humans,
                   each by descending score; empty for a single-person model)
  timings.json     seconds per stage: preprocess, backbone, pixel_decoder, transformer_decoder, postprocess, total
  meta.json        sizes (H0, W0, nh, nw, Hp, Wp, crop box), threads, torch version, the names written
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import m2fp_ref as R  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model-dir', required=True, help='folder with pytorch_model.pt and configuration.json')
    p.add_argument('--image', help='image file (decoded with PIL + EXIF transpose, as upstream)')
    p.add_argument('--rgb-npy', help='uint8 [H, W, 3] RGB array to use instead of decoding --image')
    p.add_argument('--short-edge', type=int, default=640)
    p.add_argument('--max-size', type=int, default=1333)
    p.add_argument('--out', required=True, help='output folder (created)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--names', help='comma-separated names or fnmatch patterns to dump (default: all)')
    return p.parse_args(argv)


def select_names(all_names, names_arg):
    if not names_arg:
        return None
    wanted = [n.strip() for n in names_arg.split(',') if n.strip()]
    if not wanted:
        raise R.ReferenceError('--names is empty')
    unknown = [w for w in wanted if not any(R.Recorder([w]).wants(n) for n in all_names)]
    if unknown:
        raise R.ReferenceError('--names: %s match no intermediate; known names: %s'
                               % (', '.join(unknown), ', '.join(all_names)))
    return wanted


def main(argv=None):
    args = parse_args(argv)
    if args.threads < 1:
        raise R.ReferenceError('--threads must be >= 1')
    if args.short_edge < 1 or args.max_size < 1:
        raise R.ReferenceError('--short-edge and --max-size must be >= 1')
    torch.set_num_threads(args.threads)

    if args.rgb_npy:
        try:
            rgb = np.load(args.rgb_npy, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise R.ReferenceError('%s: cannot read .npy: %s' % (args.rgb_npy, e)) from None
        rgb = R.check_rgb(rgb, args.rgb_npy)
    elif args.image:
        rgb = R.load_rgb(args.image)
    else:
        raise R.ReferenceError('give --image or --rgb-npy')

    all_names = R.intermediate_names(R.read_model_config(args.model_dir))
    rec = R.Recorder(select_names(all_names, args.names))
    ref = R.M2FPReference.from_model_dir(args.model_dir)
    result = ref.run(rgb, args.short_edge, args.max_size, rec)

    os.makedirs(args.out, exist_ok=True)
    written = []
    for name in all_names:
        if name in rec.tensors:
            np.save(os.path.join(args.out, name + '.npy'), rec.tensors[name].numpy().astype(np.float32))
            written.append(name)
    with open(os.path.join(args.out, 'instances.json'), 'w') as f:
        json.dump(result['instances'], f, indent=1)
    with open(os.path.join(args.out, 'timings.json'), 'w') as f:
        json.dump(result['timings'], f, indent=1)
    prep = result['prep']
    meta = {
        'height': prep['height'], 'width': prep['width'],
        'image_size': list(prep['image_size']), 'padded_size': list(prep['image'].shape[-2:]),
        'crop_box': prep['crop_box'], 'single_human': bool(ref.cfg.get('single_human', False)),
        'short_edge': args.short_edge, 'max_size': args.max_size, 'threads': args.threads,
        'torch': torch.__version__, 'source': args.rgb_npy or args.image, 'names': written,
    }
    with open(os.path.join(args.out, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=1)
    t = result['timings']
    print('dump_reference: %d tensors, %d instances -> %s (H0xW0 %dx%d, padded %dx%d, total %.2f s: %s)'
          % (len(written), len(result['instances']), args.out, prep['height'], prep['width'],
             meta['padded_size'][0], meta['padded_size'][1], t['total'],
             ', '.join('%s %.3f' % (k, v) for k, v in t.items() if k != 'total')))
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except R.ReferenceError as e:
        print('dump_reference: error: %s' % e, file=sys.stderr)
        sys.exit(1)
