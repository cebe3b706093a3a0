#!/usr/bin/env python3
"""gRPC bench ([12] part 6), in one run, servers side by side:

  1. KServe v2 inference of the bench MLP on wick (native), the same [1, 16] FP32 tensor
     sent as v2 over gRPC (ModelInfer, raw_input_contents; h2load) and as v2 over HTTP with
     binary tensor data (wrk). Target: gRPC >= 0.9x HTTP's req/s.
  2. TorchServe's own gRPC Predictions (its Python handler, bench/handlers/mlp_handler.py)
     vs wick's gRPC Predictions on the same MLP (native), the same JSON body in the `data`
     input; both by h2load. Target: wick >= 5x TorchServe. Skipped when TorchServe is not
     installed (scripts/install-torchserve.sh).

h2load (Debian's nghttp2-client) drives unary gRPC as plain HTTP/2 POSTs of one framed
message, so no Python client eats the cores; it cannot read grpc-status, so each body is
first sent once with grpcio and its answer checked (status OK, the same numbers on every
server). Concurrency c = 1, 16, 64 (h2load: c connections, one stream each; wrk: c
connections), servers interleaved per c, BENCH_GRPC_ROUNDS rounds (default 2), the better
round kept. Writes bench/RESULTS-grpc.md.

    .venv/bin/python bench/run_grpc.py BUILD_DIR [--ts-venv build/ts-venv] [--seconds 8]
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from run_torchserve import HANDLERS, archive, free_port, start_torchserve, start_wick  # noqa: E402
from serving_tools import wrk_post  # noqa: E402  (imports report's parser)

import grpc  # noqa: E402
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402


def framed(msg):
    body = msg.SerializeToString()
    return b"\0" + len(body).to_bytes(4, "big") + body


def predictions_pb(work):
    """TorchServe's PredictionsRequest, compiled from wick's proto/inference.proto."""
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "proto"), f"--python_out={work}",
                    f"--grpc_python_out={work}", "inference.proto", "google/rpc/status.proto"], check=True)
    sys.path.insert(0, str(work))
    import inference_pb2
    import inference_pb2_grpc
    return inference_pb2, inference_pb2_grpc


GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")


def h2load(port, path, body_file, conns, seconds, out_path, headers=GRPC_HEADERS, h1=False):
    """One h2load run (HTTP/2 with prior knowledge, or HTTP/1.1 with h1); {rps, mean_ms,
    done, failed} from its summary."""
    cmd = ["h2load", "-c", str(conns), "-m", "1", "-t", "1" if conns == 1 else "2", "-D", str(seconds),
           "--warm-up-time=1", "-d", str(body_file)] + [x for h in headers for x in ("-H", h)] + (
           ["--h1"] if h1 else []) + [f"http://127.0.0.1:{port}{path}"]
    with open(out_path, "w") as out:
        out.write(" ".join(cmd) + "\n")
        out.flush()
        subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=seconds + 60)
    text = Path(out_path).read_text()
    rps = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", text)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", text)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", text)
    if rps is None or done is None:
        raise RuntimeError(f"h2load printed no figures; see {out_path}")

    def ms(v):
        m = re.match(r"([\d.]+)(us|ms|s)", v or "")
        return None if m is None else float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    return {"rps": float(rps.group(1)), "mean_ms": ms(mean.group(1) if mean else None),
            "done": int(done.group(1)), "failed": int(done.group(3)) + int(done.group(4))}


def v2_http(port, body_file, header_len, conns, seconds, out_path):
    """wrk POSTing the v2 binary-extension body (its JSON header is header_len bytes)."""
    from report import parse_wrk
    lua = f"{out_path}.lua"
    with open(lua, "w") as f:
        f.write(f'local f = io.open("{body_file}", "rb")\nwrk.method = "POST"\nwrk.body = f:read("*all")\n'
                f'f:close()\nwrk.headers["Content-Type"] = "application/octet-stream"\n'
                f'wrk.headers["Inference-Header-Content-Length"] = "{header_len}"\n')
    with open(out_path, "w") as out:
        subprocess.run(["wrk", f"-t{1 if conns == 1 else 2}", f"-c{conns}", f"-d{seconds}s", "--latency",
                        "--timeout", "10s", "-s", lua, f"http://127.0.0.1:{port}/v2/models/mlp_native/infer"],
                       stdout=out, stderr=subprocess.STDOUT, timeout=seconds + 60)
    r = parse_wrk(out_path)
    if r is None:
        raise RuntimeError(f"wrk printed no figures; see {out_path}")
    return r


class Nginx:
    """nginx as a process group Server-like object (stop())."""

    def __init__(self, proc):
        self.proc = proc

    def stop(self):
        from serving_tools import stop_group
        stop_group(self.proc, grace=10)


def start_nginx(work, servers):
    """nginx answering 200 on an h2c (HTTP/2 with prior knowledge) port and an HTTP/1.1
    port: what h2load and wrk cost on their own on this machine. None without nginx."""
    if subprocess.run(["which", "nginx"], capture_output=True).returncode != 0:
        return None
    d = work / "nginx"
    (d / "tmp").mkdir(parents=True)
    ports = [free_port(), free_port()]
    conf = d / "nginx.conf"
    conf.write_text(f"""daemon off;
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  keepalive_requests 100000000;
  server {{
    listen 127.0.0.1:{ports[0]} http2;
    listen 127.0.0.1:{ports[1]};
    location = /ok {{ return 200 'ok'; }}
  }}
}}
""")
    proc = subprocess.Popen(["nginx", "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    servers["nginx"] = Nginx(proc)
    time.sleep(0.5)
    return ports if proc.poll() is None else None


def wrk_get(port, path, conns, seconds, out_path):
    from report import parse_wrk
    with open(out_path, "w") as out:
        subprocess.run(["wrk", f"-t{1 if conns == 1 else 2}", f"-c{conns}", f"-d{seconds}s", "--latency",
                        "--timeout", "10s", f"http://127.0.0.1:{port}{path}"],
                       stdout=out, stderr=subprocess.STDOUT, timeout=seconds + 60)
    r = parse_wrk(out_path)
    if r is None:
        raise RuntimeError(f"wrk printed no figures; see {out_path}")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--ts-venv", default=str(ROOT / "build" / "ts-venv"))
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_GRPC_SECONDS", "8")))
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_GRPC_ROUNDS", "2")))
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-grpc.md"))
    a = ap.parse_args()
    wick = str(Path(a.build).resolve() / "wick")
    have_ts = Path(a.ts_venv, "bin", "torchserve").exists()
    for tool in ("h2load", "wrk"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            sys.exit(f"bench: {tool} is not installed (make deps)")
    work = Path(tempfile.mkdtemp(prefix="wick-bench-grpc-"))
    subprocess.run([sys.executable, str(ROOT / "bench" / "make_mlp.py"), "--out", str(work)], check=True,
                   capture_output=True)
    store = work / "store"
    store.mkdir()
    archive(wick, "mlp_native", work / "mlp.pt", "tensor", store)
    if have_ts:
        archive(f"{a.ts_venv}/bin/torch-model-archiver", "mlp_ts", work / "mlp.pt", HANDLERS / "mlp_handler.py", store)
    pb, pb_grpc = predictions_pb(work)
    request_json = (work / "mlp_request.json").read_bytes()
    rows = json.loads(request_json)
    rows = rows["data"] if isinstance(rows, dict) else rows
    import numpy as np
    x = np.array(rows, dtype=np.float32)

    servers, ports = {}, {}
    try:
        gw = [free_port(), free_port()]
        servers["wick"] = start_wick(wick, store, ["mlp_native=mlp_native.mar"], 1, work, "wick",
                                     f"grpc_inference_port={gw[0]}\ngrpc_management_port={gw[1]}\n")
        ports["wick"] = gw[0]
        servers["wick"].wait_ready("mlp_native", request_json)
        if have_ts:
            gt = [free_port(), free_port()]
            servers["torchserve"] = start_torchserve(a.ts_venv, store, 1, work, ("mlp_ts=mlp_ts.mar",),
                                                     f"grpc_inference_port={gt[0]}\ngrpc_management_port={gt[1]}\n")
            ports["torchserve"] = gt[0]
            servers["torchserve"].wait_ready("mlp_ts", request_json)

        # the bodies, each checked once with a real client
        meta = json.loads(subprocess.run(["curl", "-s", f"http://127.0.0.1:{servers['wick'].port}/v2/models/mlp_native"],
                                         capture_output=True, check=True).stdout)
        in_name = meta["inputs"][0]["name"]
        infer = service_pb2.ModelInferRequest(model_name="mlp_native")
        infer.inputs.add(name=in_name, datatype="FP32", shape=list(x.shape))
        infer.raw_input_contents.append(x.tobytes())
        (work / "infer.grpc").write_bytes(framed(infer))
        header = json.dumps({"inputs": [{"name": in_name, "datatype": "FP32", "shape": list(x.shape),
                                         "parameters": {"binary_data_size": x.nbytes}}],
                             "parameters": {"binary_data_output": True}}).encode()
        (work / "infer.http").write_bytes(header + x.tobytes())
        with grpc.insecure_channel(f"127.0.0.1:{ports['wick']}") as ch:
            got = service_pb2_grpc.GRPCInferenceServiceStub(ch).ModelInfer(infer, timeout=30)
            v2_out = np.frombuffer(got.raw_output_contents[0], dtype=np.float32)
        answers = {}
        for name, model in (("wick", "mlp_native"), ("torchserve", "mlp_ts")):
            if name not in servers:
                continue
            req = pb.PredictionsRequest(model_name=model, input={"data": request_json})
            (work / f"pred-{name}.grpc").write_bytes(framed(req))
            with grpc.insecure_channel(f"127.0.0.1:{ports[name]}") as ch:
                answers[name] = json.loads(pb_grpc.InferenceAPIsServiceStub(ch).Predictions(req, timeout=60).prediction)
        same = all(np.allclose(np.array(v, dtype=np.float32).flatten(), v2_out, atol=1e-4) for v in answers.values())

        loads = [("v2 gRPC ModelInfer (wick)", lambda c, o: h2load(ports["wick"], "/inference.GRPCInferenceService/ModelInfer",
                                                                     work / "infer.grpc", c, a.seconds, o)),
                 ("v2 HTTP binary (wick)", lambda c, o: v2_http(servers["wick"].port, work / "infer.http", len(header), c,
                                                                a.seconds, o)),
                 # the same HTTP requests from h2load (HTTP/1.1): both protocols from one tool
                 ("v2 HTTP binary (wick, h2load --h1)", lambda c, o: h2load(
                     servers["wick"].port, "/v2/models/mlp_native/infer", work / "infer.http", c, a.seconds, o,
                     headers=("content-type: application/octet-stream",
                              f"inference-header-content-length: {len(header)}"), h1=True)),
                 ("gRPC Predictions (wick native)", lambda c, o: h2load(
                     ports["wick"], "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions",
                     work / "pred-wick.grpc", c, a.seconds, o))]
        if have_ts:
            loads.append(("gRPC Predictions (TorchServe)", lambda c, o: h2load(
                ports["torchserve"], "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions",
                work / "pred-torchserve.grpc", c, a.seconds, o)))
        (work / "empty.grpc").write_bytes(b"\0\0\0\0\0")
        nginx_ports = start_nginx(work, servers)
        loads += [("ceiling: gRPC ServerLive (wick, h2load)", lambda c, o: h2load(
                       ports["wick"], "/inference.GRPCInferenceService/ServerLive", work / "empty.grpc", c, a.seconds, o)),
                  ("ceiling: HTTP GET /v2/health/live (wick, wrk)", lambda c, o: wrk_get(
                       servers["wick"].port, "/v2/health/live", c, a.seconds, o))]
        if nginx_ports:
            loads += [("load generators: nginx h2c POST 200 (h2load)", lambda c, o: h2load(
                           nginx_ports[0], "/ok", work / "infer.grpc", c, a.seconds, o)),
                      ("load generators: nginx HTTP/1.1 GET 200 (wrk)", lambda c, o: wrk_get(
                           nginx_ports[1], "/ok", c, a.seconds, o))]
        results = {}
        for rnd in range(a.rounds):
            for c in (1, 16, 64):
                for name, fn in loads:
                    r = fn(c, work / f"{re.sub(r'[^a-z0-9]+', '_', name.lower())}-c{c}-r{rnd}.txt")
                    print(f"bench-grpc: round {rnd + 1} c={c} {name}: {r['rps']:.0f} req/s", flush=True)
                    best = results.get((name, c))
                    if best is None or r["rps"] > best["rps"]:
                        results[(name, c)] = r
    finally:
        for s in servers.values():
            s.stop()
    write(a, results, [n for n, _ in loads], answers, same, have_ts)


def write(a, results, names, answers, same, have_ts):
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    lines = ["# gRPC bench", "",
             "Written by `bench/run_grpc.py` (`make bench-grpc`; issue [12] part 6).", "",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"- machine: {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}; servers, h2load and wrk share them; "
             f"load average when the run ended {os.getloadavg()[0]:.1f} (anything else running shows here)",
             f"- command: `.venv/bin/python bench/run_grpc.py {a.build} --seconds {a.seconds} --rounds {a.rounds}`",
             "- model: the bench MLP (16-64-4, TorchScript), one worker on each server, one [1, 16] FP32 row",
             "- load: h2load for gRPC (c connections, one stream each), wrk for HTTP (c connections), and h2load "
             "--h1 for HTTP too, so that one tool drives both protocols (it costs more CPU per request than wrk, on "
             "the cores the servers use); the better of the rounds; h2load has no percentiles, so its mean latency "
             "is shown",
             f"- answers checked before the load (grpcio): every server's prediction equals v2 ModelInfer's "
             f"within 1e-4: **{'yes' if same else 'NO'}** ({', '.join(sorted(answers))})", ""]
    lines += ["| load | c | req/s | latency | failed |", "|---|---:|---:|---|---:|"]
    for name in names:
        for c in (1, 16, 64):
            r = results.get((name, c))
            if r is None:
                continue
            if r.get("mean_ms") is not None:
                lat = f"mean {r['mean_ms']:.2f} ms"
            else:  # wrk: microseconds
                lat = f"p50 {r['p50'] / 1000:.2f} ms, p99 {r['p99'] / 1000:.2f} ms" if r.get("p50") else "?"
            failed = r.get("failed", r.get("non2xx", 0) + r.get("errors", 0))
            lines.append(f"| {name} | {c} | {r['rps']:.0f} | {lat} | {failed} |")
    lines += ["", "## Targets (ratios of req/s in this run)", ""]
    for c in (1, 16, 64):
        g, h = results.get(("v2 gRPC ModelInfer (wick)", c)), results.get(("v2 HTTP binary (wick)", c))
        if g and h:
            ratio = g["rps"] / h["rps"]
            lines.append(f"- v2 gRPC / v2 HTTP binary at c={c}: **{ratio:.2f}x** (target >= 0.9x: "
                         f"{'met' if ratio >= 0.9 else 'missed'})")
    for c in (1, 16, 64):
        g, h = results.get(("v2 gRPC ModelInfer (wick)", c)), results.get(("v2 HTTP binary (wick, h2load --h1)", c))
        if g and h:
            ratio = g["rps"] / h["rps"]
            lines.append(f"- the same, both driven by h2load (HTTP/2 for gRPC, HTTP/1.1 for HTTP) at c={c}: "
                         f"**{ratio:.2f}x** (target >= 0.9x: {'met' if ratio >= 0.9 else 'missed'})")
    for c in (1, 16, 64):
        w, t = results.get(("gRPC Predictions (wick native)", c)), results.get(("gRPC Predictions (TorchServe)", c))
        if w and t:
            ratio = w["rps"] / t["rps"]
            lines.append(f"- wick / TorchServe gRPC Predictions at c={c}: **{ratio:.1f}x** (target >= 5x: "
                         f"{'met' if ratio >= 5 else 'missed'})")
    for c in (1, 16, 64):
        g = results.get(("ceiling: gRPC ServerLive (wick, h2load)", c))
        h = results.get(("ceiling: HTTP GET /v2/health/live (wick, wrk)", c))
        if g and h:
            lines.append(f"- the transports' ceiling at c={c} (no model, the load generator included): gRPC "
                         f"ServerLive / HTTP live = {g['rps'] / h['rps']:.2f}x")
    for c in (1, 16, 64):
        g = results.get(("load generators: nginx h2c POST 200 (h2load)", c))
        h = results.get(("load generators: nginx HTTP/1.1 GET 200 (wrk)", c))
        gi, hi = results.get(("v2 gRPC ModelInfer (wick)", c)), results.get(("v2 HTTP binary (wick)", c))
        if g and h:
            gen = g["rps"] / h["rps"]
            lines.append(f"- the load generators alone at c={c} (nginx answering 200 on both protocols): "
                         f"h2load / wrk = {gen:.2f}x" + (
                             f"; v2 gRPC / v2 HTTP divided by it: {gi['rps'] / hi['rps'] / gen:.2f}x (a rough "
                             "estimate of the ratio without h2load's extra cost on the shared cores; nginx's "
                             "own figures swing from run to run)" if gi and hi else ""))
    if not have_ts:
        lines.append("- TorchServe was not installed (scripts/install-torchserve.sh): its row is missing")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print(f"bench-grpc: wrote {a.out}")


if __name__ == "__main__":
    main()
