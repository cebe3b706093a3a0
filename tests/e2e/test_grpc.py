"""[12] gRPC, with a real client: grpcio's stubs generated at test time (grpcio-tools) from
wick's own .proto files (proto/), which carry TorchServe's package, service, method and
field names and numbers: the transport, Ping, Predictions and StreamPredictions ([12] parts
1, 2, 4); the management service is in test_grpc_management.py."""
import importlib
import json
import subprocess
import sys

import pytest

grpc = pytest.importorskip("grpc")
pytest.importorskip("grpc_tools")

from conftest import ROOT, pack, run_wick, wait_for  # noqa: E402
from models import MLP, save_script  # noqa: E402


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
        # a method wick will never serve, and a path no service has
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


ECHO = """
def handle(data, context):
    if data is None:
        return None
    out = []
    for row in data:
        if row.get("data") == b"boom":
            from ts.utils.util import PredictionException
            raise PredictionException("I am a teapot", 418)
        out.append({k: (v.decode() if isinstance(v, (bytes, bytearray)) else v) for k, v in sorted(row.items())})
    return out
"""


@pytest.fixture
def models(tmp_path):
    import torch

    store = tmp_path / "store"
    store.mkdir()
    module = save_script(MLP, tmp_path / "mlp.pt")
    pack(store, "mlp", tmp_path / "mlp.pt")
    (tmp_path / "echo.py").write_text(ECHO)
    (tmp_path / "dummy.txt").write_text("x")
    run_wick("pack", "--model-name", "echo", "--version", "1.0", "--serialized-file", tmp_path / "dummy.txt",
             "--handler", f"{tmp_path / 'echo.py'}:handle", "--export-path", store, "-f")
    return store, module, torch


def test_predictions_equal_the_http_answers(serve, stubs, models):
    import json

    pb, rpc = stubs
    store, module, torch = models
    s = serve("--model-store", store, "--models", "mlp=mlp.mar", "echo=echo.mar", "--quiet")
    x = [[0.5] * 16, [-1.0] * 16]
    body = json.dumps({"data": x}).encode()
    with channel(s) as ch:
        stub = rpc.InferenceAPIsServiceStub(ch)
        got = stub.Predictions(pb.PredictionsRequest(model_name="mlp", input={"data": body}), timeout=30)
        http = s.infer("POST", "/predictions/mlp", body, {"Content-Type": "application/json"})
        assert http.status == 200 and json.loads(got.prediction) == http.json()
        assert torch.allclose(torch.tensor(json.loads(got.prediction)), module(torch.tensor(x)), atol=1e-6)
        got = stub.Predictions(pb.PredictionsRequest(model_name="mlp", model_version="1.0",
                                                     input={"data": body}), timeout=30)
        assert json.loads(got.prediction) == http.json()
        # a Python handler sees TorchServe's rows: every input by its name, as bytes
        got = stub.Predictions(pb.PredictionsRequest(model_name="echo", input={"data": b"hi", "extra": b"x"}),
                               timeout=30)
        assert json.loads(got.prediction) == {"data": "hi", "extra": "x"}
        # concurrent calls on one connection, answered from the model's workers
        futures = [stub.Predictions.future(pb.PredictionsRequest(model_name="echo", input={"data": b"n%d" % i}),
                                           timeout=30) for i in range(50)]
        assert [json.loads(f.result().prediction)["data"] for f in futures] == [f"n{i}" for i in range(50)]


@pytest.mark.badinput
def test_prediction_errors_get_torchserve_status_codes(serve, stubs, models):
    pb, rpc = stubs
    store, _, _ = models
    s = serve("--model-store", store, "--models", "mlp=mlp.mar", "echo=echo.mar", "--quiet")
    with channel(s) as ch:
        stub = rpc.InferenceAPIsServiceStub(ch)
        cases = [
            (pb.PredictionsRequest(model_name="nosuch", input={"data": b"1"}), grpc.StatusCode.NOT_FOUND,
             "Model not found: nosuch"),
            (pb.PredictionsRequest(model_name="mlp", model_version="9.9", input={"data": b"1"}),
             grpc.StatusCode.NOT_FOUND, "Model version: 9.9 does not exist"),
            (pb.PredictionsRequest(input={"data": b"1"}), grpc.StatusCode.INVALID_ARGUMENT, "model_name"),
            (pb.PredictionsRequest(model_name="mlp", input={"data": b"[[1, 2"}), grpc.StatusCode.INVALID_ARGUMENT,
             ""),
            (pb.PredictionsRequest(model_name="mlp", input={"data": b"[[1, 2, 3]]"}),
             grpc.StatusCode.INVALID_ARGUMENT, ""),
            (pb.PredictionsRequest(model_name="echo", input={"data": b"boom"}), grpc.StatusCode.INTERNAL,
             "I am a teapot"),
        ]
        for req, code, text in cases:
            with pytest.raises(grpc.RpcError) as e:
                stub.Predictions(req, timeout=30)
            assert e.value.code() == code and text in e.value.details(), (req, e.value)
        assert stub.Predictions(pb.PredictionsRequest(model_name="echo", input={"data": b"ok"}), timeout=30)


@pytest.mark.badinput
def test_token_authorization_covers_grpc(serve, stubs, models, tmp_path):
    """With token authorization on, Predictions needs the inference key in the
    `authorization` metadata, as the HTTP API does; Ping needs none (as GET /ping)."""
    import json

    from google.protobuf import empty_pb2

    pb, rpc = stubs
    store, _, _ = models
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    s = serve("--model-store", store, "--models", "echo=echo.mar", "--disable_token_authorization", "false",
              cwd=run_dir)
    keys = json.loads((run_dir / "key_file.json").read_text())
    req = pb.PredictionsRequest(model_name="echo", input={"data": b"x"})
    with channel(s) as ch:
        stub = rpc.InferenceAPIsServiceStub(ch)
        assert stub.Ping(empty_pb2.Empty(), timeout=10).health
        for md in ((), (("authorization", "Bearer nope"),),
                   (("authorization", "Bearer " + keys["management"]["key"]),)):
            with pytest.raises(grpc.RpcError) as e:
                stub.Predictions(req, metadata=md, timeout=30)
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED, e.value
            assert "Token Authorization failed" in e.value.details()
            assert keys["inference"]["key"] not in e.value.details()
        got = stub.Predictions(req, metadata=(("authorization", "Bearer " + keys["inference"]["key"]),),
                               timeout=30)
        assert json.loads(got.prediction) == {"data": "x"}


SLOW = """
import time

LOG = {log!r}


def handle(data, context):
    if data is None:
        return None
    out = []
    for row in data:
        body = row.get("data").decode()
        with open(LOG, "a") as f:
            f.write(body + "\\n")
        if body == "slow":
            time.sleep(3)
        out.append(body)
    return out
"""


def test_deadlines_and_cancelled_calls_never_run(serve, stubs, tmp_path):
    """grpc-timeout: calls queued behind a slow one whose deadline passes get
    DEADLINE_EXCEEDED and are dropped from the queue (counted as cancelled), never run."""
    import re
    import threading
    import time

    pb, rpc = stubs
    log = tmp_path / "ran.log"
    (tmp_path / "slow.py").write_text(SLOW.format(log=str(log)))
    (tmp_path / "c.yaml").write_text("minWorkers: 1\nmaxWorkers: 1\nbatchSize: 1\n")
    (tmp_path / "dummy.txt").write_text("x")
    store = tmp_path / "store"
    store.mkdir()
    run_wick("pack", "--model-name", "slow", "--version", "1.0", "--serialized-file", tmp_path / "dummy.txt",
             "--handler", f"{tmp_path / 'slow.py'}:handle", "--config-file", tmp_path / "c.yaml",
             "--export-path", store, "-f")
    s = serve("--model-store", store, "--models", "slow=slow.mar", "--quiet")
    with channel(s) as ch:
        stub = rpc.InferenceAPIsServiceStub(ch)
        first = stub.Predictions.future(pb.PredictionsRequest(model_name="slow", input={"data": b"slow"}),
                                        timeout=30)
        for _ in range(600):
            if log.exists():
                break
            time.sleep(0.05)
        assert log.read_text().split() == ["slow"]  # it runs: the others queue behind it
        t = time.time()
        for i in range(5):
            with pytest.raises(grpc.RpcError) as e:
                stub.Predictions(pb.PredictionsRequest(model_name="slow", input={"data": b"late%d" % i}),
                                 timeout=0.2)
            assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e.value
        assert time.time() - t < 2.9
        assert first.result().prediction == b"slow"
        assert stub.Predictions(pb.PredictionsRequest(model_name="slow", input={"data": b"after"}),
                                timeout=30).prediction == b"after"
    assert log.read_text().split() == ["slow", "after"]
    text = s.metrics().body.decode()
    m = re.search(r'wick_model_requests_total\{[^}]*model_name="slow"[^}]*result="cancelled"\} (\d+)', text)
    assert m and int(m.group(1)) == 5, text[-2000:]


STREAM = """
import time

from ts.protocol.otf_message_handler import send_intermediate_predict_response


def handle(data, context):
    if data is None:
        return None
    body = data[0].get("data").decode()
    if body.startswith("parts"):
        for k in range(3):
            send_intermediate_predict_response(["part %d;" % k], context.request_ids,
                                               "Intermediate Prediction success", 200, context)
            time.sleep(0.4)
        return ["end."]
    if body == "then-fail":
        send_intermediate_predict_response(["first;"], context.request_ids,
                                           "Intermediate Prediction success", 200, context)
        raise RuntimeError("failed after the first part")
    if body == "long":
        for k in range(50):
            send_intermediate_predict_response(["tick %d;" % k], context.request_ids,
                                               "Intermediate Prediction success", 200, context)
            time.sleep(0.1)
        return ["done."]
    return ["plain " + body]
"""


@pytest.fixture
def streamer(tmp_path):
    (tmp_path / "stream.py").write_text(STREAM)
    (tmp_path / "c.yaml").write_text("minWorkers: 1\nmaxWorkers: 1\nbatchSize: 1\n")
    (tmp_path / "dummy.txt").write_text("x")
    store = tmp_path / "store"
    store.mkdir()
    run_wick("pack", "--model-name", "stream", "--version", "1.0", "--serialized-file", tmp_path / "dummy.txt",
             "--handler", f"{tmp_path / 'stream.py'}:handle", "--config-file", tmp_path / "c.yaml",
             "--export-path", store, "-f")
    return store


def test_stream_predictions_sends_each_intermediate_response(serve, stubs, streamer):
    """StreamPredictions: a handler's intermediate responses arrive as separate messages as
    they are made (not all at the end), then the final one and OK; a handler failing
    midway ends the stream INTERNAL after what it sent; a plain handler sends one message;
    Predictions joins a streamed reply into one message, as an HTTP client reads it."""
    import time

    pb, rpc = stubs
    s = serve("--model-store", streamer, "--models", "stream=stream.mar", "--quiet")
    with channel(s) as ch:
        stub = rpc.InferenceAPIsServiceStub(ch)
        t0 = time.time()
        got = []
        for reply in stub.StreamPredictions(pb.PredictionsRequest(model_name="stream", input={"data": b"parts"}),
                                            timeout=60):
            got.append((reply.prediction, time.time() - t0))
        assert [g[0] for g in got] == [b"part 0;", b"part 1;", b"part 2;", b"end."]
        assert got[3][1] - got[0][1] > 0.8  # the handler sleeps 0.4 s between parts: they came apart

        messages = []
        with pytest.raises(grpc.RpcError) as e:
            for reply in stub.StreamPredictions(pb.PredictionsRequest(model_name="stream",
                                                                      input={"data": b"then-fail"}), timeout=60):
                messages.append(reply.prediction)
        assert messages == [b"first;"]
        assert e.value.code() == grpc.StatusCode.INTERNAL and "middle of its streamed reply" in e.value.details()

        replies = list(stub.StreamPredictions(pb.PredictionsRequest(model_name="stream", input={"data": b"x"}),
                                              timeout=60))
        assert [r.prediction for r in replies] == [b"plain x"]
        with pytest.raises(grpc.RpcError) as e:
            list(stub.StreamPredictions(pb.PredictionsRequest(model_name="nosuch", input={"data": b"x"}),
                                        timeout=60))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND

        joined = stub.Predictions(pb.PredictionsRequest(model_name="stream", input={"data": b"parts"}), timeout=60)
        assert joined.prediction == b"part 0;part 1;part 2;end."


def test_streams_cut_by_deadline_or_cancel_leave_the_server_serving(serve, stubs, streamer):
    """A deadline that passes mid-stream ends it DEADLINE_EXCEEDED after the messages sent so
    far; a client that cancels mid-stream goes away; the worker finishes and serves the
    next call."""
    import time

    pb, rpc = stubs
    s = serve("--model-store", streamer, "--models", "stream=stream.mar", "--quiet")
    with channel(s) as ch:
        stub = rpc.InferenceAPIsServiceStub(ch)
        seen = []
        with pytest.raises(grpc.RpcError) as e:
            for reply in stub.StreamPredictions(pb.PredictionsRequest(model_name="stream", input={"data": b"long"}),
                                                timeout=1.5):
                seen.append(reply.prediction)
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert 3 <= len(seen) < 50 and seen[0] == b"tick 0;"

        call = stub.StreamPredictions(pb.PredictionsRequest(model_name="stream", input={"data": b"long"}),
                                      timeout=60)
        assert next(call).prediction == b"tick 0;"
        call.cancel()
        # the worker is busy with the cancelled stream for a few seconds, then serves again
        t = time.time()
        replies = list(stub.StreamPredictions(pb.PredictionsRequest(model_name="stream", input={"data": b"y"}),
                                              timeout=60))
        assert [r.prediction for r in replies] == [b"plain y"]
        assert time.time() - t < 30
        # a client that opens many streams and reads none holds only its own calls
        calls = [stub.StreamPredictions(pb.PredictionsRequest(model_name="stream", input={"data": b"z%d" % i}),
                                        timeout=60) for i in range(20)]
        with channel(s) as other:
            other_stub = rpc.InferenceAPIsServiceStub(other)
            from google.protobuf import empty_pb2
            assert other_stub.Ping(empty_pb2.Empty(), timeout=10).health
        assert [next(c).prediction for c in calls] == [b"plain z%d" % i for i in range(20)]


def h2_frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def h2_literal(name, value):
    """One HPACK header field, literal without indexing, no Huffman (names and values < 127)."""
    return b"\0" + bytes([len(name)]) + name + bytes([len(value)]) + value


BIG = """
def handle(data, context):
    return None if data is None else ["x" * 200000 for _ in data]
"""


@pytest.mark.badinput
def test_a_client_that_never_reads_stalls_no_one_else(serve, stubs, models, tmp_path):
    """A raw HTTP/2 client asks for many large answers (small requests, within the flow
    control windows) and never reads its socket: its answers pile up until the server stops
    reading it; every other client is served meanwhile (the event loop never blocks on one
    socket); after 30 s without progress the server drops it, and serves on."""
    import socket
    import time

    pb, rpc = stubs
    store, _, _ = models
    (tmp_path / "big.py").write_text(BIG)
    run_wick("pack", "--model-name", "big", "--version", "1.0", "--serialized-file", tmp_path / "dummy.txt",
             "--handler", f"{tmp_path / 'big.py'}:handle", "--export-path", store, "-f")
    s = serve("--model-store", store, "--models", "echo=echo.mar", "big=big.mar", "--quiet")
    path = b"/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions"
    msg = pb.PredictionsRequest(model_name="big", input={"data": b"x"}).SerializeToString()
    framed = b"\0" + len(msg).to_bytes(4, "big") + msg
    out = [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
           h2_frame(4, 0, 0, (4).to_bytes(2, "big") + (2**31 - 1).to_bytes(4, "big")),  # initial window
           h2_frame(8, 0, 0, (2**31 - 1 - 65535).to_bytes(4, "big"))]  # the connection's window
    for i in range(100):  # 20 MB of answers
        sid = 1 + 2 * i
        block = b"".join(h2_literal(n, v) for n, v in [
            (b":method", b"POST"), (b":scheme", b"http"), (b":path", path), (b":authority", b"wick"),
            (b"content-type", b"application/grpc"), (b"te", b"trailers")])
        out.append(h2_frame(1, 4, sid, block))
        out.append(h2_frame(0, 1, sid, framed))
    data = b"".join(out)
    bad = socket.socket()
    bad.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    bad.connect(("127.0.0.1", s.ports["grpc_inference"]))
    bad.setblocking(False)
    sent, t = 0, time.time()
    while sent < len(data) and time.time() - t < 10:  # as much as the server takes in 10 s
        try:
            sent += bad.send(data[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.05)
    def server_end():  # the server's end of that connection in /proc/net/tcp: (state, send queue)
        mine = bad.getsockname()[1]
        for line in open("/proc/net/tcp").read().splitlines()[1:]:
            f = line.split()
            if int(f[1].split(":")[1], 16) == s.ports["grpc_inference"] and int(f[2].split(":")[1], 16) == mine:
                return f[3], int(f[4].split(":")[0], 16)
        return None, 0

    def server_send_queue():
        return server_end()[1]

    try:
        wait_for(lambda: server_send_queue() > 100_000, timeout=30)  # answers pile up unread
        from google.protobuf import empty_pb2
        for _ in range(3):
            with channel(s) as ch:
                stub = rpc.InferenceAPIsServiceStub(ch)
                t = time.time()
                assert stub.Ping(empty_pb2.Empty(), timeout=10).health
                got = stub.Predictions(pb.PredictionsRequest(model_name="echo", input={"data": b"ok"}), timeout=10)
                assert json.loads(got.prediction) == {"data": "ok"}
                assert time.time() - t < 10
        # 30 s without taking any of its answers: the server lets go of it (no longer
        # ESTABLISHED on its side)
        t = time.time()
        wait_for(lambda: server_end()[0] != "01", timeout=90)
        assert time.time() - t > 15
    finally:
        bad.close()
    with channel(s) as ch:
        got = rpc.InferenceAPIsServiceStub(ch).Predictions(
            pb.PredictionsRequest(model_name="echo", input={"data": b"after"}), timeout=30)
        assert json.loads(got.prediction) == {"data": "after"}


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("grpc-tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"),
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return d / "cert.pem", d / "key.pem"


def test_enable_grpc_ssl_serves_both_ports_over_tls(serve, stubs, models, cert):
    """enable_grpc_ssl=true: both gRPC ports speak TLS (ALPN h2) with the certificate_file
    and private_key_file of the HTTP ports; a plain-text client gets no answer and the
    server serves on; the HTTP ports stay as their addresses say."""
    import json

    from google.protobuf import empty_pb2

    pb, rpc = stubs
    store, _, _ = models
    cert_pem, key_pem = cert
    s = serve("--model-store", store, "--models", "echo=echo.mar", "--enable_grpc_ssl", "true",
              "--certificate_file", cert_pem, "--private_key_file", key_pem)
    # the HTTP ports answer /ping before the gRPC ones have logged (seen under TSan)
    wait_for(lambda: s.logs().count("(TLS)") >= 2)
    creds = grpc.ssl_channel_credentials(root_certificates=cert_pem.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{s.ports['grpc_inference']}", creds) as ch:
        stub = rpc.InferenceAPIsServiceStub(ch)
        assert stub.Ping(empty_pb2.Empty(), timeout=10).health
        got = stub.Predictions(pb.PredictionsRequest(model_name="echo", input={"data": b"tls"}), timeout=30)
        assert json.loads(got.prediction) == {"data": "tls"}
        big = b"x" * 300_000  # many TLS records in one message, and in its answer
        got = stub.Predictions(pb.PredictionsRequest(model_name="echo", input={"data": big}), timeout=30)
        assert json.loads(got.prediction)["data"] == big.decode()
    mgmt = grpc.secure_channel(f"127.0.0.1:{s.ports['grpc_management']}", creds)
    with mgmt:
        raw = mgmt.unary_unary("/org.pytorch.serve.grpc.management.ManagementAPIsService/ListModels",
                               request_serializer=lambda b: b, response_deserializer=lambda b: b)
        assert b"echo" in raw(b"", timeout=10)
    with channel(s) as plain:  # no TLS: the handshake fails, nothing is answered
        with pytest.raises(grpc.RpcError) as e:
            rpc.InferenceAPIsServiceStub(plain).Ping(empty_pb2.Empty(), timeout=3)
        assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    with grpc.secure_channel(f"127.0.0.1:{s.ports['grpc_inference']}", creds) as ch:
        assert rpc.InferenceAPIsServiceStub(ch).Ping(empty_pb2.Empty(), timeout=10).health
    assert s.infer("GET", "/ping").status == 200  # HTTP is still plain HTTP


@pytest.mark.badinput
def test_enable_grpc_ssl_needs_a_certificate(tmp_path):
    import subprocess as sp

    from conftest import WICK

    r = sp.run([WICK, "serve", "--enable_grpc_ssl", "true", "--inference_address", "http://127.0.0.1:0"],
               capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "enable_grpc_ssl=true needs certificate_file" in r.stdout + r.stderr


@pytest.mark.badinput
def test_a_wrong_content_type_gets_http_415_and_others_are_served(serve, stubs, tmp_path):
    """A request that is not gRPC (content-type application/json) on the gRPC port gets
    plain HTTP/2's 415, as the gRPC protocol asks; gRPC calls go on being answered."""
    import shutil

    from google.protobuf import empty_pb2

    nghttp = shutil.which("nghttp")
    if nghttp is None:
        pytest.skip("nghttp (nghttp2-client) is not installed")
    pb, rpc = stubs
    s = serve("--quiet")
    body = tmp_path / "body.bin"
    body.write_bytes(b"\0\0\0\0\0")
    url = f"http://127.0.0.1:{s.ports['grpc_inference']}/org.pytorch.serve.grpc.inference.InferenceAPIsService/Ping"
    r = subprocess.run([nghttp, "-v", "-d", str(body), "-H", "content-type: application/json", url],
                       capture_output=True, text=True, timeout=30)
    assert ":status: 415" in r.stdout, r.stdout[-2000:]
    r = subprocess.run([nghttp, "-v", "-d", str(body), "-H", "content-type: application/grpc", "-H", "te: trailers",
                        url], capture_output=True, text=True, timeout=30)
    assert "grpc-status: 0" in r.stdout, r.stdout[-2000:]
    with channel(s) as ch:
        assert rpc.InferenceAPIsServiceStub(ch).Ping(empty_pb2.Empty(), timeout=10).health


class Widen(__import__("torch").nn.Module):
    """Answers 1000 values for each input value: an output far larger than its input."""

    def forward(self, x):
        return x.repeat(1, 1000)


@pytest.mark.badinput
def test_an_answer_over_max_response_size_is_refused_on_every_route(serve, stubs, tmp_path):
    pb, rpc = stubs
    store = tmp_path / "store"
    store.mkdir()
    save_script(Widen, tmp_path / "widen.pt")
    pack(store, "widen", tmp_path / "widen.pt")
    s = serve("--model-store", store, "--models", "widen=widen.mar", "--max_response_size", "100000")
    small = [[0.5] * 2]  # 2000 values in the answer (~8 kB) fit; 16000 (~190 kB) do not
    assert s.infer("POST", "/predictions/widen", json.dumps(small)).status == 200
    r = s.infer("POST", "/predictions/widen", json.dumps([[0.123456789] * 16]))
    assert r.status == 500, r
    msg = r.json()["message"]
    assert "max_response_size (100000 bytes)" in msg and "bytes, over" in msg, msg
    v2 = {"inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": [1, 16], "data": [0.123456789] * 16}]}
    r = s.infer("POST", "/v2/models/widen/infer", json.dumps(v2))
    assert r.status == 500 and "max_response_size" in r.json()["error"], r
    with channel(s) as ch:
        with pytest.raises(grpc.RpcError) as e:
            rpc.InferenceAPIsServiceStub(ch).Predictions(
                pb.PredictionsRequest(model_name="widen",
                                      input={"data": json.dumps([[0.123456789] * 16]).encode()}),
                timeout=30)
    assert "max_response_size" in e.value.details()
    # the server serves on
    assert s.infer("POST", "/predictions/widen", json.dumps(small)).status == 200
    assert s.mgmt("GET", "/status.json").json()["models"][0]["answers_by_status"]["500"] == 3


SERVING, NOT_SERVING, SERVICE_UNKNOWN = b"\x08\x01", b"\x08\x02", b"\x08\x03"


def test_health_watch_streams_each_change_until_cancelled_or_stopped(serve, tmp_path):
    """grpc.health.v1 Watch: the status at once, then every change (here: three workers
    stuck past the response timeout make the server unhealthy, their end healthy again);
    an unknown service is SERVICE_UNKNOWN; a cancelled watch ends, and the server's stop
    ends the rest with UNAVAILABLE."""
    from test_batching import busy_iterations_per_second, make_store, warm_up
    from models import Busy

    store, _ = make_store(tmp_path, "busy", Busy,
                          "minWorkers: 1\nmaxWorkers: 1\nbatchSize: 1\nresponseTimeout: 1\n")
    s = serve("--model-store", store, "--models", "busy=busy.mar")
    warm_up(s)
    with channel(s) as ch:
        watch = ch.unary_stream("/grpc.health.v1.Health/Watch", request_serializer=lambda b: b,
                                response_deserializer=lambda b: b)
        server_watch = watch(b"", timeout=120)
        assert next(server_watch) == SERVING
        unknown = watch(b"\x0a\x03abc", timeout=120)
        assert next(unknown) == SERVICE_UNKNOWN
        unknown.cancel()
        n = max(1, int(busy_iterations_per_second() * 6))  # ~6 s of work each
        for _ in range(3):  # each lands on the replacement of the previous stuck worker
            assert s.infer("POST", "/predictions/busy", {"data": [[float(n)]]}).status == 504
        assert next(server_watch) == NOT_SERVING
        assert s.infer("GET", "/ping").status == 500
        assert next(server_watch) == SERVING  # the stuck forwards ended
        assert s.infer("GET", "/ping").status == 200
        last = watch(b"", timeout=120)
        assert next(last) == SERVING
        s.stop()
        with pytest.raises(grpc.RpcError) as e:
            next(last)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.RpcError):
            next(server_watch)
