"""Which device native workers run on: model-config's deviceType and deviceIds, as
TorchServe assigns them (worker i on cuda:deviceIds[i % n]). Without a GPU the CPU-side
rules are tested; the GPU tests skip with the reason when no device is visible."""
import os

import pytest
import torch

from conftest import pack
from models import MLP, save_script

HAS_GPU = os.path.isdir("/proc/driver/nvidia/gpus") and torch.cuda.is_available()
NO_GPU = "no CUDA device visible here (scripts/gpu-check.sh runs these on a GPU machine)"


def store_with(tmp_path, configs):
    store = tmp_path / "store"
    store.mkdir()
    src = tmp_path / "mlp.pt"
    m = save_script(MLP, src)
    for name, cfg in configs.items():
        f = tmp_path / f"{name}.yaml"
        f.write_text(cfg)
        pack(store, name, src, config=f)
    return store, m


def workers_gpu(s, name):
    return [w["gpu"] for w in s.mgmt("GET", f"/models/{name}").json()[0]["workers"]]


@pytest.mark.skipif(HAS_GPU, reason="checks the rules for a machine without a GPU")
def test_device_rules_without_a_gpu(serve, tmp_path):
    store, m = store_with(tmp_path, {
        "cpu": "minWorkers: 2\ndeviceType: cpu\n",
        "gpu_any": "minWorkers: 1\ndeviceType: gpu\n",
        "gpu_ids": "minWorkers: 1\ndeviceType: gpu\ndeviceIds: [0]\n",
        "tpu": "minWorkers: 1\ndeviceType: tpu\n",
    })
    s = serve("--model-store", store, "--models", "cpu=cpu.mar", "gpu_any=gpu_any.mar",
              "--enable_model_api", "true")
    # gpu asked for, none found and none named: a warning, and the CPU
    assert "deviceType is gpu, but no GPU was found" in s.logs(), s.logs()[-3000:]
    x = torch.randn(2, 16)
    for name in ("cpu", "gpu_any"):
        assert workers_gpu(s, name) == [False] * (2 if name == "cpu" else 1)
        r = s.infer("POST", f"/predictions/{name}", {"data": x.tolist()})
        assert r.status == 200 and torch.allclose(torch.tensor(r.json()), m(x), atol=1e-6), r
    # a GPU named that this machine cannot use: a load error that says so, not a crash
    r = s.mgmt("POST", "/models?url=gpu_ids.mar&initial_workers=1&synchronous=true")
    assert r.status >= 400, r
    assert "cuda:0" in r.json()["message"], r.json()
    r = s.mgmt("POST", "/models?url=tpu.mar&initial_workers=1&synchronous=true")
    assert r.status == 400 and "deviceType: expected cpu or gpu, got 'tpu'" in r.json()["message"], r
    assert s.infer("POST", "/predictions/cpu", {"data": x.tolist()}).status == 200


@pytest.mark.skipif(not HAS_GPU, reason=NO_GPU)
def test_native_workers_round_robin_over_device_ids(serve, tmp_path):
    n = torch.cuda.device_count()
    ids = list(range(n))
    store, m = store_with(tmp_path, {
        "g": f"minWorkers: {2 * n}\nbatchSize: 4\ndeviceType: gpu\ndeviceIds: {ids}\n"})
    s = serve("--model-store", store, "--models", "g=g.mar")
    assert workers_gpu(s, "g") == [True] * (2 * n)
    assert "workers run round-robin on cuda:0" in s.logs()
    x = torch.randn(3, 16)
    for _ in range(4 * n):
        r = s.infer("POST", "/predictions/g", {"data": x.tolist()})
        assert r.status == 200 and torch.allclose(torch.tensor(r.json()), m(x), atol=1e-4), r
