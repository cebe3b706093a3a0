"""[11] part 13: the threaded paths under load, with Python-handler models so that the same
tests run on the ThreadSanitizer build (`make test-tsan`, no libtorch) as well as here:
scaling while requests flow, unregistering a version while requests flow, response
timeouts that replace a stuck worker, and the drain at SIGTERM. Every answer is checked."""
import concurrent.futures as cf
import signal
import threading
import time

from conftest import SANITIZED, run_wick

ECHO = '''
import time


def handle(data, context):
    if data is None:
        return None
    out = []
    for row in data:
        body = row.get("body")
        if isinstance(body, (bytes, bytearray)):
            body = body.decode()
        if body.startswith("sleep "):
            time.sleep(float(body.split()[1]))
        out.append({"echo": body})
    return out
'''


def make(tmp_path, name, version="1.0", config="minWorkers: 1\nbatchSize: 4\nmaxBatchDelay: 5\n"):
    (tmp_path / "echo.py").write_text(ECHO)
    (tmp_path / f"{name}-{version}.yaml").write_text(config)
    (tmp_path / "dummy.txt").write_text("x")
    store = tmp_path / "store"
    store.mkdir(exist_ok=True)
    run_wick("pack", "--model-name", name, "--version", version, "--serialized-file",
             tmp_path / "dummy.txt", "--handler", f"{tmp_path / 'echo.py'}:handle", "--config-file",
             tmp_path / f"{name}-{version}.yaml", "--export-path", store, "-f")
    return store


def load(s, path, n, conns, prefix, ok=(200,)):
    """n requests over conns threads; returns the statuses, each 200 checked for its echo."""
    def one(i):
        body = f"{prefix} {i}"
        r = s.infer("POST", path, body, {"Content-Type": "text/plain"}, timeout=120)
        if r.status == 200:
            assert r.json()["echo"] == body, (r, body)
        else:
            assert r.status in ok, r
        return r.status

    with cf.ThreadPoolExecutor(conns) as pool:
        return list(pool.map(one, range(n)))


def test_scaling_while_requests_flow(serve, tmp_path):
    store = make(tmp_path, "echo")
    s = serve("--model-store", store, "--models", "echo=echo.mar", "--enable_model_api", "true")
    done = threading.Event()
    statuses = []

    def client(k):
        n = 0
        while not done.is_set():
            body = f"scaled {k} {n}"
            r = s.infer("POST", "/predictions/echo", body, {"Content-Type": "text/plain"}, timeout=120)
            assert r.status == 200 and r.json()["echo"] == body, r
            statuses.append(r.status)
            n += 1

    with cf.ThreadPoolExecutor(6) as pool:
        clients = [pool.submit(client, k) for k in range(6)]
        # up and down, waiting and not, while the clients keep sending
        for k, n in enumerate([3, 1, 2, 4, 1, 3, 2, 1]):
            sync = "true" if k % 2 else "false"
            r = s.mgmt("PUT", f"/models/echo?min_worker={n}&max_worker={n}&synchronous={sync}")
            assert r.status in (200, 202), r
            time.sleep(0.3)
        done.set()
        for c in clients:
            c.result()
    assert len(statuses) > 50
    r = s.mgmt("PUT", "/models/echo?min_worker=2&max_worker=2&synchronous=true")
    assert r.status == 200, r
    assert len(s.mgmt("GET", "/models/echo").json()[0]["workers"]) == 2


def test_unregistering_a_version_while_requests_flow(serve, tmp_path):
    store = make(tmp_path, "echo", "1.0")
    make(tmp_path, "echo2", "2.0")
    s = serve("--model-store", store, "--models", "echo=echo.mar", "--enable_model_api", "true")
    r = s.mgmt("POST", "/models?url=echo2.mar&model_name=echo&initial_workers=1")
    assert r.status == 200, r
    r = s.mgmt("PUT", "/models/echo/2.0/set-default")
    assert r.status == 200, r
    got = {"1.0": [], "2.0": []}
    done = threading.Event()

    def hammer(version, k):
        # the version being removed answers 200 until it goes, then 404 (503 while it
        # drains); never anything else, and the default version never fails
        n = 0
        while not done.is_set():
            body = f"v{version} {k} {n}"
            r = s.infer("POST", f"/predictions/echo/{version}", body, {"Content-Type": "text/plain"},
                        timeout=120)
            if r.status == 200:
                assert r.json()["echo"] == body, r
            else:
                assert version == "1.0" and r.status in (404, 503), r
            got[version].append(r.status)
            n += 1

    threads = [threading.Thread(target=hammer, args=(v, k)) for v in ("1.0", "2.0") for k in range(3)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    r = s.mgmt("DELETE", "/models/echo/1.0")
    assert r.status == 200, r
    time.sleep(1.0)
    done.set()
    for t in threads:
        t.join()
    assert got["2.0"].count(200) == len(got["2.0"]) > 20
    assert 200 in got["1.0"] and got["1.0"][-1] == 404
    assert s.infer("POST", "/predictions/echo/1.0", "x").status == 404
    assert s.infer("POST", "/predictions/echo", "x").status == 200


def test_a_stuck_worker_is_answered_504_and_replaced_under_load(serve, tmp_path):
    store = make(tmp_path, "echo", config="minWorkers: 2\nmaxWorkers: 2\nbatchSize: 1\nresponseTimeout: 2\n")
    s = serve("--model-store", store, "--models", "echo=echo.mar")
    with cf.ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(lambda: s.infer("POST", "/predictions/echo", "sleep 30", timeout=60))
        time.sleep(0.3)
        statuses = load(s, "/predictions/echo", 60 if SANITIZED else 200, 4, "around")
        r = stuck.result()
    assert r.status == 504 and "response timeout" in r.json()["message"], r
    assert statuses.count(200) == len(statuses)
    workers = s.mgmt("GET", "/models/echo").json()[0]["workers"]
    assert len([w for w in workers if w["status"] != "ABANDONED"]) == 2, workers


def test_sigterm_drains_queued_requests(serve, tmp_path):
    store = make(tmp_path, "echo", config="minWorkers: 1\nmaxWorkers: 1\nbatchSize: 1\n")
    s = serve("--model-store", store, "--models", "echo=echo.mar", "--drain_timeout", "60")
    with cf.ThreadPoolExecutor(12) as pool:
        first = pool.submit(lambda: s.infer("POST", "/predictions/echo", "sleep 1", timeout=60))
        time.sleep(0.3)
        queued = [pool.submit(lambda i=i: s.infer("POST", "/predictions/echo", f"queued {i}", timeout=60))
                  for i in range(10)]
        time.sleep(0.5)
        s.proc.send_signal(signal.SIGTERM)
        assert first.result().status == 200
        for i, f in enumerate(queued):
            r = f.result()
            assert r.status == 200 and r.json()["echo"] == f"queued {i}", r
    assert s.proc.wait(60) == 0
