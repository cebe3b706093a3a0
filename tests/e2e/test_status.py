"""End-to-end: the operator's view, GET /status.json on the management port ([13] part 1):
what each model version is doing (workers, queue, totals, answers by status), its traffic
as samples of status_interval_ms with the sample in progress, the process, and the recent
error answers (a handler's failure, a worker that died, a registration that failed), behind
the management key when tokens are on."""
import json
import time

import pytest

from conftest import pack, run_wick, wait_for
from models import MLP, save_script

ROW = json.dumps([[0.5] * 16])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("store")
    src = tmp_path_factory.mktemp("src")
    save_script(MLP, src / "mlp.pt")
    pack(d, "mlp", src / "mlp.pt")
    (d / "junk.mar").write_bytes(b"this is not a model archive")
    return d


def status(s, headers=None):
    r = s.mgmt("GET", "/status.json", headers=headers) if headers else s.mgmt("GET", "/status.json")
    assert r.status == 200, r
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers.get("Cache-Control") == "no-store"
    return r.json()


def model_of(st, name):
    [m] = [m for m in st["models"] if m["name"] == name]
    return m


def all_samples(m):
    return m["samples"] + [m["current"]]



@pytest.mark.badinput
def test_status_json_shows_what_each_model_does(serve, store):
    s = serve("--model-store", store, "--models", "mlp=mlp.mar", "--status_interval_ms", "300")
    for _ in range(12):
        assert s.infer("POST", "/predictions/mlp", ROW).status == 200
    bad = s.infer("POST", "/predictions/mlp", json.dumps([[1.0, 2.0]]))
    assert bad.status == 400, bad
    assert s.infer("POST", "/predictions/nosuch", ROW).status == 404  # no model: not counted
    # a sample ends within an interval; every answer is in exactly one sample or the current one
    st = wait_for(lambda: (lambda st: st if any(x["requests"] for x in model_of(st, "mlp")["samples"])
                           else None)(status(s)))
    m = model_of(st, "mlp")
    assert (m["version"], m["default"], m["runtime"], m["handler"], m["device"]) == \
        ("1.0", True, "native", "tensor", "cpu")
    assert m["state"] == "ready" and st["healthy"] is True
    assert m["totals"]["ok"] == 12 and m["totals"]["client_errors"] == 1
    assert m["answers_by_status"] == {"200": 12, "400": 1}
    assert sum(x["requests"] for x in all_samples(m)) == 13
    assert sum(x["ok"] for x in all_samples(m)) == 12
    busy = [x for x in m["samples"] if x["requests"]]
    assert all(x["p50_ms"] > 0 and x["p99_ms"] >= x["p50_ms"] and x["batch_mean"] >= 1 for x in busy)
    assert all(x["rps"] > 0 for x in busy)
    assert m["sample_interval_ms"] == 300
    assert all(0.2 < x["seconds"] < 5 for x in m["samples"])
    ts = [x["t"] for x in m["samples"]]
    assert ts == sorted(ts) and abs(ts[-1] / 1000 - time.time()) < 30
    assert len(m["workers"]) == m["workers_live"] == m["workers_min"] >= 1
    assert all(w["state"] in ("idle", "busy") and w["device"] == "cpu" and w["restarts"] == 0
               for w in m["workers"])
    assert m["queue"] == {"depth": 0, "capacity": 100}
    err = st["recent_errors"][0]
    assert (err["model"], err["version"], err["status"]) == ("mlp", "1.0", 400)
    assert "[1,2]" in err["message"], err  # what the model was given
    proc = st["server"]
    assert proc["pid"] == s.proc.pid and proc["rss_bytes"] > 10 << 20
    assert proc["uptime_s"] > 0 and proc["registrations_running"] == 0
    assert isinstance(proc["gpus"], list)
    assert proc["model_api_enabled"] is False and proc["token_authorization"] is False
    # the view is the management port's only
    assert s.infer("GET", "/status.json").status == 404
    assert s.mgmt("POST", "/status.json").status == 405


def test_status_json_needs_the_management_key(serve, store, tmp_path):
    s = serve("--model-store", store, "--models", "mlp=mlp.mar",
              "--disable_token_authorization", "false", cwd=tmp_path)
    keys = json.loads((tmp_path / "key_file.json").read_text())
    assert s.mgmt("GET", "/status.json").status == 401
    inf = {"Authorization": "Bearer " + keys["inference"]["key"]}
    assert s.mgmt("GET", "/status.json", headers=inf).status == 401
    st = status(s, {"Authorization": "Bearer " + keys["management"]["key"]})
    assert [m["name"] for m in st["models"]] == ["mlp"]


ECHO_PY = '''
import os


def handle(data, context):
    if data is None:
        return None
    out = []
    for row in data:
        body = row.get("body")
        if isinstance(body, (bytes, bytearray)):
            body = body.decode()
        if body == "die":
            os.kill(os.getpid(), 9)
        if body == "boom":
            raise ValueError("boom requested")
        out.append(body)
    return out
'''


@pytest.mark.badinput
def test_a_dead_worker_and_a_failed_registration_are_shown(serve, store, tmp_path):
    (tmp_path / "echo.py").write_text(ECHO_PY)
    (tmp_path / "dummy.txt").write_text("x")
    run_wick("pack", "--model-name", "echo", "--version", "2.0", "--serialized-file",
             tmp_path / "dummy.txt", "--handler", f"{tmp_path / 'echo.py'}:handle",
             "--export-path", store, "-f")
    s = serve("--model-store", store, "--models", "echo=echo.mar", "--enable_model_api", "true",
              "--default_workers_per_model", "1")
    assert s.infer("POST", "/predictions/echo", "die").status == 503
    assert s.infer("POST", "/predictions/echo", "boom").status == 503
    assert s.infer("POST", "/predictions/echo", "hi").status == 200
    assert s.mgmt("POST", "/models?url=junk.mar").status == 400
    st = status(s)
    m = model_of(st, "echo")
    assert m["runtime"] == "python"
    [w] = m["workers"]
    assert w["restarts"] == 1 and "signal 9" in w["last_crash_reason"], w
    errs = st["recent_errors"]
    assert errs[0]["model"] == "junk.mar" and errs[0]["status"] == 400, errs[0]
    assert errs[0]["version"] == ""
    assert [e["status"] for e in errs if e["model"] == "echo"] == [503, 503, None]
    crash = [e for e in errs if e["status"] is None][0]
    assert crash["version"] == "2.0" and f"worker {w['id']}" in crash["message"], crash
    assert m["answers_by_status"] == {"200": 1, "503": 2}
