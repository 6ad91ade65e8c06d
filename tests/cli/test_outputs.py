"""The parse outputs of issue 11 (docs/OUTPUTS.md): every instance's COCO RLE mask, persons.png, the
palette labels.png, label sets and the named union masks, on the parity photos.

The RLE decoder and the reference encoder below are written here from the COCO format's description
(column-major runs from a run of zeros; the counts string in 5-bit groups, least significant first,
0x20 = more follows, 0x10 = sign of the last group, +48, each count from the third on less the count
two before it); pycocotools is not packaged in Debian, so they stand in for it.

    M2FP_BIN=<build>/m2fp M2FP_TESTDATA=<build>/testdata /usr/bin/python3 -m unittest tests/cli/test_outputs.py -v
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
from PIL import Image

BIN = os.environ.get("M2FP_BIN", "")
TESTDATA = os.environ.get("M2FP_TESTDATA", "")
PHOTOS = ("cihp_landscape", "cihp_portrait")

# docs/LABELS.md
CIHP = ["Background", "Hat", "Hair", "Glove", "Sunglasses", "UpperClothes", "Dress", "Coat", "Socks", "Pants",
        "Torso-skin", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg", "Left-shoe",
        "Right-shoe"]
ATR = ["Background", "Hat", "Hair", "Sunglasses", "Upper-clothes", "Skirt", "Pants", "Dress", "Belt", "Left-shoe",
       "Right-shoe", "Face", "Left-leg", "Right-leg", "Left-arm", "Right-arm", "Bag", "Scarf"]
CIHP_TO_ATR = {"Hat": "Hat", "Hair": "Hair", "Sunglasses": "Sunglasses", "UpperClothes": "Upper-clothes",
               "Coat": "Upper-clothes", "Dress": "Dress", "Pants": "Pants", "Skirt": "Skirt", "Scarf": "Scarf",
               "Face": "Face", "Left-arm": "Left-arm", "Right-arm": "Right-arm", "Left-leg": "Left-leg",
               "Right-leg": "Right-leg", "Left-shoe": "Left-shoe", "Right-shoe": "Right-shoe"}
UNIONS = {"upper_body": ["UpperClothes", "Coat"], "lower_body": ["Pants", "Skirt"],
          "agnostic": ["UpperClothes", "Coat", "Dress", "Torso-skin", "Left-arm", "Right-arm", "Scarf", "Glove"],
          "label:Hair+Face": ["Hair", "Face"]}


def rle_decode(rle):
    """COCO compressed RLE -> bool mask [h, w] (independent of the engine's encoder)."""
    h, w = rle["size"]
    s = rle["counts"].encode()
    counts, p = [], 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = s[p] - 48
            x |= (c & 0x1f) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    flat = np.zeros(h * w, dtype=bool)
    pos, val = 0, False
    for n in counts:
        flat[pos:pos + n] = val
        pos += n
        val = not val
    assert pos == h * w, (pos, h * w)
    return flat.reshape(w, h).T  # column-major


def rle_encode(mask):
    """bool [h, w] -> COCO counts string (pycocotools' encode), written from the format's description."""
    flat = np.asarray(mask, dtype=bool).T.reshape(-1)
    counts, cur, run = [], False, 0
    for v in flat:
        if v != cur:
            counts.append(run)
            run, cur = 0, v
        run += 1
    counts.append(run)
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1f
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


@unittest.skipUnless(BIN and TESTDATA, "set M2FP_BIN and M2FP_TESTDATA")
class ParseOutputs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = {}
        for label_set in ("cihp", "atr"):
            out = os.path.join(cls.tmp.name, label_set)
            for name in PHOTOS:  # at the sizes the reference dumps were made at
                with open(os.path.join(TESTDATA, "parity", name, "ref", "meta.json")) as f:
                    meta = json.load(f)
                dump = ["--dump-tensors"] if label_set == "cihp" else []  # the forward's own outputs
                subprocess.run([BIN, "parse", "--model", os.path.join(TESTDATA, "cihp_synth.safetensors"),
                                "--out", out, "--no-outfits", "--label-set", label_set, "--masks", ",".join(UNIONS),
                                "--mask-dilate", "0", "--short-edge", str(meta["short_edge"]),
                                "--max-size", str(meta["max_size"])] + dump +
                               [os.path.join(TESTDATA, "parity", name, "photo.png")], check=True, capture_output=True)
                os.rename(os.path.join(out, "photo"), os.path.join(out, name))
            cls.out[label_set] = out

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def load(self, name, label_set="cihp"):
        d = os.path.join(self.out[label_set], name)
        with open(os.path.join(d, "result.json")) as f:
            return d, json.load(f)

    def test_rle_round_trips_with_area_bbox_and_string(self):
        n = 0
        for name in PHOTOS:
            d, j = self.load(name)
            w, h = j["image"]["width"], j["image"]["height"]
            self.assertTrue(j["instances"])
            for inst in j["instances"]:
                rle = inst["mask"]
                self.assertEqual(rle["size"], [h, w])
                m = rle_decode(rle)
                self.assertEqual(int(m.sum()), inst["area"], inst)
                if inst["area"]:
                    ys, xs = np.nonzero(m)
                    self.assertEqual([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], inst["bbox"])
                self.assertEqual(rle_encode(m), rle["counts"])  # byte for byte
                n += 1
        self.assertGreater(n, 10)

    def reference_pipeline(self):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
        try:
            import modelscope_postprocess
        except ImportError as e:  # torch missing
            self.skipTest("reference unavailable: %s" % e)
        return modelscope_postprocess

    def compare_modelscope_form(self, name, j, ref, max_score_diff, min_iou, what):
        """Our /predict lists (instances with score > 0, in order; service::modelscope_answer, unit-tested
        to be exactly these) against the reference pipeline's answer `ref`: same labels in the same order,
        every score within max_score_diff, every mask's IoU >= min_iou. Prints the figures."""
        ours = [i for i in j["instances"] if i["score"] > 0]
        self.assertEqual([i["label"] for i in ours], ref["labels"], (name, what))
        worst, ious = 0.0, []
        for i, (inst, rm, rs) in enumerate(zip(ours, ref["masks"], ref["scores"])):
            worst = max(worst, abs(inst["score"] - rs))
            self.assertAlmostEqual(inst["score"], rs, delta=max_score_diff, msg=(name, what, i, inst["label"]))
            m = rle_decode(inst["mask"])
            union = np.logical_or(m, rm).sum()
            iou = np.logical_and(m, rm).sum() / union if union else 1.0
            ious.append(iou)
            self.assertGreaterEqual(iou, min_iou, (name, what, i, inst["label"], inst["area"]))
        k = int(np.argmin(ious))
        print("  %s, %s: %d instances, max |score diff| %.2e, IoU min %.5f (%s, %d px) mean %.6f"
              % (name, what, len(ours), worst, ious[k], ours[k]["label"], ours[k]["area"], float(np.mean(ious))))

    def test_modelscope_form_is_the_reference_pipeline_postprocess(self):
        """The issue's bound: the reference's copy of ModelScope's post-processing
        (tests/reference/modelscope_postprocess.py), run on the pred_logits / pred_masks this engine's own
        forward produced (--dump-tensors), returns our /predict lists: same labels and order, scores within
        1e-4, mask IoU >= 0.999. Measured: scores within 1.8e-7, every mask identical (IoU 1)."""
        msp = self.reference_pipeline()
        for name in PHOTOS:
            d, j = self.load(name)
            ref_dir = os.path.abspath(os.path.join(TESTDATA, "parity", name, "ref"))
            with tempfile.TemporaryDirectory() as ours:
                for f in ("pred_logits.npy", "pred_masks.npy"):
                    os.symlink(os.path.abspath(os.path.join(d, "tensors", f)), os.path.join(ours, f))
                os.symlink(os.path.join(ref_dir, "meta.json"), os.path.join(ours, "meta.json"))
                ref = msp.modelscope_answer(ours, j["model"]["classes"])
            self.compare_modelscope_form(name, j, ref, 1e-4, 0.999, "same tensors")

    # End to end, against the reference's own forward pass: (max |score diff|, min IoU) per photo.
    # cihp_portrait: the engine's decoder attention masks (sigmoid(mask) < 0.5, a hard threshold) equal the
    # reference's at all 9 layers, pred_masks agree to 2e-6 relative L2, and the bounds hold
    # (measured 3.5e-5 and 0.9998 on every ISA). cihp_landscape: one attention-mask bit differs at decoder
    # layer 5 (query 45: mask logit -4.6e-6 in the reference, +2e-6..+1.1e-5 here, a sum of 256 products
    # of order 1 whose float32 rounding depends on the summation order); that query's keys change, and
    # from layer 6 on the masks differ by ~1e-4 relative L2 instead of 2e-6 (the post-processing then
    # matches exactly, test above). Measured there: 3.0e-4 and 0.99867 (Left-shoe, 19501 px: 26 pixels
    # on its border), on the scalar, AVX2 and AVX-512 paths alike; the bounds below are the tightest
    # round ones above that.
    END_TO_END = {"cihp_portrait": (1e-4, 0.999), "cihp_landscape": (1e-3, 0.998)}

    def test_modelscope_form_matches_the_reference_pipeline_end_to_end(self):
        """Our /predict lists against the reference pipeline on the reference's own forward (its dump)."""
        msp = self.reference_pipeline()
        for name in PHOTOS:
            d, j = self.load(name)
            ref = msp.modelscope_answer(os.path.join(TESTDATA, "parity", name, "ref"), j["model"]["classes"])
            self.compare_modelscope_form(name, j, ref, *self.END_TO_END[name], "end to end")

    def test_persons_png_agrees_with_human_masks(self):
        for name in PHOTOS:
            d, j = self.load(name)
            pm = np.array(Image.open(os.path.join(d, "persons.png")))
            self.assertEqual(pm.shape, (j["image"]["height"], j["image"]["width"]))
            humans = [rle_decode(j["instances"][p["instance"]]["mask"]) for p in j["persons"]]
            cover = np.sum(humans, axis=0) if humans else np.zeros(pm.shape, int)
            self.assertTrue(np.all(pm[cover == 0] == 0))
            for k, m in enumerate(humans):
                only = m & (cover == 1)
                self.assertTrue(np.all(pm[only] == k + 1), (name, k))
            self.assertLessEqual(int(pm.max()), len(j["persons"]))
            # each person lists its own part instances
            for k, p in enumerate(j["persons"]):
                for part in p["parts"]:
                    self.assertEqual(j["instances"][part["instance"]]["person"], k)

    def test_labels_png_is_a_palette_of_ids(self):
        for name in PHOTOS:
            d, j = self.load(name)
            im = Image.open(os.path.join(d, "labels.png"))
            self.assertEqual(im.mode, "P")
            ids = np.array(im)
            self.assertLess(int(ids.max()), 20)
            present = sorted(CIHP[i] for i in np.unique(ids))
            self.assertEqual(present, sorted(j["labels_present"]))
            pal = np.array(im.getpalette()[:256 * 3], dtype=np.uint8).reshape(-1, 3)
            colour = np.array(Image.open(os.path.join(d, "labels_color.png")).convert("RGB"))
            self.assertTrue(np.array_equal(pal[ids], colour))

    def test_atr_label_set_remaps_every_label_bearing_output(self):
        table = np.zeros(256, np.uint8)
        for c, n in enumerate(CIHP):
            table[c] = ATR.index(CIHP_TO_ATR[n]) if n in CIHP_TO_ATR else 0
        for name in PHOTOS:
            dc, _ = self.load(name)
            da, ja = self.load(name, "atr")
            cihp = np.array(Image.open(os.path.join(dc, "labels.png")))
            atr = np.array(Image.open(os.path.join(da, "labels.png")))
            self.assertTrue(np.array_equal(table[cihp], atr))
            self.assertEqual(ja["label_set"], {"name": "atr", "classes": ATR})
            for inst in ja["instances"]:
                if inst["kind"] == "part":
                    want = CIHP_TO_ATR.get(inst["label"])
                    self.assertEqual(inst["set_label"], want)
                    self.assertEqual(inst["set_category_id"], ATR.index(want) if want else 0)
            # every label-bearing output follows the set (docs/OUTPUTS.md)
            self.assertEqual(sorted(ja["labels_present"]), sorted(ATR[i] for i in np.unique(atr)))
            self.assertAlmostEqual(sum(ja["label_fractions"].values()), 1.0, places=9)
            for n, f in ja["label_fractions"].items():
                self.assertEqual(f, float(np.mean(atr == ATR.index(n))), n)
            pal = np.array(Image.open(os.path.join(da, "labels.png")).getpalette()[:256 * 3], np.uint8).reshape(-1, 3)
            colour = np.array(Image.open(os.path.join(da, "labels_color.png")).convert("RGB"))
            self.assertTrue(np.array_equal(pal[atr], colour))
            parts = 0
            for person in ja["persons"]:
                for part in person["parts"]:
                    want = CIHP_TO_ATR.get(part["label"])
                    self.assertEqual((part["set_label"], part["set_category_id"]), (want, ATR.index(want) if want else 0))
                    parts += 1
            self.assertGreater(parts, 0)

    def test_union_masks_are_the_unions_of_their_classes(self):
        for name in PHOTOS:
            d, j = self.load(name)
            ids = np.array(Image.open(os.path.join(d, "labels.png")))
            for u, classes in UNIONS.items():
                m = np.array(Image.open(os.path.join(d, "masks", u + ".png")))
                want = np.isin(ids, [CIHP.index(c) for c in classes])
                self.assertTrue(np.array_equal(m == 255, want), u)
                self.assertTrue(np.all((m == 0) | (m == 255)))
            self.assertIn("masks/upper_body.png", j["outputs"])


if __name__ == "__main__":
    unittest.main()
