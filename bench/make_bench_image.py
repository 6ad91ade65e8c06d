#!/usr/bin/env python3
"""Makes the benchmark photo of issue 4: a 548x342 RGB PNG (the engine resizes it to 640x1025 and pads it
to 640x1056), reproducibly, from a photo that scripts/fetch_demo_image.sh fetches from a Debian package.

  /usr/bin/python3 bench/make_bench_image.py [--source data/astronaut.png] [--out data/bench_548x342.png]

Recipe: the source photo is cropped to the 548:342 aspect ratio around `--center-y` (a fraction of its
height; 0.39 keeps the astronaut's head and shoulders), resized to 548x342 with PIL's LANCZOS filter,
converted to RGB and saved as PNG (lossless, so PIL and the engine's decoder read the same pixels).
Without --source, data/astronaut.png is used and fetched first if missing. Any other photo works
(e.g. --source data/messi5.jpg from `scripts/fetch_demo_image.sh --all`, already 548x342).
Prints the output's size and SHA-256. Needs PIL: run it with /usr/bin/python3 (Debian's python3-pil).
"""

import argparse
import hashlib
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDTH, HEIGHT = 548, 342


def make(source, out, center_y=0.39):
    from PIL import Image  # Debian's python3-pil

    with Image.open(source) as im:
        im = im.convert('RGB')
        w, h = im.size
        # the largest box of aspect WIDTH:HEIGHT inside the photo, centred horizontally, at center_y vertically
        if w * HEIGHT >= h * WIDTH:
            ch, cw = h, round(h * WIDTH / HEIGHT)
        else:
            cw, ch = w, round(w * HEIGHT / WIDTH)
        x0 = (w - cw) // 2
        y0 = min(max(round(center_y * h - ch / 2), 0), h - ch)
        crop = im.crop((x0, y0, x0 + cw, y0 + ch))
        if crop.size != (WIDTH, HEIGHT):
            crop = crop.resize((WIDTH, HEIGHT), Image.LANCZOS)
        tmp = out + '.tmp.png'
        crop.save(tmp, format='PNG')
        os.replace(tmp, out)
    with open(out, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return digest


def main(argv=None):
    p = argparse.ArgumentParser(description='make the 548x342 benchmark photo of issue 4')
    p.add_argument('--source', help='photo to crop and resize (default: data/astronaut.png, fetched if missing)')
    p.add_argument('--out', default=os.path.join(ROOT, 'data', 'bench_548x342.png'))
    p.add_argument('--center-y', type=float, default=0.39, help='vertical centre of the crop, fraction of the height')
    a = p.parse_args(argv)
    if not 0.0 <= a.center_y <= 1.0:
        p.error('--center-y must be in [0, 1]')
    source = a.source
    if source is None:
        source = os.path.join(ROOT, 'data', 'astronaut.png')
        if not os.path.isfile(source):
            subprocess.run([os.path.join(ROOT, 'scripts', 'fetch_demo_image.sh'), os.path.dirname(source)], check=True)
    if not os.path.isfile(source):
        print('make_bench_image: error: %s: no such file' % source, file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    try:
        digest = make(source, a.out, a.center_y)
    except OSError as e:
        print('make_bench_image: error: %s: %s' % (source, e), file=sys.stderr)
        return 1
    print('make_bench_image: %s %dx%d from %s, sha256 %s' % (a.out, WIDTH, HEIGHT, source, digest))
    return 0


if __name__ == '__main__':
    sys.exit(main())
