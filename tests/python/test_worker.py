"""The worker as wick runs it: a `python3 -m wick_worker` subprocess on a real unix
socket, driven with the Python frontend codec. Models and handlers are written by the
tests in TorchServe's style; results are compared with what PyTorch computes here."""

import json
import os
import socket
import struct
import textwrap

import pytest
import torch

from conftest import Worker, make_model_dir, req
from wick_worker import protocol

MODEL_PY = textwrap.dedent("""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x)
""")

CLASS_HANDLER = textwrap.dedent("""
    import torch
    from ts.torch_handler.base_handler import BaseHandler

    class RowsHandler(BaseHandler):
        def preprocess(self, data):
            return torch.tensor([row["body"]["x"] for row in data], dtype=torch.float32)

        def postprocess(self, out):
            for i in range(out.shape[0]):
                self.context.set_response_header(i, "x-row", str(i))
            return [{"y": row} for row in out.tolist()]
""")


def eager_model(tmp_path, handler_files, handler, extra=None):
    torch.manual_seed(0)
    exec(MODEL_PY, ns := {})
    net = ns["Net"]()
    torch.save(net.state_dict(), str(tmp_path / "weights.pt"))
    with open(tmp_path / "weights.pt", "rb") as f:
        weights = f.read()
    files = {"model.py": MODEL_PY, "weights.pt": weights, **handler_files, **(extra or {})}
    d = make_model_dir(tmp_path / "model", files, {"modelFile": "model.py", "serializedFile": "weights.pt"}, handler)
    return d, net


def test_class_handler_on_base_handler_batch_of_three(tmp_path, worker):
    d, net = eager_model(tmp_path, {"handler.py": CLASS_HANDLER}, "handler.py")
    w = worker().connect()
    r = w.load(d, "handler.py", batch_size=3)
    assert (r.code, r.message, r.predictions) == (200, "loaded model m", [])
    xs = [[1, 2, 3, 4], [0.5, -1, 0, 2], [-3, 0, 1, 1]]
    resp = w.infer([req("id%d" % i, {"x": x}) for i, x in enumerate(xs)])
    assert resp.code == 200 and resp.message == "Prediction success"
    assert [p.request_id for p in resp.predictions] == ["id0", "id1", "id2"]
    with torch.no_grad():
        want = net(torch.tensor(xs, dtype=torch.float32)).tolist()
    for i, p in enumerate(resp.predictions):
        assert p.status == 200 and p.content_type == "application/json"
        assert p.headers == {"x-row": str(i)}
        assert json.loads(p.body)["y"] == pytest.approx(want[i], abs=1e-6)
    names = {m["name"] for m in w.metrics()}
    assert {"HandlerTime", "PredictionTime", "ts_handler_inference"} <= names


FN_HANDLER = textwrap.dedent("""
    import torch
    from ts.utils.util import PredictionException

    state = {}

    def predict(data, context):
        if data is None:  # TorchServe calls a function handler with None to initialize
            state["props"] = dict(context.system_properties)
            state["config"] = context.model_yaml_config
            context.metrics.add_counter("InitCount", 1)
            return None
        out = []
        for i, row in enumerate(data):
            body = row.get("body")
            mode = context.get_request_header(i, "x-mode")
            if mode == "raise":
                raise ValueError("boom from the handler")
            if mode == "predexc":
                raise PredictionException("teapot says no", 418)
            if mode == "short":
                return out
            if mode == "memory":
                raise MemoryError()
            if mode == "props":
                out.append({"props": state["props"], "config": state["config"],
                            "manifest": context.manifest["model"]["handler"]})
                continue
            if mode == "status":
                context.set_response_status(201, "Made", idx=i)
                context.set_response_content_type(i, "text/x-custom")
                context.set_response_header(i, "x-answer", "42")
            context.metrics.add_counter("Calls", 1, idx=i)
            context.metrics.add_time("Work", 2.5, idx=i, unit="ms")
            context.metrics.add_size("Payload", 0.5, idx=i)
            context.metrics.add_percent("Share", 50, idx=i)
            m = context.metrics.add_metric_to_cache("Custom", "things", ["Kind"])
            m.add_or_update(7, ["blue"], context.get_request_id(i))
            if isinstance(body, (bytes, bytearray)):
                out.append(bytes(reversed(body)))
            elif isinstance(body, str):
                out.append("text:" + body)
            else:
                out.append({"type": type(body).__name__, "value": body, "id": context.get_request_id(i),
                            "tensor": torch.arange(3)})
        return out
""")


@pytest.fixture
def fn_worker(tmp_path, worker):
    d = make_model_dir(tmp_path / "model", {"fn.py": FN_HANDLER, "model-config.yaml": "batchSize: 4\nwick:\n  topk: 2\n"},
                       {"configFile": "model-config.yaml"}, "fn:predict")
    w = worker().connect()
    r = w.load(d, "fn:predict", batch_size=4, gpu_id=-1)
    assert r.code == 200, r.message
    return w, d


def test_function_handler_inputs_outputs_and_context(fn_worker):
    w, d = fn_worker
    resp = w.infer([
        req("a", {"k": [1, 2]}),
        req("b", "héllo", "text/plain; charset=utf-8"),
        req("c", b"\x00\x01\x02", "application/octet-stream"),
        req("d", {"k": 1}, headers=[("x-mode", "status")]),
    ])
    assert resp.code == 200
    a, b, c, dd = resp.predictions
    assert json.loads(a.body) == {"type": "dict", "value": {"k": [1, 2]}, "id": "a", "tensor": [0, 1, 2]}
    assert a.content_type == "application/json" and a.status == 200
    assert b.body == "text:héllo".encode() and b.content_type == "text/plain; charset=utf-8"
    assert c.body == b"\x02\x01\x00"
    assert (dd.status, dd.reason, dd.content_type) == (201, "Made", "text/x-custom")
    assert dd.headers == {"content-type": "text/x-custom", "x-answer": "42"}

    resp = w.infer([req("p", {}, headers=[("x-mode", "props")])])
    got = json.loads(resp.predictions[0].body)
    assert got["props"] == {"model_dir": d, "gpu_id": None, "batch_size": 4, "server_name": "wick",
                            "server_version": "0.1.0", "limit_max_image_pixels": True}
    assert got["config"] == {"batchSize": 4, "wick": {"topk": 2}}
    assert got["manifest"] == "fn:predict"


def test_metrics_lines(fn_worker):
    w, _ = fn_worker
    w.infer([req("r1", {}), req("r2", {})])
    ms = w.metrics()
    init = [m for m in ms if m["name"] == "InitCount"]
    assert init == [{"name": "InitCount", "type": "counter", "unit": "count", "value": 1,
                     "dimensions": {"ModelName": "m", "Level": "Model"}, "request_id": ""}]
    calls = [m for m in ms if m["name"] == "Calls"]
    assert [m["request_id"] for m in calls] == ["r1", "r2"]
    by_name = {m["name"]: m for m in ms}
    assert (by_name["Work"]["type"], by_name["Work"]["unit"], by_name["Work"]["value"]) == ("gauge", "ms", 2.5)
    assert (by_name["Payload"]["unit"], by_name["Share"]["unit"]) == ("MB", "percent")
    assert by_name["Custom"] == {"name": "Custom", "type": "counter", "unit": "things", "value": 7,
                                 "dimensions": {"Kind": "blue"}, "request_id": "r2"}
    assert by_name["PredictionTime"]["unit"] == "ms"


@pytest.mark.parametrize("mode,code,message", [
    ("raise", 503, "Prediction failed"),
    ("predexc", 418, "teapot says no"),
    ("memory", 507, "Out of resources"),
])
def test_handler_failures_fail_the_batch(fn_worker, mode, code, message):
    w, _ = fn_worker
    resp = w.infer([req("ok", {}), req("bad", {}, headers=[("x-mode", mode)])])
    assert (resp.code, resp.message) == (code, message)
    assert [(p.request_id, p.status) for p in resp.predictions] == [("ok", code), ("bad", code)]
    if mode == "raise":
        err = w.stderr()
        assert "Traceback" in err and "ValueError: boom from the handler" in err
    # the worker keeps serving
    assert w.infer([req("next", {})]).code == 200


def test_wrong_number_of_results(fn_worker):
    w, _ = fn_worker
    resp = w.infer([req("a", {}, headers=[("x-mode", "short")]), req("b", {}), req("c", {})])
    assert resp.code == 503
    assert resp.message.startswith("number of batch response mismatched")
    assert "0 results for 3 requests" in resp.message


def test_startup_import_error_reports_traceback(tmp_path, worker):
    d = make_model_dir(tmp_path / "model", {"broken.py": "import not_a_real_package_xyz\n"}, handler="broken")
    w = worker().connect()
    r = w.load(d, "broken")
    assert r.code == 500
    first, _, rest = r.message.partition("\n")
    assert first == "ModuleNotFoundError: No module named 'not_a_real_package_xyz'"
    assert "Traceback (most recent call last)" in rest and "broken.py" in rest
    assert w.wait() == 1
    assert "loading model m failed" in w.stderr()


def test_initialize_failure_fails_the_load(tmp_path, worker):
    src = textwrap.dedent("""
        class H:
            def initialize(self, context):
                raise RuntimeError("weights are missing: expected w.pt")
            def handle(self, data, context):
                return data
    """)
    d = make_model_dir(tmp_path / "model", {"h.py": src}, handler="h")
    w = worker().connect()
    r = w.load(d, "h")
    assert r.code == 500 and r.message.startswith("RuntimeError: weights are missing: expected w.pt\n")
    assert w.wait() == 1


def test_unknown_handler_and_ambiguous_module(tmp_path, worker):
    d = make_model_dir(tmp_path / "model", {"two.py": "class A:\n  def handle(s,d,c): pass\nclass B:\n  def handle(s,d,c): pass\n"})
    w = worker().connect()
    r = w.load(d, "nosuch_handler_name")
    assert r.code == 500
    assert "no nosuch_handler_name.py in the model directory" in r.message and "image_classifier" in r.message
    assert "Traceback" not in r.message
    w2 = Worker(tmp_path / "model").connect()
    try:
        r = w2.load(d, "two")
        assert r.code == 500 and "exactly one class" in r.message and "['A', 'B']" in r.message
    finally:
        w2.close()


def test_inference_before_load_and_second_load(tmp_path, worker):
    d = make_model_dir(tmp_path / "model", {"fn.py": FN_HANDLER}, handler="fn:predict")
    w = worker().connect()
    r = w.infer([req("early", {})])
    assert r.code == 503 and "load frame" in r.message and r.predictions[0].request_id == "early"
    assert w.load(d, "fn:predict").code == 200
    r = w.load(d, "fn:predict", name="other")
    assert r.code == 409 and "already serves model m" in r.message
    assert w.infer([req("x", {})]).code == 200


def test_malformed_frame_ends_the_worker(tmp_path, worker):
    w = worker().connect()
    w.sock.sendall(b"Z")
    assert w.wait() == 2
    assert "unknown command byte" in w.stderr()


def test_frame_over_the_size_limit(tmp_path, worker):
    w = worker(extra_args=["--max-request-bytes", "4096"]).connect()
    w.sock.sendall(b"I" + struct.pack("!i", 1) + b"r" + struct.pack("!i", -1) + struct.pack("!i", 4) + b"body"
                   + struct.pack("!i", 0) + struct.pack("!i", 100000))
    assert w.wait() == 2
    assert "over the limit of 4096" in w.stderr()


def test_peer_close_exits_cleanly(tmp_path, worker):
    w = worker().connect()
    w.sock.close()
    w.sock = None
    assert w.wait() == 0
    assert not os.path.exists(w.sock_path)  # the path is removed once the peer connected


def test_inherited_socket(tmp_path, worker):
    d = make_model_dir(tmp_path / "model", {"fn.py": FN_HANDLER}, handler="fn:predict")
    ours, theirs = socket.socketpair()
    w = worker(sock_fd=theirs.fileno())
    theirs.close()
    w.use_socket(ours)
    assert w.load(d, "fn:predict").code == 200
    assert json.loads(w.infer([req("a", [1])]).predictions[0].body)["value"] == [1]


STREAM_HANDLER = textwrap.dedent("""
    from ts.protocol.otf_message_handler import send_intermediate_predict_response

    def handle(data, context):
        if data is None:
            return None
        for part in ("one", "two"):
            send_intermediate_predict_response([part] * len(data), context.request_ids, "Intermediate Prediction success", 200, context)
        return ["done"] * len(data)
""")


def test_streaming_intermediate_responses(tmp_path, worker):
    d = make_model_dir(tmp_path / "model", {"stream.py": STREAM_HANDLER}, handler="stream")
    w = worker().connect()
    assert w.load(d, "stream").code == 200
    w.sock.sendall(protocol.encode_inference([req("s1", {}), req("s2", {})]))
    frames = [w.read_response() for _ in range(3)]
    assert [[p.body for p in f.predictions] for f in frames] == [[b"one"] * 2, [b"two"] * 2, [b"done"] * 2]
    assert [f.predictions[1].headers.get("ts_stream_next") for f in frames] == ["true", "true", "false"]
    assert [p.request_id for p in frames[2].predictions] == ["s1", "s2"]


TENSOR_MODEL_PY = textwrap.dedent("""
    import torch

    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(x)
""")


def test_builtin_tensor_handler_batches_rows(tmp_path, worker):
    torch.manual_seed(1)
    ns = {}
    exec(TENSOR_MODEL_PY, ns)
    net = ns["Two"]()
    torch.save(net.state_dict(), str(tmp_path / "w.pt"))
    d = make_model_dir(tmp_path / "model", {"m.py": TENSOR_MODEL_PY, "w.pt": (tmp_path / "w.pt").read_bytes()},
                       {"modelFile": "m.py", "serializedFile": "w.pt"}, "tensor")
    w = worker().connect()
    assert w.load(d, "tensor", batch_size=3).code == 200
    a = [[1.0, 2.0, 3.0]]
    b = [[0.0, 1.0, 0.0], [2.0, 2.0, 2.0]]
    c = [[-1.0, 0.5, 4.0]]
    resp = w.infer([req("a", a), req("b", {"data": b}), req("c", {"instances": c})])
    assert resp.code == 200
    with torch.no_grad():
        for p, x in zip(resp.predictions, (a, b, c)):
            torch.testing.assert_close(torch.tensor(json.loads(p.body)), net(torch.tensor(x)), rtol=0, atol=1e-6)
    bad = w.infer([req("bad", {"data": [[1, 2], [3]]})])
    assert bad.code == 400 and "request 0" in bad.message and "not a numeric tensor" in bad.message


def test_torchscript_model_through_base_handler(tmp_path, worker):
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    torch.jit.script(net).save(str(tmp_path / "ts.pt"))
    d = make_model_dir(tmp_path / "model", {"ts.pt": (tmp_path / "ts.pt").read_bytes()}, {"serializedFile": "ts.pt"}, "base_handler")
    w = worker().connect()
    assert w.load(d, "base_handler").code == 200
    resp = w.infer([req("a", [[1.0, -2.0]])])
    with torch.no_grad():
        torch.testing.assert_close(torch.tensor(json.loads(resp.predictions[0].body)), net(torch.tensor([[1.0, -2.0]])))


def test_whole_pickled_model_is_refused(tmp_path, worker):
    ns = {}
    exec(MODEL_PY, ns)
    d = make_model_dir(tmp_path / "model", {"model.py": MODEL_PY}, {"modelFile": "model.py", "serializedFile": "whole.pt"}, "tensor")
    import sys
    sys.modules["model"] = type(sys)("model")
    sys.modules["model"].Net = ns["Net"]
    ns["Net"].__module__ = "model"
    torch.save(ns["Net"](), os.path.join(d, "whole.pt"))
    del sys.modules["model"]
    w = worker().connect()
    r = w.load(d, "tensor")
    assert r.code == 500 and "weights_only=True" in r.message and "state_dict" in r.message
