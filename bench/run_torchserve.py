#!/usr/bin/env python3
"""wick against TorchServe itself (0.12.0, scripts/install-torchserve.sh), side by side, in
one run: the bench MLP (JSON tensors) on

  - TorchServe with a Python handler (bench/handlers/mlp_handler.py),
  - wick natively (the tensor handler, TorchScript in C + libtorch),
  - wick with the very same Python handler (wick's Python workers),

all three servers up at once; wrk at c=1, 16, 64, interleaved server by server, two rounds.
Then, one server at a time: resident memory with 1 and 4 workers (every process of the
server summed: RSS and PSS; TorchServe's java and its Python workers, wick and its Python
workers), and cold start (exec to the first 200 of a prediction). Writes
bench/RESULTS-torchserve.md.

    .venv/bin/python bench/run_torchserve.py BUILD_DIR [--ts-venv build/ts-venv]

The fashion CNN (28x28 PNG) and ResNet-18 (640x480 JPEG) are measured too (c=1 and 16), with
TorchServe's ImageClassifier-based handlers on both servers and wick's native
image_classifier, and each server's answer to one request is compared with TorchServe's.
Targets (issue [10]): MLP c=64 wick native >= 10x TorchServe; fashion PNG c=16 >= 3x;
ResNet-18 JPEG c=16 >= 1.3x; the same Python handler c=16 >= 2x; memory at 4 workers
<= 0.3x; cold start <= 0.25x. One explanation of a fashion PNG is timed on each server
(Captum in the Python workers, wick's integrated gradients natively).
"""
import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# One intra-op thread per Python worker on both servers (TorchServe's own advice for CPU
# workers; with torch's default of every core per worker, two workers of a CNN on two cores
# spin against each other and fall to a few requests per second on both servers). wick's
# native workers set their own count (cores / workers).
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
HANDLER = ROOT / "bench" / "handlers" / "mlp_handler.py"
sys.path.insert(0, str(ROOT / "bench"))
from serving_tools import proc_mem_kb, stop_group, wrk_post  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid):
    """pid and all its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def memory(pids):
    """(RSS kB, PSS kB, processes) summed over pids."""
    rss = pss = n = 0
    for p in pids:
        r, q = proc_mem_kb(p)
        if r is not None and q is not None:
            rss, pss, n = rss + r, pss + q, n + 1
    return rss, pss, n


class Server:
    """One server process group; url_of(model) is its predictions URL."""

    def __init__(self, kind, cmd, port, work, env=None, mgmt_port=None):
        self.kind, self.port, self.mgmt_port = kind, port, mgmt_port
        self.log = open(work / f"{kind}-{port}.log", "wb")
        self.t0 = time.time()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=work,
                                     env=dict(os.environ, **(env or {})), start_new_session=True)

    def url(self, model):
        return f"http://127.0.0.1:{self.port}/predictions/{model}"

    def wait_ready(self, model, body, timeout=300, ctype="application/json"):
        """Seconds from exec to the first 200 of a prediction."""
        deadline = self.t0 + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.flush()
                tail = Path(self.log.name).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.kind} exited; the end of {self.log.name}:\n{tail}")
            try:
                if post(self.url(model), body, ctype) == 200:
                    return time.time() - self.t0
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.kind} did not answer in {timeout} s; see {self.log.name}")

    def serving_pids(self):
        """The processes that serve: TorchServe's java (not its launcher script) and its
        workers; wick and its workers."""
        pids = tree(self.proc.pid)
        if self.kind == "torchserve":
            java = [p for p in pids if "java" in Path(f"/proc/{p}/comm").read_text()]
            return tree(java[0]) if java else pids
        return pids

    def stop(self):
        stop_group(self.proc, grace=30)
        self.log.close()


def post(url, body, ctype="application/json", want_body=False):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=60) as r:
        data = r.read()
        return (r.status, data) if want_body else r.status


def start_torchserve(ts_venv, store, workers, work, models=("mlp=mlp_ts.mar",), extra=""):
    """extra: more config.properties lines (run_grpc.py's gRPC ports)."""
    ports = [free_port() for _ in range(3)]
    extra = grpc_ports(extra)
    cfg = work / f"ts-{ports[0]}.properties"
    cfg.write_text(f"inference_address=http://127.0.0.1:{ports[0]}\n"
                   f"management_address=http://127.0.0.1:{ports[1]}\n"
                   f"metrics_address=http://127.0.0.1:{ports[2]}\n"
                   "disable_token_authorization=true\n"
                   f"default_workers_per_model={workers}\n"
                   "install_py_dep_per_model=false\n" + extra)
    # TorchServe keeps its pid file in the temporary folder and refuses to start while one
    # is there: each instance gets a folder of its own
    tmp = work / f"ts-tmp-{ports[0]}"
    tmp.mkdir()
    env = {"PATH": f"{ts_venv}/bin:" + os.environ["PATH"], "TMPDIR": str(tmp)}
    cmd = [f"{ts_venv}/bin/torchserve", "--start", "--foreground", "--ncs", "--model-store",
           str(store), "--models", *models, "--ts-config", str(cfg)]
    return Server("torchserve", cmd, ports[0], work, env, ports[1])


def grpc_ports(extra):
    """extra, with free gRPC ports unless it names them: every server serves gRPC too, and
    two on 7070/7071 at once would fail to start."""
    if "grpc_inference_port" not in extra:
        extra += f"grpc_inference_port={free_port()}\ngrpc_management_port={free_port()}\n"
    return extra


def start_wick(wick, store, models, workers, work, kind, extra=""):
    ports = [free_port() for _ in range(3)]
    extra = grpc_ports(extra)
    cfg = work / f"wick-{ports[0]}.properties"
    cfg.write_text(f"default_workers_per_model={workers}\n" + extra)
    cmd = [wick, "serve", "--model-store", str(store), "--models", *models, "--quiet",
           "--ts-config", str(cfg),
           "--inference_address", f"http://127.0.0.1:{ports[0]}",
           "--management_address", f"http://127.0.0.1:{ports[1]}",
           "--metrics_address", f"http://127.0.0.1:{ports[2]}"]
    return Server(kind, cmd, ports[0], work, mgmt_port=ports[1])


HANDLERS = ROOT / "bench" / "handlers"
FASHION_CFG = """minWorkers: {w}
wick:
  image: {{channels: 1, resize: 0, crop: 0, mean: [0.2860], std: [0.3530]}}
"""


def fashion_png():
    import gzip
    import io
    import numpy as np
    from PIL import Image
    raw = gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").read()[16:]
    b = io.BytesIO()
    Image.fromarray(np.frombuffer(raw, np.uint8).reshape(-1, 28, 28)[0]).save(b, format="PNG")
    return b.getvalue()


def photo_jpeg():
    import io
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:480, 0:640]
    img = np.stack([(x * 255 // 640), (y * 255 // 480), ((x + y) % 256)], -1)
    img = np.clip(img + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
    b = io.BytesIO()
    Image.fromarray(img).save(b, format="JPEG", quality=90)
    return b.getvalue()


def archive(tool, name, serialized, handler, store, extra=(), config=None):
    """One archive, by torch-model-archiver (tool is its path) or wick pack (tool is wick)."""
    args = [tool] + (["pack"] if tool.endswith("wick") else [])
    args += ["--model-name", name, "--version", "1.0", "--serialized-file", str(serialized),
             "--handler", str(handler), "--export-path", str(store), "-f"]
    if extra:
        args += ["--extra-files", ",".join(map(str, extra))]
    if config:
        args += ["--config-file", str(config)]
    subprocess.run(args, check=True, capture_output=True)


def prepare(wick, ts_venv, work, workers):
    """The three workloads' models and archives: for each, TorchServe's archive (its
    archiver, the Python handler), wick's native one and wick's with the same handler.
    Returns the store and {workload: (body file, content type)}."""
    import torch
    import torchvision
    subprocess.run([sys.executable, str(ROOT / "bench" / "make_mlp.py"), "--out", str(work)],
                   check=True, capture_output=True)
    store = work / "store"
    store.mkdir()
    tma = f"{ts_venv}/bin/torch-model-archiver"
    fashion_pt = ROOT / "build" / "demo" / "fashion.pt"
    names = ROOT / "examples" / "fashion" / "index_to_name.json"
    torch.manual_seed(0)
    torch.jit.script(torchvision.models.resnet18(weights=None).eval()).save(str(work / "resnet.pt"))
    inames = work / "imagenet" / "index_to_name.json"
    inames.parent.mkdir()
    inames.write_text(json.dumps({str(i): f"class_{i}" for i in range(1000)}))
    fcfg = work / "fashion.yaml"
    fcfg.write_text(FASHION_CFG.format(w=workers))
    archive(tma, "mlp_ts", work / "mlp.pt", HANDLERS / "mlp_handler.py", store)
    archive(wick, "mlp_native", work / "mlp.pt", "tensor", store)
    archive(wick, "mlp_py", work / "mlp.pt", HANDLERS / "mlp_handler.py", store)
    archive(tma, "fashion_ts", fashion_pt, HANDLERS / "fashion_handler.py", store, [names])
    archive(wick, "fashion_native", fashion_pt, "image_classifier", store, [names], fcfg)
    archive(wick, "fashion_py", fashion_pt, HANDLERS / "fashion_handler.py", store, [names])
    archive(tma, "resnet_ts", work / "resnet.pt", HANDLERS / "resnet_handler.py", store, [inames])
    archive(wick, "resnet_native", work / "resnet.pt", "image_classifier", store, [inames])
    archive(wick, "resnet_py", work / "resnet.pt", HANDLERS / "resnet_handler.py", store, [inames])
    (work / "fashion.png").write_bytes(fashion_png())
    (work / "photo.jpg").write_bytes(photo_jpeg())
    return store, {"mlp": (work / "mlp_request.json", "application/json"),
                   "fashion": (work / "fashion.png", "image/png"),
                   "resnet": (work / "photo.jpg", "image/jpeg")}


SUFFIX = {"torchserve": "ts", "wick_native": "native", "wick_python": "py",
          "wick_python_spawned": "py"}
CONNS = {"mlp": (1, 16, 64), "fashion": (1, 16, 64), "resnet": (1, 16, 64)}
# wick's Python workers forked from the template (the default) and, for the memory, cold
# start and scale-up rows, each started on its own as TorchServe starts them
SPAWNED = "python_fork_server=false\n"


def same_answers(servers, loads):
    """{workload: text} comparing each wick server's answer to TorchServe's on one request."""
    out = {}
    for wl, (body_file, ctype) in loads.items():
        body = body_file.read_bytes()
        answers = {k: json.loads(post(s.url(wl), body, ctype, want_body=True)[1])
                   for k, s in servers.items()}
        ref = answers["torchserve"]
        notes = []
        for k in ("wick_native", "wick_python"):
            got = answers[k]
            if isinstance(ref, dict):  # top-k {label: probability}
                same = list(got) == list(ref) and all(abs(got[c] - ref[c]) < 1e-4 for c in ref)
                diff = max((abs(got.get(c, 0) - ref[c]) for c in ref), default=0)
            else:
                import torch
                diff = float((torch.tensor(got, dtype=torch.float64).flatten() -
                              torch.tensor(ref, dtype=torch.float64).flatten()).abs().max())
                same = diff < 1e-5
            notes.append(f"{k}: {'same' if same else 'DIFFERENT'} (max diff {diff:.1e})")
        out[wl] = "; ".join(notes)
    return out


def explain_times(servers, loads, n=5):
    """{server: (median seconds, status)} of POST /explanations/fashion: Captum's integrated
    gradients in TorchServe's (and wick's Python) workers, wick's own natively."""
    body_file, ctype = loads["fashion"]
    body = body_file.read_bytes()
    out = {}
    for k, s in servers.items():
        url = s.url("fashion").replace("/predictions/", "/explanations/")
        if k == "wick_native":  # the 15 steps TorchServe's VisionHandler uses
            url += "?n_steps=15"
        times, status = [], None
        for _ in range(n):
            t = time.time()
            try:
                status = post(url, body, ctype)
            except urllib.error.HTTPError as e:
                status = e.code
            times.append(time.time() - t)
        out[k] = (sorted(times)[len(times) // 2], status)
        print(f"explain {k}: {out[k][0] * 1000:.0f} ms, status {status}", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--ts-venv", default=str(ROOT / "build" / "ts-venv"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-torchserve.md"))
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_TS_SECONDS", "8")))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="workers of each model in the load runs")
    a = ap.parse_args()
    wick = str(Path(a.build).resolve() / "wick")
    ts_venv = str(Path(a.ts_venv).resolve())
    with tempfile.TemporaryDirectory(prefix="wick-bench-ts-") as tmp:
        work = Path(tmp)
        store, loads = prepare(wick, ts_venv, work, a.workers)
        kinds = ("torchserve", "wick_native", "wick_python")

        def start(kind, workers, workloads):
            models = [f"{wl}={wl}_{SUFFIX[kind]}.mar" for wl in workloads]
            if kind == "torchserve":
                return start_torchserve(ts_venv, store, workers, work, models)
            return start_wick(wick, store, models, workers, work, kind,
                              SPAWNED if kind == "wick_python_spawned" else "")

        # 1. throughput, all servers (with all three models) up at once
        servers = {k: start(k, a.workers, list(loads)) for k in kinds}
        results = {}
        try:
            for s in servers.values():
                for wl, (body_file, ctype) in loads.items():
                    body = body_file.read_bytes()
                    s.wait_ready(wl, body, ctype=ctype)
                    for _ in range(20 if wl == "resnet" else 200):
                        post(s.url(wl), body, ctype)
            answers = same_answers(servers, loads)
            explained = explain_times(servers, loads)
            for r in range(a.rounds):
                for wl, (body_file, ctype) in loads.items():
                    for c in CONNS[wl]:
                        for k, s in servers.items():
                            res = wrk_post(s.url(wl), body_file, c, a.seconds,
                                           work / f"wrk-{wl}-{k}-c{c}-r{r}.txt", ctype)
                            results.setdefault((wl, k, c), []).append(res)
                            print(f"r{r} {wl} {k} c={c}: {res['rps']:.0f} req/s p50 "
                                  f"{res['p50']:.0f} us non-2xx {res['non2xx']}", flush=True)
        finally:
            for s in servers.values():
                s.stop()
        # 2. memory at 1 and 4 workers, cold start and scaling 1 -> 4 workers, one server
        # at a time (the MLP)
        body = loads["mlp"][0].read_bytes()
        mem, cold, scale = {}, {}, {}
        for k in kinds + ("wick_python_spawned",):
            for w in (1, 4):
                s = start(k, w, ["mlp"])
                try:
                    t = s.wait_ready("mlp", body)
                    if w == 1:
                        cold[k] = t
                        scale[k] = scale_up(s, 4)
                        s.stop()
                        s = start(k, w, ["mlp"])
                        s.wait_ready("mlp", body)
                    import concurrent.futures as cf
                    with cf.ThreadPoolExecutor(8) as pool:
                        list(pool.map(lambda _: post(s.url("mlp"), body), range(400)))
                    time.sleep(1)
                    mem[(k, w)] = memory(s.serving_pids())
                finally:
                    s.stop()
                print(f"{k} {w} workers: RSS {mem[(k, w)][0] / 1024:.0f} MB, PSS "
                      f"{mem[(k, w)][1] / 1024:.0f} MB, {mem[(k, w)][2]} processes", flush=True)
        # 3. what the Python handler alone costs per request, for the ceiling of the
        # same-handler ratio
        handler_us = {wl: handler_cpu_us(store, work, wl, loads, n)
                      for wl, n in (("mlp", 2000), ("fashion", 1000), ("resnet", 40))}
    write(a, wick, results, mem, cold, scale, handler_us, answers, explained)


HANDLER_CPU = r"""
import sys, time, types
from wick_worker import shim
shim.install()
from wick_worker.context import RequestProcessor
from wick_worker.loader import load_model
from wick_worker.service import decode_value
folder, body_file, ctype, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
msg = types.SimpleNamespace(model_name="m", model_path=folder, batch_size=1, handler="",
                            gpu_id=-1, envelope="", limit_max_image_pixels=1)
svc = load_model(msg, "bench")
body = open(body_file, "rb").read()
def once():
    svc.context.request_processor = [RequestProcessor({"body": {"content-type": ctype}})]
    svc.entry_point([{"body": decode_value(ctype, body)}], svc.context)
for _ in range(3):
    once()
t = time.process_time()
for _ in range(n):
    once()
print((time.process_time() - t) / n * 1e6)
"""


def handler_cpu_us(store, work, wl, loads, n):
    """CPU microseconds one request costs the Python handler alone (its entry point called
    in a process of its own, one thread as the workers run, no server): a floor under any
    server's CPU per request with that handler."""
    import zipfile
    folder = work / f"unpacked-{wl}"
    with zipfile.ZipFile(store / f"{wl}_py.mar") as z:
        z.extractall(folder)
    body_file, ctype = loads[wl]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=str(ROOT / "python"))
    out = subprocess.run([sys.executable, "-c", HANDLER_CPU, str(folder), str(body_file), ctype,
                          str(n)], cwd=folder, env=env, capture_output=True, text=True, check=True)
    us = float(out.stdout.split()[-1])
    print(f"{wl} handler alone: {us:.0f} us CPU per request", flush=True)
    return us


def scale_up(s, n):
    """Seconds that PUT /models/mlp?min_worker=n&synchronous=true takes."""
    url = f"http://127.0.0.1:{s.mgmt_port}/models/mlp?min_worker={n}&max_worker={n}&synchronous=true"
    t = time.time()
    with urllib.request.urlopen(urllib.request.Request(url, method="PUT"), timeout=300) as r:
        r.read()
        status = r.status
    dt = time.time() - t
    print(f"{s.kind} scale 1 -> {n}: {dt:.2f} s (status {status})", flush=True)
    return dt


# Why a target can be missed, by the first words of its name (see the rows for figures).
WHY = {
    "resnet": "both servers run the same handler and the same torch forward (ResNet-18 on a "
              "224x224 crop, tens of ms on these cores), which is nearly all of a request; "
              "what the server adds is a few percent, so no server can be 2x faster with it",
    "fashion": "the handler's own work (PIL decode, transforms, a forward) is most of a request "
               "in both servers; wick removes the frontend's share (Java, Netty, a copy per "
               "hop), not the handler's: the ceiling column above says how far any server "
               "could go",
    "mlp": "the handler's JSON parsing and tensor building dominate in both servers",
    "ResNet-18 JPEG": "the forward dominates on 2 cores (the native row is the same libtorch "
                      "forward without Python); only the decode and resize are wick's",
    "PSS at 4 workers": "a Python process that imported the CUDA wheel's torch holds ~500 MB "
                        "resident (~280 MB of it relocated library data); wick imports it once, "
                        "in the template its workers are forked from, so each worker adds ~10 MB "
                        "of its own, but that one import (~250 MB PSS), wick's own process "
                        "(~85 MB, ~60 MB of it libtorch's relocated data, linked even when only "
                        "Python models are served) and the workers' share of the template's "
                        "pages already come to more than 0.3x of TorchServe's four workers",
    "cold start": "the first Python worker waits for `import torch` (about 1 s here) as "
                  "TorchServe's does; the template only makes later workers fast",
}


def write(a, wick, results, mem, cold, scale, handler_us, answers, explained):
    version = subprocess.run([wick, "--version"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    best = {k: max(v, key=lambda x: x["rps"]) for k, v in results.items()}
    lines = [
        "# wick vs TorchServe: bench results", "",
        "Written by `bench/run_torchserve.py`; rerun with `make bench-torchserve` (installs "
        "TorchServe into build/ts-venv with scripts/install-torchserve.sh).", "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {os.cpu_count()} CPUs, {cpu}, Linux {platform.release()}",
        f"- wick: `{version}`; TorchServe 0.12.0 (Java 17), its workers on the same torch",
        "- models: the bench MLP Linear(16,64)-ReLU-Linear(64,4) (JSON, one row per request, "
        "`bench/make_mlp.py`); the fashion demo CNN (28x28 gray PNG); ResNet-18 (torchvision, "
        "random weights, TorchScript; a 640x480 JPEG, resized 256 and cropped 224). Python "
        "handlers on TorchServe and on wick: the same files, `bench/handlers/`",
        f"- load: wrk, {a.seconds} s per run, best of {a.rounds} interleaved rounds, keep-alive, "
        f"127.0.0.1, wrk sharing the cores; {a.workers} workers per model, batchSize 1; each "
        "server holds all three models; OMP_NUM_THREADS=1 for every Python worker", "",
    ]
    titles = {"mlp": "MLP, JSON", "fashion": "fashion CNN, 28x28 PNG",
              "resnet": "ResNet-18, 640x480 JPEG"}
    for wl in ("mlp", "fashion", "resnet"):
        lines += [f"## POST /predictions: {titles[wl]}", "",
                  f"Answers compared with TorchServe's on one request: {answers[wl]}.", "",
                  "| c | TorchServe req/s | p50 (us) | p99 (us) | wick native req/s | p50 (us) "
                  "| p99 (us) | wick + same Python handler req/s | p50 (us) | p99 (us) | "
                  "native/TorchServe | Python/TorchServe |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for c in CONNS[wl]:
            t, n, p = (best[(wl, k, c)] for k in ("torchserve", "wick_native", "wick_python"))
            lines.append(f"| {c} | {t['rps']:,.0f} | {t['p50']:,.0f} | {t['p99']:,.0f} | "
                         f"{n['rps']:,.0f} | {n['p50']:,.0f} | {n['p99']:,.0f} | "
                         f"{p['rps']:,.0f} | {p['p50']:,.0f} | {p['p99']:,.0f} | "
                         f"{n['rps'] / t['rps']:.2f}x | {p['rps'] / t['rps']:.2f}x |")
        lines.append("")
    errs = sum(x["non2xx"] for v in results.values() for x in v)
    lines += [f"Non-2xx replies in these runs: {errs}.", "",
              "## Resident memory (the MLP alone; every process of the server, after 400 "
              "requests)", "",
              "| server | 1 worker RSS (MB) | 1 worker PSS (MB) | 4 workers RSS (MB) | "
              "4 workers PSS (MB) | processes at 4 | 4 workers PSS / TorchServe's |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    ts4 = mem[("torchserve", 4)][1]
    mem_kinds = ("torchserve", "wick_native", "wick_python", "wick_python_spawned")
    for k in mem_kinds:
        one, four = mem[(k, 1)], mem[(k, 4)]
        lines.append(f"| {k} | {one[0] / 1024:,.0f} | {one[1] / 1024:,.0f} | {four[0] / 1024:,.0f} "
                     f"| {four[1] / 1024:,.0f} | {four[2]} | {four[1] / ts4:.2f}x |")
    lines += ["", "wick_python: workers forked from the template that imported torch once "
              "(the default); wick_python_spawned: `python_fork_server=false`, each worker "
              "imports torch itself, as TorchServe's do. wick's counts include the template.",
              "", "## Cold start (the MLP alone: exec to the first 200 of a prediction, 1 worker) "
              "and scaling 1 -> 4 workers (`PUT /models/mlp?min_worker=4&synchronous=true`)", "",
              "| server | cold start (s) | / TorchServe's | scale 1 -> 4 (s) | / TorchServe's |",
              "|---|---:|---:|---:|---:|"]
    for k in mem_kinds:
        lines.append(f"| {k} | {cold[k]:.2f} | {cold[k] / cold['torchserve']:.2f}x | "
                     f"{scale[k]:.2f} | {scale[k] / scale['torchserve']:.2f}x |")
    lines += ["", "## One explanation (fashion CNN, one PNG; median of 5, servers idle)", "",
              "TorchServe and wick's Python workers: the handler's Captum IntegratedGradients "
              "(VisionHandler, 15 steps); wick native: its own integrated gradients, "
              "`?n_steps=15`.", "",
              "| server | ms | status | / TorchServe's |", "|---|---:|---:|---:|"]
    for k in ("torchserve", "wick_native", "wick_python"):
        t, st = explained[k]
        lines.append(f"| {k} | {t * 1000:,.0f} | {st} | {t / explained['torchserve'][0]:.2f}x |")

    def ratio(wl, k, c):
        return best[(wl, k, c)]["rps"] / best[(wl, "torchserve", c)]["rps"]

    targets = [
        ("MLP c=64, wick native / TorchServe", ratio("mlp", "wick_native", 64), ">=", 10),
        ("fashion PNG c=16, wick native / TorchServe", ratio("fashion", "wick_native", 16), ">=", 3),
        ("ResNet-18 JPEG c=16, wick native / TorchServe", ratio("resnet", "wick_native", 16), ">=", 1.3),
    ] + [(f"{wl} c=16, the same Python handler / TorchServe", ratio(wl, "wick_python", 16), ">=", 2)
         for wl in ("mlp", "fashion", "resnet")] + [
        (f"PSS at 4 workers, {k} / TorchServe", mem[(k, 4)][1] / ts4, "<=", 0.3)
        for k in ("wick_native", "wick_python")] + [
        (f"cold start, {k} / TorchServe", cold[k] / cold["torchserve"], "<=", 0.25)
        for k in ("wick_native", "wick_python")]
    cores = os.cpu_count()
    lines += ["", "## The same Python handler: what the handler alone costs", "",
              "The handler's entry point called in a process of its own (one thread, as the "
              "workers run; no server, no socket) on the bench's request, against the CPU each "
              f"server spends per request at c=16 with all {cores} cores busy (cores / req/s, "
              "wrk's share included). No server can beat TorchServe by more than TorchServe's "
              "CPU per request over the handler's.", "",
              "| model | handler alone (us CPU) | TorchServe (us CPU per request) | wick + same "
              "handler (us CPU per request) | ceiling for any server / TorchServe | wick / "
              "TorchServe |", "|---|---:|---:|---:|---:|---:|"]
    for wl in ("mlp", "fashion", "resnet"):
        ts_us = cores / best[(wl, "torchserve", 16)]["rps"] * 1e6
        py_us = cores / best[(wl, "wick_python", 16)]["rps"] * 1e6
        lines.append(f"| {wl} | {handler_us[wl]:,.0f} | {ts_us:,.0f} | {py_us:,.0f} | "
                     f"{ts_us / handler_us[wl]:.2f}x | {ts_us / py_us:.2f}x |")
    lines += ["", "## Targets (issue [10]), as ratios in this run", "",
              "| target | ratio | bound | met |", "|---|---:|---:|---|"]
    missed = []
    for name, r, op, bound in targets:
        met = r >= bound if op == ">=" else r <= bound
        lines.append(f"| {name} | {r:.2f}x | {op} {bound}x | {'yes' if met else 'NO'} |")
        if not met:
            missed.append(name)
    lines.append("")
    if missed:
        lines += ["Why the targets marked NO are missed:", ""]
        for name in missed:
            lines.append(f"- {name}: {WHY.get(name.split(',')[0].split(' c=')[0], 'see the rows above')}")
        lines.append("")
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
