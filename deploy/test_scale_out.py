"""Scale-out on loopback: two `m2fp serve` replicas behind nginx configured by deploy/nginx/m2fp.conf.

Everything runs as child processes of this test on 127.0.0.1 with free ports and a temporary nginx
prefix (no system nginx, no root needed; as root nginx's workers run as its default user). Checked:
  1. requests through nginx are spread over both replicas (X-Upstream, and each replica's /metrics);
  2. the request id travels: nginx's log, the replica's access log and the answer carry the same one;
  3. an upload arriving in tiny TCP segments, which cpp-httplib 0.11's multipart parser rejects
     (docs/SCALING.md), is parsed when it comes through nginx (it buffers the whole body);
  4. a job submitted through nginx is found again through nginx (sticky route for /jobs);
  5. one replica killed (SIGKILL) in the middle of a run: every later request still succeeds, on the
     other replica; then the survivor gets SIGTERM with nginx in front: clean exit.

Run by CTest (test `scale_out_nginx`) with M2FP_BIN and M2FP_TESTDATA; skipped (exit 77 through the
unittest wrapper) when nginx is not installed.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "load"))
import service_kit as kit  # noqa: E402

# CI (CI=true) and M2FP_REQUIRE_TOOLS=1 want the tools there (scripts/deps.sh installs them): missing is
# a failure, not a skip.
REQUIRED = os.environ.get("CI") == "true" or os.environ.get("M2FP_REQUIRE_TOOLS") == "1"

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
CONF = os.path.join(HERE, "nginx", "m2fp.conf")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def nginx_conf(template, listen, replicas):
    """The repository's configuration with our ports: its `listen` and `server` lines rewritten."""
    text = template.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{listen};")
    for default, port in zip(("127.0.0.1:5001", "127.0.0.1:5002"), replicas):
        text = text.replace(f"server {default} ", f"server 127.0.0.1:{port} ")
    assert text.count("server 127.0.0.1:") == 2 * len(replicas), "unexpected upstream blocks in m2fp.conf"
    return text


@unittest.skipUnless(NGINX or REQUIRED, "nginx not installed (scripts/deps.sh installs it)")
@unittest.skipUnless(os.path.exists(kit.BIN), f"{kit.BIN} not built")
class ScaleOut(unittest.TestCase):
    def setUp(self):
        self.assertTrue(NGINX, "nginx not installed: scripts/deps.sh installs it (required in CI)")
        self.assertTrue(os.path.exists(kit.CIHP), f"{kit.CIHP} missing: run the CTest fixture fixture_synthetic_cihp")
        self.tmp = tempfile.mkdtemp(prefix="m2fp_lb_")
        os.chmod(self.tmp, 0o755)  # nginx's workers (as root: its default user) read below the prefix
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def start_replica(self, name, port):
        s = kit.Serve(["--catalog", os.path.join(self.tmp, name + ".db"), "--host", "127.0.0.1"] + kit.FAST,
                      os.path.join(self.tmp, name + ".log"), port=port)
        self.addCleanup(s.close)
        return s

    def start_nginx(self, listen, ports):
        prefix = os.path.join(self.tmp, "nginx")
        os.makedirs(os.path.join(prefix, "logs"))
        os.makedirs(os.path.join(prefix, "tmp"))
        conf = os.path.join(prefix, "m2fp.conf")
        with open(CONF) as f:
            text = nginx_conf(f.read(), listen, ports)
        with open(conf, "w") as f:
            f.write(text)
        t = subprocess.run([NGINX, "-t", "-p", prefix, "-c", conf], capture_output=True, text=True)
        self.assertEqual(t.returncode, 0, "nginx -t: " + t.stderr)
        proc = subprocess.Popen([NGINX, "-p", prefix, "-c", conf, "-g", "daemon off;"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def stop():
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT)  # graceful
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            proc.stdout.close()

        self.addCleanup(stop)
        url = f"http://127.0.0.1:{listen}"
        end = time.time() + 30
        while time.time() < end:
            try:
                if kit.request(url, path="/health", timeout=5)[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        self.nginx_prefix = prefix
        return proc, url

    def test_two_replicas_behind_nginx(self):
        ports = [free_port(), free_port()]
        listen = free_port()
        a = self.start_replica("replica_a", ports[0])
        b = self.start_replica("replica_b", ports[1])
        nginx, url = self.start_nginx(listen, ports)
        name_of = {f"127.0.0.1:{ports[0]}": "a", f"127.0.0.1:{ports[1]}": "b"}

        # 1. spread: 4 clients, 16 distinct photos
        answers = []
        lock = threading.Lock()

        def client(c):
            for i in range(4):
                rid = f"spread-{c}-{i}"
                code, h, body = kit.request(url, "POST", "/predict", kit.photo(100 + 10 * c + i),
                                            {"Content-Type": "image/png", "X-Request-Id": rid}, timeout=600)
                with lock:
                    answers.append((rid, code, h.get("x-upstream"), h.get("x-request-id"), body))

        threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for rid, code, up, echoed, body in answers:
            self.assertEqual(code, 200, f"{rid} via {up}: {body[:200]}")
            self.assertEqual(echoed, rid)
        spread = {"a": 0, "b": 0}
        for _, _, up, _, _ in answers:
            spread[name_of[up]] += 1
        print(f"\n  16 photos through nginx (4 clients): replica a {spread['a']}, replica b {spread['b']}")
        self.assertGreater(spread["a"], 0, "replica a got nothing")
        self.assertGreater(spread["b"], 0, "replica b got nothing")
        # the replicas' own counts agree
        for s, n in ((a, spread["a"]), (b, spread["b"])):
            m = kit.request(s.url, path="/metrics")[2].decode()
            got = re.search(r'm2fp_http_requests_total\{endpoint="/predict",code="200"\} (\d+)', m)
            self.assertEqual(int(got.group(1)) if got else 0, n)

        # 2. one id end to end
        time.sleep(0.5)
        with open(os.path.join(self.nginx_prefix, "logs", "access.log")) as f:
            nginx_log = f.read()
        rid = answers[0][0]
        self.assertIn(f"id={rid}", nginx_log)
        self.assertEqual((a.log_text() + b.log_text()).count(f"id={rid}"), 1)

        # 3. an upload in 10-byte TCP segments: nginx buffers it and hands it on whole
        body, ctype = kit.multipart([("image", kit.photo(200), "p.png")])
        head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n" \
               f"Connection: close\r\n\r\n".encode()

        def dribble(port):
            sock = socket.create_connection(("127.0.0.1", port), timeout=120)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(head)
            time.sleep(0.05)
            for i in range(0, len(body), 10):
                sock.sendall(body[i:i + 10])
                time.sleep(0.002)
            out = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                out += chunk
            sock.close()
            return out.split(b"\r\n", 1)[0].decode()

        via_nginx = dribble(listen)
        direct = dribble(ports[0])
        print(f"  multipart upload in 10-byte segments: through nginx -> {via_nginx}; straight to a replica -> {direct}")
        self.assertEqual(via_nginx, "HTTP/1.1 200 OK")

        # 4. a job through nginx, polled through nginx
        code, h, out = kit.request(url, "POST", "/jobs", kit.photo(300), {"Content-Type": "image/png"})
        self.assertEqual(code, 202, out[:200])
        job = json.loads(out)
        state = None
        for _ in range(600):
            code, _, out = kit.request(url, path=job["url"])
            self.assertEqual(code, 200, out[:200])
            state = json.loads(out)["state"]
            if state in ("done", "failed"):
                break
            time.sleep(0.1)
        self.assertEqual(state, "done")

        # 5. replica a dies in the middle of a run of requests: every request still succeeds
        results = []
        killed = threading.Event()

        def run(c):
            for i in range(5):
                if c == 0 and i == 1:
                    a.proc.kill()  # SIGKILL: no goodbye
                    a.proc.wait()
                    killed.set()
                code, h, body = kit.request(url, "POST", "/predict", kit.photo(400 + 10 * c + i),
                                            {"Content-Type": "image/png"}, timeout=600)
                with lock:
                    results.append((code, h.get("x-upstream"), killed.is_set(), body[:200]))

        threads = [threading.Thread(target=run, args=(c,)) for c in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = [r for r in results if r[2]]
        codes = sorted({r[0] for r in results})
        print(f"  replica a killed during 15 requests (3 clients): answers {codes}; "
              f"{len(after)} sent after the kill, answered by: "
              f"{sorted({r[1] for r in after})}")
        for code, up, _, body in results:
            self.assertEqual(code, 200, f"via {up}: {body}")
        final_hops = [r[1].split(", ")[-1] for r in after]
        self.assertTrue(all(h == f"127.0.0.1:{ports[1]}" for h in final_hops), final_hops)
        self.assertEqual(kit.request(url, path="/health")[0], 200)
        self.assertTrue(nginx.poll() is None, "nginx still running")

        # the survivor stops cleanly behind nginx
        self.assertEqual(b.stop(), 0)
        code, _, out = kit.request(url, path="/health")
        self.assertEqual(code, 502, "no replica left: nginx says so")
        print(f"  survivor stopped with SIGTERM: exit 0; nginx now answers {code}")


if __name__ == "__main__":
    unittest.main()
