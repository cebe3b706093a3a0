"""[12] gRPC, with a real client: grpcio's stubs generated at test time (grpcio-tools) from
wick's own .proto files (proto/), which carry TorchServe's package, service, method and
field names and numbers. So far: the transport and Ping end to end ([12] part 1)."""
import importlib
import subprocess
import sys

import pytest

grpc = pytest.importorskip("grpc")
pytest.importorskip("grpc_tools")

from conftest import ROOT  # noqa: E402


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    out = tmp_path_factory.mktemp("stubs")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "proto"),
                    f"--python_out={out}", f"--grpc_python_out={out}", "inference.proto",
                    "google/rpc/status.proto"], check=True)
    sys.path.insert(0, str(out))
    try:
        yield (importlib.import_module("inference_pb2"), importlib.import_module("inference_pb2_grpc"))
    finally:
        sys.path.remove(str(out))


def channel(s, which="grpc_inference"):
    return grpc.insecure_channel(f"127.0.0.1:{s.ports[which]}")


def test_ping_answers_as_the_http_ping(serve, stubs):
    pb, rpc = stubs
    from google.protobuf import empty_pb2

    s = serve("--quiet")
    with channel(s) as ch:
        reply = rpc.InferenceAPIsServiceStub(ch).Ping(empty_pb2.Empty(), timeout=10)
    assert reply.health == '{\n  "status": "Healthy"\n}'
    assert s.infer("GET", "/ping").json() == {"status": "Healthy"}


def test_many_calls_on_one_connection_and_unknown_methods(serve, stubs):
    pb, rpc = stubs
    from google.protobuf import empty_pb2

    s = serve("--quiet")
    with channel(s) as ch:
        stub = rpc.InferenceAPIsServiceStub(ch)
        futures = [stub.Ping.future(empty_pb2.Empty(), timeout=10) for _ in range(200)]
        assert all(f.result().health.startswith("{") for f in futures)
        # a method the service has but wick does not serve yet, one it will never serve,
        # and a path no service has
        for call, code, text in ((stub.Predictions, grpc.StatusCode.UNIMPLEMENTED, "not serve"),):
            with pytest.raises(grpc.RpcError) as e:
                call(pb.PredictionsRequest(model_name="m"), timeout=10)
            assert e.value.code() == code and text in e.value.details(), e.value
        with pytest.raises(grpc.RpcError) as e:
            next(iter(stub.StreamPredictions2(iter([pb.PredictionsRequest(model_name="m")]), timeout=10)))
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED and "sequence" in e.value.details()
        nothing = ch.unary_unary("/no.Such/Method", request_serializer=lambda b: b,
                                 response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as e:
            nothing(b"", timeout=10)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED and "/no.Such/Method" in e.value.details()
        # the connection still serves
        assert stub.Ping(empty_pb2.Empty(), timeout=10).health


@pytest.mark.badinput
def test_bad_messages_and_bodies_get_a_status(serve, stubs):
    pb, rpc = stubs
    from google.protobuf import empty_pb2

    s = serve("--quiet")
    with channel(s) as ch:
        raw = ch.unary_unary("/org.pytorch.serve.grpc.inference.InferenceAPIsService/Ping",
                             request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as e:
            raw(b"\xff\xff\xff", timeout=10)  # not a protobuf message
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
        with pytest.raises(grpc.RpcError) as e:
            raw(b"\x0a" + b"x" * 7_000_000, timeout=10)  # over max_request_size
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value
        assert "max_request_size" in e.value.details()
        assert rpc.InferenceAPIsServiceStub(ch).Ping(empty_pb2.Empty(), timeout=10).health


def test_a_taken_grpc_port_leaves_http_serving(serve):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        s = serve("--grpc_inference_port", str(port))
        assert s.infer("GET", "/ping").status == 200
        assert f"grpc_inference_port" in s.logs() and "serving without it" in s.logs()
