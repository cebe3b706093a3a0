"""What a TorchServe user meets and wick now answers the same way (tests/compat found each):
the parameters a Python handler sees (query arguments, urlencoded and multipart forms),
TorchServe's older prediction routes, a handler that cannot start, management parameters
read as TorchServe reads them, and the per-model API description."""
import json
import urllib.parse

import pytest

from conftest import pack

# Echoes what the handler got: each key of each row, with the Python type of its value.
ECHO_PY = '''
def handle(data, context):
    if data is None:
        return None
    out = []
    for row in data:
        seen = {}
        for k, v in row.items():
            if isinstance(v, (bytes, bytearray)):
                v = v.decode("latin-1")
            seen[k] = [type(row[k]).__name__, v]
        seen["explain"] = context.get_request_header(0, "explain")
        out.append(seen)
    return out
'''

FAILING_PY = '''
class H:
    def initialize(self, context):
        raise RuntimeError("this handler cannot start")

    def handle(self, data, context):
        return data
'''


@pytest.fixture
def srv(serve, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "echo.py").write_text(ECHO_PY)
    (tmp_path / "failing.py").write_text(FAILING_PY)
    (tmp_path / "dummy.txt").write_text("x")
    pack(store, "echo", tmp_path / "dummy.txt", handler=tmp_path / "echo.py")
    pack(store, "failing", tmp_path / "dummy.txt", handler=tmp_path / "failing.py")
    return serve("--model-store", store, "--models", "echo=echo.mar", "--enable-model-api")


@pytest.mark.badinput
def test_query_arguments_and_forms_become_the_handlers_parameters(srv):
    # the query's arguments first, then the body as "body" with its type
    r = srv.infer("POST", "/predictions/echo?model_name=x&k=v%20w", '{"a": 1}',
                  {"Content-Type": "application/json"})
    assert r.status == 200, r
    assert r.json() == {"model_name": ["bytearray", "x"], "k": ["bytearray", "v w"],
                        "body": ["dict", {"a": 1}], "explain": None}, r.json()
    # an urlencoded form: one parameter per field, decoded, as bytearrays
    form = urllib.parse.urlencode({"data": '{"x": [1, 2]}', "target": "3"})
    r = srv.infer("POST", "/predictions/echo", form,
                  {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200 and r.json() == {"data": ["bytearray", '{"x": [1, 2]}'],
                                            "target": ["bytearray", "3"], "explain": None}, r.json()
    # a body that is not key=value pairs is one field with an empty value (as Netty reads it)
    r = srv.infer("POST", "/predictions/echo", '{"a": 1}',
                  {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200 and r.json() == {'{"a": 1}': ["bytearray", ""], "explain": None}, r.json()
    # a bad escape is the client's error, named
    r = srv.infer("POST", "/predictions/echo", "a=%zz",
                  {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 400 and "bad %-escape at byte 2" in r.json()["message"], r
    # multipart fields keep their names; a text part is text
    body = (b"--B\r\nContent-Disposition: form-data; name=\"img\"\r\nContent-Type: text/plain\r\n\r\n"
            b"hi\r\n--B--\r\n")
    r = srv.infer("POST", "/predictions/echo?n=1", body, {"Content-Type": "multipart/form-data; boundary=B"})
    assert r.status == 200 and r.json() == {"n": ["bytearray", "1"], "img": ["str", "hi"],
                                            "explain": None}, r.json()
    assert srv.infer("GET", "/ping").json() == {"status": "Healthy"}


def test_torchserves_older_routes(srv):
    want = {"body": ["dict", {"a": 1}], "explain": None}
    hdr = {"Content-Type": "application/json"}
    for path in ("/echo/predict", "/echo/1.0/predict", "/models/echo/invoke"):
        r = srv.infer("POST", path, '{"a": 1}', hdr)
        assert r.status == 200 and r.json() == want, (path, r)
    # SageMaker's /invocations: model_name names the model (and reaches the handler too),
    # else the one model loaded at startup
    r = srv.infer("POST", "/invocations?model_name=echo", '{"a": 1}', hdr)
    assert r.status == 200 and r.json() == {"model_name": ["bytearray", "echo"], **want}, r
    r = srv.infer("POST", "/invocations", '{"a": 1}', hdr)
    assert r.status == 200 and r.json() == want, r
    # any method reaches a prediction route; an unknown model is 404 whatever the method
    r = srv.infer("GET", "/predictions/echo")
    assert r.status == 200 and r.json()["body"] == ["bytearray", ""], r
    r = srv.infer("GET", "/predictions/nothere")
    assert r.status == 404 and r.json()["type"] == "ModelNotFoundException", r
    r = srv.infer("POST", "/nothere/predict", "{}", hdr)
    assert r.status == 404 and r.json()["type"] == "ModelNotFoundException", r
    assert srv.infer("DELETE", "/ping").json() == {"status": "Healthy"}
    # v2 explain reaches the handler's explanation
    v2 = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
    r = srv.infer("POST", "/v2/models/echo/explain", json.dumps(v2), hdr)
    assert r.status == 200 and json.loads(r.json()["outputs"][0]["data"][0])["explain"] == "True", r
    r = srv.infer("POST", "/v2/models/echo/infer", json.dumps(v2), hdr)
    assert r.status == 200 and json.loads(r.json()["outputs"][0]["data"][0])["explain"] is None, r
    # OPTIONS on a model: the routes it predicts through
    doc = srv.infer("OPTIONS", "/predictions/echo").json()
    assert set(doc["paths"]) == {"/predictions/{model_name}", "/v1/models/{model_name}:predict",
                                 "/v2/models/{model_name}/infer"}, doc["paths"].keys()
    assert srv.infer("OPTIONS", "/predictions/nothere").status == 404


def test_with_two_models_invocations_needs_a_name(srv):
    assert srv.mgmt("POST", "/models?url=failing.mar&initial_workers=0").status == 200
    r = srv.infer("POST", "/invocations", "{}", {"Content-Type": "application/json"})
    assert r.status == 200  # failing was registered through the API, not at startup
    assert srv.mgmt("POST", "/models?url=echo.mar&model_name=echo2&initial_workers=1").status == 200
    r = srv.infer("POST", "/invocations?model_name=echo2", "{}", {"Content-Type": "application/json"})
    assert r.status == 200, r


def test_a_handler_that_cannot_start(srv):
    # no worker asked for: registered, the handler not run (as TorchServe)
    r = srv.mgmt("POST", "/models?url=failing.mar&initial_workers=0&synchronous=true")
    assert r.status == 200 and "registered with 0 initial workers" in r.json()["status"], r
    (d,) = srv.mgmt("GET", "/models/failing").json()
    assert d["minWorkers"] == 0 and d["workers"] == [], d
    r = srv.infer("POST", "/predictions/failing", "{}")
    assert r.status == 503 and r.json()["type"] == "ServiceUnavailableException", r
    assert srv.mgmt("DELETE", "/models/failing").status == 200
    # a worker asked for: TorchServe's 500, with the handler's own message
    r = srv.mgmt("POST", "/models?url=failing.mar&initial_workers=1&synchronous=true")
    assert r.status == 500 and r.json()["type"] == "InternalServerException", r
    assert "this handler cannot start" in r.json()["message"], r.json()
    assert srv.mgmt("GET", "/models/failing").status == 404
    assert srv.infer("POST", "/predictions/echo", "{}").status == 200


def test_register_parameters_read_as_torchserve_reads_them(srv):
    # not a number: the default, with a warning naming the value
    r = srv.mgmt("POST", "/models?url=echo.mar&model_name=e1&batch_size=dd&initial_workers=1"
                         "&synchronous=true")
    assert r.status == 200, r
    assert srv.mgmt("GET", "/models/e1").json()[0]["batchSize"] == 1
    assert "batch_size='dd' is not an integer; ignored" in srv.logs()
    # synchronous is true only when it says true
    r = srv.mgmt("POST", "/models?url=echo.mar&model_name=e2&initial_workers=1&synchronous=-1")
    assert r.status == 202 and r.json() == {"status": "Processing worker updates..."}, r
    # a negative count of workers is none
    r = srv.mgmt("POST", "/models?url=echo.mar&model_name=e3&initial_workers=-1&synchronous=true")
    assert r.status == 200 and "registered with 0 initial workers" in r.json()["status"], r
    # startup_timeout=0 gives a worker no time: TorchServe's 500, said plainly
    r = srv.mgmt("POST", "/models?url=echo.mar&model_name=e4&initial_workers=1&startup_timeout=0")
    assert r.status == 500 and "startup_timeout=0" in r.json()["message"], r
    assert srv.mgmt("GET", "/models/e4").status == 404
    # scale: max < min is checked before the model, as in TorchServe
    r = srv.mgmt("PUT", "/models/nothere?min_worker=2&max_worker=1")
    assert r.status == 400 and r.json()["message"] == "max_worker cannot be less than min_worker.", r
    r = srv.mgmt("PUT", "/models/nothere?min_worker=-1")
    assert r.status == 404, r
    r = srv.mgmt("PUT", "/models/e1?min_worker=-1")
    assert r.status == 400 and "from 0 to" in r.json()["message"], r
    # a JSON body is typed: a string where a number belongs is an error
    r = srv.mgmt("POST", "/models", json.dumps({"url": "echo.mar", "batch_size": "dd"}),
                 headers={"Content-Type": "application/json"})
    assert r.status == 400 and "batch_size must be an integer" in r.json()["message"], r


def families(text):
    """{metric name: [label dicts]} of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition("{")
        labels = dict(kv.split("=", 1) for kv in rest.rsplit("}", 1)[0].split(",") if "=" in kv)
        out.setdefault(name.split(" ")[0], []).append({k: v.strip('"') for k, v in labels.items()})
    return out


def test_metrics_in_torchserves_form(srv):
    import socket
    import time
    assert srv.infer("POST", "/predictions/echo", "{}").status == 200
    deadline = time.time() + 10  # the handler's metrics arrive on its log, just after the reply
    while True:
        fam = families(srv.metrics().body.decode())
        if "PredictionTime" in fam or time.time() > deadline:
            break
        time.sleep(0.05)
    host = socket.gethostname()
    # TorchServe's host gauges, labelled as TorchServe labels them
    for name in ("CPUUtilization", "MemoryUsed", "MemoryAvailable", "MemoryUtilization", "DiskUsage",
                 "DiskAvailable", "DiskUtilization", "QueueTime", "WorkerThreadTime"):
        assert fam.get(name) == [{"Level": "Host", "Hostname": host}], (name, fam.get(name))
    loads = fam["WorkerLoadTime"]  # one per worker
    assert "W-9000-echo_1.0" in {w["WorkerName"] for w in loads}, loads
    assert all(w["Hostname"] == host and w["WorkerName"].endswith("-echo_1.0") for w in loads), loads
    (req,) = fam["ts_inference_requests_total"]
    assert req == {"model_name": "echo", "model_version": "1.0", "hostname": host}, req
    pred = fam["PredictionTime"][0]
    assert pred["ModelName"] == "echo" and pred["Level"] == "Model" and pred["Hostname"] == host, pred
    # name[] keeps only the families asked for, as TorchServe's filter does
    r = srv.metrics_query("?name[]=ts_inference_requests_total&name[]=MemoryUsed")
    assert set(families(r.body.decode())) == {"ts_inference_requests_total", "MemoryUsed"}, r.body
    assert b"# TYPE MemoryUsed gauge" in r.body and b"# TYPE CPUUtilization" not in r.body
    r = srv.metrics_query("?name[]=nothing_like_it")
    assert r.status == 200 and r.body == b"", r


DESCRIBED_PY = '''
import json
from ts.torch_handler.base_handler import BaseHandler


class H(BaseHandler):
    def initialize(self, context):
        self.initialized = True

    def describe_handle(self):
        return json.dumps({"classes": ["a", "b"], "trained": "2026"})

    def handle(self, data, context):
        self.context = context
        if self._is_describe():
            return [self.describe_handle()]
        return [len(data)] * len(data)
'''


def test_describe_with_customized_metadata(serve, tmp_path):
    store = tmp_path / "store2"
    store.mkdir()
    (tmp_path / "d.py").write_text(DESCRIBED_PY)
    (tmp_path / "echo.py").write_text(ECHO_PY)
    (tmp_path / "dummy.txt").write_text("x")
    pack(store, "d", tmp_path / "dummy.txt", handler=tmp_path / "d.py")
    pack(store, "echo", tmp_path / "dummy.txt", handler=tmp_path / "echo.py")
    s = serve("--model-store", store, "--models", "d=d.mar", "echo=echo.mar")
    (desc,) = s.mgmt("GET", "/models/d?customized=true").json()
    assert desc["customizedMetadata"] == {"classes": ["a", "b"], "trained": "2026"}, desc
    assert desc["modelName"] == "d" and desc["workers"], desc
    (plain,) = s.mgmt("GET", "/models/d").json()
    assert "customizedMetadata" not in plain
    (v,) = s.mgmt("GET", "/models/d/1.0?customized=true").json()
    assert v["customizedMetadata"]["trained"] == "2026"
    # a handler without describe_handle of its own: {} (BaseHandler's answers None)
    r = s.infer("POST", "/predictions/d", "{}")
    assert r.status == 200, r


TYPED_PY = '''
def handle(data, context):
    if data is None:
        return None
    kind = data[0]["body"].decode() if isinstance(data[0]["body"], (bytes, bytearray)) else "json"
    if kind == "text":
        context.set_response_content_type(0, "text/plain")
    elif kind == "header":
        context.set_response_header(0, "Content-Type", "text/csv")
    return ["a,b"]
'''


def test_a_content_type_the_handler_sets_is_sent_once(serve, tmp_path):
    import http.client
    store = tmp_path / "store3"
    store.mkdir()
    (tmp_path / "t.py").write_text(TYPED_PY)
    (tmp_path / "dummy.txt").write_text("x")
    pack(store, "t", tmp_path / "dummy.txt", handler=tmp_path / "t.py")
    s = serve("--model-store", store, "--models", "t=t.mar")
    for body, want in (("text", "text/plain"), ("header", "text/csv")):
        c = http.client.HTTPConnection("127.0.0.1", s.ports["inference"], timeout=30)
        c.request("POST", "/predictions/t", body=body, headers={"Content-Type": "application/octet-stream"})
        r = c.getresponse()
        r.read()
        types = [v for k, v in r.getheaders() if k.lower() == "content-type"]
        c.close()
        assert r.status == 200 and types == [want], (body, r.getheaders())
