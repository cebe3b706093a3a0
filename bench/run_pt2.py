#!/usr/bin/env python3
"""AOTInductor .pt2 packages against frozen TorchScript, served by the same wick, in one run.

    .venv/bin/python bench/run_pt2.py BUILD_DIR [--out bench/RESULTS-pt2.md]

1. Memory: a 21 M-parameter MLP (84 MB of float32 weights) as a .pt2, served with 1 and
   with 4 workers (each worker has run a forward): VmRSS and Pss of the wick process, and
   the same for TorchScript. Target: 4 workers <= 1.2x one worker's RSS.
2. Speed: the fashion CNN (the demo's weights, 28x28 PNGs) and ResNet-18 (torchvision,
   random weights, 224x224 JPEG) under the image_classifier handler, each as a .pt2 and as
   frozen TorchScript, batchSize 1 and 8, wrk at c=1 and c=16; the four variants of a
   network are models of one server and are measured one after another, twice, so drift
   hits them alike. Target: .pt2 >= 1.0x TorchScript. The packages are exported with
   torch's backed_size_oblivious, which keeps a batch range starting at 1 where the graph
   allows it; where it starts at 2, wick pads a single row to two (reported below).

Packages are compiled here with the venv's torch (a few minutes on two cores). Writes the
tables, the command and the machine to --out.
"""
import argparse
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from models import compile_pt2  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from serving_tools import proc_mem_kb, wrk_post  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Wick:
    def __init__(self, wick, store, models, log):
        self.port, self.mport, self.xport = free_port(), free_port(), free_port()
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(
            [wick, "serve", "--model-store", store, "--models", *models, "--quiet",
             "--inference_address", f"http://127.0.0.1:{self.port}",
             "--management_address", f"http://127.0.0.1:{self.mport}",
             "--metrics_address", f"http://127.0.0.1:{self.xport}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"wick exited; see {log}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=2)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("wick did not start")

    def post(self, model, body, ctype="application/octet-stream"):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/predictions/{model}",
                                     data=body, headers={"Content-Type": ctype})
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.read()

    def memory(self):
        return proc_mem_kb(self.proc.pid)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.log.close()


def pack(wick, store, name, serialized, handler, config, extra=()):
    cfg = Path(store) / f"{name}.yaml"
    cfg.write_text(config)
    args = [wick, "pack", "--model-name", name, "--version", "1", "--serialized-file",
            serialized, "--handler", handler, "--config-file", cfg, "--export-path", store, "-f"]
    if extra:
        args += ["--extra-files", ",".join(map(str, extra))]
    subprocess.run([str(a) for a in args], check=True, capture_output=True)


class Big(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(1024, 4096)
        self.b = torch.nn.Linear(4096, 4096)
        self.c = torch.nn.Linear(4096, 10)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


def memory_rows(wick, work):
    store = work / "mem"
    store.mkdir()
    torch.manual_seed(0)
    big = Big().eval()
    torch.jit.script(big).save(str(work / "big.pt"))
    compile_pt2(big, [torch.randn(2, 1024)], work / "big.pt2", batch=(1, 8), size_oblivious=True)
    body = json.dumps({"data": [[0.1] * 1024]}).encode()
    rows = []
    for kind, f in (("pt2", work / "big.pt2"), ("TorchScript", work / "big.pt")):
        res = {}
        for workers in (1, 4):
            name = f"big_{kind.lower()}_{workers}"
            pack(wick, store, name, f, "tensor",
                 f"minWorkers: {workers}\nmaxWorkers: {workers}\nbatchSize: 1\n")
            s = Wick(wick, store, [f"{name}={name}.mar"], work / f"{name}.log")
            try:
                import concurrent.futures as cf
                with cf.ThreadPoolExecutor(8) as pool:  # every worker runs forwards
                    list(pool.map(lambda _: s.post(name, body, "application/json"), range(200)))
                res[workers] = s.memory()
            finally:
                s.stop()
        rows.append((kind, res[1], res[4]))
        print(f"memory {kind}: 1 worker {res[1]}, 4 workers {res[4]} (kB RSS, Pss)", flush=True)
    return rows


def fashion_png():
    import gzip
    import numpy as np
    from PIL import Image
    raw = gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").read()[16:]
    img = np.frombuffer(raw, np.uint8).reshape(-1, 28, 28)[0]
    b = io.BytesIO()
    Image.fromarray(img).save(b, format="PNG")
    return b.getvalue()


def photo_jpeg():
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:480, 0:640]
    img = np.stack([(x * 255 // 640), (y * 255 // 480), ((x + y) % 256)], -1).astype(np.uint8)
    img = np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
    b = io.BytesIO()
    Image.fromarray(img).save(b, format="JPEG", quality=90)
    return b.getvalue()


def batch_range(wick, package):
    """The package's batch range as wick reads it ("2..32")."""
    out = subprocess.run([wick, "inspect", "--json", str(package)], capture_output=True,
                         text=True, check=True).stdout
    b = json.loads(out)["aotinductor"]["batch"]
    return "none" if b is None else f"{b['min']}..{b['max'] if b['max'] >= 0 else ''}"


RANGES = {}


def speed_rows(wick, work, seconds, rounds):
    import importlib.util
    spec = importlib.util.spec_from_file_location("fashion_train", ROOT / "examples/fashion/train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fashion = mod.FashionCNN()
    demo = ROOT / "build" / "demo" / "fashion.pt"
    fashion.load_state_dict(torch.jit.load(str(demo)).state_dict())
    import torchvision
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None).eval()
    nets = {
        "fashion": (fashion.eval(), (1, 28, 28), fashion_png(),
                    "  image: {channels: 1, resize: 0, crop: 0, mean: [0.2860], std: [0.3530]}\n"),
        "resnet18": (resnet, (3, 224, 224), photo_jpeg(), "  image: {resize: 256, crop: 224}\n"),
    }
    rows = []
    for net, (module, shape, image, image_cfg) in nets.items():
        store = work / net
        store.mkdir()
        t = time.time()
        compile_pt2(module, [torch.randn(2, *shape)], work / f"{net}.pt2", batch=(1, 32),
                    size_oblivious=True)
        RANGES[net] = batch_range(wick, work / f"{net}.pt2")
        print(f"{net}: compiled in {time.time() - t:.0f} s, batch {RANGES[net]}", flush=True)
        torch.jit.script(module).save(str(work / f"{net}.pt"))
        (work / f"{net}.img").write_bytes(image)
        models = []
        for kind, f in (("pt2", work / f"{net}.pt2"), ("ts", work / f"{net}.pt")):
            for batch in (1, 8):
                name = f"{net}_{kind}_b{batch}"
                pack(wick, store, name, f, "image_classifier",
                     f"minWorkers: 2\nmaxWorkers: 2\nbatchSize: {batch}\nmaxBatchDelay: 5\n"
                     f"wick:\n{image_cfg}")
                models.append(name)
        s = Wick(wick, store, [f"{m}={m}.mar" for m in models], work / f"{net}.log")
        try:
            for m in models:  # warm up: TorchScript's profiling runs, the package's first run
                for _ in range(5):
                    s.post(m, image)
            results = {}
            for r in range(rounds):
                for c in (1, 16):
                    for m in models:
                        res = wrk_post(f"http://127.0.0.1:{s.port}/predictions/{m}",
                                       work / f"{net}.img", c, seconds,
                                       work / f"wrk-{m}-c{c}-r{r}.txt",
                                       "application/octet-stream")
                        results.setdefault((m, c), []).append(res)
                        print(f"  r{r} {m} c={c}: {res['rps']:.0f} req/s p50 {res['p50']:.0f} us",
                              flush=True)
        finally:
            s.stop()
        for c in (1, 16):
            for batch in (1, 8):
                best = {k: max(results[(f"{net}_{k}_b{batch}", c)], key=lambda x: x["rps"])
                        for k in ("pt2", "ts")}
                rows.append((net, c, batch, best["pt2"], best["ts"]))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-pt2.md"))
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_PT2_SECONDS", "5")))
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    wick = str(Path(args.build).resolve() / "wick")
    with tempfile.TemporaryDirectory(prefix="wick-bench-pt2-") as tmp:
        work = Path(tmp)
        mem = memory_rows(wick, work)
        speed = speed_rows(wick, work, args.seconds, args.rounds)
    version = subprocess.run([wick, "--version"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    lines = [
        "# .pt2 (AOTInductor) vs TorchScript: bench results", "",
        "Written by `bench/run_pt2.py`; rerun with "
        "`make bench-pt2` (part of `make bench`).", "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {os.cpu_count()} CPUs, {cpu}, Linux {platform.release()}",
        f"- wick: `{version}`; packages compiled by torch {torch.__version__}",
        f"- load: wrk, {args.seconds} s per run, best of {args.rounds} interleaved rounds, "
        "keep-alive, 127.0.0.1, sharing the cores with the server", "",
        "## Resident memory: 1 vs 4 workers (21 M-parameter MLP, 84 MB of weights)", "",
        "| model | 1 worker RSS (MB) | 4 workers RSS (MB) | 4/1 RSS | 1 worker Pss (MB) | 4 workers Pss (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, one, four in mem:
        lines.append(f"| {kind} | {one[0] / 1024:.0f} | {four[0] / 1024:.0f} | "
                     f"{four[0] / one[0]:.2f}x | {one[1] / 1024:.0f} | {four[1] / 1024:.0f} |")
    lines += ["", "Target: 4 workers <= 1.2x one worker's RSS (the workers share one set of "
              "constants).", "",
              "## image_classifier: .pt2 vs frozen TorchScript", "",
              "Fashion CNN: 28x28 gray PNG; ResNet-18: 640x480 JPEG resized to 256, cropped to 224. "
              "minWorkers 2, maxBatchDelay 5 ms.", "",
              "| model | c | batchSize | pt2 req/s | pt2 p50 (us) | pt2 p99 (us) | TorchScript req/s | TorchScript p50 (us) | pt2/TorchScript req/s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for net, c, batch, p, t in speed:
        lines.append(f"| {net} | {c} | {batch} | {p['rps']:,.0f} | {p['p50']:,.0f} | {p['p99']:,.0f} | "
                     f"{t['rps']:,.0f} | {t['p50']:,.0f} | {p['rps'] / t['rps']:.2f}x |")
    lines += ["", "The packages' batch ranges as wick read them: " +
              ", ".join(f"{k} {v}" for k, v in RANGES.items()) + " (exported with dynamic "
              "dimension 0 in 1..32; a range starting at 2 means a single row runs padded to "
              "two)."]
    errs = sum(x[3]["non2xx"] + x[4]["non2xx"] for x in speed)
    lines += ["", f"Non-2xx replies in these runs: {errs}.", "", "Target: .pt2 >= 1.0x TorchScript.", ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
