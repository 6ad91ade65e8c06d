"""The `m2fp` binary around the service: `m2fp serve` as a process (port 0, health, a photo, SIGTERM,
bad options), `m2fp catalog import/list/info` (good and bad CSV, default location, a running server
picking up an import), and `m2fp parse` writing garments and recommendations into result.json.

Run by CTest (test `server_cli`) with M2FP_BIN (the m2fp binary), M2FP_TESTDATA (synthetic checkpoints)
and M2FP_SCRATCH (a folder it may fill). Standard library and PIL only.
"""
import io
import json
import os
import shutil
import signal
import subprocess
import time
import unittest
import urllib.error
import urllib.request
import uuid

import numpy as np
from PIL import Image

BIN = os.environ.get("M2FP_BIN", "build/m2fp")
TESTDATA = os.environ.get("M2FP_TESTDATA", "build/testdata")
SCRATCH = os.environ.get("M2FP_SCRATCH", "/tmp/m2fp_server_cli")
CIHP = os.path.join(TESTDATA, "cihp_synth.safetensors")
LIP = os.path.join(TESTDATA, "lip_synth.safetensors")
FAST = ["--short-edge", "64", "--max-size", "128"]


def photo_png(seed=0, size=(96, 72)):
    """A small photo-like PNG: gradient background and a red/blue 'person' block."""
    w, h = size
    img = Image.new("RGB", size)
    px = img.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = ((40 + 3 * x + 17 * seed) % 200, (60 + 2 * y + 5 * seed) % 200, (90 + x + y) % 200)
    for y in range(h // 5, h):
        for x in range(w // 3, 2 * w // 3):
            px[x, y] = (200, 30, 40) if y < h // 2 else (30, 50, 160)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def multipart(fields):
    """fields: list of (name, value bytes, filename or None) -> (body, content type)."""
    boundary = "m2fp" + uuid.uuid4().hex
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


def http(url, body=None, content_type=None, timeout=900):
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def run(args, cwd=None, env=None, timeout=900):
    return subprocess.run([BIN] + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


class Serve:
    """`m2fp serve` on a free port; the port comes from its first stdout line."""

    def __init__(self, extra, cwd=None, env=None, model=CIHP):
        self.proc = subprocess.Popen([BIN, "serve", "--model", model, "--port", "0", "--quiet"] + FAST + extra,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env)
        line = self.proc.stdout.readline()
        if "listening on " not in line:
            self.proc.kill()
            raise AssertionError(f"m2fp serve did not start: stdout {line!r}, stderr {self.proc.stderr.read()!r}")
        self.url = line.strip().split("listening on ")[1]

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return self.proc.returncode, err


def fresh_dir(name):
    d = os.path.join(SCRATCH, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


@unittest.skipUnless(os.path.exists(BIN), f"{BIN} not built")
class ServeProcess(unittest.TestCase):
    def setUp(self):
        self.assertTrue(os.path.exists(CIHP), f"{CIHP} missing: run the CTest fixture fixture_synthetic_cihp")

    def test_lifecycle_health_photo_sigterm(self):
        d = fresh_dir("lifecycle")
        s = Serve(["--catalog", os.path.join(d, "shop.db"), "--cors", "https://shop.example,http://localhost:8080",
                   "--header-timeout", "7", "--keep-alive-max", "9"])
        try:
            code, body = http(s.url + "/health")
            self.assertEqual(code, 200)
            h = json.loads(body)
            self.assertTrue(h["model"]["synthetic"])
            self.assertEqual(h["cors"], ["https://shop.example", "http://localhost:8080"])
            self.assertEqual(h["limits"]["header_timeout_s"], 7)
            self.assertEqual(h["limits"]["keep_alive_max"], 9)
            # the CORS preflight of a shop's page, and GET on a POST-only path (405, not 404)
            req = urllib.request.Request(s.url + "/predict", method="OPTIONS", headers={
                "Origin": "http://localhost:8080", "Access-Control-Request-Method": "POST"})
            with urllib.request.urlopen(req, timeout=60) as r:
                self.assertEqual(r.status, 204)
                self.assertEqual(r.headers["Access-Control-Allow-Origin"], "http://localhost:8080")
                self.assertIn("POST", r.headers["Access-Control-Allow-Methods"])
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen(s.url + "/predict", timeout=60)
            self.assertEqual(cm.exception.code, 405)
            self.assertEqual(cm.exception.headers["Allow"], "POST, OPTIONS")
            self.assertEqual(h["catalog"]["path"], os.path.join(d, "shop.db"))
            self.assertTrue(os.path.exists(os.path.join(d, "shop.db")), "catalogue created on first run")
            body, ctype = multipart([("image", photo_png(1), "p.png"), ("k", b"2", None)])
            code, out = http(s.url + "/recommend", body, ctype)
            self.assertEqual(code, 200, out[:300])
            r = json.loads(out)
            self.assertIn("persons", r)
            for p in r["persons"]:
                self.assertLessEqual(len(p["recommendations"]), 2)
                for rec in p["recommendations"]:
                    self.assertTrue(rec["reason"])
            # counted by the access logger just after the answer went out: allow it a moment
            for _ in range(100):
                code, out = http(s.url + "/metrics")
                self.assertEqual(code, 200)
                if b'm2fp_http_requests_total{endpoint="/recommend",code="200"} 1' in out:
                    break
                time.sleep(0.05)
            self.assertIn(b'm2fp_http_requests_total{endpoint="/recommend",code="200"} 1', out)
        finally:
            rc, err = s.stop()
        self.assertEqual(rc, 0, err)
        self.assertIn("SIGTERM received", err)
        self.assertIn("stopped", err)
        self.assertIn("WARNING: SYNTHETIC WEIGHTS", err)

    def test_sigint_while_idle(self):
        s = Serve(["--catalog", os.path.join(fresh_dir("sigint"), "c.db")])
        rc, err = s.stop(signal.SIGINT)
        self.assertEqual(rc, 0, err)
        self.assertIn("SIGINT received", err)

    def test_bad_options(self):
        cases = [
            (["serve"] + FAST, 2, "missing required option --model"),
            (["serve", "--model", CIHP, "--port", "70000"], 2, "--port must be in [0, 65535]"),
            (["serve", "--model", CIHP, "--workers", "0"], 2, "--workers must be in [1, 64]"),
            (["serve", "--model", CIHP, "--precision", "fp8"], 2, "--precision must be fp32 or bf16"),
            (["serve", "--model", CIHP, "--frobnicate"], 2, "unknown option --frobnicate"),
            (["serve", "--model", CIHP, "--cors", "shop.example"], 2, "'shop.example' is not an origin"),
            (["serve", "--model", CIHP, "--cors", "*,https://a.example"], 2, "cannot be combined"),
            (["serve", "--model", CIHP, "--cors", "https://a.example,"], 2, "empty origin"),
            (["serve", "--model", CIHP, "--header-timeout", "0"], 2, "--header-timeout must be in [1, 3600]"),
            (["serve", "--model", CIHP, "--max-conns-per-client", "-1"], 2, "--max-conns-per-client must be in"),
            (["serve", "--model", os.path.join(SCRATCH, "nope.safetensors"), "--port", "0"], 1, "nope.safetensors"),
        ]
        for args, want_rc, needle in cases:
            p = run(args, timeout=300)
            self.assertEqual(p.returncode, want_rc, f"{args}: {p.stderr}")
            self.assertIn(needle, p.stderr, f"{args}")
            self.assertNotIn("Traceback", p.stderr)

    def test_port_in_use(self):
        d = fresh_dir("inuse")
        s = Serve(["--catalog", os.path.join(d, "c.db")])
        try:
            port = s.url.rsplit(":", 1)[1]
            p = run(["serve", "--model", CIHP, "--port", port, "--catalog", os.path.join(d, "c2.db")] + FAST,
                    timeout=300)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(f"cannot listen on 127.0.0.1:{port}", p.stderr)
        finally:
            s.stop()

    def test_server_sees_catalogue_import(self):
        d = fresh_dir("live_import")
        db = os.path.join(d, "shop.db")
        s = Serve(["--catalog", db])
        try:
            before = json.loads(http(s.url + "/health")[1])["catalog"]["items"]
            csv = os.path.join(d, "new.csv")
            with open(csv, "w") as f:
                f.write("sku,name,category,slot,colour,hex,colours,styles,seasons,price,popularity\n"
                        "LIVE-1,Live Test Sneakers,sneakers,shoes,white,#FFFFFF,white,casual,all,10,99\n")
            time.sleep(1.1)  # a different modification time for certain
            p = run(["catalog", "import", csv, "--catalog", db])
            self.assertEqual(p.returncode, 0, p.stderr)
            after = json.loads(http(s.url + "/health")[1])["catalog"]["items"]
            self.assertEqual(after, before + 1)
        finally:
            s.stop()


@unittest.skipUnless(os.path.exists(BIN), f"{BIN} not built")
class SeedClient(unittest.TestCase):
    """The seed article's client against `m2fp serve`, unchanged apart from base64-decoding the masks
    (issue 11: /predict answers in ModelScope's masks/labels/scores form)."""

    def test_seed_client_zip_masks_labels(self):
        import base64
        import requests  # Debian's python3-requests, as the article's client uses
        d = fresh_dir("seed_client")
        path = os.path.join(d, "photo.png")
        with open(path, "wb") as f:
            f.write(photo_png(3))
        s = Serve(["--catalog", os.path.join(d, "c.db")])
        try:
            url = s.url + "/predict"
            # ---- the client, as the article has it ----
            with open(path, "rb") as f:
                result = requests.post(url, files={"image": f}).json()
            masks = result["masks"]
            labels = result["labels"]
            self.assertTrue(masks, "the synthetic model finds instances in this photo")
            first = masks[0]  # was a KeyError with the old dict-keyed form
            seen = []
            for mask, label in zip(masks, labels):
                m = np.array(Image.open(io.BytesIO(base64.b64decode(mask))))
                self.assertEqual(m.shape, (72, 96))
                self.assertTrue(set(np.unique(m).tolist()) <= {0, 255}, label)
                seen.append(label)
            # ---- end of the client ----
            self.assertIsInstance(first, str)
            self.assertEqual(len(result["scores"]), len(masks))
            self.assertEqual(seen, labels)
            self.assertEqual(labels, [i["label"] for i in result["instances"] if i["score"] > 0])
            r = requests.post(url, files={"image": open(path, "rb")}, data={"mask_format": "rle"}).json()
            self.assertEqual(r["labels"], labels)
            self.assertEqual([m["size"] for m in r["masks"]], [[72, 96]] * len(labels))
        finally:
            rc, err = s.stop()
        self.assertEqual(rc, 0, err)

    def test_single_person_model_one_mask_per_class(self):
        """Single-person (LIP) model: ModelScope's semantic branch, one mask per class present
        (ascending ids, Background included), the masks partitioning the photo."""
        import base64
        import requests
        d = fresh_dir("seed_client_lip")
        s = Serve(["--catalog", os.path.join(d, "c.db")], model=LIP)
        try:
            r = requests.post(s.url + "/predict", files={"image": ("p.png", photo_png(4))}).json()
        finally:
            rc, err = s.stop()
        self.assertEqual(rc, 0, err)
        classes = r["model"]["classes"]
        self.assertEqual(r["labels"], sorted(r["labels"], key=classes.index))
        self.assertEqual(len(set(r["labels"])), len(r["labels"]))
        total = np.zeros((72, 96), int)
        for mask, score in zip(r["masks"], r["scores"]):
            m = np.array(Image.open(io.BytesIO(base64.b64decode(mask)))) == 255
            total += m
            self.assertTrue(0.0 < score < 1.0, score)
        self.assertTrue(np.all(total == 1), "one class per pixel")


@unittest.skipUnless(os.path.exists(BIN), f"{BIN} not built")
class CatalogCommand(unittest.TestCase):
    HEADER = "sku,name,category,slot,colour,hex,colours,styles,seasons,price,popularity\n"

    def test_import_list_info(self):
        d = fresh_dir("catalog")
        db = os.path.join(d, "shop.db")
        good = os.path.join(d, "good.csv")
        with open(good, "w") as f:
            f.write(self.HEADER + 'SHOP-1,"Red Wool Coat, long",coat,outerwear,red,#B22222,red;black,formal,winter,199.5,70\n'
                    "SHOP-2,Grey Trainers,sneakers,shoes,grey,#888888,grey,sport;casual,all,59,40\n")
        p = run(["catalog", "import", good, "--catalog", db])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("2 rows: 2 new, 0 updated", p.stdout)
        p = run(["catalog", "import", good, "--catalog", db])  # again: updates by sku
        self.assertIn("2 rows: 0 new, 2 updated", p.stdout)
        p = run(["catalog", "list", "--json", "--catalog", db])
        self.assertEqual(p.returncode, 0, p.stderr)
        items = json.loads(p.stdout)
        coat = [i for i in items if i["sku"] == "SHOP-1"]
        self.assertEqual(len(coat), 1)
        self.assertEqual(coat[0]["name"], "Red Wool Coat, long")
        self.assertEqual(coat[0]["colours"], ["red", "black"])
        seeded = len(items)
        self.assertGreater(seeded, 100, "the seed catalogue is there as well")
        p = run(["catalog", "info", "--catalog", db])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"items:     {seeded}", p.stdout)
        self.assertIn("good.csv: 2", p.stdout)
        p = run(["catalog", "list", "--catalog", db])
        self.assertIn("SHOP-2", p.stdout)

        # A bad file: every problem reported with FILE:LINE, nothing imported.
        bad = os.path.join(d, "bad.csv")
        with open(bad, "w") as f:
            f.write(self.HEADER + "BAD-1,Thing,coat,hat-slot,red,#B22222,red,formal,winter,10,50\n"
                    "BAD-2,Thing 2,coat,outerwear,red,#B22222,red,formal,winter,-3,50\n")
        p = run(["catalog", "import", bad, "--catalog", db])
        self.assertEqual(p.returncode, 1)
        self.assertIn("catalogue is unchanged", p.stderr)
        self.assertIn("bad.csv:2", p.stderr)
        self.assertIn("bad.csv:3", p.stderr)
        self.assertNotIn("Traceback", p.stderr)
        self.assertEqual(len(json.loads(run(["catalog", "list", "--json", "--catalog", db]).stdout)), seeded)

        for args, rc, needle in [
            (["catalog", "import", os.path.join(d, "missing.csv"), "--catalog", db], 1, "no such file"),
            (["catalog", "import", "--catalog", db], 2, "exactly one FILE.csv"),
            (["catalog", "frobnicate", "--catalog", db], 2, "unknown catalog sub-command"),
            (["catalog"], 2, "needs a sub-command"),
        ]:
            p = run(args)
            self.assertEqual(p.returncode, rc, f"{args}: {p.stderr}")
            self.assertIn(needle, p.stderr)

    def test_default_location_and_environment(self):
        d = fresh_dir("default_location")
        env = dict(os.environ)
        env.pop("M2FP_CATALOG", None)
        p = run(["catalog", "info"], cwd=d, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.exists(os.path.join(d, "data", "catalog.db")), "default: data/catalog.db")
        env["M2FP_CATALOG"] = os.path.join(d, "elsewhere", "cat.db")
        p = run(["catalog", "info"], cwd=d, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.exists(env["M2FP_CATALOG"]), "M2FP_CATALOG overrides the default")


@unittest.skipUnless(os.path.exists(BIN), f"{BIN} not built")
class ParseWritesOutfits(unittest.TestCase):
    def setUp(self):
        self.assertTrue(os.path.exists(CIHP), f"{CIHP} missing: run the CTest fixture fixture_synthetic_cihp")

    def parse(self, d, extra, model=CIHP):
        img = os.path.join(d, "person.png")
        with open(img, "wb") as f:
            f.write(photo_png(3))
        env = dict(os.environ)
        env.pop("M2FP_CATALOG", None)
        p = run(["parse", "--model", model, "--out", os.path.join(d, "out")] + FAST + extra + [img], cwd=d, env=env)
        return p, os.path.join(d, "out", "person", "result.json")

    def test_result_json_has_garments_and_recommendations(self):
        d = fresh_dir("parse_outfits")
        p, path = self.parse(d, ["--k", "2", "--occasion", "office"])
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(path) as f:
            r = json.load(f)
        self.assertIn("outfits", r)
        self.assertEqual(len(r["outfits"]), len(r["persons"]))
        self.assertIn("in memory", r["catalog"]["path"], "no catalogue file: the seed in memory, nothing written")
        self.assertFalse(os.path.exists(os.path.join(d, "data")))
        self.assertGreater(r["catalog"]["items"], 100)
        for person, advice in zip(r["persons"], r["outfits"]):
            self.assertEqual(person["garments"], advice["garments"])
            self.assertLessEqual(len(advice["recommendations"]), 2)
            for g in advice["garments"]:
                self.assertTrue(g["category"] and g["slot"])
                for c in g["colours"]:
                    self.assertRegex(c["hex"], r"^#[0-9A-Fa-f]{6}$")
                    self.assertTrue(c["name"])
            for rec in advice["recommendations"]:
                self.assertTrue(rec["reason"])
                self.assertTrue(rec["item"]["sku"])
        self.assertIn("outfits", r["timings_ms"])
        # the SPEC's keys are still there
        self.assertIn("instances", r)
        self.assertIn("total", r["timings_ms"])

    def test_single_person_model(self):
        self.assertTrue(os.path.exists(LIP), f"{LIP} missing: run the CTest fixture fixture_synthetic_lip")
        d = fresh_dir("parse_lip")
        p, path = self.parse(d, ["--k", "1"], model=LIP)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(path) as f:
            r = json.load(f)
        self.assertEqual(len(r["outfits"]), 1, "single-person mode: the photo is one person")
        self.assertEqual(len(r["persons"]), 1)
        self.assertIn("garments", r["persons"][0])

    def test_catalog_option_no_outfits_and_bad_style(self):
        d = fresh_dir("parse_options")
        db = os.path.join(d, "c.db")
        p, path = self.parse(d, ["--catalog", db, "--k", "1"])
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(path) as f:
            self.assertEqual(json.load(f)["catalog"]["path"], db)
        p, path = self.parse(d, ["--no-outfits"])
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(path) as f:
            r = json.load(f)
        self.assertNotIn("outfits", r)
        p, _ = self.parse(d, ["--style", "gothic"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown style 'gothic'", p.stderr)


if __name__ == "__main__":
    unittest.main()
