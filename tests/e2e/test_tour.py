"""The PyTorch tour (seeds/004), exactly as a new user runs it with wick in place of
torch-model-archiver and torchserve: the Lightning CNNModel trained briefly on Debian's
FashionMNIST, checkpointed, reloaded, scripted; `wick pack ... --handler handler` with a
TorchServe-style handler.py in the working directory; `wick serve --start --ncs
--model-store model_store --models machin-lern`; predictions and explanations with curl
-T; `wick serve --stop`. examples/tour/ holds the same steps as files."""
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, SANITIZED, WICK, free_port, run_wick

TOUR = ROOT / "examples" / "tour"
TIMEOUT = 240 if SANITIZED else 120


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    work = tmp_path_factory.mktemp("tour")
    r = subprocess.run([sys.executable, str(TOUR / "train.py"), "--out", str(work), "--steps", "200"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    shutil.copy(TOUR / "handler.py", work / "handler.py")
    return work


def wick_in(work, env, *args, check=True):
    r = subprocess.run([WICK] + [str(a) for a in args], cwd=work, env=env, capture_output=True,
                       text=True, timeout=TIMEOUT)
    if check:
        assert r.returncode == 0, f"wick {' '.join(map(str, args))}: {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def curl_T(url, path):
    r = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", url, "-T", str(path)],
                       capture_output=True, text=True, timeout=120)
    body, _, code = r.stdout.rpartition("\n")
    return int(code), body


def tour_input(path):
    """What the tour's handler makes of a PNG: ToTensor, Normalize((0.1307,), (0.3081,))."""
    a = np.asarray(Image.open(path), dtype=np.float32) / 255.0
    return ((torch.from_numpy(a) - 0.1307) / 0.3081).reshape(1, 1, 28, 28)


def test_the_tour_runs_as_written(tour, tmp_path):
    ports = {k: free_port() for k in ("inference", "management", "metrics")}
    cfg = tmp_path / "config.properties"
    cfg.write_text("".join(f"{k}_address=http://127.0.0.1:{p}\n" for k, p in ports.items()))
    (tmp_path / "tmp").mkdir()
    env = dict(os.environ, TS_CONFIG_FILE=str(cfg), TMPDIR=str(tmp_path / "tmp"),
               LOG_LOCATION=str(tmp_path / "logs"))
    jit = tour / "checkpoints" / "jit_model.pt"
    assert jit.exists()
    shutil.rmtree(tour / "model_store", ignore_errors=True)

    # the archive, with the tour's flags: `--handler handler` means ./handler.py
    wick_in(tour, env, "pack", "--model-name", "machin-lern", "--version", "1.0",
            "--serialized-file", jit, "--export-path", "model_store", "--handler", "handler")
    with zipfile.ZipFile(tour / "model_store" / "machin-lern.mar") as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("MAR-INF/MANIFEST.json"))
    assert "handler.py" in names and "jit_model.pt" in names, names
    assert manifest["model"]["handler"] == "handler.py", manifest

    wick_in(tour, env, "serve", "--start", "--ncs", "--model-store", "model_store",
            "--models", "machin-lern")
    try:
        base = f"http://127.0.0.1:{ports['inference']}"
        model = torch.jit.load(str(jit)).eval()
        for i in range(3):
            img = tour / "images" / f"{i}.png"
            assert Image.open(img).mode == "L"  # one channel, as the model takes it
            code, body = curl_T(f"{base}/predictions/machin-lern", img)
            assert code == 200, body
            with torch.no_grad():
                want = model(tour_input(img)).argmax(1).item()
            assert json.loads(body) == want, (body, want)
        # explanations: the ts ImageClassifier's Captum integrated gradients
        code, body = curl_T(f"{base}/explanations/machin-lern", tour / "images" / "0.png")
        assert code == 200, body
        got = torch.tensor(json.loads(body))
        from captum.attr import IntegratedGradients
        x = tour_input(tour / "images" / "0.png")
        want = IntegratedGradients(model).attribute(x, target=0, n_steps=15)[0]
        assert got.shape == want.shape, (got.shape, want.shape)
        assert (got - want).abs().max().item() <= 1e-4 * max(want.abs().max().item(), 1e-6)
        log = (tmp_path / "logs" / "wick.log").read_text()
        assert "machin-lern.mar" in log, log[-2000:]
    finally:
        wick_in(tour, env, "serve", "--stop", check=False)


def test_inspect_reads_the_lightning_checkpoint_running_nothing(tour):
    ckpt = next((tour / "checkpoints").glob("*.ckpt"))
    got = json.loads(run_wick("inspect", "--json", ckpt).stdout)["weights"]
    names = {t["name"] for t in got["tensors"]}
    assert "cnn.0.weight" in names and "cnn.10.bias" in names, sorted(names)[:20]
    text = run_wick("inspect", ckpt).stdout
    assert "cnn.0.weight" in text
    # Lightning stores more than the state_dict: wick reads and describes the rest (the
    # ModelCheckpoint callback's state, the loops, the version) without running anything;
    # objects outside the weights-only allowlist would be listed as opaque (this model saves
    # no hyper-parameters; test_weights.py covers a checkpoint that does)
    entries = {e["key"]: e["summary"] for e in got["entries"]}
    assert entries["global_step"] == "200" and entries["epoch"] == "0", entries
    assert entries["callbacks"].startswith("dict of 1: ModelCheckpoint{"), entries
    assert entries["pytorch-lightning_version"].startswith("'2."), entries
    assert "other entries of the checkpoint" in text and "callbacks: dict of 1: ModelCheckpoint" in text
    sd = torch.load(ckpt, weights_only=False)["state_dict"]
    assert names >= set(sd), set(sd) - names


@pytest.mark.badinput
def test_pack_refuses_a_handler_that_is_neither_a_file_nor_built_in(tmp_path):
    (tmp_path / "m.pt").write_bytes(b"x")
    r = subprocess.run([WICK, "pack", "--model-name", "m", "--version", "1.0", "--serialized-file",
                        "m.pt", "--export-path", ".", "--handler", "handlr"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "handlr" in r.stderr and "handlr.py" in r.stderr and "image_classifier" in r.stderr, r.stderr
    assert not (tmp_path / "m.mar").exists()
