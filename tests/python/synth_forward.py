"""Statistics of a synthetic checkpoint's outputs on a photo, computed with the reference forward
(tests/reference/m2fp_ref.py): used by tests/python/test_synthetic.py to check that the outputs are
not degenerate, and to tune tools/make_synthetic_checkpoint.py.

    python: /usr/bin/python3 tests/python/synth_forward.py CKPT_DIR IMAGE.png   (prints statistics)
"""

import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reference"))
import m2fp_ref as R  # noqa: E402

FEATURES = ("res2", "res3", "res4", "res5")


def reference(sd, model_cfg):
    """The reference network with the state dict `sd` loaded (strictly), for the "model" section."""
    model = R.M2FP(model_cfg)
    R.load_state_into(model, sd, "state dict")
    return R.M2FPReference(model.eval(), model_cfg)


def run(ref, image):
    """The reference pipeline on a PIL image; the result of M2FPReference.run plus "features" (the
    backbone outputs [C, H, W]) and "mask_features"."""
    rec = R.Recorder(FEATURES + ("mask_features",))
    out = ref.run(np.asarray(image.convert("RGB")), rec=rec)
    out["features"] = {k: rec.tensors[k] for k in FEATURES}
    out["mask_features"] = rec.tensors["mask_features"]
    return out


def head_statistics(out, human_class=20):
    """Statistics of the heads: how confident the queries are, how the mask logits spread."""
    probs = out["pred_logits"].softmax(-1)
    top_p, top_c = probs.max(-1)
    masks = out["pred_masks"]
    pos = (masks > 0).float().mean((1, 2))
    return {
        "logit_std": float(out["pred_logits"].std()),
        "queries_top_prob_gt_0.5": int((top_p > 0.5).sum()),
        "top_classes": sorted(set(int(c) for c in top_c[top_p > 0.5])),
        "queries_top_human": int((top_c == human_class).sum()),
        "queries_top_no_object": int((top_c == probs.shape[1] - 1).sum()),
        "mask_logit_mean": float(masks.mean()),
        "mask_logit_std": float(masks.std()),
        "queries_with_mixed_sign_masks": int(((pos > 0.05) & (pos < 0.95)).sum()),
        "mask_positive_fraction_mean": float(pos.mean()),
    }


if __name__ == "__main__":
    from PIL import Image
    torch.set_grad_enabled(False)
    ref = R.M2FPReference.from_model_dir(sys.argv[1])
    for path in sys.argv[2:]:
        img = Image.open(path).convert("RGB")
        t0 = time.time()
        out = run(ref, img)
        print(path, "reference %.1f s" % (time.time() - t0), "input", out["prep"]["image_size"],
              "padded", tuple(out["prep"]["image"].shape[-2:]))
        for k, f in out["features"].items():
            print("  %s mean %.3f std %.3f max %.2f" % (k, f.mean(), f.std(), f.max()))
        mf = out["mask_features"]
        print("  mask_features mean %.3f std %.3f" % (mf.mean(), mf.std()))
        for k, v in head_statistics(out, ref.cfg["decoder"]["num_classes"] - 1).items():
            print("  %s: %s" % (k, v))
        if not ref.cfg.get("single_human", False):
            parts = [r for r in out["instances"] if r["kind"] == "part"]
            humans = [r for r in out["instances"] if r["kind"] == "human"]
            print("  instances: %d parts (classes %s), %d humans (max score %.3f), parts >= 0.5: %d"
                  % (len(parts), sorted(set(r["category_id"] for r in parts)), len(humans),
                     max([r["score"] for r in humans] or [0]), sum(r["score"] >= 0.5 for r in parts)))
