"""Python handlers end to end: wick starts Python worker processes (python/wick_worker),
feeds them OTF frames and returns what the handler returns. The handlers here are
written against TorchServe's API (`ts.*` imports resolve to wick's own classes)."""
import concurrent.futures as cf
import json
import time

import pytest
import torch

from conftest import pack, run_wick

MODEL_PY = '''
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)
'''

HANDLER_PY = '''
import json

import torch
from ts.torch_handler.base_handler import BaseHandler


class DoubleHandler(BaseHandler):
    """Eager model + state_dict, TorchServe style; doubles the output."""

    def preprocess(self, data):
        rows = []
        for row in data:
            body = row.get("data") or row.get("body")
            if isinstance(body, (bytes, bytearray)):
                body = json.loads(body)
            rows.append(torch.tensor(body, dtype=torch.float32))
        return torch.stack(rows)

    def postprocess(self, out):
        return (out * 2).tolist()
'''

FUNC_PY = '''
def handle(data, context):
    if data is None:
        return None
    context.metrics.add_counter("EchoRequests", len(data))
    context.metrics.add_time("EchoBatchTime", 1.5)
    out = []
    for row in data:
        body = row.get("body")
        if isinstance(body, (bytes, bytearray)):
            body = body.decode()
        if body == "boom":
            raise ValueError("boom requested")
        if body == "die":
            import os
            os.kill(os.getpid(), 9)
        if body == "teapot":
            from ts.utils.util import PredictionException
            raise PredictionException("I am a teapot", 418)
        out.append({"echo": body, "batch": len(data)})
    return out
'''


def make_eager(tmp_path):
    (tmp_path / "model.py").write_text(MODEL_PY)
    (tmp_path / "handler.py").write_text(HANDLER_PY)
    torch.manual_seed(0)
    ns = {}
    exec(MODEL_PY, ns)
    net = ns["Net"]().eval()
    torch.save(net.state_dict(), tmp_path / "net.pt")
    store = tmp_path / "store"
    store.mkdir()
    run_wick("pack", "--model-name", "eager", "--version", "1.0", "--serialized-file", tmp_path / "net.pt",
             "--model-file", tmp_path / "model.py", "--handler", tmp_path / "handler.py",
             "--export-path", store, "-f")
    return store, net


def test_eager_model_with_a_torchserve_handler(serve, tmp_path):
    store, net = make_eager(tmp_path)
    s = serve("--model-store", store, "--models", "eager=eager.mar")
    x = [0.5, -1.0, 2.0, 0.25]
    r = s.infer("POST", "/predictions/eager", json.dumps(x), {"Content-Type": "application/json"})
    assert r.status == 200, r
    want = (net(torch.tensor([x])) * 2)[0]
    assert torch.allclose(torch.tensor(r.json()), want, atol=1e-5), (r.json(), want)
    desc = s.mgmt("GET", "/models/eager").json()[0]
    assert desc["runtime"] == "python"
    assert "[eager/worker" in s.logs() or "eager" in s.logs()


@pytest.mark.badinput
def test_function_handler_batches_and_errors(serve, tmp_path):
    (tmp_path / "echo.py").write_text(FUNC_PY)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("minWorkers: 1\nbatchSize: 4\nmaxBatchDelay: 200\n")
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "dummy.txt").write_text("x")
    run_wick("pack", "--model-name", "echo", "--version", "1.0", "--serialized-file", tmp_path / "dummy.txt",
             "--handler", f"{tmp_path / 'echo.py'}:handle", "--config-file", cfg, "--export-path", store, "-f")
    s = serve("--model-store", store, "--models", "echo=echo.mar")
    with cf.ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda i: s.infer("POST", "/predictions/echo", f"hello {i}"), range(4)))
    for i, r in enumerate(replies):
        assert r.status == 200, r
        assert r.json()["echo"] == f"hello {i}"
    assert max(r.json()["batch"] for r in replies) > 1  # requests went to the handler together
    r = s.infer("POST", "/predictions/echo", "boom")
    assert r.status == 503, r
    assert "Prediction failed" in r.json()["message"] and "boom requested" not in r.json()["message"]
    assert "boom requested" in s.logs()  # the traceback goes to the log
    r = s.infer("POST", "/predictions/echo", "teapot")
    assert r.status == 418 and r.json()["message"] == "I am a teapot", r
    assert s.infer("POST", "/predictions/echo", "again").status == 200
    # values recorded through context.metrics appear on /metrics
    text = s.metrics().body.decode()
    lines = [l for l in text.splitlines() if l.startswith("EchoRequests{")]
    assert lines and 'model_name="echo"' in lines[0], text[-2000:]
    assert float(lines[0].rsplit(" ", 1)[1]) >= 4  # the first four requests at least (the log
    # reader thread may still be on the latest lines)
    assert "# TYPE EchoRequests counter" in text and "# TYPE EchoBatchTime gauge" in text


@pytest.mark.badinput
def test_worker_killed_mid_batch_fails_at_once_and_restarts(serve, tmp_path):
    (tmp_path / "echo.py").write_text(FUNC_PY)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("minWorkers: 1\nbatchSize: 1\nresponseTimeout: 120\n")
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "dummy.txt").write_text("x")
    run_wick("pack", "--model-name", "echo", "--version", "1.0", "--serialized-file", tmp_path / "dummy.txt",
             "--handler", f"{tmp_path / 'echo.py'}:handle", "--config-file", cfg, "--export-path", store, "-f")
    s = serve("--model-store", store, "--models", "echo=echo.mar")
    t = time.time()
    r = s.infer("POST", "/predictions/echo", "die")
    assert r.status == 503, r
    assert time.time() - t < 10  # at once, not at the 120 s timeout
    assert "exited" in r.json()["message"] or "signal" in r.json()["message"], r.json()
    r = s.infer("POST", "/predictions/echo", "after")
    assert r.status == 200 and r.json()["echo"] == "after", r


@pytest.mark.badinput
def test_handler_that_cannot_load_fails_the_load_with_its_traceback(serve, tmp_path):
    (tmp_path / "bad.py").write_text("def handle(data, context):\n    return [1\n")
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "dummy.txt").write_text("x")
    run_wick("pack", "--model-name", "bad", "--version", "1.0", "--serialized-file", tmp_path / "dummy.txt",
             "--handler", tmp_path / "bad.py", "--export-path", store, "-f")
    s = serve("--model-store", store, "--models", "bad=bad.mar")
    logs = s.logs()
    assert "model bad not loaded" in logs, logs
    assert "SyntaxError" in logs, logs
    assert s.infer("POST", "/predictions/bad", "x").status == 404
