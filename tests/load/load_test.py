#!/usr/bin/env python3
"""Load test of `m2fp serve` on loopback: 1, 4 and 16 concurrent clients sending a mix of good and hostile
uploads, every request with its own X-Request-Id.

    load_test.py [--levels 1,4,16] [--requests 40,80,160] [--max-seconds 240] [--workers 1] [--queue 8]
                 [--short-edge 64] [--memory] [--check] [--json FILE]

The server is started here (port 0, a temporary catalogue, access log kept). Each level runs C client
threads that together send the given number of requests (a fresh connection each), stopping early at
--max-seconds. The mix, cycled per client from a fixed schedule:

  good   new photos (PNG 96x72 multipart, JPEG 320x240 raw body, JPEG 800x600 multipart: a distinct
         SHA-256 each, so each goes through the queue and the engine), repeated photos (3 fixed ones: the
         result cache), /recommend on a repeated photo                      -> 200 (or 429 / 504)
  hostile empty body (400), text (415), truncated JPEG (400, or 429 / 504: its header is valid, so it
         waits in the queue for a worker to find the truncation), PNG whose header claims 100000 x 100000
         (400, refused before decoding), 3 MB over the 2 MB limit (413), multipart whose boundary
         differs from the header's (400)

Checked (with --check, as assertions; always printed):
  - every request got exactly one answer, with its own X-Request-Id echoed, and the expected status
    (good ones may also be 429 queue full or 504 timeout: counted, not errors);
  - no request lost or answered twice: each id appears exactly once in the server's access log, and
    the server's m2fp_http_requests_total grew by exactly the number of requests sent;
  - memory stays bounded: the server's peak RSS (VmHWM) under 1.5 GB; the server is still healthy after.
--memory also compares the peak RSS with --workers 1 and --workers 2 (one shared copy of the weights:
the second worker adds activations, not a model).

Per level it prints: requests, seconds, requests/s, p50 and p99 latency (all answers, and the engine-
bound 200s alone), 429s, errors, and the server's peak RSS during the level; then the load average.
"""
import argparse
import collections
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import service_kit as kit  # noqa: E402

LIMIT_MB = 2

SCHEDULE = [
    "new_png", "repeat", "empty", "new_jpeg", "text", "recommend", "new_large", "truncated_jpeg",
    "repeat", "huge_header_png", "new_png", "oversize", "malformed_multipart", "repeat", "new_jpeg",
]
EXPECTED = {
    "new_png": 200, "new_jpeg": 200, "new_large": 200, "repeat": 200, "recommend": 200,
    "empty": 400, "text": 415, "truncated_jpeg": 400, "huge_header_png": 400, "oversize": 413,
    "malformed_multipart": 400,
}
ENGINE_KINDS = {"new_png", "new_jpeg", "new_large", "repeat", "recommend"}
# Kinds that take a place in the engine's queue: the good ones, and the truncated JPEG (its header is
# valid, only decoding it in a worker finds the missing data), so a full queue may answer them 429.
QUEUED_KINDS = ENGINE_KINDS | {"truncated_jpeg"}


class Payloads:
    """Request bodies; new photos get distinct seeds from a shared counter."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seed = 1000
        self.repeats = [kit.photo(s, (128, 96)) for s in (1, 2, 3)]
        self.hostile = {
            "empty": (b"", "image/png"),
            "text": (b"this is not a photo, just some text\n" * 20, "text/plain"),
            "truncated_jpeg": (kit.truncated_jpeg(5), "image/jpeg"),
            "huge_header_png": (kit.huge_header_png(), "image/png"),
            "oversize": (b"\xff\xd8\xff\xe0" + os.urandom(1024) * (3 * 1024 + 10), "image/jpeg"),
        }
        body, ctype = kit.multipart([("image", self.repeats[0], "p.png")])
        self.hostile["malformed_multipart"] = (body, ctype.replace("boundary=", "boundary=not-the-one-"))

    def next_seed(self):
        with self.lock:
            self.seed += 1
            return self.seed

    def make(self, kind, i):
        """(method, path, body, headers) for one request of `kind`."""
        if kind == "new_png":
            body, ctype = kit.multipart([("image", kit.photo(self.next_seed(), (96, 72)), "p.png")])
            return "POST", "/predict", body, {"Content-Type": ctype}
        if kind == "new_jpeg":
            return "POST", "/predict", kit.photo(self.next_seed(), (320, 240), "JPEG"), {"Content-Type": "image/jpeg"}
        if kind == "new_large":
            body, ctype = kit.multipart([("image", kit.photo(self.next_seed(), (800, 600), "JPEG"), "p.jpg")])
            return "POST", "/predict", body, {"Content-Type": ctype}
        if kind == "repeat":
            return "POST", "/predict", self.repeats[i % 3], {"Content-Type": "image/png"}
        if kind == "recommend":
            body, ctype = kit.multipart([("image", self.repeats[i % 3], "p.png"), ("style", b"casual", None),
                                         ("k", b"2", None)])
            return "POST", "/recommend", body, {"Content-Type": ctype}
        body, ctype = self.hostile[kind]
        return "POST", "/predict", body, {"Content-Type": ctype}


def listen_overflows():
    """The kernel's count of connections dropped because an accept queue was full (all sockets)."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
        for names, values in zip(lines[::2], lines[1::2]):
            if names.startswith("TcpExt:"):
                return int(dict(zip(names.split()[1:], values.split()[1:]))["ListenOverflows"])
    except (OSError, KeyError, ValueError):
        pass
    return -1


def percentile(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(q / 100 * (len(xs) - 1)))))
    return xs[k]


class Sampler(threading.Thread):
    """Samples the server's VmRSS every 50 ms; `peak()` since the last reset."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.max_kb, self.stop_flag = pid, 0, False

    def run(self):
        while not self.stop_flag:
            st = kit.proc_status(self.pid)
            if st:
                self.max_kb = max(self.max_kb, st["VmRSS"])
            time.sleep(0.05)

    def reset(self):
        self.max_kb = 0


def run_level(server, payloads, clients, total, max_seconds, level_tag):
    results = []  # (kind, status or None, latency s, id ok, x-cache, error)
    lock = threading.Lock()
    counter = iter(range(total))
    counter_lock = threading.Lock()
    t_end = time.time() + max_seconds

    def client(c):
        i = 0
        while time.time() < t_end:
            with counter_lock:
                n = next(counter, None)
            if n is None:
                return
            kind = SCHEDULE[(c * 7 + i) % len(SCHEDULE)]
            method, path, body, headers = payloads.make(kind, n)
            rid = f"{level_tag}-c{c}-r{i}"
            headers = dict(headers, **{"X-Request-Id": rid, "Connection": "close"})
            t0 = time.perf_counter()
            try:
                status, h, data = kit.request(server.url, method, path, body, headers, timeout=300)
                err = None
            except Exception as e:  # a lost request: counted as an error
                status, h, data, err = None, {}, b"", f"{type(e).__name__}: {e}"
            dt = time.perf_counter() - t0
            with lock:
                results.append((kind, status, dt, h.get("x-request-id") == rid, h.get("x-cache"), err, rid))
            i += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - t0


def summarise(results, seconds):
    lat = [r[2] for r in results if r[1] is not None]
    engine = [r[2] for r in results if r[1] == 200 and r[0] in ENGINE_KINDS and r[4] == "miss"]
    by_status = collections.Counter(r[1] for r in results)
    errors = []
    for kind, status, _, id_ok, _, err, rid in results:
        if err:
            errors.append(f"{rid} {kind}: {err}")
        elif not id_ok:
            errors.append(f"{rid} {kind}: X-Request-Id not echoed")
        elif status != EXPECTED[kind] and not (kind in QUEUED_KINDS and status in (429, 504)):
            errors.append(f"{rid} {kind}: status {status}, expected {EXPECTED[kind]}")
    return {
        "requests": len(results), "seconds": round(seconds, 2),
        "rps": round(len(results) / seconds, 2) if seconds > 0 else 0,
        "p50_ms": round(1000 * percentile(lat, 50), 1), "p99_ms": round(1000 * percentile(lat, 99), 1),
        "engine_p50_ms": round(1000 * percentile(engine, 50), 1), "engine_p99_ms": round(1000 * percentile(engine, 99), 1),
        "engine_parses": len(engine),
        "cache_hits": sum(1 for r in results if r[4] == "hit"),
        "status": {str(k): v for k, v in sorted(by_status.items(), key=lambda kv: str(kv[0]))},
        "429": by_status.get(429, 0), "504": by_status.get(504, 0),
        "errors": len(errors), "error_list": errors[:20],
    }


def memory_by_workers(args, tmp):
    """Peak RSS with --workers 1 and 2, each parsing `2 * workers` new photos at once (short edge 320)."""
    out = {}
    for w in (1, 2):
        log = os.path.join(tmp, f"mem_w{w}.log")
        with kit.Serve(["--quiet", "--workers", str(w), "--threads", "2", "--short-edge", "320", "--max-size", "640",
                        "--catalog", os.path.join(tmp, f"mem{w}.db")], log) as s:
            idle = s.status()
            payloads = Payloads()

            def one(k):
                kit.request(s.url, "POST", "/predict", kit.photo(50000 + 10 * w + k, (480, 360), "JPEG"),
                            {"Content-Type": "image/jpeg"}, timeout=600)

            ts = [threading.Thread(target=one, args=(k,)) for k in range(2 * w)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            st = s.status()
            del payloads
            out[w] = {"idle_rss_mb": round(idle["VmRSS"] / 1024, 1), "peak_rss_mb": round(st["VmHWM"] / 1024, 1),
                      "threads": st["Threads"]}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", default="1,4,16")
    ap.add_argument("--requests", default="40,80,160", help="requests per level (all clients together)")
    ap.add_argument("--max-seconds", type=float, default=240, help="per level: no new request after this")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--queue", type=int, default=8)
    ap.add_argument("--short-edge", type=int, default=64)
    ap.add_argument("--memory", action="store_true", help="also compare peak RSS with --workers 1 and 2")
    ap.add_argument("--check", action="store_true", help="exit 1 when an invariant fails")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    totals = [int(x) for x in args.requests.split(",")]
    if len(totals) != len(levels):
        ap.error("--requests needs one number per level")
    for f in (kit.BIN, kit.CIHP):
        if not os.path.exists(f):
            sys.exit(f"load_test: {f} missing (M2FP_BIN, M2FP_TESTDATA)")

    failures = []
    report = {"levels": [], "machine": {"cpus": os.cpu_count(), "loadavg_before": os.getloadavg()}}
    overflows_before = listen_overflows()
    with tempfile.TemporaryDirectory(prefix="m2fp_load_") as tmp:
        log = os.path.join(tmp, "serve.log")
        serve_args = ["--workers", str(args.workers), "--threads", str(args.threads), "--queue", str(args.queue),
                      "--short-edge", str(args.short_edge), "--max-size", str(2 * args.short_edge),
                      "--max-upload-mb", str(LIMIT_MB), "--timeout", "120", "--catalog", os.path.join(tmp, "c.db")]
        payloads = Payloads()
        with kit.Serve(serve_args, log) as server:
            report["server"] = {"args": serve_args, "idle": server.status()}
            sampler = Sampler(server.pid)
            sampler.start()
            print(f"load_test: server pid {server.pid} at {server.url}: {' '.join(serve_args)}; "
                  f"idle RSS {server.status()['VmRSS'] / 1024:.0f} MB; {os.cpu_count()} CPUs, "
                  f"load average {os.getloadavg()[0]:.2f}", flush=True)
            all_ids = []
            for clients, total in zip(levels, totals):
                # the previous /metrics request is counted just after its answer went out: let it land
                time.sleep(0.3)
                before = kit.metrics_total(server.url)
                sampler.reset()
                results, seconds = run_level(server, payloads, clients, total, args.max_seconds, f"L{clients}")
                time.sleep(0.3)  # the access logger counts an answer just after writing it
                after = kit.metrics_total(server.url)
                s = summarise(results, seconds)
                s["clients"] = clients
                s["peak_rss_mb"] = round(sampler.max_kb / 1024, 1)
                # the /metrics request that read `after` is counted once its answer is written: not in `after`
                s["server_counted"] = after - before - 1
                all_ids += [r[6] for r in results]
                report["levels"].append(s)
                print(f"  {clients:2d} clients: {s['requests']} requests in {s['seconds']} s = {s['rps']} req/s; "
                      f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms (engine 200s: {s['engine_parses']}, p50 "
                      f"{s['engine_p50_ms']} ms, p99 {s['engine_p99_ms']} ms); cache hits {s['cache_hits']}; "
                      f"429s {s['429']}, 504s {s['504']}, errors {s['errors']}; peak RSS {s['peak_rss_mb']} MB; "
                      f"status {s['status']}; server counted {s['server_counted']}", flush=True)
                for e in s["error_list"]:
                    print("    error:", e)
                if s["errors"]:
                    failures.append(f"{clients} clients: {s['errors']} errors")
                if s["server_counted"] != s["requests"]:
                    failures.append(f"{clients} clients: the server counted {s['server_counted']} requests, "
                                    f"the clients sent {s['requests']}")
            ok_health = kit.request(server.url, path="/health")[0] == 200
            final = server.status()
            sampler.stop_flag = True
            rc = server.stop()
        report["server"]["final"] = final
        report["listen_overflows"] = listen_overflows() - overflows_before
        report["server"]["exit"] = rc
        # the access log: every id exactly once
        counts = collections.Counter()
        with open(log, errors="replace") as f:
            for line in f:
                if " id=" in line:
                    counts[line.rsplit(" id=", 1)[1].strip()] += 1
        missing = [i for i in all_ids if counts[i] == 0]
        twice = [i for i, n in counts.items() if n > 1]
        report["access_log"] = {"ids": len(all_ids), "missing": missing[:20], "twice": twice[:20]}
        print(f"  access log: {len(all_ids)} request ids, {len(missing)} missing, {len(twice)} more than once; "
              f"server peak RSS (VmHWM) {final['VmHWM'] / 1024:.0f} MB, {final['Threads']} threads at the end; "
              f"healthy after: {ok_health}; exit status {rc}; accept-queue overflows (kernel) "
              f"{report['listen_overflows']}")
        if missing or twice:
            failures.append(f"access log: missing {missing[:5]}, twice {twice[:5]}")
        if final["VmHWM"] > 1536 * 1024:
            failures.append(f"peak RSS {final['VmHWM'] / 1024:.0f} MB > 1536 MB")
        if not ok_health or rc != 0:
            failures.append(f"healthy after: {ok_health}, exit status {rc}")
        if args.memory:
            mem = memory_by_workers(args, tmp)
            report["memory_by_workers"] = mem
            ratio = mem[2]["peak_rss_mb"] / mem[1]["peak_rss_mb"]
            print(f"  memory: --workers 1: idle {mem[1]['idle_rss_mb']} MB, peak {mem[1]['peak_rss_mb']} MB "
                  f"(2 photos at once); --workers 2: idle {mem[2]['idle_rss_mb']} MB, peak {mem[2]['peak_rss_mb']} MB "
                  f"(4 photos at once); ratio {ratio:.2f} (one copy of the weights: well under 2)")
            if ratio > 1.6:
                failures.append(f"--workers 2 peak RSS {ratio:.2f}x --workers 1")
    report["machine"]["loadavg_after"] = os.getloadavg()
    print(f"load_test: load average before {report['machine']['loadavg_before'][0]:.2f}, "
          f"after {report['machine']['loadavg_after'][0]:.2f} ({os.cpu_count()} CPUs)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if failures:
        print("load_test: FAILED:\n  " + "\n  ".join(failures))
        return 1 if args.check else 0
    print("load_test: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
