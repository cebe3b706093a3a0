#!/usr/bin/python3
"""Turns the raw outputs of bench/run.sh into bench/RESULTS.md.

    report.py --out-dir BUILD/bench/out --results bench/RESULTS.md --command "..."

Reads OUT/{ping,mlp}_{server}_c{N}.txt (wrk --latency output) and OUT/forward.json
(bench/forward_loop). A missing file shows as n/a; the targets are reported as
pass/miss, never asserted.
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess

UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def to_us(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    return float(m.group(1)) * UNITS_US[m.group(2)] if m else None


def parse_wrk(path):
    """{rps, p50, p99 (us), requests, errors} from wrk --latency output, or None."""
    try:
        text = open(path).read()
    except OSError:
        return None
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        return None
    r = {"rps": float(m.group(1)), "errors": 0, "non2xx": 0}
    for pct, key in (("50", "p50"), ("99", "p99")):
        lm = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", text, re.M)
        r[key] = to_us(lm.group(1)) if lm else None
    m = re.search(r"(\d+) requests in", text)
    r["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        r["errors"] = sum(int(g) for g in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        r["non2xx"] = int(m.group(1))
    return r


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def tool_version(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (p.stdout + p.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def fmt(v, nd=0, unit=""):
    if v is None:
        return "n/a"
    return f"{v:,.{nd}f}{unit}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def verdict(ok):
    return "n/a (not measured)" if ok is None else ("**pass**" if ok else "**miss**")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--command", default="make bench")
    ap.add_argument("--conns", default="1 16 64")
    ap.add_argument("--duration", default="10s")
    args = ap.parse_args()
    conns = [int(c) for c in args.conns.split()]
    od = args.out_dir

    def get(scen, server, c):
        return parse_wrk(os.path.join(od, f"{scen}_{server}_c{c}.txt"))

    fwd = None
    try:
        fwd = json.load(open(os.path.join(od, "forward.json")))
    except (OSError, ValueError):
        pass

    L = []
    L.append("# wick bench results\n")
    L.append("Written by `bench/report.py` from a run of `bench/run.sh`; rerun with "
             "`make bench`. These machines are noisy (10-40% between runs): servers are "
             "compared within one run, concurrencies interleaved.\n")
    L.append(f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}")
    L.append(f"- machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, "
             f"{platform.system()} {platform.release()}")
    L.append(f"- command: `{args.command}`")
    L.append(f"- load: {tool_version(['wrk', '--version'])}; `wrk --latency -d {args.duration}`,"
             " -t1 at c=1, -t2 otherwise, keep-alive, 127.0.0.1; wrk shares the cores with the"
             " servers")
    L.append("- environment: OPENBLAS_NUM_THREADS=1, ONEDNN_MAX_CPU_ISA=AVX2")
    L.append("- peers: nginx (worker_processes 2, static `return 200`), FastAPI + uvicorn "
             "(2 workers, torch 1 thread each, `bench/fastapi_peer.py`)")
    L.append("- model: MLP Linear(16,64)-ReLU-Linear(64,4), TorchScript, one row per request "
             "(`bench/make_mlp.py`)\n")

    def table(title, scen, servers, base):
        L.append(f"## {title}\n")
        hdr = "| c |"
        sep = "|---:|"
        for s in servers:
            hdr += f" {s} req/s | {s} p50 (us) | {s} p99 (us) |"
            sep += "---:|---:|---:|"
        hdr += f" wick/{base} req/s |"
        sep += "---:|"
        L.append(hdr)
        L.append(sep)
        ratios = {}
        notes = []
        for c in conns:
            row = f"| {c} |"
            res = {s: get(scen, s, c) for s in servers}
            for s in servers:
                r = res[s]
                row += (f" {fmt(r and r['rps'])} | {fmt(r and r['p50'])} |"
                        f" {fmt(r and r['p99'])} |")
                if r and (r["errors"] or r["non2xx"]):
                    notes.append(f"{s} at c={c}: {r['errors']} socket errors, "
                                 f"{r['non2xx']} non-2xx responses")
            q = ratio(res["wick"] and res["wick"]["rps"], res[base] and res[base]["rps"])
            ratios[c] = (q, res)
            row += f" {fmt(q, 2, 'x')} |"
            L.append(row)
        L.append("")
        for n in notes:
            L.append(f"- warning: {n}")
        if notes:
            L.append("")
        return ratios

    ping = table("GET /ping: wick vs nginx", "ping", ["wick", "nginx"], "nginx")
    mlp = table("POST /predictions/mlp: wick (native) vs FastAPI", "mlp", ["wick", "fastapi"],
                "fastapi")

    L.append("## Raw forward loop (the limit)\n")
    L.append("`forward_loop mlp.pt N 1`: wick's libtorch binding (`wk_torch_forward`, model "
             "frozen at load as the server does) on one [1,16] tensor, 1 torch thread, "
             "1000 warm-up calls, each call timed; servers stopped meanwhile.\n")
    L.append("| calls | p50 (us) | p99 (us) | mean (us) | calls/s |")
    L.append("|---:|---:|---:|---:|---:|")
    if fwd:
        L.append(f"| {fwd.get('iterations')} | {fmt(fwd.get('p50_us'), 1)} | "
                 f"{fmt(fwd.get('p99_us'), 1)} | {fmt(fwd.get('mean_us'), 1)} | "
                 f"{fmt(fwd.get('calls_per_s'))} |")
    else:
        L.append("| n/a | n/a | n/a | n/a | n/a |")
    L.append("")

    # Targets of the issue, stated next to the figures.
    L.append("## Targets\n")
    L.append("| target | measured | result |")
    L.append("|---|---|---|")
    hi = max(conns)
    lo = min(conns)
    q = ping.get(hi, (None, None))[0]
    L.append(f"| /ping at c={hi}: wick >= 60% of nginx req/s | {fmt(q and q * 100, 0, '%')} | "
             f"{verdict(None if q is None else q >= 0.6)} |")
    wick_p50 = None
    if lo in mlp and mlp[lo][1]["wick"]:
        wick_p50 = mlp[lo][1]["wick"]["p50"]
    fwd_p50 = fwd.get("p50_us") if fwd else None
    gap = None if wick_p50 is None or fwd_p50 is None else wick_p50 - fwd_p50
    L.append(f"| MLP p50 at c={lo} <= raw forward p50 + 100 us | wick p50 {fmt(wick_p50)} us - "
             f"forward p50 {fmt(fwd_p50, 1)} us = {fmt(gap)} us | "
             f"{verdict(None if gap is None else gap <= 100)} |")
    q = mlp.get(hi, (None, None))[0]
    L.append(f"| MLP at c={hi}: wick >= 3x FastAPI req/s | {fmt(q, 2, 'x')} | "
             f"{verdict(None if q is None else q >= 3)} |")
    L.append("")
    L.append("The p50 at c=1 is what wrk sees: it includes wrk's own time and the loopback "
             "round trip, so the gap to the raw loop is an upper bound on wick's overhead.")

    missing = []
    for scen, servers in (("ping", ["wick", "nginx"]), ("mlp", ["wick", "fastapi"])):
        for s in servers:
            if all(get(scen, s, c) is None for c in conns):
                missing.append(f"{scen}/{s}")
    if not fwd:
        missing.append("raw forward loop")
    if missing:
        L.append("")
        L.append("Not measured in this run (server or binary missing, or it failed; see "
                 "`BUILD/bench/logs/`): " + ", ".join(missing) + ".")

    tmp = args.results + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(L) + "\n")
    os.replace(tmp, args.results)


if __name__ == "__main__":
    main()
