"""Shared helpers of the service tests (tests/load, tests/faults, deploy/): photos and hostile uploads,
multipart bodies, raw HTTP exchanges, and `m2fp serve` as a child process with its memory read from /proc.

Standard library, plus Pillow for the photos (M2FP_PYTHON = /usr/bin/python3 has it).
"""
import http.client
import io
import os
import signal
import socket
import struct
import subprocess
import time
import uuid
import zlib

from PIL import Image, ImageDraw

BIN = os.environ.get("M2FP_BIN", "build/m2fp")
TESTDATA = os.environ.get("M2FP_TESTDATA", "build/testdata")
CIHP = os.path.join(TESTDATA, "cihp_synth.safetensors")
FAST = ["--short-edge", "64", "--max-size", "128"]


# ---- photos and hostile uploads ---------------------------------------------------------------------
def photo(seed=0, size=(96, 72), fmt="PNG"):
    """A small photo-like picture: background, a two-colour 'person' block, a stripe per bit of `seed`;
    distinct bytes (a distinct SHA-256, so a cache miss) for every (seed, size, fmt). Fast at any size."""
    w, h = size
    img = Image.new("RGB", size, ((40 + 17 * seed) % 200, (60 + 5 * seed) % 200, 120))
    d = ImageDraw.Draw(img)
    d.rectangle([w // 3, h // 5, 2 * w // 3, h // 2], fill=(200, 30, 40))
    d.rectangle([w // 3, h // 2, 2 * w // 3, h - 1], fill=(30, 50, 160))
    for bit in range(24):
        if seed >> bit & 1:
            d.line([(bit * w // 24, 0), (bit * w // 24, h // 6)], fill=(250, 250, 250))
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return buf.getvalue()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_header_png(width=100000, height=100000):
    """A valid-looking PNG whose header claims width x height (10 gigapixels): refused before decoding."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        png_chunk(b"IEND", b"")


def truncated_jpeg(seed=0):
    j = photo(seed, (160, 120), "JPEG")
    return j[: len(j) // 2]


# ---- HTTP ---------------------------------------------------------------------------------------------
def multipart(fields, boundary=None):
    """fields: [(name, bytes, filename or None)] -> (body, content type)."""
    boundary = boundary or "kit" + uuid.uuid4().hex
    out = io.BytesIO()
    for name, value, filename in fields:
        out.write(f"--{boundary}\r\n".encode())
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out.write(f"Content-Disposition: {disp}\r\n".encode())
        if filename:
            out.write(b"Content-Type: application/octet-stream\r\n")
        out.write(b"\r\n" + value + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def request(url, method="GET", path="/", body=None, headers=None, timeout=120, conn=None):
    """One exchange -> (status, headers dict (lower-case names), body bytes). `conn` (an open
    http.client.HTTPConnection) is reused when given (keep-alive)."""
    own = conn is None
    if own:
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        if own:
            conn.close()


def raw_exchange(port, data, timeout=30, read=True):
    """Sends raw bytes on a fresh connection; returns what came back until the server closed (or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


# ---- the server process -------------------------------------------------------------------------------
def proc_status(pid):
    """VmRSS, VmHWM (kB) and Threads of a process from /proc (None where unreadable)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
    except OSError:
        return None
    return out


def open_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


class Serve:
    """`m2fp serve` on a free port (its first stdout line names it); stderr goes to `log_path`."""

    def __init__(self, args, log_path, model=CIHP, cwd=None, env=None, port=0, start_timeout=300):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.cmd = [BIN, "serve", "--model", model, "--port", str(port)] + args
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self.log, cwd=cwd, env=env)
        deadline = time.time() + start_timeout
        line = b""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if line or self.proc.poll() is not None:
                break
        if b"listening on " not in line:
            self.proc.kill()
            self.proc.wait()
            self.log.close()
            raise AssertionError(f"m2fp serve did not start: stdout {line!r}, log: {self.log_text()[-2000:]}")
        self.url = line.decode().strip().split("listening on ")[1]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.pid = self.proc.pid

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def status(self):
        return proc_status(self.pid)

    def stop(self, sig=signal.SIGTERM, timeout=120):
        """Signals the server and waits: its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            if not self.log.closed:
                self.log.close()
                self.proc.stdout.close()
        return self.proc.returncode

    def close(self):
        """Stops it if it still runs (SIGTERM), else just closes its files (it was killed)."""
        if self.proc.poll() is None:
            self.stop()
        elif not self.log.closed:
            self.log.close()
            self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def metrics_total(url):
    """Sum of m2fp_http_requests_total over every route and code."""
    _, _, body = request(url, path="/metrics")
    total = 0
    for line in body.decode().splitlines():
        if line.startswith("m2fp_http_requests_total{"):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total
