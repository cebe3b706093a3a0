"""End-to-end: the real wick binary serving TorchScript models made here, compared with
what torch computes for the same input."""
import json
import socket
import time
import zipfile

import pytest
import torch

from conftest import pack, run_wick
from models import MLP, Embed, TwoInputs, save_script


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("store")
    src = tmp_path_factory.mktemp("src")
    models = {}
    models["mlp"] = save_script(MLP, src / "mlp.pt")
    pack(d, "mlp", src / "mlp.pt")
    models["two"] = save_script(TwoInputs, src / "two.pt")
    pack(d, "two", src / "two.pt")
    models["embed"] = save_script(Embed, src / "embed.pt")
    pack(d, "embed", src / "embed.pt")
    return d, models


def close(got, want, tol=1e-6):
    got = torch.tensor(got, dtype=torch.float32)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert torch.allclose(got, want.float(), atol=tol, rtol=0), (got, want)


def test_ping(serve, store):
    s = serve("--model-store", store[0], "--models", "mlp=mlp.mar")
    r = s.infer("GET", "/ping")
    assert r.status == 200 and r.json() == {"status": "Healthy"}


def test_mlp_matches_torch_for_every_body_form(serve, store):
    d, models = store
    s = serve("--model-store", d, "--models", "mlp=mlp.mar")
    torch.manual_seed(1)
    x = torch.randn(5, 16)
    want = models["mlp"](x)
    rows = x.tolist()
    for body in (rows, {"data": rows}, {"instances": rows}, {"inputs": rows}, {"inputs": {"x": rows}}):
        for method in ("POST", "PUT"):
            r = s.infer(method, "/predictions/mlp", body)
            assert r.status == 200, r
            assert r.headers["Content-Type"] == "application/json"
            close(r.json(), want)
    # an explicit version
    r = s.infer("POST", "/predictions/mlp/1.0", {"data": rows})
    assert r.status == 200
    close(r.json(), want)


def test_one_row_at_a_time_equals_batch(serve, store):
    d, models = store
    s = serve("--model-store", d, "--models", "mlp=mlp.mar")
    torch.manual_seed(2)
    x = torch.randn(20, 16)
    want = models["mlp"](x)
    for i in range(20):
        r = s.infer("POST", "/predictions/mlp", {"data": [x[i].tolist()]})
        assert r.status == 200, r
        close(r.json(), want[i : i + 1])


def test_tuple_and_dict_outputs(serve, store):
    d, models = store
    s = serve("--model-store", d, "--models", "two=two.mar")
    a, b = torch.randn(2, 3), torch.randn(2, 3)
    r = s.infer("POST", "/predictions/two", {"inputs": {"a": a.tolist(), "b": b.tolist()}})
    assert r.status == 200, r
    out = r.json()
    assert isinstance(out, list) and len(out) == 2
    close(out[0], a + b)
    assert set(out[1]) == {"prod", "sum"}
    close(out[1]["prod"], a * b)
    close(out[1]["sum"], (a + b).sum(dim=-1), tol=1e-5)


def test_int64_input(serve, store):
    d, models = store
    s = serve("--model-store", d, "--models", "embed=embed.mar")
    idx = torch.tensor([[1, 2, 9], [0, 0, 3]])
    r = s.infer("POST", "/predictions/embed", {"data": idx.tolist(), "dtype": "int64"})
    assert r.status == 200, r
    # An embedding lookup copies float32 weights as they are, so the reply must read back
    # to the very same float32 values. (A matmul would not do for this check: with torch
    # 2.x's MKL, its last bits depend on the thread count, and freezing rewrites linear
    # layers into matmul + add.)
    got = torch.tensor(r.json(), dtype=torch.float32)
    assert torch.equal(got, models["embed"](idx)), "floats must be printed so they read back to the same float32"


def test_management_describe_and_list(serve, store):
    d, _ = store
    s = serve("--model-store", d, "--models", "mlp=mlp.mar", "two=two.mar")
    r = s.mgmt("GET", "/models")
    assert r.status == 200
    assert r.json() == {"models": [{"modelName": "mlp", "modelUrl": "mlp.mar"},
                                   {"modelName": "two", "modelUrl": "two.mar"}]}
    r = s.mgmt("GET", "/models?limit=1")
    assert r.json()["models"] == [{"modelName": "mlp", "modelUrl": "mlp.mar"}]
    token = r.json()["nextPageToken"]
    r = s.mgmt("GET", f"/models?limit=1&next_page_token={token}")
    assert r.json()["models"] == [{"modelName": "two", "modelUrl": "two.mar"}]
    r = s.mgmt("GET", "/models/mlp")
    assert r.status == 200
    (desc,) = r.json()
    assert desc["modelName"] == "mlp" and desc["modelVersion"] == "1.0"
    assert desc["batchSize"] == 1 and desc["minWorkers"] >= 1
    assert len(desc["workers"]) == desc["minWorkers"]
    assert desc["workers"][0]["status"] == "READY"
    assert desc["jobQueueStatus"]["pendingRequests"] == 0
    assert s.mgmt("GET", "/models/mlp/1.0").json() == r.json()
    assert s.mgmt("GET", "/models/mlp/all").json() == r.json()


def metric_values(text):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def test_metrics_count_requests(serve, store):
    d, _ = store
    s = serve("--model-store", d, "--models", "mlp=mlp.mar")
    before = metric_values(s.metrics().body.decode())
    for _ in range(3):
        assert s.infer("POST", "/predictions/mlp", [[0.0] * 16]).status == 200
    assert s.infer("POST", "/predictions/mlp", "[1,").status == 400
    labels = 'model_name="mlp",model_version="1.0"'
    # a worker records its batch just after it answered: read until the third is there
    deadline = time.time() + 10
    while True:
        r = s.metrics()
        text = r.body.decode()
        after = metric_values(text)
        key = f"wick_inference_seconds_count{{{labels}}}"
        if after.get(key, 0) - before.get(key, 0) >= 3 or time.time() > deadline:
            break
        time.sleep(0.05)
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")

    def delta(key):
        return after.get(key, 0) - before.get(key, 0)

    host = 'hostname="%s"' % socket.gethostname()  # TorchServe's families carry it
    assert delta(f"ts_inference_requests_total{{{labels},{host}}}") == 4
    assert delta('wick_http_requests_total{api="inference",code="200"}') == 3
    assert delta('wick_http_requests_total{api="inference",code="400"}') == 1
    assert delta(f"wick_inference_seconds_count{{{labels}}}") == 3
    assert after[f"ts_inference_latency_microseconds{{{labels},{host}}}"] > 0
    assert "# TYPE wick_inference_seconds histogram" in text
    twoxx = [k for k in after if k.startswith("Requests2XX{")]
    fourxx = [k for k in after if k.startswith("Requests4XX{")]
    assert twoxx and fourxx, text
    assert after[fourxx[0]] - before.get(fourxx[0], 0) == 1
    assert after[twoxx[0]] - before.get(twoxx[0], 0) >= 3
    assert after[f"wick_workers{{{labels}}}"] >= 1


def test_sigterm_stops_cleanly(serve, store):
    d, _ = store
    s = serve("--model-store", d, "--models", "mlp=mlp.mar")
    assert s.stop() == 0
    assert "stopped" in s.logs()


def test_access_log_line(serve, store):
    d, _ = store
    s = serve("--model-store", d, "--models", "mlp=mlp.mar")
    s.infer("POST", "/predictions/mlp", [[0.0] * 16])
    s.stop()
    lines = [l for l in s.logs().splitlines() if "POST /predictions/mlp 200" in l]
    assert lines, s.logs()
    assert lines[0].rstrip().endswith("us")


def test_pack_archive_reads_with_zipfile(tmp_path):
    torch.manual_seed(0)
    save_script(MLP, tmp_path / "mlp.pt")
    (tmp_path / "index_to_name.json").write_text('{"0": "a"}')
    (tmp_path / "model-config.yaml").write_text("batchSize: 1\n")
    out = tmp_path / "store"
    out.mkdir()
    pack(out, "mlp", tmp_path / "mlp.pt", extra=[tmp_path / "index_to_name.json"],
         config=tmp_path / "model-config.yaml", version="2.0")
    with zipfile.ZipFile(out / "mlp.mar") as z:
        assert z.testzip() is None
        names = set(z.namelist())
        assert {"mlp.pt", "index_to_name.json", "model-config.yaml", "MAR-INF/MANIFEST.json"} <= names
        manifest = json.loads(z.read("MAR-INF/MANIFEST.json"))
        assert z.read("mlp.pt") == (tmp_path / "mlp.pt").read_bytes()
    assert manifest["runtime"] == "python"
    assert manifest["model"]["modelName"] == "mlp"
    assert manifest["model"]["modelVersion"] == "2.0"
    assert manifest["model"]["serializedFile"] == "mlp.pt"
    assert manifest["model"]["handler"] == "tensor"
    assert manifest["model"]["extraFiles"] == "index_to_name.json"
    assert manifest["model"]["configFile"] == "model-config.yaml"
    assert "createdOn" in manifest and "archiverVersion" in manifest
    # the archive again without -f is refused
    r = run_wick("pack", "--model-name", "mlp", "--serialized-file", tmp_path / "mlp.pt",
                 "--export-path", out, check=False)
    assert r.returncode != 0 and "-f" in r.stderr
    r = run_wick("inspect", out / "mlp.mar")
    assert "mlp.pt" in r.stdout and "modelName" in r.stdout or "mlp" in r.stdout


@pytest.mark.parametrize("fmt", ["zip-store", "no-archive", "tgz"])
def test_other_archive_formats_serve(serve, tmp_path, fmt):
    torch.manual_seed(0)
    m = save_script(MLP, tmp_path / "mlp.pt")
    store = tmp_path / "store"
    store.mkdir()
    pack(store, "mlp", tmp_path / "mlp.pt", fmt=fmt)
    url = {"zip-store": "mlp.mar", "no-archive": "mlp", "tgz": "mlp.tar.gz"}[fmt]
    s = serve("--model-store", store, "--models", f"mlp={url}")
    x = torch.randn(2, 16)
    r = s.infer("POST", "/predictions/mlp", {"data": x.tolist()})
    assert r.status == 200, r
    close(r.json(), m(x))


@pytest.mark.parametrize("freeze", ["true", "false"])
def test_freeze_switch(serve, tmp_path, freeze):
    torch.manual_seed(0)
    m = save_script(MLP, tmp_path / "mlp.pt")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"wick:\n  freeze: {freeze}\n")
    store = tmp_path / "store"
    store.mkdir()
    pack(store, "mlp", tmp_path / "mlp.pt", config=cfg)
    s = serve("--model-store", store, "--models", "mlp=mlp.mar")
    x = torch.randn(3, 16)
    r = s.infer("POST", "/predictions/mlp", {"data": x.tolist()})
    assert r.status == 200
    close(r.json(), m(x))
    assert ("not frozen" in s.logs()) == (freeze == "false"), s.logs()
