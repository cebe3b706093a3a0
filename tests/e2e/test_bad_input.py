"""Bad input, end to end: every case gets a clear error and the server keeps serving.
This file also runs against the ASan+UBSan build (tests/e2e/run.sh)."""
import json
import os
import socket
import zipfile

import pytest
import torch

from conftest import SANITIZED, pack
from models import MLP, save_script

pytestmark = pytest.mark.badinput


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("store")
    src = tmp_path_factory.mktemp("src")
    save_script(MLP, src / "mlp.pt")
    pack(d, "mlp", src / "mlp.pt")
    return d


@pytest.fixture
def server(serve, store):
    return serve("--model-store", store, "--models", "mlp=mlp.mar", "--max_request_size", "20000")


def assert_error(r, status, *fragments):
    assert r.status == status, r
    body = r.json()
    assert body["code"] == status and body["type"], body
    for f in fragments:
        assert f in body["message"], (f, body["message"])
    return body["message"]


def still_serves(s):
    r = s.infer("POST", "/predictions/mlp", [[0.5] * 16])
    assert r.status == 200, r


def test_malformed_json_says_where(server):
    r = server.infer("POST", "/predictions/mlp", '{"data": [[1, 2,, 3]]}')
    assert_error(r, 400, "line 1", "column")
    r = server.infer("POST", "/predictions/mlp", '[\n  [1, 2],\n  [3, x]\n]')
    assert_error(r, 400, "line 3")
    r = server.infer("POST", "/predictions/mlp", "")
    assert_error(r, 400)
    still_serves(server)


def test_ragged_list(server):
    r = server.infer("POST", "/predictions/mlp", [[0.0] * 16, [0.0] * 15])
    assert_error(r, 400, "ragged")
    still_serves(server)


def test_wrong_shape_is_the_clients_fault(server):
    r = server.infer("POST", "/predictions/mlp", [[0.0] * 15])
    msg = assert_error(r, 400, "model rejected the input: ")
    assert "15" in msg and "16" in msg, msg  # libtorch names both shapes
    assert "received input 0: float32 [1,15]" in msg, msg
    assert "\n" not in msg
    r = server.infer("POST", "/predictions/mlp", {"data": [[1] * 16], "dtype": "int64"})
    assert_error(r, 400, "model rejected the input: ")
    still_serves(server)


def test_body_too_large_is_413_before_reading_it(server):
    # Content-Length says 50 MB but we send only the headers: wick must answer without
    # waiting for the body.
    with socket.create_connection(("127.0.0.1", server.ports["inference"]), timeout=10) as c:
        c.sendall(b"POST /predictions/mlp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 50000000\r\n\r\n")
        data = c.recv(65536).decode()
    assert data.startswith("HTTP/1.1 413"), data
    assert "max_request_size" in data
    r = server.infer("POST", "/predictions/mlp", "[" + ",".join(["0.0"] * 5000) + "]")
    assert_error(r, 413, "max_request_size")
    still_serves(server)


def test_unknown_model_and_version(server):
    assert_error(server.infer("POST", "/predictions/nope", [[0.0] * 16]), 404, "nope")
    assert_error(server.infer("POST", "/predictions/mlp/9.9", [[0.0] * 16]), 404, "9.9")
    assert_error(server.mgmt("GET", "/models/nope"), 404, "nope")
    assert server.infer("GET", "/nowhere").status == 404
    # TorchServe hands a prediction route any method: a GET reaches the model, whose
    # handler says what it lacks; a wrong method on an unknown model is that model's 404
    assert_error(server.infer("GET", "/predictions/mlp"), 400, "empty body")
    assert_error(server.infer("GET", "/predictions/nope"), 404, "nope")
    assert server.infer("DELETE", "/v2/models/mlp/infer").status == 405
    still_serves(server)


def test_non_numeric_values(server):
    assert_error(server.infer("POST", "/predictions/mlp", [["a"] * 16]), 400)
    assert_error(server.infer("POST", "/predictions/mlp", {"dtype": "float32"}), 400)
    assert_error(server.infer("POST", "/predictions/mlp", {"data": [[0.0] * 16], "dtype": "complex"}), 400, "complex")
    still_serves(server)


def test_broken_and_missing_archives_do_not_stop_the_others(serve, store, tmp_path):
    bad = tmp_path / "store"
    bad.mkdir()
    (bad / "mlp.mar").write_bytes((store / "mlp.mar").read_bytes())
    data = (store / "mlp.mar").read_bytes()
    (bad / "truncated.mar").write_bytes(data[: len(data) // 2])
    (bad / "garbage.mar").write_bytes(os.urandom(3000))
    with zipfile.ZipFile(bad / "evil.mar", "w") as z:
        z.writestr("MAR-INF/MANIFEST.json", json.dumps({"runtime": "python", "model": {
            "modelName": "evil", "serializedFile": "mlp.pt", "handler": "tensor"}}))
        z.writestr("../escape.py", "print('pwned')")
    with zipfile.ZipFile(bad / "python.mar", "w") as z:
        z.writestr("MAR-INF/MANIFEST.json", json.dumps({"runtime": "python", "model": {
            "modelName": "python", "serializedFile": "m.pt", "handler": "my_handler.py",
            "modelFile": "model.py"}}))
        z.writestr("m.pt", "x")
    s = serve("--model-store", bad, "--models", "mlp=mlp.mar", "truncated=truncated.mar",
              "garbage=garbage.mar", "missing=missing.mar", "evil=evil.mar", "python=python.mar")
    still_serves(s)
    logs = s.logs()
    for name in ("truncated", "garbage", "missing", "evil", "python"):
        assert f"model {name} not loaded" in logs, logs
        assert_error(s.infer("POST", f"/predictions/{name}", [[0.0] * 16]), 404)
    assert "../escape.py" in logs
    assert "there is no my_handler.py in the model directory" in logs  # the Python worker says why
    assert not (tmp_path / "escape.py").exists()
    assert [m["modelName"] for m in s.mgmt("GET", "/models").json()["models"]] == ["mlp"]


def test_many_bad_requests_then_good_ones(server):
    bodies = ["{", "[[1,2],[3]]", '{"instances": [[1], [1, 2]]}', "[" * 100 + "]" * 100,
              '{"inputs": {"zzz": [[1.0]]}}', "nan", "[1e999999]", '"str"', "[true, false]"]
    for b in bodies * 5:
        r = server.infer("POST", "/predictions/mlp", b)
        assert 400 <= r.status < 500, (b, r)
        assert "message" in r.json()
    still_serves(server)


class Greedy(torch.nn.Module):
    """Asks for 2**30 floats times its input's first value: 65536 of them is 256 TB."""

    def forward(self, x):
        n = int(x[0, 0].item())
        return x + torch.zeros([n, 1 << 30]).sum()


@pytest.mark.skipif(SANITIZED, reason="ASan aborts on an allocation this large, by design")
def test_out_of_memory_in_forward_is_507_and_the_model_keeps_serving(serve, tmp_path):
    torch.jit.script(Greedy().eval()).save(str(tmp_path / "greedy.pt"))
    store = tmp_path / "store"
    store.mkdir()
    pack(store, "greedy", tmp_path / "greedy.pt")
    s = serve("--model-store", store, "--models", "greedy=greedy.mar")
    r = s.infer("POST", "/predictions/greedy", [[65536.0]])
    msg = assert_error(r, 507, "out of memory in forward()")
    assert r.json()["type"] == "OutOfMemoryException"
    assert "can't allocate memory" in msg or "not enough memory" in msg, msg
    r = s.infer("POST", "/predictions/greedy", [[0.0]])
    assert r.status == 200 and r.json() == [[0.0]], r
    # the same map on the KServe routes: v1 and v2 carry the status with {"error": ...}
    r = s.infer("POST", "/v1/models/greedy:predict", {"instances": [[65536.0]]})
    assert r.status == 507 and "out of memory" in r.json()["error"], r
