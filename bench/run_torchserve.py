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

Targets (issue [10]): MLP c=64 wick native >= 10x TorchServe; the same Python handler c=16
>= 2x; memory at 4 workers <= 0.3x; cold start <= 0.25x. The fashion CNN, ResNet-18,
explanations and the answer check are not in this script yet.
"""
import argparse
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
HANDLER = ROOT / "bench" / "handlers" / "mlp_handler.py"


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
        try:
            rss += int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{p}/status").read_text()).group(1))
            pss += int(re.search(r"Pss:\s+(\d+)", Path(f"/proc/{p}/smaps_rollup").read_text()).group(1))
            n += 1
        except (OSError, AttributeError):
            pass
    return rss, pss, n


class Server:
    """One server process group; url_of(model) is its predictions URL."""

    def __init__(self, kind, cmd, port, work, env=None):
        self.kind, self.port = kind, port
        self.log = open(work / f"{kind}-{port}.log", "wb")
        self.t0 = time.time()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=work,
                                     env=dict(os.environ, **(env or {})), start_new_session=True)

    def url(self, model):
        return f"http://127.0.0.1:{self.port}/predictions/{model}"

    def wait_ready(self, model, body, timeout=300):
        """Seconds from exec to the first 200 of a prediction."""
        deadline = self.t0 + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited; see {self.log.name}")
            try:
                if post(self.url(model), body) == 200:
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
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.log.close()


def post(url, body):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()
        return r.status


def start_torchserve(ts_venv, store, workers, work):
    ports = [free_port() for _ in range(3)]
    cfg = work / f"ts-{ports[0]}.properties"
    cfg.write_text(f"inference_address=http://127.0.0.1:{ports[0]}\n"
                   f"management_address=http://127.0.0.1:{ports[1]}\n"
                   f"metrics_address=http://127.0.0.1:{ports[2]}\n"
                   "disable_token_authorization=true\n"
                   f"default_workers_per_model={workers}\n"
                   "install_py_dep_per_model=false\n")
    # TorchServe keeps its pid file in the temporary folder and refuses to start while one
    # is there: each instance gets a folder of its own
    tmp = work / f"ts-tmp-{ports[0]}"
    tmp.mkdir()
    env = {"PATH": f"{ts_venv}/bin:" + os.environ["PATH"], "TMPDIR": str(tmp)}
    cmd = [f"{ts_venv}/bin/torchserve", "--start", "--foreground", "--ncs", "--model-store",
           str(store), "--models", "mlp=mlp_ts.mar", "--ts-config", str(cfg)]
    return Server("torchserve", cmd, ports[0], work, env)


def start_wick(wick, store, model, workers, work, kind):
    ports = [free_port() for _ in range(3)]
    cfg = work / f"wick-{ports[0]}.properties"
    cfg.write_text(f"default_workers_per_model={workers}\n")
    cmd = [wick, "serve", "--model-store", str(store), "--models", f"mlp={model}", "--quiet",
           "--ts-config", str(cfg),
           "--inference_address", f"http://127.0.0.1:{ports[0]}",
           "--management_address", f"http://127.0.0.1:{ports[1]}",
           "--metrics_address", f"http://127.0.0.1:{ports[2]}"]
    return Server(kind, cmd, ports[0], work)


def wrk(url, body_file, conns, seconds):
    lua = Path(str(body_file) + ".lua")
    lua.write_text(f"""
local f = io.open("{body_file}", "rb")
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "application/json"
""")
    out = subprocess.run(["wrk", f"-t{1 if conns == 1 else 2}", f"-c{conns}", f"-d{seconds}s",
                          "--latency", "--timeout", "10s", "-s", str(lua), url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def lat(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out)
        return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]

    return {"rps": rps, "p50": lat(50), "p99": lat(99),
            "errors": int(errors.group(1)) if errors else 0}


def prepare(wick, ts_venv, work):
    """The model, its three archives (TorchServe's archiver, wick pack native and Python)."""
    subprocess.run([sys.executable, str(ROOT / "bench" / "make_mlp.py"), "--out", str(work)],
                   check=True, capture_output=True)
    store = work / "store"
    store.mkdir()
    subprocess.run([f"{ts_venv}/bin/torch-model-archiver", "--model-name", "mlp_ts", "--version",
                    "1.0", "--serialized-file", str(work / "mlp.pt"), "--handler", str(HANDLER),
                    "--export-path", str(store), "-f"], check=True, capture_output=True)
    for name, handler in (("mlp_native", "tensor"), ("mlp_py", str(HANDLER))):
        subprocess.run([wick, "pack", "--model-name", name, "--version", "1.0",
                        "--serialized-file", str(work / "mlp.pt"), "--handler", handler,
                        "--export-path", str(store), "-f"], check=True, capture_output=True)
    return store, work / "mlp_request.json"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--ts-venv", default=str(ROOT / "build" / "ts-venv"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-torchserve.md"))
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_TS_SECONDS", "8")))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="workers of each server in the load runs")
    a = ap.parse_args()
    wick = str(Path(a.build).resolve() / "wick")
    ts_venv = str(Path(a.ts_venv).resolve())
    with tempfile.TemporaryDirectory(prefix="wick-bench-ts-") as tmp:
        work = Path(tmp)
        store, body_file = prepare(wick, ts_venv, work)
        body = body_file.read_bytes()
        kinds = ("torchserve", "wick_native", "wick_python")

        def start(kind, workers):
            if kind == "torchserve":
                return start_torchserve(ts_venv, store, workers, work)
            model = "mlp_native.mar" if kind == "wick_native" else "mlp_py.mar"
            return start_wick(wick, store, model, workers, work, kind)

        # 1. throughput, all servers up at once
        servers = {k: start(k, a.workers) for k in kinds}
        results = {}
        try:
            for s in servers.values():
                s.wait_ready("mlp", body)
                for _ in range(200):
                    post(s.url("mlp"), body)
            for r in range(a.rounds):
                for c in (1, 16, 64):
                    for k, s in servers.items():
                        res = wrk(s.url("mlp"), body_file, c, a.seconds)
                        results.setdefault((k, c), []).append(res)
                        print(f"r{r} {k} c={c}: {res['rps']:.0f} req/s p50 {res['p50']:.0f} us "
                              f"p99 {res['p99']:.0f} us errors {res['errors']}", flush=True)
        finally:
            for s in servers.values():
                s.stop()
        # 2. memory at 1 and 4 workers, and cold start, one server at a time
        mem, cold = {}, {}
        for k in kinds:
            for w in (1, 4):
                s = start(k, w)
                try:
                    t = s.wait_ready("mlp", body)
                    if w == 1:
                        cold[k] = t
                    import concurrent.futures as cf
                    with cf.ThreadPoolExecutor(8) as pool:
                        list(pool.map(lambda _: post(s.url("mlp"), body), range(400)))
                    time.sleep(1)
                    mem[(k, w)] = memory(s.serving_pids())
                finally:
                    s.stop()
                print(f"{k} {w} workers: RSS {mem[(k, w)][0] / 1024:.0f} MB, PSS "
                      f"{mem[(k, w)][1] / 1024:.0f} MB, {mem[(k, w)][2]} processes", flush=True)
    write(a, wick, results, mem, cold)


def write(a, wick, results, mem, cold):
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
        f"- model: MLP Linear(16,64)-ReLU-Linear(64,4), TorchScript, one row per request "
        f"(`bench/make_mlp.py`); the Python handler: `bench/handlers/mlp_handler.py`",
        f"- load: wrk, {a.seconds} s per run, best of {a.rounds} interleaved rounds, keep-alive, "
        f"127.0.0.1, wrk sharing the cores; {a.workers} workers per server, batchSize 1", "",
        "## POST /predictions/mlp", "",
        "| c | TorchServe req/s | p50 (us) | p99 (us) | wick native req/s | p50 (us) | p99 (us) "
        "| wick + same Python handler req/s | p50 (us) | p99 (us) | native/TorchServe | "
        "Python/TorchServe |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in (1, 16, 64):
        t, n, p = best[("torchserve", c)], best[("wick_native", c)], best[("wick_python", c)]
        lines.append(f"| {c} | {t['rps']:,.0f} | {t['p50']:,.0f} | {t['p99']:,.0f} | "
                     f"{n['rps']:,.0f} | {n['p50']:,.0f} | {n['p99']:,.0f} | {p['rps']:,.0f} | "
                     f"{p['p50']:,.0f} | {p['p99']:,.0f} | {n['rps'] / t['rps']:.2f}x | "
                     f"{p['rps'] / t['rps']:.2f}x |")
    errs = sum(x["errors"] for v in results.values() for x in v)
    lines += ["", f"Non-2xx replies in these runs: {errs}.", "",
              "## Resident memory (every process of the server, after 400 requests)", "",
              "| server | 1 worker RSS (MB) | 1 worker PSS (MB) | 4 workers RSS (MB) | "
              "4 workers PSS (MB) | processes at 4 | 4 workers PSS / TorchServe's |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    ts4 = mem[("torchserve", 4)][1]
    for k in ("torchserve", "wick_native", "wick_python"):
        one, four = mem[(k, 1)], mem[(k, 4)]
        lines.append(f"| {k} | {one[0] / 1024:,.0f} | {one[1] / 1024:,.0f} | {four[0] / 1024:,.0f} "
                     f"| {four[1] / 1024:,.0f} | {four[2]} | {four[1] / ts4:.2f}x |")
    lines += ["", "## Cold start (exec to the first 200 of a prediction, 1 worker)", "",
              "| server | seconds | / TorchServe's |", "|---|---:|---:|"]
    for k in ("torchserve", "wick_native", "wick_python"):
        lines.append(f"| {k} | {cold[k]:.2f} | {cold[k] / cold['torchserve']:.2f}x |")
    lines += ["", "Targets (issue [10]): MLP c=64 wick native >= 10x TorchServe; the same "
              "Python handler c=16 >= 2x; memory at 4 workers <= 0.3x; cold start <= 0.25x.", ""]
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
