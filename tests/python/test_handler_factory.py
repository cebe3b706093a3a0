"""handler_factory (model-servers' convention) in real worker processes: the loader finds
the object the factory returns, init_function gets the factory's kwargs updated by
model-config.yaml, per-sample pre/postprocess around one batched forward, setup
functions that run once per model directory, the assigned GPU id and the CPU fallback,
and maxGPUMemory's fraction."""

import json
import os
import textwrap

import pytest
import torch

from conftest import Worker, make_model_dir, req

MODEL_PY = textwrap.dedent("""
    import torch


    class Block(torch.nn.Module):
        def __init__(self, n_in, n_out):
            super().__init__()
            self.lin = torch.nn.Linear(n_in, n_out)

        def forward(self, x):
            return torch.relu(self.lin(x))


    class Net(torch.nn.Module):
        def __init__(self, in_dim, layer_dims, n_out=3):
            super().__init__()
            dims = [in_dim] + list(layer_dims)
            self.blocks = torch.nn.Sequential(*[Block(a, b) for a, b in zip(dims, dims[1:])])
            self.head = torch.nn.Linear(dims[-1], n_out)

        def forward(self, x):
            return self.head(self.blocks(x))
""")

HANDLER_PY = textwrap.dedent("""
    import os

    import torch
    from base_handler import handler_factory
    from model import Net

    LOG = os.environ.get("FACTORY_TEST_LOG")


    def note(what):
        if LOG:
            with open(LOG, "a") as f:
                f.write(what + "\\n")


    def init_function(in_dim, layer_dims, n_out=3):
        note("init %s %s" % (in_dim, list(layer_dims)))
        return Net(in_dim, layer_dims, n_out)


    def preprocess(sample):
        if sample.get("fail"):
            raise ValueError("bad sample %s" % sample["fail"])
        return torch.tensor(sample["x"], dtype=torch.float32) * sample.get("scale", 1.0)


    def postprocess(out):
        return out.argmax(-1).tolist(), out


    def install_packages():
        note("install")


    def unpack_dependencies():
        note("unpack")
        with open("unpacked.txt", "w") as f:
            f.write("yes")


    handler = handler_factory(init_function=init_function,
                              preprocess_function=preprocess,
                              postprocess_function=postprocess,
                              install_packages=install_packages,
                              unpack_dependencies=unpack_dependencies,
                              in_dim=4, layer_dims=[8])
""")


def factory_model(tmp_path, config="handler:\n  init_kwargs:\n    layer_dims: [6, 5]\n", files=None):
    """A model directory whose state_dict was saved from Net(4, [6, 5]): loading it needs
    the config's init_kwargs to override the factory's layer_dims=[8]."""
    ns = {}
    exec(MODEL_PY, ns)
    torch.manual_seed(1)
    net = ns["Net"](4, [6, 5]).eval()
    d = tmp_path / "model"
    d.mkdir()
    torch.save(net.state_dict(), d / "net.pt")
    all_files = {"model.py": MODEL_PY, "handler_model.py": HANDLER_PY, "model-config.yaml": config}
    all_files.update(files or {})
    make_model_dir(d, all_files, {"serializedFile": "net.pt", "configFile": "model-config.yaml"},
                   handler="handler_model.py")
    return d, net


@pytest.fixture
def env_log(tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FACTORY_TEST_LOG", str(log))
    return log


def test_factory_handler_batches_and_matches_torch(tmp_path, worker, env_log):
    d, net = factory_model(tmp_path)
    w = worker().connect()
    r = w.load(d, "handler_model.py", batch_size=4)
    assert (r.code, r.message) == (200, "loaded model m"), r.message
    xs = [[1, 2, 3, 4], [0.5, -1, 0, 2], [-3, 0, 1, 1]]
    resp = w.infer([req("r%d" % i, {"x": x, "scale": 2.0}) for i, x in enumerate(xs)])
    assert resp.code == 200
    with torch.no_grad():
        want = net(torch.tensor(xs) * 2.0)
    for i, p in enumerate(resp.predictions):
        assert p.status == 200
        cls, logits = json.loads(p.body)
        assert cls == int(want[i].argmax())
        assert logits == pytest.approx(want[i].tolist(), abs=1e-5)
    assert "init 4 [6, 5]" in env_log.read_text()  # config kwargs won over the factory's


def test_one_bad_sample_is_answered_400_alone(tmp_path, worker, env_log):
    d, net = factory_model(tmp_path)
    w = worker().connect()
    assert w.load(d, "handler_model.py:handler", batch_size=4).code == 200
    # shapes differ ([4] and [2, 4]): these run one by one
    resp = w.infer([req("a", {"x": [1, 2, 3, 4]}), req("b", {"fail": "nope"}),
                    req("c", {"x": [[1, 0, 0, 0], [0, 1, 0, 0]]})])
    assert resp.code == 200
    a, b, c = resp.predictions
    assert b.status == 400
    assert json.loads(b.body)["message"] == "preprocess_function failed for this request: ValueError: bad sample nope"
    with torch.no_grad():
        wa = net(torch.tensor([[1.0, 2, 3, 4]]))[0]
        wc = net(torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0]]))
    assert a.status == 200 and json.loads(a.body)[1] == pytest.approx(wa.tolist(), abs=1e-5)
    assert c.status == 200 and torch.allclose(torch.tensor(json.loads(c.body)[1]), wc, atol=1e-5)


def test_setup_functions_run_once_per_model_directory(tmp_path, worker, env_log):
    d, _ = factory_model(tmp_path)
    w1 = worker().connect()
    assert w1.load(d, "handler_model.py").code == 200
    w2 = Worker(tmp_path / "model").connect()  # a second worker of the same model
    try:
        assert w2.load(d, "handler_model.py").code == 200
    finally:
        w2.close()
    calls = env_log.read_text().splitlines()
    assert calls.count("install") == 1 and calls.count("unpack") == 1, calls
    assert calls.count("init 4 [6, 5]") == 2
    assert calls.index("install") < calls.index("unpack") < calls.index("init 4 [6, 5]")
    assert (d / "unpacked.txt").read_text() == "yes"  # ran in the model directory


def test_without_config_kwargs_the_state_dict_does_not_fit(tmp_path, worker, env_log):
    d, _ = factory_model(tmp_path, config="minWorkers: 1\n")
    w = worker().connect()
    r = w.load(d, "handler_model.py")
    assert r.code == 500
    assert "serializedFile net.pt does not fit the model init_function(**{'in_dim': 4, 'layer_dims': [8]})" in r.message


def test_bad_init_kwargs_fail_the_load(tmp_path, worker, env_log):
    d, _ = factory_model(tmp_path, config="handler:\n  init_kwargs: [1, 2]\n")
    r = worker().connect().load(d, "handler_model.py")
    assert r.code == 500
    assert "handler.init_kwargs: expected a mapping of keyword arguments for init_function, got list" in r.message


def test_archive_base_handler_wins_over_wicks(tmp_path, worker, env_log):
    own = "def handler_factory(**kw):\n    raise RuntimeError('the archive base_handler was used')\n"
    d, _ = factory_model(tmp_path, files={"base_handler.py": own})
    r = worker().connect().load(d, "handler_model.py")
    assert r.code == 500 and "the archive base_handler was used" in r.message


def test_no_preprocess_takes_json_arrays(tmp_path, worker):
    handler = textwrap.dedent("""
        from base_handler import handler_factory
        from model import Net
        handler = handler_factory(lambda in_dim, layer_dims: Net(in_dim, layer_dims), in_dim=4, layer_dims=[6, 5])
    """)
    d, net = factory_model(tmp_path, config="{}\n", files={"plain.py": handler})
    w = worker().connect()
    assert w.load(d, "plain", batch_size=2).code == 200, "load failed"
    resp = w.infer([req("a", [1, 2, 3, 4]), req("b", b"not json", "application/octet-stream")])
    a, b = resp.predictions
    with torch.no_grad():
        want = net(torch.tensor([[1.0, 2, 3, 4]]))[0]
    assert a.status == 200 and json.loads(a.body) == pytest.approx(want.tolist(), abs=1e-5)
    assert b.status == 400 and "expected a JSON array of numbers" in json.loads(b.body)["message"]


def test_assigned_gpu_without_cuda_falls_back_to_cpu(tmp_path, worker, env_log):
    d, net = factory_model(tmp_path, config="handler:\n  init_kwargs: {layer_dims: [6, 5]}\nsystem:\n  maxGPUMemory: 500\n")
    w = worker().connect()
    assert w.load(d, "handler_model.py", gpu_id=3).code == 200
    resp = w.infer([req("a", {"x": [1, 2, 3, 4]})])
    with torch.no_grad():
        want = net(torch.tensor([[1.0, 2, 3, 4]]))[0]
    assert json.loads(resp.predictions[0].body)[1] == pytest.approx(want.tolist(), abs=1e-5)
    err = w.stderr()
    if not torch.cuda.is_available():
        assert err.count("gpu 3 is assigned to this worker, but CUDA is not available") == 1, err
        assert "system.maxGPUMemory (500 MB) is not applied: CUDA is not available" in err


def test_bad_max_gpu_memory_fails_the_load(tmp_path, worker):
    d, _ = factory_model(tmp_path, config="system:\n  maxGPUMemory: lots\n")
    r = worker().connect().load(d, "handler_model.py")
    assert r.code == 500 and "system.maxGPUMemory: expected a positive number of megabytes, got 'lots'" in r.message


def test_gpu_memory_fraction(monkeypatch):
    from wick_worker import device

    calls = []

    class Props:
        total_memory = 8 * 1024 * 1024 * 1024

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props())
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, i: calls.append((f, i)))
    assert device.apply_gpu_memory_limit({"system": {"maxGPUMemory": 512}}, 1) == pytest.approx(512 / 8192)
    assert calls == [(pytest.approx(512 / 8192), 1)]
    assert device.apply_gpu_memory_limit({"system": {"maxGPUMemory": 10 ** 6}}, 0) == 1.0
    assert device.apply_gpu_memory_limit({"system": {"maxGPUMemory": 512}}, None) is None
    assert device.apply_gpu_memory_limit({}, 0) is None
    assert device.select_device(2) == torch.device("cuda:2")
    assert device.select_device(None) == torch.device("cpu")
