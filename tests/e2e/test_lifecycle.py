"""End-to-end: lifecycle endpoints an orchestrator can trust ([13] part 3). A model still
loading, or whose load failed, is not ready (per-model readiness on v1 and v2, and the
server's /v2/health/ready after a failure) while /ping keeps TorchServe's rule; a native
load is bounded by the startup timeout (abandoned there, the model marked failed, the
other models serving on); a Python worker that keeps dying is restarted with a growing
back-off and its model is marked failed instead of being restarted forever."""
import json
import os
import threading
import time

import pytest

from conftest import pack, pack_python, proc_stat, wait_for
from models import MLP, save_script

ROW = json.dumps([[0.5] * 16])
API_ON = ("--enable_model_api", "true")


@pytest.fixture
def store(tmp_path):
    """mlp.mar, and slow/: a model folder whose serialized file is a FIFO no one writes,
    so that reading it blocks (a load that never ends, as on a hung network disk)."""
    d = tmp_path / "store"
    d.mkdir()
    save_script(MLP, tmp_path / "mlp.pt")
    pack(d, "mlp", tmp_path / "mlp.pt")
    slow = d / "slow"
    (slow / "MAR-INF").mkdir(parents=True)
    (slow / "MAR-INF" / "MANIFEST.json").write_text(json.dumps(
        {"runtime": "python", "archiverVersion": "0.12.0",
         "model": {"modelName": "slow", "modelVersion": "1.0", "handler": "tensor",
                   "serializedFile": "model.pt"}}))
    os.mkfifo(slow / "model.pt")
    yield d
    # let the abandoned load end: a writer that closes at once gives it an empty file
    try:
        os.close(os.open(slow / "model.pt", os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # ENXIO: nobody has it open for reading (any more)
        pass


def ready(s, name, v1=False):
    r = s.infer("GET", f"/v1/models/{name}" if v1 else f"/v2/models/{name}/ready")
    return r.status, r.json()


def test_a_load_that_hangs_is_abandoned_at_the_startup_timeout(serve, store):
    s = serve("--model-store", store, "--models", "mlp=mlp.mar", *API_ON)
    reply = {}

    def register():
        t = time.time()
        reply["r"] = s.mgmt("POST", "/models?url=slow&startup_timeout=3&initial_workers=1"
                                    "&synchronous=true")
        reply["took"] = time.time() - t

    th = threading.Thread(target=register)
    th.start()
    # while it loads: not ready, and says so; the other model serves on; /ping is TorchServe's
    status, body = wait_for(lambda: (lambda r: r if r[1].get("state") == "loading" else None)(
        ready(s, "slow")))
    assert status == 400 and body == {"name": "slow", "ready": False, "state": "loading",
                                      "reason": ""}, body
    status, body = ready(s, "slow", v1=True)
    assert status == 503 and body["ready"] is False and body["state"] == "loading"
    assert s.infer("POST", "/predictions/mlp", ROW).status == 200
    assert s.infer("GET", "/v2/health/ready").status == 200  # a registration does not unready a pod
    st = s.mgmt("GET", "/status.json").json()
    assert [(x["name"], x["state"]) for x in st["loads"]] == [("slow", "loading")]
    th.join(timeout=30)
    r = reply["r"]
    assert r.status == 500, r
    assert "startup timeout" in r.json()["message"] and "3 s" in r.json()["message"], r.json()
    assert 2.5 < reply["took"] < 15, reply["took"]
    # after: failed, with the reason, on every readiness route; /ping keeps TorchServe's rule
    status, body = ready(s, "slow")
    assert status == 400 and body["state"] == "failed" and "startup timeout" in body["reason"]
    status, body = ready(s, "slow", v1=True)
    assert status == 503 and body["state"] == "failed"
    r = s.infer("GET", "/v2/health/ready")
    assert r.status == 400 and r.json() == {"ready": False}
    assert s.infer("GET", "/ping").status == 200
    assert ready(s, "mlp") == (200, {"name": "mlp", "ready": True})
    assert s.infer("POST", "/predictions/mlp", ROW).status == 200
    idx = s.infer("POST", "/v2/repository/index", "{}").json()
    assert {"name": "slow", "state": "UNAVAILABLE"}.items() <= \
        [e for e in idx if e["name"] == "slow"][0].items()
    st = s.mgmt("GET", "/status.json").json()
    [load] = st["loads"]
    assert load["state"] == "failed" and "startup timeout" in load["reason"] and st["ready"] is False
    # unregistering the name forgets the failure: the pod is ready again
    r = s.mgmt("DELETE", "/models/slow")
    assert r.status == 200 and "forgotten" in r.json()["status"], r
    assert s.infer("GET", "/v2/health/ready").status == 200
    assert s.infer("GET", "/v2/models/slow/ready").status == 404
    assert s.mgmt("DELETE", "/models/slow").status == 404


def test_a_model_that_failed_at_startup_is_not_ready(serve, store, tmp_path):
    (store / "broken.mar").write_bytes(b"not an archive")
    s = serve("--model-store", store, "--models", "mlp=mlp.mar,broken=broken.mar")
    status, body = ready(s, "broken")
    assert status == 400 and body["state"] == "failed" and body["reason"], body
    assert s.infer("GET", "/v2/health/ready").status == 400
    assert s.infer("GET", "/ping").status == 200  # TorchServe's rule: registered models only
    assert s.infer("GET", "/v2/models/nosuch/ready").status == 404
    # registering the name successfully supersedes the failure
    s2 = serve("--model-store", store, "--models", "mlp=mlp.mar,broken=broken.mar", *API_ON)
    assert s2.infer("GET", "/v2/health/ready").status == 400
    r = s2.mgmt("POST", "/models?url=mlp.mar&model_name=broken&initial_workers=1&synchronous=true")
    assert r.status == 200, r
    assert ready(s2, "broken") == (200, {"name": "broken", "ready": True})
    assert s2.infer("GET", "/v2/health/ready").status == 200



CRASHY_PY = '''
import os

BROKEN = {broken!r}
if os.path.exists(BROKEN):
    raise RuntimeError("cannot start: " + BROKEN + " exists")


def handle(data, context):
    if data is None:
        return None
    out = []
    for row in data:
        body = row.get("body")
        if isinstance(body, (bytes, bytearray)):
            body = body.decode()
        if body == "break":
            open(BROKEN, "w").close()
            os.kill(os.getpid(), 9)
        out.append(body)
    return out
'''


@pytest.mark.badinput
def test_a_worker_that_keeps_dying_fails_its_model_instead_of_restarting_forever(serve, tmp_path):
    broken = tmp_path / "broken"
    store = tmp_path / "store"
    store.mkdir()
    pack_python(tmp_path, store, "crashy", CRASHY_PY.format(broken=str(broken)))
    s = serve("--model-store", store, "--models", "crashy=crashy.mar",
              "--default_workers_per_model", "1")
    assert s.infer("POST", "/predictions/crashy", "hi").status == 200
    t0 = time.time()
    assert s.infer("POST", "/predictions/crashy", "break").status == 503
    # no more traffic: the worker restarts by itself, 1 s, 2 s, 4 s, 8 s apart, and each
    # start fails; the fifth death in a row fails the model
    st = wait_for(lambda: (lambda st: st if st["models"][0]["state"] == "failed" else None)(
        s.mgmt("GET", "/status.json").json()), timeout=90)
    took = time.time() - t0
    assert took > 14, took  # rests of 1+2+4+8 s: no hot loop
    m = st["models"][0]
    [w] = m["workers"]
    assert w["restarts"] == 5 and "cannot start" in w["last_crash_reason"], w
    crashes = [e for e in st["recent_errors"] if e["status"] is None]
    assert len(crashes) == 5
    logs = s.logs()
    for ms in (1000, 2000, 4000, 8000):
        assert f"restarts in {ms} ms" in logs
    assert "died 5 times in a row" in logs
    # failed: answered at once with why; not ready; TorchServe's /ping says Unhealthy
    t = time.time()
    r = s.infer("POST", "/predictions/crashy", "hi")
    assert r.status == 503 and "died 5 times in a row" in r.json()["message"], r
    assert time.time() - t < 2
    status, body = ready(s, "crashy")
    assert status == 400 and body["state"] == "failed" and "died 5 times" in body["reason"]
    assert s.infer("GET", "/ping").status == 500
    assert s.infer("GET", "/v2/health/ready").status == 400
    time.sleep(3)  # and it stays down: no restart while failed
    assert s.mgmt("GET", "/status.json").json()["models"][0]["workers"][0]["restarts"] == 5
    # the operator fixes the cause and scales: it serves again
    broken.unlink()
    r = s.mgmt("PUT", "/models/crashy?min_worker=1&max_worker=1&synchronous=true")
    assert r.status == 200, r
    assert s.infer("POST", "/predictions/crashy", "again").status == 200
    assert ready(s, "crashy")[0] == 200 and s.infer("GET", "/ping").status == 200


ECHO_PY = '''
def handle(data, context):
    if data is None:
        return None
    return [row.get("body").decode() if isinstance(row.get("body"), (bytes, bytearray))
            else row.get("body") for row in data]
'''


def python_worker_pids(server_pid):
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        st = proc_stat(d)
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if st and st[2] == server_pid and b"wick_worker" in cmd and st[0] != "wick-template":
            pids.append(int(d))
    return pids


@pytest.mark.badinput
def test_a_worker_killed_while_idle_is_replaced_before_its_next_batch(serve, tmp_path):
    """A Python worker's process killed while it waits for work (the soak's chaos, an OOM
    kill) is found dead when its next batch comes and replaced for that batch: no request
    fails for it (the batch used to get 503 'killed by signal 9')."""
    store = tmp_path / "store"
    store.mkdir()
    pack_python(tmp_path, store, "echo", ECHO_PY)
    s = serve("--model-store", store, "--models", "echo=echo.mar", "--default_workers_per_model", "2")
    assert s.infer("POST", "/predictions/echo", "hi").status == 200
    # the second worker starts on its own thread after the load: wait for its process
    pids = wait_for(lambda: len(python_worker_pids(s.proc.pid)) == 2 and python_worker_pids(s.proc.pid))
    for pid in pids:
        os.kill(pid, 9)
    time.sleep(0.5)
    for i in range(8):
        r = s.infer("POST", "/predictions/echo", f"after {i}")
        assert r.status == 200 and r.body == f"after {i}".encode(), r
    assert "while idle" in s.logs()
    st = s.mgmt("GET", "/status.json").json()
    assert sum(w["restarts"] for w in st["models"][0]["workers"]) >= 1
    assert st["models"][0]["state"] == "ready"
