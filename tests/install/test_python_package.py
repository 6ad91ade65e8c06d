"""The Python package m2fp against an installed tree (tests/install/run_install_tests.sh runs it):
labels equal to the CLI's for a path, bytes and an array; ModelScope's form; errors; two threads.

Environment: M2FP_BIN (the installed m2fp), M2FP_MODEL (a CIHP checkpoint), M2FP_PHOTO (a photo),
PYTHONPATH pointing at the installed package."""
import json
import os
import subprocess
import threading

import numpy as np
import pytest
from PIL import Image

import m2fp

MODEL = os.environ["M2FP_MODEL"]
PHOTO = os.environ["M2FP_PHOTO"]
BIN = os.environ["M2FP_BIN"]


@pytest.fixture(scope="module")
def model():
    m = m2fp.Model(MODEL, threads=2, precision="fp32", short_edge=640)
    yield m
    m.close()


@pytest.fixture(scope="module")
def cli_labels(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    subprocess.run([BIN, "parse", "--model", MODEL, "--out", str(out), "--threads", "2", PHOTO], check=True,
                   stdout=subprocess.DEVNULL)
    stem = os.path.splitext(os.path.basename(PHOTO))[0]
    return np.asarray(Image.open(out / stem / "labels.png"))


@pytest.fixture(scope="module")
def from_path(model):
    return model.parse(PHOTO)


def test_library_from_the_installed_tree():
    assert m2fp.library_path.endswith("libm2fp.so.0")
    assert m2fp.version.count(".") == 2


def test_path_labels_equal_cli(from_path, cli_labels):
    r = from_path
    assert r.labels.dtype == np.uint8 and r.persons.dtype == np.uint16
    assert r.labels.shape == cli_labels.shape == r.persons.shape
    np.testing.assert_array_equal(r.labels, cli_labels)
    assert r.json["image"]["file"] == PHOTO
    assert r.json["image"]["width"] == r.width and r.json["image"]["height"] == r.height
    assert r.instances == r.json["instances"]
    assert int(r.persons.max()) <= len(r.json["persons"])


def test_bytes_labels_equal_cli(model, cli_labels):
    with open(PHOTO, "rb") as f:
        r = model.parse(f.read())
    np.testing.assert_array_equal(r.labels, cli_labels)
    assert r.json["image"]["file"] is None


def test_array_labels_equal_cli(model, cli_labels):
    rgb = np.asarray(Image.open(PHOTO).convert("RGB"))
    # a strided view (every row of a wider buffer): row_stride != 3 * width
    wide = np.zeros((rgb.shape[0], rgb.shape[1] + 7, 3), np.uint8)
    wide[:, :rgb.shape[1]] = rgb
    r = model.parse(wide[:, :rgb.shape[1]])
    np.testing.assert_array_equal(r.labels, cli_labels)


def test_to_modelscope(from_path):
    ms = from_path.to_modelscope()
    assert set(ms) == {"masks", "labels", "scores"}
    n = len(from_path.instances)
    assert n > 0 and len(ms["masks"]) == len(ms["labels"]) == len(ms["scores"]) == n
    for m in ms["masks"]:
        assert m.shape == (from_path.height, from_path.width)
    kinds = [e["kind"] for e in from_path.instances]
    parts = [e for e in from_path.instances if e["kind"] == "part"]
    humans = [e for e in from_path.instances if e["kind"] == "human"]
    # parts first, then humans, each in the document's order
    assert ms["labels"] == [e["label"] for e in parts] + [e["label"] for e in humans]
    assert ms["scores"] == [e["score"] for e in parts] + [e["score"] for e in humans]
    assert "human" in kinds or not humans


UNIONS = ("upper_body", "lower_body", "agnostic", "label:Hair+Face")


@pytest.fixture(scope="module")
def cli_atr(tmp_path_factory):
    """m2fp parse --label-set atr --masks ... --mask-dilate 2: labels.png, masks/*.png, result.json."""
    out = tmp_path_factory.mktemp("cli_atr")
    subprocess.run([BIN, "parse", "--model", MODEL, "--out", str(out), "--threads", "2", "--label-set", "atr",
                    "--masks", ",".join(UNIONS), "--mask-dilate", "2", PHOTO], check=True, stdout=subprocess.DEVNULL)
    return out / os.path.splitext(os.path.basename(PHOTO))[0]


def test_label_sets_and_union_masks_equal_cli(from_path, cli_atr):
    """m2fp_result_output (labels=, mask=, json=) gives what the CLI writes for the same options."""
    r = from_path
    atr = r.labels_in("atr")
    np.testing.assert_array_equal(atr, np.asarray(Image.open(cli_atr / "labels.png")))
    np.testing.assert_array_equal(r.labels_in("cihp"), r.labels)
    assert not np.array_equal(atr, r.labels)  # the synthetic model's classes include some ATR renumbers
    for name in UNIONS:
        m = r.mask(name, dilate=2)
        assert m.dtype == np.uint8 and m.shape == r.labels.shape and set(np.unique(m)) <= {0, 255}
        np.testing.assert_array_equal(m, np.asarray(Image.open(cli_atr / "masks" / (name + ".png"))), name)
    assert r.mask("upper_body").sum() <= r.mask("upper_body", dilate=2).sum()
    with open(cli_atr / "result.json") as f:
        cli = json.load(f)
    doc = r.document(label_set="atr")
    for k in ("instances", "persons", "label_fractions", "labels_present", "label_set"):
        assert doc[k] == cli[k], k
    assert doc["label_set"]["name"] == "atr"
    assert any(e.get("set_label") for e in doc["instances"])
    assert r.document()["label_set"]["name"] == "cihp"


def test_output_errors(from_path):
    with pytest.raises(m2fp.Error, match="label set"):
        from_path.labels_in("pascal")
    with pytest.raises(m2fp.Error, match="unknown mask"):
        from_path.mask("shirt")
    with pytest.raises(m2fp.Error, match="dilate"):
        from_path.mask("hair", dilate=-1)
    with pytest.raises(m2fp.Error, match="unknown key"):
        from_path._output("colour=red")
    with pytest.raises(m2fp.Error, match="one of"):
        from_path._output("labels=atr mask=hair")
    with pytest.raises(m2fp.Error, match="empty"):
        from_path._output("")
    assert from_path.mask("hair").shape == from_path.labels.shape  # still usable


def test_prepared_model_equals_cli(cli_labels):
    # prepare= (this photo's size) and warm_up= at load change no output: the same labels as the CLI's
    # (which prepares for its photos by default) and as an unprepared model's (test_bytes_labels_equal_cli)
    w, h = Image.open(PHOTO).size
    with m2fp.Model(MODEL, threads=2, prepare="%dx%d,1200x800" % (w, h), warm_up=True) as m:
        np.testing.assert_array_equal(m.parse(PHOTO).labels, cli_labels)
    with pytest.raises(m2fp.Error, match="option prepare: must be"):
        m2fp.Model(MODEL, prepare="big")
    with pytest.raises(m2fp.Error, match="option warm_up: must be 0 or 1"):
        m2fp.Model(MODEL, warm_up=2)


def test_pipeline_callable():
    pipe = m2fp.pipeline(MODEL, threads=2)
    out = pipe(Image.open(PHOTO))
    assert set(out) == {"masks", "labels", "scores"} and len(out["masks"]) == len(out["labels"])


def test_errors(model, tmp_path):
    with pytest.raises(m2fp.Error, match="nope.safetensors"):
        m2fp.Model(str(tmp_path / "nope.safetensors"))
    with pytest.raises(m2fp.Error, match="unknown option"):
        m2fp.Model(MODEL, colour="red")
    with pytest.raises(m2fp.Error, match="precision"):
        m2fp.Model(MODEL, precision="fp8")
    with pytest.raises(m2fp.Error, match="threads"):
        m2fp.Model(MODEL, threads=-3)
    with pytest.raises(m2fp.Error, match="missing.png"):
        model.parse(str(tmp_path / "missing.png"))
    with pytest.raises(m2fp.Error):
        model.parse(b"not a photo at all")
    with pytest.raises(m2fp.Error):
        model.parse(b"")
    with pytest.raises(m2fp.Error, match="uint8"):
        model.parse(np.zeros((4, 4), np.float32))
    with pytest.raises(m2fp.Error):
        model.parse(12)
    # the model still parses after all of that
    assert model.parse(np.full((40, 50, 3), 128, np.uint8)).labels.shape == (40, 50)


def test_two_threads_one_model(model, cli_labels):
    rgb = np.asarray(Image.open(PHOTO).convert("RGB"))
    results, errors = [None, None], []

    def work(i):
        try:
            results[i] = model.parse(PHOTO if i == 0 else rgb)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    for r in results:
        np.testing.assert_array_equal(r.labels, cli_labels)
