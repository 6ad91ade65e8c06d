"""Shared helpers of test_convert.py and test_synthetic.py: paths, a small model configuration,
an independent safetensors reader, hand-made torch zip archives, running the converter."""

import collections
import copy
import json
import os
import struct
import subprocess
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TOOLS = os.path.join(REPO, "tools")
CONVERTER = os.path.join(TOOLS, "convert_weights.py")
GENERATOR = os.path.join(TOOLS, "make_synthetic_checkpoint.py")
CIHP_CONFIG = os.path.join(TOOLS, "configs", "cihp_configuration.json")
LIP_CONFIG = os.path.join(TOOLS, "configs", "lip_configuration.json")
CIHP_TSV = os.path.join(REPO, "tests", "data", "cihp_state_dict.tsv")
TESTDATA = os.environ.get("M2FP_TESTDATA")

if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)
import convert_weights  # noqa: E402,F401  (test modules use h1_helpers.convert_weights)


def load_config(path=CIHP_CONFIG):
    with open(path) as f:
        return json.load(f, object_pairs_hook=collections.OrderedDict)


def small_config():
    """A full configuration.json whose network is tiny (ResNet-50 layout, narrow, few queries and
    layers): every code path of the converter, in a file of ~1 MB."""
    cfg = copy.deepcopy(load_config())
    m = cfg["model"]
    m["backbone"].update(depth=50, stem_out_channels=32, res2_out_channels=64, width_per_group=16)
    m["encoder"].update(conv_dim=32, mask_dim=32, transformer_dim_feedforward=48, transformer_enc_layers=2)
    m["decoder"].update(hidden_dim=32, mask_dim=32, num_queries=7, dim_feedforward=40, dec_layers=3)
    return cfg


def synthetic_fixture(variant):
    """(folder, safetensors) written by the ctest fixtures, or None when not available."""
    if not TESTDATA:
        return None
    folder = os.path.join(TESTDATA, "%s_synth" % variant)
    st = os.path.join(TESTDATA, "%s_synth.safetensors" % variant)
    if os.path.isfile(os.path.join(folder, "pytorch_model.pt")) and os.path.isfile(st):
        return folder, st
    return None


def write_model_folder(folder, state_dict, cfg, **save_kwargs):
    """A ModelScope-style folder from a state dict of torch tensors (needs torch)."""
    import torch
    os.makedirs(folder, exist_ok=True)
    torch.save({"model": state_dict}, os.path.join(folder, "pytorch_model.pt"), **save_kwargs)
    with open(os.path.join(folder, "configuration.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def read_safetensors(path):
    """Independent reader: returns (metadata, [(name, dtype, shape, begin, end)] in JSON order,
    data bytes, header length). Asserts the structural rules of the format."""
    with open(path, "rb") as f:
        blob = f.read()
    assert len(blob) >= 8, "file shorter than the 8-byte header length"
    (n,) = struct.unpack("<Q", blob[:8])
    assert 8 + n <= len(blob), "header length past the end of the file"
    text = blob[8:8 + n]
    header = json.loads(text.decode("utf-8"), object_pairs_hook=collections.OrderedDict)
    meta = header.pop("__metadata__", {})
    entries = [(k, v["dtype"], v["shape"], v["data_offsets"][0], v["data_offsets"][1])
               for k, v in header.items()]
    return meta, entries, blob[8 + n:], n, text


def run_converter(args, python=None, env=None):
    """Runs tools/convert_weights.py in a child process; returns CompletedProcess (text)."""
    return subprocess.run([python or sys.executable, CONVERTER] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, env=env, timeout=600)


def torch_zip(path, pickle_bytes, storages=None, prefix="archive", with_data_pkl=True):
    """A torch.save-style zip: <prefix>/data.pkl (the given bytes), <prefix>/data/<key>, version."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        if with_data_pkl:
            z.writestr(prefix + "/data.pkl", pickle_bytes)
        for key, data in (storages or {}).items():
            z.writestr(prefix + "/data/" + key, data)
        z.writestr(prefix + "/version", b"3\n")


def pickle_call(module, name, arg):
    """Protocol-2 pickle bytes that, if executed, would call module.name(arg) (GLOBAL + REDUCE)."""
    a = arg.encode("utf-8")
    return (b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n"
            + b"X" + struct.pack("<I", len(a)) + a + b"\x85R.")


def pickle_state_dict_then_call(module, name, arg):
    """{'model': OrderedDict(w=<tensor>, x=module.name(arg))}: the call hides after a real tensor."""
    a = arg.encode("utf-8")

    def u(s):
        b = s.encode("utf-8")
        return b"X" + struct.pack("<I", len(b)) + b
    tensor = (b"ctorch._utils\n_rebuild_tensor_v2\n("
              + b"(" + u("storage") + b"ctorch\nFloatStorage\n" + u("0") + u("cpu") + b"K\x02tQ"
              + b"K\x00K\x02\x85K\x01\x85\x89ccollections\nOrderedDict\n)Rtq\x00R")
    return (b"\x80\x02}" + u("model") + b"ccollections\nOrderedDict\n)R("
            + u("w") + tensor
            + u("x") + b"c" + module.encode() + b"\n" + name.encode() + b"\n"
            + b"X" + struct.pack("<I", len(a)) + a + b"\x85R"
            + b"us.")


def photo_like_image(width=400, height=400):
    """A deterministic picture with a few figures on a gradient (PIL), for forward checks when no
    photo is available."""
    from PIL import Image, ImageDraw
    img = Image.new("RGB", (width, height))
    px = img.load()
    for y in range(height):
        for x in range(width):
            px[x, y] = (40 + 150 * x // width, 90 + 100 * y // height, 180 - 120 * x // width)
    d = ImageDraw.Draw(img)
    for i, (cx, col) in enumerate([(0.3, (200, 60, 50)), (0.7, (40, 50, 160))]):
        x0 = int(cx * width)
        d.ellipse([x0 - 25, 40, x0 + 25, 100], fill=(230, 190, 160))                 # head
        d.rectangle([x0 - 45, 100, x0 + 45, 220], fill=col)                          # torso
        d.rectangle([x0 - 40, 220, x0 - 5, 330], fill=(30, 30, 40 + 60 * i))         # legs
        d.rectangle([x0 + 5, 220, x0 + 40, 330], fill=(30, 30, 40 + 60 * i))
        d.rectangle([x0 - 65, 105, x0 - 47, 210], fill=(230, 190, 160))              # arms
        d.rectangle([x0 + 47, 105, x0 + 65, 210], fill=(230, 190, 160))
    return img


def forward_image():
    """$M2FP_TEST_IMAGE if set (e.g. a real photo), else photo_like_image()."""
    from PIL import Image
    path = os.environ.get("M2FP_TEST_IMAGE")
    if path and os.path.isfile(path):
        return Image.open(path).convert("RGB"), path
    return photo_like_image(), "photo_like_image()"
