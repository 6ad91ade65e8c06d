#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/). Deterministic; the files are
committed, so this only needs re-running to change them. Images need Pillow (/usr/bin/python3).

    /usr/bin/python3 fuzz/make_seeds.py

corpus/image        small PNG (grey, RGB, RGBA, palette, 16-bit, interlaced, eXIf, each row filter),
                    JPEG (baseline, progressive, grey, CMYK-free 4:2:0, EXIF orientation 6 and 3),
                    BMP (24/8/32-bit, top-down, OS/2 header, RLE8)
corpus/exif         bare TIFF blocks: II and MM, orientation inline / as LONG out of line, IFD chains
corpus/safetensors  small valid files: tensors of each dtype, metadata, an m2fp.config, empties
corpus/config       the CIHP and LIP configuration.json and their bare "model" sections
"""
import io
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- EXIF (TIFF) blocks -------------------------------------------------------------------------

def tiff(orientation, le=True, typ=3, count=1, out_of_line=False, ifd1=False, loop=False):
    e = "<" if le else ">"
    head = (b"II" if le else b"MM") + struct.pack(e + "HI", 42, 8)
    n = 1
    ifd = struct.pack(e + "H", n)
    next_off = 8 + 2 + 12 * n + 4
    extra = b""
    if out_of_line:
        value = struct.pack(e + "I", next_off)
        extra = struct.pack(e + "I", orientation) * count
        next_off += len(extra)
    elif typ == 3:
        value = struct.pack(e + "HH", orientation, 0)
    elif typ == 4:
        value = struct.pack(e + "I", orientation)
    else:
        value = bytes([orientation, 0, 0, 0])
    ifd += struct.pack(e + "HHI", 0x0112, typ, count) + value
    link = 0
    tail = b""
    if ifd1 or loop:
        link = next_off
        tail = struct.pack(e + "H", 1) + struct.pack(e + "HHI", 0x0100, 3, 1) + struct.pack(e + "HH", 16, 0)
        tail += struct.pack(e + "I", 8 if loop else 0)
    return head + ifd + struct.pack(e + "I", link) + extra + tail


def exif_seeds():
    put("exif", "le_orient6", tiff(6))
    put("exif", "be_orient3", tiff(3, le=False))
    put("exif", "le_long_outofline", tiff(8, typ=4, count=2, out_of_line=True))
    put("exif", "le_byte_orient5", tiff(5, typ=1))
    put("exif", "le_ifd1", tiff(2, ifd1=True))
    put("exif", "be_loop", tiff(7, le=False, loop=True))
    return tiff(6), tiff(3, le=False)


# ---- images -------------------------------------------------------------------------------------

def adam7_png(im):
    """An interlaced (Adam7) 8-bit RGB PNG of a PIL image, filter type 0 on every row."""
    import zlib
    w, h = im.size
    px = im.load()
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        for y in range(y0, h, dy):
            row = b"".join(bytes(px[x, y]) for x in range(x0, w, dx))
            if row:
                raw += b"\0" + row

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def filtered_png(im, color):
    """An 8-bit PNG (colour type 2 RGB or 6 RGBA) whose rows cycle through the five filter types,
    its zlib stream split into IDAT chunks of 50 bytes (the engine's own PNG path reads these)."""
    import zlib
    w, h = im.size
    n = 4 if color == 6 else 3
    px = [bytes(im.convert("RGBA" if n == 4 else "RGB").tobytes()[y * w * n:(y + 1) * w * n]) for y in range(h)]

    def paeth(a, b, c):
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        return a if pa <= pb and pa <= pc else b if pb <= pc else c
    raw = b""
    for y in range(h):
        f = y % 5
        out = bytearray([f])
        for i, x in enumerate(px[y]):
            a = px[y][i - n] if i >= n else 0
            b = px[y - 1][i] if y else 0
            c = px[y - 1][i - n] if y and i >= n else 0
            pred = [0, a, b, (a + b) >> 1, paeth(a, b, c)][f]
            out.append((x - pred) & 255)
        raw += bytes(out)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    z = zlib.compress(raw, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
            + b"".join(chunk(b"IDAT", z[i:i + 50]) for i in range(0, len(z), 50)) + chunk(b"IEND", b""))


def image_seeds(exif6, exif3):
    from PIL import Image
    def picture(w, h, mode="RGB"):
        im = Image.new("RGB", (w, h))
        px = im.load()
        for y in range(h):
            for x in range(w):
                px[x, y] = ((37 * x) % 256, (59 * y) % 256, (11 * (x + y)) % 256)
        return im.convert(mode) if mode != "RGB" else im

    def save(name, im, fmt, **kw):
        b = io.BytesIO()
        im.save(b, fmt, **kw)
        put("image", name, b.getvalue())
        return b.getvalue()

    save("rgb_7x5.png", picture(7, 5), "PNG")
    save("grey_9x4.png", picture(9, 4, "L"), "PNG")
    save("rgba_5x6.png", picture(5, 6, "RGBA"), "PNG")
    save("palette_6x6.png", picture(6, 6).quantize(8), "PNG")
    save("bilevel_13x3.png", picture(13, 3, "1"), "PNG")
    save("grey16_4x4.png", picture(4, 4, "L").convert("I;16"), "PNG")
    put("image", "adam7_8x8.png", adam7_png(picture(8, 8)))  # Pillow cannot write Adam7
    put("image", "filters_rgba_11x10.png", filtered_png(picture(11, 10), 6))  # every row filter
    save("exif6_6x4.png", picture(6, 4), "PNG", exif=b"Exif\x00\x00" + exif6)
    save("q50_16x9.jpg", picture(16, 9), "JPEG", quality=50)
    save("progressive_17x11.jpg", picture(17, 11), "JPEG", quality=60, progressive=True)
    save("grey_8x8.jpg", picture(8, 8, "L"), "JPEG", quality=70)
    save("sub420_9x7.jpg", picture(9, 7), "JPEG", quality=40, subsampling=2)
    save("exif6_10x6.jpg", picture(10, 6), "JPEG", quality=50, exif=b"Exif\x00\x00" + exif6)
    save("exif3_be_6x5.jpg", picture(6, 5), "JPEG", quality=50, exif=b"Exif\x00\x00" + exif3)
    save("rgb24_5x3.bmp", picture(5, 3), "BMP")
    save("pal8_7x4.bmp", picture(7, 4).quantize(16), "BMP")
    save("grey_4x4.bmp", picture(4, 4, "L"), "BMP")
    save("rgba32_3x3.bmp", picture(3, 3, "RGBA"), "BMP")
    # top-down 24-bit: negative height
    b = bytearray(save("rgb24_4x2.bmp", picture(4, 2), "BMP"))  # bottom-up, as usual
    (h,) = struct.unpack_from("<i", b, 22)
    rows = [b[54 + r * 12:54 + (r + 1) * 12] for r in range(h)]
    b[22:26] = struct.pack("<i", -h)
    b[54:54 + 12 * h] = b"".join(reversed(rows))
    put("image", "topdown_4x2.bmp", bytes(b))
    # OS/2 BITMAPCOREHEADER (12 bytes), 24-bit, 2x2
    px = bytes([10, 20, 30, 40, 50, 60]) + b"\0\0" + bytes([70, 80, 90, 100, 110, 120]) + b"\0\0"
    core = struct.pack("<IHHHH", 12, 2, 2, 1, 24)
    put("image", "os2_2x2.bmp", b"BM" + struct.pack("<IHHI", 14 + 12 + len(px), 0, 0, 26) + core + px)
    # RLE8, 4x2: two rows of runs, end of bitmap
    pal = b"".join(bytes([i * 40, 255 - i * 40, i * 20, 0]) for i in range(4))
    rle = bytes([4, 1, 0, 0, 2, 2, 2, 3, 0, 0, 0, 1])
    info = struct.pack("<IiiHHIIiiII", 40, 4, 2, 1, 8, 1, len(rle), 2835, 2835, 4, 0)
    off = 14 + 40 + len(pal)
    put("image", "rle8_4x2.bmp", b"BM" + struct.pack("<IHHI", off + len(rle), 0, 0, off) + info + pal + rle)


# ---- safetensors and configurations -------------------------------------------------------------

def st(header, data):
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds():
    def e(dtype, shape, b, n):
        return {"dtype": dtype, "shape": shape, "data_offsets": [b, b + n]}
    h = {"__metadata__": {"format": "pt", "note": "small"},
         "zeta": e("F32", [2, 3], 0, 24), "alpha": e("I64", [], 24, 8),
         "empty": e("F16", [0, 4], 32, 0), "mid": e("U8", [5], 32, 5)}
    data = struct.pack("<6f", *[0.5 * i for i in range(6)]) + struct.pack("<q", 42) + bytes([1, 2, 3, 4, 5])
    put("safetensors", "small_valid", st(h, data))
    types = [("F64", 8), ("F32", 4), ("F16", 2), ("BF16", 2), ("I64", 8), ("I32", 4), ("I16", 2), ("I8", 1),
             ("U8", 1), ("BOOL", 1)]
    h, pos = {}, 0
    for name, size in types:
        h["t_" + name.lower()] = e(name, [2], pos, 2 * size)
        pos += 2 * size
    put("safetensors", "every_dtype", st(h, bytes(range(pos))))
    put("safetensors", "empty_header", st({}, b""))
    put("safetensors", "metadata_only", st({"__metadata__": {"a": "b", "c": ""}}, b""))
    # an m2fp file: configuration metadata and a few of the tensors the network binds
    with open(os.path.join(REPO, "tools", "configs", "cihp_configuration.json")) as f:
        cfg = json.load(f)["model"]
    meta = {"format": "pt", "m2fp.config": json.dumps(cfg, separators=(",", ":")),
            "m2fp.synthetic": "true", "m2fp.source": "seed", "m2fp.converter": "seed"}
    h = {"__metadata__": meta,
         "backbone.stem.conv1.norm.num_batches_tracked": e("I64", [], 0, 8),
         "sem_seg_head.predictor.level_embed.weight": e("F32", [3, 256], 8, 3 * 256 * 4),
         "backbone.stem.conv1.norm.bias": e("F32", [64], 8 + 3072, 256)}
    put("safetensors", "m2fp_cihp_partial", st(h, bytes(8 + 3072 + 256)))


def config_seeds():
    for variant in ("cihp", "lip"):
        with open(os.path.join(REPO, "tools", "configs", "%s_configuration.json" % variant)) as f:
            text = f.read()
        put("config", "%s_configuration.json" % variant, text)
        put("config", "%s_model.json" % variant, json.dumps(json.loads(text)["model"], indent=1))


def main():
    exif6, exif3 = exif_seeds()
    safetensors_seeds()
    config_seeds()
    image_seeds(exif6, exif3)
    total = 0
    for root, _, files in os.walk(CORPUS):
        for n in files:
            total += os.path.getsize(os.path.join(root, n))
    print("corpora written under %s (%d bytes in all)" % (CORPUS, total))


if __name__ == "__main__":
    sys.exit(main())
