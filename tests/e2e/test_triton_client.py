"""Triton's own Python client (tritonclient.http, sync and asyncio) against wick, as a
Triton user would drive it: health and metadata, model configuration and statistics, the
model repository API, inference with binary and JSON tensors (FP32, INT64, BYTES) on
native and Python models, compressed requests and replies, and its errors."""
import asyncio
import gzip
import json
import time
import zlib

import numpy as np
import pytest
import torch

import tritonclient.http as httpclient
import tritonclient.http.aio as aioclient
from tritonclient.utils import InferenceServerException

from conftest import Server, pack
from models import MLP, Embed, save_script

# Echoes BYTES elements back, upper-cased, as one BYTES output.
BYTES_PY = '''
import base64


def handle(data, context):
    if data is None:
        return None
    out = []
    for row in data:
        inp = row["body"]["inputs"][0]
        vals = inp["data"]
        if (inp.get("parameters") or {}).get("content_encoding") == "base64":
            vals = [base64.b64decode(v).hex() for v in vals]
        out.append({"outputs": [{"name": "upper", "datatype": "BYTES", "shape": [len(vals)],
                                 "data": [v.upper() for v in vals]}]})
    return out
'''

# Numeric outputs written as JSON by a Python handler, one of them out of its range.
NUMERIC_PY = '''
def handle(data, context):
    if data is None:
        return None
    out = []
    for row in data:
        x = row["body"]["inputs"][0]["data"]
        out.append({"outputs": [
            {"name": "double", "datatype": "FP32", "shape": [len(x)], "data": [2 * v for v in x]},
            {"name": "half", "datatype": "FP16", "shape": [len(x)], "data": [v / 2 for v in x]},
            {"name": "count", "datatype": "UINT16", "shape": [1], "data": [len(x)]},
            {"name": "bad", "datatype": "INT8", "shape": [1], "data": [1000]}]})
    return out
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("tritonstore")
    models = {"mlp": save_script(MLP, d / "mlp.pt"), "embed": save_script(Embed, d / "embed.pt")}
    cfg = d / "mlp.yaml"
    cfg.write_text("batchSize: 8\nmaxBatchDelay: 5\nminWorkers: 2\n")
    pack(d, "mlp", d / "mlp.pt", config=cfg)
    ecfg = d / "embed.yaml"
    ecfg.write_text("wick:\n  inputs:\n    - {name: idx, datatype: INT64, shape: [-1, 3]}\n")
    pack(d, "embed", d / "embed.pt", config=ecfg)
    pack(d, "embedraw", d / "embed.pt")  # nothing declared: forward's use says int64
    (d / "bytes.py").write_text(BYTES_PY)
    (d / "dummy.txt").write_text("x")
    pack(d, "upper", d / "dummy.txt", handler=d / "bytes.py")
    (d / "numeric.py").write_text(NUMERIC_PY)
    pack(d, "numeric", d / "dummy.txt", handler=d / "numeric.py")
    pack(d, "spare", d / "mlp.pt")  # in the store, not loaded: the repository API's
    s = Server(["--model-store", d, "--models", "mlp=mlp.mar", "embed=embed.mar", "embedraw=embedraw.mar", "upper=upper.mar",
                "numeric=numeric.mar", "--enable-model-api"], tmp_path_factory.mktemp("tritonlog") / "wick.log")
    s.models = models
    yield s
    assert s.stop() == 0, s.logs()[-4000:]


@pytest.fixture
def client(server):
    c = httpclient.InferenceServerClient(f"127.0.0.1:{server.ports['inference']}")
    yield c
    c.close()


def mlp_input(x, binary=True):
    i = httpclient.InferInput("INPUT__0", list(x.shape), "FP32")
    i.set_data_from_numpy(x, binary_data=binary)
    return i


def test_health_metadata_and_config(server, client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mlp") and not client.is_model_ready("nothere")
    assert client.get_server_metadata()["name"] == "wick"
    meta = client.get_model_metadata("embed")
    assert meta["inputs"] == [{"name": "idx", "datatype": "INT64", "shape": [-1, 3]}], meta
    raw = client.get_model_metadata("embedraw")
    assert raw["inputs"][0]["datatype"] == "INT64", raw  # the indices of an embedding
    assert client.get_model_metadata("mlp")["inputs"][0]["datatype"] == "FP32"
    cfg = client.get_model_config("mlp")
    assert cfg["name"] == "mlp" and cfg["max_batch_size"] == 8 and cfg["platform"] == "pytorch_libtorch"
    assert cfg["input"][0]["name"] == "x" and cfg["input"][0]["data_type"] == "TYPE_FP32", cfg
    assert cfg["input"][0]["dims"] == [-1] and cfg["output"][0]["name"] == "OUTPUT__0", cfg
    assert cfg["dynamic_batching"]["max_queue_delay_microseconds"] == 5000, cfg
    assert cfg["instance_group"][0]["count"] == 2 and cfg["instance_group"][0]["kind"] == "KIND_CPU", cfg
    ecfg = client.get_model_config("embed")
    assert ecfg["input"][0]["data_type"] == "TYPE_INT64" and ecfg["input"][0]["dims"] == [3], ecfg
    assert client.get_model_config("upper")["backend"] == "python"
    with pytest.raises(InferenceServerException, match="nothere"):
        client.get_model_config("nothere")


def test_infer_binary_and_json_and_statistics(server, client):
    before = client.get_inference_statistics("mlp")["model_stats"][0]
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    want = server.models["mlp"](torch.from_numpy(x)).detach().numpy()
    for binary in (True, False):
        out = httpclient.InferRequestedOutput("OUTPUT__0", binary_data=binary)
        r = client.infer("mlp", [mlp_input(x, binary)], outputs=[out], request_id="r1")
        assert np.allclose(r.as_numpy("OUTPUT__0"), want, atol=1e-5)
        assert r.get_response()["id"] == "r1"
    # the worker records a batch just after it answered: wait for the second one
    deadline = time.time() + 10
    while True:
        after = client.get_inference_statistics("mlp")["model_stats"][0]
        if after["inference_count"] - before["inference_count"] >= 2 or time.time() > deadline:
            break
        time.sleep(0.05)
    assert after["name"] == "mlp" and after["version"] == "1.0"
    assert after["inference_count"] - before["inference_count"] == 2
    assert after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"] == 2
    assert after["inference_stats"]["compute_infer"]["ns"] > before["inference_stats"]["compute_infer"]["ns"]
    assert after["last_inference"] > 0 and any(b["batch_size"] == 1 for b in after["batch_stats"])
    every = client.get_inference_statistics()["model_stats"]
    assert {s["name"] for s in every} >= {"mlp", "embed", "upper"}


def test_int64_and_bytes(server, client):
    idx = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
    i = httpclient.InferInput("idx", [2, 3], "INT64")
    i.set_data_from_numpy(idx, binary_data=True)
    r = client.infer("embed", [i])
    want = server.models["embed"](torch.from_numpy(idx)).detach().numpy()
    assert np.allclose(r.as_numpy("OUTPUT__0"), want, atol=1e-6)
    # binary BYTES to a Python handler: UTF-8 elements as strings, others base64
    for data, expect in ((np.array([b"ab", b"c"], dtype=np.object_), [b"AB", b"C"]),
                         (np.array([b"\xff\x00"], dtype=np.object_), [b"FF00"])):
        b = httpclient.InferInput("text", [len(data)], "BYTES")
        b.set_data_from_numpy(data, binary_data=True)
        r = client.infer("upper", [b], outputs=[httpclient.InferRequestedOutput("upper", binary_data=True)])
        got = [v if isinstance(v, bytes) else v.encode() for v in r.as_numpy("upper")]
        assert got == expect


def test_python_handler_outputs_in_binary(server, client):
    """A Python handler answers in JSON; a client that asks for binary outputs gets them
    as the binary tensor data extension, each in the datatype the handler named."""
    x = np.array([1.0, -3.0, 0.25], dtype=np.float32)
    i = httpclient.InferInput("x", [3], "FP32")
    i.set_data_from_numpy(x, binary_data=True)
    outs = [httpclient.InferRequestedOutput(n, binary_data=True) for n in ("half", "double", "count")]
    r = client.infer("numeric", [i], outputs=outs)
    assert [o["name"] for o in r.get_response()["outputs"]] == ["half", "double", "count"]
    assert all("data" not in o and o["parameters"]["binary_data_size"] > 0 for o in r.get_response()["outputs"])
    assert r.as_numpy("half").dtype == np.float16 and r.as_numpy("half").tolist() == [0.5, -1.5, 0.125]
    assert r.as_numpy("double").dtype == np.float32 and r.as_numpy("double").tolist() == [2.0, -6.0, 0.5]
    assert r.as_numpy("count").dtype == np.uint16 and r.as_numpy("count").tolist() == [3]

    # on the wire: JSON, then the outputs' bytes in order, the split in the header
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [4.0]}],
            "parameters": {"binary_data_output": True},
            "outputs": [{"name": "count"}, {"name": "double", "parameters": {"binary_data": False}}]}
    raw = server.infer("POST", "/v2/models/numeric/infer", json.dumps(body), {"Content-Type": "application/json"})
    assert raw.status == 200, raw.body
    assert raw.headers["Content-Type"] == "application/octet-stream"
    n = int(raw.headers["Inference-Header-Content-Length"])
    head = json.loads(raw.body[:n])
    assert head["model_name"] == "numeric"
    assert head["outputs"][0] == {"name": "count", "datatype": "UINT16", "shape": [1],
                                  "parameters": {"binary_data_size": 2}}
    assert head["outputs"][1]["data"] == [8.0] and len(head["outputs"]) == 2
    assert raw.body[n:] == b"\x01\x00"

    # nothing asked in binary: the handler's JSON as it wrote it, every output
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [4.0]}]}
    raw = server.infer("POST", "/v2/models/numeric/infer", json.dumps(body), {"Content-Type": "application/json"})
    assert raw.status == 200 and raw.headers["Content-Type"] == "application/json"
    assert [o["name"] for o in raw.json()["outputs"]] == ["double", "half", "count", "bad"]


@pytest.mark.badinput
def test_python_handler_outputs_that_cannot_be_binary(server, client):
    i = httpclient.InferInput("x", [1], "FP32")
    i.set_data_from_numpy(np.ones(1, dtype=np.float32), binary_data=True)
    # 1000 is no INT8: the handler's fault, said as such
    with pytest.raises(InferenceServerException) as e:
        client.infer("numeric", [i], outputs=[httpclient.InferRequestedOutput("bad", binary_data=True)])
    assert "cannot be sent as binary data" in str(e.value) and "'bad'" in str(e.value), str(e.value)
    assert "out of the range of INT8" in str(e.value)
    # an output the handler did not write: the client's mistake
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}],
            "outputs": [{"name": "nothere"}]}
    raw = server.infer("POST", "/v2/models/numeric/infer", json.dumps(body), {"Content-Type": "application/json"})
    assert raw.status == 400 and "no output 'nothere'" in raw.json()["error"], raw.body
    # the same output asked in JSON goes through as the handler wrote it
    body["outputs"] = [{"name": "bad"}]
    raw = server.infer("POST", "/v2/models/numeric/infer", json.dumps(body), {"Content-Type": "application/json"})
    assert raw.status == 200 and raw.json()["outputs"] == [{"name": "bad", "datatype": "INT8", "shape": [1],
                                                            "data": [1000]}], raw.body


@pytest.mark.badinput
def test_compressed_requests_and_replies(server, client):
    x = np.ones((4, 16), dtype=np.float32)
    want = server.models["mlp"](torch.from_numpy(x)).detach().numpy()
    for req_alg in (None, "gzip", "deflate"):
        for resp_alg in (None, "gzip", "deflate"):
            r = client.infer("mlp", [mlp_input(x, binary=False)], request_compression_algorithm=req_alg,
                             response_compression_algorithm=resp_alg)
            assert np.allclose(r.as_numpy("OUTPUT__0"), want, atol=1e-5), (req_alg, resp_alg)
    # on the wire: the reply says its coding
    body = json.dumps({"inputs": [{"name": "INPUT__0", "shape": [4, 16], "datatype": "FP32",
                                   "data": x.flatten().tolist()}]}).encode()
    r = server.infer("POST", "/v2/models/mlp/infer", gzip.compress(body),
                     {"Content-Encoding": "gzip", "Accept-Encoding": "gzip"})
    assert r.status == 200 and r.headers.get("Content-Encoding") == "gzip", r
    assert json.loads(gzip.decompress(r.body))["outputs"][0]["shape"] == [4, 4]
    # bad codings are the client's error, and the server goes on
    r = server.infer("POST", "/v2/models/mlp/infer", b"not gzip", {"Content-Encoding": "gzip"})
    assert r.status == 400 and "not valid" in r.json()["error"], r
    r = server.infer("POST", "/v2/models/mlp/infer", body, {"Content-Encoding": "br"})
    assert r.status == 415 and "not supported" in r.json()["error"], r
    bomb = zlib.compress(b"\0" * (20 << 20))  # 20 MiB of zeros in ~20 KB: past max_request_size
    r = server.infer("POST", "/v2/models/mlp/infer", bomb, {"Content-Encoding": "deflate"})
    assert r.status == 413 and "max_request_size" in r.json()["error"], r
    assert client.is_server_live()


def test_repository_index_load_and_unload(server, client):
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert index["mlp"]["state"] == "READY" and index["mlp"]["version"] == "1.0"
    assert index["spare"] == {"name": "spare", "state": "UNAVAILABLE", "reason": "unloaded"}
    client.load_model("spare")
    assert client.is_model_ready("spare")
    x = np.ones((1, 16), dtype=np.float32)
    assert client.infer("spare", [mlp_input(x)]).as_numpy("OUTPUT__0").shape == (1, 4)
    client.load_model("spare")  # loaded already: left as it is
    client.unload_model("spare")
    assert not client.is_model_ready("spare")
    with pytest.raises(InferenceServerException, match="no nothere.mar"):
        client.load_model("nothere")
    with pytest.raises(InferenceServerException, match="not loaded"):
        client.unload_model("nothere")


def test_errors_reach_the_client(server, client):
    with pytest.raises(InferenceServerException, match="nothere"):
        client.infer("nothere", [mlp_input(np.ones((1, 16), dtype=np.float32))])
    bad = np.ones((1, 5), dtype=np.float32)
    with pytest.raises(InferenceServerException) as e:
        client.infer("mlp", [mlp_input(bad)])
    assert "16" in str(e.value) or "shape" in str(e.value), str(e.value)


def test_asyncio_client(server):
    async def run():
        async with aioclient.InferenceServerClient(f"127.0.0.1:{server.ports['inference']}") as c:
            assert await c.is_server_ready()
            x = np.random.default_rng(1).standard_normal((2, 16)).astype(np.float32)
            inp = aioclient.InferInput("INPUT__0", [2, 16], "FP32")
            inp.set_data_from_numpy(x)
            rs = await asyncio.gather(*[c.infer("mlp", [inp]) for _ in range(8)])
            cfg = await c.get_model_config("mlp")
            stats = await c.get_inference_statistics("mlp")
            return x, [r.as_numpy("OUTPUT__0") for r in rs], cfg, stats
    x, outs, cfg, stats = asyncio.run(run())
    want = server.models["mlp"](torch.from_numpy(x)).detach().numpy()
    assert all(np.allclose(o, want, atol=1e-5) for o in outs)
    assert cfg["max_batch_size"] == 8 and stats["model_stats"][0]["execution_count"] >= 1
