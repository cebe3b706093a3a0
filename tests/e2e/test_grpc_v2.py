"""[12] parts 3 and 4: KServe v2 over gRPC, driven by Triton's own gRPC client
(tritonclient.grpc, sync and async) as a Triton user would: health, metadata, model
configuration and statistics, inference with FP32, INT64 and BYTES tensors on native and
Python models, typed `contents` as well as raw bytes, errors; every answer compared with
the HTTP v2 route's. Also TorchServe's Open Inference package name and grpc.health.v1."""
import json
import queue

import numpy as np
import pytest
import torch

grpc = pytest.importorskip("grpc")
grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from conftest import Server, pack, wait_for  # noqa: E402
from models import MLP, Embed, save_script  # noqa: E402

# Echoes BYTES elements back, upper-cased, as one BYTES output, and half their lengths as FP16.
BYTES_PY = '''
def handle(data, context):
    if data is None:
        return None
    out = []
    for row in data:
        vals = row["body"]["inputs"][0]["data"]
        out.append({"outputs": [{"name": "upper", "datatype": "BYTES", "shape": [len(vals)],
                                 "data": [v.upper() for v in vals]},
                                {"name": "half_len", "datatype": "FP16", "shape": [len(vals)],
                                 "data": [len(v) / 2 for v in vals]}]})
    return out
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("grpcv2store")
    models = {"mlp": save_script(MLP, d / "mlp.pt"), "embed": save_script(Embed, d / "embed.pt")}
    cfg = d / "mlp.yaml"
    cfg.write_text("batchSize: 8\nmaxBatchDelay: 5\nminWorkers: 2\n")
    pack(d, "mlp", d / "mlp.pt", config=cfg)
    ecfg = d / "embed.yaml"
    ecfg.write_text("wick:\n  inputs:\n    - {name: idx, datatype: INT64, shape: [-1, 3]}\n")
    pack(d, "embed", d / "embed.pt", config=ecfg)
    (d / "bytes.py").write_text(BYTES_PY)
    (d / "dummy.txt").write_text("x")
    pack(d, "upper", d / "dummy.txt", handler=d / "bytes.py")
    s = Server(["--model-store", d, "--models", "mlp=mlp.mar", "embed=embed.mar", "upper=upper.mar"],
               tmp_path_factory.mktemp("grpcv2log") / "wick.log")
    s.models = models
    yield s
    assert s.stop() == 0, s.logs()[-4000:]


@pytest.fixture
def client(server):
    c = grpcclient.InferenceServerClient(f"127.0.0.1:{server.ports['grpc_inference']}")
    yield c
    c.close()


def http_json(server, path):
    r = server.infer("GET", path)
    return r.status, (r.json() if r.body else None)


def test_health_metadata_config_and_statistics(server, client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mlp") and client.is_model_ready("mlp", "1.0")
    assert not client.is_model_ready("nothere")
    meta = client.get_server_metadata(as_json=True)
    assert meta == http_json(server, "/v2")[1]
    for name in ("mlp", "embed", "upper"):
        got = client.get_model_metadata(name, as_json=True)
        want = http_json(server, f"/v2/models/{name}")[1]
        assert got["name"] == want["name"] and got["platform"] == want["platform"]
        assert got["versions"] == want["versions"]
        for side in ("inputs", "outputs"):
            assert [(t["name"], t["datatype"], [int(x) for x in t["shape"]]) for t in got[side]] == \
                [(t["name"], t["datatype"], t["shape"]) for t in want[side]]
    cfg = client.get_model_config("mlp", as_json=True)["config"]
    want = http_json(server, "/v2/models/mlp/config")[1]
    assert cfg["name"] == "mlp" and cfg["max_batch_size"] == want["max_batch_size"] == 8
    assert cfg["input"][0]["name"] == want["input"][0]["name"]
    assert cfg["input"][0]["data_type"] == want["input"][0]["data_type"] == "TYPE_FP32"
    assert [int(x) for x in cfg["input"][0]["dims"]] == want["input"][0]["dims"]
    assert cfg["instance_group"][0]["count"] == 2 and cfg["instance_group"][0]["kind"] == "KIND_CPU"
    assert int(cfg["dynamic_batching"]["max_queue_delay_microseconds"]) == 5000
    assert cfg["parameters"]["handler"]["string_value"] == "tensor"

    x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    inp = grpcclient.InferInput("INPUT__0", [3, 16], "FP32")
    inp.set_data_from_numpy(x)
    client.infer("mlp", [inp])
    # the worker counts the batch once its answer is on its way: the client may ask first
    wait_for(lambda: http_json(server, "/v2/models/mlp/stats")[1]["model_stats"][0].get("inference_count"))
    stats = client.get_inference_statistics("mlp", as_json=True)["model_stats"]
    want = http_json(server, "/v2/models/mlp/stats")[1]["model_stats"]
    assert len(stats) == 1 and stats[0]["name"] == "mlp" and stats[0]["version"] == "1.0"
    assert int(stats[0]["inference_count"]) == want[0]["inference_count"] >= 1
    assert int(stats[0]["inference_stats"]["success"]["count"]) == want[0]["inference_stats"]["success"]["count"]
    every = client.get_inference_statistics(as_json=True)["model_stats"]
    assert sorted(s["name"] for s in every) == ["embed", "mlp", "upper"]


def test_infer_fp32_int64_bytes_equal_http_and_the_model(server, client):
    x = np.random.default_rng(2).standard_normal((4, 16)).astype(np.float32)
    inp = grpcclient.InferInput("INPUT__0", [4, 16], "FP32")
    inp.set_data_from_numpy(x)
    res = client.infer("mlp", [inp], request_id="r-7")
    got = res.as_numpy("OUTPUT__0")
    want = server.models["mlp"](torch.from_numpy(x)).detach().numpy()
    assert got.shape == (4, 4) and np.allclose(got, want, atol=1e-5)
    assert res.get_response().id == "r-7" and res.get_response().model_name == "mlp"
    body = {"inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": [4, 16], "data": x.flatten().tolist()}]}
    http = server.infer("POST", "/v2/models/mlp/infer", json.dumps(body), {"Content-Type": "application/json"})
    assert np.allclose(np.array(http.json()["outputs"][0]["data"]).reshape(4, 4), got, atol=1e-6)

    idx = np.array([[1, 2, 3], [9, 0, 4]], dtype=np.int64)
    inp = grpcclient.InferInput("idx", [2, 3], "INT64")
    inp.set_data_from_numpy(idx)
    got = client.infer("embed", [inp]).as_numpy("OUTPUT__0")
    assert np.allclose(got, server.models["embed"](torch.from_numpy(idx)).detach().numpy(), atol=1e-6)

    words = np.array([b"abc", b"hello grpc"], dtype=np.object_)
    inp = grpcclient.InferInput("words", [2], "BYTES")
    inp.set_data_from_numpy(words)
    res = client.infer("upper", [inp])
    assert list(res.as_numpy("upper")) == [b"ABC", b"HELLO GRPC"]
    # a Python handler's FP16 output in JSON reaches the client as float16 bits, not integers
    half = res.as_numpy("half_len")
    assert half.dtype == np.float16 and half.tolist() == [1.5, 5.0]

    # asynchronous calls, many at once: each answered with its own input's result
    answers = queue.Queue()
    xs = [np.full((1, 16), i / 10, dtype=np.float32) for i in range(20)]
    for i, xi in enumerate(xs):
        inp = grpcclient.InferInput("INPUT__0", [1, 16], "FP32")
        inp.set_data_from_numpy(xi)
        client.async_infer("mlp", [inp], lambda result, error, i=i: answers.put((i, result, error)))
    for _ in range(20):
        i, r, e = answers.get(timeout=60)
        assert e is None, e
        assert np.allclose(r.as_numpy("OUTPUT__0"), server.models["mlp"](torch.from_numpy(xs[i])).detach().numpy(),
                           atol=1e-5)


def test_typed_contents_and_the_other_package_names(server):
    """Typed `contents` (fp32_contents, int64_contents) instead of raw bytes, sent with
    Triton's own stubs; TorchServe's Open Inference package and grpc.health.v1 answer too."""
    x = np.arange(32, dtype=np.float32).reshape(2, 16) / 32
    with grpc.insecure_channel(f"127.0.0.1:{server.ports['grpc_inference']}") as ch:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(ch)
        req = service_pb2.ModelInferRequest(model_name="mlp")
        t = req.inputs.add(name="INPUT__0", datatype="FP32", shape=[2, 16])
        t.contents.fp32_contents.extend(x.flatten().tolist())
        res = stub.ModelInfer(req, timeout=30)
        assert res.outputs[0].name == "OUTPUT__0" and list(res.outputs[0].shape) == [2, 4]
        got = np.frombuffer(res.raw_output_contents[0], dtype=np.float32).reshape(2, 4)
        assert np.allclose(got, server.models["mlp"](torch.from_numpy(x)).detach().numpy(), atol=1e-5)
        req = service_pb2.ModelInferRequest(model_name="embed")
        t = req.inputs.add(name="idx", datatype="INT64", shape=[1, 3])
        t.contents.int64_contents.extend([5, 6, 7])
        res = stub.ModelInfer(req, timeout=30)
        got = np.frombuffer(res.raw_output_contents[0], dtype=np.float32).reshape(1, 3, 3)
        assert np.allclose(got, server.models["embed"](torch.tensor([[5, 6, 7]])).detach().numpy(), atol=1e-6)

        ts = "/org.pytorch.serve.grpc.openinference.GRPCInferenceService/"
        raw = ch.unary_unary(ts + "ServerLive", request_serializer=lambda b: b, response_deserializer=lambda b: b)
        assert service_pb2.ServerLiveResponse.FromString(raw(b"", timeout=10)).live
        infer = ch.unary_unary(ts + "ModelInfer", request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=service_pb2.ModelInferResponse.FromString)
        req = service_pb2.ModelInferRequest(model_name="mlp")
        req.inputs.add(name="INPUT__0", datatype="FP32", shape=[2, 16])
        req.raw_input_contents.append(x.tobytes())
        assert np.allclose(np.frombuffer(infer(req, timeout=30).raw_output_contents[0], dtype=np.float32),
                           got_mlp(server, x), atol=1e-5)

        check = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)
        assert check(b"", timeout=10) == b"\x08\x01"  # SERVING
        svc = b"inference.GRPCInferenceService"
        assert check(b"\x0a" + bytes([len(svc)]) + svc, timeout=10) == b"\x08\x01"
        with pytest.raises(grpc.RpcError) as e:
            check(b"\x0a\x03abc", timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


def got_mlp(server, x):
    return server.models["mlp"](torch.from_numpy(x)).detach().numpy().flatten()


@pytest.mark.badinput
def test_errors_get_a_status_and_the_server_serves_on(server, client):
    cases = []
    inp = grpcclient.InferInput("INPUT__0", [1, 16], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 16), dtype=np.float32))
    with pytest.raises(InferenceServerException) as e:
        client.infer("nothere", [inp])
    cases.append((e.value, "StatusCode.NOT_FOUND", "nothere"))
    with pytest.raises(InferenceServerException) as e:
        client.infer("mlp", [inp], model_version="9")
    cases.append((e.value, "StatusCode.NOT_FOUND", "9"))
    bad = grpcclient.InferInput("INPUT__0", [1, 15], "FP32")  # the model takes 16 features
    bad.set_data_from_numpy(np.zeros((1, 15), dtype=np.float32))
    with pytest.raises(InferenceServerException) as e:
        client.infer("mlp", [bad])
    cases.append((e.value, "StatusCode.INVALID_ARGUMENT", ""))
    with pytest.raises(InferenceServerException) as e:
        client.get_model_metadata("nothere")
    cases.append((e.value, "StatusCode.NOT_FOUND", "nothere"))
    with pytest.raises(InferenceServerException) as e:  # the message ends in a space: sent encoded
        client.get_model_metadata("mlp", model_version="9 ")
    cases.append((e.value, "StatusCode.NOT_FOUND", "no version 9 "))
    with pytest.raises(InferenceServerException) as e:
        client.get_model_config("nothere")
    cases.append((e.value, "StatusCode.NOT_FOUND", "nothere"))
    for exc, status, text in cases:
        assert exc.status() == status and text in exc.message(), (exc.status(), exc.message())

    with grpc.insecure_channel(f"127.0.0.1:{server.ports['grpc_inference']}") as ch:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(ch)
        # raw bytes whose size does not match the shape, and a count of raw entries that
        # does not match the inputs
        req = service_pb2.ModelInferRequest(model_name="mlp")
        req.inputs.add(name="INPUT__0", datatype="FP32", shape=[1, 16])
        req.raw_input_contents.append(b"\0" * 10)
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(req, timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
        assert "inputs[0] 'INPUT__0': shape [1,16] of FP32 needs 64 bytes" in e.value.details(), e.value
        req.raw_input_contents.append(b"\0" * 64)
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(req, timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "raw_input_contents" in e.value.details()
        req = service_pb2.ModelInferRequest(model_name="mlp")
        req.inputs.add(name="INPUT__0", datatype="FP16", shape=[1, 16]).contents.fp32_contents.extend([0.0] * 16)
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(req, timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "FP16" in e.value.details()
        raw = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer", request_serializer=lambda b: b,
                             response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as e:
            raw(b"\xff\xff\xff", timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert client.is_server_live() and client.is_model_ready("mlp")


@pytest.mark.badinput
def test_token_authorization_covers_v2_and_health(tmp_path):
    """With token authorization on, v2 metadata and inference need the inference key in the
    `authorization` metadata, as the HTTP v2 routes do; liveness, readiness and the health
    service stay open, as /v2/health/* and /ping are."""
    save_script(MLP, tmp_path / "mlp.pt")
    pack(tmp_path, "mlp", tmp_path / "mlp.pt")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    s = Server(["--model-store", tmp_path, "--models", "mlp=mlp.mar", "--disable_token_authorization", "false"],
               tmp_path / "wick.log", cwd=run_dir)
    try:
        keys = json.loads((run_dir / "key_file.json").read_text())
        c = grpcclient.InferenceServerClient(f"127.0.0.1:{s.ports['grpc_inference']}")
        assert c.is_server_live() and c.is_server_ready()
        inp = grpcclient.InferInput("INPUT__0", [1, 16], "FP32")
        inp.set_data_from_numpy(np.zeros((1, 16), dtype=np.float32))
        for headers in (None, {"authorization": "Bearer nope"},
                        {"authorization": "Bearer " + keys["management"]["key"]}):
            with pytest.raises(InferenceServerException) as e:
                c.infer("mlp", [inp], headers=headers)
            assert e.value.status() == "StatusCode.UNAUTHENTICATED", e.value
            assert keys["inference"]["key"] not in e.value.message()
            with pytest.raises(InferenceServerException) as e:
                c.get_model_metadata("mlp", headers=headers)
            assert e.value.status() == "StatusCode.UNAUTHENTICATED"
        good = {"authorization": "Bearer " + keys["inference"]["key"]}
        assert c.infer("mlp", [inp], headers=good).as_numpy("OUTPUT__0").shape == (1, 4)
        with grpc.insecure_channel(f"127.0.0.1:{s.ports['grpc_inference']}") as ch:
            check = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
            assert check(b"", timeout=10) == b"\x08\x01"
        c.close()
    finally:
        assert s.stop() == 0, s.logs()[-3000:]
