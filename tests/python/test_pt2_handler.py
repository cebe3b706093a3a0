"""The Python base handler on torch 2 models: TorchServe 0.12's `pt2` model-config keys
(torch.compile), an ExportedProgram (torch.export.save) and an AOTInductor package as the
serialized file, loaded in this process through the worker's loader."""
import json
import logging
import os

import pytest
import torch

from conftest import make_model_dir, req
from wick_worker import loader, protocol
from wick_worker.handlers.base_handler import compile_options, pt2_kind


@pytest.fixture
def load(tmp_path):
    cwd = os.getcwd()

    def go(model_dir, handler="base_handler"):
        return loader.load_model(protocol.LoadRequest("m", model_dir, 2, handler), "test")

    yield go
    os.chdir(cwd)


def predict(svc, rows):
    resp = protocol.decode_response(svc.predict([req("a", rows)]))
    assert resp.code == 200, resp.message
    return torch.tensor(json.loads(resp.predictions[0].body))


def test_compile_options_read_as_torchserve_reads_them():
    assert compile_options({"compile": {"enable": True, "backend": "inductor", "mode": "max-autotune"}}) \
        == {"backend": "inductor", "mode": "max-autotune"}
    assert compile_options({"compile": {"enable": False, "backend": "inductor"}}) is None
    assert compile_options({"export": {"aot_compile": True}}) is None
    assert compile_options("inductor") == {"backend": "inductor"}  # the older forms
    assert compile_options({"backend": "eager"}) == {"backend": "eager"}
    with pytest.raises(ValueError):
        compile_options(3)


NET_PY = """
import torch

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return torch.relu(self.fc(x))
"""
_ns = {}
exec(NET_PY, _ns)  # the class the archives' modelFile defines, for the reference outputs
Net = _ns["Net"]


def eager_dir(tmp_path, config):
    """An eager model (modelFile + state_dict): what torch.compile takes (torch 2.14 refuses
    TorchScript modules)."""
    torch.manual_seed(0)
    net = Net().eval()
    torch.save(net.state_dict(), str(tmp_path / "net.pt"))
    d = make_model_dir(tmp_path / "m", {"net.pt": (tmp_path / "net.pt").read_bytes(),
                                        "pt2net.py": NET_PY, "model-config.yaml": config},
                       {"serializedFile": "net.pt", "modelFile": "pt2net.py",
                        "configFile": "model-config.yaml"})
    return d, net


def test_pt2_compile_key_compiles_the_model(tmp_path, load, caplog):
    d, net = eager_dir(tmp_path, "pt2: {compile: {enable: true, backend: eager}}\n")
    with caplog.at_level(logging.INFO, logger="wick_worker"):
        svc = load(d)
    assert "compiled the model with backend eager" in caplog.text, caplog.text
    x = torch.randn(2, 4)
    assert torch.allclose(predict(svc, x.tolist()), net(x), atol=1e-6)


def test_pt2_unknown_backend_is_a_warning_and_the_model_runs(tmp_path, load, caplog):
    d, net = eager_dir(tmp_path, "pt2: {compile: {enable: true, backend: no_such_backend}}\n")
    with caplog.at_level(logging.INFO, logger="wick_worker"):
        svc = load(d)
    assert "not one of this torch's" in caplog.text and "compiled the model" not in caplog.text
    x = torch.randn(1, 4)
    assert torch.allclose(predict(svc, x.tolist()), net(x), atol=1e-6)


def test_exported_program_and_aoti_package_as_the_serialized_file(tmp_path, load):
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    torch.manual_seed(1)
    net = Net().eval()
    batch = torch.export.Dim("batch", min=1, max=8)
    ep = torch.export.export(net, (torch.randn(3, 4),), dynamic_shapes=({0: batch},))
    torch.export.save(ep, str(tmp_path / "ep.pt2"))
    torch._inductor.aoti_compile_and_package(ep, package_path=str(tmp_path / "aoti.pt2"))
    assert pt2_kind(str(tmp_path / "ep.pt2")) == "exported"
    assert pt2_kind(str(tmp_path / "aoti.pt2")) == "aoti"
    x = torch.randn(3, 4)
    for name in ("ep.pt2", "aoti.pt2"):
        d = make_model_dir(tmp_path / name.replace(".", "_"),
                           {name: (tmp_path / name).read_bytes()}, {"serializedFile": name})
        svc = load(d)
        assert torch.allclose(predict(svc, x.tolist()), net(x), atol=1e-5), name

