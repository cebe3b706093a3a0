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


def test_tensor_models_bound_elements_per_request_and_per_batch(serve, tmp_path):
    """The same bound for JSON and v2 tensors: wick.max_request_elements per request (413,
    naming both numbers, on every route), wick.max_batch_elements per batch (a request that
    would take a batch past it waits for the next one; every request is answered)."""
    import concurrent.futures as cf

    import torch

    from models import MLP, save_script
    from v2client import request as v2_request

    store = tmp_path / "store"
    store.mkdir()
    module = save_script(MLP, tmp_path / "mlp.pt")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("minWorkers: 1\nbatchSize: 8\nmaxBatchDelay: 50\n"
                   "wick:\n  max_request_elements: 64\n  max_batch_elements: 96\n")
    pack(store, "mlp", tmp_path / "mlp.pt", config=cfg)
    s = serve("--model-store", store, "--models", "mlp=mlp.mar")
    rows = lambda n: [[0.25] * 16 for _ in range(n)]  # noqa: E731
    r = s.infer("POST", "/predictions/mlp", json.dumps({"data": rows(5)}), {"Content-Type": "application/json"})
    assert r.status == 413, r
    assert "80 elements" in r.json()["message"] and "at most 64" in r.json()["message"], r
    assert "wick.max_request_elements" in r.json()["message"], r
    r = s.infer("POST", "/v1/models/mlp:predict", json.dumps({"instances": rows(5)}),
                {"Content-Type": "application/json"})
    assert r.status == 413, r
    body, hdrs = v2_request([("INPUT__0", torch.full((5, 16), 0.25))], binary_inputs=True)
    r = s.infer("POST", "/v2/models/mlp/infer", body, hdrs)
    assert r.status == 413 and "at most 64" in r.json()["error"], r
    # four rows (64 elements) are fine; at most one such request fits a batch of 96
    with cf.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda i: s.infer("POST", "/predictions/mlp", json.dumps({"data": rows(4)}),
                                                  {"Content-Type": "application/json"}), range(8)))
    want = module(torch.tensor(rows(4)))
    for r in replies:
        assert r.status == 200, r
        assert torch.allclose(torch.tensor(r.json()), want, atol=1e-6)
    m = s.metrics().body.decode()
    count = float(next(l.split()[-1] for l in m.splitlines() if l.startswith("wick_batch_size_count{")))
    total = float(next(l.split()[-1] for l in m.splitlines() if l.startswith("wick_batch_size_sum{")))
    assert total == 8 and count == 8, m  # never two 64-element requests in one batch
