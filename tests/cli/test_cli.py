"""Tests of the `m2fp` command line (SPEC section 8): the files `m2fp parse` promises, bad inputs,
usage errors, `m2fp info` / `m2fp inspect`, and faults: output folder not writable or full, the
model file truncated, rewritten or replaced while it is loaded, SIGTERM while several photos are
parsed. Every case must end with a clear message and an exit status, never a crash (a signal, a
sanitizer report, an uncaught exception), and must leave no truncated output behind.

Run by CTest (tests/CMakeLists.txt: cli_basics, cli_faults) as
    M2FP_BIN=<build>/m2fp M2FP_TESTDATA=<build>/testdata /usr/bin/python3 -m unittest discover -s tests/cli -v
M2FP_CLI_TIER=quick runs only the classes marked QUICK (the quick tier: outputs, info and inspect),
M2FP_CLI_TIER=rest the others; unset, all of them (tests/CMakeLists.txt: cli_basics, cli_faults).
The synthetic CIHP checkpoint ($M2FP_TESTDATA/cihp_synth.safetensors) comes from the CTest fixture.
Photos are drawn here with Pillow. Cases that need root (a read-only or a tiny tmpfs mount) are
skipped with a message where mounting is not allowed.
"""

import errno
import io
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import tempfile
import time
import unittest

import numpy as np
from PIL import Image, ImageDraw

BIN = os.environ.get("M2FP_BIN", "")
TESTDATA = os.environ.get("M2FP_TESTDATA", "")
MODEL = os.path.join(TESTDATA, "cihp_synth.safetensors")
# Small network inputs keep each parse well under a second in a Release build.
FAST = ["--short-edge", "96", "--max-size", "160", "--threads", "2"]
CRASH_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "terminate called", "Segmentation fault",
                 "core dumped", "Assertion", "Traceback")
OUTPUT_FILES = ("result.json", "labels.png", "labels_color.png", "parsing.png", "persons.png")


def photo(width, height, seed=0):
    """A picture with two figures on a gradient."""
    img = Image.new("RGB", (width, height))
    px = img.load()
    for y in range(height):
        for x in range(width):
            px[x, y] = ((40 + 150 * x // width + seed * 17) % 256, 90 + 100 * y // height, 180 - 120 * x // width)
    d = ImageDraw.Draw(img)
    for i, cx in enumerate((0.3, 0.7)):
        x0, s = int(cx * width), height / 330.0
        d.ellipse([x0 - 25 * s, 40 * s, x0 + 25 * s, 100 * s], fill=(230, 190, 160))
        d.rectangle([x0 - 45 * s, 100 * s, x0 + 45 * s, 220 * s], fill=(200, 60 + 80 * i, 50))
        d.rectangle([x0 - 40 * s, 220 * s, x0 + 40 * s, 320 * s], fill=(30, 30, 90))
    return img


def encode(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def load_tests(loader, standard_tests, pattern):
    """M2FP_CLI_TIER=quick|rest splits the classes by their QUICK attribute; every class is in one."""
    tier = os.environ.get("M2FP_CLI_TIER", "")
    if tier not in ("", "quick", "rest"):
        raise ValueError("M2FP_CLI_TIER must be quick or rest, got %r" % tier)
    suite = unittest.TestSuite()
    for group in standard_tests:
        for case in group:
            quick = getattr(type(case), "QUICK", False)
            if not tier or (tier == "quick") == quick:
                suite.addTest(case)
    return suite


def can_mount():
    return os.geteuid() == 0 and shutil.which("mount") is not None


class CliCase(unittest.TestCase):
    """Base: a scratch folder, photos, and a runner that checks for crashes."""

    @classmethod
    def setUpClass(cls):
        if not BIN or not os.path.isfile(BIN):
            raise AssertionError("M2FP_BIN must name the m2fp binary (got %r)" % BIN)
        if not os.path.isfile(MODEL):
            raise AssertionError("missing %s (the CTest fixture fixture_synthetic_cihp writes it)" % MODEL)
        cls.root = tempfile.mkdtemp(prefix="m2fp_cli_test_")
        cls.photos = {}
        for name, (w, h, fmt, kw) in {
            "walk.png": (120, 90, "PNG", {}),
            "street.jpg": (100, 140, "JPEG", {"quality": 85}),
            "small.bmp": (64, 48, "BMP", {}),
            "wide.png": (200, 60, "PNG", {}),
        }.items():
            cls.photos[name] = write(os.path.join(cls.root, name), encode(photo(w, h, len(name)), fmt, **kw))
        with open(cls.photos["walk.png"], "rb") as f:
            png = f.read()
        with open(cls.photos["street.jpg"], "rb") as f:
            jpg = f.read()
        cls.bad = {
            "notes.txt": write(os.path.join(cls.root, "notes.txt"), b"these are not pixels\n"),
            "cut.png": write(os.path.join(cls.root, "cut.png"), png[:len(png) // 2]),
            "cut.jpg": write(os.path.join(cls.root, "cut.jpg"), jpg[:len(jpg) // 2]),
            "empty.png": write(os.path.join(cls.root, "empty.png"), b""),
            "anim.gif": write(os.path.join(cls.root, "anim.gif"), encode(photo(16, 16), "GIF")),
        }
        os.makedirs(os.path.join(cls.root, "folder.png"))
        cls.bad["folder.png"] = os.path.join(cls.root, "folder.png")
        cls.bad["missing.png"] = os.path.join(cls.root, "missing.png")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="case_", dir=self.root)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_m2fp(self, args, timeout=900):
        r = subprocess.run([BIN] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=timeout, env=dict(os.environ, OMP_NUM_THREADS="2"))
        self.assert_no_crash(r.returncode, r.stderr)
        return r

    def assert_no_crash(self, rc, stderr):
        self.assertGreaterEqual(rc, 0, "killed by signal %d:\n%s" % (-rc, stderr[-3000:]))
        for m in CRASH_MARKERS:
            self.assertNotIn(m, stderr, stderr[-3000:])

    def assert_complete(self, d):
        """A complete output folder: result.json (the contract's keys), labels.png (8-bit palette
        of class ids, photo size), persons.png, labels_color.png (photo size), parsing.png (the photo, maybe enlarged, and a legend);
        returns the result."""
        for f in OUTPUT_FILES:
            self.assertTrue(os.path.isfile(os.path.join(d, f)), "%s missing in %s" % (f, d))
        self.assertEqual([f for f in os.listdir(d) if f.endswith(".tmp")], [])
        with open(os.path.join(d, "result.json")) as f:
            res = json.load(f)
        w, h = res["image"]["width"], res["image"]["height"]
        with Image.open(os.path.join(d, "labels.png")) as lab:
            # issue 11: a palette image whose values are the class ids (was plain greyscale "L")
            self.assertEqual((lab.mode, lab.size), ("P", (w, h)))
        with Image.open(os.path.join(d, "labels_color.png")) as im:
            im.load()
            self.assertEqual((im.mode, im.size), ("RGB", (w, h)))
        with Image.open(os.path.join(d, "parsing.png")) as im:
            im.load()
            self.assertEqual(im.mode, "RGB")
            self.assertTrue(im.size[0] > w and im.size[1] >= h, "parsing.png %s for a %dx%d photo" % (im.size, w, h))
        self.assertIsInstance(res["instances"], list)
        for inst in res["instances"]:
            for key in ("kind", "category_id", "label", "score", "area"):
                self.assertIn(key, inst)
            self.assertIn(inst["kind"], ("part", "human"))
            self.assertTrue(0 <= inst["score"] <= 1)
            self.assertTrue(0 <= inst["area"] <= w * h)
        self.assertGreater(res["timings_ms"]["total"], 0)
        return res

    def mount_tmpfs(self, path, options):
        """Mounts a tmpfs at `path` (skips the test where that is not allowed)."""
        if not can_mount():
            self.skipTest("mounting a tmpfs needs root")
        os.makedirs(path, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: " + r.stderr.strip())
        self.addCleanup(lambda: subprocess.run(["umount", "-l", path]))


# ---- outputs -------------------------------------------------------------------------------------

class ParseOutputs(CliCase):
    QUICK = True


    def test_every_promised_file(self):
        out = os.path.join(self.tmp, "out")
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", out, "--dump-tensors"] + FAST +
                          [self.photos["walk.png"], self.photos["street.jpg"]])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("SYNTHETIC WEIGHTS", r.stderr)
        for name in ("walk", "street"):
            d = os.path.join(out, name)
            res = self.assert_complete(d)
            with Image.open(self.photos[name + (".png" if name == "walk" else ".jpg")]) as src:
                size = src.size
            self.assertEqual((res["image"]["width"], res["image"]["height"]), size)
            self.assertTrue(res["model"]["synthetic"])
            nh, nw = res["image"]["network_input"]["height"], res["image"]["network_input"]["width"]
            hp, wp = res["image"]["padded"]["height"], res["image"]["padded"]["width"]
            self.assertEqual(min(nh, nw), 96)
            self.assertEqual((hp % 32, wp % 32), (0, 0))
            t = os.path.join(d, "tensors")
            inp = np.load(os.path.join(t, "input.npy"))
            self.assertEqual((inp.dtype, inp.shape), (np.float32, (3, nh, nw)))
            self.assertTrue(0 <= inp.min() and inp.max() <= 255)
            logits = np.load(os.path.join(t, "pred_logits.npy"))
            self.assertEqual((logits.dtype, logits.shape), (np.float32, (100, 22)))
            masks = np.load(os.path.join(t, "pred_masks.npy"))
            self.assertEqual((masks.dtype, masks.shape), (np.float32, (100, hp // 4, wp // 4)))
            self.assertTrue(np.isfinite(logits).all() and np.isfinite(masks).all())
            # labels.png against result.json: the classes present and their fractions
            with Image.open(os.path.join(d, "labels.png")) as im:
                lab = np.asarray(im)
            classes = res["model"]["classes"]
            self.assertLess(int(lab.max()), len(classes))
            counts = np.bincount(lab.ravel(), minlength=len(classes))
            present = [classes[c] for c in range(len(classes)) if counts[c]]
            self.assertEqual(sorted(present), sorted(res["labels_present"]))
            for c in range(len(classes)):
                if counts[c]:
                    self.assertAlmostEqual(res["label_fractions"][classes[c]], counts[c] / lab.size, places=6)
            print("  %s: %dx%d -> %dx%d, %d instances, labels %s, %.0f ms" % (
                name, size[0], size[1], nw, nh, len(res["instances"]), present, res["timings_ms"]["total"]))

    def test_same_name_twice_and_formats(self):
        out = os.path.join(self.tmp, "out")
        other = os.path.join(self.tmp, "b")
        os.makedirs(other)
        dup = shutil.copy(self.photos["walk.png"], other)
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", out] + FAST +
                          [self.photos["walk.png"], dup, self.photos["small.bmp"], self.photos["wide.png"]])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.listdir(out)), ["small", "walk", "walk-2", "wide"])
        isas = set()
        for d in os.listdir(out):
            isas.add(self.assert_complete(os.path.join(out, d))["model"]["isa"])
        self.assertEqual(len(r.stdout.strip().splitlines()), 4, r.stdout)
        # every summary line names the kernel ISA the photos were parsed with
        self.assertEqual(len(isas), 1, isas)
        isa = isas.pop()
        for line in r.stdout.strip().splitlines():
            self.assertIn(", isa %s, " % isa, line)

    def test_rerun_replaces_previous_outputs(self):
        out = os.path.join(self.tmp, "out")
        args = ["parse", "--model", MODEL, "--out", out] + FAST + [self.photos["walk.png"]]
        self.assertEqual(self.run_m2fp(args + ["--dump-tensors"]).returncode, 0)
        self.assertTrue(os.path.isdir(os.path.join(out, "walk", "tensors")))
        self.assertEqual(self.run_m2fp(args).returncode, 0)
        # the second run did not dump tensors: the first run's are gone, not left to mismatch
        self.assertFalse(os.path.exists(os.path.join(out, "walk", "tensors")))
        self.assert_complete(os.path.join(out, "walk"))

    def test_refine_is_an_option(self):
        # --refine dark,small: result.json records what each refinement changed; without it the outputs
        # are the model's own (no "refinements" key), and a refinement that changed nothing leaves
        # every output byte-identical.
        plain, refined = os.path.join(self.tmp, "plain"), os.path.join(self.tmp, "refined")
        src = self.photos["walk.png"]
        self.assertEqual(self.run_m2fp(["parse", "--model", MODEL, "--out", plain] + FAST + [src]).returncode, 0)
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", refined, "--refine", "dark,small"] + FAST + [src])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(plain, "walk", "result.json")) as f:
            a = json.load(f)
        with open(os.path.join(refined, "walk", "result.json")) as f:
            b = json.load(f)
        self.assertNotIn("refinements", a)
        ref = b["refinements"]
        self.assertEqual(ref["requested"], ["dark", "small"])
        self.assertEqual([c["name"] for c in ref["changes"]], ["dark", "small"])
        for c in ref["changes"]:
            self.assertEqual(c["pixels"], sum(c["per_class"].values()))
            self.assertEqual(c["pixels"], sum(p["pixels"] for p in c["per_person"]))
        if sum(c["pixels"] for c in ref["changes"]) == 0:
            for f in ("labels.png", "labels_color.png", "parsing.png"):
                with open(os.path.join(plain, "walk", f), "rb") as x, open(os.path.join(refined, "walk", f), "rb") as y:
                    self.assertEqual(x.read(), y.read(), f)
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", refined, "--refine", "hats"] + FAST + [src])
        self.assertEqual(r.returncode, 2)
        self.assertIn("--refine must be a comma-separated list of dark, small", r.stderr)


# ---- bad inputs and usage ------------------------------------------------------------------------

class BadInputs(CliCase):


    def test_one_bad_photo_among_good_ones(self):
        out = os.path.join(self.tmp, "out")
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", out] + FAST +
                          [self.photos["walk.png"], self.bad["notes.txt"], self.bad["cut.png"], self.photos["small.bmp"]])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("notes.txt: not an image", r.stderr)
        self.assertIn("cut.png:", r.stderr)
        self.assertIn("2 of 4 images failed", r.stderr)
        self.assertEqual(sorted(os.listdir(out)), ["small", "walk"])   # nothing for the bad ones
        self.assert_complete(os.path.join(out, "walk"))
        self.assert_complete(os.path.join(out, "small"))

    def test_each_bad_photo(self):
        expect = {
            "notes.txt": "not an image: unrecognised leading bytes",
            "cut.png": "PNG",
            "cut.jpg": "JPEG is truncated",
            "empty.png": "empty input",
            "anim.gif": "unsupported image format GIF",
            "missing.png": "No such file or directory",
        }
        out = os.path.join(self.tmp, "out")
        # one run for all: the model is loaded once, each photo fails on its own
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", out] + FAST + [self.bad[k] for k in expect])
        self.assertEqual(r.returncode, 1)
        lines = [l for l in r.stderr.splitlines() if l.startswith("m2fp: ") and "WARNING" not in l]
        for name, words in expect.items():
            mine = [l for l in lines if l.startswith("m2fp: " + self.bad[name] + ": ")]
            self.assertEqual(len(mine), 1, "%s: %s" % (name, r.stderr))
            self.assertIn(words, mine[0])
            print("  %-12s %s" % (name, mine[0][len("m2fp: " + self.bad[name] + ": "):][:110]))
        self.assertIn("%d of %d images failed" % (len(expect), len(expect)), r.stderr)
        self.assertEqual(os.listdir(out), [])

    def test_pixel_limit_before_decoding(self):
        # a PNG header announcing 100000 x 100000 pixels, no pixel data: refused from the header
        ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
        import zlib
        chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
        huge = write(os.path.join(self.tmp, "huge.png"), b"\x89PNG\r\n\x1a\n" + chunk)
        big = write(os.path.join(self.tmp, "big.png"), encode(photo(1200, 900), "PNG"))
        out = os.path.join(self.tmp, "out")
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", out, "--max-pixels", "1"] + FAST + [huge, big])
        self.assertEqual(r.returncode, 1)
        self.assertIn("100000x100000 = 10 Gpx, limit 1 Mpx", r.stderr)
        self.assertIn("1200x900 = 1.08 Mpx, limit 1 Mpx", r.stderr)

    def test_png_allocation_attacks(self):
        """Small PNGs that made stb_image allocate gigabytes: a chunk declaring 2 GB (fuzz finding)
        and a 20 KB 'compression bomb' inflating to 20 MB for a 16x16 image (stb accepted it,
        400 MB for a 400 KB file). Both are refused before stb_image sees them."""
        import zlib

        def chunk(t, d):
            return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
        ihdr = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
        bomb = write(os.path.join(self.tmp, "bomb.png"), b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
                     chunk(b"IDAT", zlib.compress(b"\0" * (20 << 20), 9)) + chunk(b"IEND", b""))
        regression = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                  "fuzz", "regressions", "image", "png_idat_length_2gb")
        long_chunk = shutil.copy(regression, os.path.join(self.tmp, "long_chunk.png"))
        out = os.path.join(self.tmp, "out")
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", out] + FAST + [bomb, long_chunk])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("bomb.png: corrupt PNG: its %d bytes of pixel data inflate to more than" %
                      len(zlib.compress(b"\0" * (20 << 20), 9)), r.stderr)
        self.assertIn("long_chunk.png: PNG is truncated or corrupt: chunk 'IDAT' of 2130706471 bytes at byte 33 "
                      "runs past the end of the 102-byte file", r.stderr)
        print("\n".join("  " + l[:160] for l in r.stderr.splitlines() if ".png:" in l))

    def test_usage_errors(self):
        photo_ = self.photos["walk.png"]
        out = os.path.join(self.tmp, "out")
        cases = [
            (["parse", "--model", MODEL, "--out", out, "--bogus", photo_], "unknown option --bogus"),
            (["parse", "--out", out, photo_], "missing required option --model"),
            (["parse", "--model", MODEL, photo_], "missing required option --out"),
            (["parse", "--model", MODEL, "--out", out], "no IMAGE given"),
            (["parse", "--model", MODEL, "--out", out, "--threads", "abc", photo_], "--threads expects an integer"),
            (["parse", "--model", MODEL, "--out", out, "--threads", "-1", photo_], "--threads must be in [0, 1024]"),
            (["parse", "--model", MODEL, "--out", out, "--threads", "99999999999999999999", photo_],
             "--threads expects an integer"),
            (["parse", "--model", MODEL, "--out", out, "--short-edge", "0", photo_], "--short-edge must be in"),
            (["parse", "--model", MODEL, "--out", out, "--precision", "fp16", photo_], "--precision must be fp32 or bf16"),
            (["parse", "--model", MODEL, "--out", out, "--dump-tensors=1", photo_], "takes no value"),
            (["parse", "--model"], "needs a value"),
            (["info"], "missing required option --model"),
            (["info", "--model", MODEL, "extra"], "unexpected argument 'extra'"),
            (["inspect", "--model", MODEL, "--height", "0"], "--height must be in"),
            (["frobnicate"], "unknown command 'frobnicate'"),
            ([], "usage: m2fp"),
        ]
        for args, words in cases:
            r = self.run_m2fp(args)
            self.assertEqual(r.returncode, 2, "%s: %s" % (args, r.stderr))
            self.assertIn(words, r.stderr, args)
            self.assertEqual(r.stdout, "", args)
        self.assertFalse(os.path.exists(out), "a usage error must not create the output folder")
        print("  %d usage errors: exit 2 with a message" % len(cases))

    def test_bad_model_files(self):
        cut = os.path.join(self.tmp, "cut.safetensors")
        with open(MODEL, "rb") as f, open(cut, "wb") as g:
            g.write(f.read(1 << 20))
        text = write(os.path.join(self.tmp, "model.txt"), b"not a model\n")
        # issue 12 point 8: the unconverted ModelScope checkpoint (a torch.save zip) and an older
        # torch.save pickle stream point at the converter, not at a header length
        import pickle
        import zipfile
        pt_zip = os.path.join(self.tmp, "pytorch_model.pt")
        with zipfile.ZipFile(pt_zip, "w") as z:
            z.writestr("archive/data.pkl", pickle.dumps({"model": {}}, protocol=2))
            z.writestr("archive/version", "3\n")
        pt_pickle = write(os.path.join(self.tmp, "legacy.pth"), pickle.dumps({"state_dict": {}}, protocol=2) + bytes(64))
        out = os.path.join(self.tmp, "out")
        cases = [
            (pt_zip, "is a PyTorch checkpoint (zip archive, e.g. ModelScope's pytorch_model.pt), not a safetensors "
                     "file: convert it first with `python3 tools/convert_weights.py"),
            (pt_pickle, "is a PyTorch checkpoint (pickle stream), not a safetensors file: convert it first with "
                        "`python3 tools/convert_weights.py"),
            (os.path.join(self.tmp, "none.safetensors"), "cannot open: No such file or directory"),
            (self.tmp, "is a directory"),
            (text, "header length"),
            (cut, "file truncated?"),
            ("/dev/null", "not a regular file"),
        ]
        for model, words in cases:
            for cmd in (["parse", "--model", model, "--out", out, self.photos["walk.png"]], ["info", "--model", model]):
                r = self.run_m2fp(cmd)
                self.assertEqual(r.returncode, 1, "%s: %s" % (cmd, r.stderr))
                self.assertTrue(r.stderr.startswith("m2fp %s: error: %s: " % (cmd[0], model)), r.stderr)
                self.assertIn(words, r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            print("  %-40s %s" % (os.path.basename(model), r.stderr.strip()[:120]))
        self.assertFalse(os.path.exists(os.path.join(out, "walk")))


class ParseFolder(CliCase):
    """issue 12 point 2: `m2fp parse DIR` parses the photos of a folder (sorted; --recursive), names
    what it skipped and why, and writes each photo to its own sub-folder of --out."""

    def make_folder(self):
        d = os.path.join(self.tmp, "photos")
        os.makedirs(os.path.join(d, "sub", "deeper"))
        shutil.copy(self.photos["walk.png"], os.path.join(d, "b_walk.png"))
        shutil.copy(self.photos["small.bmp"], os.path.join(d, "a_small.bmp"))
        # a JPEG without its extension: photos are recognised by their bytes, not their names
        shutil.copy(self.photos["street.jpg"], os.path.join(d, "sub", "street"))
        shutil.copy(self.photos["wide.png"], os.path.join(d, "sub", "deeper", "wide.PNG"))
        write(os.path.join(d, "notes.txt"), b"these are not pixels\n")
        write(os.path.join(d, "empty.jpg"), b"")
        shutil.copy(self.bad["anim.gif"], os.path.join(d, "anim.gif"))
        os.symlink(os.path.join(self.tmp, "nowhere.jpg"), os.path.join(d, "dangling.jpg"))  # unreadable
        os.mkfifo(os.path.join(d, "pipe.png"))  # never opened: listing a folder must not hang on it
        return d

    def skipped(self, stderr):
        return {l.split(": ", 2)[1][len("skipped "):]: l.split(": ", 2)[2]
                for l in stderr.splitlines() if l.startswith("m2fp: skipped ")}

    def test_folder_then_recursive(self):
        d = self.make_folder()
        out = os.path.join(self.tmp, "out")
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", out] + FAST + [d])
        self.assertEqual(r.returncode, 0, r.stderr)
        # sorted by name, one line each, one folder each
        lines = r.stdout.strip().splitlines()
        self.assertEqual([l.split(":")[0] for l in lines], [os.path.join(d, "a_small.bmp"), os.path.join(d, "b_walk.png")])
        self.assertEqual(sorted(os.listdir(out)), ["a_small", "b_walk"])
        for n in ("a_small", "b_walk"):
            self.assert_complete(os.path.join(out, n))
        skipped = self.skipped(r.stderr)
        j = lambda *p: os.path.join(d, *p)
        self.assertEqual(skipped, {
            j("anim.gif"): "GIF is not supported (JPEG, PNG, BMP)",
            j("dangling.jpg"): "unreadable: No such file or directory",
            j("empty.jpg"): "empty file",
            j("notes.txt"): "not an image",
            j("pipe.png"): "not a regular file",
            j("sub"): "a sub-folder (--recursive parses sub-folders)",
        })
        self.assertIn("m2fp: 6 entries of the folders skipped, not photos (named above)", r.stderr)
        print("\n".join("  " + l for l in r.stderr.splitlines() if "skipped" in l))

        # --recursive: the sub-folders too, at their relative paths under --out; the photos found by
        # their bytes whatever their names; the first run's output folders are outputs, not photos
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", out, "--recursive"] + FAST + [d])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([l.split(":")[0] for l in r.stdout.strip().splitlines()],
                         [j("a_small.bmp"), j("b_walk.png"), j("sub", "deeper", "wide.PNG"), j("sub", "street")])
        for n in ("a_small", "b_walk", "sub/street", "sub/deeper/wide"):
            self.assert_complete(os.path.join(out, n))
        self.assertNotIn(j("sub"), self.skipped(r.stderr))
        self.assertIn("m2fp: 5 entries of the folders skipped", r.stderr)

    def test_output_inside_the_folder_and_empty_folders(self):
        d = self.make_folder()
        # --out inside the folder it parses, recursively: its outputs are never taken for photos
        out = os.path.join(d, "sub", "parsed")
        for _ in range(2):
            r = self.run_m2fp(["parse", "--model", MODEL, "--out", out, "--recursive"] + FAST +
                              [os.path.join(d, "sub")])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(len(r.stdout.strip().splitlines()), 2, r.stdout)
        # a folder without photos: exit status 1 with its name; before the model is even loaded when
        # nothing else is given
        empty = os.path.join(self.tmp, "empty")
        os.makedirs(empty)
        write(os.path.join(empty, "readme.txt"), b"no photos here\n")
        out2 = os.path.join(self.tmp, "out2")
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", out2] + FAST + [empty])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("m2fp parse: error: no photos to parse: none in %s" % empty, r.stderr)
        self.assertNotIn("SYNTHETIC", r.stderr)  # the model was not loaded
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", out2] + FAST + [empty, self.photos["walk.png"]])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("m2fp: %s: no photos in this folder" % empty, r.stderr)
        self.assert_complete(os.path.join(out2, "walk"))
        # the same as a bad file given by name: "1 of 1 image failed" (no "1 images")
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", out2] + FAST + [self.bad["notes.txt"]])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("m2fp: 1 of 1 image failed", r.stderr)


class SelfExplaining(CliCase):
    """issue 12 point 8: --version, every command's --help with every option's meaning and default."""
    QUICK = True

    COMMANDS = ("parse", "serve", "catalog", "info", "inspect")

    def test_version(self):
        for flag in ("--version", "version", "-V"):
            r = self.run_m2fp([flag])
            self.assertEqual(r.returncode, 0, r.stderr)
            lines = r.stdout.splitlines()
            self.assertRegex(lines[0], r"^m2fp \d+\.\d+\.\d+ \(commit [0-9A-Za-z._-]+, \w+ build\)$")
            self.assertNotIn("commit )", lines[0])
            self.assertRegex(lines[1], r"^oneDNN \d+\.\d+\.\d+ \(convolutions and matmuls; runs \S+ on this CPU\)$")
            self.assertRegex(lines[2], r"^kernels: (scalar|avx2|avx512) on this CPU")
        print("  " + "\n  ".join(r.stdout.splitlines()))
        # the ISA it names is the one parse uses; M2FP_ISA forces it
        r = subprocess.run([BIN, "--version"], stdout=subprocess.PIPE, universal_newlines=True,
                           env=dict(os.environ, M2FP_ISA="scalar"))
        self.assertIn("kernels: scalar on this CPU (forced by M2FP_ISA", r.stdout)
        r = self.run_m2fp(["--version", "extra"])
        self.assertEqual(r.returncode, 2)

    def help_options(self, cmd):
        r = self.run_m2fp([cmd, "--help"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        self.assertTrue(r.stdout.startswith("usage: m2fp %s " % cmd), r.stdout[:200])
        # "  --name VALUE" entries, each followed by its meaning (and "default: ..." for valued ones)
        entries, lines = {}, r.stdout.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("  --"):
                head = line.split()
                body = []
                for nxt in lines[i + 1:]:
                    if not nxt.startswith("      "):
                        break
                    body.append(nxt.strip())
                entries[head[0][2:]] = (head[1] if len(head) > 1 else None, body)
        return r.stdout, entries

    def test_every_command_lists_its_options_with_meaning_and_default(self):
        for cmd in self.COMMANDS:
            text, entries = self.help_options(cmd)
            self.assertIn("help", entries)
            for name, (value, body) in entries.items():
                self.assertTrue(body and len(body[0]) > 10, "%s --%s has no meaning" % (cmd, name))
                if value and not " ".join(body).endswith("required"):
                    self.assertTrue(body[-1].startswith("default: "), "%s --%s: %s" % (cmd, name, body))
                # the parser knows every option the help lists (a value where it takes one)
                if name != "help":
                    args = [cmd] + (["import"] if cmd == "catalog" else []) + ["--" + name] + (["1"] if value else [])
                    r = self.run_m2fp(args + ["--no-such-option"])
                    self.assertIn("unknown option --no-such-option", r.stderr, (cmd, name, r.stderr))
            print("  m2fp %s --help: %d options" % (cmd, len(entries)))
        # defaults and units as the issue asked, for a few that matter
        _, parse = self.help_options("parse")
        self.assertEqual(parse["short-edge"], ("PX", parse["short-edge"][1]))
        self.assertEqual(parse["short-edge"][1][-1], "default: 640")
        self.assertIn("megapixels", " ".join(parse["max-pixels"][1]))
        self.assertEqual(parse["max-pixels"][1][-1], "default: 50")
        self.assertIn("recursive", parse)
        _, serve = self.help_options("serve")
        self.assertEqual(serve["port"][1][-1], "default: 5000")
        self.assertIn("seconds", " ".join(serve["timeout"][1]))
        self.assertIn("MiB", " ".join(serve["max-upload-mb"][1]))
        # `m2fp --help` points at them; a usage error names the command's help
        r = self.run_m2fp(["--help"])
        self.assertIn("`m2fp <command> --help` lists the command's options", r.stdout)
        r = self.run_m2fp(["parse", "--bogus"])
        self.assertIn("(see m2fp parse --help)", r.stderr)
        self.assertEqual(r.returncode, 2)

    def test_catalog_import_checks_names(self):
        db = os.path.join(self.tmp, "shop.db")
        csv = write(os.path.join(self.tmp, "new.csv"),
                    b"sku,name,category,slot,colour,hex,colours,styles,seasons,price,popularity\n"
                    b"K-1,Silk Kimono,kimono,one_piece,red,#C8102E,red,boho,winter,80,40\n")
        r = self.run_m2fp(["catalog", "import", csv, "--catalog", db])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("column 'category': 'kimono' is not a known category for slot one_piece (known: dress, jumpsuit)",
                      r.stderr)
        self.assertIn("column 'styles': 'boho' is not a known style (known: casual, business, street, sport, formal)",
                      r.stderr)
        self.assertIn("--allow-new accepts them on purpose", r.stderr)
        r = self.run_m2fp(["catalog", "import", csv, "--catalog", db, "--allow-new"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 row: 1 new, 0 updated", r.stdout)
        self.assertIn("new category 'kimono', accepted by --allow-new", r.stdout)
        self.assertIn("new style 'boho', accepted by --allow-new", r.stdout)


class InfoInspect(CliCase):
    QUICK = True


    def test_info(self):
        r = self.run_m2fp(["info", "--model", MODEL])
        self.assertEqual(r.returncode, 0, r.stderr)
        o = r.stdout
        self.assertIn("SYNTHETIC WEIGHTS", o)
        self.assertIn("mode:       multi-person (instance parsing)", o)
        self.assertIn("backbone:   DeepLab ResNet-101", o)
        self.assertIn("decoder:    9 layers, 100 queries", o)
        self.assertIn("classes:    21: Background, Hat, Hair", o)
        rows = {}
        for line in o.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[-1].isdigit():
                rows[" ".join(parts[:-1])] = int(parts[-1])
        total = int(o.split("parameters: ")[1].split()[0])
        self.assertEqual(total, 63124118)   # the CIHP model (SPEC)
        self.assertEqual(rows["backbone"] + rows["pixel decoder"] + rows["transformer decoder"], total)

    def test_inspect(self):
        r = self.run_m2fp(["inspect", "--model", MODEL])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("photo 342x548 -> resized 640x1025 -> padded 640x1056 (h x w)", r.stdout)
        total = [l.split() for l in r.stdout.splitlines() if l.startswith("total ")]
        self.assertEqual(len(total), 1, r.stdout)
        self.assertGreater(float(total[0][1]), 100)   # GMAC of the whole network at 640x1056
        for stage in ("backbone", "pixel_decoder", "transformer_decoder"):
            self.assertIn("\n%-20s" % stage, r.stdout)
        r2 = self.run_m2fp(["inspect", "--model", MODEL, "--height", "100", "--width", "100"])
        self.assertIn("photo 100x100 -> resized 640x640 -> padded 640x640", r2.stdout)


class Prepare(CliCase):
    """Cold start (issue 14): `m2fp parse` prepares the network for its photos' sizes (read from their
    headers) right after the load, unless --no-prepare; the outputs are byte-identical either way.
    `m2fp serve --prepare/--warm-up` refuse bad values before loading anything."""

    def test_prepared_and_unprepared_outputs_are_identical(self):
        photos = [self.photos["walk.png"], self.photos["street.jpg"], self.photos["wide.png"], self.bad["cut.png"]]
        outs = {}
        for mode in ("prepared", "unprepared"):
            out = os.path.join(self.tmp, mode)
            extra = ["--no-prepare"] if mode == "unprepared" else []
            r = self.run_m2fp(["parse", "--model", MODEL, "--out", out, "--no-outfits", "--verbose"] + FAST + extra +
                              photos)
            self.assertEqual(r.returncode, 1, r.stderr)  # cut.png fails in its parse, the others are written
            self.assertIn("cut.png", r.stderr)
            # walk (120x90) and street (100x140) and wide (200x60) have three distinct input sizes
            if mode == "prepared":
                self.assertIn("m2fp: prepared 3 input sizes in", r.stderr)
            else:
                self.assertNotIn("m2fp: prepared", r.stderr)
            outs[mode] = out
        for name in ("walk", "street", "wide"):
            for f in ("labels.png", "persons.png"):
                with open(os.path.join(outs["prepared"], name, f), "rb") as a, \
                        open(os.path.join(outs["unprepared"], name, f), "rb") as b:
                    self.assertEqual(a.read(), b.read(), (name, f))

    def test_serve_refuses_bad_prepare_options(self):
        for args, msg in [
            (["--prepare", "64x"], "--prepare must be \"common\" or photo sizes WIDTHxHEIGHT"),
            (["--prepare", "0x48"], "got '0x48'"),
            (["--warm-up"], "--warm-up needs --prepare"),
        ]:
            r = self.run_m2fp(["serve", "--model", MODEL, "--port", "0"] + args, timeout=60)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn(msg, r.stderr, args)


class Precision(CliCase):

    def test_bf16(self):
        """bf16 needs AVX512-BF16 for speed; on other CPUs it must either work or say why not."""
        out = os.path.join(self.tmp, "out")
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", out, "--precision", "bf16"] + FAST +
                          [self.photos["walk.png"]])
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        avx512bf16 = "avx512_bf16" in flags
        if r.returncode == 0:
            res = self.assert_complete(os.path.join(out, "walk"))
            self.assertEqual(res["model"]["precision"], "bf16")
            print("  --precision bf16: parsed (%s AVX512-BF16), %.0f ms" % (
                "with" if avx512bf16 else "WITHOUT", res["timings_ms"]["total"]))
        else:
            # refused when the engine loads the model, before any weights are read, with its reason, on a
            # CPU without AVX-512
            self.assertNotIn("avx512f", flags)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("--precision bf16: ", r.stderr)
            self.assertIn("AVX-512", r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            print("  --precision bf16 refused: %s" % r.stderr.strip())


# ---- faults --------------------------------------------------------------------------------------

def complete_or_absent(test, out):
    """Every image folder under `out` is complete or holds none of our files; no .tmp anywhere."""
    names = []
    for d in sorted(os.listdir(out)):
        p = os.path.join(out, d)
        present = [f for f in OUTPUT_FILES if os.path.exists(os.path.join(p, f))]
        tmps = [f for f in os.listdir(p) if f.endswith(".tmp")]
        test.assertEqual(tmps, [], "temporary files left in %s" % p)
        if present:
            test.assert_complete(p)
            names.append(d)
        else:
            test.assertEqual(os.listdir(p), [], "partial outputs in %s" % p)
    return names


def wait_for_mapping(proc, path, timeout=120):
    """Waits until `proc` has `path` mapped (the model is being loaded); True if seen."""
    real = os.path.realpath(path)
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            return False
        try:
            with open("/proc/%d/maps" % proc.pid) as f:
                if real in f.read():
                    return True
        except OSError:
            return False
        time.sleep(0.002)
    return False


class Faults(CliCase):

    def copy_model(self, name="model.safetensors"):
        dst = os.path.join(self.tmp, name)
        shutil.copyfile(MODEL, dst)
        return dst

    def test_output_folder_is_a_file(self):
        f = write(os.path.join(self.tmp, "file"), b"x")
        for out in (f, os.path.join(f, "sub")):
            r = self.run_m2fp(["parse", "--model", MODEL, "--out", out, self.photos["walk.png"]])
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertTrue("not a folder" in r.stderr or "cannot create the output folder" in r.stderr, r.stderr)
            print("  --out %s: %s" % (os.path.relpath(out, self.tmp), r.stderr.strip()[:140]))

    def test_output_folder_not_writable(self):
        out = os.path.join(self.tmp, "ro")
        if os.geteuid() == 0:
            self.mount_tmpfs(out, "ro,size=1m")
        else:
            os.makedirs(out)
            os.chmod(out, stat.S_IRUSR | stat.S_IXUSR)
            self.addCleanup(os.chmod, out, stat.S_IRWXU)
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", out, self.photos["walk.png"]])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("the output folder is not writable", r.stderr)
        print("  " + r.stderr.strip().splitlines()[-1])
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", os.path.join(out, "sub"), self.photos["walk.png"]])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("cannot create the output folder", r.stderr)

    def test_disk_full_on_one_file(self):
        """labels.png.tmp is a link to /dev/full: every write to it fails with ENOSPC."""
        out = os.path.join(self.tmp, "out")
        os.makedirs(os.path.join(out, "walk"))
        os.symlink("/dev/full", os.path.join(out, "walk", "labels.png.tmp"))
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", out] + FAST +
                          [self.photos["walk.png"], self.photos["small.bmp"]])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("No space left on device", r.stderr)
        self.assertIn("stopped: the outputs cannot be written after 1 of 2 images; not parsed: " +
                      self.photos["small.bmp"], r.stderr)
        self.assertEqual(os.listdir(os.path.join(out, "walk")), [])   # nothing half-written, tmp removed
        self.assertFalse(os.path.exists(os.path.join(out, "small")))
        print("  " + [l for l in r.stderr.splitlines() if "No space" in l][0][:200])

    def test_disk_full_tmpfs(self):
        """A 256 KiB file system: the tensors of --dump-tensors do not fit."""
        out = os.path.join(self.tmp, "small_fs")
        self.mount_tmpfs(out, "size=256k")
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", out, "--dump-tensors"] + FAST +
                          [self.photos["walk.png"], self.photos["street.jpg"]])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("No space left on device", r.stderr)
        self.assertIn("not parsed: " + self.photos["street.jpg"], r.stderr)
        self.assertEqual(complete_or_absent(self, out), [])
        st = os.statvfs(out)
        print("  %s; file system left with %d of %d blocks free" % (
            [l for l in r.stderr.splitlines() if "No space" in l][0][:150], st.f_bfree, st.f_blocks))
        # with room for the pictures but not for the tensors, plain parsing works
        r = self.run_m2fp(["parse", "--model", MODEL, "--out", out] + FAST + [self.photos["walk.png"]])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(complete_or_absent(self, out), ["walk"])

    def test_model_truncated_during_load(self):
        """The model file is cut to half while m2fp has it mapped (stopped with SIGSTOP, so the
        moment is certain): a clear error, never SIGBUS."""
        model = self.copy_model()
        out = os.path.join(self.tmp, "out")
        p = subprocess.Popen([BIN, "parse", "--model", model, "--out", out] + FAST + [self.photos["walk.png"]],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        try:
            self.assertTrue(wait_for_mapping(p, model), "m2fp never mapped the model")
            p.send_signal(signal.SIGSTOP)
            size = os.path.getsize(model)
            os.truncate(model, size // 2)
            p.send_signal(signal.SIGCONT)
            stdout, stderr = p.communicate(timeout=600)
        finally:
            if p.poll() is None:
                p.kill()
        self.assert_no_crash(p.returncode, stderr)
        self.assertEqual(p.returncode, 1, stderr)
        self.assertTrue("the file was truncated while it was being read" in stderr or
                        "the file changed while it was being read" in stderr, stderr)
        self.assertIn("load it again", stderr)
        self.assertFalse(os.path.exists(os.path.join(out, "walk")))
        print("  " + stderr.strip().splitlines()[-1][:220])

    def test_model_truncated_while_weights_are_copied(self):
        """Later in the load: m2fp is stopped once 40 MB more are resident (open() is done, the
        engine is copying weights), the file is cut to 4 MB: the pages it has yet to read are gone
        (SIGBUS, caught by the loader's guard: they read as zeros) and the load fails with a clear
        error at the next release of copied weights (or, where no page it still needed was gone, at the
        size check there)."""
        model = self.copy_model()
        out = os.path.join(self.tmp, "out")
        p = subprocess.Popen([BIN, "parse", "--model", model, "--out", out] + FAST + [self.photos["walk.png"]],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        try:
            self.assertTrue(wait_for_mapping(p, model), "m2fp never mapped the model")
            page = os.sysconf("SC_PAGE_SIZE")

            def resident():
                with open("/proc/%d/statm" % p.pid) as f:
                    return int(f.read().split()[1]) * page
            r0 = resident()
            while resident() < r0 + (40 << 20) and p.poll() is None:
                time.sleep(0.001)
            p.send_signal(signal.SIGSTOP)
            os.truncate(model, 4 << 20)
            p.send_signal(signal.SIGCONT)
            stdout, stderr = p.communicate(timeout=600)
        finally:
            if p.poll() is None:
                p.kill()
        self.assert_no_crash(p.returncode, stderr)
        self.assertEqual(p.returncode, 1, stderr)
        # Where the engine had already read the pages it still needed when the file was cut (a fast load
        # wins the race: seen once in 2026-12-06's gate), the size check at the next release of copied
        # weights reports the change instead; either is a clear error.
        if "the file was truncated while it was being read" in stderr:
            self.assertIn("no longer readable", stderr)
        else:
            self.assertIn("the file changed while it was being read", stderr)
            self.assertIn("load it again", stderr)
        self.assertFalse(os.path.exists(os.path.join(out, "walk")))
        print("  " + stderr.strip().splitlines()[-1][:220])

    def test_model_rewritten_in_place_during_load(self):
        """`cp other model` while m2fp loads: same size, other bytes, new mtime: refused."""
        model = self.copy_model()
        out = os.path.join(self.tmp, "out")
        p = subprocess.Popen([BIN, "parse", "--model", model, "--out", out] + FAST + [self.photos["walk.png"]],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        try:
            self.assertTrue(wait_for_mapping(p, model), "m2fp never mapped the model")
            p.send_signal(signal.SIGSTOP)
            time.sleep(0.02)   # a later file-system clock tick than the copy above
            with open(model, "r+b") as f:   # in place, as cp onto an existing file does
                f.seek(os.path.getsize(model) // 2)
                f.write(b"\x7f" * 4096)
            p.send_signal(signal.SIGCONT)
            stdout, stderr = p.communicate(timeout=600)
        finally:
            if p.poll() is None:
                p.kill()
        self.assert_no_crash(p.returncode, stderr)
        self.assertEqual(p.returncode, 1, stderr)
        self.assertIn("the file changed while it was being read", stderr)
        self.assertIn("modified in place", stderr)
        print("  " + stderr.strip().splitlines()[-1][:220])

    def test_model_replaced_by_rename_while_parsing(self):
        """An atomic update (rename over the path) during load and between photos does not disturb
        the run: the loaded weights are kept."""
        model = self.copy_model()
        other = write(os.path.join(self.tmp, "other.safetensors"), b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
        out = os.path.join(self.tmp, "out")
        p = subprocess.Popen([BIN, "parse", "--model", model, "--out", out] + FAST +
                             [self.photos["walk.png"], self.photos["small.bmp"]],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        try:
            self.assertTrue(wait_for_mapping(p, model), "m2fp never mapped the model")
            os.rename(other, model)
            stdout, stderr = p.communicate(timeout=600)
        finally:
            if p.poll() is None:
                p.kill()
        self.assert_no_crash(p.returncode, stderr)
        self.assertEqual(p.returncode, 0, stderr)
        self.assertEqual(complete_or_absent(self, out), ["small", "walk"])

    def parse_several(self, n=6, size=(320, 240)):
        paths = []
        for i in range(n):
            paths.append(write(os.path.join(self.tmp, "p%d.png" % i), encode(photo(size[0], size[1], i), "PNG")))
        out = os.path.join(self.tmp, "out")
        p = subprocess.Popen([BIN, "parse", "--model", MODEL, "--out", out, "--short-edge", "240", "--threads", "2"]
                             + paths, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        return p, paths, out

    def test_sigterm_between_photos(self):
        """SIGTERM while the 2nd of 6 photos is parsed: it is finished, the others are named as not
        parsed, exit status 143, every folder complete."""
        p, paths, out = self.parse_several()
        try:
            first = p.stdout.readline()   # the first photo is done
            self.assertIn("p0.png", first)
            p.send_signal(signal.SIGTERM)
            stdout, stderr = p.communicate(timeout=600)
        finally:
            if p.poll() is None:
                p.kill()
        self.assert_no_crash(p.returncode, stderr)
        self.assertEqual(p.returncode, 128 + signal.SIGTERM, stderr)
        done = complete_or_absent(self, out)
        self.assertGreaterEqual(len(done), 1)
        self.assertLess(len(done), 6)
        self.assertEqual(done, ["p%d" % i for i in range(len(done))])   # a prefix, each complete
        rest = ", ".join(paths[len(done):])
        self.assertIn("interrupted by SIGTERM after %d of 6 images; not parsed: %s" % (len(done), rest), stderr)
        print("  SIGTERM after photo 1: %d parsed, exit %d; %s" % (len(done), p.returncode,
                                                                  stderr.strip().splitlines()[-1][:90]))

    def test_sigterm_during_load(self):
        p, paths, out = self.parse_several(n=2)
        try:
            self.assertTrue(wait_for_mapping(p, MODEL), "m2fp never mapped the model")
            p.send_signal(signal.SIGTERM)
            stdout, stderr = p.communicate(timeout=600)
        finally:
            if p.poll() is None:
                p.kill()
        self.assert_no_crash(p.returncode, stderr)
        self.assertEqual(p.returncode, 128 + signal.SIGTERM, stderr)
        self.assertIn("interrupted by SIGTERM after 0 of 2 images", stderr)
        self.assertEqual(os.listdir(out), [])

    def test_second_sigterm_kills_but_leaves_no_truncated_output(self):
        p, paths, out = self.parse_several()
        try:
            self.assertIn("p0.png", p.stdout.readline())
            p.send_signal(signal.SIGTERM)
            time.sleep(0.05)
            p.send_signal(signal.SIGTERM)   # default action now: the process ends at once
            stdout, stderr = p.communicate(timeout=600)
        finally:
            if p.poll() is None:
                p.kill()
        self.assertIn(p.returncode, (-signal.SIGTERM, 128 + signal.SIGTERM), stderr)
        # Files under their final names are complete; only "*.tmp" files may be left over.
        leftovers = []
        for d in os.listdir(out):
            for f in os.listdir(os.path.join(out, d)):
                path = os.path.join(out, d, f)
                if f.endswith(".tmp"):
                    leftovers.append(path)
                elif f.endswith(".png"):
                    with Image.open(path) as im:
                        im.load()
                elif f == "result.json":
                    with open(path) as fh:
                        json.load(fh)
        print("  second SIGTERM: exit %d, %d temporary file(s) left: %s" % (
            p.returncode, len(leftovers), [os.path.relpath(x, out) for x in leftovers]))


if __name__ == "__main__":
    unittest.main()
