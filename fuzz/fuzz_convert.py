#!/usr/bin/env python3
"""Mutation fuzzer for tools/convert_weights.py (the torch-free converter and its restricted
unpickler). Deterministic: iteration i uses random.Random(seed * 1000003 + i).

    python3 fuzz/fuzz_convert.py [--iterations 2000] [--seed 1] [--cli-every 25]
                                 [--artifacts DIR] [--no-torch-seed] [--verbose]

Seeds (built in memory, no file of the repository is needed besides the converter and the CIHP
configuration): a tiny M2FP configuration (ResNet-50 layout, 2..32 channels, 1 encoder and 1 decoder
layer: ~430 tensors, ~70 KB) and its state dict as a torch.save zip, written twice: by a hand-made
protocol-2 pickle writer (no torch needed) and, when torch is importable, by torch.save itself.

Each iteration applies 1-3 mutations of one of these kinds:
  pickle   opcode-aware edits of data.pkl (re-zipped with valid CRCs, so the unpickler sees them):
           integers (sizes, strides, offsets, element counts) set to 0 / -1 / huge / random, strings
           (names, storage keys -> "../x", "a/b", ""), GLOBALs replaced by hostile callables
           (os.system, builtins.eval, subprocess.Popen, ...), opcodes deleted, duplicated, swapped,
           inserted, the stream truncated;
  zip      raw bytes of the archive: bit flips, overwritten bytes, truncation, inserted bytes;
  records  storage records removed, truncated, extended, compressed (deflate/bzip2/lzma), extra
           TorchScript-like records, data.pkl renamed or doubled, byteorder "big";
  config   configuration.json: values replaced by wrong types, negatives, zeros, huge numbers,
           keys removed, invalid JSON or UTF-8.

Oracle, for every mutant, running convert_weights.main() in this process:
  - exit 0: the output exists and is a well-formed safetensors file (independent reader below);
  - exit != 0: stderr's first line is "convert_weights.py: error: ..." and never the catch-all
    "unexpected <Exception>" (an input the converter did not foresee is a finding), no Traceback,
    no output file and no temporary file left behind;
  - nothing is executed: an audit hook (sys.addaudithook) records os.system, subprocess, exec,
    compile, imports, os.exec*/spawn*/fork, ctypes, sockets and file writes outside the output
    folder while the converter runs: any of them is a finding;
  - each call finishes within 20 s (SIGALRM).
Every --cli-every-th mutant, and the first of each distinct error, is also run as a separate
process (`python3 tools/convert_weights.py ...`) to check the exit status and that stderr holds
no traceback. Findings are written to --artifacts (checkpoint + configuration + reason) and make
the exit status 1.
"""

import argparse
import collections
import contextlib
import copy
import io
import json
import os
import pickletools
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TOOLS = os.path.join(REPO, "tools")
CONVERTER = os.path.join(TOOLS, "convert_weights.py")
sys.path.insert(0, TOOLS)
import convert_weights as cw  # noqa: E402

# ------------------------------------------------------------------------------------------------
# Seed checkpoint
# ------------------------------------------------------------------------------------------------


def tiny_config():
    with open(os.path.join(TOOLS, "configs", "cihp_configuration.json")) as f:
        cfg = json.load(f, object_pairs_hook=collections.OrderedDict)
    m = cfg["model"]
    m["backbone"].update(depth=50, stem_out_channels=2, res2_out_channels=4, width_per_group=1)
    m["encoder"].update(conv_dim=32, mask_dim=32, transformer_dim_feedforward=8, transformer_enc_layers=1)
    m["decoder"].update(hidden_dim=32, mask_dim=32, num_queries=2, dim_feedforward=8, dec_layers=1)
    cfg["m2fp_synthetic"] = {"seed": 0, "generator": "fuzz/fuzz_convert.py"}
    return cfg


STORAGE_OF = {"F32": ("FloatStorage", 4), "I64": ("LongStorage", 8)}


def p_str(s):
    b = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(b)) + b


def p_int(n):
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if 0 <= n < 65536:
        return b"M" + struct.pack("<H", n)
    if -2 ** 31 <= n < 2 ** 31:
        return b"J" + struct.pack("<i", n)
    b = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(b)]) + b


def p_tuple(items):
    return b"(" + b"".join(p_int(x) for x in items) + b"t" if items else b")"


def p_global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def p_tensor(key, storage, numel, shape):
    stride, s = [], 1
    for n in reversed(shape):
        stride.insert(0, s)
        s *= n
    pid = b"(" + p_str("storage") + p_global("torch", storage) + p_str(key) + p_str("cpu") + p_int(numel) + b"tQ"
    return (p_global("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + p_int(0) + p_tuple(shape)
            + p_tuple(stride) + b"\x89" + p_global("collections", "OrderedDict") + b")R" + b"tR")


def seed_state(cfg, rng):
    """[(name, dtype, shape, bytes)] for every tensor of the configuration."""
    out = []
    for e in cw.expected_tensors(cfg["model"]):
        numel = 1
        for n in e.shape:
            numel *= n
        if e.dtype == "I64":
            data = struct.pack("<q", rng.randrange(1000))
        else:
            data = struct.pack("<%df" % numel, *[rng.uniform(-1, 1) for _ in range(numel)])
        out.append((e.name, e.dtype, tuple(e.shape), data))
    return out


def handmade_checkpoint(state):
    """(data.pkl bytes, {key: bytes}) as torch.save writes them, by hand (protocol 2)."""
    body, records = b"", {}
    for i, (name, dtype, shape, data) in enumerate(state):
        storage, item = STORAGE_OF[dtype]
        key = str(i)
        records[key] = data
        body += p_str(name) + p_tensor(key, storage, len(data) // item, list(shape))
    pkl = (b"\x80\x02}" + p_str("model") + p_global("collections", "OrderedDict") + b")R(" + body + b"u"
           + b"s.")
    return pkl, records


def torch_checkpoint(state):
    """The same state dict written by torch.save (None without torch)."""
    try:
        import torch
    except ImportError:
        return None
    sd = collections.OrderedDict()
    for name, dtype, shape, data in state:
        t = torch.frombuffer(bytearray(data), dtype=torch.float32 if dtype == "F32" else torch.int64)
        sd[name] = t.reshape(shape).clone()
    buf = io.BytesIO()
    torch.save({"model": sd}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        names = z.namelist()
        prefix = [n for n in names if n.endswith("/data.pkl")][0][:-len("data.pkl")]
        pkl = z.read(prefix + "data.pkl")
        records = {n[len(prefix) + 5:]: z.read(n) for n in names if n.startswith(prefix + "data/")}
    return pkl, records


class Checkpoint(object):
    """A mutable description of a torch zip: records in order, compression per record."""

    def __init__(self, pkl, records, prefix="archive"):
        self.prefix = prefix
        self.entries = [[prefix + "/data.pkl", pkl, zipfile.ZIP_STORED]]
        self.entries += [[prefix + "/data/" + k, v, zipfile.ZIP_STORED] for k, v in records.items()]
        self.entries.append([prefix + "/version", b"3\n", zipfile.ZIP_STORED])
        self.raw_edits = []   # functions bytes -> bytes applied to the written archive

    def clone(self):
        c = Checkpoint(b"", {}, self.prefix)
        c.entries = [list(e) for e in self.entries]
        c.raw_edits = list(self.raw_edits)
        return c

    def pkl_index(self):
        for i, e in enumerate(self.entries):
            if e[0].endswith("data.pkl"):
                return i
        return None

    def write(self, path):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for name, data, comp in self.entries:   # fixed dates: the same bytes every run
                z.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data, compress_type=comp)
        blob = buf.getvalue()
        for edit in self.raw_edits:
            blob = edit(blob)
        with open(path, "wb") as f:
            f.write(blob)


# ------------------------------------------------------------------------------------------------
# Mutations
# ------------------------------------------------------------------------------------------------

HOSTILE_GLOBALS = [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
                   ("__builtin__", "eval"), ("subprocess", "Popen"), ("subprocess", "check_output"),
                   ("builtins", "getattr"), ("builtins", "__import__"), ("io", "open"), ("shutil", "rmtree"),
                   ("torch", "load"), ("numpy.core.multiarray", "_reconstruct"), ("torch._utils", "system"),
                   ("collections", "namedtuple"), ("torch", "FloatStorage"), ("torch", "LongStorage"),
                   ("torch._utils", "_rebuild_parameter"), ("torch._tensor", "_rebuild_from_type_v2"),
                   ("torch", "Tensor"), ("torch.nn.parameter", "Parameter"), ("torch", "HalfStorage")]
INTERESTING_INTS = [0, 1, -1, 2, 3, 7, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 62, 2 ** 63,
                    2 ** 64, -2 ** 63, 10 ** 12]
INTERESTING_STRS = ["", "storage", "cpu", "0", "1", "../x", "a/b", ".", "..", "model", "/etc/passwd",
                    "\x00", "x" * 300, "backbone.stem.conv1.weight", "data.pkl", "\u00e9\u4e2d"]
NOARG_OPS = [b"(", b"t", b")", b"R", b"u", b"s", b"}", b"]", b"a", b"e", b"N", b"\x88", b"\x89", b"Q",
             b"0", b"2", b"1", b".", b"\x85", b"\x86", b"\x87", b"b", b"l", b"d", b"o", b"\x81", b"\x94"]


def ops_of(pkl):
    """[(start, end, opcode name, arg)] of a pickle, or None if it does not parse."""
    try:
        ops = list(pickletools.genops(pkl))
    except Exception:
        return None
    out = []
    for k, (op, arg, pos) in enumerate(ops):
        end = ops[k + 1][2] if k + 1 < len(ops) else len(pkl)
        out.append((pos, end, op.name, arg))
    return out


def mutate_pickle(pkl, rng):
    ops = ops_of(pkl)
    if not ops:   # an earlier mutation broke the stream: fall back to bytes
        return mutate_bytes(pkl, rng)
    kind = rng.randrange(9)
    pick = rng.randrange(len(ops))
    start, end, name, arg = ops[pick]
    if kind <= 1:   # an integer argument
        ints = [o for o in ops if o[2] in ("BININT", "BININT1", "BININT2", "LONG1", "INT", "LONG")]
        if ints:
            start, end, name, arg = rng.choice(ints)
            v = rng.choice(INTERESTING_INTS) if rng.random() < 0.7 else arg + rng.randint(-3, 3)
            return pkl[:start] + p_int(v) + pkl[end:]
    if kind == 2:   # a string argument
        strs = [o for o in ops if o[2] in ("BINUNICODE", "SHORT_BINUNICODE", "BINSTRING", "SHORT_BINSTRING")]
        if strs:
            start, end, name, arg = rng.choice(strs)
            s = rng.choice(INTERESTING_STRS) if rng.random() < 0.7 else str(arg)[:-1] + chr(rng.randrange(32, 127))
            return pkl[:start] + p_str(s) + pkl[end:]
    if kind == 3:   # a global
        gl = [o for o in ops if o[2] in ("GLOBAL", "STACK_GLOBAL")]
        if gl:
            start, end, name, arg = rng.choice(gl)
            return pkl[:start] + p_global(*rng.choice(HOSTILE_GLOBALS)) + pkl[end:]
    if kind == 4:   # delete an opcode
        return pkl[:start] + pkl[end:]
    if kind == 5:   # duplicate an opcode
        return pkl[:end] + pkl[start:end] + pkl[end:]
    if kind == 6:   # swap two opcodes
        s2, e2, _, _ = ops[rng.randrange(len(ops))]
        (a0, a1), (b0, b1) = sorted([(start, end), (s2, e2)])
        if a1 <= b0:
            return pkl[:a0] + pkl[b0:b1] + pkl[a1:b0] + pkl[a0:a1] + pkl[b1:]
    if kind == 7:   # insert an opcode
        op = rng.choice(NOARG_OPS + [p_int(rng.choice(INTERESTING_INTS)), p_str(rng.choice(INTERESTING_STRS)),
                                     p_global(*rng.choice(HOSTILE_GLOBALS)), b"h" + bytes([rng.randrange(256)]),
                                     b"q" + bytes([rng.randrange(256)])])
        return pkl[:start] + op + pkl[start:]
    return pkl[:rng.randrange(len(pkl) + 1)]   # truncate


def mutate_bytes(b, rng):
    b = bytearray(b)
    if not b:
        return bytes([rng.randrange(256)])
    kind = rng.randrange(5)
    pos = rng.randrange(len(b))
    if kind == 0:
        b[pos] ^= 1 << rng.randrange(8)
    elif kind == 1:
        for i in range(rng.randint(1, 8)):
            if pos + i < len(b):
                b[pos + i] = rng.randrange(256)
    elif kind == 2:
        del b[rng.randrange(len(b) + 1):]
    elif kind == 3:
        b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    else:
        n = rng.choice([0, 0xFF, 0x7F, 0x80])
        b[pos:pos + 4] = bytes([n] * 4)
    return bytes(b)


def mutate_records(ck, rng):
    kind = rng.randrange(8)
    data_idx = [i for i, e in enumerate(ck.entries) if "/data/" in e[0]]
    if kind == 0 and data_idx:     # remove a storage record
        del ck.entries[rng.choice(data_idx)]
    elif kind == 1 and data_idx:   # truncate or extend a storage record
        e = ck.entries[rng.choice(data_idx)]
        e[1] = e[1][:rng.randrange(len(e[1]) + 1)] if rng.random() < 0.6 else e[1] + b"\0" * rng.randint(1, 64)
    elif kind == 2:                # compress some records
        comp = rng.choice([zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
        for e in ck.entries:
            if rng.random() < 0.3:
                e[2] = comp
    elif kind == 3:                # TorchScript-looking records
        ck.entries.append([ck.prefix + rng.choice(["/constants.pkl", "/code/__torch__.py"]), b"x", zipfile.ZIP_STORED])
    elif kind == 4:                # data.pkl renamed, doubled or nested
        i = ck.pkl_index()
        if i is not None:
            choice = rng.randrange(3)
            if choice == 0:
                ck.entries[i][0] = ck.prefix + "/data.pickle"
            elif choice == 1:
                ck.entries.append(["other/data.pkl", ck.entries[i][1], zipfile.ZIP_STORED])
            else:
                ck.entries[i][0] = ck.prefix + "/sub/data.pkl"
    elif kind == 5:                # byte order
        ck.entries.append([ck.prefix + "/byteorder", rng.choice([b"big", b"little", b"", b"\xff"]),
                           zipfile.ZIP_STORED])
    elif kind == 6:                # an absolute or parent-relative record name
        ck.entries.append([rng.choice(["../evil", "/abs/evil", ck.prefix + "/data/../../x"]), b"1",
                           zipfile.ZIP_STORED])
    else:                          # raw archive bytes
        ck.raw_edits.append(lambda blob, r=random.Random(rng.random()): mutate_bytes(blob, r))


def mutate_config(cfg, rng):
    """A mutated copy of the configuration: (json text or bytes)."""
    c = copy.deepcopy(cfg)
    if rng.random() < 0.1:
        text = json.dumps(c).encode()
        return mutate_bytes(text, rng)
    sections = [c["model"]] + [v for v in c["model"].values() if isinstance(v, dict)]
    sec = rng.choice(sections)
    if not sec:
        return json.dumps(c)
    key = rng.choice(list(sec.keys()))
    r = rng.randrange(6)
    if r == 0:
        del sec[key]
    elif r == 1:
        sec[key] = rng.choice([None, "x", [], {}, True, 1.5, [1, 2], "res2"])
    elif r == 2:
        sec[key] = rng.choice([0, -1, 1, 3, 10 ** 9, 2 ** 63, 31, 33])
    elif r == 3 and isinstance(sec[key], list) and sec[key]:
        sec[key] = sec[key][:rng.randrange(len(sec[key]))] + [rng.choice(["res1", "res6", 7, None])]
    elif r == 4:
        c["model"] = rng.choice([[], "model", None, {}])
    else:
        sec[key + "_extra"] = 1
    return json.dumps(c)


# ------------------------------------------------------------------------------------------------
# Oracle
# ------------------------------------------------------------------------------------------------

class Watch(object):
    """Audit hook: records dangerous events while armed."""
    DANGEROUS = ("os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                 "os.forkpty", "exec", "compile", "ctypes.", "socket.", "import", "builtins.input",
                 "os.kill", "os.remove", "os.unlink", "shutil.rmtree", "os.rmdir", "os.chmod", "os.symlink",
                 "pickle.find_class", "marshal.loads", "code.__new__", "function.__new__")

    def __init__(self):
        # Modules the standard library imports lazily on the converter's normal path (zipfile
        # decodes names as cp437; compressed records): imported now, so that any import seen while
        # armed is one a checkpoint caused.
        import encodings.cp437, encodings.utf_8, bz2, lzma, zlib  # noqa: F401,E401
        self.armed = False
        self.allowed_dir = None
        self.events = []
        sys.addaudithook(self.hook)

    def hook(self, event, args):
        if not self.armed:
            return
        if event == "open":
            path, mode = args[0], args[1]
            writing = isinstance(mode, str) and any(m in mode for m in "wax+")
            if isinstance(path, int):
                return
            path = os.path.abspath(os.fsdecode(path))
            if writing and not path.startswith(self.allowed_dir + os.sep):
                self.events.append("open for writing outside the output folder: %s" % path)
            return
        if event in ("os.remove", "os.unlink") and args and \
                os.path.abspath(os.fsdecode(args[0])).startswith(self.allowed_dir + os.sep):
            return   # the converter removes its own temporary file
        if event == "os.rename" or event == "os.replace":
            return
        for d in self.DANGEROUS:
            if event == d or (d.endswith(".") and event.startswith(d)) or event.startswith(d + "."):
                self.events.append(("%s %r" % (event, args[:2] if isinstance(args, tuple) else args))[:200])
                return


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


def check_safetensors(path):
    """Independent structural check of a written file; returns an error string or None."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        return "output shorter than 8 bytes"
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob) or (8 + n) % 8:
        return "bad header length %d" % n
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except ValueError as e:
        return "header is not JSON: %s" % e
    data = len(blob) - 8 - n
    sizes = {"F32": 4, "F64": 8, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
             "BOOL": 1}
    pos = 0
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        numel = 1
        for d in v["shape"]:
            numel *= d
        if b != pos or e - b != numel * sizes[v["dtype"]] or e > data:
            return "tensor %s: offsets %s do not fit" % (k, v["data_offsets"])
        pos = e
    return None if pos == data else "data section has %d trailing bytes" % (data - pos)


def run_in_process(watch, pt, cfg_path, out):
    err, outbuf = io.StringIO(), io.StringIO()
    watch.events = []
    watch.allowed_dir = os.path.dirname(os.path.abspath(out))
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(20)
    watch.armed = True
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(outbuf):
            rc = cw.main([pt, "-o", out, "--config", cfg_path])
    except Timeout:
        rc = "timeout"
    except SystemExit as e:   # argparse
        rc = "SystemExit(%s)" % e.code
    except BaseException as e:   # main() let something through: a finding
        rc = "raised %s: %s" % (type(e).__name__, e)
    finally:
        watch.armed = False
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return rc, err.getvalue(), list(watch.events)


def judge(rc, stderr, events, out, out_existed):
    """Returns (outcome, problem): outcome 'converted' or the error's category; problem or None."""
    if events:
        return "executed", "dangerous events: " + "; ".join(events[:5])
    if not isinstance(rc, int):
        return "crash", "main() did not return a status: %s" % rc
    leftovers = [n for n in os.listdir(os.path.dirname(out)) if ".tmp-" in n]
    if leftovers:
        return "leftover", "temporary files left behind: %s" % leftovers
    if rc == 0:
        if not os.path.isfile(out):
            return "converted", "exit 0 but no output file"
        bad = check_safetensors(out)
        return "converted", ("exit 0 but " + bad) if bad else None
    # stderr: notes about what was read (dtype notes, skipped tensors), then one error line (the
    # checkpoint/configuration mismatch lists its problems on indented lines after it)
    lines = stderr.strip().splitlines()
    errors = [l for l in lines if l.startswith("convert_weights.py: error: ")]
    before = lines[:lines.index(errors[0])] if errors else lines
    if len(errors) != 1 or any(not l.startswith(("note: ", "skipping ")) for l in before):
        return "bad-message", "exit %d without one 'convert_weights.py: error:' line after notes: %r" % (
            rc, stderr[-300:])
    if "Traceback" in stderr:
        return "traceback", "traceback on stderr"
    if errors[0].startswith("convert_weights.py: error: unexpected "):
        return "unexpected", "catch-all error (an input the converter did not foresee): " + errors[0][:300]
    if os.path.exists(out) and not out_existed:
        return "leftover", "failed but wrote the output file"
    words = errors[0][len("convert_weights.py: error: "):]
    # category: the message without the file names and numbers
    cat = " ".join(w for w in words.split()[:8] if "/" not in w and not any(ch.isdigit() for ch in w))
    return cat[:70], None


def run_cli(pt, cfg_path, out, python):
    r = subprocess.run([python, CONVERTER, pt, "-o", out, "--config", cfg_path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    return r.returncode, r.stderr


# ------------------------------------------------------------------------------------------------
# Main loop
# ------------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cli-every", type=int, default=25, help="also run every N-th mutant as a process")
    ap.add_argument("--cli-python", default=sys.executable, help="interpreter for the process runs")
    ap.add_argument("--artifacts", default=None, help="folder for findings (default: a temporary one)")
    ap.add_argument("--no-torch-seed", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    work = tempfile.mkdtemp(prefix="m2fp_fuzz_convert_")
    artifacts = args.artifacts or os.path.join(work, "findings")
    watch = Watch()
    try:
        rng0 = random.Random(args.seed)
        cfg = tiny_config()
        state = seed_state(cfg, rng0)
        seeds = [("handmade", Checkpoint(*handmade_checkpoint(state)))]
        tc = None if args.no_torch_seed else torch_checkpoint(state)
        if tc:
            seeds.append(("torch.save", Checkpoint(*tc)))
        cfg_text = json.dumps(cfg)

        # The seeds themselves must convert (else the fuzzer explores nothing useful).
        for name, ck in seeds:
            pt, cp, out = (os.path.join(work, n) for n in ("seed.pt", "seed.json", "seed.safetensors"))
            ck.write(pt)
            with open(cp, "w") as f:
                f.write(cfg_text)
            rc, err, ev = run_in_process(watch, pt, cp, out)
            outcome, problem = judge(rc, err, ev, out, False)
            if rc != 0 or problem:
                print("fuzz_convert: seed %s does not convert: %s %s" % (name, rc, problem or err.strip()))
                return 2
            print("fuzz_convert: seed %s: %d tensors, %d-byte checkpoint -> %d-byte safetensors" % (
                name, len(state), os.path.getsize(pt), os.path.getsize(out)))
            os.remove(out)

        counts = collections.Counter()
        findings = []
        cli_runs = 0
        seen_cats = set()
        t0 = time.time()
        case = os.path.join(work, "case")
        for it in range(args.iterations):
            rng = random.Random(args.seed * 1000003 + it)
            seed_name, base = seeds[it % len(seeds)]
            ck = base.clone()
            cfg_payload = cfg_text
            kinds = []
            for _ in range(rng.randint(1, 3)):
                r = rng.random()
                if r < 0.55:
                    i = ck.pkl_index()
                    if i is not None:
                        ck.entries[i][1] = mutate_pickle(ck.entries[i][1], rng)
                    kinds.append("pickle")
                elif r < 0.75:
                    mutate_records(ck, rng)
                    kinds.append("records")
                elif r < 0.85:
                    ck.raw_edits.append(lambda blob, rr=random.Random(rng.random()): mutate_bytes(blob, rr))
                    kinds.append("zip")
                else:
                    cfg_payload = mutate_config(cfg, rng)
                    kinds.append("config")
            shutil.rmtree(case, ignore_errors=True)
            os.makedirs(case)
            pt, cp, out = (os.path.join(case, n) for n in ("pytorch_model.pt", "configuration.json",
                                                         "out.safetensors"))
            ck.write(pt)
            with open(cp, "wb") as f:
                f.write(cfg_payload.encode("utf-8") if isinstance(cfg_payload, str) else cfg_payload)
            rc, err, ev = run_in_process(watch, pt, cp, out)
            outcome, problem = judge(rc, err, ev, out, False)
            counts[outcome] += 1
            first_of_kind = outcome not in seen_cats
            seen_cats.add(outcome)
            if not problem and (first_of_kind or (args.cli_every and it % args.cli_every == 0)):
                if os.path.exists(out):
                    os.remove(out)
                crc, cerr = run_cli(pt, cp, out, args.cli_python)
                cli_runs += 1
                if (crc == 0) != (rc == 0) or "Traceback" in cerr or (crc != 0 and "\nconvert_weights.py: error: "
                                                                       not in "\n" + cerr):
                    problem = "process run differs: exit %d, stderr %r (in process: %s)" % (crc, cerr[:300], rc)
            if args.verbose:
                print("  %5d %-10s %-24s %s" % (it, seed_name, "+".join(kinds), problem or outcome))
            if problem:
                d = os.path.join(artifacts, "finding-%05d" % it)
                os.makedirs(d, exist_ok=True)
                shutil.copy(pt, d)
                shutil.copy(cp, d)
                with open(os.path.join(d, "reason.txt"), "w") as f:
                    f.write("%s\nmutations: %s (seed %s)\nstderr:\n%s\n" % (problem, kinds, seed_name, err))
                findings.append((it, problem))
                print("fuzz_convert: FINDING at iteration %d (%s): %s -> %s" % (it, "+".join(kinds), problem, d))
        dt = time.time() - t0
        print("fuzz_convert: %d mutants in %.1f s (%.0f/s), %d also run as processes; outcomes:" % (
            args.iterations, dt, args.iterations / max(dt, 1e-9), cli_runs))
        for cat, n in counts.most_common():
            print("  %6d  %s" % (n, cat))
        print("fuzz_convert: %d finding%s" % (len(findings), "" if len(findings) == 1 else "s"))
        return 1 if findings else 0
    finally:
        shutil.rmtree(os.path.join(work, "case"), ignore_errors=True)
        if os.path.isdir(os.path.join(work, "findings")):
            print("fuzz_convert: findings kept under %s" % os.path.join(work, "findings"))
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
