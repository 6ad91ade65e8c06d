#!/usr/bin/env python3
"""m2fp.cpp against the PyTorch reference on the same photo, weights and thread count, in one run.

  /usr/bin/python3 bench/compare_pytorch.py [--build build] [--model-dir DIR] [--model M.safetensors]
        [--image PHOTO] [--threads 2] [--runs 5] [--warmup 1] [--precision fp32|bf16] [--isa ISA]
        [--short-edge 640] [--max-size 1333] [--order pytorch-first|cpp-first] [--json OUT.json]

Builds nothing: it expects BUILD/bench/bench_e2e (cmake --build BUILD --target bench_e2e).
Weights: --model-dir is a ModelScope folder (pytorch_model.pt + configuration.json) that the reference loads;
--model its conversion (tools/convert_weights.py) that m2fp.cpp loads. Without --model-dir the synthetic CIHP
checkpoint BUILD/bench-data/cihp_synth (tools/make_synthetic_checkpoint.py --variant cihp --seed 0) is used and
made if missing; without --model the folder is converted to BUILD/bench-data/<folder name>.safetensors (again when
the checkpoint is newer than the conversion). Photo: --image, else data/bench_548x342.png made by
bench/make_bench_image.py (the issue-4 size: 548x342 -> 640x1025, padded 640x1056). Use a lossless photo (PNG):
the reference decodes with PIL, m2fp.cpp with its own decoder, and JPEG decoders may differ by a level.

Runs tests/reference/bench_reference.py (torch.set_num_threads(--threads); OMP_NUM_THREADS and
OPENBLAS_NUM_THREADS set to --threads too) and bench_e2e (--threads), each --warmup untimed runs then --runs
timed ones, and prints both reports and one table: stage, PyTorch median ms, m2fp.cpp median ms, speed-up
(PyTorch / m2fp.cpp; > 1 means m2fp.cpp is faster), GFLOP/s of each. The PyTorch reference decodes the photo once
outside its timed loop, so its "total" is compared with m2fp.cpp's total_excl_decode; the decode row is m2fp.cpp's
alone. Also reports which BLAS torch actually calls (Debian's torch is built against the generic libblas.so.3,
which the alternatives system points at OpenBLAS when libopenblas0-pthread is installed) with an sgemm rate.
Timings on a shared machine are noisy: both reports give the load average at start and end.
Needs /usr/bin/python3 (Debian's torch, numpy, PIL).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ('decode', 'preprocess', 'backbone', 'pixel_decoder', 'transformer_decoder', 'postprocess')


class CompareError(Exception):
    pass


def run_checked(cmd, env=None, what=None, capture=True):
    """Runs cmd; returns its stdout; raises CompareError with its output when it fails."""
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE if capture else None,
                           stderr=subprocess.STDOUT if capture else None, universal_newlines=True)
    except OSError as e:
        raise CompareError('%s: cannot run %s: %s' % (what or 'command', cmd[0], e))
    if p.returncode != 0:
        out = (p.stdout or '').strip()
        raise CompareError('%s failed (exit %d): %s%s' % (what or ' '.join(cmd), p.returncode, ' '.join(cmd),
                                                          ('\n' + out) if out else ''))
    return p.stdout or ''


def ensure_model(a, build):
    """Returns (model_dir, safetensors path), making the synthetic checkpoint / conversion when missing."""
    work = os.path.join(build, 'bench-data')
    model_dir = a.model_dir
    if model_dir is None:
        model_dir = os.path.join(work, 'cihp_synth')
        if not os.path.isfile(os.path.join(model_dir, 'pytorch_model.pt')):
            os.makedirs(work, exist_ok=True)
            print('compare_pytorch: making the synthetic CIHP checkpoint %s' % model_dir, flush=True)
            run_checked([sys.executable, os.path.join(ROOT, 'tools', 'make_synthetic_checkpoint.py'), '--variant',
                         'cihp', '--seed', '0', '--out', model_dir], what='make_synthetic_checkpoint.py')
    ckpt = os.path.join(model_dir, 'pytorch_model.pt')
    for f in (ckpt, os.path.join(model_dir, 'configuration.json')):
        if not os.path.isfile(f):
            raise CompareError('%s: missing (--model-dir must be a ModelScope folder: pytorch_model.pt + '
                               'configuration.json)' % f)
    model = a.model
    if model is None:
        model = os.path.join(work, os.path.basename(os.path.normpath(model_dir)) + '.safetensors')
        if not os.path.isfile(model) or os.path.getmtime(model) < os.path.getmtime(ckpt):
            os.makedirs(work, exist_ok=True)
            print('compare_pytorch: converting %s -> %s' % (model_dir, model), flush=True)
            run_checked([sys.executable, os.path.join(ROOT, 'tools', 'convert_weights.py'), model_dir, '-o', model],
                        what='convert_weights.py')
    elif not os.path.isfile(model):
        raise CompareError('%s: no such file (--model)' % model)
    return model_dir, model


def ensure_image(a):
    if a.image is not None:
        if not os.path.isfile(a.image):
            raise CompareError('%s: no such file (--image)' % a.image)
        return a.image
    image = os.path.join(ROOT, 'data', 'bench_548x342.png')
    if not os.path.isfile(image):
        run_checked([sys.executable, os.path.join(ROOT, 'bench', 'make_bench_image.py'), '--out', image],
                    what='make_bench_image.py')
    return image


BLAS_PROBE = r'''
import json, re, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
n = 1024
a, b = torch.randn(n, n), torch.randn(n, n)
torch.mm(a, b)  # loads the BLAS library
best = 1e9
for _ in range(5):
    t = time.perf_counter(); torch.mm(a, b); best = min(best, time.perf_counter() - t)
libs = sorted({l.split()[-1] for l in open('/proc/self/maps') if len(l.split()) >= 6 and
               any(k in l.split()[-1].lower() for k in ('blas', 'lapack', 'mkl'))})
cfg = torch.__config__.show()
info = re.findall(r'(?:BLAS_INFO|LAPACK_INFO)=\w+', cfg)
cap = re.search(r'CPU capability usage: (\w+)', cfg)
print(json.dumps({'torch': torch.__version__, 'build_blas': info, 'loaded_libs': libs,
                  'sgemm_1024_gflops': 2 * n ** 3 / best / 1e9, 'cpu_capability': cap.group(1) if cap else '?'}))
'''


def blas_probe(env, threads):
    out = run_checked([sys.executable, '-c', BLAS_PROBE, str(threads)], env=env, what='torch BLAS probe')
    info = json.loads(out.strip().splitlines()[-1])
    info['openblas'] = any('openblas' in l.lower() for l in info['loaded_libs'])
    return info


def fmt_ms(v):
    return '%.1f' % v if v is not None else '-'


def table_rows(py, cpp):
    """[(label, pytorch stage dict or None, m2fp.cpp stage dict or None)]"""
    ps, cs = py['stages'], cpp['stages']
    rows = [(s, ps.get(s), cs.get(s)) for s in STAGES]
    rows.append(('total (excl. decode)', ps.get('total'), cs.get('total_excl_decode')))
    rows.append(('total (incl. decode)', None, cs.get('total')))
    return rows


def print_table(rows, gflop):
    print('%-22s %12s %12s %10s %11s %11s' % ('stage', 'PyTorch ms', 'm2fp.cpp ms', 'speed-up', 'PyTorch', 'm2fp.cpp'))
    print('%-22s %12s %12s %10s %11s %11s' % ('', '(median)', '(median)', 'PT / cpp', 'GFLOP/s', 'GFLOP/s'))
    table = []
    for label, p, c in rows:
        pm = p['median_ms'] if p else None
        cm = c['median_ms'] if c else None
        ratio = pm / cm if pm is not None and cm else None
        g = gflop.get(label.split(' ')[0])
        pg = g / (pm / 1e3) if g and pm else None
        cg = g / (cm / 1e3) if g and cm else None
        print('%-22s %12s %12s %10s %11s %11s' % (label, fmt_ms(pm), fmt_ms(cm),
                                                    '%.2fx' % ratio if ratio is not None else '-',
                                                    '%.1f' % pg if pg else '', '%.1f' % cg if cg else ''))
        table.append({'stage': label, 'pytorch_ms': pm, 'cpp_ms': cm, 'speedup': ratio,
                      'pytorch_gflops': pg, 'cpp_gflops': cg})
    return table


def main(argv=None):
    p = argparse.ArgumentParser(description='m2fp.cpp vs the PyTorch reference, same photo, weights and threads')
    p.add_argument('--build', default=os.path.join(ROOT, 'build'), help='build folder holding bench/bench_e2e')
    p.add_argument('--model-dir', help='ModelScope folder for the reference (default: synthetic CIHP, made if missing)')
    p.add_argument('--model', help='its safetensors conversion for m2fp.cpp (default: converted into BUILD/bench-data)')
    p.add_argument('--image', help='photo (default: data/bench_548x342.png, made if missing)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--runs', type=int, default=5)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--precision', default='fp32', choices=('fp32', 'bf16'), help="m2fp.cpp's (PyTorch runs fp32)")
    p.add_argument('--isa', choices=('scalar', 'avx2', 'avx512'), help="m2fp.cpp's kernel path (default: best)")
    p.add_argument('--short-edge', type=int, default=640)
    p.add_argument('--max-size', type=int, default=1333)
    p.add_argument('--order', default='pytorch-first', choices=('pytorch-first', 'cpp-first'))
    p.add_argument('--json', help='write both reports and the table here')
    a = p.parse_args(argv)
    if a.runs < 1 or a.warmup < 0 or a.threads < 1:
        p.error('--runs and --threads must be >= 1, --warmup >= 0')

    build = os.path.abspath(a.build)
    bench = os.path.join(build, 'bench', 'bench_e2e')
    if not os.access(bench, os.X_OK):
        raise CompareError('%s: not found; build it first: cmake -S %s -B %s && cmake --build %s --target bench_e2e'
                           % (bench, ROOT, a.build, a.build))
    model_dir, model = ensure_model(a, build)
    image = ensure_image(a)

    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads),
               PYTHONDONTWRITEBYTECODE='1')
    env.pop('M2FP_ISA', None)
    blas = blas_probe(env, a.threads)

    with tempfile.TemporaryDirectory(prefix='m2fp_compare_') as tmp:
        py_json, cpp_json = os.path.join(tmp, 'pytorch.json'), os.path.join(tmp, 'cpp.json')
        py_cmd = [sys.executable, os.path.join(ROOT, 'tests', 'reference', 'bench_reference.py'), '--model-dir',
                  model_dir, '--image', image, '--threads', str(a.threads), '--runs', str(a.runs), '--warmup',
                  str(a.warmup), '--short-edge', str(a.short_edge), '--max-size', str(a.max_size), '--json', py_json]
        cpp_cmd = [bench, '--model', model, '--image', image, '--threads', str(a.threads), '--runs', str(a.runs),
                   '--warmup', str(a.warmup), '--precision', a.precision, '--short-edge', str(a.short_edge),
                   '--max-size', str(a.max_size), '--json', cpp_json, '--quiet']
        if a.isa:
            cpp_cmd += ['--isa', a.isa]
        jobs = [('PyTorch reference', py_cmd), ('m2fp.cpp', cpp_cmd)]
        if a.order == 'cpp-first':
            jobs.reverse()
        for name, cmd in jobs:
            print('==== %s: %s' % (name, ' '.join(cmd)), flush=True)
            print(run_checked(cmd, env=env, what=name).rstrip(), flush=True)
            print()
        with open(py_json) as f:
            py = json.load(f)
        with open(cpp_json) as f:
            cpp = json.load(f)

    if list(py['padded_size']) != list(cpp['padded_size']) or list(py['input_size']) != list(cpp['input_size']):
        raise CompareError('the two engines saw different inputs: PyTorch %s padded %s, m2fp.cpp %s padded %s'
                           % (py['input_size'], py['padded_size'], cpp['input_size'], cpp['padded_size']))
    gflop = {s: cpp['stages'][s]['gflop'] for s in ('backbone', 'pixel_decoder', 'transformer_decoder')}
    gflop['total'] = cpp['stages']['total']['gflop']

    print('==== PyTorch %s (%s threads, fp32, BLAS: %s) vs m2fp.cpp %s (%d threads, %s, kernels %s, oneDNN %s)'
          % (py['torch'], py['threads'], 'OpenBLAS' if blas['openblas'] else ', '.join(blas['loaded_libs']) or '?',
             cpp['commit'], cpp['threads'], cpp['precision'], cpp['isa'], cpp['onednn']['version']))
    print('cpu %s; photo %s %dx%d -> %dx%d, padded %dx%d; %d runs after %d warm-up each'
          % (cpp['cpu'], image, cpp['width'], cpp['height'], cpp['input_size'][0], cpp['input_size'][1],
             cpp['padded_size'][0], cpp['padded_size'][1], a.runs, a.warmup))
    print('load average: PyTorch %.2f -> %.2f, m2fp.cpp %.2f -> %.2f (%d online CPUs; m2fp.cpp got %.2f cores on average)'
          % (py['load_average'][0], py['load_average'][1], cpp['load_average'][0], cpp['load_average'][1],
             cpp['online_cpus'], cpp['cores_used']))
    print('torch BLAS: built %s; loaded %s; torch.mm 1024^3 %.1f GFLOP/s on %d thread(s); ATen CPU capability %s'
          % (', '.join(blas['build_blas']) or '?', ', '.join(blas['loaded_libs']) or 'none', blas['sgemm_1024_gflops'],
             a.threads, blas['cpu_capability']))
    if not blas['openblas']:
        print('WARNING: torch does not use OpenBLAS here (install libopenblas0-pthread): its fp32 matmuls are slow, '
              'the comparison flatters m2fp.cpp')
    print()
    table = print_table(table_rows(py, cpp), gflop)
    print('peak RSS: m2fp.cpp %.0f MB (bench_e2e process)' % cpp['memory_mb']['peak_rss'])
    if cpp['model']['synthetic']:
        print('note: synthetic weights (same shapes and cost as the real checkpoint)')

    if a.json:
        out = {'pytorch': py, 'cpp': cpp, 'torch_blas': blas, 'table': table, 'image': image, 'model_dir': model_dir,
               'model': model, 'threads': a.threads}
        tmp = a.json + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(out, f, indent=1)
        os.replace(tmp, a.json)
        print('compare_pytorch: wrote %s' % a.json)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except CompareError as e:
        print('compare_pytorch: error: %s' % e, file=sys.stderr)
        sys.exit(1)
