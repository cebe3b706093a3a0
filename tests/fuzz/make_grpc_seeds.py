"""Writes the seed corpus of fuzz_grpc (tests/fuzz/corpus/grpc/): one valid request message
per method, each prefixed with the byte that picks that method (the methods in the order
fuzz_grpc lists them: the inference port's tables, then the management port's), plus a few
framing cases. Run by hand when the methods change:

    .venv/bin/python tests/fuzz/make_grpc_seeds.py
"""
import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/fuzz/corpus/grpc"

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "proto"), f"--python_out={tmp}",
                    "inference.proto", "management.proto", "grpc_predict_v2.proto",
                    "google/rpc/status.proto"], check=True)
    sys.path.insert(0, tmp)
    inf = importlib.import_module("inference_pb2")
    mgmt = importlib.import_module("management_pb2")
    v2 = importlib.import_module("grpc_predict_v2_pb2")

    infer = v2.ModelInferRequest(model_name="echo", id="x")
    t = infer.inputs.add(name="a", datatype="FP32", shape=[1, 2])
    infer.raw_input_contents.append(b"\0\0\x80?\0\0\0@")
    typed = v2.ModelInferRequest(model_name="echo")
    t = typed.inputs.add(name="b", datatype="BYTES", shape=[2])
    t.contents.bytes_contents.extend([b"hi", b"there"])
    t.parameters["p"].int64_param = 3
    typed.outputs.add(name="o").parameters["binary_data"].bool_param = False
    typed.parameters["q"].string_param = "s"
    # the inference port: TorchServe's inference service, then v2 (KServe, TorchServe's
    # OIP name), then health; the management port after them
    messages = [
        b"",  # Ping (Empty)
        inf.PredictionsRequest(model_name="echo", input={"data": b"[1, 2]"}).SerializeToString(),
        inf.PredictionsRequest(model_name="echo", input={"body": b"x", "k": b"v"}).SerializeToString(),
        inf.PredictionsRequest(model_name="echo").SerializeToString(),  # StreamPredictions2
        b"",  # ServerLive
        b"",  # ServerReady
        v2.ModelReadyRequest(name="echo").SerializeToString(),
        b"",  # ServerMetadata
        v2.ModelMetadataRequest(name="echo", version="1.0").SerializeToString(),
        infer.SerializeToString(),
        v2.ModelConfigRequest(name="echo").SerializeToString(),
        v2.ModelStatisticsRequest().SerializeToString(),
        b"", b"", v2.ModelReadyRequest(name="nope").SerializeToString(), b"",
        v2.ModelMetadataRequest(name="echo").SerializeToString(), typed.SerializeToString(),
        b"\x0a\x00",  # Health Check ""
        b"",  # Health Watch
        mgmt.DescribeModelRequest(model_name="echo", customized=True).SerializeToString(),
        mgmt.ListModelsRequest(limit=2, next_page_token=1).SerializeToString(),
        mgmt.RegisterModelRequest(url="nothere.mar", initial_workers=1, batch_size=2).SerializeToString(),
        mgmt.ScaleWorkerRequest(model_name="echo", min_worker=1, max_worker=2).SerializeToString(),
        mgmt.SetDefaultRequest(model_name="echo", model_version="1.0").SerializeToString(),
        mgmt.UnregisterModelRequest(model_name="echo", model_version="1.0").SerializeToString(),
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    for i, m in enumerate(messages):
        (OUT / f"method{i:02d}").write_bytes(bytes([i]) + m)
    # framing as it is (high bit): two messages, a length that lies, a compressed flag
    body = inf.PredictionsRequest(model_name="echo", input={"data": b"1"}).SerializeToString()
    frame = b"\0" + len(body).to_bytes(4, "big") + body
    (OUT / "framing-two").write_bytes(bytes([0x81]) + frame + frame)
    (OUT / "framing-lies").write_bytes(bytes([0x81]) + b"\0\0\0\1\0" + body)
    (OUT / "framing-compressed").write_bytes(bytes([0x81]) + b"\1" + frame[1:])
    (OUT / "framing-short").write_bytes(bytes([0x89, 0, 0]))
    print(f"wrote {len(messages) + 4} seeds to {OUT}")
