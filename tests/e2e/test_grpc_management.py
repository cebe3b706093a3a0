"""[12] part 2: TorchServe's gRPC management service (ManagementAPIsService on
grpc_management_port), driven by grpcio stubs generated at test time from wick's
proto/management.proto. Every call must give what the management HTTP route of the same
name gives: the JSON of describe and list, the status text of the others, and TorchServe's
gRPC status codes for the errors."""
import importlib
import json
import subprocess
import sys

import pytest

grpc = pytest.importorskip("grpc")
pytest.importorskip("grpc_tools")

from conftest import ROOT, pack, run_wick  # noqa: E402
from models import MLP, save_script  # noqa: E402


@pytest.fixture(scope="module")
def mpb(tmp_path_factory):
    out = tmp_path_factory.mktemp("mstubs")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "proto"),
                    f"--python_out={out}", f"--grpc_python_out={out}", "management.proto"], check=True)
    sys.path.insert(0, str(out))
    try:
        yield (importlib.import_module("management_pb2"), importlib.import_module("management_pb2_grpc"))
    finally:
        sys.path.remove(str(out))


@pytest.fixture
def store(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    save_script(MLP, tmp_path / "mlp.pt")
    pack(store, "mlp", tmp_path / "mlp.pt")
    for version in ("1.0", "2.0"):
        run_wick("pack", "--model-name", "two", "--version", version, "--serialized-file", tmp_path / "mlp.pt",
                 "--handler", "tensor", "--export-path", store, "-f")
        (store / "two.mar").rename(store / f"two-{version}.mar")
    return store


def stub_for(s, rpc):
    ch = grpc.insecure_channel(f"127.0.0.1:{s.ports['grpc_management']}")
    return ch, rpc.ManagementAPIsServiceStub(ch)


def status_text(reply):
    assert reply.status < 300, (reply.status, reply.body)
    return reply.json()["status"]


def test_each_call_answers_as_its_http_route(serve, mpb, store):
    pb, rpc = mpb
    s = serve("--model-store", store, "--enable-model-api", "--quiet")
    ch, stub = stub_for(s, rpc)
    with ch:
        # register: the status line of POST /models, synchronous as asked
        got = stub.RegisterModel(pb.RegisterModelRequest(url="mlp.mar", initial_workers=1, synchronous=True),
                                 timeout=60)
        assert got.msg == 'Model "mlp" Version: 1.0 registered with 1 initial workers'
        http = s.mgmt("POST", "/models?url=two-1.0.mar&initial_workers=1&synchronous=true")
        assert status_text(http) == 'Model "two" Version: 1.0 registered with 1 initial workers'
        got = stub.RegisterModel(pb.RegisterModelRequest(url="two-2.0.mar", batch_size=4, max_batch_delay=20,
                                                         initial_workers=1),
                                 timeout=60)
        assert got.msg  # asynchronous (proto3's false, TorchServe's gRPC default): answered at once

        # describe and list: the very JSON of the HTTP routes
        for name, version in (("mlp", ""), ("two", "all"), ("two", "2.0")):
            got = stub.DescribeModel(pb.DescribeModelRequest(model_name=name, model_version=version), timeout=30)
            path = f"/models/{name}" + (f"/{version}" if version else "")
            assert json.loads(got.msg) == s.mgmt("GET", path).json(), path
        two = json.loads(stub.DescribeModel(pb.DescribeModelRequest(model_name="two", model_version="2.0"),
                                            timeout=30).msg)
        assert two[0]["batchSize"] == 4 and two[0]["maxBatchDelay"] == 20
        got = stub.ListModels(pb.ListModelsRequest(), timeout=30)
        assert json.loads(got.msg) == s.mgmt("GET", "/models").json()
        assert [m["modelName"] for m in json.loads(got.msg)["models"]] == ["mlp", "two"]
        page = json.loads(stub.ListModels(pb.ListModelsRequest(limit=1), timeout=30).msg)
        assert page == s.mgmt("GET", "/models?limit=1").json()
        assert [m["modelName"] for m in page["models"]] == ["mlp"] and page["nextPageToken"] == "1"
        page = json.loads(stub.ListModels(pb.ListModelsRequest(limit=1, next_page_token=1), timeout=30).msg)
        assert [m["modelName"] for m in page["models"]] == ["two"]

        # scale, set the default, unregister
        got = stub.ScaleWorker(pb.ScaleWorkerRequest(model_name="mlp", min_worker=2, synchronous=True), timeout=60)
        assert got.msg == "Workers scaled to 2 for model: mlp"
        assert len(s.mgmt("GET", "/models/mlp").json()[0]["workers"]) == 2
        got = stub.SetDefault(pb.SetDefaultRequest(model_name="two", model_version="2.0"), timeout=30)
        assert got.msg == 'Default version successfully updated for model "two" to "2.0"'
        assert s.infer("POST", "/predictions/two", json.dumps({"data": [[0.1] * 16]}),
                       {"Content-Type": "application/json"}).status == 200
        got = stub.UnregisterModel(pb.UnregisterModelRequest(model_name="two", model_version="1.0"), timeout=60)
        assert got.msg == 'Model "two" unregistered'
        got = stub.UnregisterModel(pb.UnregisterModelRequest(model_name="mlp"), timeout=60)
        assert got.msg == 'Model "mlp" unregistered'
        assert [m["modelName"] for m in s.mgmt("GET", "/models").json()["models"]] == ["two"]


@pytest.mark.badinput
def test_errors_get_torchserve_status_codes(serve, mpb, store):
    pb, rpc = mpb
    s = serve("--model-store", store, "--models", "mlp=mlp.mar", "--enable-model-api", "--quiet")
    ch, stub = stub_for(s, rpc)
    cases = [
        (stub.DescribeModel, pb.DescribeModelRequest(model_name="nosuch"), grpc.StatusCode.NOT_FOUND,
         "Model not found: nosuch\nModelNotFoundException"),
        (stub.DescribeModel, pb.DescribeModelRequest(model_name="mlp", model_version="9"),
         grpc.StatusCode.NOT_FOUND, "Model version: 9 does not exist for model: mlp"),
        (stub.DescribeModel, pb.DescribeModelRequest(), grpc.StatusCode.INVALID_ARGUMENT, "model_name"),
        (stub.DescribeModel, pb.DescribeModelRequest(model_name="a/b"), grpc.StatusCode.NOT_FOUND,
         "Model not found: a/b"),
        (stub.RegisterModel, pb.RegisterModelRequest(), grpc.StatusCode.INVALID_ARGUMENT, "url"),
        (stub.RegisterModel, pb.RegisterModelRequest(url="nothere.mar"), grpc.StatusCode.NOT_FOUND,
         "nothere.mar"),
        # TorchServe lets its ConflictStatusException escape here (UNKNOWN); 409 is ALREADY_EXISTS
        (stub.RegisterModel, pb.RegisterModelRequest(url="mlp.mar"), grpc.StatusCode.ALREADY_EXISTS, "mlp"),
        (stub.ScaleWorker, pb.ScaleWorkerRequest(model_name="nosuch", min_worker=1), grpc.StatusCode.NOT_FOUND,
         "nosuch"),
        (stub.SetDefault, pb.SetDefaultRequest(model_name="mlp"), grpc.StatusCode.INVALID_ARGUMENT,
         "model_version"),
        (stub.SetDefault, pb.SetDefaultRequest(model_name="mlp", model_version="3.0"), grpc.StatusCode.NOT_FOUND,
         "3.0"),
        (stub.UnregisterModel, pb.UnregisterModelRequest(model_name="nosuch"), grpc.StatusCode.NOT_FOUND,
         "nosuch"),
    ]
    with ch:
        for method, req, code, text in cases:
            with pytest.raises(grpc.RpcError) as e:
                method(req, timeout=30)
            assert e.value.code() == code and text in e.value.details(), (req, e.value.code(), e.value.details())
        raw = ch.unary_unary("/org.pytorch.serve.grpc.management.ManagementAPIsService/ListModels",
                             request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as e:
            raw(b"\xff\xff\xff", timeout=10)  # not a protobuf message
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
        # the server still serves, and nothing was registered or lost
        assert [m["modelName"] for m in json.loads(stub.ListModels(pb.ListModelsRequest(), timeout=30).msg)
                ["models"]] == ["mlp"]


@pytest.mark.badinput
def test_model_api_and_token_rules_are_the_http_ones(serve, mpb, store, tmp_path):
    """Without enable_model_api, registering and unregistering are refused over gRPC as over
    HTTP (UNIMPLEMENTED: the method is turned off); with token authorization on, every call
    needs the management key in the `authorization` metadata."""
    pb, rpc = mpb
    s = serve("--model-store", store, "--models", "mlp=mlp.mar", "--quiet")
    ch, stub = stub_for(s, rpc)
    with ch:
        for method, req in ((stub.RegisterModel, pb.RegisterModelRequest(url="two-1.0.mar")),
                            (stub.UnregisterModel, pb.UnregisterModelRequest(model_name="mlp"))):
            with pytest.raises(grpc.RpcError) as e:
                method(req, timeout=30)
            assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED and "enable_model_api" in e.value.details()
        assert json.loads(stub.DescribeModel(pb.DescribeModelRequest(model_name="mlp"), timeout=30).msg)
    s.stop()

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    s = serve("--model-store", store, "--models", "mlp=mlp.mar", "--disable_token_authorization", "false",
              cwd=run_dir)
    keys = json.loads((run_dir / "key_file.json").read_text())
    ch, stub = stub_for(s, rpc)
    with ch:
        for md in ((), (("authorization", "Bearer nope"),), (("authorization", "Bearer " + keys["inference"]["key"]),)):
            with pytest.raises(grpc.RpcError) as e:
                stub.ListModels(pb.ListModelsRequest(), metadata=md, timeout=30)
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED, e.value
            assert keys["management"]["key"] not in e.value.details()
        got = stub.ListModels(pb.ListModelsRequest(), timeout=30,
                              metadata=(("authorization", "Bearer " + keys["management"]["key"]),))
        assert [m["modelName"] for m in json.loads(got.msg)["models"]] == ["mlp"]


SLOW_PY = '''
import time


class Slow:
    def initialize(self, context):
        time.sleep(3)

    def handle(self, data, context):
        return ["ok" for _ in data or []]
'''


def test_a_synchronous_scale_up_does_not_hold_up_the_connection(serve, mpb, tmp_path):
    """A synchronous ScaleWorker waits for the new worker (3 s to load here); other calls on
    the same connection are answered meanwhile (it ran on the connection's thread and held
    up every stream of that connection)."""
    import time

    pb, rpc = mpb
    store = tmp_path / "slowstore"
    store.mkdir()
    (tmp_path / "slow.py").write_text(SLOW_PY)
    (tmp_path / "dummy.txt").write_text("x")
    run_wick("pack", "--model-name", "slow", "--version", "1.0", "--serialized-file", tmp_path / "dummy.txt",
             "--handler", tmp_path / "slow.py", "--export-path", store, "-f")
    s = serve("--model-store", store, "--enable-model-api", "--quiet")
    ch, stub = stub_for(s, rpc)
    with ch:
        stub.RegisterModel(pb.RegisterModelRequest(url="slow.mar", initial_workers=0, synchronous=True), timeout=60)
        t0 = time.monotonic()
        scale = stub.ScaleWorker.future(pb.ScaleWorkerRequest(model_name="slow", min_worker=1, synchronous=True),
                                        timeout=120)
        time.sleep(0.3)  # the scale-up is under way
        listed = stub.ListModels(pb.ListModelsRequest(), timeout=30)
        waited = time.monotonic() - t0
        assert "slow" in listed.msg
        assert not scale.done() and waited < 2.5, waited  # answered while the worker loads
        assert "slow" in scale.result().msg or scale.result().msg
        assert time.monotonic() - t0 >= 2.5  # and the scale-up did wait for the worker
    assert s.mgmt("GET", "/models/slow").json()[0]["workers"][0]["status"] == "READY"
