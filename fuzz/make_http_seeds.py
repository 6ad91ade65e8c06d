#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_http (fuzz/corpus/http/): raw HTTP/1.1 requests to `m2fp serve`.

Deterministic. Needs Pillow for the tiny photos: /usr/bin/python3 fuzz/make_http_seeds.py
Inputs starting with "FRAMED\\n" get their Content-Length fixed by the target; "JOBID" and
"CACHEDSHA" are replaced by the last job id and photo SHA-256 the server answered (fuzz_http.cpp).
"""
import io
import os
import sys

from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "http")


def photo(fmt, size=(8, 6)):
    img = Image.new("RGB", size)
    px = img.load()
    for y in range(size[1]):
        for x in range(size[0]):
            px[x, y] = (30 * x % 256, 40 * y % 256, 200 if y > size[1] // 2 else 20)
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


PNG, JPEG, BMP = photo("PNG"), photo("JPEG"), photo("BMP", (4, 3))
B = "m2fpfuzzboundary"


def multipart(fields, boundary=B):
    out = b""
    for name, value, filename in fields:
        out += b"--" + boundary.encode() + b"\r\n"
        out += b'Content-Disposition: form-data; name="' + name.encode() + b'"'
        if filename:
            out += b'; filename="' + filename.encode() + b'"\r\nContent-Type: application/octet-stream'
        out += b"\r\n\r\n" + value + b"\r\n"
    return out + b"--" + boundary.encode() + b"--\r\n"


def request(method, path, body=b"", headers=(), length=True):
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    for h in headers:
        head += h + "\r\n"
    if length and (body or method == "POST"):
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def chunked(body, size=7):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


MP = f"Content-Type: multipart/form-data; boundary={B}"
SEEDS = {
    "get_health": request("GET", "/health"),
    "get_metrics": request("GET", "/metrics"),
    "get_page_range": request("GET", "/app.js", headers=["Range: bytes=0-15,20-30"]),
    "get_index_head": request("HEAD", "/"),
    "predict_multipart_png": b"FRAMED\n" + request("POST", "/predict", multipart([("image", PNG, "p.png")]), [MP]),
    "predict_raw_png": request("POST", "/predict", PNG, ["Content-Type: image/png", "X-Request-Id: seed-1"]),
    "predict_raw_jpeg": request("POST", "/predict", JPEG, ["Content-Type: image/jpeg"]),
    "predict_raw_bmp": request("POST", "/predict", BMP, ["Content-Type: application/octet-stream"]),
    "predict_chunked_multipart": request("POST", "/predict", chunked(multipart([("image", JPEG, "p.jpg")])),
                                         [MP, "Transfer-Encoding: chunked"], length=False),
    "predict_expect_continue": request("POST", "/predict", PNG, ["Content-Type: image/png", "Expect: 100-continue"]),
    "predict_truncated_jpeg": request("POST", "/predict", JPEG[:len(JPEG) // 2], ["Content-Type: image/jpeg"]),
    "predict_text": request("POST", "/predict", b"hello, not a photo", ["Content-Type: text/plain"]),
    "predict_gif": request("POST", "/predict", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", ["Content-Type: image/gif"]),
    "predict_urlencoded": request("POST", "/predict", b"image=abc&k=2",
                                  ["Content-Type: application/x-www-form-urlencoded"]),
    "predict_no_image_field": b"FRAMED\n" + request("POST", "/predict", multipart([("photo", PNG, "p.png"),
                                                                                   ("k", b"3", None)]), [MP]),
    "predict_bad_boundary": request("POST", "/predict", multipart([("image", PNG, "p.png")], "other"), [MP]),
    "predict_oversize": request("POST", "/predict", b"\x89PNG\r\n\x1a\n" + b"\0" * 4200, ["Content-Type: image/png"]),
    "predict_no_length": request("POST", "/predict", headers=["Content-Type: image/png"], length=False),
    "predict_length_too_long": b"POST /predict HTTP/1.1\r\nContent-Length: 99999\r\nContent-Type: image/png\r\n\r\n"
                               + PNG,
    "recommend_multipart": b"FRAMED\n" + request(
        "POST", "/recommend", multipart([("image", PNG, "p.png"), ("style", b"formal", None),
                                         ("occasion", b"office", None), ("season", b"winter", None),
                                         ("k", b"2", None), ("max_price", b"150.5", None)]), [MP]),
    "recommend_query": request("POST", "/recommend?style=street&k=50&season=summer", JPEG,
                               ["Content-Type: image/jpeg"]),
    "recommend_cached_sha": request("POST", "/recommend?sha256=CACHEDSHA&style=casual&occasion=weekend",
                                    length=False),
    "recommend_bad_options": request("POST", "/recommend?style=gothic&k=-1&max_price=abc", PNG,
                                     ["Content-Type: image/png"]),
    "recommend_unknown_sha": request("POST", "/recommend?sha256=" + "ab" * 32, length=False),
    "jobs_then_get": request("POST", "/jobs?task=recommend&k=1", PNG, ["Content-Type: image/png"])
                     + request("GET", "/jobs/JOBID") + request("GET", "/jobs/JOBID"),
    "jobs_multipart_task": b"FRAMED\n" + request("POST", "/jobs", multipart([("task", b"predict", None),
                                                                           ("image", JPEG, "j.jpg")]), [MP]),
    "jobs_unknown": request("GET", "/jobs/0123456789abcdef0123456789abcdef"),
    "jobs_mask_options": request("POST", "/jobs?mask_format=rle&label_set=lip&masks_union=hair&mask_dilate=1", PNG,
                                 ["Content-Type: image/png"]) + request("GET", "/jobs/JOBID"),
    "batch_photo_and_text": b"FRAMED\n" + request("POST", "/batch", multipart([("image", PNG, "p.png"),
                                                                              ("image", b"not a photo", "t.txt"),
                                                                              ("mask_format", b"none", None)]), [MP]),
    "batch_too_many": b"FRAMED\n" + request("POST", "/batch", multipart([("image", BMP, "a.bmp")] * 3), [MP]),
    "predict_two_images": b"FRAMED\n" + request("POST", "/predict", multipart([("image", PNG, "p.png"),
                                                                             ("image", JPEG, "j.jpg")]), [MP]),
    "predict_options": request("POST", "/predict?short_edge=32&max_size=48&smooth_edges=on&refine=all"
                               "&mask_format=rle&label_set=atr&masks_union=upper_body,label:Hair%2BFace&mask_dilate=2",
                               JPEG, ["Content-Type: image/jpeg"]),
    "predict_bad_resize": request("POST", "/predict?short_edge=99999&max_size=-1&mask_dilate=1e3", PNG,
                                  ["Content-Type: image/png"]),
    "get_openapi": request("GET", "/openapi.json"),
    "pipelined_keepalive": request("GET", "/health") + request("POST", "/predict", BMP, ["Content-Type: image/bmp"])
                           + request("GET", "/metrics", headers=["Connection: close"]) + request("GET", "/health"),
    "other_post_no_length": request("POST", "/elsewhere", length=False),
    "delete_method": request("DELETE", "/jobs/abc"),
    "get_on_post_route": request("GET", "/predict", headers=["Origin: https://shop.example"]),
    "options_preflight": request("OPTIONS", "/recommend", headers=["Origin: https://shop.example",
                                                                   "Access-Control-Request-Method: POST"]),
    "trace_method": request("TRACE", "/health"),
    "bad_request_line": b"GARBAGE\r\n\r\n",
    "http10": b"GET /health HTTP/1.0\r\n\r\n",
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    total = 0
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        total += len(data)
    print(f"make_http_seeds: {len(SEEDS)} seeds, {total} bytes in {OUT}")


if __name__ == "__main__":
    sys.exit(main())
