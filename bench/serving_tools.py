#!/usr/bin/env python3
"""Helpers of bench/run_serving.sh (no torch import except in `torch-procs` children).

    serving_tools.py ports N
        N free 127.0.0.1 ports, space-separated (all held open until all are known)
    serving_tools.py bodies --samples test_samples.json --out DIR [--count 8]
        DIR/body{0..count-1}.json: {"data": [image]} for the first test images, and
        DIR/labels.json with their labels
    serving_tools.py cold-start --wick W --model-store D --model NAME=FILE.mar \
            --body F --runs 5 --out F.json --log-dir D
        execs `wick serve` and polls POST /predictions/NAME until the first 200; one
        warm-up run (page cache) first, not counted
    serving_tools.py requests --port P --path /predictions/M --bodies DIR --count 8 \
            --n 2000 --conns 8
        N POSTs over CONNS keep-alive connections (a thread each), bodies in rotation;
        prints how many got 200 (wrk cannot stop after N requests without waiting out -d)
    serving_tools.py torch-procs --model M.pt --n N --forwards K --out F.json [--python P]
        the TorchServe-style baseline: N python processes that each torch.jit.load the
        model and run K forwards; their VmRSS and Pss, read while all are alive
"""
import argparse
import json
import os
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import time


def free_ports(n):
    ss = [socket.socket() for _ in range(n)]
    try:
        for s in ss:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in ss]
    finally:
        for s in ss:
            s.close()


def cmd_ports(a):
    print(*free_ports(a.n))


def cmd_bodies(a):
    d = json.load(open(a.samples))
    os.makedirs(a.out, exist_ok=True)
    for i in range(a.count):
        with open(os.path.join(a.out, f"body{i}.json"), "w") as f:
            json.dump({"data": [d["images"][i]]}, f, separators=(",", ":"))
    with open(os.path.join(a.out, "labels.json"), "w") as f:
        json.dump(d["labels"][: a.count], f)


def proc_mem_kb(pid):
    """(VmRSS, Pss) in kB of one process; None for what cannot be read."""
    rss = pss = None
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    except OSError:
        pass
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def stop_group(p, grace=5.0):
    """TERM the process group of p (started with start_new_session), then KILL."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def wrk_post(url, body_file, conns, seconds, out_path, ctype="application/json"):
    """One wrk --latency run POSTing body_file to url; its output goes to out_path, and the
    figures come back as bench/report.py's parse_wrk reads them ({rps, p50, p99, non2xx,
    errors, requests}). Used by run_pt2.py and run_torchserve.py."""
    from report import parse_wrk
    lua = f"{out_path}.lua"
    with open(lua, "w") as f:
        f.write(f'local f = io.open("{body_file}", "rb")\nwrk.method = "POST"\n'
                f'wrk.body = f:read("*all")\nf:close()\n'
                f'wrk.headers["Content-Type"] = "{ctype}"\n')
    with open(out_path, "w") as out:
        subprocess.run(["wrk", f"-t{1 if conns == 1 else 2}", f"-c{conns}", f"-d{seconds}s",
                        "--latency", "--timeout", "10s", "-s", lua, url],
                       stdout=out, stderr=subprocess.STDOUT, timeout=seconds + 60)
    r = parse_wrk(out_path)
    if r is None:
        raise RuntimeError(f"wrk printed no figures; see {out_path}")
    return r


def post_status(port, path, body, timeout=2.0):
    """Status code of one POST with Connection: close; None when no connection."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return None
    try:
        s.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
        # drain the rest so the server is not left writing to a closed socket
        while s.recv(65536):
            pass
        return int(m.group(1)) if m else 0
    except OSError:
        return 0
    finally:
        s.close()


def cold_once(a, body, log_path, limit_s=30.0):
    name, _, mar = a.model.partition("=")
    p_inf, p_mgmt, p_met = free_ports(3)
    argv = [a.wick, "serve", "--model-store", a.model_store, "--models", a.model,
            "--inference_address", f"http://127.0.0.1:{p_inf}",
            "--management_address", f"http://127.0.0.1:{p_mgmt}",
            "--metrics_address", f"http://127.0.0.1:{p_met}", "--quiet"]
    path = f"/predictions/{name}"
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
    t_conn = t_ok = None
    last = None
    tries = 0
    try:
        while time.perf_counter() - t0 < limit_s:
            if p.poll() is not None:
                break
            tries += 1
            st = post_status(p_inf, path, body)
            now = time.perf_counter()
            if st is not None and t_conn is None:
                t_conn = now - t0
            last = st
            if st == 200:
                t_ok = now - t0
                break
            time.sleep(0.001)  # 2 cores: leave the starting server some CPU
    finally:
        stop_group(p)
    load_ms = None
    try:
        m = re.search(r"loaded in (\d+) ms", open(log_path).read())
        load_ms = int(m.group(1)) if m else None
    except OSError:
        pass
    return {"first_200_s": t_ok, "first_connect_s": t_conn, "model_load_ms": load_ms,
            "tries": tries, "last_status": last}


def exec_only_s(argv):
    """Seconds from exec to exit of argv: for `wick --help`, the dynamic loader, libtorch's
    static initializers and exit, the part of a cold start before main() does work."""
    if not argv or not argv[0]:
        return None
    t0 = time.perf_counter()
    try:
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return time.perf_counter() - t0


def cmd_cold_start(a):
    body = open(a.body, "rb").read()
    os.makedirs(a.log_dir, exist_ok=True)
    warm = cold_once(a, body, os.path.join(a.log_dir, "cold_warmup.log"))
    runs = []
    for i in range(a.runs):  # interleaved: a cold start, then a bare exec
        r = cold_once(a, body, os.path.join(a.log_dir, f"cold_{i}.log"))
        r["exec_help_s"] = exec_only_s([a.wick, "--help"])
        r["torch_floor_s"] = exec_only_s([a.torch_floor]) if a.torch_floor else None
        runs.append(r)
    helps = [r["exec_help_s"] for r in runs if r["exec_help_s"] is not None]
    floors = [r["torch_floor_s"] for r in runs if r["torch_floor_s"] is not None]
    ok = [r["first_200_s"] for r in runs if r["first_200_s"] is not None]
    loads = [r["model_load_ms"] for r in runs if r["model_load_ms"] is not None]
    conns = [r["first_connect_s"] for r in runs if r["first_connect_s"] is not None]
    res = {"warmup": warm, "runs": runs,
           "median_first_200_s": statistics.median(ok) if len(ok) == len(runs) else None,
           "median_first_connect_s": statistics.median(conns) if conns else None,
           "median_model_load_ms": statistics.median(loads) if loads else None,
           "median_exec_help_s": statistics.median(helps) if helps else None,
           "median_torch_floor_s": statistics.median(floors) if floors else None,
           "failed_runs": len(runs) - len(ok)}
    json.dump(res, open(a.out, "w"), indent=1)
    print(json.dumps({k: v for k, v in res.items() if k.startswith(("median", "failed"))}))


CHILD = r"""
import os, sys, signal
signal.alarm(int(os.environ.get("CHILD_LIMIT_S", "180")))
import torch
torch.set_num_threads(1)
m = torch.jit.load(sys.argv[1]).eval()
x = torch.randn(1, 1, 28, 28)
with torch.inference_mode():
    for _ in range(int(sys.argv[2])):
        m(x)
print("ready", flush=True)
sys.stdin.read()
"""


def cmd_requests(a):
    import http.client
    import threading
    bodies = [open(os.path.join(a.bodies, f"body{i}.json"), "rb").read() for i in range(a.count)]
    counts = {"ok": 0, "bad": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + a.limit_s

    def worker(k, n):
        ok = bad = 0
        c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=10)
        try:
            for i in range(n):
                if time.monotonic() > deadline:
                    break
                c.request("POST", a.path, body=bodies[(k + i) % len(bodies)],
                          headers={"Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                if r.status == 200:
                    ok += 1
                else:
                    bad += 1
        except (OSError, http.client.HTTPException):
            bad += 1
        finally:
            c.close()
            with lock:
                counts["ok"] += ok
                counts["bad"] += bad

    per = [a.n // a.conns + (1 if k < a.n % a.conns else 0) for k in range(a.conns)]
    ts = [threading.Thread(target=worker, args=(k, per[k])) for k in range(a.conns)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(json.dumps({"ok": counts["ok"], "failed": counts["bad"],
                      "seconds": round(time.perf_counter() - t0, 3)}))


def cmd_torch_procs(a):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    procs = []
    res = {"n": a.n, "forwards": a.forwards, "rss_kb": [], "pss_kb": [], "error": None}
    try:
        for _ in range(a.n):
            procs.append(subprocess.Popen([a.python, "-c", CHILD, a.model, str(a.forwards)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, env=env,
                                          start_new_session=True))
        deadline = time.monotonic() + 120
        for p in procs:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("children did not load the model within 120 s")
                r, _, _ = select.select([p.stdout], [], [], left)
                if r:
                    line = p.stdout.readline()
                    if line.strip() == b"ready":
                        break
                    if not line:
                        raise RuntimeError("child died: " + p.stderr.read().decode()[-300:])
        for p in procs:
            rss, pss = proc_mem_kb(p.pid)
            res["rss_kb"].append(rss)
            res["pss_kb"].append(pss)
    except Exception as e:  # reported, not raised: the bench goes on
        res["error"] = str(e)
    finally:
        for p in procs:
            try:
                p.stdin.close()
            except OSError:
                pass
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                stop_group(p)
    json.dump(res, open(a.out, "w"), indent=1)
    print(json.dumps(res))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ports")
    p.add_argument("n", type=int)
    p.set_defaults(fn=cmd_ports)
    p = sub.add_parser("bodies")
    p.add_argument("--samples", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, default=8)
    p.set_defaults(fn=cmd_bodies)
    p = sub.add_parser("cold-start")
    p.add_argument("--wick", required=True)
    p.add_argument("--model-store", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--out", required=True)
    p.add_argument("--log-dir", required=True)
    p.add_argument("--torch-floor", default=None,
                   help="an empty program linked against libtorch, timed like `wick --help`")
    p.set_defaults(fn=cmd_cold_start)
    p = sub.add_parser("requests")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--bodies", required=True)
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--conns", type=int, default=8)
    p.add_argument("--limit-s", type=float, default=60)
    p.set_defaults(fn=cmd_requests)
    p = sub.add_parser("torch-procs")
    p.add_argument("--model", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--forwards", type=int, default=500)
    p.add_argument("--out", required=True)
    p.add_argument("--python", default=sys.executable)
    p.set_defaults(fn=cmd_torch_procs)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
