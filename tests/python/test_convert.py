"""Tests of tools/convert_weights.py: expected-tensor table, bit-exact round trip, hostile and broken
inputs, and the converter running under a Python without torch.

Run: /usr/bin/python3 -m unittest discover -s tests/python -p "test_convert.py" -v
(ctest's python_tests sets M2FP_TESTDATA so the full CIHP/LIP synthetic checkpoints are used.)"""

import collections
import glob
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import h1_helpers as h
from h1_helpers import convert_weights as cw

try:
    import torch
except ImportError:    # the pure-Python parts still run
    torch = None

needs_torch = unittest.skipIf(torch is None, "needs torch (run with /usr/bin/python3)")

DTYPE_OF_TORCH = {}
if torch is not None:
    DTYPE_OF_TORCH = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16",
                      torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32",
                      torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}


def raw_bytes(t):
    """Row-major bytes of a torch tensor, whatever its dtype (bf16 has no numpy type)."""
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


class ExpectedTable(unittest.TestCase):
    """The table derived from the configuration, against the upstream state dict."""

    def test_cihp_table_equals_state_dict_tsv(self):
        model = h.load_config()["model"]
        rows = ["%s\t%s\t%s" % (e.name, "x".join(str(x) for x in e.shape),
                                {"F32": "float32", "I64": "int64"}[e.dtype])
                for e in cw.expected_tensors(model)]
        with open(h.CIHP_TSV) as f:
            ref = f.read().rstrip("\n").split("\n")
        self.assertEqual(len(rows), 928)
        for i, (a, b) in enumerate(zip(rows, ref)):
            self.assertEqual(a, b, "row %d differs" % i)
        self.assertEqual(rows, ref)
        nbt = [r for r in rows if r.split("\t")[0].endswith("num_batches_tracked")]
        self.assertEqual(len(nbt), 106)       # 3 stem + 4 shortcut + 33 x 3 bottleneck BatchNorms
        self.assertTrue(all(r.split("\t")[1:] == ["", "int64"] for r in nbt))

    def test_lip_table_differs_only_in_class_embed(self):
        cihp = cw.expected_tensors(h.load_config()["model"])
        lip = cw.expected_tensors(h.load_config(h.LIP_CONFIG)["model"])
        self.assertEqual([e.name for e in cihp], [e.name for e in lip])
        diff = [(a, b) for a, b in zip(cihp, lip) if a != b]
        self.assertEqual([a.name for a, _ in diff], ["sem_seg_head.predictor.class_embed.weight",
                                                      "sem_seg_head.predictor.class_embed.bias"])
        self.assertEqual(diff[0][1].shape, (21, 256))
        self.assertEqual(diff[1][1].shape, (21,))

    def test_config_knobs(self):
        base = h.load_config()["model"]

        def table(**changes):
            m = json.loads(json.dumps(base))
            for path, value in changes.items():
                section, key = path.split("__")
                m[section][key] = value
            return collections.OrderedDict((e.name, e.shape) for e in cw.expected_tensors(m))

        def blocks(t, stage):
            return len({n.split(".")[2] for n in t if n.startswith("backbone.res%d." % stage)})

        for depth, counts in [(50, (3, 4, 6, 3)), (101, (3, 4, 23, 3)), (152, (3, 8, 36, 3))]:
            t = table(backbone__depth=depth)
            self.assertEqual(tuple(blocks(t, s) for s in (2, 3, 4, 5)), counts, "depth %d" % depth)
        t = table(backbone__stem_out_channels=96)
        self.assertEqual(t["backbone.stem.conv1.weight"], (48, 3, 3, 3))
        self.assertEqual(t["backbone.stem.conv3.weight"], (96, 48, 3, 3))
        self.assertEqual(t["backbone.res2.0.shortcut.weight"], (256, 96, 1, 1))
        t = table(backbone__num_groups=32, backbone__width_per_group=8)     # ResNeXt-style
        self.assertEqual(t["backbone.res2.0.conv2.weight"], (256, 8, 3, 3))
        self.assertEqual(t["backbone.res5.0.conv2.weight"], (2048, 64, 3, 3))
        t = table(backbone__res2_out_channels=128)
        self.assertEqual(t["backbone.res5.2.conv3.weight"], (1024, 512, 1, 1))
        self.assertEqual(t["sem_seg_head.pixel_decoder.input_proj.0.0.weight"], (256, 1024, 1, 1))
        t = table(decoder__num_classes=20, decoder__num_queries=50, decoder__dec_layers=6,
                  decoder__dim_feedforward=1024)
        self.assertEqual(t["sem_seg_head.predictor.class_embed.weight"], (21, 256))
        self.assertEqual(t["sem_seg_head.predictor.query_feat.weight"], (50, 256))
        self.assertIn("sem_seg_head.predictor.transformer_ffn_layers.5.linear1.weight", t)
        self.assertNotIn("sem_seg_head.predictor.transformer_ffn_layers.6.linear1.weight", t)
        self.assertEqual(t["sem_seg_head.predictor.transformer_ffn_layers.0.linear2.weight"], (256, 1024))
        t = table(encoder__transformer_enc_layers=2, encoder__transformer_dim_feedforward=512,
                  encoder__transformer_nheads=4)
        enc = "sem_seg_head.pixel_decoder.transformer.encoder.layers."
        self.assertNotIn(enc + "2.norm1.weight", t)
        self.assertEqual(t[enc + "1.linear1.weight"], (512, 256))
        self.assertEqual(t[enc + "0.self_attn.sampling_offsets.weight"], (4 * 3 * 4 * 2, 256))
        self.assertEqual(t[enc + "0.self_attn.attention_weights.weight"], (4 * 3 * 4, 256))
        t = table(encoder__conv_dim=128, encoder__mask_dim=64, decoder__mask_dim=64)
        self.assertEqual(t["sem_seg_head.pixel_decoder.mask_features.weight"], (64, 128, 1, 1))
        self.assertEqual(t["sem_seg_head.predictor.mask_embed.layers.2.weight"], (64, 256))
        # conv_dim != hidden_dim: the decoder gets 1x1 input projections
        self.assertEqual(t["sem_seg_head.predictor.input_proj.2.weight"], (256, 128, 1, 1))
        t = table(decoder__enforce_input_project=True)
        self.assertEqual(t["sem_seg_head.predictor.input_proj.0.weight"], (256, 256, 1, 1))
        # common_stride 8: no extra FPN level (but then only 3 levels in total: still valid)
        t = table(encoder__common_stride=8)
        self.assertNotIn("sem_seg_head.pixel_decoder.adapter_1.weight", t)
        t = table(encoder__transformer_in_features=["res4", "res5"])
        self.assertEqual(t["sem_seg_head.pixel_decoder.transformer.level_embed"], (2, 256))
        self.assertIn("sem_seg_head.pixel_decoder.adapter_2.weight", t)   # res2 and res3 as FPN
        t = table(backbone__norm="GN")
        self.assertNotIn("backbone.stem.conv1.norm.running_mean", t)

    def test_bad_configs_are_named(self):
        base = h.load_config()["model"]
        cases = [
            (("backbone", "depth", 34), "depth"),
            (("backbone", "depth", "101"), "depth"),
            (("encoder", "conv_dim", 100), "conv_dim"),
            (("decoder", "mask_dim", 128), "mask_dim"),
            (("decoder", "hidden_dim", 250), "hidden_dim"),
            (("encoder", "transformer_in_features", ["res3", "res6"]), "res6"),
            (("encoder", "common_stride", 16), "FPN levels"),
            (("encoder", "common_stride", 8), None),
        ]
        for (section, key, value), word in cases:
            m = json.loads(json.dumps(base))
            m[section][key] = value
            if word is None:         # valid: 3 transformer levels, no FPN level
                cw.expected_tensors(m)
                continue
            with self.assertRaises(cw.ConvertError, msg=str((key, value))) as ctx:
                cw.expected_tensors(m)
            self.assertIn(word, str(ctx.exception))
        m = json.loads(json.dumps(base))
        del m["decoder"]["num_queries"]
        with self.assertRaisesRegex(cw.ConvertError, "decoder.num_queries"):
            cw.expected_tensors(m)


class ConverterCase(unittest.TestCase):
    """Base: a scratch folder per test, helpers to convert and to check a failed conversion."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="m2fp_convert_test_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def small_folder(self, name="small", mutate=None, seed=5, **save_kwargs):
        """A tiny synthetic checkpoint folder; mutate(state_dict) may edit the state dict first."""
        import make_synthetic_checkpoint as mk
        cfg = h.small_config()
        cfg["m2fp_synthetic"] = {"seed": seed, "generator": "test", "note": "test"}
        sd = mk.make_state_dict(cfg["model"], seed)
        if mutate:
            mutate(sd)
        folder = self.path(name)
        h.write_model_folder(folder, sd, cfg, **save_kwargs)
        return folder, sd, cfg

    def assert_fails(self, args, *words, python=None):
        out = args[args.index("-o") + 1]
        r = h.run_converter(args, python=python)
        self.assertNotEqual(r.returncode, 0, "conversion should have failed:\n" + r.stdout + r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        self.assertIn("error:", r.stderr)
        for w in words:
            self.assertIn(w, r.stderr)
        self.assertFalse(os.path.exists(out), "output file left behind")
        leftovers = glob.glob(os.path.join(os.path.dirname(out), ".*.tmp-*"))
        self.assertEqual(leftovers, [], "temporary file left behind")
        print("  [expected failure] %s" % r.stderr.strip().splitlines()[0][:160])
        return r

    def assert_round_trip(self, st_path, sd, cfg, synthetic=True):
        """Every tensor of `sd` is in `st_path`, bit-identical; structure and metadata are right."""
        meta, entries, data, n, text = h.read_safetensors(st_path)
        self.assertEqual((8 + n) % 8, 0, "data section not 8-aligned")
        self.assertTrue(text.rstrip(b" ").endswith(b"}"))
        self.assertLess(len(text) - len(text.rstrip(b" ")), 8, "more padding than needed")
        # no holes, no overlap, in order, up to the end of the file
        pos = 0
        for name, dtype, shape, b, e in entries:
            self.assertEqual(b, pos, "hole or overlap before %s" % name)
            pos = e
        self.assertEqual(pos, len(data), "bytes after the last tensor")
        expected = [e.name for e in cw.expected_tensors(cfg["model"])]
        self.assertEqual(sorted(name for name, *_ in entries), sorted(expected))
        for name, dtype, shape, b, e in entries:
            t = sd[name]
            self.assertEqual(dtype, DTYPE_OF_TORCH[t.dtype], name)
            self.assertEqual(list(shape), list(t.shape), name)
            item = t.element_size()
            self.assertEqual(b % item, 0, "%s not aligned to its element size" % name)
            self.assertTrue(data[b:e] == raw_bytes(t), "bytes of %s differ" % name)
        self.assertEqual(meta["format"], "pt")
        self.assertEqual(json.loads(meta["m2fp.config"]), json.loads(json.dumps(cfg["model"])))
        self.assertEqual(meta["m2fp.synthetic"], "true" if synthetic else "false")
        self.assertTrue(meta["m2fp.source"].endswith("pytorch_model.pt") or meta["m2fp.source"].endswith(".pt"))
        self.assertEqual(meta["m2fp.converter"], cw.CONVERTER_VERSION)
        self.assertTrue(all(isinstance(v, str) for v in meta.values()))
        return entries


@needs_torch
class RoundTrip(ConverterCase):

    def _full(self, variant):
        fx = h.synthetic_fixture(variant)
        if fx is None:
            self.skipTest("M2FP_TESTDATA fixtures not available (the small checkpoint tests still run)")
        folder, st = fx
        t0 = time.time()
        sd = torch.load(os.path.join(folder, "pytorch_model.pt"), map_location="cpu")["model"]
        with open(os.path.join(folder, "configuration.json")) as f:
            cfg = json.load(f)
        entries = self.assert_round_trip(st, sd, cfg)
        print("  %s: %d tensors bit-identical to torch.load, file %s bytes (checked in %.1f s)"
              % (os.path.basename(st), len(entries), format(os.path.getsize(st), ","), time.time() - t0))

    def test_cihp_fixture_round_trip(self):
        self._full("cihp")

    def test_lip_fixture_round_trip(self):
        self._full("lip")

    def test_full_cihp_conversion_time_and_size(self):
        fx = h.synthetic_fixture("cihp")
        if fx is None:
            self.skipTest("M2FP_TESTDATA fixtures not available")
        out = self.path("cihp.safetensors")
        t0 = time.time()
        r = h.run_converter([fx[0], "-o", out])
        dt = time.time() - t0
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as a, open(fx[1], "rb") as b:
            self.assertTrue(a.read() == b.read(), "conversion is not deterministic")
        print("  full CIHP conversion: %.2f s wall (process), %s bytes; converter says: %s"
              % (dt, format(os.path.getsize(out), ","), r.stdout.strip()))

    def test_small_round_trip_folder_and_pt_with_config(self):
        folder, sd, cfg = self.small_folder()
        out = self.path("small.safetensors")
        r = h.run_converter([folder, "-o", out])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("tensors", r.stdout)
        self.assert_round_trip(out, sd, cfg)
        # the same checkpoint given as a .pt elsewhere plus --config
        pt = self.path("renamed.pt")
        shutil.copy(os.path.join(folder, "pytorch_model.pt"), pt)
        out2 = self.path("small2.safetensors")
        r = h.run_converter([pt, "--config", os.path.join(folder, "configuration.json"), "-o", out2])
        self.assertEqual(r.returncode, 0, r.stderr)
        meta, *_ = h.read_safetensors(out2)
        self.assertEqual(meta["m2fp.source"], "renamed.pt")
        m1, e1, d1, *_ = h.read_safetensors(out)
        self.assertEqual((e1, d1), tuple(h.read_safetensors(out2)[1:3]))   # only metadata differs
        self.assertEqual(m1["m2fp.source"], "small/pytorch_model.pt")

    def test_not_synthetic_flag(self):
        folder, sd, cfg = self.small_folder()
        del cfg["m2fp_synthetic"]
        with open(os.path.join(folder, "configuration.json"), "w") as f:
            json.dump(cfg, f)
        out = self.path("o.safetensors")
        self.assertEqual(h.run_converter([folder, "-o", out]).returncode, 0)
        meta, *_ = h.read_safetensors(out)
        self.assertEqual(meta["m2fp.synthetic"], "false")

    def test_strided_views_scalars_and_other_dtypes(self):
        """Non-contiguous tensors, storage offsets, shared storages, zero strides, scalars, and
        F16/BF16/F64 floats and an I32 counter are written row-major and bit-identical."""
        P = "sem_seg_head.predictor."

        def mutate(sd):
            w = sd[P + "class_embed.weight"]                         # [22, 32] -> transposed view
            sd[P + "class_embed.weight"] = w.t().contiguous().t()
            self.assertFalse(sd[P + "class_embed.weight"].is_contiguous())
            q = sd[P + "query_feat.weight"]                          # slice of a larger storage
            big = torch.randn(q.numel() + 37)
            big[11:11 + q.numel()] = q.flatten()
            sd[P + "query_feat.weight"] = big[11:11 + q.numel()].view(q.shape)
            self.assertEqual(sd[P + "query_feat.weight"].storage_offset(), 11)
            qe = sd[P + "query_embed.weight"]                        # every other column of a wider one
            wide = torch.randn(qe.shape[0], qe.shape[1] * 2)
            wide[:, ::2] = qe
            sd[P + "query_embed.weight"] = wide[:, ::2]
            lvl = sd[P + "level_embed.weight"]                       # stride 0 (expanded row)
            sd[P + "level_embed.weight"] = lvl[1:2].expand(lvl.shape)
            sd[P + "decoder_norm.bias"] = sd[P + "decoder_norm.bias"].half()
            sd[P + "decoder_norm.weight"] = sd[P + "decoder_norm.weight"].bfloat16()
            sd[P + "class_embed.bias"] = sd[P + "class_embed.bias"].double()
            sd["backbone.stem.conv1.norm.num_batches_tracked"] = torch.tensor(12345, dtype=torch.int32)
            sd["backbone.stem.conv2.norm.num_batches_tracked"] = torch.tensor(2 ** 40 + 3)
            # two names sharing one storage
            sd[P + "mask_embed.layers.0.bias"] = sd[P + "mask_embed.layers.1.bias"]
        folder, sd, cfg = self.small_folder(mutate=mutate)
        out = self.path("strided.safetensors")
        r = h.run_converter([folder, "-o", out])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("kept unchanged", r.stderr)   # the dtype notes
        entries = self.assert_round_trip(out, sd, cfg)
        dtypes = {name: dt for name, dt, *_ in entries}
        self.assertEqual(dtypes[P + "decoder_norm.bias"], "F16")
        self.assertEqual(dtypes[P + "decoder_norm.weight"], "BF16")
        self.assertEqual(dtypes[P + "class_embed.bias"], "F64")
        self.assertEqual(dtypes["backbone.stem.conv1.norm.num_batches_tracked"], "I32")
        shapes = {name: s for name, _, s, *_ in entries}
        self.assertEqual(shapes["backbone.stem.conv2.norm.num_batches_tracked"], [])

    def test_gather_strided_matches_torch(self):
        """The pure-Python strided copy against torch on awkward shapes and strides."""
        g = torch.Generator().manual_seed(0)
        base = torch.randn(7 * 13 * 5 + 9, generator=g)
        raw = base.numpy().tobytes()
        for shape, stride, offset in [((13, 7), (1, 13), 0), ((5, 13, 7), (1, 35, 5), 3), ((3, 4), (0, 2), 9),
                                      ((7,), (3,), 1), ((2, 3, 1, 5), (40, 5, 1, 1), 2)]:
            t = torch.as_strided(base, shape, stride, offset)
            got = cw._gather_strided(raw, 4, offset, shape, stride)
            self.assertEqual(got, t.contiguous().numpy().tobytes(), str((shape, stride, offset)))

    def test_state_dict_with_metadata_attribute_and_parameters(self):
        """A real nn.Module state_dict() carries _metadata (pickle BUILD); Parameters use
        _rebuild_parameter. Both load."""
        def mutate(sd):
            sd._metadata = collections.OrderedDict([("", {"version": 1})])
            name = "sem_seg_head.predictor.query_feat.weight"
            sd[name] = torch.nn.Parameter(sd[name])
        folder, sd, cfg = self.small_folder(mutate=mutate)
        out = self.path("meta.safetensors")
        r = h.run_converter([folder, "-o", out])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_round_trip(out, {k: v.detach() for k, v in sd.items()}, cfg)

    def test_verbose_table(self):
        folder, sd, cfg = self.small_folder()
        r = h.run_converter([folder, "-o", self.path("v.safetensors"), "--verbose"])
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [l for l in r.stdout.splitlines() if l.startswith(("backbone.", "sem_seg_head."))]
        self.assertEqual(len(lines), len(sd))
        self.assertIn("backbone.stem.conv1.weight", lines[0])
        self.assertIn("[16, 3, 3, 3]", lines[0])
        self.assertTrue(any(l.rstrip().endswith("I64") for l in lines))

    def test_extras_listed_and_skipped(self):
        def mutate(sd):
            sd["backbone.fc.weight"] = torch.ones(3, 4)
            sd["pixel_mean"] = torch.zeros(3)
        folder, sd, cfg = self.small_folder(mutate=mutate)
        out = self.path("x.safetensors")
        r = h.run_converter([folder, "-o", out])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("skipping 2 extra tensors", r.stderr)
        self.assertIn("backbone.fc.weight", r.stderr)
        self.assertIn("pixel_mean", r.stderr)
        _, entries, *_ = h.read_safetensors(out)
        names = {e[0] for e in entries}
        self.assertNotIn("pixel_mean", names)
        del sd["backbone.fc.weight"], sd["pixel_mean"]
        self.assert_round_trip(out, sd, cfg)


@needs_torch
class BrokenInputs(ConverterCase):

    def test_missing_tensor(self):
        name = "sem_seg_head.pixel_decoder.layer_1.norm.bias"
        folder, *_ = self.small_folder(mutate=lambda sd: sd.pop(name))
        self.assert_fails([folder, "-o", self.path("o.safetensors")], "missing tensor " + name)

    def test_wrong_shape(self):
        name = "backbone.res3.1.conv2.weight"

        def mutate(sd):
            sd[name] = sd[name][:, :-1].contiguous()
        folder, *_ = self.small_folder(mutate=mutate)
        self.assert_fails([folder, "-o", self.path("o.safetensors")], name, "expected [32, 32, 3, 3]")

    def test_wrong_kind_of_dtype(self):
        name = "sem_seg_head.predictor.class_embed.bias"

        def mutate(sd):
            sd[name] = sd[name].long()
        folder, *_ = self.small_folder(mutate=mutate)
        self.assert_fails([folder, "-o", self.path("o.safetensors")], name, "dtype I64")

    def test_truncated_zip(self):
        folder, *_ = self.small_folder()
        pt = os.path.join(folder, "pytorch_model.pt")
        with open(pt, "rb") as f:
            blob = f.read()
        for cut in (len(blob) // 2, len(blob) - 10):
            with open(pt, "wb") as f:
                f.write(blob[:cut])
            self.assert_fails([folder, "-o", self.path("o.safetensors")], "truncated or corrupt")

    def test_corrupt_tensor_bytes(self):
        """A flipped byte inside a tensor record: the zip CRC check catches it."""
        folder, *_ = self.small_folder()
        pt = os.path.join(folder, "pytorch_model.pt")
        with open(pt, "rb") as f:
            blob = bytearray(f.read())
        import zipfile
        with zipfile.ZipFile(pt) as z:
            info = [i for i in z.infolist() if "/data/" in i.filename and i.file_size > 100][0]
        o = info.header_offset     # local header: 30 bytes, then name and (local) extra field
        name_len, extra_len = struct.unpack("<HH", bytes(blob[o + 26:o + 30]))
        start = o + 30 + name_len + extra_len
        blob[start + 50] ^= 0xFF
        with open(pt, "wb") as f:
            f.write(bytes(blob))
        self.assert_fails([folder, "-o", self.path("o.safetensors")], "truncated or corrupt")

    def test_missing_data_pkl(self):
        os.makedirs(self.path("m"))
        shutil.copy(h.CIHP_CONFIG, self.path("m", "configuration.json"))
        h.torch_zip(self.path("m", "pytorch_model.pt"), b"", {"0": b"\0" * 16}, with_data_pkl=False)
        self.assert_fails([self.path("m"), "-o", self.path("o.safetensors")], "no data.pkl")

    def test_zero_byte_file(self):
        os.makedirs(self.path("m"))
        shutil.copy(h.CIHP_CONFIG, self.path("m", "configuration.json"))
        open(self.path("m", "pytorch_model.pt"), "wb").close()
        self.assert_fails([self.path("m"), "-o", self.path("o.safetensors")], "empty")

    def test_legacy_format(self):
        folder, sd, cfg = self.small_folder(_use_new_zipfile_serialization=False)
        self.assert_fails([folder, "-o", self.path("o.safetensors")], "legacy")

    def test_not_a_checkpoint(self):
        os.makedirs(self.path("m"))
        shutil.copy(h.CIHP_CONFIG, self.path("m", "configuration.json"))
        with open(self.path("m", "pytorch_model.pt"), "w") as f:
            f.write("<html>404 Not Found</html>")
        self.assert_fails([self.path("m"), "-o", self.path("o.safetensors")], "not a PyTorch zip")

    def test_torchscript_archive(self):
        os.makedirs(self.path("m"))
        shutil.copy(h.CIHP_CONFIG, self.path("m", "configuration.json"))
        m = torch.jit.script(torch.nn.Linear(2, 2))
        torch.jit.save(m, self.path("m", "pytorch_model.pt"))
        self.assert_fails([self.path("m"), "-o", self.path("o.safetensors")], "TorchScript")

    def test_missing_configuration(self):
        folder, *_ = self.small_folder()
        os.remove(os.path.join(folder, "configuration.json"))
        self.assert_fails([folder, "-o", self.path("o.safetensors")], "configuration.json")
        pt = os.path.join(folder, "pytorch_model.pt")
        self.assert_fails([pt, "-o", self.path("o.safetensors")], "--config")
        self.assert_fails([pt, "--config", self.path("nope.json"), "-o", self.path("o.safetensors")],
                          "does not exist")

    def test_bad_json(self):
        folder, *_ = self.small_folder()
        with open(os.path.join(folder, "configuration.json"), "w") as f:
            f.write('{"model": {"backbone": ')
        self.assert_fails([folder, "-o", self.path("o.safetensors")], "not valid JSON")
        with open(os.path.join(folder, "configuration.json"), "w") as f:
            f.write('{"framework": "pytorch"}')
        self.assert_fails([folder, "-o", self.path("o.safetensors")], "no 'model' section")
        with open(os.path.join(folder, "configuration.json"), "w") as f:
            json.dump({"model": {"backbone": {"depth": 101}, "encoder": {}, "decoder": {}}}, f)
        self.assert_fails([folder, "-o", self.path("o.safetensors")], "model.backbone.")

    def test_missing_source_and_output_folder(self):
        self.assert_fails([self.path("nothing"), "-o", self.path("o.safetensors")], "does not exist")
        folder, *_ = self.small_folder()
        r = h.run_converter([folder, "-o", self.path("no", "such", "dir", "o.safetensors")])
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn("Traceback", r.stderr)
        self.assertIn("does not exist", r.stderr)

    def test_existing_output_kept_on_failure(self):
        """A failed conversion leaves an existing output file untouched."""
        folder, *_ = self.small_folder(mutate=lambda sd: sd.pop("backbone.stem.conv1.weight"))
        out = self.path("o.safetensors")
        with open(out, "wb") as f:
            f.write(b"previous")
        r = h.run_converter([folder, "-o", out])
        self.assertNotEqual(r.returncode, 0)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"previous")


class HostilePickles(ConverterCase):
    """Pickles that would run code if executed are refused before anything runs."""

    def _check_refused(self, payload, global_name):
        os.makedirs(self.path("m"))
        shutil.copy(h.CIHP_CONFIG, self.path("m", "configuration.json"))
        h.torch_zip(self.path("m", "pytorch_model.pt"), payload, {"0": b"\0" * 8})
        r = self.assert_fails([self.path("m"), "-o", self.path("o.safetensors")],
                              "refusing to load global '%s'" % global_name)
        return r

    def test_os_system(self):
        for module in ("posix", "os"):
            marker = self.path("pwned_%s" % module)
            self._check_refused(h.pickle_call(module, "system", "touch " + marker), module + ".system")
            self.assertFalse(os.path.exists(marker), "the command ran")
            shutil.rmtree(self.path("m"))

    def test_os_system_hidden_after_a_tensor(self):
        marker = self.path("pwned")
        self._check_refused(h.pickle_state_dict_then_call("posix", "system", "touch " + marker), "posix.system")
        self.assertFalse(os.path.exists(marker), "the command ran")

    def test_builtins_eval(self):
        marker = self.path("pwned_eval")
        code = "open(%r, 'w').write('x')" % marker
        self._check_refused(h.pickle_call("builtins", "eval", code), "builtins.eval")
        self.assertFalse(os.path.exists(marker))

    def test_subprocess_popen(self):
        marker = self.path("pwned_popen")
        self._check_refused(h.pickle_call("subprocess", "Popen", "touch " + marker), "subprocess.Popen")
        time.sleep(0.2)
        self.assertFalse(os.path.exists(marker))

    def test_in_process_unpickler_refuses(self):
        import io
        for module, name in [("posix", "system"), ("builtins", "exec"), ("torch", "load"),
                             ("torch.serialization", "_get_layout"), ("collections", "defaultdict")]:
            with self.assertRaisesRegex(cw.ConvertError, "refusing to load global '%s.%s'" % (module, name)):
                cw.RestrictedUnpickler(io.BytesIO(h.pickle_call(module, name, "x"))).load()

    def test_malformed_pickle(self):
        os.makedirs(self.path("m"))
        shutil.copy(h.CIHP_CONFIG, self.path("m", "configuration.json"))
        h.torch_zip(self.path("m", "pytorch_model.pt"), b"\x80\x02}q\x00(X\x01", {})
        self.assert_fails([self.path("m"), "-o", self.path("o.safetensors")], "cannot unpickle")

    def test_bad_persistent_id(self):
        os.makedirs(self.path("m"))
        shutil.copy(h.CIHP_CONFIG, self.path("m", "configuration.json"))
        # persistent id ('storage', 'not a type', '0', 'cpu', 2)
        payload = b"\x80\x02(X\x07\x00\x00\x00storageX\x01\x00\x00\x00xX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02tQ."
        h.torch_zip(self.path("m", "pytorch_model.pt"), payload, {})
        self.assert_fails([self.path("m"), "-o", self.path("o.safetensors")], "unknown storage type")


class WithoutTorch(ConverterCase):
    """The converter runs under a Python that has no torch (the pyenv python3 of this machine)."""

    def test_runs_under_python_without_torch(self):
        other = shutil.which("python3")
        if not other or os.path.realpath(other) == os.path.realpath(sys.executable):
            self.skipTest("no second python3 on PATH")
        probe = subprocess.run([other, "-c", "import sys; print(sys.version.split()[0])"],
                               stdout=subprocess.PIPE, universal_newlines=True)
        if probe.returncode != 0:
            self.skipTest("python3 on PATH does not run")
        has_torch = subprocess.run([other, "-c", "import torch"], stderr=subprocess.DEVNULL).returncode == 0
        fx = h.synthetic_fixture("cihp")
        if fx is not None:
            src, reference = fx
        else:
            if torch is None:
                self.skipTest("neither fixtures nor torch available")
            src, _, _ = self.small_folder()
            reference = self.path("ref.safetensors")
            self.assertEqual(h.run_converter([src, "-o", reference]).returncode, 0)
        out = self.path("other.safetensors")
        r = h.run_converter([src, "-o", out], python=other)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as a, open(reference, "rb") as b:
            self.assertTrue(a.read() == b.read(), "output differs from the reference conversion")
        print("  %s (Python %s, torch %s): identical output, %s"
              % (other, probe.stdout.strip(), "present" if has_torch else "absent", r.stdout.strip()))
        # and a hostile file is refused there too
        os.makedirs(self.path("m"))
        shutil.copy(h.CIHP_CONFIG, self.path("m", "configuration.json"))
        marker = self.path("pwned")
        h.torch_zip(self.path("m", "pytorch_model.pt"), h.pickle_call("posix", "system", "touch " + marker))
        self.assert_fails([self.path("m"), "-o", self.path("o.safetensors")], "posix.system", python=other)
        self.assertFalse(os.path.exists(marker))


if __name__ == "__main__":
    unittest.main()
