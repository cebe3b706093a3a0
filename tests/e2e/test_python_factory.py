"""End to end: handler_factory models (model-servers' convention) in real worker
processes, system.extraFiles unpacked by wick at load, deviceType/deviceIds spread over
the workers, and install_py_dep_per_model installing a model's requirements into a
folder of its own from a wheel these tests build (no network: --no-index)."""
import base64
import concurrent.futures as cf
import hashlib
import io
import re
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile

import pytest
import torch

from conftest import run_wick

API_ON = ("--enable_model_api", "true")
JSON = {"Content-Type": "application/json"}

NET_PY = textwrap.dedent("""
    import torch


    class Block(torch.nn.Module):
        def __init__(self, n_in, n_out):
            super().__init__()
            self.lin = torch.nn.Linear(n_in, n_out)

        def forward(self, x):
            return torch.relu(self.lin(x))


    class Net(torch.nn.Module):
        def __init__(self, in_dim, layer_dims):
            super().__init__()
            dims = [in_dim] + list(layer_dims)
            self.blocks = torch.nn.Sequential(*[Block(a, b) for a, b in zip(dims, dims[1:])])
            self.head = torch.nn.Linear(dims[-1], 3)

        def forward(self, x):
            return self.head(self.blocks(x))
""")

# The model file, as seed 003 describes it: functions, then handler = handler_factory(...).
HANDLER_PY = textwrap.dedent("""
    import os

    import torch
    from base_handler import handler_factory
    from netpkg.net import Net   # from the system.extraFiles archive

    LOG = os.environ.get("FACTORY_TEST_LOG")


    def note(what):
        if LOG:
            with open(LOG, "a") as f:
                f.write("%s %d\\n" % (what, os.getpid()))


    def init_function(in_dim, layer_dims):
        note("init")
        return Net(in_dim, layer_dims)


    def preprocess(sample):
        return torch.tensor(sample["x"], dtype=torch.float32)


    def postprocess(out):
        probs = out.softmax(0)
        k = int(probs.argmax())
        return k, float(probs[k]), out


    def install_packages():
        note("install")


    def unpack_dependencies():
        note("unpack")


    handler = handler_factory(init_function=init_function,
                              preprocess_function=preprocess,
                              postprocess_function=postprocess,
                              install_packages=install_packages,
                              unpack_dependencies=unpack_dependencies,
                              in_dim=4, layer_dims=[8])
""")


def wait_for(check, what, timeout=90):
    """Polls check() until it returns something true (workers start in the background)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def targz(path, files, top=None):
    """A .tar.gz of {name: text}; entries as given (links: ("link", target))."""
    with tarfile.open(path, "w:gz") as t:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, tuple):
                info.type = tarfile.SYMTYPE
                info.linkname = content[1]
                t.addfile(info)
                continue
            data = content.encode()
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def factory_archive(tmp_path, name="fact", config_extra="", extra_files=None):
    """A .mar whose state_dict came from Net(4, [6, 5]) (the factory says [8]: only the
    config's handler.init_kwargs makes it load), with the Net class in src.tar.gz."""
    src = tmp_path / f"src-{name}"
    src.mkdir()
    ns = {}
    exec(NET_PY, ns)
    torch.manual_seed(3)
    net = ns["Net"](4, [6, 5]).eval()
    torch.save(net.state_dict(), src / "net.pt")
    (src / "handler_model.py").write_text(HANDLER_PY)
    if extra_files is None:
        extra_files = [targz(src / "src.tar.gz", {"netpkg/__init__.py": "", "netpkg/net.py": NET_PY})]
    (src / "model-config.yaml").write_text(
        "minWorkers: 2\nbatchSize: 4\nmaxBatchDelay: 300\n"
        "handler:\n  init_kwargs:\n    layer_dims: [6, 5]\n"
        "system:\n  extraFiles: " + ", ".join(p.name for p in extra_files) + "\n  maxGPUMemory: 500\n"
        + config_extra)
    store = tmp_path / "store"
    store.mkdir(exist_ok=True)
    run_wick("pack", "--model-name", name, "--version", "1.0", "--serialized-file", src / "net.pt",
             "--handler", src / "handler_model.py", "--config-file", src / "model-config.yaml",
             "--extra-files", ",".join(str(p) for p in extra_files), "--export-path", store, "-f")
    return store, net


def test_factory_model_batches_and_matches_torch(serve, tmp_path):
    store, net = factory_archive(tmp_path)
    log = tmp_path / "calls.log"
    s = serve("--model-store", store, "--models", "fact=fact.mar", env={"FACTORY_TEST_LOG": str(log)})
    xs = [[1, 2, 3, 4], [0.5, -1, 0, 2], [-3, 0, 1, 1], [0, 0, 0, 1]]
    with cf.ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda x: s.infer("POST", "/predictions/fact", {"x": x}, JSON), xs))
    with torch.no_grad():
        want = net(torch.tensor(xs))
    for i, r in enumerate(replies):
        assert r.status == 200, r
        k, p, logits = r.json()
        assert k == int(want[i].argmax())
        assert p == pytest.approx(float(want[i].softmax(0).max()), abs=1e-5)
        assert logits == pytest.approx(want[i].tolist(), abs=1e-5)
    def calls_when_both_started():
        calls = [line.split()[0] for line in log.read_text().splitlines()]
        return calls if calls.count("init") >= 2 else None

    # both workers built the model (each at its start); the setup functions ran once
    calls = wait_for(calls_when_both_started, "the second worker")
    assert (calls.count("init"), calls.count("install"), calls.count("unpack")) == (2, 1, 1), calls
    desc = s.mgmt("GET", "/models/fact").json()[0]
    assert desc["runtime"] == "python" and len(desc["workers"]) == 2


def test_device_ids_round_robin_and_cpu_fallback(serve, tmp_path):
    store, net = factory_archive(tmp_path, "dev", "deviceType: gpu\ndeviceIds: [2, 5]\nmaxWorkers: 3\n")
    s = serve("--model-store", store, "--models", "dev=dev.mar", *API_ON)
    r = s.mgmt("PUT", "/models/dev?min_worker=3&synchronous=true")
    assert r.status == 200, r
    x = [1, 2, 3, 4]
    r = s.infer("POST", "/predictions/dev", {"x": x}, JSON)
    assert r.status == 200, r
    with torch.no_grad():
        assert r.json()[2] == pytest.approx(net(torch.tensor([x], dtype=torch.float32))[0].tolist(), abs=1e-5)
    if torch.cuda.is_available():
        pytest.skip("CUDA is present: the CPU fallback is not exercised")
    def gpus_seen():
        seen = dict(re.findall(r"\[dev/worker (\d+)\] .*gpu (\d+) is assigned to this worker, but CUDA "
                               r"is not available", s.logs()))
        return seen if len(seen) >= 3 else None

    seen = wait_for(gpus_seen, "three workers' device lines")
    assert seen == {"0": "2", "1": "5", "2": "2"}, s.logs()[-3000:]
    assert "system.maxGPUMemory (500 MB) is not applied: CUDA is not available" in s.logs()


def register(s, url):
    return s.mgmt("POST", f"/models?url={url}&initial_workers=1&synchronous=true")


@pytest.mark.badinput
def test_bad_extra_files_fail_the_load(serve, tmp_path):
    cases = {
        "missing": ([], "extraFiles: nope.tar.gz\n", "system.extraFiles 'nope.tar.gz'"),
        "escape": ([{"../evil.py": "x = 1\n"}], "", "'../evil.py' leaves the model directory"),
        "link": ([{"pkg/link": ("link", "/etc/passwd")}], "", "'pkg/link' is a symbolic link"),
        "abs": ([], "extraFiles: /etc/passwd\n", "system.extraFiles '/etc/passwd'"),
        "notar": ([], "extraFiles: model-config.yaml\n",
                  "is not a .zip, .tar, .tar.gz or .tgz archive"),
    }
    for name, (archives, override, _) in cases.items():
        src = tmp_path / f"in-{name}"
        src.mkdir()
        paths = [targz(src / f"x{i}.tar.gz", files) for i, files in enumerate(archives)]
        store, _ = factory_archive(tmp_path, name, extra_files=paths or [targz(src / "ok.tar.gz", {"a": ""})])
        if override:  # rewrite the config inside the .mar: extraFiles names something else
            mar = store / f"{name}.mar"
            with zipfile.ZipFile(mar) as z:
                entries = {n: z.read(n) for n in z.namelist()}
            text = entries["model-config.yaml"].decode()
            text = re.sub(r"  extraFiles: .*\n", "", text).replace("system:\n", "system:\n  " + override)
            entries["model-config.yaml"] = text.encode()
            with zipfile.ZipFile(mar, "w") as z:
                for n, data in entries.items():
                    z.writestr(n, data)
    s = serve("--model-store", tmp_path / "store", "--models", "escape=escape.mar", *API_ON)
    assert "system.extraFiles 'x0.tar.gz'" in s.logs() and "leaves the model directory" in s.logs()
    for name, (_, _, message) in cases.items():
        r = register(s, f"{name}.mar")
        assert r.status == 400, (name, r)
        assert message in r.json()["message"], (name, r.json())
    assert s.mgmt("GET", "/models").json()["models"] == []


# ---- requirements ----

def build_wheel(dirpath, name, version, code):
    """A pure-Python wheel, written by hand (a zip with the package and its dist-info)."""
    dist = f"{name}-{version}"
    files = {
        f"{name}/__init__.py": code.encode(),
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: wick-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(data)}\n"
    record += f"{dist}.dist-info/RECORD,,\n"
    files[f"{dist}.dist-info/RECORD"] = record.encode()
    whl = dirpath / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
    return whl


DEP_HANDLER = textwrap.dedent("""
    import wickfactorydep


    def handle(data, context):
        if data is None:
            return None
        return [{"y": wickfactorydep.triple(row["body"]), "from": wickfactorydep.__file__} for row in data]
""")


def requirements_archive(store, src, name, requirement):
    src.mkdir()
    (src / "h.py").write_text(DEP_HANDLER)
    (src / "requirements.txt").write_text(requirement + "\n")
    (src / "dummy.txt").write_text("x")
    run_wick("pack", "--model-name", name, "--version", "1.0", "--serialized-file", src / "dummy.txt",
             "--handler", f"{src / 'h.py'}:handle", "-r", src / "requirements.txt",
             "--export-path", store, "-f")


@pytest.mark.badinput
def test_requirements_installed_per_model(serve, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels, "wickfactorydep", "1.0", "def triple(xs):\n    return [3 * x for x in xs]\n")
    store = tmp_path / "store"
    store.mkdir()
    requirements_archive(store, tmp_path / "good", "good", "wickfactorydep==1.0")
    requirements_archive(store, tmp_path / "bad", "bad", "wickfactorymissing==9.0")
    (tmp_path / "config.properties").write_text("install_py_dep_per_model=true\n")
    env = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}
    s = serve("--ts-config", tmp_path / "config.properties", "--model-store", store,
              "--models", "good=good.mar", "bad=bad.mar", *API_ON, env=env)
    # the model that cannot install is logged and left out; the other one serves
    assert "No matching distribution found for wickfactorymissing==9.0" in s.logs()
    assert s.mgmt("GET", "/models/bad").status == 404
    r = s.infer("POST", "/predictions/good", [1, 2], JSON)
    assert r.status == 200, r
    assert r.json()["y"] == [3, 6]
    assert "-pydeps-" in r.json()["from"] and not r.json()["from"].startswith("/usr")
    # its own import path: its workers are not forked from a template (which would outlive it)
    assert "python worker template started" not in s.logs()
    # installed for that model only, never into the system's Python
    check = subprocess.run([sys.executable, "-c", "import wickfactorydep"], capture_output=True)
    assert check.returncode != 0
    # registration answers pip's message
    r = register(s, "bad.mar")
    assert r.status == 400, r
    msg = r.json()["message"]
    assert "requirementsFile requirements.txt" in msg and "pip install" in msg, msg
    assert "No matching distribution found for wickfactorymissing==9.0" in msg, msg


def test_requirements_not_installed_without_the_setting(serve, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels, "wickfactorydep", "1.0", "def triple(xs):\n    return [3 * x for x in xs]\n")
    store = tmp_path / "store"
    store.mkdir()
    requirements_archive(store, tmp_path / "good", "good", "wickfactorydep==1.0")
    s = serve("--model-store", store, *API_ON, env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)})
    r = register(s, "good.mar")
    assert r.status == 500 and r.json()["type"] == "InternalServerException", r  # as TorchServe
    assert "No module named 'wickfactorydep'" in r.json()["message"]
    assert "install_py_dep_per_model is false" in s.logs()
