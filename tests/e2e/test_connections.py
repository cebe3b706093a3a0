"""[11] part 2: connections. An idle connection costs only memory: 10,000 of them from one
address and another address's /ping is still answered; idle ones are closed after
idle_timeout; max_connections_per_client caps one address (off by default, as proxies
send everything from one address). Bounds are seconds, not speeds."""
import http.client
import resource
import socket
import time

import pytest

from conftest import pack
from models import MLP, save_script


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def ping_from(addr, port, timeout=10):
    """GET /ping from source address addr (127.0.0.2 is another client on loopback)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(addr, 0))
    try:
        c.request("GET", "/ping")
        return c.getresponse().status
    finally:
        c.close()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def closed_by_server(sock, within):
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except (socket.timeout, TimeoutError):
        return False
    except ConnectionResetError:
        return True


@pytest.fixture
def store(tmp_path):
    d = tmp_path / "store"
    d.mkdir()
    save_script(MLP, tmp_path / "mlp.pt")
    pack(d, "mlp", tmp_path / "mlp.pt")
    return d


def test_ten_thousand_idle_connections_and_another_client(serve, store, tmp_path):
    if raise_nofile() < 10_500:
        pytest.skip("this machine's open-file limit is below 10,500")
    s = serve("--model-store", store, "--models", "mlp=mlp.mar", "--quiet")
    port = s.ports["inference"]
    before = rss_kb(s.proc.pid)
    socks = []
    try:
        for _ in range(10_000):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        time.sleep(1)
        t0 = time.time()
        assert ping_from("127.0.0.2", port) == 200
        assert time.time() - t0 < 10
        per = (rss_kb(s.proc.pid) - before) * 1024 / len(socks)
        print(f"\nRSS per idle connection: {per:.0f} bytes")
        assert per < 256 * 1024, per  # memory, not megabytes
        assert "each API takes up to" in s.logs()
    finally:
        for k in socks:
            k.close()
    assert ping_from("127.0.0.1", port) == 200


def test_idle_connections_are_closed(serve, store, tmp_path):
    cfg = tmp_path / "c.properties"
    cfg.write_text("idle_timeout=2\n")
    s = serve("--model-store", store, "--ts-config", cfg, "--quiet")
    k = socket.create_connection(("127.0.0.1", s.ports["inference"]), timeout=10)
    t0 = time.time()
    assert closed_by_server(k, 15)
    assert 1 <= time.time() - t0 < 15
    k.close()


def test_a_cap_per_client_address(serve, store, tmp_path):
    cfg = tmp_path / "c.properties"
    cfg.write_text("max_connections_per_client=5\n")
    s = serve("--model-store", store, "--ts-config", cfg, "--quiet")
    port = s.ports["inference"]
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(5)]
    extra = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert closed_by_server(extra, 5)  # refused at once, not left in the backlog
    extra.close()
    assert ping_from("127.0.0.2", port) == 200
    for k in socks:
        k.close()
    time.sleep(0.5)
    assert ping_from("127.0.0.1", port) == 200


def test_a_client_trickling_its_request_is_cut_off(serve, store, tmp_path):
    cfg = tmp_path / "c.properties"
    cfg.write_text("request_timeout=3\nidle_timeout=30\n")
    s = serve("--model-store", store, "--models", "mlp=mlp.mar", "--ts-config", cfg, "--quiet")
    port = s.ports["inference"]
    k = socket.create_connection(("127.0.0.1", port), timeout=10)
    k.sendall(b"POST /predictions/mlp HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    t0 = time.time()
    cut = False
    while time.time() - t0 < 20:  # one byte every 0.3 s: always inside the idle timeout
        try:
            k.sendall(b"1")
        except OSError:
            cut = True
            break
        time.sleep(0.3)
    if not cut:
        cut = closed_by_server(k, 1)
    took = time.time() - t0
    k.close()
    assert cut and 2 <= took < 15, took
    # headers trickled the same way
    k = socket.create_connection(("127.0.0.1", port), timeout=10)
    k.sendall(b"GET /ping HTTP/1.1\r\n")
    t0 = time.time()
    cut = False
    while time.time() - t0 < 20:
        try:
            k.sendall(b"X")
        except OSError:
            cut = True
            break
        time.sleep(0.3)
    k.close()
    assert cut and time.time() - t0 < 15
    # a request sent in time is unaffected, on a connection kept alive
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(2):
        c.request("POST", "/predictions/mlp", body=b"[[" + b",".join([b"0.5"] * 16) + b"]]")
        assert c.getresponse().read() and True
        time.sleep(1)
    c.close()
    assert ping_from("127.0.0.2", port) == 200
