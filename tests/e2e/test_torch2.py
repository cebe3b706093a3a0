"""wick on torch 2.x: the libtorch it was built with (from the venv's torch), how it finds
it (RPATH, no LD_LIBRARY_PATH), the version it reports, and the interpreter its Python
workers run by default (the venv's, the same torch)."""
import os
import subprocess
import sys
from pathlib import Path

import torch

from conftest import WICK, pack_python

TORCH_BASE = torch.__version__.split("+")[0]


def env_without_library_path():
    return {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}


def test_version_names_the_libtorch_wick_was_built_with():
    r = subprocess.run([WICK, "--version"], capture_output=True, text=True, timeout=60,
                       env=env_without_library_path())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith(f"(libtorch {TORCH_BASE})"), r.stdout
    major, minor = (int(x) for x in TORCH_BASE.split(".")[:2])
    assert (major, minor) >= (2, 6), TORCH_BASE  # the floor


def test_wick_finds_libtorch_through_its_rpath():
    # The binary records the folder of the libtorch it was linked with; the loader resolves
    # libtorch_cpu there with no LD_LIBRARY_PATH. Links the CPU libraries only.
    r = subprocess.run(["ldd", WICK], capture_output=True, text=True, env=env_without_library_path())
    lines = {l.split()[0]: l for l in r.stdout.splitlines() if "=>" in l}
    torch_lib = Path(torch.__file__).parent / "lib"
    assert "libtorch_cpu.so" in lines, r.stdout
    assert str(torch_lib / "libtorch_cpu.so") in lines["libtorch_cpu.so"], r.stdout
    assert "not found" not in r.stdout, r.stdout
    assert "libtorch_cuda.so" not in lines, r.stdout


def test_startup_log_names_the_libtorch_version(serve, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    s = serve("--model-store", store, env=env_without_library_path())
    assert f"libtorch {TORCH_BASE}" in s.logs(), s.logs()[-2000:]


WHO_PY = """
import sys, torch
def handle(data, context):
    if data is None:  # the load calls a function handler once with no data, as TorchServe does
        return None
    return [{"executable": sys.executable, "torch": torch.__version__} for _ in data]
"""


def test_python_workers_run_the_venv_interpreter_by_default(serve, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    pack_python(tmp_path, store, "who", WHO_PY)
    s = serve("--model-store", store, "--models", "who=who.mar")
    r = s.infer("POST", "/predictions/who", "x")
    assert r.status == 200, r
    got = r.json()
    # The same interpreter (and so the same torch) as this test, which make runs from .venv.
    assert Path(got["executable"]).parent.resolve() == Path(sys.executable).parent.resolve(), got
    assert got["torch"] == torch.__version__, got
