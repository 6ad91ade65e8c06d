"""Tests of tools/download_model.py against a local stand-in of ModelScope's file API.

The stand-in (StandIn: stdlib http.server on 127.0.0.1, a random port, one thread per request)
serves the two endpoints the tool uses, for a synthetic checkpoint folder:
    GET /api/v1/models/{model_id}/repo/files?Revision=master&Recursive=True   -> JSON listing
    GET /api/v1/models/{model_id}/repo?Revision=master&FilePath={Path}        -> bytes (Range: 206)
and can cut a file's first transfer after N bytes, ignore Range, lie in the listing, or serve
other bytes for a file. The checkpoint is the ctest fixture $M2FP_TESTDATA/cihp_synth (real
size) when there is one, else a small synthetic one (h1_helpers.small_config) written here.

Run: /usr/bin/python3 -m unittest tests/python/test_download.py -v
"""

import glob
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # also run as a path from the root
import h1_helpers as h  # noqa: E402

try:
    import torch
except ImportError:
    torch = None

DOWNLOADER = os.path.join(h.TOOLS, "download_model.py")
CIHP_ID = "damo/cv_resnet101_image-multiple-human-parsing"
LIP_ID = "damo/cv_resnet101_image-single-human-parsing"
CHECKPOINT_FILES = ("configuration.json", "pytorch_model.pt")

_tmp = []


def tearDownModule():
    for d in _tmp:
        shutil.rmtree(d, ignore_errors=True)


def scratch():
    d = tempfile.mkdtemp(prefix="m2fp_download_test_")
    _tmp.append(d)
    return d


_source = []


def source_folder():
    """A synthetic ModelScope checkpoint folder: the ctest fixture, else a small one made once."""
    if not _source:
        fx = h.synthetic_fixture("cihp")
        if fx is not None:
            _source.append(fx[0])
        else:
            import make_synthetic_checkpoint as mk
            cfg = h.small_config()
            cfg["m2fp_synthetic"] = {"seed": 7, "generator": "test_download", "note": "test"}
            folder = os.path.join(scratch(), "small_synth")
            h.write_model_folder(folder, mk.make_state_dict(cfg["model"], 7), cfg)
            _source.append(folder)
    return _source[0]


_digests = {}


def sha256_file(path, cache=False):
    """Hex SHA-256 of a file; cache=True for the source files, which no test changes."""
    if cache and path in _digests:
        return _digests[path]
    d = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            d.update(block)
    if cache:
        _digests[path] = d.hexdigest()
    return d.hexdigest()


def free_port():
    """A port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class StandIn(object):
    """ModelScope's listing and file endpoints for `folder`, served under both model ids."""

    def __init__(self, folder):
        self.files = {name: os.path.join(folder, name) for name in CHECKPOINT_FILES}
        self.extra = {"README.md": b"# a model card the tool does not need\n"}
        self.listing = {name: {"Size": os.path.getsize(p), "Sha256": sha256_file(p, cache=True)}
                        for name, p in self.files.items()}
        self.cut_after = {}       # file -> N: the first transfer of it stops after N bytes
        self.ignore_range = False
        self.requests = []        # (model_id, query dict, Range header or None)
        self.lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def file_requests(self):
        return [(q.get("FilePath"), rng) for _, q, rng in self.requests if "FilePath" in q]

    def listing_json(self):
        files = [{"Name": p, "Path": p, "Type": "blob", "Size": e["Size"], "Sha256": e["Sha256"]}
                 for p, e in self.listing.items()]
        files += [{"Name": p, "Path": p, "Type": "blob", "Size": len(b),
                   "Sha256": hashlib.sha256(b).hexdigest()} for p, b in self.extra.items()]
        files.append({"Name": "assets", "Path": "assets", "Type": "tree", "Size": 0, "Sha256": ""})
        return json.dumps({"Code": 200, "Data": {"Files": files}, "Success": True}).encode()

    def _handler(self):
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                parts = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parts.query))
                prefix = "/api/v1/models/"
                path = urllib.parse.unquote(parts.path)
                model_id = path[len(prefix):].rsplit("/repo", 1)[0] if path.startswith(prefix) else None
                with standin.lock:
                    standin.requests.append((model_id, query, self.headers.get("Range")))
                if model_id not in (CIHP_ID, LIP_ID) or query.get("Revision") != "master":
                    return self.send_body(404, json.dumps({"Code": 10010205001, "Success": False,
                                                           "Message": "model not found"}).encode())
                if path.endswith("/repo/files") and query.get("Recursive") == "True":
                    return self.send_body(200, standin.listing_json())
                name = query.get("FilePath")
                if path.endswith("/repo") and name in standin.files:
                    return self.send_file(name)
                if path.endswith("/repo") and name in standin.extra:
                    return self.send_body(200, standin.extra[name])
                return self.send_body(404, b'{"Code": 404, "Message": "no such file"}')

            def send_body(self, status, body):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def send_file(self, name):
                path = standin.files[name]
                size = os.path.getsize(path)
                start = 0
                rng = self.headers.get("Range")
                if rng and not standin.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", "bytes %d-%d/%d" % (start, size - 1, size))
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(size - start))
                self.end_headers()
                with standin.lock:
                    cut = standin.cut_after.pop(name, None)
                with open(path, "rb") as f:
                    f.seek(start)
                    left = size - start if cut is None else cut
                    while left > 0:
                        block = f.read(min(1 << 20, left))
                        self.wfile.write(block)
                        left -= len(block)
                if cut is not None:   # the connection dies mid-file
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True

        return Handler


def run_tool(args, endpoint=None, env_endpoint=None, timeout=120):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("M2FP_MODELSCOPE_ENDPOINT", None)
    if env_endpoint is not None:
        env["M2FP_MODELSCOPE_ENDPOINT"] = env_endpoint
    cmd = [sys.executable, DOWNLOADER] + list(args)
    if endpoint is not None:
        cmd += ["--endpoint", endpoint]
    t0 = time.time()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       env=env, timeout=timeout)
    r.seconds = time.time() - t0
    return r


@unittest.skipIf(torch is None, "needs torch to write the synthetic checkpoint (use /usr/bin/python3)")
class Download(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.source = source_folder()

    def setUp(self):
        self.server = StandIn(self.source)
        self.dir = os.path.join(scratch(), "models")

    def tearDown(self):
        self.server.close()

    # ---- helpers ----------------------------------------------------------------------------

    def download(self, *extra, name="cihp"):
        return run_tool([name, "-o", self.dir] + list(extra), endpoint=self.server.url)

    def assert_ok(self, r):
        self.assertEqual(r.returncode, 0, "stdout:\n%s\nstderr:\n%s" % (r.stdout, r.stderr))
        self.assertNotIn("Traceback", r.stderr)

    def assert_failed(self, r, *words):
        self.assertEqual(r.returncode, 1, "stdout:\n%s\nstderr:\n%s" % (r.stdout, r.stderr))
        self.assertNotIn("Traceback", r.stderr)
        self.assertIn("download_model.py: error:", r.stderr)
        for w in words:
            self.assertIn(w, r.stderr)
        print("  [expected failure] %s" % r.stderr.strip().splitlines()[-1][:300])

    def assert_no_model(self, allow_part=False):
        """Neither the checkpoint nor the converted model, and no temporary file (but a .part)."""
        self.assertFalse(os.path.exists(os.path.join(self.dir, "cihp", "pytorch_model.pt")))
        self.assertEqual(glob.glob(os.path.join(self.dir, "*.safetensors")), [])
        leftovers = glob.glob(os.path.join(self.dir, ".*tmp*")) + glob.glob(os.path.join(self.dir, "*", ".*"))
        self.assertEqual(leftovers, [])
        if not allow_part:
            self.assertEqual(glob.glob(os.path.join(self.dir, "*", "*.part")), [])

    @classmethod
    def reference_conversion(cls):
        """SHA-256 of convert_weights run directly on the source folder, seen under the name `cihp`
        (the converter records the folder name in the metadata); made once."""
        if not hasattr(cls, "reference_sha"):
            ref = os.path.join(scratch(), "ref")
            os.makedirs(ref)
            os.symlink(os.path.abspath(cls.source), os.path.join(ref, "cihp"))
            out = os.path.join(ref, "m2fp_cihp.safetensors")
            h.convert_weights.convert(os.path.join(ref, "cihp"), out, log=lambda *a, **k: None)
            cls.reference_sha = sha256_file(out)
            os.remove(out)
        return cls.reference_sha

    def assert_downloaded_and_converted(self):
        for name in CHECKPOINT_FILES:
            got = os.path.join(self.dir, "cihp", name)
            self.assertEqual(sha256_file(got), self.server.listing[name]["Sha256"], name)
        model = os.path.join(self.dir, "m2fp_cihp.safetensors")
        self.assertEqual(sha256_file(model), self.reference_conversion(),
                         "not the bytes convert_weights writes for that folder")
        self.assertEqual(glob.glob(os.path.join(self.dir, "cihp", "*.part")), [])
        self.assertEqual(sorted(os.listdir(self.dir)), ["cihp", "m2fp_cihp.safetensors"])

    # ---- cases ------------------------------------------------------------------------------

    def test_good_download_then_rerun_skips(self):
        r = run_tool(["cihp", "-o", self.dir], env_endpoint=self.server.url + "/")   # via the env
        self.assert_ok(r)
        self.assert_downloaded_and_converted()
        size = format(self.server.listing["pytorch_model.pt"]["Size"], ",")
        self.assertIn("pytorch_model.pt", r.stdout)
        self.assertIn(size, r.stdout)
        self.assertIn("1 other file in the listing not needed, skipped", r.stdout)
        self.assertIn("done: %s" % os.path.join(self.dir, "m2fp_cihp.safetensors"), r.stdout)
        self.assertIn("pytorch_model.pt: 100%", r.stderr)      # stderr is not a terminal: plain lines
        self.assertIn("this checkpoint is SYNTHETIC", r.stdout)
        self.assertEqual(sorted(self.server.file_requests()),
                         [("configuration.json", None), ("pytorch_model.pt", None)])
        self.assertTrue(all(m == CIHP_ID for m, _, _ in self.server.requests))
        print("  good download: %.1f s, %s bytes" % (r.seconds, size))

        del self.server.requests[:]
        again = self.download()
        self.assert_ok(again)
        self.assertEqual(again.stdout.count("already downloaded and verified"), 2)
        self.assertEqual(self.server.file_requests(), [])
        self.assert_downloaded_and_converted()

    def test_cut_connection_then_rerun_resumes_with_range(self):
        size = self.server.listing["pytorch_model.pt"]["Size"]
        cut = size // 3
        self.server.cut_after["pytorch_model.pt"] = cut
        r = self.download("--retries", "0")
        self.assert_failed(r, "closed after", "rerun the same command to resume", "pytorch_model.pt.part")
        part = os.path.join(self.dir, "cihp", "pytorch_model.pt.part")
        self.assertEqual(os.path.getsize(part), cut)
        self.assert_no_model(allow_part=True)

        again = self.download()
        self.assert_ok(again)
        self.assertIn(("pytorch_model.pt", "bytes=%d-" % cut), self.server.file_requests())
        self.assertIn("resuming at", again.stdout)
        self.assert_downloaded_and_converted()

    def test_cut_connection_resumed_within_the_run(self):
        size = self.server.listing["pytorch_model.pt"]["Size"]
        self.server.cut_after["pytorch_model.pt"] = size // 2
        r = self.download()
        self.assert_ok(r)
        self.assertIn("retrying (1 of 3)", r.stderr)
        self.assertIn(("pytorch_model.pt", "bytes=%d-" % (size // 2)), self.server.file_requests())
        self.assert_downloaded_and_converted()

    def test_server_ignoring_range_restarts_the_file(self):
        folder = os.path.join(self.dir, "cihp")
        os.makedirs(folder)
        with open(os.path.join(folder, "pytorch_model.pt.part"), "wb") as f:
            f.write(b"stale bytes from an older download")
        self.server.ignore_range = True
        r = self.download()
        self.assert_ok(r)
        self.assertIn("ignored the Range request; restarting", r.stdout)
        self.assertIn(("pytorch_model.pt", "bytes=34-"), self.server.file_requests())
        self.assert_downloaded_and_converted()

    def test_tampered_file_is_refused(self):
        good = self.server.listing["pytorch_model.pt"]["Sha256"]
        bad = hashlib.sha256(b"not the checkpoint").hexdigest()
        self.server.listing["pytorch_model.pt"]["Sha256"] = bad
        r = self.download()
        self.assert_failed(r, "pytorch_model.pt: SHA-256 mismatch", "expected %s" % bad, "got %s" % good,
                           "deleted")
        self.assert_no_model()

    def test_conversion_failure_leaves_no_model(self):
        cfg = os.path.join(scratch(), "configuration.json")
        with open(cfg, "w") as f:
            json.dump({"model": {"type": "m2fp"}}, f)
        self.server.files["configuration.json"] = cfg
        self.server.listing["configuration.json"] = {"Size": os.path.getsize(cfg), "Sha256": sha256_file(cfg)}
        r = self.download()
        self.assert_failed(r, "conversion of", "failed")
        self.assertEqual(glob.glob(os.path.join(self.dir, "*.safetensors")), [])
        self.assertEqual(glob.glob(os.path.join(self.dir, ".*")), [])

    def test_listing_without_the_checkpoint_is_refused(self):
        del self.server.listing["pytorch_model.pt"]
        r = self.download()
        self.assert_failed(r, "has no pytorch_model.pt", self.server.url)
        self.assertEqual(self.server.file_requests(), [])
        self.assertFalse(os.path.exists(self.dir))

    def test_404_listing_names_the_url(self):
        r = self.download("--revision", "v9.9")
        url = "%s/api/v1/models/damo/cv_resnet101_image-multiple-human-parsing/repo/files" % self.server.url
        self.assert_failed(r, url, "HTTP 404", "--revision")
        self.assertFalse(os.path.exists(self.dir))

    def test_lip_no_convert(self):
        r = self.download("--no-convert", name="lip")
        self.assert_ok(r)
        self.assertTrue(all(m == LIP_ID for m, _, _ in self.server.requests))
        self.assertEqual(sorted(os.listdir(os.path.join(self.dir, "lip"))), sorted(CHECKPOINT_FILES))
        self.assertEqual(glob.glob(os.path.join(self.dir, "*.safetensors")), [])
        self.assertIn("done: %s" % os.path.join(self.dir, "lip"), r.stdout)


class Failures(unittest.TestCase):
    """Without a server: offline, and usage errors."""

    def test_offline_fails_fast_with_a_clear_message(self):
        out = os.path.join(scratch(), "models")
        endpoint = "http://127.0.0.1:%d" % free_port()
        r = run_tool(["cihp", "-o", out, "--timeout", "5"], endpoint=endpoint)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("cannot reach %s" % endpoint, r.stderr)
        self.assertIn("convert with tools/convert_weights.py", r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        self.assertLess(r.seconds, 10)
        self.assertFalse(os.path.exists(out))
        print("  [expected failure, %.1f s] %s" % (r.seconds, r.stderr.strip().splitlines()[-1]))

    def test_silent_server_times_out(self):
        """A server that accepts the connection and never answers: --timeout bounds the wait."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            endpoint = "http://127.0.0.1:%d" % s.getsockname()[1]
            r = run_tool(["cihp", "-o", os.path.join(scratch(), "models"), "--timeout", "1"],
                         endpoint=endpoint)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("cannot reach %s: timed out" % endpoint, r.stderr)
        self.assertLess(r.seconds, 10)

    def test_usage_errors_exit_2(self):
        tmp = scratch()
        a_file = os.path.join(tmp, "a_file")
        open(a_file, "w").close()
        cases = [
            ([], None, "required"),
            (["cityscapes", "-o", tmp], None, "invalid choice"),
            (["cihp"], None, "-o/--output"),
            (["cihp", "-o", tmp, "--endpoint", "ftp://example.org"], None, "not an http(s) URL"),
            (["cihp", "-o", tmp, "--timeout", "0"], None, "positive number"),
            (["cihp", "-o", tmp, "--retries", "-1"], None, "--retries"),
            (["cihp", "-o", a_file], None, "not a folder"),
            (["cihp", "-o", tmp], "modelscope.cn", "M2FP_MODELSCOPE_ENDPOINT"),
        ]
        for args, env, word in cases:
            r = run_tool(args, env_endpoint=env)
            self.assertEqual(r.returncode, 2, "%s: %s" % (args, r.stderr))
            self.assertIn(word, r.stderr, args)
            self.assertNotIn("Traceback", r.stderr)
        self.assertEqual(sorted(os.listdir(tmp)), ["a_file"])


if __name__ == "__main__":
    unittest.main()
