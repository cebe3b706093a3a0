"""[11] part 10, what wick's layer can see of a request's framing: ambiguous requests are
refused before their body is read, with a reply that says why, and the connection is
closed (a proxy that read them another way could have smuggled a second request in)."""
import socket

import pytest

from conftest import pack
from models import MLP, save_script

pytestmark = pytest.mark.badinput


@pytest.fixture
def srv(serve, tmp_path):
    d = tmp_path / "store"
    d.mkdir()
    save_script(MLP, tmp_path / "mlp.pt")
    pack(d, "mlp", tmp_path / "mlp.pt")
    return serve("--model-store", d, "--models", "mlp=mlp.mar")


def raw(port, data, timeout=10):
    """Sends data as it is; returns everything the server sent before it closed."""
    k = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    k.sendall(data)
    out = b""
    try:
        while True:
            chunk = k.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    k.close()
    return out


BODY = b"[[" + b",".join([b"0.5"] * 16) + b"]]"


def test_ambiguous_framing_is_refused(srv):
    port = srv.ports["inference"]
    cases = [
        (b"POST /predictions/mlp HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\nContent-Length: 5\r\n\r\n"
         % len(BODY) + BODY, b"400", b"two Content-Length"),
        (b"POST /predictions/mlp HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
         b"\r\n0\r\n\r\n", b"400", b"both Content-Length and Transfer-Encoding"),
        (b"POST /predictions/mlp HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
         b"501", b"Transfer-Encoding other than chunked"),
        (b"GET /ping HTTP/1.1\r\n\r\n", b"400", b"no Host header (HTTP/1.1 needs one)"),
        (b"GET /ping HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"400", b"more than one Host"),
    ]
    for data, status, why in cases:
        out = raw(port, data)
        head = out.split(b"\r\n", 1)[0]
        assert status in head, (data, out[:300])
        assert why in out, (data, out[:300])
        replies = [l for l in out.split(b"\r\n") if l.startswith(b"HTTP/1.1 ")]
        assert len(replies) == 1, out  # one reply, then the connection closes
    # well-formed requests, HTTP/1.0 without Host among them, still work
    out = raw(port, b"POST /predictions/mlp HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: %d\r\n"
              b"\r\n" % len(BODY) + BODY)
    assert out.startswith(b"HTTP/1.1 200"), out[:200]
    out = raw(port, b"GET /ping HTTP/1.0\r\n\r\n")
    assert b" 200 " in out.split(b"\r\n", 1)[0], out[:200]
    out = raw(port, b"POST /predictions/mlp HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200"), out[:200]


def test_too_many_query_arguments_get_a_414_at_once(srv):
    """libmicrohttpd 0.9.75 sent nothing for about 480 or more arguments and left the client
    waiting until request_timeout; wick answers 414 itself above 256, at once, also on a
    kept-alive connection, and keeps serving."""
    import time

    port = srv.ports["inference"]
    q = "&".join(f"a{i}=1" for i in range(600))
    t = time.time()
    out = raw(port, f"GET /ping?{q} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    assert time.time() - t < 5
    assert out.startswith(b"HTTP/1.1 414 "), out[:200]
    assert b'"the query has 600 arguments; at most 256 are read"' in out, out
    ok = "&".join(f"a{i}" for i in range(256))
    assert raw(port, f"GET /ping?{ok} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode()).startswith(
        b"HTTP/1.1 200 ")
    k = socket.create_connection(("127.0.0.1", port), timeout=10)
    k.sendall(b"GET /ping HTTP/1.1\r\nHost: a\r\n\r\n")
    assert k.recv(4096).startswith(b"HTTP/1.1 200 ")
    k.sendall(f"GET /ping?{q} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    got = b""
    while True:
        chunk = k.recv(4096)
        if not chunk:
            break
        got += chunk
    assert got.startswith(b"HTTP/1.1 414 "), got
    k.close()


def test_a_malformed_content_length_is_a_400(srv):
    """libmicrohttpd rejects it before wick sees the request. 0.9.75 (Debian 12) writes its
    status line and headers twice (the second copy arrives as the body); 1.0 rewrote that
    parser. Either way the status is 400, the connection is closed and nothing else is
    affected."""
    port = srv.ports["inference"]
    for cl in (b"-1", b"5abc"):
        out = raw(port, b"POST /predictions/mlp HTTP/1.1\r\nHost: a\r\nContent-Length: " + cl + b"\r\n\r\n"
                  + BODY)
        assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    out = raw(port, b"POST /predictions/mlp HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
              % len(BODY) + BODY)
    assert out.startswith(b"HTTP/1.1 200 "), out[:200]
