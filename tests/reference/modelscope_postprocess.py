"""A copy of ModelScope's ImageHumanParsingPipeline.postprocess over the reference's post-processing.

Upstream (modelscope/pipelines/cv/image_human_parsing_pipeline.py) answers {masks, labels, scores}: in
multi-person mode, for each output of `part_outputs + human_outputs` (each list in descending score, as
tests/reference/m2fp_ref.py's instance_parsing_inference keeps them) with score > score_thr (0.0):
mask = (mask logit > 0) as float, label = class name, score. This module rebuilds those lists from a
reference dump (pred_logits.npy, pred_masks.npy, meta.json) with m2fp_ref's QueryMasks and
instance_parsing_inference, so tests compare the engine's /predict form against it.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import m2fp_ref  # noqa: E402


def modelscope_answer(ref_dir, class_names, num_parsing=20, ins_score_thr=0.5, score_thr=0.0):
    """-> {'masks': [bool [H0, W0]], 'labels': [name], 'scores': [float]} for a multi-person dump."""
    with open(os.path.join(ref_dir, "meta.json")) as f:
        meta = json.load(f)
    if meta.get("single_human"):
        raise ValueError("single-person dumps: use the semantic branch")
    logits = torch.from_numpy(np.load(os.path.join(ref_dir, "pred_logits.npy")))
    pred_masks = torch.from_numpy(np.load(os.path.join(ref_dir, "pred_masks.npy")))
    masks = m2fp_ref.QueryMasks(pred_masks, meta["padded_size"], meta["image_size"], None,
                                (meta["height"], meta["width"]))
    instances, _ = m2fp_ref.instance_parsing_inference(logits, masks, num_parsing, ins_score_thr)
    out = {"masks": [], "labels": [], "scores": []}
    for inst in instances:  # part_outputs + human_outputs
        if inst["score"] > score_thr:
            out["masks"].append((masks.get(inst["query"]) > 0).numpy())
            out["labels"].append(class_names[inst["category_id"]])
            out["scores"].append(inst["score"])
    return out
