"""TorchServe's service_envelope for Python handlers: with kserve or kservev2 in
config.properties the worker unwraps KServe requests into the rows the handler reads and
wraps its answers, as TorchServe does, so handlers written for TorchServe on KServe work
unchanged."""
import json

import pytest
import torch

from conftest import pack
from models import MLP, save_script

# TorchServe-style handler written for an envelope: each row is an instance (kserve) or
# an input dict (kservev2).
HANDLER = '''
import torch
from ts.torch_handler.base_handler import BaseHandler


class H(BaseHandler):
    def preprocess(self, data):
        rows = [row["data"] if isinstance(row, dict) and "name" in row else row for row in data]
        return torch.tensor(rows, dtype=torch.float32).reshape(-1, 16)

    def postprocess(self, out):
        return out.tolist()
'''


@pytest.fixture
def store(tmp_path):
    d = tmp_path / "store"
    d.mkdir()
    save_script(MLP, tmp_path / "mlp.pt")
    (tmp_path / "h.py").write_text(HANDLER)
    pack(d, "m", tmp_path / "mlp.pt", handler=tmp_path / "h.py")
    return d, torch.jit.load(str(tmp_path / "mlp.pt"))


def start(serve, store, tmp_path, envelope):
    d, _ = store
    cfg = tmp_path / f"{envelope}.properties"
    cfg.write_text(f"service_envelope={envelope}\n")
    return serve("--model-store", d, "--models", "m=m.mar", "--ts-config", cfg)


def test_kserve_envelope(serve, store, tmp_path):
    s = start(serve, store, tmp_path, "kserve")
    x = [[0.1 * i for i in range(16)], [0.5] * 16]
    want = store[1](torch.tensor(x)).tolist()
    r = s.infer("POST", "/v1/models/m:predict", json.dumps({"instances": x}),
                {"Content-Type": "application/json"})
    assert r.status == 200, r
    got = r.json()
    assert set(got) == {"predictions"} and torch.allclose(torch.tensor(got["predictions"]),
                                                          torch.tensor(want), atol=1e-5), got
    # the envelope is the model's, whatever the route: /predictions too, as in TorchServe
    r = s.infer("POST", "/predictions/m", json.dumps({"instances": x}), {"Content-Type": "application/json"})
    assert r.status == 200 and "predictions" in r.json(), r
    assert "requests go through the kserve envelope" in s.logs()


def test_kservev2_envelope(serve, store, tmp_path):
    s = start(serve, store, tmp_path, "kservev2")
    x = [0.25] * 16
    want = store[1](torch.tensor([x])).flatten().tolist()
    doc = {"id": "q1", "inputs": [{"name": "input-0", "shape": [1, 16], "datatype": "FP32", "data": x}]}
    r = s.infer("POST", "/v2/models/m/infer", json.dumps(doc), {"Content-Type": "application/json"})
    assert r.status == 200, r
    got = r.json()
    assert got["id"] == "q1" and got["model_name"] == "m" and got["model_version"] == "1.0", got
    (out,) = got["outputs"]
    assert out["name"] == "input-0" and out["shape"] == [4], out
    assert torch.allclose(torch.tensor(out["data"]), torch.tensor(want), atol=1e-5)


@pytest.mark.badinput
def test_an_unknown_envelope_fails_the_load_with_the_known_ones(serve, store, tmp_path):
    s = start(serve, store, tmp_path, "soap")
    assert s.infer("POST", "/predictions/m", "{}").status == 404
    assert "service_envelope 'soap' is not one wick knows (body, json, kserve, kservev2)" in s.logs()
