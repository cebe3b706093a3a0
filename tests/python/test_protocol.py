"""Round trips and golden bytes of the OTF codec (wick_worker.protocol), and its
refusal of malformed or oversized frames."""

import struct

import pytest

from wick_worker import protocol as p

# The worked examples of docs/otf-protocol.md.
LOAD_HEX = (
    "4c" "00000001" "6d" "00000002" "2f64" "00000001" "00000004" "682e7079"
    "ffffffff" "00000000" "01"
)
INFER_HEX = (
    "49" "00000002" "7231"
    "00000001" "61" "00000001" "62" "ffffffff"
    "00000004" "626f6479" "0000000a" "746578742f706c61696e" "00000002" "6869" "ffffffff"
    "ffffffff"
)
RESPONSE_HEX = (
    "000000c8" "00000002" "6f6b"
    "00000002" "7231" "0000000a" "746578742f706c61696e" "000000c8" "00000000"
    "00000001" "00000001" "78" "00000001" "79" "00000002" "6869"
    "ffffffff"
)


def test_load_golden():
    req = p.LoadRequest("m", "/d", 1, "h.py", -1, "", True)
    assert p.encode_load(req).hex() == LOAD_HEX
    cmd, got = p.decode_request(bytes.fromhex(LOAD_HEX))
    assert cmd == p.CMD_LOAD and got == req


def test_inference_golden():
    batch = [p.InferenceRequest("r1", [("a", "b")], [p.Parameter("body", "text/plain", b"hi")])]
    assert p.encode_inference(batch).hex() == INFER_HEX
    cmd, got = p.decode_request(bytes.fromhex(INFER_HEX))
    assert cmd == p.CMD_INFERENCE and got == batch


def test_response_golden():
    resp = p.Response(200, "ok", [p.Prediction("r1", "text/plain", 200, "", {"x": "y"}, b"hi")])
    assert p.encode_response(resp).hex() == RESPONSE_HEX
    assert p.decode_response(bytes.fromhex(RESPONSE_HEX)) == resp


def test_load_response_is_code_message_end():
    assert p.encode_load_response(500, "no").hex() == "000001f4" "00000002" "6e6f" "ffffffff"
    assert p.decode_response(p.encode_load_response(200, "loaded")) == p.Response(200, "loaded", [])


def test_round_trip_batch_with_binary_and_unicode():
    batch = [
        p.InferenceRequest("id-%d" % i, [("Content-Type", "image/png"), ("x-é", "ü")],
                           [p.Parameter("body", "image/png", bytes(range(256)) * i),
                            p.Parameter("field", "", b"")])
        for i in range(3)
    ]
    cmd, got = p.decode_request(p.encode_inference(batch))
    assert got == batch
    load = p.LoadRequest("näme", "/tmp/x", 8, "handler:fn", 3, "json", False)
    assert p.decode_request(p.encode_load(load)) == (p.CMD_LOAD, load)
    resp = p.Response(503, "Prediction failed", [p.Prediction("a", "", 503, "Bad", {}, b"\x00\xff")] * 2)
    assert p.decode_response(p.encode_response(resp)) == resp


def test_request_id_bytes_survive_non_utf8():
    raw = bytearray(p.encode_inference([p.InferenceRequest("ab", [], [])]))
    raw[5:7] = b"\xff\xfe"  # the request id bytes
    _, batch = p.decode_request(bytes(raw))
    out = p.encode_response(p.Response(200, "", [p.Prediction(batch[0].request_id)]))
    assert out[4 + 4 + 4:4 + 4 + 4 + 2] == b"\xff\xfe"


def test_truncated_and_trailing_frames():
    data = p.encode_inference([p.InferenceRequest("r", [], [p.Parameter("body", "", b"abc")])])
    for cut in range(1, len(data)):
        with pytest.raises(p.ProtocolError):
            p.decode_request(data[:cut])
    with pytest.raises(p.ConnectionClosed):
        p.decode_request(b"")
    with pytest.raises(p.ProtocolError, match="left after"):
        p.decode_request(data + b"x")


def test_bad_frames_are_refused_with_a_reason():
    with pytest.raises(p.ProtocolError, match="unknown command"):
        p.decode_request(b"X")
    with pytest.raises(p.ProtocolError, match="length is -5"):
        p.decode_request(b"I" + struct.pack("!i", -5))
    with pytest.raises(p.ProtocolError, match="no requests"):
        p.decode_request(b"I" + struct.pack("!i", -1))
    with pytest.raises(p.ProtocolError, match="batch size is 0"):
        p.decode_request(p.encode_load(p.LoadRequest("m", "/", 0)))
    # -1 ends lists only: as a header value it is an error
    bad = b"I" + struct.pack("!i", 1) + b"r" + struct.pack("!i", 1) + b"h" + struct.pack("!i", -1)
    with pytest.raises(p.ProtocolError, match="header value length is -1"):
        p.decode_request(bad)


def test_limits_are_checked_before_allocating():
    huge = b"I" + struct.pack("!i", 2**31 - 1)
    with pytest.raises(p.ProtocolError, match="over the limit"):
        p.decode_request(huge + b"x" * 10)
    lim = p.Limits(max_value=10, max_frame=1000, max_requests=2, max_items=1)
    ok = p.encode_inference([p.InferenceRequest("r", [], [p.Parameter("body", "", b"x" * 10)])])
    p.decode_request(ok, lim)
    big = p.encode_inference([p.InferenceRequest("r", [], [p.Parameter("body", "", b"x" * 11)])])
    with pytest.raises(p.ProtocolError, match="parameter value is 11 bytes"):
        p.decode_request(big, lim)
    three = p.encode_inference([p.InferenceRequest(str(i)) for i in range(3)])
    with pytest.raises(p.ProtocolError, match="more than 2 requests"):
        p.decode_request(three, lim)
    two_headers = p.encode_inference([p.InferenceRequest("r", [("a", "1"), ("b", "2")])])
    with pytest.raises(p.ProtocolError, match="more than 1 headers"):
        p.decode_request(two_headers, lim)
    with pytest.raises(p.ProtocolError, match="frame is larger"):
        p.decode_request(p.encode_inference([p.InferenceRequest("r" * 2000)]), lim)
    neg = struct.pack("!i", 200) + struct.pack("!i", 0) + struct.pack("!i", 1) + b"r" + struct.pack("!i", 0) \
        + struct.pack("!i", 200) + struct.pack("!i", 0) + struct.pack("!i", -2)
    with pytest.raises(p.ProtocolError, match="header count is -2"):
        p.decode_response(neg)


def test_socket_reader_reads_across_small_and_large_chunks():
    import socket
    import threading

    a, b = socket.socketpair()
    batch = [p.InferenceRequest("r%d" % i, [], [p.Parameter("body", "", bytes([i]) * (300000 * i))]) for i in range(3)]
    data = p.encode_inference(batch)

    def send():
        for i in range(0, len(data), 7777):
            a.sendall(data[i:i + 7777])
        a.close()

    t = threading.Thread(target=send)
    t.start()
    r = p.SocketReader(b)
    assert p.read_request(r) == (p.CMD_INFERENCE, batch)
    with pytest.raises(p.ConnectionClosed):
        p.read_request(r)
    t.join()
    b.close()
