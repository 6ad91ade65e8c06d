"""m2fp: M2FP human parsing on the CPU, pure Python over the C API (libm2fp.so, ctypes + numpy).

    import m2fp
    model = m2fp.Model("m2fp_cihp.safetensors", threads=2, precision="fp32", short_edge=640)
    r = model.parse("photo.jpg")      # or bytes, or a numpy [H, W, 3] uint8 RGB array
    r.labels, r.persons, r.instances, r.json, r.to_modelscope()
    r.labels_in("atr"), r.mask("upper_body", dilate=2), r.document(label_set="atr")

The library is looked for in this order: $M2FP_LIBRARY; beside this package (its folder, then the
lib/ folder of the prefix it is installed in); the dynamic loader's path (libm2fp.so.0).
One Model may be used from several threads at once (the C API's calls run in parallel and release
the GIL). Errors raise m2fp.Error with the C API's message. docs/API.md is the manual.
"""
import ctypes
import json as _json
import os

import numpy as np

__all__ = ["Error", "Model", "Result", "pipeline", "library_path", "version"]


class Error(RuntimeError):
    """A failure reported by the C API (its message)."""


def _candidates():
    env = os.environ.get("M2FP_LIBRARY")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "libm2fp.so.0")
    # <prefix>/lib/python3/dist-packages/m2fp -> <prefix>/lib (and lib/<multiarch>)
    libdir = os.path.normpath(os.path.join(here, "..", "..", ".."))
    yield os.path.join(libdir, "libm2fp.so.0")
    yield os.path.join(libdir, "x86_64-linux-gnu", "libm2fp.so.0")
    yield "libm2fp.so.0"


def _load_library():
    errors = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append(str(e))
    raise ImportError("m2fp: libm2fp.so.0 not found (set M2FP_LIBRARY): " + "; ".join(errors or ["no candidate"]))


_lib, library_path = _load_library()
_c_char_pp = ctypes.POINTER(ctypes.c_void_p)
_lib.m2fp_version.restype = ctypes.c_char_p
_lib.m2fp_load.restype = ctypes.c_void_p
_lib.m2fp_load.argtypes = [ctypes.c_char_p, ctypes.c_char_p, _c_char_pp]
_lib.m2fp_model_free.argtypes = [ctypes.c_void_p]
_lib.m2fp_parse_file.restype = ctypes.c_void_p
_lib.m2fp_parse_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p, _c_char_pp]
_lib.m2fp_parse_memory.restype = ctypes.c_void_p
_lib.m2fp_parse_memory.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, _c_char_pp]
_lib.m2fp_parse_rgb.restype = ctypes.c_void_p
_lib.m2fp_parse_rgb.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_size_t,
                                _c_char_pp]
for _name in ("m2fp_result_width", "m2fp_result_height"):
    getattr(_lib, _name).restype = ctypes.c_int
    getattr(_lib, _name).argtypes = [ctypes.c_void_p]
_lib.m2fp_result_labels.restype = ctypes.POINTER(ctypes.c_uint8)
_lib.m2fp_result_labels.argtypes = [ctypes.c_void_p]
_lib.m2fp_result_persons.restype = ctypes.POINTER(ctypes.c_uint16)
_lib.m2fp_result_persons.argtypes = [ctypes.c_void_p]
_lib.m2fp_result_json.restype = ctypes.c_char_p
_lib.m2fp_result_json.argtypes = [ctypes.c_void_p]
_lib.m2fp_result_output.restype = ctypes.c_void_p
_lib.m2fp_result_output.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t), _c_char_pp]
_lib.m2fp_result_free.argtypes = [ctypes.c_void_p]
_lib.m2fp_string_free.argtypes = [ctypes.c_void_p]

version = _lib.m2fp_version().decode()


def _call(fn, *args):
    err = ctypes.c_void_p()
    out = fn(*args, ctypes.byref(err))
    if not out:
        msg = "unknown error"
        if err.value:
            msg = ctypes.string_at(err.value).decode("utf-8", "replace")
            _lib.m2fp_string_free(err.value)
        raise Error(msg)
    return out


class Result:
    """One parsed photo: labels, persons (numpy), instances, the result document, ModelScope's form."""

    def __init__(self, handle):
        self._h = handle
        try:
            h, w = _lib.m2fp_result_height(handle), _lib.m2fp_result_width(handle)
            self.labels = np.ctypeslib.as_array(_lib.m2fp_result_labels(handle), shape=(h, w)).copy()
            self.persons = np.ctypeslib.as_array(_lib.m2fp_result_persons(handle), shape=(h, w)).copy()
            self.json = _json.loads(_lib.m2fp_result_json(handle).decode("utf-8"))
        except BaseException:
            self.close()
            raise

    def close(self):
        """Frees the C result early (labels, persons and json stay; the outputs below need it)."""
        if getattr(self, "_h", None):
            _lib.m2fp_result_free(self._h)
            self._h = None

    def __del__(self):
        self.close()

    def _output(self, request):
        if not self._h:
            raise Error("the result is closed")
        size = ctypes.c_size_t()
        buf = _call(_lib.m2fp_result_output, self._h, request.encode(), ctypes.byref(size))
        try:
            return ctypes.string_at(buf, size.value)
        finally:
            _lib.m2fp_string_free(buf)

    def labels_in(self, label_set):
        """The label map in a label set's ids ("cihp", "lip", "atr"; docs/LABELS.md): uint8 [H, W], as
        `m2fp parse --label-set` writes labels.png and /predict's label_set= gives labels_png."""
        if not isinstance(label_set, str) or not label_set or any(c.isspace() for c in label_set):
            raise Error("label set: expected cihp, lip or atr, got %r" % (label_set,))
        data = self._output("labels=" + label_set)
        return np.frombuffer(data, np.uint8).reshape(self.height, self.width).copy()

    def mask(self, name, dilate=0):
        """A named union (try-on) mask (docs/LABELS.md: upper_body, lower_body, dresses, agnostic, clothes,
        hair, face, skin, "label:A+B"): uint8 [H, W], 0/255, dilated by `dilate` pixels; the same as
        `m2fp parse --masks` and /predict's masks_union=."""
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise Error("mask name: expected a name without spaces, got %r" % (name,))
        if isinstance(dilate, bool) or not isinstance(dilate, int):
            raise Error("dilate: expected an integer, got %r" % (dilate,))
        data = self._output("mask=%s dilate=%d" % (name, dilate))
        return np.frombuffer(data, np.uint8).reshape(self.height, self.width).copy()

    def document(self, label_set="cihp"):
        """The result document with a label set's keys (docs/OUTPUTS.md), as `m2fp parse --label-set`
        writes result.json: label shares in the set's names, set_category_id / set_label, "label_set"."""
        if not isinstance(label_set, str) or not label_set or any(c.isspace() for c in label_set):
            raise Error("label set: expected cihp, lip or atr, got %r" % (label_set,))
        return _json.loads(self._output("json=" + label_set).decode("utf-8"))

    @property
    def width(self):
        return self.labels.shape[1]

    @property
    def height(self):
        return self.labels.shape[0]

    @property
    def instances(self):
        """The document's "instances": [{"kind", "category_id", "label", "score", "area", "bbox", ...}]."""
        return self.json["instances"]

    def to_modelscope(self):
        """ModelScope's image-multiple-human-parsing answer: {'masks': [uint8 [H, W] 0/1], 'labels': [name],
        'scores': [float]}: the part instances, then the humans, in the document's order. The masks come
        from the label and person maps (each pixel in one mask of each kind). A single-person model gives
        one mask per label present, score 1.0."""
        masks, labels, scores = [], [], []
        inst = self.instances
        if not inst:
            names = self.json.get("model", {}).get("classes") or []
            for cid in np.unique(self.labels):
                masks.append((self.labels == cid).astype(np.uint8))
                labels.append(names[cid] if cid < len(names) else str(int(cid)))
                scores.append(1.0)
            return {"masks": masks, "labels": labels, "scores": scores}
        human_person = {p["instance"]: k for k, p in enumerate(self.json["persons"])}
        for kind in ("part", "human"):
            for i, e in enumerate(inst):
                if e["kind"] != kind:
                    continue
                if kind == "part":
                    m = self.labels == e["category_id"]
                    if e.get("person", -1) >= 0:
                        m &= self.persons == e["person"] + 1
                else:
                    k = human_person.get(i)
                    m = self.persons == k + 1 if k is not None else np.zeros_like(self.labels, dtype=bool)
                masks.append(m.astype(np.uint8))
                labels.append(e["label"])
                scores.append(float(e["score"]))
        return {"masks": masks, "labels": labels, "scores": scores}


class Model:
    """A loaded model. Options as the C API's m2fp_load (threads, precision, short_edge, max_size, isa,
    max_pixels, outfits, catalog, prepare, warm_up)."""

    def __init__(self, model_path, threads=None, precision=None, short_edge=None, max_size=None, isa=None, **more):
        opts = dict(threads=threads, precision=precision, short_edge=short_edge, max_size=max_size, isa=isa, **more)
        parts = []
        for k, v in opts.items():
            if v is None:
                continue
            if isinstance(v, bool):
                v = int(v)
            v = str(v)
            if not v or any(c.isspace() for c in v):
                raise Error("option %s: bad value %r" % (k, v))
            parts.append("%s=%s" % (k, v))
        self._h = _call(_lib.m2fp_load, os.fsencode(model_path), " ".join(parts).encode() or None)

    def close(self):
        if getattr(self, "_h", None):
            _lib.m2fp_model_free(self._h)
            self._h = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def parse(self, image):
        """image: a path (str or os.PathLike), encoded bytes (PNG/JPEG/BMP), or a numpy [H, W, 3] uint8 RGB array."""
        if not self._h:
            raise Error("the model is closed")
        if isinstance(image, (bytes, bytearray, memoryview)):
            data = bytes(image)
            return Result(_call(_lib.m2fp_parse_memory, self._h, data, len(data)))
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise Error("array must be uint8 [H, W, 3] RGB, got %s %s" % (image.dtype, image.shape))
            a = image
            if a.strides[2] != 1 or a.strides[1] != 3 or a.strides[0] < 0:
                a = np.ascontiguousarray(a)
            return Result(_call(_lib.m2fp_parse_rgb, self._h, a.ctypes.data, a.shape[1], a.shape[0], a.strides[0]))
        if isinstance(image, (str, os.PathLike)):
            return Result(_call(_lib.m2fp_parse_file, self._h, os.fsencode(image)))
        raise Error("cannot parse a %s (a path, bytes or a numpy array)" % type(image).__name__)


def pipeline(model_path, **options):
    """A callable standing in for ModelScope's pipeline(Tasks.image_segmentation,
    'damo/cv_resnet101_image-multiple-human-parsing'): pipe(image) -> to_modelscope()'s dict. A PIL image
    is taken too (converted to RGB)."""
    model = Model(model_path, **options)

    def run(image):
        if hasattr(image, "convert") and hasattr(image, "size"):  # PIL.Image
            image = np.asarray(image.convert("RGB"))
        return model.parse(image).to_modelscope()

    run.model = model
    return run
