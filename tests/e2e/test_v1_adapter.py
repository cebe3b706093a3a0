"""The V1 adapter built-ins end to end: archives in the Waylay ML adapter's conventions
(MODEL_PATH + MODEL_CLASS, V1 payloads) built with `wick pack --v1-model-class`, served by
real Python worker processes, answers compared with what torch computes here."""
import importlib
import json
import sys

import pytest
import torch

from conftest import run_wick

NETMOD_PY = '''
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


class Pair(torch.nn.Module):
    """Two named inputs."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, a, b):
        return self.fc(a) * b
'''

WRAPPER_PY = '''
import os

import torch

import netmod


class Wrapper:
    """The no-load form: loads its own model from the path it is given."""

    def __init__(self, model_file):
        self.path = model_file
        self.net = netmod.Net()
        self.net.load_state_dict(torch.load(model_file))
        self.net.eval()

    def __call__(self, x, y):
        return {"z": self.net(x + y), "grad": torch.tensor(torch.is_grad_enabled()),
                "loaded": torch.tensor(os.path.isfile(self.path))}
'''


@pytest.fixture
def models(tmp_path):
    """netmod.py and wrapper.py in tmp_path, importable here; the trained-looking nets."""
    (tmp_path / "netmod.py").write_text(NETMOD_PY)
    (tmp_path / "wrapper.py").write_text(WRAPPER_PY)
    sys.path.insert(0, str(tmp_path))
    sys.modules.pop("netmod", None)
    netmod = importlib.import_module("netmod")
    torch.manual_seed(1)
    net, pair = netmod.Net().eval(), netmod.Pair().eval()
    store = tmp_path / "store"
    store.mkdir()
    yield tmp_path, store, net, pair
    sys.path.remove(str(tmp_path))
    sys.modules.pop("netmod", None)


def post(s, name, body):
    return s.infer("POST", f"/predictions/{name}", json.dumps(body), {"Content-Type": "application/json"})


def close(got, want):
    return torch.allclose(torch.tensor(got), want, atol=1e-5)


def test_weights_file_rows_and_tensors(serve, models):
    tmp, store, net, _ = models
    torch.save(net.state_dict(), tmp / "net.weights.pt")
    run_wick("pack", "--model-name", "v1w", "--serialized-file", tmp / "net.weights.pt",
             "--v1-model-class", "netmod.Net", "--extra-files", tmp / "netmod.py",
             "--export-path", store, "-f")
    info = json.loads(run_wick("inspect", "--json", store / "v1w.mar").stdout)
    assert info["manifest"]["handler"] == "v1_adapter"
    assert info["manifest"]["modelClass"] == "netmod.Net"
    assert info["manifest"]["serializedFile"] == "net.weights.pt"

    s = serve("--model-store", store, "--models", "v1w=v1w.mar")
    x = [[0.5, -1.0, 2.0, 0.25], [1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, -1.5]]
    want = net(torch.tensor(x)).detach()
    r = post(s, "v1w", {"instances": x})
    assert r.status == 200, r
    assert set(r.json()) == {"predictions"} and close(r.json()["predictions"], want), r.json()
    r = post(s, "v1w", {"inputs": x})
    assert r.status == 200, r
    assert set(r.json()) == {"outputs"} and close(r.json()["outputs"], want), r.json()
    # a lone "main" is the positional input; other names bind to forward()'s arguments
    r = post(s, "v1w", {"inputs": {"main": x[:1]}})
    assert r.status == 200 and close(r.json()["outputs"], want[:1]), r
    r = post(s, "v1w", {"inputs": {"x": x[1:]}})
    assert r.status == 200 and close(r.json()["outputs"], want[1:]), r
    # instances as a list of dicts: named columns
    r = post(s, "v1w", {"instances": [{"x": row} for row in x]})
    assert r.status == 200 and close(r.json()["predictions"], want), r
    # parameters pick the dtype: integers decoded as FP64 and run in a float64 copy fails
    # clearly (the model is float32), as a 400
    r = post(s, "v1w", {"instances": [[1, 2, 3, 4]], "parameters": {"datatype": "FP64"}})
    assert r.status == 400 and "cannot run" in r.json()["message"], r
    assert s.mgmt("GET", "/models/v1w").json()[0]["runtime"] == "python"


def test_whole_model_file_with_named_inputs(serve, models):
    tmp, store, _, pair = models
    torch.save(pair, tmp / "pair.pt")  # a whole pickled model: needs netmod importable
    run_wick("pack", "--model-name", "v1m", "--serialized-file", tmp / "pair.pt",
             "--handler", "v1_adapter", "--extra-files", tmp / "netmod.py",
             "--export-path", store, "-f")
    s = serve("--model-store", store, "--models", "v1m=v1m.mar")
    a = [[1.0, 2.0, 3.0], [0.5, -0.5, 0.0]]
    b = [[2.0, 1.0], [-1.0, 3.0]]
    want = pair(torch.tensor(a), torch.tensor(b)).detach()
    r = post(s, "v1m", {"inputs": {"a": a, "b": b}})
    assert r.status == 200, r
    assert close(r.json()["outputs"], want), r.json()
    rows = [{"a": a[i], "b": b[i]} for i in range(2)]
    r = post(s, "v1m", {"instances": rows})
    assert r.status == 200, r
    assert set(r.json()) == {"predictions"} and close(r.json()["predictions"], want), r.json()
    # a missing or unknown name is the client's mistake, named in a 400
    r = post(s, "v1m", {"inputs": {"a": a}})
    assert r.status == 400 and "'b' is missing" in r.json()["message"], r
    r = post(s, "v1m", {"inputs": {"a": a, "b": b, "c": b}})
    assert r.status == 400 and "unknown input 'c'" in r.json()["message"], r


def test_no_load_wrapper_gets_the_path_and_runs_without_grad(serve, models):
    tmp, store, net, _ = models
    torch.save(net.state_dict(), tmp / "my_model.pt")
    run_wick("pack", "--model-name", "v1n", "--serialized-file", tmp / "my_model.pt",
             "--v1-model-class", "wrapper.Wrapper", "--v1-no-load",
             "--extra-files", f"{tmp / 'wrapper.py'},{tmp / 'netmod.py'}", "--export-path", store, "-f")
    info = json.loads(run_wick("inspect", "--json", store / "v1n.mar").stdout)
    assert info["manifest"]["handler"] == "v1_noload"
    s = serve("--model-store", store, "--models", "v1n=v1n.mar")
    x = [[0.5, -1.0, 2.0, 0.25], [1.0, 2.0, 3.0, 4.0]]
    y = [[1.0, 1.0, 1.0, 1.0], [0.0, 0.5, 0.0, 0.5]]
    want = net(torch.tensor(x) + torch.tensor(y)).detach()
    r = post(s, "v1n", {"inputs": {"x": x, "y": y}})
    assert r.status == 200, r
    out = r.json()["outputs"]
    assert close(out["z"], want), out
    assert out["grad"] is False  # called under torch.no_grad
    assert out["loaded"] is True  # constructed with the archive's MODEL_PATH
    # rows of named columns; outputs of different lengths stay columnar, as the adapter does
    r = post(s, "v1n", {"instances": [{"x": x[i], "y": y[i]} for i in range(2)]})
    assert r.status == 200 and close(r.json()["outputs"]["z"], want), r


@pytest.mark.badinput
def test_bad_requests_get_clear_400s(serve, models):
    tmp, store, net, _ = models
    torch.save(net.state_dict(), tmp / "net.weights.pth")
    run_wick("pack", "--model-name", "v1b", "--serialized-file", tmp / "net.weights.pth",
             "--v1-model-class", "netmod.Net", "--model-file", tmp / "netmod.py",
             "--export-path", store, "-f")
    s = serve("--model-store", store, "--models", "v1b=v1b.mar")
    cases = [
        ({"data": [[1, 2, 3, 4]]}, "expected \"instances\""),
        ([[1, 2, 3, 4]], "expected a JSON object with \"instances\""),
        ({"instances": [[1, 2, 3]]}, "[1,3] float32"),  # wrong shape for Linear(4, 2)
        ({"instances": [[1, 2, 3, 4], [1, 2]]}, "not a numeric tensor"),
        ({"inputs": {}}, "empty object"),
        ({"inputs": {"q": [[1, 2, 3, 4]]}}, "unknown input 'q'"),
        ({"instances": [[1, 2, 3, 4]], "parameters": {"datatype": "FP128"}}, "FP128"),
    ]
    for body, needle in cases:
        r = post(s, "v1b", body)
        assert r.status == 400, (body, r)
        assert needle in r.json()["message"], (body, r.json())
        assert "Traceback" not in r.json()["message"]
    r = s.infer("POST", "/predictions/v1b", b"{not json", {"Content-Type": "application/json"})
    assert r.status == 400, r
    # the worker is fine afterwards
    r = post(s, "v1b", {"instances": [[1, 2, 3, 4]]})
    assert r.status == 200 and close(r.json()["predictions"], net(torch.tensor([[1.0, 2, 3, 4]])).detach())


def test_environment_overrides_model_path(serve, models):
    tmp, store, net, _ = models
    torch.save(net.state_dict(), tmp / "a.weights.pt")
    other = type(net)().eval()
    with torch.no_grad():
        other.fc.weight.fill_(0.5)
        other.fc.bias.fill_(-1.0)
    torch.save(other.state_dict(), tmp / "b.weights.pt")
    run_wick("pack", "--model-name", "v1e", "--serialized-file", tmp / "a.weights.pt",
             "--v1-model-class", "netmod.Net", "--extra-files", f"{tmp / 'netmod.py'},{tmp / 'b.weights.pt'}",
             "--export-path", store, "-f")
    s = serve("--model-store", store, "--models", "v1e=v1e.mar", env={"MODEL_PATH": "b.weights.pt"})
    x = [[1.0, 2.0, 3.0, 4.0]]
    r = post(s, "v1e", {"instances": x})
    assert r.status == 200 and close(r.json()["predictions"], other(torch.tensor(x)).detach()), r


def test_pack_refuses_incomplete_v1_flags(models):
    tmp, store, net, _ = models
    torch.save(net.state_dict(), tmp / "net.weights.pt")
    r = run_wick("pack", "--model-name", "x", "--serialized-file", tmp / "net.weights.pt",
                 "--handler", "v1_adapter", "--export-path", store, check=False)
    assert r.returncode != 0 and "--v1-model-class" in r.stderr, r.stderr
    r = run_wick("pack", "--model-name", "x", "--serialized-file", tmp / "net.weights.pt",
                 "--v1-no-load", "--export-path", store, check=False)
    assert r.returncode != 0 and "--v1-no-load needs --v1-model-class" in r.stderr, r.stderr
    r = run_wick("pack", "--model-name", "x", "--serialized-file", tmp / "net.weights.pt",
                 "--v1-model-class", "NoModule", "--export-path", store, check=False)
    assert r.returncode != 0 and "expected module.Class" in r.stderr, r.stderr


@pytest.mark.badinput
def test_a_bad_request_in_a_batch_fails_alone(serve, models):
    import concurrent.futures as cf

    tmp, store, net, _ = models
    torch.save(net.state_dict(), tmp / "net.weights.pt")
    cfg = tmp / "cfg.yaml"
    cfg.write_text("minWorkers: 1\nbatchSize: 4\nmaxBatchDelay: 500\n")
    run_wick("pack", "--model-name", "v1q", "--serialized-file", tmp / "net.weights.pt",
             "--v1-model-class", "netmod.Net", "--extra-files", tmp / "netmod.py", "--config-file", cfg,
             "--export-path", store, "-f")
    s = serve("--model-store", store, "--models", "v1q=v1q.mar")
    good = {"instances": [[1.0, 2.0, 3.0, 4.0]]}
    bodies = [good, {"nothing": 1}, good, {"instances": [[1.0]]}]
    with cf.ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda b: post(s, "v1q", b), bodies))
    want = net(torch.tensor(good["instances"])).detach()
    assert [r.status for r in replies] == [200, 400, 200, 400], replies
    assert close(replies[0].json()["predictions"], want) and close(replies[2].json()["predictions"], want)
    assert "expected \"instances\"" in replies[1].json()["message"]
    assert "cannot run" in replies[3].json()["message"]
    # and they did share a batch (four requests, fewer forward batches)
    text = s.metrics().body.decode()
    count = [l for l in text.splitlines() if l.startswith("wick_batch_size_count{") and '"v1q"' in l]
    assert count and float(count[0].rsplit(" ", 1)[1]) < 4, count
