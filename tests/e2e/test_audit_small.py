"""[11] parts 5, 8 and 11: a batch size that would make every worker ask for gigabytes is
refused; nothing logged can forge a log line or a terminal escape; a 401 does not name the
key file's path; the folders of a SIGKILLed server are removed by the next one."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import Server, pack
from models import MLP, save_script

pytestmark = pytest.mark.badinput


@pytest.fixture
def store(tmp_path):
    d = tmp_path / "store"
    d.mkdir()
    save_script(MLP, tmp_path / "mlp.pt")
    pack(d, "mlp", tmp_path / "mlp.pt")
    return d


def test_a_huge_batch_size_is_refused(serve, store, tmp_path):
    s = serve("--model-store", store, "--enable-model-api")
    r = s.mgmt("POST", "/models?url=mlp.mar&batch_size=2147483647&initial_workers=1&synchronous=true")
    assert r.status == 400 and "batch_size must be at most 1024" in r.json()["message"], r
    cfg = tmp_path / "big.yaml"
    cfg.write_text("batchSize: 100000\n")
    pack(store, "big", tmp_path / "mlp.pt", config=cfg)
    r = s.mgmt("POST", "/models?url=big.mar&initial_workers=1&synchronous=true")
    assert r.status == 400 and "batchSize" in r.json()["message"] and "1024" in r.json()["message"], r
    r = s.mgmt("POST", "/models?url=mlp.mar&batch_size=1024&initial_workers=1&synchronous=true")
    assert r.status == 200, r


def test_nothing_logged_forges_a_line(serve, store):
    s = serve("--model-store", store, "--models", "mlp=mlp.mar")
    forged = "2026-01-01T00:00:00.000Z ERROR forged"
    path = "/x%0d%0a" + forged.replace(" ", "%20") + "%1b[31m"
    assert s.infer("GET", path).status == 404
    s.mgmt("POST", "/models?url=" + "%0a" + forged.replace(" ", "%20"))
    time.sleep(0.2)
    text = s.logs()
    assert not any(line.startswith(forged) for line in text.splitlines()), text[-2000:]
    assert "\x1b" not in text and "\r" not in text
    assert "\\x0d\\x0a" + forged in text or "\\x0d" in text, text[-2000:]


def test_a_401_names_no_path(serve, store, tmp_path):
    s = serve("--model-store", store, "--models", "mlp=mlp.mar", "--disable_token_authorization", "false")
    r = s.infer("POST", "/predictions/mlp", "[[0.5]]")
    assert r.status == 401, r
    msg = r.json()["message"]
    assert "key_file.json" in msg and "/" not in msg.split("key_file.json")[0].split()[-1], msg
    assert str(os.getcwd()) not in msg and "/tmp" not in msg, msg


def test_a_killed_servers_folders_are_removed_by_the_next(store, tmp_path):
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp)}
    s = Server(["--model-store", store, "--models", "mlp=mlp.mar"], tmp_path / "a.log", env=env)
    left = [p for p in tmp.iterdir() if p.name.startswith(f"wick-{s.proc.pid}-")]
    assert left, list(tmp.iterdir())
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait()
    s.log.close()
    assert all(p.exists() for p in left)
    # a folder of a process that is alive, and one not named by wick, are left alone
    other = tmp / f"wick-{os.getpid()}-model-keepme"
    other.mkdir()
    (tmp / "unrelated").mkdir()
    s2 = Server(["--model-store", store, "--models", "mlp=mlp.mar"], tmp_path / "b.log", env=env)
    try:
        assert not any(p.exists() for p in left), list(tmp.iterdir())
        assert other.exists() and (tmp / "unrelated").exists()
        assert "left by wick processes that are gone" in s2.logs()
    finally:
        assert s2.stop() == 0


def test_the_cli_checks_sizes_before_reading(tmp_path):
    import zipfile

    import torch

    from conftest import run_wick
    # a 2 MiB MANIFEST.json that compresses to a few KB: refused from its size
    mar = tmp_path / "big.mar"
    with zipfile.ZipFile(mar, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("MAR-INF/MANIFEST.json", " " * (2 << 20))
    r = run_wick("inspect", mar, check=False)
    assert r.returncode != 0 and "at most 1048576 are read" in r.stderr, r.stderr
    # a tensor whose stride 0 repeats one element 2^28 times: refused, nothing written
    pt = tmp_path / "expand.pt"
    torch.save({"w": torch.zeros(1).expand(16384, 16384)}, pt)
    r = run_wick("inspect", pt, check=False)
    assert r.returncode != 0 and "a stride of 0" in r.stderr, (r.stdout, r.stderr)
    small = tmp_path / "small.pt"
    torch.save({"w": torch.zeros(1).expand(4, 4)}, small)
    assert run_wick("inspect", small).returncode == 0
