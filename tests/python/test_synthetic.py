"""Tests of tools/make_synthetic_checkpoint.py: exact upstream layout, configuration, determinism,
weight statistics, and outputs that are not degenerate (checked with the reference forward,
tests/reference/m2fp_ref.py, through synth_forward.py).

Run: M2FP_TESTDATA=<build>/testdata /usr/bin/python3 -m unittest discover -s tests/python -p "test_synthetic.py" -v
Without M2FP_TESTDATA the full-size checkpoints are generated in a temporary folder (about 20 s each).
Set M2FP_TEST_IMAGE=photo.png to run the forward checks on a real photo instead of a drawn one."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import h1_helpers as h

try:
    import torch
except ImportError:
    torch = None

if torch is not None:
    import make_synthetic_checkpoint as mk
    import synth_forward as sf

LIP_CLASSES = ["Background", "Hat", "Hair", "Glove", "Sunglasses", "Upper-clothes", "Dress", "Coat",
               "Socks", "Pants", "Jumpsuits", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm",
               "Left-leg", "Right-leg", "Left-shoe", "Right-shoe"]

_made = {}
_tmp = []


def full_checkpoint(variant):
    """(folder, state dict, configuration) of the full-size synthetic checkpoint of `variant`:
    the ctest fixture when M2FP_TESTDATA has it, else written here once by the CLI."""
    if variant in _made:
        return _made[variant]
    fx = h.synthetic_fixture(variant)
    if fx is not None:
        folder = fx[0]
    else:
        if not _tmp:
            _tmp.append(tempfile.mkdtemp(prefix="m2fp_synth_test_"))
        folder = os.path.join(_tmp[0], "%s_synth" % variant)
        seed = {"cihp": 0, "lip": 1}[variant]
        r = subprocess.run([sys.executable, h.GENERATOR, "--variant", variant, "--seed", str(seed),
                            "--out", folder], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
        assert r.returncode == 0, r.stderr
    sd = torch.load(os.path.join(folder, "pytorch_model.pt"), map_location="cpu")["model"]
    with open(os.path.join(folder, "configuration.json")) as f:
        cfg = json.load(f)
    _made[variant] = (folder, sd, cfg)
    return _made[variant]


def tearDownModule():
    for d in _tmp:
        shutil.rmtree(d, ignore_errors=True)


@unittest.skipIf(torch is None, "needs torch (run with /usr/bin/python3)")
class Layout(unittest.TestCase):

    def test_cihp_names_shapes_dtypes_order(self):
        _, sd, _ = full_checkpoint("cihp")
        with open(h.CIHP_TSV) as f:
            rows = [l.rstrip("\n").split("\t") for l in f if l.strip()]
        self.assertEqual(list(sd.keys()), [r[0] for r in rows])
        for name, shape, dtype in rows:
            t = sd[name]
            self.assertEqual(list(t.shape), [int(x) for x in shape.split("x")] if shape else [], name)
            self.assertEqual(str(t.dtype), "torch." + dtype, name)
            self.assertTrue(t.is_contiguous(), name)
        n = sum(t.numel() for k, t in sd.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
        self.assertEqual(n, 63124118)     # SPEC: 63,124,118 parameters

    def test_cihp_configuration(self):
        folder, _, cfg = full_checkpoint("cihp")
        ref = h.load_config()
        self.assertEqual(cfg["m2fp_synthetic"]["seed"], 0)
        self.assertEqual(cfg["m2fp_synthetic"]["generator"], "tools/make_synthetic_checkpoint.py")
        self.assertIn("not a trained model", cfg["m2fp_synthetic"]["note"])
        self.assertEqual({k: v for k, v in cfg.items() if k != "m2fp_synthetic"}, json.loads(json.dumps(ref)))

    def test_lip_variant(self):
        _, sd, cfg = full_checkpoint("lip")
        m = cfg["model"]
        self.assertEqual(cfg["m2fp_synthetic"]["seed"], 1)
        self.assertTrue(m["single_human"])
        self.assertFalse(m["parsing_on"])
        self.assertTrue(m["semantic_on"])
        self.assertFalse(m["sem_seg_postprocess_before_inference"])
        self.assertEqual(m["input_single_human"], {"sizes": [[384, 512]], "scale_factor": 0.8})
        self.assertEqual(m["classes"], LIP_CLASSES)
        self.assertEqual(m["decoder"]["num_classes"], 20)
        self.assertEqual(cfg["pipeline"], h.load_config()["pipeline"])
        self.assertEqual(list(sd["sem_seg_head.predictor.class_embed.weight"].shape), [21, 256])
        self.assertEqual(list(sd["sem_seg_head.predictor.class_embed.bias"].shape), [21])
        self.assertEqual(len(sd), 928)


@unittest.skipIf(torch is None, "needs torch (run with /usr/bin/python3)")
class Determinism(unittest.TestCase):

    def test_small_config_same_seed_same_bits(self):
        m = h.small_config()["model"]
        a, b, c = mk.make_state_dict(m, 3), mk.make_state_dict(m, 3), mk.make_state_dict(m, 4)
        self.assertEqual(list(a), list(b))
        for k in a:
            self.assertTrue(torch.equal(a[k], b[k]), k)
        differ = sum(not torch.equal(a[k], c[k]) for k in a)
        self.assertGreater(differ, 0.9 * len(a))

    def test_full_cihp_regenerated_equals_checkpoint(self):
        """The checkpoint written by another process (the fixture, or the CLI) is what this process
        generates for seed 0: same bits, whatever the thread count."""
        _, sd, cfg = full_checkpoint("cihp")
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            t0 = time.time()
            again = mk.make_state_dict(cfg["model"], 0)
            dt = time.time() - t0
        finally:
            torch.set_num_threads(torch_threads)
        bad = [k for k in sd if not torch.equal(sd[k], again[k])]
        self.assertEqual(bad, [])
        print("  seed 0 regenerated with 1 thread in %.1f s: all 928 tensors identical" % dt)


@unittest.skipIf(torch is None, "needs torch (run with /usr/bin/python3)")
class WeightStatistics(unittest.TestCase):

    def test_values(self):
        _, sd, cfg = full_checkpoint("cihp")
        for k, t in sd.items():
            if t.is_floating_point():
                self.assertTrue(bool(torch.isfinite(t).all()), k)
        bn_gamma = torch.cat([t for k, t in sd.items() if k.startswith("backbone") and k.endswith("norm.weight")
                              and "conv3" not in k])
        branch_gamma = torch.cat([t for k, t in sd.items() if k.endswith("conv3.norm.weight")])
        var = torch.cat([t for k, t in sd.items() if k.endswith("running_var")])
        nbt = [int(t) for k, t in sd.items() if k.endswith("num_batches_tracked")]
        self.assertAlmostEqual(float(bn_gamma.mean()), 1.0, delta=0.02)
        self.assertGreaterEqual(float(branch_gamma.min()), mk.BRANCH_GAMMA[0])
        self.assertLessEqual(float(branch_gamma.max()), mk.BRANCH_GAMMA[1])
        self.assertGreater(float(var.min()), 0.0)
        self.assertTrue(all(10000 <= v < 200000 for v in nbt))
        b = sd["sem_seg_head.predictor.class_embed.bias"]
        self.assertAlmostEqual(float(b[-1]), mk.NO_OBJECT_BIAS)
        off = sd["sem_seg_head.pixel_decoder.transformer.encoder.layers.0.self_attn.sampling_offsets.bias"]
        grid = off.view(8, 3, 4, 2)    # heads x levels x points x (x, y): point i at distance ~ i + 1
        self.assertLess(float((grid[0, :, :, 0] - torch.arange(1, 5.0)).abs().max()), 0.5)
        print("  backbone BN gamma mean %.3f, branch gamma %.3f..%.3f, running_var %.3g..%.3g"
              % (bn_gamma.mean(), branch_gamma.min(), branch_gamma.max(), var.min(), var.max()))


@unittest.skipIf(torch is None, "needs torch (run with /usr/bin/python3)")
class Outputs(unittest.TestCase):
    """The synthetic models' outputs are not degenerate: confident queries over several classes,
    humans, part instances that reach the semantic map, mask logits of both signs."""

    def test_cihp_instances(self):
        _, sd, cfg = full_checkpoint("cihp")
        image, source = h.forward_image()
        t0 = time.time()
        out = sf.run(sf.reference(sd, cfg["model"]), image)
        dt = time.time() - t0
        st = sf.head_statistics(out, human_class=20)
        parts = [r for r in out["instances"] if r["kind"] == "part"]
        humans = [r for r in out["instances"] if r["kind"] == "human"]
        strong = [r for r in parts if r["score"] >= 0.5]
        print("  CIHP seed 0 on %s (%dx%d, forward %.1f s): %s" % (source, image.size[0], image.size[1], dt,
                                                                 json.dumps(st)))
        print("  instances: %d parts over classes %s, %d humans (best %.3f), %d parts with score >= 0.5"
              % (len(parts), sorted({r["category_id"] for r in parts}), len(humans),
                 max([r["score"] for r in humans] or [0]), len(strong)))
        for name, f in out["features"].items():
            spatial = float(f.var((1, 2)).mean())
            self.assertGreater(spatial, 0.05, "%s is nearly constant over the image" % name)
            self.assertLess(float(f.abs().max()), 1e3, name)
        self.assertGreaterEqual(st["queries_top_prob_gt_0.5"], 30)
        self.assertGreaterEqual(len(st["top_classes"]), 6)
        self.assertGreaterEqual(st["queries_top_human"], 1)
        self.assertTrue(1.0 < st["mask_logit_std"] < 20.0, st["mask_logit_std"])
        self.assertTrue(0.1 < st["mask_positive_fraction_mean"] < 0.9)
        self.assertGreaterEqual(st["queries_with_mixed_sign_masks"], 50)
        self.assertGreaterEqual(len({r["category_id"] for r in parts}), 5)
        self.assertTrue(any(r["score"] > 0.1 for r in humans), "no human instance with score > 0.1")
        self.assertGreaterEqual(len(strong), 5, "too few part instances reach the semantic map")

    def test_lip_semantic_map(self):
        """Single-person: semantic inference on the 384x512 model input gives several labels."""
        _, sd, cfg = full_checkpoint("lip")
        image, source = h.forward_image()
        import numpy as np
        from PIL import Image
        arr = np.asarray(image.resize((384, 512), Image.BILINEAR), dtype=np.float32)
        x = sf.R.normalize_and_pad(torch.from_numpy(arr.copy()).permute(2, 0, 1))   # [1, 3, 512, 384]
        with torch.no_grad():
            out = sf.reference(sd, cfg["model"]).model(x)
        sem = sf.R.semantic_inference(out["pred_logits"][0], out["pred_masks"][0])   # [20, 128, 96]
        labels = sem.argmax(0)
        counts = torch.bincount(labels.flatten(), minlength=20).float() / labels.numel()
        present = [(i, round(float(c), 3)) for i, c in enumerate(counts) if c >= 0.01]
        print("  LIP seed 1 on %s: labels covering >= 1%% of the map: %s" % (source, present))
        self.assertGreaterEqual(len(present), 3)
        self.assertLess(float(counts.max()), 0.95)


if __name__ == "__main__":
    unittest.main()
