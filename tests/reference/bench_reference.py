#!/usr/bin/env python3
"""Per-stage timing of the PyTorch reference (the upstream-equivalent forward), for the speed comparison.

  /usr/bin/python3 tests/reference/bench_reference.py --model-dir DIR --image IMG [--threads 2] [--runs 5]
        [--warmup 1] [--short-edge 640] [--max-size 1333] [--rgb-npy FILE.npy] [--json OUT.json]

Runs pre-processing, backbone, pixel decoder, transformer decoder and post-processing `--runs` times after
`--warmup` untimed runs, with torch.set_num_threads(--threads), no intermediates recorded, and prints the
median / min / mean +- std milliseconds of each stage. --json writes the same numbers (plus the per-run
values, machine and sizes) for the combined C++/PyTorch benchmark script.
Timings on a shared machine are noisy: the load average at start and end is printed and stored.
"""

import argparse
import json
import os
import platform
import statistics
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import m2fp_ref as R  # noqa: E402

STAGES = ('preprocess', 'backbone', 'pixel_decoder', 'transformer_decoder', 'postprocess', 'total')


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def main(argv=None):
    p = argparse.ArgumentParser(description='per-stage timing of the PyTorch M2FP reference')
    p.add_argument('--model-dir', required=True)
    p.add_argument('--image')
    p.add_argument('--rgb-npy')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--runs', type=int, default=5)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--short-edge', type=int, default=640)
    p.add_argument('--max-size', type=int, default=1333)
    p.add_argument('--json', help='also write the results as JSON here')
    a = p.parse_args(argv)
    if a.runs < 1 or a.warmup < 0 or a.threads < 1:
        raise R.ReferenceError('--runs and --threads must be >= 1, --warmup >= 0')
    torch.set_num_threads(a.threads)
    if a.rgb_npy:
        rgb = R.check_rgb(np.load(a.rgb_npy, allow_pickle=False), a.rgb_npy)
    elif a.image:
        rgb = R.load_rgb(a.image)
    else:
        raise R.ReferenceError('give --image or --rgb-npy')

    ref = R.M2FPReference.from_model_dir(a.model_dir)
    load_start = os.getloadavg()[0]
    for _ in range(a.warmup):
        ref.run(rgb, a.short_edge, a.max_size)
    runs = []
    for _ in range(a.runs):
        res = ref.run(rgb, a.short_edge, a.max_size)
        runs.append(res['timings'])
    load_end = os.getloadavg()[0]
    prep = res['prep']
    hp, wp = prep['image'].shape[-2:]

    summary = {}
    for s in STAGES:
        v = [r[s] * 1e3 for r in runs]
        summary[s] = {'median_ms': statistics.median(v), 'min_ms': min(v), 'mean_ms': statistics.mean(v),
                      'std_ms': statistics.stdev(v) if len(v) > 1 else 0.0}
    print('PyTorch reference %s, %d thread(s), %s' % (torch.__version__, a.threads, cpu_name()))
    print('image %dx%d -> input %dx%d, padded %dx%d; %d run(s) after %d warm-up; load average %.2f -> %.2f'
          % (prep['height'], prep['width'], prep['image_size'][0], prep['image_size'][1], hp, wp,
             a.runs, a.warmup, load_start, load_end))
    print('%-20s %10s %10s %18s' % ('stage', 'median ms', 'min ms', 'mean +- std ms'))
    for s in STAGES:
        m = summary[s]
        print('%-20s %10.1f %10.1f %10.1f +- %5.1f' % (s, m['median_ms'], m['min_ms'], m['mean_ms'], m['std_ms']))
    if a.json:
        with open(a.json, 'w') as f:
            json.dump({'engine': 'pytorch-reference', 'torch': torch.__version__, 'threads': a.threads,
                       'cpu': cpu_name(), 'runs': a.runs, 'warmup': a.warmup,
                       'load_average': [load_start, load_end],
                       'image': a.rgb_npy or a.image, 'height': prep['height'], 'width': prep['width'],
                       'input_size': list(prep['image_size']), 'padded_size': [hp, wp],
                       'stages': summary, 'per_run_s': runs}, f, indent=1)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except R.ReferenceError as e:
        print('bench_reference: error: %s' % e, file=sys.stderr)
        sys.exit(1)
