"""AOTInductor packages (.pt2) served natively: packages compiled here with the venv's
torch, answers compared with the same package run by torch._inductor.aoti_load_package in
this process, batching within the package's batch range (padding below its minimum,
splitting above its maximum), bad inputs and broken packages."""
import concurrent.futures as cf
import importlib.util
import json
import zipfile

import pytest
import torch

from conftest import DEMO_DIR, ROOT, SANITIZED, pack, run_wick
from models import MLP, TwoHeads, compile_pt2
from test_serve import metric_values


def load_fashion_cnn():
    spec = importlib.util.spec_from_file_location("fashion_train",
                                                  ROOT / "examples/fashion/train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net = mod.FashionCNN()
    net.load_state_dict(torch.jit.load(str(DEMO_DIR / "fashion.pt")).state_dict())
    return net.eval()


@pytest.fixture(scope="module")
def pkgs(tmp_path_factory):
    d = tmp_path_factory.mktemp("pt2")
    torch.manual_seed(0)
    mlp = MLP().eval()
    torch.jit.script(mlp).save(str(d / "mlp.pt"))
    out = {
        "dir": d,
        "mlp": compile_pt2(mlp, [torch.randn(4, 16)], d / "mlp.pt2", batch=(1, 8)),
        "mlp1": compile_pt2(mlp, [torch.randn(1, 16)], d / "mlp1.pt2", batch=None),
        "mlp_so": compile_pt2(mlp, [torch.randn(4, 16)], d / "mlp_so.pt2", batch=(1, 8),
                              size_oblivious=True),
        "two": compile_pt2(TwoHeads(), [torch.randn(3, 6), torch.randn(3, 6)], d / "two.pt2",
                           batch=(1, 32)),
    }
    return out


@pytest.fixture(scope="module")
def python_loaded(pkgs):
    """The packages as torch runs them in Python: the reference answers."""
    return {k: torch._inductor.aoti_load_package(str(pkgs[k]))
            for k in ("mlp", "mlp1", "mlp_so", "two")}


def store_with(tmp_path, name, package, config="minWorkers: 1\n", handler="tensor", extra=()):
    store = tmp_path / "store"
    store.mkdir(exist_ok=True)
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(config)
    pack(store, name, package, handler=handler, config=cfg, extra=extra)
    return store


def parallel(fn, items, n):
    with cf.ThreadPoolExecutor(n) as pool:
        return list(pool.map(fn, items))


def reference(loaded, x):
    """The Python loader's rows for x, run two rows at a time at least (the package's
    minimum batch is 2: torch.export specialises sizes 0 and 1)."""
    if x.shape[0] == 1:
        return loaded(torch.cat([x, x]))[:1]
    return loaded(x)


def test_pt2_answers_equal_the_python_loader_and_batches(serve, tmp_path, pkgs, python_loaded):
    store = store_with(tmp_path, "mlp", pkgs["mlp"],
                       "minWorkers: 2\nmaxWorkers: 2\nbatchSize: 16\nmaxBatchDelay: 200\n")
    s = serve("--model-store", store, "--models", "mlp=mlp.mar")
    log = s.logs()
    assert "AOTInductor package" in log and "native code" in log, log[-3000:]
    assert "INPUT__0 is float32 [2..8, 16]" in log, log[-3000:]
    # batchSize 16 is more than the package's range allows: bounded by it, and said so.
    assert "batches gather at most 8 requests" in log, log[-3000:]
    assert s.mgmt("GET", "/models/mlp").json()[0]["batchSize"] == 8

    torch.manual_seed(1)
    bodies = [torch.randn(1, 16) for _ in range(24)] + [torch.randn(3, 16), torch.randn(11, 16),
                                                      torch.randn(20, 16)]

    def one(x):
        return x, s.infer("POST", "/predictions/mlp", {"data": x.tolist()})

    for x, r in parallel(one, bodies, 16):
        assert r.status == 200, r
        got = torch.tensor(r.json())
        assert got.shape == (x.shape[0], 4), got.shape
        want = torch.cat([reference(python_loaded["mlp"], x[i:i + 8])
                          for i in range(0, x.shape[0], 8)])
        assert torch.allclose(got, want, atol=1e-5), (x.shape, (got - want).abs().max())
    vals = metric_values(s.metrics().body.decode())
    labels = 'model_name="mlp",model_version="1.0"'
    batches = vals[f"wick_batch_size_count{{{labels}}}"]
    assert batches < len(bodies), vals  # some forwards held several requests


def test_pt2_static_batch_of_one_runs_requests_one_at_a_time(serve, tmp_path, pkgs,
                                                            python_loaded):
    store = store_with(tmp_path, "mlp1", pkgs["mlp1"],
                       "minWorkers: 1\nbatchSize: 4\nmaxBatchDelay: 100\n")
    s = serve("--model-store", store, "--models", "mlp1=mlp1.mar")
    assert "INPUT__0 is float32 [1, 16]" in s.logs(), s.logs()[-3000:]
    assert s.mgmt("GET", "/models/mlp1").json()[0]["batchSize"] == 1
    torch.manual_seed(2)
    bodies = [torch.randn(1, 16) for _ in range(6)] + [torch.randn(3, 16)]
    for x, r in parallel(lambda x: (x, s.infer("POST", "/predictions/mlp1", {"data": x.tolist()})),
                         bodies, 7):
        assert r.status == 200, r
        want = torch.cat([python_loaded["mlp1"](x[i:i + 1]) for i in range(x.shape[0])])
        assert torch.allclose(torch.tensor(r.json()), want, atol=1e-5)


def test_pt2_exported_size_oblivious_runs_single_rows_unpadded(serve, tmp_path, pkgs,
                                                               python_loaded):
    store = store_with(tmp_path, "so", pkgs["mlp_so"], "minWorkers: 1\nbatchSize: 8\n")
    s = serve("--model-store", store, "--models", "so=so.mar")
    assert "INPUT__0 is float32 [1..8, 16]" in s.logs(), s.logs()[-3000:]
    x = torch.randn(1, 16)
    r = s.infer("POST", "/predictions/so", {"data": x.tolist()})
    assert r.status == 200, r
    assert torch.allclose(torch.tensor(r.json()), python_loaded["mlp_so"](x), atol=1e-5)
    # v2 metadata from the package's spec: dynamic dimension 0, fixed width
    meta = s.infer("GET", "/v2/models/so").json()
    assert meta["inputs"] == [{"name": "INPUT__0", "datatype": "FP32", "shape": [-1, 16]}], meta


def test_inspect_shows_a_package_and_says_it_is_native_code(tmp_path, pkgs):
    r = run_wick("inspect", pkgs["mlp"])
    out = r.stdout
    assert "AOTInductor package" in out and "native code" in out, out
    assert "INPUT__0    float32 [2..8, 16]" in out, out
    assert "compiled for   cpu" in out, out
    assert "2..8 rows per run" in out, out
    store = store_with(tmp_path, "mlp", pkgs["mlp"])
    out = run_wick("inspect", store / "mlp.mar").stdout
    assert "handler kind: native" in out and "AOTInductor package: mlp.pt2" in out, out
    j = json.loads(run_wick("inspect", "--json", store / "mlp.mar").stdout)
    a = j["aotinductor"]
    assert a["native_code"] is True and a["device"] == "cpu" and a["refused"] is None, a
    assert a["inputs"] == [{"name": "INPUT__0", "dtype": "float32", "shape": [-1, 16],
                            "min": [2, 16], "max": [8, 16]}], a
    assert a["batch"] == {"min": 2, "max": 8} and a["outputs"] == 1, a
    assert j["handler"]["kind"] == "native" and j["weights"] is None, j
    # a refused package: inspect shows it and says why
    src = without_library(pkgs["mlp"], tmp_path / "sources.pt2")
    out = run_wick("inspect", src).stdout
    assert "refused: wick will not load it" in out and "no compiled library" in out, out


def test_pt2_two_inputs_two_outputs_by_name(serve, tmp_path, pkgs, python_loaded):
    store = store_with(tmp_path, "two", pkgs["two"], "minWorkers: 1\nbatchSize: 4\n")
    s = serve("--model-store", store, "--models", "two=two.mar")
    torch.manual_seed(3)
    a, b = torch.randn(5, 6), torch.randn(5, 6)
    r = s.infer("POST", "/predictions/two", {"inputs": {"INPUT__0": a.tolist(),
                                                        "INPUT__1": b.tolist()}})
    assert r.status == 200, r
    want = python_loaded["two"](a, b)
    got = r.json()
    assert torch.allclose(torch.tensor(got[0]), want[0], atol=1e-5)
    assert torch.allclose(torch.tensor(got[1]), want[1], atol=1e-5)
    # v2 binds inputs by name too
    r = s.infer("POST", "/v2/models/two/infer", {"inputs": [
        {"name": "INPUT__0", "shape": [5, 6], "datatype": "FP32", "data": a.flatten().tolist()},
        {"name": "INPUT__1", "shape": [5, 6], "datatype": "FP32", "data": b.flatten().tolist()}]})
    assert r.status == 200, r
    outs = r.json()["outputs"]
    assert torch.allclose(torch.tensor(outs[1]["data"]), want[1], atol=1e-5), outs
    # inputs whose batch dimensions differ
    r = s.infer("POST", "/predictions/two", {"inputs": {"INPUT__0": a.tolist(),
                                                        "INPUT__1": b[:2].tolist()}})
    assert r.status == 400 and "dimension 0" in r.json()["message"], r


@pytest.mark.badinput
def test_pt2_inputs_that_do_not_fit_are_400_naming_what_it_expects(serve, tmp_path, pkgs):
    store = store_with(tmp_path, "mlp", pkgs["mlp"], "minWorkers: 1\n")
    s = serve("--model-store", store, "--models", "mlp=mlp.mar")
    cases = [
        ({"data": [[1.0] * 15]}, "dimension 1 does not fit"),
        ({"inputs": [[1] * 16], "dtype": "int64"}, "its dtype does not fit"),
        ({"data": [[[1.0] * 16]]}, "its number of dimensions does not fit"),
        ({"inputs": {"INPUT__0": [[1.0] * 16], "INPUT__1": [[1.0] * 16]}},
         "does not match forward(INPUT__0)"),
    ]
    for body, why in cases:
        r = s.infer("POST", "/predictions/mlp", body)
        assert r.status == 400, (body, r)
        msg = r.json()["message"]
        assert why in msg, msg
        if "forward(" not in why:
            assert "INPUT__0: the package expects float32 [2..8, 16]" in msg, msg
    r = s.infer("POST", "/predictions/mlp", {"data": [[0.5] * 16]})
    assert r.status == 200, r


def without_library(src, dst):
    """The package with its compiled library left out: C++ sources only."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if not item.filename.endswith(".so"):
                zout.writestr(item, zin.read(item))
    return dst


def with_entry(src, dst, name, data=b"x"):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, zin.read(item))
        zout.writestr(name, data)
    return dst


@pytest.mark.badinput
def test_pt2_broken_packages_are_refused_and_others_keep_serving(serve, tmp_path, pkgs):
    store = store_with(tmp_path, "mlp", pkgs["mlp"], "minWorkers: 1\n")
    d = tmp_path / "bad"
    d.mkdir()
    data = pkgs["mlp"].read_bytes()
    (d / "trunc.pt2").write_bytes(data[: len(data) // 2])
    (d / "notzip.pt2").write_bytes(b"this is not a package\n" * 10)
    isa = tmp_path / "isa.pt2"
    with zipfile.ZipFile(pkgs["mlp"]) as zin, zipfile.ZipFile(isa, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith("_metadata.json"):
                meta = json.loads(data)
                meta["AOTI_CPU_ISA"] = "NEON"  # an ARM package
                data = json.dumps(meta).encode()
            zout.writestr(item, data)
    broken = {
        "isa": (isa, "compiled for a CPU with NEON"),
        "sources": (without_library(pkgs["mlp"], d / "sources.pt2"), "no compiled library"),
        "escape": (with_entry(pkgs["mlp"], d / "escape.pt2",
                              "mlp/data/aotinductor/model/../../../../x"), ".."),
        "trunc": (d / "trunc.pt2", "AOTInductor"),
        "notzip": (d / "notzip.pt2", "AOTInductor"),
    }
    for name, (path, _) in broken.items():
        pack(store, name, path)
    s = serve("--model-store", store, "--models", "mlp=mlp.mar", "--enable_model_api", "true")
    for name, (_, why) in broken.items():
        r = s.mgmt("POST", f"/models?url={name}.mar&initial_workers=1&synchronous=true")
        assert r.status in (400, 500, 501), (name, r)
        assert why in r.json()["message"], (name, r.json())
        assert s.infer("POST", "/predictions/mlp", {"data": [[0.5] * 16]}).status == 200
    names = [m["modelName"] for m in s.mgmt("GET", "/models").json()["models"]]
    assert names == ["mlp"], names


def test_pt2_explanations_answer_501(serve, tmp_path, pkgs):
    store = store_with(tmp_path, "mlp", pkgs["mlp"], "minWorkers: 1\n")
    s = serve("--model-store", store, "--models", "mlp=mlp.mar")
    r = s.infer("POST", "/explanations/mlp", {"data": [[0.5] * 16]})
    assert r.status == 501, r
    assert "AOTInductor" in r.json()["message"], r.json()


@pytest.mark.skipif(SANITIZED, reason="compiles the fashion CNN: the release run covers it")
def test_pt2_image_classifier_answers_as_torchscript_does(serve, tmp_path):
    net = load_fashion_cnn()
    pt2 = compile_pt2(net, [torch.randn(2, 1, 28, 28)], tmp_path / "fashion.pt2", batch=(1, 16))
    cfg = ("minWorkers: 1\nbatchSize: 8\nmaxBatchDelay: 50\nwick:\n"
           "  image: {channels: 1, resize: 0, crop: 0, mean: [0.2860], std: [0.3530]}\n")
    names = ROOT / "examples/fashion/index_to_name.json"
    store = store_with(tmp_path, "fpt2", pt2, cfg, handler="image_classifier", extra=[names])
    cfgf = tmp_path / "ts.yaml"
    cfgf.write_text(cfg)
    pack(store, "fts", DEMO_DIR / "fashion.pt", handler="image_classifier", extra=[names],
         config=cfgf)
    s = serve("--model-store", store, "--models", "fpt2=fpt2.mar", "fts=fts.mar")
    from test_vision_handler import fashion_test_images
    images, _ = fashion_test_images(12)

    def both(png):
        return (s.infer("POST", "/predictions/fpt2", png), s.infer("POST", "/predictions/fts", png))

    for a, b in parallel(both, images, 6):
        assert a.status == 200 and b.status == 200, (a, b)
        ja, jb = a.json(), b.json()
        assert list(ja) == list(jb), (ja, jb)  # the same classes in the same order
        for k in ja:
            assert ja[k] == pytest.approx(jb[k], abs=1e-5), (ja, jb)
    r = s.infer("POST", "/explanations/fpt2", images[0])
    assert r.status == 501, r
    assert "wick: {explain: {model: FILE}}" in r.json()["message"], r.json()


@pytest.mark.skipif(SANITIZED, reason="compiles the fashion CNN: the release run covers it")
def test_pt2_explanations_run_on_the_torchscript_copy_the_config_names(serve, tmp_path):
    net = load_fashion_cnn()
    pt2 = compile_pt2(net, [torch.randn(2, 1, 28, 28)], tmp_path / "fashion.pt2", batch=(1, 4))
    image = "  image: {channels: 1, resize: 0, crop: 0, mean: [0.2860], std: [0.3530]}\n"
    names = ROOT / "examples/fashion/index_to_name.json"
    store = store_with(tmp_path, "fexp", pt2,
                       "minWorkers: 1\nwick:\n" + image + "  explain: {model: fashion.pt}\n",
                       handler="image_classifier", extra=[names, DEMO_DIR / "fashion.pt"])
    cfg = tmp_path / "ts.yaml"
    cfg.write_text("minWorkers: 1\nwick:\n" + image)
    pack(store, "fts", DEMO_DIR / "fashion.pt", handler="image_classifier", extra=[names],
         config=cfg)
    for name, key in (("missing", "nothere.pt"), ("escape", "../../fashion.pt"),
                      ("itself", "fashion.pt2")):
        c = tmp_path / f"{name}.yaml"
        c.write_text("minWorkers: 1\nwick:\n" + image + f"  explain: {{model: '{key}'}}\n")
        pack(store, name, pt2, handler="image_classifier", extra=[names], config=c)
    s = serve("--model-store", store, "--models", "fexp=fexp.mar", "fts=fts.mar",
              "--enable_model_api", "true")
    assert "explanations differentiate fashion.pt" in s.logs(), s.logs()[-2000:]
    from test_vision_handler import fashion_test_images
    images, _ = fashion_test_images(2)
    for png in images:
        a = s.infer("POST", "/explanations/fexp", png)
        b = s.infer("POST", "/explanations/fts", png)
        assert a.status == 200 and b.status == 200, (a, b)
        assert a.headers["X-Wick-Target"] == b.headers["X-Wick-Target"]
        assert torch.allclose(torch.tensor(a.json()), torch.tensor(b.json()), atol=1e-6)
        assert s.infer("POST", "/predictions/fexp", png).status == 200
    for name, why in (("missing", "holds no file 'nothere.pt'"), ("escape", ".."),
                      ("itself", "need a TorchScript copy")):
        r = s.mgmt("POST", f"/models?url={name}.mar&initial_workers=1&synchronous=true")
        assert r.status >= 400 and why in r.json()["message"], (name, r.json())


def test_pack_aot_compile_serves_an_exported_program_natively(serve, tmp_path):
    torch.manual_seed(5)
    mlp = MLP().eval()
    # exported with a static batch of 2, as a user often does; --aot-compile makes dim 0
    # dynamic up to the config's batchSize
    torch.export.save(torch.export.export(mlp, (torch.randn(2, 16),)), str(tmp_path / "ep.pt2"))
    store = tmp_path / "store"
    store.mkdir()
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("minWorkers: 1\nbatchSize: 4\nmaxBatchDelay: 50\n")
    r = run_wick("pack", "--model-name", "aot", "--version", "1", "--serialized-file",
                 tmp_path / "ep.pt2", "--aot-compile", "--handler", "tensor", "--config-file", cfg,
                 "--export-path", store)
    assert "compiling" in r.stderr, r.stderr
    out = run_wick("inspect", store / "aot.mar").stdout
    assert "compiledWithTorch " + torch.__version__.split("+")[0] in out, out
    assert "INPUT__0    float32 [1..4, 16]" in out, out
    # the same program packed as it is runs in Python workers, and says how to go native
    pack(store, "eager", tmp_path / "ep.pt2", config=cfg)
    s = serve("--model-store", store, "--models", "aot=aot.mar", "eager=eager.mar")
    assert "not compiled: it runs in Python workers" in s.logs(), s.logs()[-3000:]
    assert s.mgmt("GET", "/models/aot").json()[0]["runtime"] == "native"
    assert s.mgmt("GET", "/models/eager").json()[0]["runtime"] == "python"
    for rows in (1, 2, 3, 6):
        x = torch.randn(rows, 16)
        want = mlp(x)
        # the saved program's module checks its inputs against the batch of 2 it was
        # exported with: in Python it takes 2 rows only
        for name in ("aot", "eager") if rows == 2 else ("aot",):
            r = s.infer("POST", f"/predictions/{name}", {"data": x.tolist()})
            assert r.status == 200, (name, r)
            assert torch.allclose(torch.tensor(r.json()), want, atol=1e-5), (name, rows)


@pytest.mark.badinput
def test_pack_aot_compile_refuses_what_it_cannot_compile(tmp_path, pkgs):
    cases = [(pkgs["dir"] / "mlp.pt", "not a torch.export.save'd ExportedProgram"),
             (pkgs["mlp"], "not a torch.export.save'd ExportedProgram"),
             (tmp_path / "missing.pt2", "no such file")]
    for path, why in cases:
        r = run_wick("pack", "--model-name", "x", "--serialized-file", path, "--aot-compile",
                     "--export-path", tmp_path, check=False)
        assert r.returncode != 0 and why in r.stderr, (path, r.stderr)
    r = run_wick("pack", "--model-name", "x", "--serialized-file", pkgs["mlp"],
                 "--example-inputs", tmp_path / "x.pt", "--export-path", tmp_path, check=False)
    assert r.returncode != 0 and "--example-inputs goes with --aot-compile" in r.stderr, r.stderr
