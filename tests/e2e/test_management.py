"""End-to-end: the management API (register, scale, describe, list, set-default,
unregister) against the real binary, with TorchServe's status codes and messages, model
store confinement, allowed_urls downloads from a local server, and unregistering a model
while predictions keep arriving."""
import http.server
import os
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import torch

from conftest import pack
from models import MLP, save_script

API_ON = ("--enable_model_api", "true")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """mlp.mar (mlp 1.0) and mlp2.mar (mlp2 2.0, other weights), and the torch modules."""
    d = tmp_path_factory.mktemp("store")
    src = tmp_path_factory.mktemp("src")
    m1 = save_script(MLP, src / "mlp.pt", seed=0)
    pack(d, "mlp", src / "mlp.pt")
    m2 = save_script(MLP, src / "mlp2.pt", seed=1)
    pack(d, "mlp2", src / "mlp2.pt", version="2.0")
    (d / "junk.mar").write_bytes(b"this is not a model archive")
    return d, {"1.0": m1, "2.0": m2}


X = torch.arange(32, dtype=torch.float32).reshape(2, 16) / 32


def predict(s, path):
    return s.infer("POST", path, {"data": X.tolist()})


def assert_output(reply, module):
    assert reply.status == 200, reply
    got = torch.tensor(reply.json(), dtype=torch.float32)
    assert torch.allclose(got, module(X), atol=1e-6, rtol=0)


def assert_error(reply, code, type_, message=None):
    assert reply.status == code, reply
    body = reply.json()
    assert body["code"] == code and body["type"] == type_, body
    if message is not None:
        assert message in body["message"], body


def register(s, query, **kw):
    return s.mgmt("POST", "/models?" + query, **kw)


def test_register_describe_predict_unregister(serve, store):
    d, models = store
    s = serve("--model-store", d, *API_ON)
    assert s.mgmt("GET", "/models").json() == {"models": []}
    r = register(s, "url=mlp.mar&initial_workers=1&synchronous=true")
    assert r.status == 200, r
    assert r.json() == {"status": 'Model "mlp" Version: 1.0 registered with 1 initial workers'}
    assert s.mgmt("GET", "/models").json() == {"models": [{"modelName": "mlp", "modelUrl": "mlp.mar"}]}
    (desc,) = s.mgmt("GET", "/models/mlp").json()
    assert desc["modelName"] == "mlp" and desc["modelVersion"] == "1.0"
    assert desc["minWorkers"] == 1 and len(desc["workers"]) == 1
    assert desc["loadedAtStartup"] is False
    assert_output(predict(s, "/predictions/mlp"), models["1.0"])

    # the same name and version again
    assert_error(register(s, "url=mlp.mar&initial_workers=1"), 409, "ConflictStatusException",
                 "Model version 1.0 is already registered for model mlp")

    r = s.mgmt("DELETE", "/models/mlp")
    assert r.status == 200 and r.json() == {"status": 'Model "mlp" unregistered'}
    assert_error(s.mgmt("GET", "/models/mlp"), 404, "ModelNotFoundException", "Model not found: mlp")
    assert_error(predict(s, "/predictions/mlp"), 404, "ModelNotFoundException")
    assert_error(s.mgmt("DELETE", "/models/mlp"), 404, "ModelNotFoundException", "Model not found: mlp")
    assert s.mgmt("GET", "/models").json() == {"models": []}
    assert s.infer("GET", "/ping").json() == {"status": "Healthy"}


def test_register_without_initial_workers_then_scale(serve, store):
    d, models = store
    s = serve("--model-store", d, *API_ON)
    r = register(s, "url=mlp.mar")
    assert r.status == 200, r
    assert r.json() == {"status": 'Model "mlp" Version: 1.0 registered with 0 initial workers. '
                                  'Use scale workers API to add workers for the model.'}
    (desc,) = s.mgmt("GET", "/models/mlp").json()
    assert desc["minWorkers"] == 0 and desc["workers"] == []

    r = s.mgmt("PUT", "/models/mlp?min_worker=2&synchronous=true")
    assert r.status == 200 and r.json() == {"status": "Workers scaled to 2 for model: mlp"}, r
    (desc,) = s.mgmt("GET", "/models/mlp").json()
    assert desc["minWorkers"] == 2 and desc["maxWorkers"] == 2 and len(desc["workers"]) == 2
    assert_output(predict(s, "/predictions/mlp"), models["1.0"])

    r = s.mgmt("PUT", "/models/mlp/1.0?min_worker=1&max_worker=3&synchronous=true")
    assert r.status == 200 and r.json() == {"status": "Workers scaled to 1 for model: mlp, version: 1.0"}, r
    r = s.mgmt("PUT", "/models/mlp?min_worker=1")
    assert r.status == 202 and r.json() == {"status": "Processing worker updates..."}, r
    assert_error(s.mgmt("PUT", "/models/mlp?min_worker=3&max_worker=2"), 400, "BadRequestException",
                 "max_worker cannot be less than min_worker.")
    # as TorchServe: a count that is no number is the default (1), with a warning in the log
    r = s.mgmt("PUT", "/models/mlp?min_worker=x&synchronous=true")
    assert r.status == 200 and r.json() == {"status": "Workers scaled to 1 for model: mlp"}, r
    assert "min_worker='x' is not an integer; ignored" in s.logs()
    assert_error(s.mgmt("PUT", "/models/mlp?min_worker=-1"), 400, "BadRequestException")
    assert_error(s.mgmt("PUT", "/models/nope?min_worker=1"), 404, "ModelNotFoundException",
                 "Model not found: nope")
    assert_error(s.mgmt("PUT", "/models/mlp/9.9?min_worker=1"), 404, "ModelVersionNotFoundException",
                 "Model version: 9.9 does not exist for model: mlp")
    assert_output(predict(s, "/predictions/mlp"), models["1.0"])


def test_register_with_a_json_body_and_async(serve, store):
    d, models = store
    s = serve("--model-store", d, *API_ON)
    r = s.mgmt("POST", "/models", {"url": "mlp.mar", "model_name": "j", "initial_workers": 1,
                                   "synchronous": False, "batch_size": 4, "max_batch_delay": 7,
                                   "response_timeout": 9},
               headers={"Content-Type": "application/json"})
    assert r.status == 202 and r.json() == {"status": "Processing worker updates..."}, r
    (desc,) = s.mgmt("GET", "/models/j").json()
    assert desc["modelUrl"] == "mlp.mar"
    assert (desc["batchSize"], desc["maxBatchDelay"], desc["responseTimeout"]) == (4, 7, 9)
    deadline = time.time() + 30
    while time.time() < deadline:
        r = predict(s, "/predictions/j")
        if r.status == 200:
            break
        time.sleep(0.1)
    assert_output(r, models["1.0"])
    assert_error(s.mgmt("POST", "/models", {"url": "mlp.mar", "initial_workers": "many"},
                        headers={"Content-Type": "application/json"}),
                 400, "BadRequestException", "initial_workers")
    assert_error(s.mgmt("POST", "/models", b"{not json", headers={"Content-Type": "application/json"}),
                 400, "BadRequestException", "not valid JSON")
    assert_error(s.mgmt("POST", "/models", {"model_name": "x"}, headers={"Content-Type": "application/json"}),
                 400, "BadRequestException", "Parameter url is required.")


def test_versions_default_and_set_default(serve, store):
    d, models = store
    s = serve("--model-store", d, *API_ON)
    assert register(s, "url=mlp.mar&initial_workers=1").status == 200
    r = register(s, "url=mlp2.mar&model_name=mlp&initial_workers=1")
    assert r.status == 200 and r.json() == {"status": 'Model "mlp" Version: 2.0 registered with 1 initial workers'}
    # both versions serve at once; the first one registered is the default
    assert_output(predict(s, "/predictions/mlp"), models["1.0"])
    assert_output(predict(s, "/predictions/mlp/1.0"), models["1.0"])
    assert_output(predict(s, "/predictions/mlp/2.0"), models["2.0"])
    assert [x["modelVersion"] for x in s.mgmt("GET", "/models/mlp/all").json()] == ["1.0", "2.0"]
    assert s.mgmt("GET", "/models/mlp").json()[0]["modelVersion"] == "1.0"
    assert s.mgmt("GET", "/models/mlp/2.0").json()[0]["modelVersion"] == "2.0"
    assert_error(s.mgmt("GET", "/models/mlp/3.0"), 404, "ModelVersionNotFoundException",
                 "Model version: 3.0 does not exist for model: mlp")

    r = s.mgmt("PUT", "/models/mlp/2.0/set-default")
    assert r.status == 200
    assert r.json() == {"status": 'Default version successfully updated for model "mlp" to "2.0"'}
    assert_output(predict(s, "/predictions/mlp"), models["2.0"])
    assert s.mgmt("GET", "/models").json()["models"] == [{"modelName": "mlp", "modelUrl": "mlp2.mar"}]
    assert_error(s.mgmt("PUT", "/models/mlp/3.0/set-default"), 404, "ModelVersionNotFoundException")
    assert_error(s.mgmt("PUT", "/models/nope/1.0/set-default"), 404, "ModelNotFoundException",
                 "Model not found: nope")

    # the default version goes last
    assert_error(s.mgmt("DELETE", "/models/mlp"), 403, "InvalidModelVersionException",
                 "Cannot remove default version for model mlp")
    assert_error(s.mgmt("DELETE", "/models/mlp/2.0"), 403, "InvalidModelVersionException")
    assert_error(s.mgmt("DELETE", "/models/mlp/9.9"), 404, "ModelVersionNotFoundException",
                 "Model version: 9.9 does not exist for model: mlp")
    r = s.mgmt("DELETE", "/models/mlp/1.0")
    assert r.status == 200 and r.json() == {"status": 'Model "mlp" unregistered'}
    assert_error(predict(s, "/predictions/mlp/1.0"), 404, "ModelVersionNotFoundException")
    assert_output(predict(s, "/predictions/mlp"), models["2.0"])
    assert [x["modelVersion"] for x in s.mgmt("GET", "/models/mlp/all").json()] == ["2.0"]
    assert s.mgmt("DELETE", "/models/mlp").status == 200
    assert_error(s.mgmt("GET", "/models/mlp/all"), 404, "ModelNotFoundException")


def test_list_pagination(serve, store):
    d, _ = store
    s = serve("--model-store", d, *API_ON)
    for name in ("c", "a", "b"):
        assert register(s, f"url=mlp.mar&model_name={name}").status == 200
    r = s.mgmt("GET", "/models?limit=2").json()
    assert [m["modelName"] for m in r["models"]] == ["a", "b"]
    r = s.mgmt("GET", f"/models?limit=2&next_page_token={r['nextPageToken']}").json()
    assert r == {"models": [{"modelName": "c", "modelUrl": "mlp.mar"}]}
    # TorchServe 0.12 gives a token whenever start + limit <= the number of models, so a
    # page that ends at the last model has one too (found by tests/compat)
    r = s.mgmt("GET", "/models?limit=1&next_page_token=2").json()
    assert r == {"models": [{"modelName": "c", "modelUrl": "mlp.mar"}], "nextPageToken": "3"}
    desc = s.mgmt("GET", "/models/a").json()[0]
    for key, value in {"startupTimeout": 120, "maxRetryTimeoutInSec": 300,
                       "clientTimeoutInMills": 0, "parallelType": "", "parallelLevel": 0,
                       "deviceType": "cpu", "continuousBatching": False, "useJobTicket": False,
                       "useVenv": False, "stateful": False, "sequenceMaxIdleMSec": 0,
                       "sequenceTimeoutMSec": 0, "maxNumSequence": 0,
                       "maxSequenceJobQueueSize": 0}.items():
        assert desc[key] == value, (key, desc)
    # TorchServe's reading of the paging parameters: 0 is an empty page, anything out of
    # 0..100 or not a number is 100, a negative token 0
    r = s.mgmt("GET", "/models?limit=0").json()
    assert r == {"models": [], "nextPageToken": "0"}, r
    for q in ("limit=abc", "limit=-1", "limit=1000", "limit=", "next_page_token=-4"):
        r = s.mgmt("GET", "/models?" + q).json()
        assert [m["modelName"] for m in r["models"]] == ["a", "b", "c"] and "nextPageToken" not in r, (q, r)


@pytest.mark.badinput
def test_urls_stay_inside_the_model_store(serve, store, tmp_path):
    d, _ = store
    outside = tmp_path / "outside"
    outside.mkdir()
    (d / "sub").mkdir(exist_ok=True)
    s = serve("--model-store", d, *API_ON)
    for url in ("../mlp.mar", "sub/../../mlp.mar", "..", f"../{outside.name}"):
        assert_error(register(s, "url=" + quote(url, safe="")), 400, "BadRequestException",
                     "Relative path is not allowed in url")
    for url in (str(d / "mlp.mar"), "/etc/passwd"):
        assert_error(register(s, "url=" + quote(url, safe="")), 400, "BadRequestException",
                     "Absolute paths are not allowed in url")
    assert_error(register(s, "url=missing.mar"), 404, "ModelNotFoundException", "Model not found at: missing.mar")
    assert_error(register(s, "model_name=x"), 400, "BadRequestException", "Parameter url is required.")
    assert_error(register(s, "url=junk.mar"), 400, "InvalidModelException", "is not a model archive")
    # allowed_urls is not set: no URL of any scheme is fetched
    for url in ("http://127.0.0.1:9/mlp.mar", "https://example.com/mlp.mar", "file:///etc/passwd"):
        assert_error(register(s, "url=" + quote(url, safe="")), 404, "ModelNotFoundException",
                     f"Given URL {url} does not match any allowed URL(s)")
    assert s.mgmt("GET", "/models").json() == {"models": []}
    assert sorted(p.name for p in d.iterdir() if p.name.startswith(".")) == []


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/redirect-out/"):
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.2:9/" + self.path.rsplit("/", 1)[1])
            self.end_headers()
            return
        if self.path.startswith("/trickle/"):  # 2 bytes a second, as the audit's server did
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(60):
                    self.wfile.write(b"xx")
                    self.wfile.flush()
                    time.sleep(1)
            except OSError:
                pass
            return
        if self.path.startswith("/redirect-in/"):
            self.send_response(302)
            self.send_header("Location", "/" + self.path.rsplit("/", 1)[1])
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture
def web(tmp_path, store):
    """A local http.server on 127.0.0.1 serving remote.mar (mlp 1.0) and remote2.mar."""
    root = tmp_path / "web"
    root.mkdir()
    d, _ = store
    (root / "remote.mar").write_bytes((d / "mlp.mar").read_bytes())
    (root / "remote2.mar").write_bytes((d / "mlp2.mar").read_bytes())
    handler = lambda *a, **kw: _Handler(*a, directory=str(root), **kw)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_allowed_urls_download_and_serve(serve, store, web, tmp_path):
    d, models = store
    local = tmp_path / "store"
    local.mkdir()
    port = web.rsplit(":", 1)[1]
    s = serve("--model-store", local, *API_ON,
              "--allowed_urls", rf"https://example\.invalid/.*,http://127\.0\.0\.1:{port}/.*")
    url = f"{web}/remote.mar"
    r = register(s, "initial_workers=1&url=" + quote(url, safe=""))
    assert r.status == 200, r
    assert r.json() == {"status": 'Model "mlp" Version: 1.0 registered with 1 initial workers'}
    assert (local / "remote.mar").read_bytes() == (d / "mlp.mar").read_bytes()
    assert s.mgmt("GET", "/models").json() == {"models": [{"modelName": "mlp", "modelUrl": url}]}
    assert_output(predict(s, "/predictions/mlp"), models["1.0"])

    # the same file again: TorchServe's answer
    assert_error(register(s, "model_name=again&url=" + quote(url, safe="")), 500,
                 "InternalServerException", "Model file already exists remote.mar")
    # not matching the patterns (another port), a missing file, a redirect that leaves them
    other = f"http://127.0.0.1:{int(port) + 1}/remote2.mar"
    assert_error(register(s, "url=" + quote(other, safe="")), 404, "ModelNotFoundException",
                 "does not match any allowed URL(s)")
    assert_error(register(s, "url=" + quote(f"{web}/nothing.mar", safe="")), 400,
                 "DownloadArchiveException", "404")
    assert_error(register(s, "url=" + quote(f"{web}/redirect-out/remote2.mar", safe="")), 400,
                 "DownloadArchiveException", "refused")
    # a redirect that stays inside the allowed URLs is followed
    r = register(s, "model_name=m2&initial_workers=1&url=" + quote(f"{web}/redirect-in/remote2.mar", safe=""))
    assert r.status == 200, r
    assert_output(predict(s, "/predictions/m2"), models["2.0"])
    assert sorted(p.name for p in local.iterdir()) == ["remote.mar", "remote2.mar"]

    # unregistering a downloaded model removes its file, so it can be registered again
    assert s.mgmt("DELETE", "/models/mlp").status == 200
    assert not (local / "remote.mar").exists()
    assert register(s, "url=" + quote(url, safe="")).status == 200


def test_model_api_disabled_by_default(serve, store):
    d, models = store
    s = serve("--model-store", d, "--models", "mlp=mlp.mar")
    assert_error(register(s, "url=mlp2.mar"), 405, "MethodNotAllowedException", "enable_model_api")
    assert_error(s.mgmt("DELETE", "/models/mlp"), 405, "MethodNotAllowedException", "enable_model_api")
    # the models given at startup load and serve; reading and scaling stay allowed
    assert_output(predict(s, "/predictions/mlp"), models["1.0"])
    assert s.mgmt("GET", "/models/mlp").status == 200
    assert s.mgmt("PUT", "/models/mlp?min_worker=1&synchronous=true").status == 200
    s2 = serve("--model-store", d, "--enable_model_api", "false")
    assert_error(register(s2, "url=mlp.mar"), 405, "MethodNotAllowedException")
    s3 = serve("--model-store", d, "--enable-model-api")  # torchserve's flag
    assert register(s3, "url=mlp.mar").status == 200


def test_unregister_under_load(serve, store):
    """Predictions keep arriving while the model is unregistered: each one is answered
    200, 404 or 503, none hangs, and the server stays healthy."""
    d, models = store
    s = serve("--model-store", d, *API_ON, "--models", "mlp=mlp.mar", "keep=mlp2.mar")
    assert s.mgmt("PUT", "/models/mlp?min_worker=2&synchronous=true").status == 200
    stop = threading.Event()
    statuses, failures = [], []

    def client():
        while not stop.is_set():
            try:
                r = predict(s, "/predictions/mlp")
                statuses.append(r.status)
                if r.status == 200:
                    assert_output(r, models["1.0"])
            except Exception as e:  # a timeout or a broken connection is a failure
                failures.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    t0 = time.time()
    r = s.mgmt("DELETE", "/models/mlp", timeout=30)
    assert r.status == 200, r
    assert time.time() - t0 < 20
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive(), "a prediction hung"
    assert not failures, failures[:5]
    assert set(statuses) <= {200, 404, 503}, set(statuses)
    assert 200 in statuses and 404 in statuses
    assert s.infer("GET", "/ping").json() == {"status": "Healthy"}
    assert_output(predict(s, "/predictions/keep"), models["2.0"])
    # the name can be registered again
    assert register(s, "url=mlp.mar&initial_workers=1").status == 200
    assert_output(predict(s, "/predictions/mlp"), models["1.0"])


def test_prediction_for_an_unknown_version_is_model_version_not_found(serve, store):
    # TorchServe 0.12's answers, found by tests/compat
    d, _ = store
    s = serve("--model-store", d, "--models", "mlp=mlp.mar")
    assert_error(predict(s, "/predictions/mlp/9.9"), 404, "ModelVersionNotFoundException",
                 "Model version: 9.9 does not exist for model: mlp")
    assert_error(predict(s, "/predictions/nothere/1.0"), 404, "ModelNotFoundException",
                 "Model not found: nothere")


@pytest.mark.badinput
def test_a_trickling_download_is_given_up(serve, store, web, tmp_path):
    local = tmp_path / "store"
    local.mkdir()
    port = web.rsplit(":", 1)[1]
    cfg = tmp_path / "c.properties"
    cfg.write_text(f"download_timeout=3\nallowed_urls=http://127\\.0\\.0\\.1:{port}/.*\n")
    s = serve("--model-store", local, *API_ON, "--ts-config", cfg)
    t0 = time.time()
    r = register(s, "url=" + quote(f"{web}/trickle/slow.mar", safe=""))
    assert_error(r, 400, "DownloadArchiveException", "longer than download_timeout (3 s)")
    assert time.time() - t0 < 20
    assert not (local / "slow.mar").exists()
    assert s.mgmt("GET", "/models").status == 200


def test_a_registration_does_not_hold_the_management_port(serve, store, web, tmp_path):
    """[11] part 6: a registration runs off the port's event thread; a slow download (the
    audit's held GET /models for 23 s) leaves listing and describing answered at once."""
    local = tmp_path / "store"
    local.mkdir()
    d, _ = store
    (local / "mlp.mar").write_bytes((d / "mlp.mar").read_bytes())
    port = web.rsplit(":", 1)[1]
    cfg = tmp_path / "c.properties"
    cfg.write_text(f"download_timeout=5\nallowed_urls=http://127\\.0\\.0\\.1:{port}/.*\n")
    s = serve("--model-store", local, *API_ON, "--ts-config", cfg, "--models", "mlp=mlp.mar")
    got = {}
    t = threading.Thread(target=lambda: got.update(
        r=register(s, "url=" + quote(f"{web}/trickle/slow.mar", safe=""))))
    t0 = time.time()
    t.start()
    time.sleep(1.0)
    for path in ("/models", "/models/mlp"):
        t1 = time.time()
        r = s.mgmt("GET", path, timeout=10)
        assert r.status == 200, r
        assert time.time() - t1 < 2.0, f"GET {path} waited for the registration"
    assert "r" not in got  # the download still runs
    t.join(30)
    assert_error(got["r"], 400, "DownloadArchiveException", "download_timeout (5 s)")
    assert time.time() - t0 >= 4


def _bulky_archives(tmp_path, fmt=None):
    """Two archives (mlp, mlp_b) that each unpack to about 4 MB (zeros: a few KB packed)."""
    src = tmp_path / "bulk"
    src.mkdir()
    save_script(MLP, src / "mlp.pt")
    (src / "zeros.bin").write_bytes(bytes(4 << 20))
    d = tmp_path / "bulkstore"
    d.mkdir()
    for name in ("mlp", "mlp_b"):
        pack(d, name, src / "mlp.pt", extra=(src / "zeros.bin",), fmt=fmt)
    return d


@pytest.mark.badinput
@pytest.mark.parametrize("fmt", [None, "tgz"])
def test_unpacked_size_limits(serve, tmp_path, fmt):
    """[11] part 6: max_unpacked_archive_size bounds one archive (checked before anything is
    written), max_unpacked_total_size all unpacked models together; unregistering frees
    its share."""
    d = _bulky_archives(tmp_path, fmt)
    ext = ".tar.gz" if fmt else ".mar"
    cfg = tmp_path / "small.properties"
    cfg.write_text("max_unpacked_archive_size=1000000\n")
    s = serve("--model-store", d, *API_ON, "--ts-config", cfg)
    r = register(s, f"url=mlp{ext}")
    assert_error(r, 400, "InvalidModelException", "max_unpacked_archive_size is 1000000 bytes")
    assert "more than the 1000000 bytes allowed" in r.json()["message"], r
    assert s.mgmt("GET", "/models").json() == {"models": []}
    s.stop()

    cfg.write_text("max_unpacked_total_size=6000000\n")
    s = serve("--model-store", d, *API_ON, "--ts-config", cfg)
    r = register(s, f"url=mlp{ext}&initial_workers=1")
    assert r.status == 200, r
    r = register(s, f"url=mlp_b{ext}&initial_workers=1")
    assert_error(r, 400, "InvalidModelException", "max_unpacked_total_size is 6000000 bytes")
    assert s.mgmt("DELETE", "/models/mlp").status == 200
    r = register(s, f"url=mlp_b{ext}&initial_workers=1")
    assert r.status == 200, r
    assert predict(s, "/predictions/mlp_b").status == 200
