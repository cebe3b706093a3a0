"""[11] part 1: what one image may cost is decided from its header before it is queued. A
6.5 KB 2000x2000 PNG sent to a model that does not resize used to run through the
convolutions (+1.5 GB per request); now a model that does not resize takes only the size it
declares (wick.image.size) or was measured with (the first image it answered), and every
image model bounds the preprocessed elements of one request (wick.max_request_elements),
on every route: TorchServe's, KServe v1 and v2."""
import base64
import io
import json

import pytest
from PIL import Image

from conftest import DEMO_DIR, ROOT, pack
from test_vision_handler import fashion_test_images

pytestmark = pytest.mark.badinput

BASE = """minWorkers: 1
batchSize: 4
maxBatchDelay: 5
wick:
  runtime: native
{extra}  image: {{channels: 1, resize: 0, crop: 0, mean: [0.2860], std: [0.3530]{image}}}
"""


def png(w, h, mode="L"):
    b = io.BytesIO()
    Image.new(mode, (w, h), 128).save(b, format="PNG")
    return b.getvalue()


def jpeg(w, h):
    b = io.BytesIO()
    Image.new("RGB", (w, h), (10, 200, 30)).save(b, format="JPEG")
    return b.getvalue()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgstore")
    for name, extra, image in (("declared", "", ", size: [28, 28]"), ("measured", "", ""),
                               ("anysize", "  max_request_elements: 10000\n", ", size: any"),
                               ("inputs", "  inputs: [{name: x, datatype: FP32, shape: [-1, 1, 28, 28]}]\n", "")):
        cfg = d / f"{name}.yaml"
        cfg.write_text(BASE.format(extra=extra, image=image))
        pack(d, name, DEMO_DIR / "fashion.pt", handler="image_classifier",
             extra=[ROOT / "examples/fashion/index_to_name.json"], config=cfg)
    return d


@pytest.fixture(scope="module")
def srv(store, tmp_path_factory):
    from conftest import Server
    s = Server(["--model-store", store, "--models", "declared=declared.mar", "measured=measured.mar",
                "anysize=anysize.mar", "inputs=inputs.mar"], tmp_path_factory.mktemp("imglog") / "w.log")
    yield s
    assert s.stop() == 0, s.logs()[-3000:]


def test_a_model_that_does_not_resize_takes_its_own_size(srv):
    good, _ = fashion_test_images(1)
    big = png(2000, 2000)
    assert len(big) < 20000  # a few KB on the wire
    for model in ("declared", "inputs"):
        r = srv.infer("POST", f"/predictions/{model}", big)
        assert r.status == 400, (model, r)
        msg = r.json()["message"]
        assert "2000x2000" in msg and "28x28" in msg and "declared size" in msg, msg
        assert srv.infer("POST", f"/predictions/{model}", good[0]).status == 200
    r = srv.infer("POST", "/predictions/declared", jpeg(640, 480))
    assert r.status == 400 and "640x480" in r.json()["message"], r


def test_measured_with_the_first_image_it_answered(srv):
    good, _ = fashion_test_images(1)
    assert srv.infer("POST", "/predictions/measured", good[0]).status == 200
    r = srv.infer("POST", "/predictions/measured", png(56, 56))
    assert r.status == 400 and "the size of the images it has answered" in r.json()["message"], r


def test_the_element_bound_and_the_other_routes(srv):
    r = srv.infer("POST", "/predictions/anysize", png(2000, 2000))
    assert r.status == 413, r
    assert "4000000 input elements" in r.json()["message"], r
    assert "wick.max_request_elements" in r.json()["message"], r
    # KServe v1 and v2 are bounded the same way, per instance
    big = base64.b64encode(png(300, 300)).decode()
    r = srv.infer("POST", "/v1/models/declared:predict", json.dumps({"instances": [{"b64": big}]}),
                  {"Content-Type": "application/json"})
    assert r.status == 400 and "300x300" in r.json()["error"], r
    doc = {"inputs": [{"name": "img", "shape": [1], "datatype": "BYTES", "data": [big]}]}
    r = srv.infer("POST", "/v2/models/declared/infer", json.dumps(doc), {"Content-Type": "application/json"})
    assert r.status == 400 and "300x300" in r.json()["error"], r
    r = srv.infer("POST", "/predictions/declared", b"GIF89a....")
    assert r.status == 400 and "JPEG or PNG" in r.json()["message"], r
    good, _ = fashion_test_images(1)
    assert srv.infer("POST", "/predictions/anysize", good[0]).status == 200
    assert srv.infer("GET", "/ping").status == 200
