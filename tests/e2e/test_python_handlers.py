"""Python handlers end to end: wick starts Python worker processes (python/wick_worker),
feeds them OTF frames and returns what the handler returns. The handlers here are
written against TorchServe's API (`ts.*` imports resolve to wick's own classes)."""
import concurrent.futures as cf
import http.client
import importlib.util
import json
import socket
import time

import pytest
import torch

from test_serve import metric_values
from conftest import pack, run_wick, wait_for

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
        if body == "oom":
            raise MemoryError()
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
    # the traceback goes to the log (the worker's log lines are read by a thread of their own)
    wait_for(lambda: "boom requested" in s.logs())
    r = s.infer("POST", "/predictions/echo", "teapot")
    assert r.status == 418 and r.json()["message"] == "I am a teapot", r
    assert r.json()["type"] == "InternalServerException"  # TorchServe's type for any code
    r = s.infer("POST", "/predictions/echo", "oom")
    assert r.status == 507 and "Out of resources" in r.json()["message"], r
    assert r.json()["type"] == "InternalServerException"
    assert s.infer("POST", "/predictions/echo", "again").status == 200
    # values recorded through context.metrics appear on /metrics; the worker records a
    # batch's times just after it answered: wait until the last one is in
    lab = 'model_name="echo",model_version="1.0"'

    def settled():
        t = s.metrics().body.decode()
        v = metric_values(t)
        n = v.get(f"wick_queue_seconds_count{{{lab}}}", 0)
        done = v.get(f"wick_inference_seconds_count{{{lab}}}") == n == v.get(f"wick_batch_size_sum{{{lab}}}")
        return t if n >= 8 and done else None
    text = wait_for(settled)
    lines = [l for l in text.splitlines() if l.startswith("EchoRequests{")]
    assert lines and 'model_name="echo"' in lines[0], text[-2000:]
    assert float(lines[0].rsplit(" ", 1)[1]) >= 4  # the first four requests at least (the log
    # reader thread may still be on the latest lines)
    assert "# TYPE EchoRequests counter" in text and "# TYPE EchoBatchTime gauge" in text
    # the worker loop measured the Python model as it does native ones: queue time, run
    # time and batch sizes (these stayed empty for Python models before [8])
    v = metric_values(text)
    n = v[f"wick_queue_seconds_count{{{lab}}}"]
    assert n >= 8, n  # every answered request, errors included
    assert v[f"wick_inference_seconds_count{{{lab}}}"] == n
    host = 'hostname="%s"' % socket.gethostname()
    assert v[f"ts_queue_latency_microseconds{{{lab},{host}}}"] > 0
    assert v[f"ts_inference_latency_microseconds{{{lab},{host}}}"] > 0
    assert v[f"wick_batch_size_sum{{{lab}}}"] == n
    assert v[f"wick_batch_size_count{{{lab}}}"] < n  # some requests shared a batch


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


FEATURES_PY = '''
import time

from ts.protocol.otf_message_handler import send_intermediate_predict_response


def handle(data, context):
    if data is None:
        return None
    out = []
    for idx, row in enumerate(data):
        body = row.get("body")
        if isinstance(body, (bytes, bytearray)):
            body = body.decode()
        if body == "headers":
            out.append({"x_custom": context.get_request_header(idx, "X-Custom"),
                        "user_agent": context.get_request_header(idx, "user-agent"),
                        "content_type": context.get_request_header(idx, "Content-Type")})
        elif body == "created":
            context.set_response_status(201, "Created", idx)
            context.set_response_header(idx, "X-Handler", "yes")
            context.set_response_content_type(idx, "text/plain")
            out.append("made it")
        elif body == "stream":
            for k in range(3):
                send_intermediate_predict_response(["part %d;" % k], context.request_ids,
                                                   "Intermediate Prediction success", 200, context)
                time.sleep(0.4)
            out.append("end.")
        elif body == "stream-then-fail":
            send_intermediate_predict_response(["first;"], context.request_ids,
                                               "Intermediate Prediction success", 200, context)
            raise RuntimeError("failed after the first part")
        else:
            out.append({"batch": len(data), "body": body})
    return out
'''


def make_features(tmp_path, config="minWorkers: 1\nbatchSize: 1\n"):
    (tmp_path / "features.py").write_text(FEATURES_PY)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(config)
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "dummy.txt").write_text("x")
    run_wick("pack", "--model-name", "feat", "--version", "1.0", "--serialized-file", tmp_path / "dummy.txt",
             "--handler", f"{tmp_path / 'features.py'}:handle", "--config-file", cfg, "--export-path", store,
             "-f")
    return store


def test_request_headers_reach_the_handler_and_its_status_and_headers_come_back(serve, tmp_path):
    s = serve("--model-store", make_features(tmp_path), "--models", "feat=feat.mar")
    r = s.infer("POST", "/predictions/feat", "headers",
                {"X-Custom": "abc 123", "User-Agent": "wick-test/1", "Content-Type": "text/plain"})
    assert r.status == 200, r
    assert r.json() == {"x_custom": "abc 123", "user_agent": "wick-test/1", "content_type": "text/plain"}
    r = s.infer("POST", "/predictions/feat", "created")
    assert r.status == 201, r
    assert r.headers.get("X-Handler") == "yes", r.headers
    assert r.headers.get("Content-Type") == "text/plain", r.headers
    assert r.body == b"made it"


def test_intermediate_responses_stream_as_chunks(serve, tmp_path):
    s = serve("--model-store", make_features(tmp_path), "--models", "feat=feat.mar")
    conn = http.client.HTTPConnection("127.0.0.1", s.ports["inference"], timeout=30)
    try:
        t0 = time.time()
        conn.request("POST", "/predictions/feat", body=b"stream")
        r = conn.getresponse()
        assert r.status == 200
        assert r.getheader("Transfer-Encoding") == "chunked", r.getheaders()
        assert r.getheader("ts_stream_next") is None  # wick's marker, not the client's business
        pieces = []
        while True:
            chunk = r.read1(65536)
            if not chunk:
                break
            pieces.append((time.time() - t0, chunk))
        body = b"".join(c for _, c in pieces)
        assert body == b"part 0;part 1;part 2;end.", pieces
        # the first part arrived while the handler was still sleeping between parts
        # (the handler takes >= 1.2 s in all)
        first = next(t for t, c in pieces if c)
        assert first < pieces[-1][0] - 0.6, pieces
        # the connection stays usable for the next request (keep-alive after a chunked reply)
        conn.request("POST", "/predictions/feat", body=b"plain")
        r2 = conn.getresponse()
        assert r2.status == 200 and json.loads(r2.read())["body"] == "plain"
    finally:
        conn.close()
    # the access log counts the bytes sent
    assert "POST /predictions/feat 200" in s.logs()


@pytest.mark.badinput
def test_a_stream_whose_handler_fails_is_cut_not_completed(serve, tmp_path):
    s = serve("--model-store", make_features(tmp_path), "--models", "feat=feat.mar")
    conn = http.client.HTTPConnection("127.0.0.1", s.ports["inference"], timeout=30)
    try:
        conn.request("POST", "/predictions/feat", body=b"stream-then-fail")
        r = conn.getresponse()
        assert r.status == 200
        with pytest.raises(http.client.IncompleteRead) as e:
            r.read()
        assert e.value.partial == b"first;"
    finally:
        conn.close()
    assert "failed in the middle of a streamed reply" in s.logs()
    r = s.infer("POST", "/predictions/feat", "after")
    assert r.status == 200 and r.json()["body"] == "after", r


def test_a_batch_of_8_goes_to_the_python_handler_together(serve, tmp_path):
    store = make_features(tmp_path, "minWorkers: 1\nbatchSize: 8\nmaxBatchDelay: 2000\n")
    s = serve("--model-store", store, "--models", "feat=feat.mar")
    with cf.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda i: s.infer("POST", "/predictions/feat", f"r{i}"), range(8)))
    assert [r.status for r in replies] == [200] * 8, replies
    assert sorted(r.json()["body"] for r in replies) == sorted(f"r{i}" for i in range(8))
    # eight requests within the 2 s delay fill one batch of 8
    assert [r.json()["batch"] for r in replies] == [8] * 8, [r.json() for r in replies]


CNN_PY = '''
import torch


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv(x)))
        return self.fc(x.flatten(1))
'''


def test_eager_cnn_in_python_equals_the_native_torchscript_path(serve, tmp_path):
    (tmp_path / "cnn.py").write_text(CNN_PY)
    spec = importlib.util.spec_from_file_location("wick_test_cnn", tmp_path / "cnn.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # from a file: torch.jit.script needs the source
    torch.manual_seed(3)
    net = mod.SmallCNN().eval()
    torch.save(net.state_dict(), tmp_path / "cnn_state.pt")
    torch.jit.script(net).save(str(tmp_path / "cnn_ts.pt"))
    store = tmp_path / "store"
    store.mkdir()
    run_wick("pack", "--model-name", "eager", "--version", "1.0", "--serialized-file", tmp_path / "cnn_state.pt",
             "--model-file", tmp_path / "cnn.py", "--handler", "tensor", "--export-path", store, "-f")
    run_wick("pack", "--model-name", "native", "--version", "1.0", "--serialized-file", tmp_path / "cnn_ts.pt",
             "--handler", "tensor", "--export-path", store, "-f")
    s = serve("--model-store", store, "--models", "eager=eager.mar", "native=native.mar")
    runtimes = {d["modelName"]: d["runtime"] for d in
                (s.mgmt("GET", f"/models/{n}").json()[0] for n in ("eager", "native"))}
    assert runtimes == {"eager": "python", "native": "native"}
    g = torch.Generator().manual_seed(5)
    for shape in ((1, 1, 8, 8), (3, 1, 8, 8)):
        x = torch.randn(*shape, generator=g)
        for body in (x.tolist(), {"data": x.tolist()}, {"instances": x.tolist()}, {"inputs": x.tolist()}):
            a = s.infer("POST", "/predictions/eager", json.dumps(body), {"Content-Type": "application/json"})
            b = s.infer("POST", "/predictions/native", json.dumps(body), {"Content-Type": "application/json"})
            assert a.status == 200 and b.status == 200, (a, b)
            ta, tb = torch.tensor(a.json()), torch.tensor(b.json())
            assert ta.shape == tb.shape
            assert torch.allclose(ta, tb, atol=1e-5), (ta, tb)
            assert torch.allclose(ta, net(x), atol=1e-5)
    # the same bad input gets the same class of answer from both
    for body in ('{"data": [[1, 2], [3]]}', '{"nothing": 1}'):
        a = s.infer("POST", "/predictions/eager", body, {"Content-Type": "application/json"})
        b = s.infer("POST", "/predictions/native", body, {"Content-Type": "application/json"})
        assert a.status == b.status == 400, (a, b)


EXPLAIN_PY = '''
import torch
from ts.torch_handler.base_handler import BaseHandler


class GradHandler(BaseHandler):
    """Predicts with the eager Net; explains with the gradient of output 0 wrt the input."""

    def preprocess(self, data):
        rows = []
        for row in data:
            body = row.get("data") or row.get("body")
            rows.append(torch.tensor(body, dtype=torch.float32))
        return torch.stack(rows)

    def postprocess(self, out):
        return out.tolist()

    def explain_handle(self, data_preprocess, raw_data):
        x = data_preprocess.clone().requires_grad_(True)
        with torch.enable_grad():
            self.model(x)[:, 0].sum().backward()
        return [{"grad": g.tolist()} for g in x.grad]
'''


def test_explain_handle_answers_explanations(serve, tmp_path):
    (tmp_path / "model.py").write_text(MODEL_PY)
    (tmp_path / "handler.py").write_text(EXPLAIN_PY)
    ns = {}
    exec(MODEL_PY, ns)
    torch.manual_seed(1)
    net = ns["Net"]().eval()
    torch.save(net.state_dict(), tmp_path / "net.pt")
    store = tmp_path / "store"
    store.mkdir()
    run_wick("pack", "--model-name", "grad", "--version", "1.0", "--serialized-file", tmp_path / "net.pt",
             "--model-file", tmp_path / "model.py", "--handler", tmp_path / "handler.py",
             "--export-path", store, "-f")
    s = serve("--model-store", store, "--models", "grad=grad.mar")
    x = [0.5, -1.0, 2.0, 0.25]
    p = s.infer("POST", "/predictions/grad", json.dumps(x), {"Content-Type": "application/json"})
    assert p.status == 200 and len(p.json()) == 2, p
    e = s.infer("POST", "/explanations/grad", json.dumps(x), {"Content-Type": "application/json"})
    assert e.status == 200, e
    assert torch.allclose(torch.tensor(e.json()["grad"]), net.fc.weight[0].detach(), atol=1e-6), e.json()
    # a prediction right after an explanation is a prediction again
    p2 = s.infer("POST", "/predictions/grad", json.dumps(x), {"Content-Type": "application/json"})
    assert p2.status == 200 and p2.json() == p.json()


@pytest.mark.badinput
def test_initialize_that_raises_fails_the_load_with_its_message(serve, tmp_path):
    (tmp_path / "h.py").write_text(
        "class H:\n"
        "    def initialize(self, context):\n"
        "        raise ValueError('no weights in ' + context.system_properties['model_dir'])\n"
        "    def handle(self, data, context):\n"
        "        return data\n")
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "dummy.txt").write_text("x")
    run_wick("pack", "--model-name", "h", "--version", "1.0", "--serialized-file", tmp_path / "dummy.txt",
             "--handler", tmp_path / "h.py", "--export-path", store, "-f")
    s = serve("--model-store", store, "--enable-model-api")
    r = s.mgmt("POST", "/models?url=h.mar&initial_workers=1&synchronous=true")
    assert r.status >= 400, r
    assert "ValueError: no weights in" in r.json()["message"], r.json()
    assert s.infer("POST", "/predictions/h", "x").status == 404
    assert s.infer("GET", "/ping").status == 200


@pytest.mark.badinput
def test_initialize_out_of_memory_is_507_and_text_answers_are_labelled(serve, tmp_path):
    """A MemoryError while loading is TorchServe's 507 on registration; a handler's str
    answer is labelled by what it is (TorchServe sends no Content-Type)."""
    (tmp_path / "oom.py").write_text(
        "class H:\n"
        "    def initialize(self, context):\n"
        "        raise MemoryError('weights too large')\n"
        "    def handle(self, data, context):\n"
        "        return data\n")
    (tmp_path / "text.py").write_text(
        "import json\n"
        "def handle(data, context):\n"
        "    if data is None:\n"
        "        return None\n"
        "    out = []\n"
        "    for row in data:\n"
        "        b = row['body']\n"
        "        b = b.decode() if isinstance(b, (bytes, bytearray)) else b\n"
        "        out.append({'ok': 'OK', 'json': json.dumps({'a': 1}), 'bin': b'\\xff\\x00'}[b])\n"
        "    return out\n")
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "dummy.txt").write_text("x")
    for name in ("oom", "text"):
        run_wick("pack", "--model-name", name, "--version", "1.0", "--serialized-file", tmp_path / "dummy.txt",
                 "--handler", tmp_path / f"{name}.py", "--export-path", store, "-f")
    s = serve("--model-store", store, "--enable-model-api")
    r = s.mgmt("POST", "/models?url=oom.mar&initial_workers=1&synchronous=true")
    assert r.status == 507, r
    assert "MemoryError" in r.json()["message"] and r.json()["type"] == "InternalServerException", r.json()
    assert s.mgmt("POST", "/models?url=text.mar&initial_workers=1&synchronous=true").status == 200
    for body, ctype, want in (("ok", "text/plain; charset=utf-8", b"OK"),
                              ("json", "application/json", b'{"a": 1}'),
                              ("bin", "application/octet-stream", b"\xff\x00")):
        r = s.infer("POST", "/predictions/text", body, {"Content-Type": "text/plain"})
        assert r.status == 200 and r.body == want, r
        assert r.headers["Content-Type"] == ctype, (body, r.headers)


@pytest.mark.badinput
def test_a_synchronous_scale_up_waits_for_the_load_and_reports_a_failed_one(serve, tmp_path):
    """synchronous=true answers once the new worker has loaded (TorchServe's meaning), and
    a worker whose handler cannot load makes it fail at once, not at the timeout."""
    import time

    (tmp_path / "slow.py").write_text(
        "import time\n"
        "class H:\n"
        "    def initialize(self, context):\n"
        "        time.sleep(2)\n"
        "    def handle(self, data, context):\n"
        "        return ['ok' for _ in data]\n")
    (tmp_path / "bad.py").write_text(
        "class H:\n"
        "    def initialize(self, context):\n"
        "        raise ValueError('cannot load this')\n"
        "    def handle(self, data, context):\n"
        "        return data\n")
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "dummy.txt").write_text("x")
    for name in ("slow", "bad"):
        run_wick("pack", "--model-name", name, "--version", "1.0", "--serialized-file", tmp_path / "dummy.txt",
                 "--handler", tmp_path / f"{name}.py", "--export-path", store, "-f")
    s = serve("--model-store", store, "--enable-model-api")
    for name in ("slow", "bad"):
        assert s.mgmt("POST", f"/models?url={name}.mar&initial_workers=0&synchronous=true").status == 200
    t0 = time.monotonic()
    r = s.mgmt("PUT", "/models/slow?min_worker=1&synchronous=true")
    assert r.status == 200 and time.monotonic() - t0 >= 1.8, (r, time.monotonic() - t0)
    assert s.infer("POST", "/predictions/slow", "x").status == 200  # no 503 right after
    t0 = time.monotonic()
    r = s.mgmt("PUT", "/models/bad?min_worker=1&synchronous=true")
    assert r.status == 500 and "failed to start" in r.json()["message"], r
    assert "cannot load this" in r.json()["message"] and time.monotonic() - t0 < 30, r
