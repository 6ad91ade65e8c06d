#!/usr/bin/env python3
"""examples/python/parse.py: parse one photo with the m2fp package and print what is in it.
    parse.py MODEL.safetensors PHOTO"""
import sys

import numpy as np

import m2fp

model = m2fp.Model(sys.argv[1], threads=2)
r = model.parse(sys.argv[2])
print("m2fp %s: %dx%d, %d persons, %d instances" % (m2fp.version, r.width, r.height, r.persons.max(), len(r.instances)))
for cid, n in zip(*np.unique(r.labels, return_counts=True)):
    print("  %-14s %d pixels" % (r.json["model"]["classes"][cid], n))
ms = m2fp.pipeline(sys.argv[1], threads=2)(sys.argv[2])  # ModelScope's answer: masks, labels, scores
print("modelscope form: %d masks, first %s" % (len(ms["masks"]), ms["labels"][:3]))
