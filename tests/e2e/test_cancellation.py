"""[11] part 15: a queued request whose client has gone is dropped before it runs.

Fifty requests wait behind a slow one on a model with one worker and batch size 1; forty of
their clients close their connections; the handler (a real Python worker that logs every
request it runs) runs the slow one and the ten still wanted, nothing else, and the forty
are counted as cancelled in the metrics. The forty leave the queue while the slow one
still runs, so their sockets do not wait in CLOSE-WAIT for a worker to reach them."""
import re
import socket
import time

from conftest import run_wick

HANDLER = '''
import time

LOG = {log!r}


def handle(data, context):
    if data is None:
        return None
    out = []
    for row in data:
        body = row.get("body")
        if isinstance(body, (bytes, bytearray)):
            body = body.decode()
        with open(LOG, "a") as f:
            f.write(body + "\\n")
        if body == "slow":
            time.sleep(5)
        out.append("ran " + body)
    return out
'''


def send(port, body):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    data = body.encode()
    s.sendall(b"POST /predictions/logger HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
    return s


def read_reply(s):
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        assert chunk, "connection closed before a reply"
        got += chunk
    head, rest = got.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(rest) < length:
        chunk = s.recv(4096)
        assert chunk
        rest += chunk
    return int(head.split()[1]), rest[:length].decode()


def close_wait(port):
    """Server sockets on port whose client has closed and the server has not (CLOSE-WAIT)."""
    n = 0
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(f).read().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "08" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


def ran(log):
    return log.read_text().split() if log.exists() else []


def test_requests_whose_clients_left_never_run(serve, tmp_path):
    log = tmp_path / "ran.log"
    (tmp_path / "logger.py").write_text(HANDLER.format(log=str(log)))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("minWorkers: 1\nmaxWorkers: 1\nbatchSize: 1\nresponseTimeout: 60\n")
    (tmp_path / "dummy.txt").write_text("x")
    store = tmp_path / "store"
    store.mkdir()
    run_wick("pack", "--model-name", "logger", "--version", "1.0", "--serialized-file",
             tmp_path / "dummy.txt", "--handler", f"{tmp_path / 'logger.py'}:handle",
             "--config-file", cfg, "--export-path", store, "-f")
    s = serve("--model-store", store, "--models", "logger=logger.mar")
    port = s.ports["inference"]

    slow = send(port, "slow")
    for _ in range(200):
        if "slow" in ran(log):
            break
        time.sleep(0.05)
    assert ran(log) == ["slow"]
    waiting = {i: send(port, f"r{i}") for i in range(50)}
    time.sleep(1.0)  # all fifty are read and queued well before the slow one ends
    assert ran(log) == ["slow"]
    kept = [i for i in waiting if i % 5 == 0]
    for i in waiting:
        if i not in kept:
            waiting[i].close()
    # while the slow one still runs, the queue's monitor finds the forty gone: they are
    # answered (to nobody) and their sockets closed, not left in CLOSE-WAIT ([11] part 2)
    for _ in range(40):
        if close_wait(port) == 0:
            break
        time.sleep(0.05)
    assert close_wait(port) == 0
    assert ran(log) == ["slow"]

    assert read_reply(slow) == (200, "ran slow")
    for i in kept:
        assert read_reply(waiting[i]) == (200, f"ran r{i}")
        waiting[i].close()
    # the event threads queue them in the order they read them, not the order they were sent
    assert ran(log)[0] == "slow"
    assert sorted(ran(log)[1:]) == sorted(f"r{i}" for i in kept)

    text = s.metrics().body.decode()
    m = re.search(r'wick_model_requests_total\{[^}]*model_name="logger"[^}]*result="cancelled"\} (\d+)', text)
    assert m and int(m.group(1)) == 40, text[-3000:]
    # the server goes on serving
    r = s.infer("POST", "/predictions/logger", "after", {"Content-Type": "text/plain"})
    assert r.status == 200 and r.body == b"ran after", r
