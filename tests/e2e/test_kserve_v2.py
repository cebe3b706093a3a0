"""The Open Inference Protocol (KServe v2) on the inference port: server and model
metadata, health, /infer with every datatype in JSON and with the binary tensor data
extension both ways (tests/e2e/v2client.py writes those bodies from the spec), images as
BYTES, requested outputs, and every malformed request answered 400 naming the field."""
import base64
import json

import pytest
import torch

from conftest import DEMO_DIR, ROOT, Server, pack, run_wick
from models import MLP, Identity, PairOut, save_script
from test_vision_handler import FASHION_CFG, fashion_test_images
from v2client import parse_response, request

FASHION_PT = DEMO_DIR / "fashion.pt"

# A Python handler gets the v2 request as a dict (parameters included) and may answer
# outputs itself; anything else it returns becomes one BYTES output.
PYV2 = '''
def handle(data, context):
    if data is None:
        return None
    out = []
    for row in data:
        req = row.get("body")
        x = req["inputs"][0]["data"]
        if (req.get("parameters") or {}).get("plain"):
            out.append({"sum": sum(x)})
        else:
            out.append({"outputs": [{"name": "doubled", "datatype": "FP32", "shape": [len(x)],
                                     "data": [2 * v for v in x]},
                                    {"name": "params", "datatype": "BYTES", "shape": [1],
                                     "data": [str(sorted((req.get("parameters") or {}).items()))]}]})
    return out
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("v2store")
    models = {"mlp": save_script(MLP, d / "mlp.pt"), "ident": save_script(Identity, d / "ident.pt"),
              "pair": save_script(PairOut, d / "pair.pt")}
    pack(d, "mlp", d / "mlp.pt")
    pack(d, "ident", d / "ident.pt")
    cfg = d / "pair.yaml"
    cfg.write_text("wick:\n  inputs:\n    - {name: left, datatype: FP32, shape: [-1, 3]}\n"
                   "    - {name: right, datatype: FP32, shape: [-1, 3]}\n"
                   "  outputs:\n    - {name: total, datatype: FP32, shape: [-1, 3]}\n"
                   "    - {name: product, datatype: FP32, shape: [-1, 3]}\n")
    pack(d, "pair", d / "pair.pt", config=cfg)
    fcfg = d / "fashion.yaml"
    fcfg.write_text(FASHION_CFG)
    pack(d, "fashion", FASHION_PT, handler="image_classifier",
         extra=[ROOT / "examples/fashion/index_to_name.json"], config=fcfg)
    (d / "pyv2.py").write_text(PYV2)
    (d / "dummy.txt").write_text("x")
    run_wick("pack", "--model-name", "pyv2", "--version", "2.0", "--serialized-file", d / "dummy.txt",
             "--handler", f"{d / 'pyv2.py'}:handle", "--export-path", d, "-f")
    s = Server(["--model-store", d, "--models", "mlp=mlp.mar", "ident=ident.mar", "pair=pair.mar",
                "fashion=fashion.mar", "pyv2=pyv2.mar"], tmp_path_factory.mktemp("v2log") / "wick.log")
    s.models = models
    yield s
    rc = s.stop()
    text = s.logs()
    assert "Sanitizer" not in text and "runtime error:" not in text, text[-4000:]
    assert rc == 0, text[-4000:]


def infer(server, model, body, headers):
    return server.infer("POST", f"/v2/models/{model}/infer", body, headers)


def test_server_metadata_and_health(server):
    r = server.infer("GET", "/v2")
    assert r.status == 200 and r.json()["name"] == "wick" and "binary_tensor_data" in r.json()["extensions"]
    assert server.infer("GET", "/v2/health/live").status == 200
    r = server.infer("GET", "/v2/health/ready")
    assert r.status == 200 and r.json() == {"ready": True}
    r = server.infer("GET", "/v2/models/mlp/ready")
    assert r.status == 200 and r.json()["ready"] is True
    assert server.infer("GET", "/v2/models/mlp/versions/1.0/ready").status == 200
    r = server.infer("GET", "/v2/models/nope/ready")
    assert r.status == 404 and "nope" in r.json()["error"]
    assert server.infer("GET", "/v2/models/mlp/versions/9.9").status == 404
    assert server.infer("POST", "/v2/models/mlp").status == 405
    assert server.infer("GET", "/v2/models/mlp/infer").status == 405


def test_model_metadata(server):
    r = server.infer("GET", "/v2/models/mlp")
    assert r.status == 200, r
    m = r.json()
    assert m["name"] == "mlp" and m["versions"] == ["1.0"] and m["platform"] == "pytorch_libtorch"
    assert m["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1]}]
    assert m["outputs"] == [{"name": "OUTPUT__0", "datatype": "FP32", "shape": [-1]}]
    m = server.infer("GET", "/v2/models/pair/versions/1.0").json()
    assert [i["name"] for i in m["inputs"]] == ["left", "right"]
    assert m["inputs"][0]["shape"] == [-1, 3]
    assert [o["name"] for o in m["outputs"]] == ["total", "product"]
    m = server.infer("GET", "/v2/models/fashion").json()
    assert m["inputs"][0]["datatype"] == "BYTES"


@pytest.mark.parametrize("binary_in,binary_out", [(False, False), (True, False), (False, True), (True, True)])
def test_json_and_binary_equal_predictions(server, binary_in, binary_out):
    x = torch.randn(4, 16, generator=torch.Generator().manual_seed(7))
    want = torch.tensor(server.infer("POST", "/predictions/mlp", x.tolist()).json())
    for name in ("x", "INPUT__0"):
        body, hdrs = request([(name, x)], binary_inputs=binary_in, binary_output=binary_out, id="req-7")
        r = infer(server, "mlp", body, hdrs)
        assert r.status == 200, r
        doc, out = parse_response(r.body, r.headers)
        assert doc["model_name"] == "mlp" and doc["model_version"] == "1.0" and doc["id"] == "req-7"
        assert ("Inference-Header-Content-Length" in r.headers) == binary_out
        assert torch.equal(out["OUTPUT__0"], want), (out, want)
        assert torch.allclose(out["OUTPUT__0"], server.models["mlp"](x), atol=1e-6)


@pytest.mark.parametrize("datatype", ["BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
                                      "FP64", "BF16"])
def test_every_datatype_round_trips(server, datatype):
    from v2client import DTYPES
    g = torch.Generator().manual_seed(3)
    dt = DTYPES[datatype]
    if dt == torch.bool:
        x = torch.randint(0, 2, (2, 3), generator=g).bool()
    elif dt.is_floating_point:
        x = (torch.randn(2, 3, generator=g) * 100).to(dt)
    else:
        info = torch.iinfo(dt)
        x = torch.tensor([[info.min, info.max, 0], [1, -1 if info.min < 0 else 2, 7]], dtype=dt)
    for binary in (False, True):
        body, hdrs = request([("x", x)], binary_inputs=binary, binary_output=binary)
        r = infer(server, "ident", body, hdrs)
        assert r.status == 200, (datatype, binary, r)
        doc, out = parse_response(r.body, r.headers)
        assert doc["outputs"][0]["datatype"] == datatype
        assert out["OUTPUT__0"].dtype == dt and torch.equal(out["OUTPUT__0"], x), (out, x)


def test_unsigned_types_widen_when_lossless(server):
    for datatype, wide, vals in (("UINT16", "INT32", [0, 65535]), ("UINT32", "INT64", [0, 4294967295]),
                                 ("UINT64", "INT64", [0, 2**63 - 1])):
        body = json.dumps({"inputs": [{"name": "x", "shape": [2], "datatype": datatype, "data": vals}]})
        r = infer(server, "ident", body, {"Content-Type": "application/json"})
        assert r.status == 200, r
        assert r.json()["outputs"][0]["datatype"] == wide and r.json()["outputs"][0]["data"] == vals
    body = json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "UINT64", "data": [2**63]}]})
    r = infer(server, "ident", body, {"Content-Type": "application/json"})
    assert r.status == 400 and "torch has no uint64" in r.json()["error"], r
    blob = (2**64 - 1).to_bytes(8, "little")
    head = json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "UINT64",
                                   "parameters": {"binary_data_size": 8}}]}).encode()
    r = infer(server, "ident", head + blob, {"Inference-Header-Content-Length": str(len(head))})
    assert r.status == 400 and "torch has no uint64" in r.json()["error"], r


def test_named_inputs_outputs_and_requested_outputs(server):
    a = torch.randn(2, 3, generator=torch.Generator().manual_seed(1))
    b = torch.randn(2, 3, generator=torch.Generator().manual_seed(2))
    for names in (("left", "right"), ("a", "b"), ("INPUT__0", "INPUT__1"), ("right", "left")):
        inputs = [(names[0], a), (names[1], b)]
        if names == ("right", "left"):
            inputs = [("right", b), ("left", a)]  # by name, not by position
        body, hdrs = request(inputs)
        r = infer(server, "pair", body, hdrs)
        assert r.status == 200, (names, r)
        doc, out = parse_response(r.body, r.headers)
        assert [o["name"] for o in doc["outputs"]] == ["total", "product"]
        assert torch.allclose(out["total"], a + b) and torch.allclose(out["product"], a * b)
    body, hdrs = request([("left", a), ("right", b)], outputs=[{"name": "product", "parameters": {"binary_data": True}}])
    r = infer(server, "pair", body, hdrs)
    doc, out = parse_response(r.body, r.headers)
    assert list(out) == ["product"] and torch.allclose(out["product"], a * b)
    assert doc["outputs"][0]["parameters"]["binary_data_size"] == 24


def test_images_as_bytes(server):
    imgs, _ = fashion_test_images(3)
    want = [server.infer("POST", "/predictions/fashion", i).json() for i in imgs]
    for binary in (False, True):
        elems = imgs if binary else [base64.b64encode(i) for i in imgs]
        body, hdrs = request([("INPUT__0", elems)], binary_inputs=binary, binary_output=binary)
        r = infer(server, "fashion", body, hdrs)
        assert r.status == 200, r
        doc, out = parse_response(r.body, r.headers)
        assert doc["outputs"][0]["datatype"] == "BYTES" and doc["outputs"][0]["shape"] == [3]
        got = [json.loads(e) for e in out["OUTPUT__0"]]
        for g, w in zip(got, want):
            assert g.keys() == w.keys() and all(abs(g[k] - w[k]) < 1e-6 for k in w)


BAD = [
    ("shape and data disagree", {"inputs": [{"name": "x", "shape": [2, 16], "datatype": "FP32", "data": [0.0] * 31}]},
     "inputs[0] 'x': shape [2,16] holds 32 elements, data has 31"),
    ("unknown datatype", {"inputs": [{"name": "x", "shape": [1, 16], "datatype": "FP8", "data": [0.0] * 16}]},
     "unknown datatype \"FP8\""),
    ("duplicate input", {"inputs": [{"name": "x", "shape": [1, 16], "datatype": "FP32", "data": [0.0] * 16}] * 2},
     "the name 'x' is used twice"),
    ("missing output", {"inputs": [{"name": "x", "shape": [1, 16], "datatype": "FP32", "data": [0.0] * 16}],
                        "outputs": [{"name": "nope"}]}, "outputs[0]: the model has no output 'nope'"),
    ("unknown input", {"inputs": [{"name": "y", "shape": [1, 16], "datatype": "FP32", "data": [0.0] * 16}]},
     "inputs[0] 'y': the model has no such input"),
    ("no inputs", {"inputs": []}, "\"inputs\" must be a list"),
    ("no data", {"inputs": [{"name": "x", "shape": [1, 16], "datatype": "FP32"}]}, "no \"data\""),
    ("bad shape", {"inputs": [{"name": "x", "shape": [-1, 16], "datatype": "FP32", "data": []}]}, "shape[0]"),
    ("not a number", {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": ["a"]}]}, "not a number"),
    ("int range", {"inputs": [{"name": "x", "shape": [1], "datatype": "INT8", "data": [300]}]}, "300 is out of range for int8"),
    ("bytes to a tensor model", {"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["a"]}]},
     "BYTES inputs need"),
]


@pytest.mark.badinput
@pytest.mark.parametrize("what,doc,text", BAD, ids=[b[0] for b in BAD])
def test_bad_json_requests(server, what, doc, text):
    r = infer(server, "mlp", json.dumps(doc), {"Content-Type": "application/json"})
    assert r.status == 400, (what, r)
    got = r.json()
    assert set(got) == {"error", "code", "type", "message"} and text in got["error"], (what, got)
    assert got["code"] == 400 and got["type"] == "BadRequestException", got


@pytest.mark.badinput
def test_bad_binary_requests(server):
    x = torch.zeros(1, 16)
    body, hdrs = request([("x", x)], binary_inputs=True)
    n = int(hdrs["Inference-Header-Content-Length"])
    cases = [
        ("header larger than the body", body, {"Inference-Header-Content-Length": str(len(body) + 1)},
         "Inference-Header-Content-Length is"),
        ("header not a number", body, {"Inference-Header-Content-Length": "12x"}, "byte count"),
        ("binary size overruns the body", body[:-4], {"Inference-Header-Content-Length": str(n)},
         "only 60 bytes of binary data are left"),
        ("binary size disagrees with the shape", body + b"\0" * 4, {"Inference-Header-Content-Length": str(n)},
         "add up to 64"),
        ("header cuts the JSON", body, {"Inference-Header-Content-Length": str(n - 3)}, "malformed JSON"),
    ]
    for what, b, h, text in cases:
        r = infer(server, "mlp", b, h)
        assert r.status == 400, (what, r)
        assert text in r.json()["error"], (what, r.json())
    # a BYTES element whose length prefix runs past the data
    head = json.dumps({"inputs": [{"name": "INPUT__0", "shape": [1], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": 6}}]}).encode()
    r = infer(server, "fashion", head + b"\xff\0\0\0ab", {"Inference-Header-Content-Length": str(len(head))})
    assert r.status == 400 and "says 255 bytes" in r.json()["error"], r
    # the server is still fine
    body, hdrs = request([("x", x)])
    assert infer(server, "mlp", body, hdrs).status == 200


def test_python_handler_gets_the_request_and_answers_outputs(server):
    doc = {"id": "p1", "parameters": {"temperature": 0.5},
           "inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2, 3.5]}]}
    r = infer(server, "pyv2", json.dumps(doc), {"Content-Type": "application/json"})
    assert r.status == 200, r
    j = r.json()
    assert j["model_name"] == "pyv2" and j["model_version"] == "2.0" and j["id"] == "p1"
    assert j["outputs"][0] == {"name": "doubled", "datatype": "FP32", "shape": [3], "data": [2, 4, 7.0]}
    assert j["outputs"][1]["data"] == ["[('temperature', 0.5)]"]  # parameters reach the handler
    doc["parameters"] = {"plain": True}
    r = infer(server, "pyv2", json.dumps(doc), {"Content-Type": "application/json"})
    assert r.status == 200, r
    o = r.json()["outputs"][0]
    assert o["datatype"] == "BYTES" and json.loads(o["data"][0]) == {"sum": 6.5}
    # binary tensor data reaches the handler as the same request in JSON
    body, hdrs = request([("x", torch.tensor([1.0, -2.5]))], binary_inputs=True)
    r = infer(server, "pyv2", body, hdrs)
    assert r.status == 200, r
    assert r.json()["outputs"][0] == {"name": "doubled", "datatype": "FP32", "shape": [2], "data": [2, -5.0]}
