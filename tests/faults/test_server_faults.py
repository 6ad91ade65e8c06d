"""Faults around a running `m2fp serve`: what the server does, checked.

  - the model file truncated, rewritten, replaced or deleted while serving: the weights were copied
    into memory at load, so it keeps serving; GET /health `model_file` says the file changed (and the
    log says it once);
  - clients that disconnect mid-upload, while their photo waits for the engine, or mid-answer: the
    server keeps serving, no handler thread or descriptor leaks, and a photo whose client left is
    still parsed and cached (its work is not lost);
  - SIGTERM during a request: the running photo is finished and answered, the queued one answered
    503, the process exits 0; the catalogue it wrote is intact, nothing half-written is left;
  - the catalogue's folder not writable (read-only tmpfs), not a folder, or full (tiny tmpfs): a clear
    message and exit 1, no half-made database left; an existing catalogue on a read-only file system
    is served; a catalogue file corrupted while serving: the items read before are kept;
  - hostile request lines that once ended the process (fuzz_http's findings): answered with JSON errors;
  - 64 clients connecting at once: all answered, no handshake dropped (the listen backlog).

Run by CTest (test `server_faults`) with M2FP_BIN and M2FP_TESTDATA. Tests that mount a tmpfs need root
and skip with a message where mounting is not allowed.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "load"))
import service_kit as kit  # noqa: E402


def can_mount():
    return os.geteuid() == 0 and shutil.which("mount") is not None


def listen_overflows():
    """The kernel's count of handshakes dropped because an accept queue was full (every socket)."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split()[1:], values.split()[1:]))["ListenOverflows"])
    return 0


def wait_until(pred, timeout=60, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def health(url):
    code, _, body = kit.request(url, path="/health")
    assert code == 200, body
    return json.loads(body)


def predict(url, data, extra_headers=None, timeout=600):
    headers = {"Content-Type": "application/octet-stream"}
    headers.update(extra_headers or {})
    return kit.request(url, "POST", "/predict", data, headers, timeout=timeout)


@unittest.skipUnless(os.path.exists(kit.BIN), f"{kit.BIN} not built")
class ServerFaults(unittest.TestCase):
    def setUp(self):
        self.assertTrue(os.path.exists(kit.CIHP), f"{kit.CIHP} missing: run the CTest fixture fixture_synthetic_cihp")
        self.tmp = tempfile.mkdtemp(prefix="m2fp_faults_")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def serve(self, extra=(), model=kit.CIHP, catalog=None, name="serve"):
        args = ["--catalog", catalog or os.path.join(self.tmp, "c.db")] + kit.FAST + list(extra)
        s = kit.Serve(args, os.path.join(self.tmp, name + ".log"), model=model)
        self.addCleanup(s.close)
        return s

    def mount_tmpfs(self, path, options):
        if not can_mount():
            self.skipTest("mounting a tmpfs needs root")
        os.makedirs(path, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: " + r.stderr.strip())
        self.addCleanup(lambda: subprocess.run(["umount", "-l", path]))

    # ---- the model file ---------------------------------------------------------------------------
    def test_model_file_changed_while_serving(self):
        model = os.path.join(self.tmp, "model.safetensors")
        shutil.copyfile(kit.CIHP, model)
        s = self.serve(model=model)
        self.assertEqual(predict(s.url, kit.photo(1))[0], 200)
        mf = health(s.url)["model_file"]
        self.assertEqual(mf["state"], "unchanged", mf)
        self.assertEqual(mf["loaded_bytes"], os.path.getsize(kit.CIHP))

        # truncated in place (what a half-finished copy over it looks like)
        os.truncate(model, 1000)
        code, _, body = predict(s.url, kit.photo(2))
        self.assertEqual(code, 200, body[:300])
        mf = health(s.url)["model_file"]
        self.assertEqual(mf["state"], "changed", mf)
        self.assertIn("keeps serving the weights it loaded", mf["note"])
        self.assertIn("1000 now", mf["note"])
        print(f"\n  truncated: /health model_file = {mf}")

        # replaced by another file (rename over it, as a deployment would)
        other = os.path.join(self.tmp, "other.safetensors")
        with open(other, "wb") as f:
            f.write(b"not a model at all")
        os.rename(other, model)
        self.assertEqual(predict(s.url, kit.photo(3))[0], 200)
        mf = health(s.url)["model_file"]
        self.assertEqual(mf["state"], "changed", mf)

        # deleted
        os.remove(model)
        self.assertEqual(predict(s.url, kit.photo(4))[0], 200)
        mf = health(s.url)["model_file"]
        self.assertEqual(mf["state"], "missing", mf)
        self.assertEqual(health(s.url)["status"], "ok", "serving from memory is not a failure")
        self.assertEqual(s.stop(), 0)
        log = s.log_text()
        self.assertEqual(log.count("keeps serving the weights it loaded"), 1, "said once in the log")

    # ---- clients that go away ----------------------------------------------------------------------
    def test_client_disconnects_mid_upload(self):
        s = self.serve()
        self.assertEqual(predict(s.url, kit.photo(10))[0], 200)  # engine threads started
        time.sleep(0.5)
        base = s.status()["Threads"], kit.open_fds(s.pid)
        body, ctype = kit.multipart([("image", kit.photo(11, (320, 240), "JPEG"), "p.jpg")])
        head = (f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body) + 100000}\r\n\r\n").encode()
        for i in range(20):  # body promised, a part sent, then the connection closed
            kit.raw_exchange(s.port, head + body[: 200 + 37 * i], read=False)
        raw = b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: image/png\r\n\r\n4000\r\n"
        for i in range(5):  # chunked, cut inside a chunk
            kit.raw_exchange(s.port, raw + b"\x89PNG" + b"\0" * 100, read=False)
        ok = wait_until(lambda: kit.open_fds(s.pid) <= base[1] and s.status()["Threads"] <= base[0], 30)
        after = s.status()["Threads"], kit.open_fds(s.pid)
        print(f"\n  25 uploads cut off: threads {base[0]} -> {after[0]}, open descriptors {base[1]} -> {after[1]}")
        self.assertTrue(ok, f"threads/descriptors before {base}, after {after}")
        self.assertEqual(predict(s.url, kit.photo(12))[0], 200)
        self.assertEqual(health(s.url)["queue"]["depth"], 0, "nothing was queued for the cut-off uploads")
        self.assertTrue(s.alive())

    def test_client_leaves_while_its_photo_is_parsed(self):
        s = self.serve(["--short-edge", "160", "--max-size", "320"])
        data = kit.photo(20, (320, 240), "JPEG")
        req = (f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n"
               f"X-Request-Id: gone-1\r\n\r\n").encode() + data
        kit.raw_exchange(s.port, req, read=False)  # sent whole, then the client is gone
        # the parse goes on; its result is cached and counted once the (unread) answer is written
        counted = wait_until(lambda: b'm2fp_http_requests_total{endpoint="/predict",code="200"} 1'
                             in kit.request(s.url, path="/metrics")[2], 300)
        self.assertTrue(counted, "the abandoned request was answered (into a closed socket) and counted")
        code, h, body = predict(s.url, data)
        self.assertEqual(code, 200)
        self.assertEqual(h.get("x-cache"), "hit", "the work of the client that left was not lost")
        self.assertEqual(s.log_text().count("id=gone-1"), 1, "answered once, in the access log")

    def test_client_disconnects_mid_answer(self):
        s = self.serve()
        big = kit.photo(30, (1024, 768), "JPEG")
        code, _, body = predict(s.url, big)
        self.assertEqual(code, 200)
        self.assertGreater(len(body), 200000, "an answer bigger than the socket buffers")
        time.sleep(0.5)
        base = s.status()["Threads"], kit.open_fds(s.pid)
        req = (f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {len(big)}\r\n\r\n"
               ).encode() + big
        for _ in range(10):  # ask, read the first bytes, leave
            sock = socket.create_connection(("127.0.0.1", s.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(req)
            self.assertTrue(sock.recv(100).startswith(b"HTTP/1.1 200"))
            sock.close()
        ok = wait_until(lambda: kit.open_fds(s.pid) <= base[1] and s.status()["Threads"] <= base[0], 60)
        after = s.status()["Threads"], kit.open_fds(s.pid)
        print(f"\n  10 answers of {len(body)} bytes abandoned after 100 bytes: threads {base[0]} -> {after[0]}, "
              f"descriptors {base[1]} -> {after[1]}")
        self.assertTrue(ok, f"threads/descriptors before {base}, after {after}")
        self.assertEqual(predict(s.url, kit.photo(31))[0], 200)

    def test_burst_of_connections(self):
        """64 clients connecting at once: cpp-httplib's own listen backlog of 5 overflowed (dropped
        handshakes: a second's stall, or a reset); the server deepens it."""
        s = self.serve()
        before = listen_overflows()
        results = []
        barrier = threading.Barrier(64)

        def one():
            barrier.wait()
            try:
                results.append(kit.request(s.url, path="/health", timeout=30)[0])
            except OSError as e:
                results.append(repr(e))

        ts = [threading.Thread(target=one) for _ in range(64)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        overflows = listen_overflows() - before
        print(f"\n  64 connections at once: {results.count(200)} answered 200; accept-queue overflows {overflows}")
        self.assertEqual(results.count(200), 64, results)
        self.assertEqual(overflows, 0)

    # ---- SIGTERM ---------------------------------------------------------------------------------------
    def test_sigterm_while_one_photo_runs_and_one_waits(self):
        db = os.path.join(self.tmp, "shop.db")
        s = self.serve(["--short-edge", "320", "--max-size", "640", "--workers", "1"], catalog=db)
        results = {}

        def send(name, seed):
            try:
                results[name] = predict(s.url, kit.photo(seed, (640, 480), "JPEG"), {"X-Request-Id": name})
            except Exception as e:  # noqa: BLE001
                results[name] = (None, {}, repr(e).encode())

        a = threading.Thread(target=send, args=("running", 40))
        a.start()
        self.assertTrue(wait_until(lambda: health(s.url)["busy"] == 1, 120), "photo A never started")
        b = threading.Thread(target=send, args=("queued", 41))
        b.start()
        self.assertTrue(wait_until(lambda: health(s.url)["queue"]["depth"] == 1, 60), "photo B never queued")
        still_running = health(s.url)["busy"] == 1
        s.proc.send_signal(signal.SIGTERM)
        a.join(300)
        b.join(300)
        rc = s.stop()
        log = s.log_text()
        print(f"\n  SIGTERM with one photo running (still running when signalled: {still_running}) and one queued: "
              f"running -> {results['running'][0]}, queued -> {results['queued'][0]} "
              f"{results['queued'][2][:80]!r}; exit {rc}")
        self.assertEqual(rc, 0, log[-2000:])
        self.assertIn("SIGTERM received", log)
        self.assertIn("stopped", log)
        if still_running:
            self.assertEqual(results["running"][0], 200, results["running"][2][:300])
        self.assertEqual(results["queued"][0], 503, results["queued"][2][:300])
        self.assertIn(b"shutting down", results["queued"][2])
        self.assertEqual(results["queued"][1].get("x-request-id"), "queued")
        # nothing half-written: the catalogue is a sound database and no journal is left
        self.assertEqual(sorted(os.listdir(self.tmp)), sorted(["shop.db", "serve.log"]))
        if shutil.which("sqlite3"):
            r = subprocess.run(["sqlite3", db, "PRAGMA integrity_check;"], capture_output=True, text=True)
            self.assertEqual(r.stdout.strip(), "ok", r.stderr)
        with self.assertRaises(OSError):
            kit.request(s.url, path="/health", timeout=5)

    # ---- the catalogue's folder -----------------------------------------------------------------------
    def start_fails(self, catalog):
        p = subprocess.run([kit.BIN, "serve", "--model", kit.CIHP, "--port", "0", "--catalog", catalog] + kit.FAST,
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertNotIn("terminate called", p.stderr)
        self.assertIn("m2fp serve: error:", p.stderr)
        return p.stderr.strip()

    def test_catalogue_folder_read_only(self):
        ro = os.path.join(self.tmp, "ro")
        self.mount_tmpfs(ro, "ro,size=1m")
        err = self.start_fails(os.path.join(ro, "shop.db"))
        print(f"\n  read-only folder: {err}")
        self.assertIn("cannot create files in", err)
        self.assertIn("Read-only file system", err)

    def test_catalogue_path_through_a_file(self):
        f = os.path.join(self.tmp, "plainfile")
        open(f, "w").close()
        err = self.start_fails(os.path.join(f, "shop.db"))
        print(f"\n  parent is a file: {err}")
        self.assertIn("is not a folder", err)

    def test_catalogue_disk_full(self):
        d = os.path.join(self.tmp, "full")
        self.mount_tmpfs(d, "size=40k")
        err = self.start_fails(os.path.join(d, "shop.db"))
        print(f"\n  40 KB file system: {err}")
        self.assertIn("full", err)
        self.assertEqual(os.listdir(d), [], "the half-made catalogue was removed")

    def test_existing_catalogue_on_read_only_file_system(self):
        d = os.path.join(self.tmp, "cat")
        self.mount_tmpfs(d, "size=4m")
        db = os.path.join(d, "shop.db")
        p = subprocess.run([kit.BIN, "catalog", "info", "--catalog", db], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        r = subprocess.run(["mount", "-o", "remount,ro", d], capture_output=True, text=True)
        if r.returncode:
            self.skipTest("cannot remount read-only: " + r.stderr)
        s = self.serve(catalog=db)
        body, ctype = kit.multipart([("image", kit.photo(50), "p.png"), ("k", b"2", None)])
        code, _, out = kit.request(s.url, "POST", "/recommend", body, {"Content-Type": ctype}, timeout=600)
        self.assertEqual(code, 200, out[:300])
        self.assertGreater(json.loads(out)["catalog"]["items"], 100)

    def test_catalogue_corrupted_while_serving(self):
        db = os.path.join(self.tmp, "shop.db")
        s = self.serve(catalog=db)
        items = health(s.url)["catalog"]["items"]
        with open(db, "r+b") as f:  # clobber the SQLite header: not a database any more
            f.write(b"garbage" * 100)
        body, ctype = kit.multipart([("image", kit.photo(60), "p.png"), ("k", b"1", None)])
        code, _, out = kit.request(s.url, "POST", "/recommend", body, {"Content-Type": ctype}, timeout=600)
        self.assertEqual(code, 200, out[:300])
        self.assertEqual(json.loads(out)["catalog"]["items"], items, "the items read before are kept")
        self.assertEqual(s.stop(), 0)
        self.assertIn("keeping the %d items read before" % items, s.log_text())

    # ---- request lines that used to end the process ---------------------------------------------------
    def test_hostile_request_lines_answered(self):
        s = self.serve()
        cases = [
            (b"GET /health HTTP/2.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 400"),           # unparsable version
            (b"GET /%FF%FE HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 404"),           # invalid UTF-8 path
            (b"POST /jobs?task=%FF HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", b"HTTP/1.1 400"),
            (b"POST /predict HTTP/1.1\r\nHost: x\r\nRange: bytes=0-5,8-9\r\nContent-Length: 0\r\n\r\n",
             b"HTTP/1.1 400"),                                                        # no ranges of a JSON error
            (b"GET /app.js HTTP/1.1\r\nHost: x\r\nRange: bytes=0-15,200-3\r\n\r\n", b"HTTP/1.1 416"),
            (b"GET /\x1b[31mred\n HTTP/1.1\r\n\r\n", b"HTTP/1.1 400"),
        ]
        for req, want in cases:
            out = kit.raw_exchange(s.port, req.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n"), timeout=10)
            self.assertTrue(out.startswith(want), f"{req!r}: {out[:200]!r}")
            body = out.split(b"\r\n\r\n", 1)[1]
            j = json.loads(body)
            self.assertIn("error", j)
            self.assertTrue(s.alive(), f"{req!r} ended the server")
        self.assertEqual(health(s.url)["status"], "ok")


if __name__ == "__main__":
    unittest.main()
