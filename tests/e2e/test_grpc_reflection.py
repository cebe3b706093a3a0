"""[12] part 3: gRPC server reflection, as grpcurl uses it: list the services of each port,
fetch the file that declares a service (with its imports), then build the messages from
those descriptors alone (no .proto file on the client) and call a method with them."""
import importlib
import importlib.util
import subprocess
import sys

import pytest

grpc = pytest.importorskip("grpc")
pytest.importorskip("grpc_tools")
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: E402

from conftest import ROOT  # noqa: E402


@pytest.fixture(scope="module")
def rpb(tmp_path_factory):
    out = tmp_path_factory.mktemp("reflstubs")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "proto"), f"--python_out={out}",
                    "grpc/reflection/v1alpha/reflection.proto"], check=True)
    # the module lands at grpc/reflection/v1alpha/ under out, a folder named like the grpc
    # package: load it by its file path, with out kept off sys.path
    spec = importlib.util.spec_from_file_location(
        "wick_reflection_pb2", out / "grpc" / "reflection" / "v1alpha" / "reflection_pb2.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def ask(channel, pb, requests, version="v1alpha"):
    call = channel.stream_stream(f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
                                 request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=pb.ServerReflectionResponse.FromString)
    return list(call(iter(requests), timeout=30))


def test_reflection_lists_describes_and_lets_a_client_call(serve, rpb):
    pb = rpb
    s = serve("--quiet")
    with grpc.insecure_channel(f"127.0.0.1:{s.ports['grpc_inference']}") as ch:
        got = ask(ch, pb, [pb.ServerReflectionRequest(host="h", list_services="")])
        assert len(got) == 1 and got[0].valid_host == "h"
        names = [x.name for x in got[0].list_services_response.service]
        assert {"inference.GRPCInferenceService", "org.pytorch.serve.grpc.inference.InferenceAPIsService",
                "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= set(names)
        # several requests on one stream, answered in order; the v1 name answers too
        got = ask(ch, pb, [pb.ServerReflectionRequest(file_containing_symbol="inference.GRPCInferenceService"),
                           pb.ServerReflectionRequest(file_by_filename="inference.proto"),
                           pb.ServerReflectionRequest(file_containing_symbol="no.Such"),
                           pb.ServerReflectionRequest(file_by_filename="nothere.proto")], version="v1")
        assert len(got) == 4
        files = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in got[0].file_descriptor_response.file_descriptor_proto]
        assert files[0].name == "grpc_predict_v2.proto" and files[0].package == "inference"
        ts = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in got[1].file_descriptor_response.file_descriptor_proto]
        assert {f.name for f in ts} == {"inference.proto", "google/protobuf/empty.proto", "google/rpc/status.proto",
                                        "google/protobuf/any.proto"}
        stream = [m for m in ts[0].service[0].method if m.name == "StreamPredictions"][0]
        assert stream.server_streaming and not stream.client_streaming
        assert got[2].error_response.error_code == 5 and "no.Such" in got[2].error_response.error_message
        assert got[3].error_response.error_code == 5

        # a client that knows only the reflected descriptors calls ServerLive and ModelMetadata
        pool = descriptor_pool.DescriptorPool()
        for f in files:
            pool.Add(f)
        live_req = message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ServerLiveRequest"))
        live_resp = message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ServerLiveResponse"))
        call = ch.unary_unary("/inference.GRPCInferenceService/ServerLive",
                              request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=live_resp.FromString)
        assert call(live_req(), timeout=10).live is True
    with grpc.insecure_channel(f"127.0.0.1:{s.ports['grpc_management']}") as ch:
        names = [x.name for x in ask(ch, pb, [pb.ServerReflectionRequest(list_services="")])[0]
                 .list_services_response.service]
        assert "org.pytorch.serve.grpc.management.ManagementAPIsService" in names
        assert "inference.GRPCInferenceService" not in names


@pytest.mark.badinput
def test_a_bad_reflection_message_ends_the_stream_and_the_server_serves_on(serve, rpb):
    pb = rpb
    s = serve("--quiet")
    with grpc.insecure_channel(f"127.0.0.1:{s.ports['grpc_inference']}") as ch:
        raw = ch.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                               request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as e:
            list(raw(iter([b"\xff\xff\xff"]), timeout=10))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert ask(ch, pb, [pb.ServerReflectionRequest(list_services="")])[0].list_services_response.service
