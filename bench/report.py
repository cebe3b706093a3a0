#!/usr/bin/python3
"""Turns the raw outputs of bench/run.sh into bench/RESULTS.md.

    report.py --out-dir BUILD/bench/out --results bench/RESULTS.md --command "..."

Reads OUT/{ping,mlp}_{server}_c{N}.txt (wrk --latency output), OUT/forward.json
(bench/forward_loop) and OUT/serving/ (bench/run_serving.sh: batching, memory, cold
start). A missing file shows as n/a; the targets are reported as pass/miss, never
asserted.
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


def read_text(path):
    try:
        return open(path).read()
    except OSError:
        return None


def read_json(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


class Serving:
    """The outputs of bench/run_serving.sh in OUT/serving/."""

    def __init__(self, out_dir):
        self.d = os.path.join(out_dir, "serving")
        self.variants = {}  # name -> dict(model, batch, delay, workers, threads)
        for line in (read_text(os.path.join(self.d, "variants.txt")) or "").splitlines():
            f = line.split()
            if len(f) == 6:
                self.variants[f[0]] = dict(model=f[1], batch=int(f[2]), delay=int(f[3]),
                                           workers=int(f[4]), threads=int(f[5]))
        rt = (read_text(os.path.join(self.d, "rounds.txt")) or "").split()
        self.rounds = int(rt[0]) if rt else 0
        self.round_dur = rt[1] if len(rt) > 1 else "?"

    def present(self):
        return os.path.isdir(self.d)

    def batch_delta(self, stem):
        """(sum, count) of wick_batch_size over one wrk run, or None."""
        try:
            b = [float(x) for x in open(os.path.join(self.d, stem + ".before")).read().split()]
            a = [float(x) for x in open(os.path.join(self.d, stem + ".after")).read().split()]
        except (OSError, ValueError):
            return None
        if len(a) != 2 or len(b) != 2 or any(x != x for x in a + b):
            return None
        return a[0] - b[0], a[1] - b[1]

    def runs(self, name, c):
        """All rounds of NAME at concurrency C, combined: rps = mean over rounds (equal
        durations), p50 = mean of the rounds' p50, p99 = worst round's p99, mean batch
        from the /metrics deltas."""
        rs, bsum, bcount = [], 0.0, 0.0
        k = 1
        while True:
            stem = f"{name}_c{c}_r{k}"
            if not os.path.exists(os.path.join(self.d, stem + ".txt")):
                break
            r = parse_wrk(os.path.join(self.d, stem + ".txt"))
            if r:
                rs.append(r)
            bd = self.batch_delta(stem)
            if bd:
                bsum += bd[0]
                bcount += bd[1]
            k += 1
        if not rs:
            return None
        p50s = [r["p50"] for r in rs if r["p50"] is not None]
        p99s = [r["p99"] for r in rs if r["p99"] is not None]
        return {"rps": sum(r["rps"] for r in rs) / len(rs),
                "rounds": [r["rps"] for r in rs],
                "p50": sum(p50s) / len(p50s) if p50s else None,
                "p99": max(p99s) if p99s else None,
                "errors": sum(r["errors"] for r in rs), "non2xx": sum(r["non2xx"] for r in rs),
                "mean_batch": bsum / bcount if bcount else None}

    def mem(self, name):
        t = read_text(os.path.join(self.d, name + ".mem"))
        if t is None:
            return None
        m = {}
        for line in t.splitlines():
            k, _, v = line.partition(" ")
            m[k] = int(v) if v.isdigit() else v
        lm = re.search(r"(\d+) torch threads", m.get("log", ""))
        m["threads"] = int(lm.group(1)) if lm else None
        return m


def ms(us, nd=1):
    return fmt(None if us is None else us / 1000, nd)


def mb(kb, nd=0):
    return fmt(None if kb is None else kb / 1024, nd)


def serving_sections(sv, L, targets):
    """Appends the serving sections to L and (text, measured, ok) rows to targets."""
    fashion = [n for n, v in sv.variants.items() if n.startswith("fashion_")]
    mlp = [n for n, v in sv.variants.items() if n.startswith("mlp_")]
    per_round = (f"{sv.rounds} round{'s' if sv.rounds != 1 else ''} of {sv.round_dur}"
                 if sv.rounds else "n/a")

    # --- fashion CNN, batching at c=64
    L.append("## Fashion CNN at c=64: dynamic batching vs batchSize 1\n")
    L.append("`bench/run_serving.sh`: the demo model (`build/demo/fashion.pt`, 2 convs, frozen at "
             "load) packed once per variant with `wick pack --config-file` (model-config "
             "minWorkers = maxWorkers, batchSize, maxBatchDelay 5 ms, `wick: {threads: N}`), "
             "all servers up side by side, `--quiet`. wrk -t2 -c64 posts `{\"data\": [image]}` "
             "for 8 real test images in rotation (`test_samples.json`, ~6 KB of JSON each). "
             f"Each variant runs {per_round}, the variants interleaved (even rounds in reverse "
             "order): req/s is the mean of the rounds, p50 the mean of their p50, p99 the worst "
             "round's p99. Mean batch = delta `wick_batch_size_sum` / delta "
             "`wick_batch_size_count` from `/metrics` around the timed runs.\n")
    L.append("| variant | batchSize | workers x torch threads | req/s | req/s by round | "
             "p50 (ms) | p99 (ms) | mean batch | vs best batchSize 1 |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    res = {n: sv.runs(n, 64) for n in fashion}
    b1 = [n for n in fashion if sv.variants[n]["batch"] == 1 and res[n]]
    bn = [n for n in fashion if sv.variants[n]["batch"] > 1 and res[n]]
    best1 = max(b1, key=lambda n: res[n]["rps"]) if b1 else None
    bestn = max(bn, key=lambda n: res[n]["rps"]) if bn else None
    notes = []
    for n in fashion:
        v, r = sv.variants[n], res[n]
        q = ratio(r and r["rps"], best1 and res[best1]["rps"])
        L.append(f"| {n[len('fashion_'):]} | {v['batch']} | {v['workers']} x {v['threads']} | "
                 f"{fmt(r and r['rps'])} | "
                 f"{' / '.join(fmt(x) for x in r['rounds']) if r else 'n/a'} | "
                 f"{ms(r and r['p50'])} | {ms(r and r['p99'])} | "
                 f"{fmt(r and r['mean_batch'], 1)} | {fmt(q, 2, 'x')} |")
        if r and (r["errors"] or r["non2xx"]):
            notes.append(f"{n}: {r['errors']} socket errors, {r['non2xx']} non-2xx responses")
    L.append("")
    for t in notes:
        L.append(f"- warning: {t}")
    q = ratio(bestn and res[bestn]["rps"], best1 and res[best1]["rps"])
    if q is not None:
        L.append(f"Best batched ({bestn[len('fashion_'):]}: {fmt(res[bestn]['rps'])} req/s, p99 "
                 f"{ms(res[bestn]['p99'])} ms) / best batchSize 1 ({best1[len('fashion_'):]}: "
                 f"{fmt(res[best1]['rps'])} req/s, p99 {ms(res[best1]['p99'])} ms) = "
                 f"**{q:.2f}x**.\n")
    else:
        L.append("Batched vs batchSize 1: n/a (a variant did not run; see "
                 "`BUILD/bench/logs/serving/`).\n")
    targets.append((f"fashion CNN at c=64: best batched >= 1.3x best batchSize 1 req/s",
                    fmt(q, 2, "x"), None if q is None else q >= 1.3))

    # --- MLP, batching on vs off
    L.append("## MLP JSON: batching on vs off\n")
    L.append("The bench MLP (`bench/make_mlp.py`, forward ~15 us), 2 workers x 1 torch thread "
             "in every variant; off = batchSize 1. c=64: wrk -t2, "
             f"{per_round} per variant, interleaved; c=1: wrk -t1, one round of "
             f"{sv.round_dur}. Same statistics as above.\n")
    L.append("| variant | batchSize | maxBatchDelay (ms) | c=64 req/s | c=64 by round | c=64 p50 (ms) "
             "| c=64 p99 (ms) | c=64 mean batch | c=64 vs off | c=1 req/s | c=1 p50 (ms) | "
             "c=1 p99 (ms) | c=1 mean batch |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    r64 = {n: sv.runs(n, 64) for n in mlp}
    r1 = {n: sv.runs(n, 1) for n in mlp}
    off = next((n for n in mlp if sv.variants[n]["batch"] == 1), None)
    worst = None
    worst_name = None
    for n in mlp:
        v, a, b = sv.variants[n], r64[n], r1[n]
        q = ratio(a and a["rps"], off and r64[off] and r64[off]["rps"])
        if v["batch"] > 1 and q is not None and (worst is None or q < worst):
            worst, worst_name = q, n
        L.append(f"| {n[len('mlp_'):]} | {v['batch']} | {v['delay']} | {fmt(a and a['rps'])} | "
                 f"{' / '.join(fmt(x) for x in a['rounds']) if a else 'n/a'} | "
                 f"{ms(a and a['p50'], 2)} | {ms(a and a['p99'], 2)} | "
                 f"{fmt(a and a['mean_batch'], 1)} | {fmt(q, 2, 'x')} | {fmt(b and b['rps'])} | "
                 f"{ms(b and b['p50'], 2)} | {ms(b and b['p99'], 2)} | "
                 f"{fmt(b and b['mean_batch'], 1)} |")
    L.append("")
    off1 = off and r1[off]
    c1 = []
    for n in mlp:
        if n != off and r1[n] and off1 and off1["p50"] is not None and r1[n]["p50"] is not None:
            c1.append(f"{n[len('mlp_'):]} +{(r1[n]['p50'] - off1['p50']) / 1000:.2f} ms "
                      f"(maxBatchDelay {sv.variants[n]['delay']} ms)")
    if c1:
        L.append("At c=1 a lone request waits out maxBatchDelay for company that never comes: "
                 "p50 vs off: " + ", ".join(c1) + ". Batching is for concurrent load; leave "
                 "batchSize 1 for models served one request at a time.\n")
    targets.append(("MLP at c=64: batching on costs no throughput (worst batched / off >= "
                    "0.95)", f"{fmt(worst, 2, 'x')}"
                    + (f" ({worst_name[len('mlp_'):]})" if worst_name else ""),
                    None if worst is None else worst >= 0.95))

    # --- memory
    L.append("## Resident memory: 1 vs 4 native workers\n")
    L.append("One wick serving the fashion model, batchSize 1, minWorkers = maxWorkers = 1 or 4 "
             "(torch threads: the server's default, ncpu / workers, at least 1), one server at "
             "a time. VmRSS (and Pss, from smaps_rollup) of the wick process 0.5 s after "
             "/ping answers, and after 2000 predictions (`bench/serving_tools.py requests`: 8 "
             "keep-alive connections, the 8 images in rotation). The TorchServe-style baseline: N `/usr/bin/python3` processes "
             "that each `torch.jit.load` the same file (1 torch thread) and run 2000/N forwards "
             "(`bench/serving_tools.py torch-procs`), their VmRSS and Pss summed; Pss counts "
             "the shared libtorch pages once.\n")
    L.append("| process(es) | workers | torch threads | RSS loaded (MB) | requests answered 200 "
             "| RSS after (MB) | Pss after (MB) | RSS after vs 1 |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    m1, m4 = sv.mem("mem_w1"), sv.mem("mem_w4")
    base = m1 and m1.get("after_rss_kb")
    for name, m, w in (("wick", m1, 1), ("wick", m4, 4)):
        a = m and m.get("after_rss_kb")
        rq = read_json(os.path.join(sv.d, f"mem_w{w}.requests.json")) or {}
        L.append(f"| {name} | {w} | {fmt(m and m.get('threads'))} | "
                 f"{mb(m and m.get('load_rss_kb'))} | {fmt(rq.get('ok'))} | {mb(a)} | "
                 f"{mb(m and m.get('after_pss_kb'))} | {fmt(ratio(a, base), 2, 'x')} |")
    t1 = read_json(os.path.join(sv.d, "torch_procs_1.json"))
    t4 = read_json(os.path.join(sv.d, "torch_procs_4.json"))

    def tsum(t, key):
        if not t or t.get("error") or not t.get(key) or None in t[key]:
            return None
        return sum(t[key])
    tb = tsum(t1, "rss_kb")
    for t, n in ((t1, 1), (t4, 4)):
        a = tsum(t, "rss_kb")
        L.append(f"| {n} x python+torch | {n} | 1 each | n/a | {t and t.get('forwards')} "
                 f"forwards each | {mb(a)} | "
                 f"{mb(tsum(t, 'pss_kb'))} | {fmt(ratio(a, tb), 2, 'x')} |")
    L.append("")
    for t, n in ((t1, 1), (t4, 4)):
        if t and t.get("error"):
            L.append(f"- python baseline with {n} process(es) failed: {t['error']}")
    q = ratio(m4 and m4.get("after_rss_kb"), base)
    qp = ratio(tsum(t4, "pss_kb"), tsum(t1, "pss_kb"))
    qr = ratio(tsum(t4, "rss_kb"), tb)
    L.append(f"4 workers / 1 worker, wick RSS after the requests: **{fmt(q, 2, 'x')}**; "
             f"4 / 1 python processes: {fmt(qr, 2, 'x')} summed RSS, {fmt(qp, 2, 'x')} "
             "summed Pss.\n")
    targets.append(("RSS with 4 native workers <= 1.2x RSS with 1", fmt(q, 2, "x"),
                    None if q is None else q <= 1.2))

    # --- cold start
    cs = read_json(os.path.join(sv.d, "cold_start.json"))
    L.append("## Cold start\n")
    L.append("`bench/serving_tools.py cold-start`: exec of `wick serve --model-store "
             "build/demo/model_store --models fashion=fashion.mar --quiet` (the demo archive: "
             "deflated, unpacked at load) to the first 200 of POST /predictions/fashion, the "
             "client retrying every ~1 ms from the exec on (a new connection each try, "
             "`Connection: close`). One unmeasured run first (warm page cache), then 5; "
             "median. Model load: wick's own \"loaded in N ms\" log line (torch.jit.load + "
             "freeze). Bare exec: `wick --help` (dynamic loader + libtorch's static "
             "initializers + exit); libtorch floor: an empty `main()` linked against "
             "libtorch_cpu/libtorch/c10 (`cc -Wl,--no-as-needed`), both run after each cold "
             "start. wick listens only once its models are loaded, so the first connection "
             "and the first 200 coincide.\n")
    L.append("| run | exec to first 200 (ms) | exec to first connection (ms) | model load (ms) | "
             "bare exec (ms) | libtorch floor (ms) |")
    L.append("|---|---:|---:|---:|---:|---:|")
    med = None
    if cs:
        def s2ms(x):
            return fmt(None if x is None else x * 1000)
        for i, r in enumerate(cs.get("runs", [])):
            L.append(f"| {i + 1} | {s2ms(r.get('first_200_s'))} | "
                     f"{s2ms(r.get('first_connect_s'))} | {fmt(r.get('model_load_ms'))} | "
                     f"{s2ms(r.get('exec_help_s'))} | {s2ms(r.get('torch_floor_s'))} |")
        med = cs.get("median_first_200_s")
        L.append(f"| **median** | **{s2ms(med)}** | {s2ms(cs.get('median_first_connect_s'))} | "
                 f"{fmt(cs.get('median_model_load_ms'))} | {s2ms(cs.get('median_exec_help_s'))} | "
                 f"{s2ms(cs.get('median_torch_floor_s'))} |")
        if cs.get("failed_runs"):
            L.append(f"\n- warning: {cs['failed_runs']} run(s) got no 200 within 30 s")
    else:
        L.append("| n/a | n/a | n/a | n/a | n/a | n/a |")
    L.append("")
    targets.append(("cold start to the first fashion prediction < 1 s (warm page cache)",
                    fmt(None if med is None else med * 1000, 0, " ms"),
                    None if med is None else med < 1.0))


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
    L.append("Written by `bench/report.py` from a run of `bench/run.sh` (and "
             "`bench/run_serving.sh`, which it calls); rerun with "
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

    sv = Serving(od)
    targets = []
    if sv.present():
        serving_sections(sv, L, targets)

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
    for text, measured, ok in targets:
        L.append(f"| {text} | {measured} | {verdict(ok)} |")
    if not sv.present():
        L.append("| serving targets (batching, memory, cold start) | not run | "
                 f"{verdict(None)} |")
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
