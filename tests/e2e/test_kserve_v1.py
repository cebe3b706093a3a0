"""KServe's v1 protocol on the inference port: list, readiness, :predict and :explain for
the native tensor handler (rows in, rows out), the native image handler (one job per
instance, batched) and a Python handler; errors as {"error": "..."}."""
import base64
import concurrent.futures as cf
import json

import pytest
import torch

from conftest import DEMO_DIR, ROOT, pack, run_wick, wait_for
from test_serve import metric_values as parse_metrics
from test_vision_handler import FASHION_CFG, fashion_test_images

FASHION_PT = DEMO_DIR / "fashion.pt"
JSON = {"Content-Type": "application/json"}


def metric(server, family, model):
    """The value of family for model (summed over its label sets)."""
    vals = parse_metrics(server.metrics().body.decode())
    return sum(v for k, v in vals.items() if k.startswith(family + "{") and f'model_name="{model}"' in k)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("v1store")
    cfg = d / "cfg.yaml"
    cfg.write_text(FASHION_CFG)
    pack(d, "fashion", FASHION_PT, handler="image_classifier",
         extra=[ROOT / "examples/fashion/index_to_name.json"], config=cfg)
    pack(d, "fashion_tensor", FASHION_PT, handler="tensor")
    echo = d / "echo.py"
    echo.write_text('''
def handle(data, context):
    if data is None:
        return None
    out = []
    for row in data:
        body = row.get("body")
        if isinstance(body, (bytes, bytearray)):
            out.append({"bytes": len(body), "batch": len(data)})
        elif isinstance(body, dict) and body.get("fail"):
            from ts.utils.util import PredictionException
            raise PredictionException("asked to fail", 422)
        else:
            out.append({"got": body, "batch": len(data)})
    return out
''')
    cfg2 = d / "echo.yaml"
    cfg2.write_text("minWorkers: 1\nbatchSize: 8\nmaxBatchDelay: 500\n")
    dummy = d / "dummy.txt"
    dummy.write_text("x")
    run_wick("pack", "--model-name", "echo", "--version", "1.0", "--serialized-file", dummy,
             "--handler", f"{echo}:handle", "--config-file", cfg2, "--export-path", d, "-f")
    return d


@pytest.fixture(scope="module")
def server(store, tmp_path_factory):
    from conftest import Server
    s = Server(["--model-store", store, "--models", "fashion=fashion.mar",
                "fashion_tensor=fashion_tensor.mar", "echo=echo.mar"],
               tmp_path_factory.mktemp("v1log") / "wick.log")
    yield s
    rc = s.stop()
    text = s.logs()
    assert "Sanitizer" not in text and "runtime error:" not in text, text[-4000:]
    assert rc == 0, text[-4000:]


def test_list_and_readiness(server):
    r = server.infer("GET", "/v1/models")
    assert r.status == 200 and sorted(r.json()["models"]) == ["echo", "fashion", "fashion_tensor"], r
    r = server.infer("GET", "/v1/models/fashion")
    assert r.status == 200 and r.json() == {"name": "fashion", "ready": True}, r
    r = server.infer("GET", "/v1/models/nope")
    assert r.status == 404 and "nope" in r.json()["error"], r
    r = server.infer("POST", "/v1/models/fashion")
    assert r.status == 405, r
    r = server.infer("POST", "/v1/models/fashion:frobnicate", "{}")
    assert r.status == 404 and ":frobnicate" in r.json()["error"], r


def test_tensor_handler_rows_become_predictions(server):
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    want = server.infer("POST", "/predictions/fashion_tensor", json.dumps(x.tolist()), JSON).json()
    for key in ("instances", "inputs"):
        r = server.infer("POST", "/v1/models/fashion_tensor:predict", json.dumps({key: x.tolist()}), JSON)
        assert r.status == 200, r
        assert r.json() == {"predictions": want}
    r = server.infer("POST", "/v1/models/fashion_tensor:predict", '{"instances": [[1, 2], [3]]}', JSON)
    # KServe's "error", with TorchServe's code, type and message beside it
    body = r.json()
    assert r.status == 400 and body["error"] == body["message"] and body["code"] == 400, r


def test_images_as_b64_instances_equal_predictions(server):
    imgs, _ = fashion_test_images(5)
    want = [server.infer("POST", "/predictions/fashion", img).json() for img in imgs]
    forms = [{"b64": base64.b64encode(i).decode()} for i in imgs[:3]]
    forms.append(base64.b64encode(imgs[3]).decode())          # a bare base64 string
    forms.append({"data": base64.b64encode(imgs[4]).decode()})  # TorchServe's {"data": ...}
    r = server.infer("POST", "/v1/models/fashion:predict", json.dumps({"instances": forms}), JSON)
    assert r.status == 200, r
    got = r.json()["predictions"]
    assert len(got) == 5
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        for k in w:
            assert abs(g[k] - w[k]) < 1e-6, (g, w)


def test_explain_equals_explanations(server):
    imgs, _ = fashion_test_images(1)
    want = server.infer("POST", "/explanations/fashion?target=3&n_steps=16", imgs[0]).json()
    r = server.infer("POST", "/v1/models/fashion:explain?target=3&n_steps=16",
                     json.dumps({"instances": [{"b64": base64.b64encode(imgs[0]).decode()}]}), JSON)
    assert r.status == 200, r
    got = torch.tensor(r.json()["explanations"][0])
    assert torch.allclose(got, torch.tensor(want), atol=1e-6)


def test_instances_of_one_request_are_batched(server):
    imgs, _ = fashion_test_images(8)
    before = metric(server, "wick_batch_size_sum", "fashion")
    before_n = metric(server, "wick_batch_size_count", "fashion")
    body = {"instances": [{"b64": base64.b64encode(i).decode()} for i in imgs]}
    with cf.ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: server.infer("POST", "/v1/models/fashion:predict",
                                                       json.dumps(body), JSON), range(4)))
    assert all(r.status == 200 and len(r.json()["predictions"]) == 8 for r in replies), replies
    # 32 instances went through batches larger than one (batchSize 8); the worker records a
    # batch just after it answered: wait for the last one
    wait_for(lambda: metric(server, "wick_batch_size_sum", "fashion") - before >= 32)
    counts = metric(server, "wick_batch_size_count", "fashion") - before_n
    sums = metric(server, "wick_batch_size_sum", "fashion") - before
    assert sums == 32
    assert counts < 32, counts


def test_python_handler_sees_one_row_per_instance(server):
    body = {"instances": [{"a": 1}, [1, 2, 3], "text", {"b64": base64.b64encode(b"\x00\x01\x02").decode()}]}
    r = server.infer("POST", "/v1/models/echo:predict", json.dumps(body), JSON)
    assert r.status == 200, r
    p = r.json()["predictions"]
    assert [x.get("got", x.get("bytes")) for x in p] == [{"a": 1}, [1, 2, 3], "text", 3]
    assert p[0]["batch"] == 4  # the four instances reached the handler as one batch
    r = server.infer("POST", "/v1/models/echo:predict", json.dumps({"inputs": {"k": "v"}}), JSON)
    assert r.status == 200 and r.json()["predictions"][0]["got"] == {"k": "v"}, r


@pytest.mark.badinput
def test_v1_bad_input_is_an_error_object(server):
    cases = [
        ("fashion", "{not json", 400, "malformed JSON"),
        ("fashion", "[1, 2]", 400, "instances"),
        ("fashion", '{"rows": []}', 400, "instances"),
        ("fashion", '{"instances": {"b64": "x"}}', 400, "must be a list"),
        ("fashion", '{"instances": []}', 400, "expected 1 to"),
        ("fashion", '{"instances": [{"b64": "@@@"}]}', 400, "instance 0"),
        ("fashion", '{"instances": [{"b64": "aGVsbG8="}]}', 400, ""),   # "hello" is no image
        ("fashion", '{"instances": [[1, 2, 3]]}', 400, "expected an image"),
        ("echo", '{"instances": [{"fail": true}]}', 422, "asked to fail"),
    ]
    for model, body, status, text in cases:
        r = server.infer("POST", f"/v1/models/{model}:predict", body, JSON)
        assert r.status == status, (body, r)
        got = r.json()
        assert set(got) == {"error", "code", "type", "message"} and text in got["error"], (body, got)
        assert got["code"] == r.status and got["message"] == got["error"], got
    # and the server still answers
    assert server.infer("GET", "/v1/models/fashion").json()["ready"] is True
