#!/usr/bin/env python3
"""Reference data for the engine's image tests (test_image.cpp, test_preprocess.cpp, test_render.cpp).

Written with PIL, numpy and torch the way the upstream ModelScope pipeline uses them, so the C++
side compares against the real thing. Run with Debian's /usr/bin/python3 (M2FP_PYTHON).

  image_ref.py pngs OUT             PNG/BMP variants + their PIL convert('RGB') pixels (*.npy)
  image_ref.py exif OUT             JPEGs (and a PNG) with EXIF orientation 1..8 + PIL exif_transpose
  image_ref.py jpegs OUT            JPEG variants (subsampling, progressive, restart markers, grey, CMYK,
                                    odd sizes) + their PIL convert('RGB') pixels; prints the names
  image_ref.py multi OUT PNG S:M..  multi-person pre-processing of PNG for each short_edge:max_size
  image_ref.py single OUT W H h,w.. single-person centring on a WxH target for photos of h x w
  image_ref.py check-npy FILE KIND SHAPE [...]  files written by the C++ test read back with that content
  image_ref.py check-png FILE MODE W H    FILE written by the C++ test opens in PIL with that content
  image_ref.py voc-palette N        prints get_palette(N) (the SCHP/LIP tools' formula) as JSON
  image_ref.py shapes FILE          FILE lines "h w short max" -> prints "newh neww" per line
  image_ref.py textured OUT W H SEED  writes the photo-like test picture as PNG

Every output file is named after its case; shapes/boxes go to JSON files beside the arrays.
The pre-processing itself (multi, single, shapes) is tests/reference/m2fp_ref.py's, the one the
end-to-end parity tests use; it is imported only by those commands (it loads torch).
"""
import json
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageOps


def m2fp_ref():
    """tests/reference/m2fp_ref.py (upstream pre-processing), imported on first use."""
    ref_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'reference')
    if ref_dir not in sys.path:
        sys.path.insert(0, ref_dir)
    import m2fp_ref as ref
    return ref


def hwc(image):
    """m2fp_ref's padded network input [1, 3, Hp, Wp] -> float32 [Hp, Wp, 3] numpy (the engine's layout)."""
    return image[0].permute(1, 2, 0).contiguous().numpy()


def smooth_rgb(w, h, seed=0):
    """A smooth picture (JPEG-friendly): low-frequency waves per channel."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 90 * np.sin(x / 9.0 + seed) * np.cos(y / 13.0)
    g = 128 + 90 * np.cos(x / 17.0) * np.sin(y / 7.0 + seed)
    b = 40 + 180 * (x + y) / (w + h)
    return np.clip(np.stack([r, g, b], -1) + 0.5, 0, 255).astype(np.uint8)


def textured_rgb(w, h, seed=0):
    """A photo-like test picture: gradients, hard edges and noise (exercises every filter tap)."""
    rng = np.random.RandomState(seed)
    base = smooth_rgb(w, h, seed).astype(np.int32)
    base[h // 3: h // 2, :, 0] = 250
    base[:, w // 4: w // 4 + 3, 1] = 5
    noise = rng.randint(-40, 41, size=(h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def png_chunk(tag, data):
    return struct.pack('>I', len(data)) + tag + data + struct.pack('>I', zlib.crc32(tag + data) & 0xffffffff)


def raw_png(w, h, bit_depth, color_type, rows):
    """A PNG from raw scanlines (filter 0), for the depths PIL does not write."""
    ihdr = struct.pack('>IIBBBBB', w, h, bit_depth, color_type, 0, 0, 0)
    raw = b''.join(b'\x00' + r for r in rows)
    return (b'\x89PNG\r\n\x1a\n' + png_chunk(b'IHDR', ihdr) + png_chunk(b'IDAT', zlib.compress(raw)) +
            png_chunk(b'IEND', b''))


def save_expected(path, arr):
    np.save(path + '.npy', np.ascontiguousarray(arr, dtype=np.uint8))


def cmd_pngs(out):
    rng = np.random.RandomState(1)
    w, h = 37, 23
    rgb = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
    files = {}
    files['rgb.png'] = Image.fromarray(rgb, 'RGB')
    files['rgba.png'] = Image.fromarray(rng.randint(0, 256, (h, w, 4)).astype(np.uint8), 'RGBA')
    files['gray.png'] = Image.fromarray(rng.randint(0, 256, (h, w)).astype(np.uint8), 'L')
    files['la.png'] = Image.fromarray(rng.randint(0, 256, (h, w, 2)).astype(np.uint8), 'LA')
    pal = Image.fromarray(rng.randint(0, 256, (h, w)).astype(np.uint8), 'P')
    pal.putpalette(list(rng.randint(0, 256, 768).astype(np.uint8)))
    files['palette.png'] = pal
    pal_t = pal.copy()
    pal_t.info['transparency'] = 7
    files['palette_trns.png'] = pal_t
    files['bit1.png'] = Image.fromarray(rng.randint(0, 2, (h, w)).astype(bool))
    files['rgb.bmp'] = Image.fromarray(rgb, 'RGB')
    files['gray.bmp'] = files['gray.png']
    for name, im in files.items():
        kw = {'transparency': 7} if name == 'palette_trns.png' else {}
        im.save(os.path.join(out, name), **kw)
    # 16-bit grey (PIL writes I;16 as 16-bit PNG). PIL's own convert('RGB') CLIPS such values to
    # 255; the engine keeps the high byte (stb_image), so the expectation is v >> 8.
    g16 = rng.randint(0, 65536, (h, w)).astype(np.uint16)
    Image.fromarray(g16, 'I;16').save(os.path.join(out, 'gray16.png'))
    save_expected(os.path.join(out, 'gray16.png'), np.repeat((g16 >> 8)[..., None], 3, -1))
    # 16-bit RGB and 4-bit grey: raw PNGs; PIL reads them as 8-bit RGB / L.
    rgb16 = rng.randint(0, 65536, (h, w, 3)).astype('>u2')
    with open(os.path.join(out, 'rgb16.png'), 'wb') as f:
        f.write(raw_png(w, h, 16, 2, [rgb16[y].tobytes() for y in range(h)]))
    g4 = rng.randint(0, 16, (h, w)).astype(np.uint8)
    rows4 = []
    for y in range(h):
        r = g4[y]
        if w % 2:
            r = np.append(r, 0)
        rows4.append(((r[0::2] << 4) | r[1::2]).astype(np.uint8).tobytes())
    with open(os.path.join(out, 'gray4.png'), 'wb') as f:
        f.write(raw_png(w, h, 4, 0, rows4))
    names = sorted(files) + ['rgb16.png', 'gray4.png']
    for name in names:
        im = Image.open(os.path.join(out, name))
        save_expected(os.path.join(out, name), np.asarray(im.convert('RGB')))
    assert np.array_equal(np.asarray(Image.open(os.path.join(out, 'rgb16.png')).convert('RGB')),
                          (rgb16.astype(np.uint16) >> 8).astype(np.uint8))
    print(json.dumps(names + ['gray16.png']))


def tiff_block(orientation, big_endian):
    e = '>' if big_endian else '<'
    head = (b'MM\x00\x2a' if big_endian else b'II\x2a\x00') + struct.pack(e + 'I', 8)
    entry = struct.pack(e + 'HHI', 0x0112, 3, 1) + struct.pack(e + 'HH', orientation, 0)
    return head + struct.pack(e + 'H', 1) + entry + struct.pack(e + 'I', 0)


def with_app1(jpeg, payload):
    seg = b'\xff\xe1' + struct.pack('>H', len(payload) + 2) + payload
    return jpeg[:2] + seg + jpeg[2:]


def cmd_exif(out):
    w, h = 61, 37
    base = Image.fromarray(smooth_rgb(w, h, 0.3), 'RGB')
    plain = os.path.join(out, 'plain.jpg')
    base.save(plain, quality=95)
    with open(plain, 'rb') as f:
        plain_bytes = f.read()
    cases = []
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        name = 'exif_le_%d.jpg' % o
        base.save(os.path.join(out, name), quality=95, exif=exif.tobytes())
        cases.append((name, o))
        name = 'exif_be_%d.jpg' % o
        with open(os.path.join(out, name), 'wb') as f:
            f.write(with_app1(plain_bytes, b'Exif\x00\x00' + tiff_block(o, True)))
        cases.append((name, o))
        # PNG eXIf chunk: lossless, so the transposition itself is compared exactly.
        name = 'exif_%d.png' % o
        base.save(os.path.join(out, name), exif=exif.tobytes())
        cases.append((name, o))
    Image.fromarray(smooth_rgb(w, h, 1.1)[..., 1], 'L').save(os.path.join(out, 'gray.jpg'), quality=95)
    cases.append(('gray.jpg', 1))
    result = []
    for name, o in cases + [('plain.jpg', 1)]:
        im = Image.open(os.path.join(out, name))
        got = im.getexif().get(0x0112, 1)
        assert got == o, (name, got, o)
        t = ImageOps.exif_transpose(im).convert('RGB')
        save_expected(os.path.join(out, name), np.asarray(t))
        result.append({'file': name, 'orientation': o, 'width': t.size[0], 'height': t.size[1]})
    print(json.dumps(result))


def cmd_jpegs(out):
    """JPEG encodings the decoder must read exactly as PIL does (the same libjpeg-turbo underneath)."""
    w, h = 67, 45  # no multiple of the 8x8 / 16x16 blocks: edge blocks and chroma upsampling at the border
    rgb = Image.fromarray(textured_rgb(w, h, 3), 'RGB')
    variants = {
        'q90_420.jpg': (rgb, dict(quality=90, subsampling=2)),
        'q75_422.jpg': (rgb, dict(quality=75, subsampling=1)),
        'q95_444.jpg': (rgb, dict(quality=95, subsampling=0)),
        'progressive.jpg': (rgb, dict(quality=85, progressive=True)),
        'optimized.jpg': (rgb, dict(quality=80, optimize=True)),
        'restart.jpg': (rgb, dict(quality=85, restart_marker_blocks=3)),
        'grey.jpg': (rgb.convert('L'), dict(quality=90)),
        'cmyk.jpg': (rgb.convert('CMYK'), dict(quality=90)),
        'tall_1x17.jpg': (Image.fromarray(textured_rgb(1, 17, 4), 'RGB'), dict(quality=90)),
    }
    # Pictures over 8 MB (the decoder sizes those differently: huge pages), one with EXIF orientation 6.
    large = Image.fromarray(textured_rgb(2053, 1531, 5), 'RGB')
    variants['large_420.jpg'] = (large, dict(quality=90, subsampling=2))
    exif = Image.Exif()
    exif[0x0112] = 6
    variants['large_exif6.jpg'] = (large, dict(quality=85, exif=exif.tobytes()))
    # Over 2 Mpx: decoded in two parts side by side (the lower one after jpeg_skip_scanlines), every
    # sampling and colour space; a progressive one is decoded whole.
    variants['large_422.jpg'] = (large, dict(quality=75, subsampling=1))
    variants['large_444.jpg'] = (large, dict(quality=95, subsampling=0))
    variants['large_restart.jpg'] = (large, dict(quality=85, restart_marker_blocks=7))
    variants['large_progressive.jpg'] = (large, dict(quality=85, progressive=True))
    variants['large_grey.jpg'] = (large.convert('L'), dict(quality=90))
    variants['large_cmyk.jpg'] = (large.convert('CMYK'), dict(quality=90))
    names = []
    for name, (im, kw) in sorted(variants.items()):
        path = os.path.join(out, name)
        im.save(path, **kw)
        back = Image.open(path)
        save_expected(path, np.asarray(ImageOps.exif_transpose(back).convert('RGB')))
        names.append(name)
    print(json.dumps(names))


def cmd_multi(out, png, cases):
    import torch
    torch.set_num_threads(1)
    ref = m2fp_ref()
    rgb = np.asarray(Image.open(png).convert('RGB'))
    result = []
    for case in cases:
        short, max_size = (int(v) for v in case.split(':'))
        p = ref.preprocess_multi(rgb, short, max_size)
        nh, nw = p['image_size']
        tag = os.path.join(out, 'multi_%d_%d' % (short, max_size))
        np.save(tag + '_resized.npy', p['resized'])          # uint8 [nh, nw, 3] after PIL BILINEAR
        np.save(tag + '_input.npy', p['input'].numpy())      # float32 [3, nh, nw], ToTensor() * 255
        np.save(tag + '_image.npy', hwc(p['image']))         # float32 [Hp, Wp, 3] normalised, padded
        result.append({'short_edge': short, 'max_size': max_size, 'nh': nh, 'nw': nw})
    print(json.dumps(result))


def cmd_single(out, tw, th, sizes):
    import torch
    torch.set_num_threads(1)
    ref = m2fp_ref()
    result = []
    for k, s in enumerate(sizes):
        h, w = (int(v) for v in s.split(','))
        img = textured_rgb(w, h, seed=k)
        tag = os.path.join(out, 'single_%dx%d' % (w, h))
        Image.fromarray(img, 'RGB').save(tag + '.png')
        entry = {'h': h, 'w': w, 'upstream_fails': False}
        try:
            centred, box = ref.center_to_target_size_test(img, [tw, th])
        except ref.ReferenceError as e:  # upstream: PIL refuses the 0x0 resize of the square-photo branch
            entry['upstream_fails'] = True
            entry['upstream_error'] = str(e)
            # Expectation: a photo one pixel wider would fit the same way (see preprocess.h).
            side = min(tw, th)
            centred = np.asarray(Image.fromarray(img).resize((side, side), Image.BILINEAR))
            x0, y0 = (tw - side) // 2, (th - side) // 2
            if x0 or y0:
                centred = np.pad(centred, ((y0, th - side - y0), (x0, tw - side - x0), (0, 0)),
                                 'constant', constant_values=128)
            box = [x0, y0, x0 + side, y0 + side]
        # The model: torch.as_tensor(uint8 CHW) - float32 mean, / std, ImageList zero pad.
        image = ref.normalize_and_pad(torch.as_tensor(np.ascontiguousarray(centred.transpose(2, 0, 1))))
        np.save(tag + '_centred.npy', np.ascontiguousarray(centred))
        np.save(tag + '_image.npy', hwc(image))
        entry.update({'box': [int(v) for v in box], 'out_h': int(centred.shape[0]), 'out_w': int(centred.shape[1])})
        result.append(entry)
    print(json.dumps(result))


def npy_expected(kind, shape):
    n = int(np.prod(shape)) if shape else 1
    i = np.arange(n)
    if kind == 'f4':
        return (i.astype(np.float32) * np.float32(0.25) - np.float32(3)).reshape(shape)
    if kind == 'u1':
        return (i % 256).astype(np.uint8).reshape(shape)
    if kind == 'i4':
        return (i * 7 - 1000).astype(np.int32).reshape(shape)
    raise SystemExit('unknown kind ' + kind)


def cmd_check_npy(path, kind, shape):
    a = np.load(path, allow_pickle=False)
    want = npy_expected(kind, shape)
    assert a.dtype == want.dtype, (a.dtype, want.dtype)
    assert a.shape == want.shape, (a.shape, want.shape)
    assert a.flags['C_CONTIGUOUS']
    assert np.array_equal(a, want), 'values differ'
    print('ok', os.path.basename(path), a.dtype, a.shape)


def cmd_check_png(path, mode, w, h):
    im = Image.open(path)
    im.load()
    assert im.format == 'PNG', im.format
    assert im.mode == mode, (im.mode, mode)
    assert im.size == (w, h), (im.size, (w, h))
    a = np.asarray(im).astype(np.int64)
    y, x = np.mgrid[0:h, 0:w]
    if mode == 'L':
        want = (x * 7 + y * 13) % 256
    else:
        want = np.stack([(x * 7 + y * 13 + c * 50) % 256 for c in range(3)], -1)
    assert np.array_equal(a, want), 'pixels differ'
    print('ok', im.mode, im.size)


def cmd_voc_palette(n):
    """get_palette(n) of the SCHP / LIP tools, written out from its definition."""
    pal = []
    for j in range(n):
        lab, i, c = j, 0, [0, 0, 0]
        while lab:
            c[0] |= ((lab >> 0) & 1) << (7 - i)
            c[1] |= ((lab >> 1) & 1) << (7 - i)
            c[2] |= ((lab >> 2) & 1) << (7 - i)
            i += 1
            lab >>= 3
        pal.append(c)
    print(json.dumps(pal))


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == 'pngs':
        cmd_pngs(args[0])
    elif cmd == 'exif':
        cmd_exif(args[0])
    elif cmd == 'jpegs':
        cmd_jpegs(args[0])
    elif cmd == 'multi':
        cmd_multi(args[0], args[1], args[2:])
    elif cmd == 'single':
        cmd_single(args[0], int(args[1]), int(args[2]), args[3:])
    elif cmd == 'check-npy':
        for i in range(0, len(args), 3):
            shape = tuple(int(v) for v in args[i + 2].split('x')) if args[i + 2] else ()
            cmd_check_npy(args[i], args[i + 1], shape)
    elif cmd == 'check-png':
        cmd_check_png(args[0], args[1], int(args[2]), int(args[3]))
    elif cmd == 'voc-palette':
        cmd_voc_palette(int(args[0]))
    elif cmd == 'shapes':
        ref = m2fp_ref()
        with open(args[0]) as f:
            for line in f:
                h, w, short, max_size = (int(v) for v in line.split())
                print('%d %d' % ref.get_preprocess_shape(h, w, short, max_size))
    elif cmd == 'textured':
        w, h, seed = int(args[1]), int(args[2]), int(args[3])
        Image.fromarray(textured_rgb(w, h, seed), 'RGB').save(args[0])
    else:
        raise SystemExit('unknown command ' + cmd + '\n' + __doc__)


if __name__ == '__main__':
    main(sys.argv)
