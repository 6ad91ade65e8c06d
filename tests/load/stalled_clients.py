#!/usr/bin/env python3
"""Stalled clients against `m2fp serve` (issue 12): how long /health, /metrics and a real /predict take
while N connections sit open without finishing their requests.

    stalled_clients.py [--connections 200] [--addresses 10] [--same-address] [--health 20] [--metrics 5]
                       [--no-predict] [--check]

The server is started here (synthetic CIHP checkpoint: SYNTHETIC weights, the timings are of the
service, not of a real model; port 0, a temporary catalogue, --quiet). Then --connections raw sockets
connect and stall: half stop in the middle of their headers ("GET /health ... X-Slow: "), half after
complete headers in the middle of a body (POST /predict, Content-Length 1000, 4 bytes sent). They come
from --addresses loopback addresses 127.0.0.2 ... (any 127.x.y.z is local on Linux), so that the
per-client cap (--max-conns-per-client, 64) is not what protects the server; --same-address opens them
all from 127.0.0.1 instead (then the cap closes the oldest stalled ones to make room).

While they are open: --health GET /health (a fresh connection each, as a health checker does), 5 GET
/metrics and one POST /predict with a new photo (a parse by the engine) are timed, from 127.0.0.1.
Printed: the stalled connections the server reports open (m2fp_http_connections), then per request
kind the count, median and maximum seconds, and statuses; a baseline without stalled connections first.

--check asserts that every request was answered 200, /health and /metrics within the client's 10 s
socket timeout (/predict: 300 s) (under
cpp-httplib 0.11's own transport the server stalled about 36 s: its handler threads all blocked
reading), and that the server still reports the stalled connections open. Speeds are printed, never
asserted. M2FP_BIN (the m2fp binary) and M2FP_TESTDATA (synthetic checkpoints) as for tests/load.
"""
import argparse
import os
import re
import socket
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import service_kit as kit  # noqa: E402

TIMEOUT = 10          # /health, /metrics
PREDICT_TIMEOUT = 300  # a parse by the engine on a loaded machine


def timed(url, method="GET", path="/health", body=None, headers=None, timeout=TIMEOUT):
    t0 = time.perf_counter()
    try:
        status, _, data = kit.request(url, method=method, path=path, body=body, headers=headers, timeout=timeout)
    except (OSError, socket.timeout) as e:
        return None, time.perf_counter() - t0, str(e)
    return status, time.perf_counter() - t0, data


def open_stalled(port, n, addresses, same_address):
    socks = []
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1" if same_address else f"127.0.0.{2 + i % addresses}", 0))
        s.settimeout(TIMEOUT)
        s.connect(("127.0.0.1", port))
        if i % 2:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: stalled\r\nX-Slow: ")
        else:
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: stalled\r\nContent-Type: image/png\r\n"
                      b"Content-Length: 1000\r\n\r\n\x89PNG")
        socks.append(s)
    return socks


def open_connections(url):
    status, _, data = timed(url, path="/metrics")
    if status != 200:
        return -1
    m = re.search(rb"\nm2fp_http_connections (\d+)", data)
    return int(m.group(1)) if m else -1


def measure(url, n_health, n_metrics, predict, seed):
    rows = {}
    rows["GET /health"] = [timed(url) for _ in range(n_health)]
    rows["GET /metrics"] = [timed(url, path="/metrics") for _ in range(n_metrics)]
    if not predict:
        return rows
    body, ctype = kit.multipart([("image", kit.photo(seed), "photo.png")])
    rows["POST /predict (engine)"] = [timed(url, "POST", "/predict", body, {"Content-Type": ctype},
                                            timeout=PREDICT_TIMEOUT)]
    return rows


def report(title, rows):
    print(title)
    print(f"  {'request':<24} {'n':>3} {'median s':>9} {'max s':>8}  statuses")
    for name, results in rows.items():
        times = [t for _, t, _ in results]
        statuses = sorted({str(s) for s, _, _ in results})
        print(f"  {name:<24} {len(results):>3} {statistics.median(times):>9.4f} {max(times):>8.4f}  "
              f"{','.join(statuses)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=200)
    ap.add_argument("--addresses", type=int, default=10)
    ap.add_argument("--same-address", action="store_true")
    ap.add_argument("--health", type=int, default=20)
    ap.add_argument("--metrics", type=int, default=5)
    ap.add_argument("--no-predict", action="store_true", help="skip the /predict (e.g. against an old build)")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="m2fp_stalled_")
    failures = []
    with kit.Serve(kit.FAST + ["--quiet", "--catalog", os.path.join(tmp, "c.db")],
                   os.path.join(tmp, "serve.log")) as srv:
        print(f"m2fp serve {srv.url} (synthetic CIHP checkpoint: SYNTHETIC weights)")
        base = measure(srv.url, args.health, args.metrics, not args.no_predict, seed=101)
        report("baseline, no stalled connections:", base)
        socks = open_stalled(srv.port, args.connections, args.addresses, args.same_address)
        time.sleep(0.3)
        n_open = open_connections(srv.url)
        where = "127.0.0.1" if args.same_address else f"{args.addresses} addresses"
        print(f"{args.connections} stalled connections opened from {where}; the server reports "
              f"m2fp_http_connections {n_open}")
        rows = measure(srv.url, args.health, args.metrics, not args.no_predict, seed=102)
        report(f"with {args.connections} stalled connections:", rows)
        n_after = open_connections(srv.url)
        for s in socks:
            s.close()
        for name, results in list(base.items()) + list(rows.items()):
            for status, t, data in results:
                if status != 200:
                    failures.append(f"{name}: status {status} after {t:.2f} s: {str(data)[:200]}")
        if not args.same_address and n_after < args.connections:
            failures.append(f"only {n_after} connections open while {args.connections} stalled ones should be")
        if not srv.alive():
            failures.append("the server died")
    for f in failures:
        print("FAIL:", f)
    if args.check and failures:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
