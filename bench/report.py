#!/usr/bin/env python3
"""Turns the raw outputs of bench/run.sh into bench/RESULTS.md.

    report.py --out-dir BUILD/bench/out --results bench/RESULTS.md --command "..."

Reads OUT/{ping,mlp}_{server}_c{N}.txt (wrk --latency output), OUT/forward.json
(bench/forward_loop), OUT/serving/ (bench/run_serving.sh: batching, memory, cold
start) and OUT/vision/ (bench/run_vision.sh: ResNet-18 JPEG and fashion PNG through the
image_classifier handler, the FastAPI + PIL peer, the raw in-process pipeline). A
missing file shows as n/a; the targets are reported as pass/miss, never asserted.
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


def batch_delta(d, stem):
    """(sum, count) of wick_batch_size over one wrk run (D/STEM.before, .after), or None."""
    try:
        b = [float(x) for x in open(os.path.join(d, stem + ".before")).read().split()]
        a = [float(x) for x in open(os.path.join(d, stem + ".after")).read().split()]
    except (OSError, ValueError):
        return None
    if len(a) != 2 or len(b) != 2 or any(x != x for x in a + b):
        return None
    return a[0] - b[0], a[1] - b[1]


def combine_rounds(d, prefix):
    """All rounds D/PREFIX_r{1,2,..}.txt (wrk --latency), combined: rps = mean over rounds
    (equal durations), p50 = mean of the rounds' p50, p99 = worst round's p99, mean batch
    from the /metrics deltas."""
    rs, bsum, bcount = [], 0.0, 0.0
    k = 1
    while True:
        stem = f"{prefix}_r{k}"
        if not os.path.exists(os.path.join(d, stem + ".txt")):
            break
        r = parse_wrk(os.path.join(d, stem + ".txt"))
        if r:
            rs.append(r)
        bd = batch_delta(d, stem)
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
        return batch_delta(self.d, stem)

    def runs(self, name, c):
        """All rounds of NAME at concurrency C, combined (see combine_rounds)."""
        return combine_rounds(self.d, f"{name}_c{c}")

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
             "keep-alive connections, the 8 images in rotation). The TorchServe-style baseline: N `.venv/bin/python` processes "
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
             "build/demo/model_store --models fashion_tensor=fashion_tensor.mar --quiet` (the "
             "demo's tensor-handler archive of the fashion model, JSON bodies: "
             "deflated, unpacked at load) to the first 200 of POST /predictions/fashion_tensor, the "
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

    # --- Python handler overhead
    nat, py = "pyov_native", "pyov_python"
    if nat in sv.variants or py in sv.variants:
        L.append("## Python handler overhead\n")
        L.append("`bench/run_serving.sh` part 5: the same 4-float JSON body to an identity "
                 "TorchScript model served natively (tensor handler) and to a no-op Python "
                 "function handler (`return [row.get(\"body\") for row in data]`: the worker "
                 "decodes the JSON and the reply encodes it again) in wick's Python worker "
                 "processes; batchSize 1, 2 workers each. wrk -t1 at c=1, -t2 at c=16, "
                 f"{sv.rounds} interleaved rounds of {sv.round_dur}; p50 = mean of the rounds' "
                 "p50, p99 = worst round.\n")
        L.append("| path | c=1 req/s | c=1 p50 (us) | c=1 p99 (us) | c=16 req/s | c=16 p50 (ms) | "
                 "c=16 p99 (ms) |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        res = {}
        for n, label in ((nat, "native (tensor handler)"), (py, "Python (no-op handler)")):
            a, b = sv.runs(n, 1), sv.runs(n, 16)
            res[n] = (a, b)
            L.append(f"| {label} | {fmt(a and a['rps'])} | {fmt(a and a['p50'])} | "
                     f"{fmt(a and a['p99'])} | {fmt(b and b['rps'])} | {ms(b and b['p50'], 2)} | "
                     f"{ms(b and b['p99'], 2)} |")
        L.append("")
        a_n, a_p = res[nat][0], res[py][0]
        gap = None
        if a_n and a_p and a_n["p50"] is not None and a_p["p50"] is not None:
            gap = a_p["p50"] - a_n["p50"]
        q16 = ratio(res[py][1] and res[py][1]["rps"], res[nat][1] and res[nat][1]["rps"])
        L.append(f"At c=16 the Python path runs at {fmt(q16, 2, 'x')} of the native one's "
                 "throughput. For scale: TorchServe's published frontend+backend overhead is "
                 "2-3 ms per request.\n")
        targets.append(("no-op Python handler at c=1: p50 <= native p50 + 300 us",
                        f"+{fmt(gap)} us" if gap is not None else "n/a",
                        None if gap is None else gap <= 300))

    # --- KServe v2 transport
    vj, vb = combine_rounds(sv.d, "v2_json_c16"), combine_rounds(sv.d, "v2_binary_c16")
    if vj or vb:
        def size(kind):
            t = read_text(os.path.join(sv.d, f"v2_{kind}_bytes.txt"))
            return int(t) if t and t.strip().isdigit() else None
        L.append("## KServe v2: binary tensor data vs JSON\n")
        L.append("`bench/run_serving.sh` part 6: POST /v2/models/sumimages/infer with one [64,1,28,28] "
                 "float32 tensor (torch.rand) to a TorchScript model that returns "
                 "`x.sum(dim=(1,2,3))`, so the transport is what is measured; the JSON body "
                 "and reply vs the binary tensor data extension both ways (the body written by "
                 "`tests/e2e/v2client.py`). 2 workers, wrk -t2 -c16, "
                 f"{sv.rounds} interleaved rounds of {sv.round_dur}.\n")
        L.append("| body | request bytes | req/s | req/s by round | p50 (ms) | p99 (ms) |")
        L.append("|---|---:|---:|---:|---:|---:|")
        for kind, r in (("JSON", vj), ("binary", vb)):
            L.append(f"| {kind} | {fmt(size(kind.lower()))} | {fmt(r and r['rps'])} | "
                     f"{' / '.join(fmt(x) for x in r['rounds']) if r else 'n/a'} | "
                     f"{ms(r and r['p50'], 2)} | {ms(r and r['p99'], 2)} |")
        L.append("")
        q = ratio(vb and vb["rps"], vj and vj["rps"])
        targets.append(("KServe v2 [64,1,28,28] float32: binary >= 3x JSON req/s", fmt(q, 2, "x"),
                        None if q is None else q >= 3))


def weights_section(out_dir, L, targets):
    """bench/run_weights.sh: wick weights transfer on torch_liberator's ResNet-50 cases."""
    d = os.path.join(out_dir, "weights")
    if not os.path.isdir(d):
        return

    def rows(name):
        t = read_text(os.path.join(d, name + ".txt")) or ""
        return [line.split() for line in t.splitlines() if line.strip()]

    L.append("## Weights transfer (torch_liberator's ResNet-50 cases)\n")
    L.append("`bench/run_weights.sh`: `wick weights transfer --from A.pt --into B.pt -o OUT.pt "
             "--association X` on Debian torchvision models with random weights: (a) resnet50 "
             "into a holder of it as `module` + Linear(1,1); (b) a `backbone` holder into a "
             "`module` holder; (c) resnet50 into Faster R-CNN (FrozenBatchNorm2d, FPN). Whole "
             "command = exec to exit (libtorch's start-up, reading A and B with the safe reader, "
             "mapping, copying, writing OUT.pt); mapping = wick's own \"mapped in N ms\" (the "
             "planner alone). Floor: a fresh `.venv/bin/python` that torch.loads A and B "
             "(weights_only) and torch.saves B, the same file work with no mapping. Medians of "
             "the runs.\n")
    L.append("| case | association | whole command (ms) | mapping (ms) | Python load+save floor (ms) "
             "| wick / floor |")
    L.append("|---|---|---:|---:|---:|---:|")
    worst = None
    for case in ("a", "b", "c"):
        py = median([float(r[0]) for r in rows(f"{case}_python")])
        for assoc in ("isomorphism", "embedding"):
            rs = rows(f"{case}_{assoc}")
            whole = median([float(r[0]) for r in rs])
            plan = median([float(r[1]) for r in rs if len(r) > 1 and r[1] != "nan"])
            if plan is not None and (worst is None or plan > worst):
                worst = plan
            L.append(f"| {case} | {assoc} | {ms(whole, 0)} | {fmt(plan, 1)} | {ms(py, 0)} | "
                     f"{fmt(ratio(whole, py), 2, 'x')} |")
    L.append("")
    targets.append(("ResNet-50 weights mapping (planner) < 100 ms, i.e. well under a second",
                    f"slowest median {fmt(worst, 1)} ms", None if worst is None else worst < 100))


class Vision:
    """The outputs of bench/run_vision.sh in OUT/vision/."""

    def __init__(self, out_dir):
        self.d = os.path.join(out_dir, "vision")
        self.variants = {}  # name -> dict(kind, batch, delay, workers, threads, freeze)
        for line in (read_text(os.path.join(self.d, "variants.txt")) or "").splitlines():
            f = line.split()
            if len(f) == 7:
                self.variants[f[0]] = dict(kind=f[1], batch=int(f[2]), delay=int(f[3]),
                                           workers=int(f[4]), threads=int(f[5]),
                                           freeze=int(f[6]))
        rt = (read_text(os.path.join(self.d, "rounds.txt")) or "").split()
        self.rounds = int(rt[0]) if rt else 0
        self.round_dur = rt[1] if len(rt) > 1 else "?"
        self.freeze_switch = (read_text(os.path.join(self.d, "freeze_switch.txt")) or
                              "").strip() == "1"
        el = (read_text(os.path.join(self.d, "elapsed_s.txt")) or "").strip()
        self.elapsed_s = int(el) if el.isdigit() else None

    def present(self):
        return os.path.isdir(self.d)

    def names(self, prefix, kind):
        return [n for n, v in self.variants.items() if n.startswith(prefix) and v["kind"] == kind]

    def server(self, name):
        """The rounds of NAME: req/s = the median round's (counting 2xx answers only: a peer
        answering errors fast must not look fast), p50 = median of the rounds' p50, p99 =
        the worst round's p99, mean batch over all rounds."""
        r = combine_rounds(self.d, name)
        if not r:
            return r
        k = 1
        rounds, p50s = [], []
        while os.path.exists(os.path.join(self.d, f"{name}_r{k}.txt")):
            w = parse_wrk(os.path.join(self.d, f"{name}_r{k}.txt"))
            if w:
                bad = w["non2xx"] / w["requests"] if w["requests"] else 1.0
                rounds.append(w["rps"] * (1.0 - bad))
                p50s.append(w["p50"])
            k += 1
        r["rounds"] = rounds
        r["rps"] = median(rounds)
        r["p50"] = median(p50s)
        return r

    def raw(self, name):
        """The raw loop's rounds of NAME combined: medians over the rounds, the worst p99."""
        rs = []
        k = 1
        while os.path.exists(os.path.join(self.d, f"{name}_r{k}.json")):
            r = read_json(os.path.join(self.d, f"{name}_r{k}.json"))
            if r and r.get("images"):
                rs.append(r)
            k += 1
        if not rs:
            return None

        def med(key):
            return median([r[key] for r in rs])
        return {"rps": med("img_per_s"), "rounds": [r["img_per_s"] for r in rs],
                "pre_ms": med("preprocess_ms_per_img"), "fwd_ms": med("forward_ms_per_batch"),
                "p50_ms": med("batch_p50_ms"), "p99_ms": max(r["batch_p99_ms"] for r in rs)}

    def answer(self, name):
        """The top-5 dict of NAME's first prediction, or None."""
        a = read_json(os.path.join(self.d, f"answer_{name}.json"))
        if not a or a.get("status") != 200:
            return None
        try:
            return json.loads(a["body"])
        except (KeyError, ValueError):
            return None


def agreement(va, vb):
    """'top-5 equal, max |dp| = x' between two top-5 answers, or n/a."""
    if va is None or vb is None:
        return "n/a"
    same = list(va) == list(vb)
    dp = max((abs(va[k] - vb[k]) for k in va if k in vb), default=None)
    return (f"top-5 {'identical (same order)' if same else '**different**'}, max |dp| "
            f"{'n/a' if dp is None else f'{dp:.1e}'}")


def vision_sections(vs, L, targets):
    """Appends the vision sections (ResNet-18 JPEG, fashion PNG) to L and their targets."""
    per_round = (f"{vs.rounds} round{'s' if vs.rounds != 1 else ''} of {vs.round_dur}"
                 if vs.rounds else "n/a")
    jd = (read_text(os.path.join(vs.d, "jpg_dims.txt")) or "").split()
    js = (read_text(os.path.join(vs.d, "jpg_sizes.txt")) or "").split()
    ps = (read_text(os.path.join(vs.d, "png_sizes.txt")) or "").split()

    def srow(name, r, base, base_label, extra=""):
        v = vs.variants[name]
        kind = "wick" if v["kind"] == "wick" else "FastAPI peer"
        q = ratio(r and r["rps"], base)
        cfg = (f"{v['batch']} | {v['workers']} x {v['threads']} | "
               f"{'on' if v['freeze'] else 'off'}")
        return (f"| {name} | {kind} | {cfg} | {fmt(r and r['rps'], 1)} | "
                f"{' / '.join(fmt(x, 1) for x in r['rounds']) if r else 'n/a'} | "
                f"{ms(r and r['p50'], 0)} | {ms(r and r['p99'], 0)} | "
                f"{fmt(r and r['mean_batch'], 1) if v['kind'] == 'wick' else '-'} | "
                f"{fmt(q, 2, 'x')} |{extra}")

    def warn(name, r, notes):
        if r and (r["errors"] or r["non2xx"]):
            notes.append(f"{name}: {r['errors']} socket errors, {r['non2xx']} non-2xx responses "
                         "(req/s counts 2xx answers only)")
        v = vs.variants[name]
        loaded = read_text(os.path.join(vs.d, name + ".loaded"))
        if v["kind"] == "wick" and loaded is not None:
            frozen = "not frozen" not in loaded
            if frozen != bool(v["freeze"]):
                notes.append(f"{name}: asked for freeze {'on' if v['freeze'] else 'off'} but "
                             f"wick logged: {loaded.strip()}")

    def load_line(part):
        t = read_text(os.path.join(vs.d, f"load_{part}.txt"))
        if not t:
            return None
        avg = {ln.split()[0]: ln.split()[1] for ln in t.splitlines() if len(ln.split()) > 1}
        return (f"Load average (1 min) when the timed runs began: {avg.get('start', '?')}, "
                f"when they ended: {avg.get('end', '?')} (2 cores; wrk, the servers and "
                "whatever else runs on the machine share them).")

    # --- ResNet-18
    wick = vs.names("r18_", "wick")
    peers = vs.names("r18_", "fastapi")
    raws = vs.names("r18_", "raw")
    if wick or peers or raws:
        L.append("## ResNet-18 JPEG at c=16: wick image_classifier vs FastAPI + PIL vs the raw "
                 "pipeline\n")
        L.append("`bench/run_vision.sh` (part 1): torchvision `resnet18()` with random weights "
                 "(seed 0), `torch.jit.script`, eval (`bench/vision_tools.py resnet`); "
                 f"{js[0] if js else '?'} synthetic natural-looking JPEGs "
                 f"({', '.join(jd) if jd else '?'}; quality 90, "
                 f"{fmt(int(js[1]) / 1024 if len(js) > 1 else None, 0)} KiB on average; "
                 "`vision_tools.py jpegs`), posted in rotation as raw bodies (`Content-Type: "
                 "image/jpeg`) by wrk -t2 -c16. wick: `wick pack --handler image_classifier` "
                 "with the defaults (resize 256, center crop 224, ImageNet mean/std), "
                 "model-config minWorkers = maxWorkers, batchSize, maxBatchDelay 10 ms, "
                 "`wick: {threads: N, freeze: ...}`, one `wick serve --quiet` per variant. "
                 "Peer: `bench/fastapi_vision_peer.py`, uvicorn 2 workers x 1 torch thread, "
                 "PIL open -> Resize(256) -> CenterCrop(224) -> ToTensor -> Normalize -> "
                 "`torch.jit.load` module -> softmax top 5 (frozen = the same with "
                 "`torch.jit.freeze` + `optimize_for_inference` at startup, an extra row). "
                 "All servers up side by side, each warmed 2 s; every item runs "
                 f"{per_round}, interleaved with the others (even rounds in reverse order); "
                 "req/s = the median round's (2xx answers only), p50 = median of the rounds' "
                 "p50, p99 = the worst round's (the load of other processes on this machine "
                 "comes in bursts: the median round is the one least hit by them). Each round "
                 "starts from an idle server, so a batch-8 variant loses about one batch time "
                 "(~0.3-0.4 s) of its round to the ramp. Mean batch from wick's `/metrics` "
                 "(`wick_batch_size`).\n")
        if not vs.freeze_switch:
            L.append("This build has no `wick: {freeze: ...}` switch: wick was measured with "
                     "freeze on only.\n")
        peer = vs.server("r18_fastapi") if "r18_fastapi" in vs.variants else None
        pr = peer and peer["rps"]
        L.append("| variant | server | batchSize | workers x torch threads | freeze | req/s | "
                 "req/s by round | p50 (ms) | p99 (ms) | mean batch | vs FastAPI peer |")
        L.append("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
        res = {n: vs.server(n) for n in wick + peers}
        notes = []
        for n in wick + peers:
            L.append(srow(n, res[n], pr, "peer"))
            warn(n, res[n], notes)
        L.append("")
        for t in notes:
            L.append(f"- warning: {t}")
        if notes:
            L.append("")

        L.append("The raw in-process limit (`vision_tools.py raw-server`, run while every "
                 "server is idle and wrk is stopped, so it has both cores to itself): a "
                 "Python loop doing PIL decode + the peer's torchvision transforms for BATCH "
                 "images, `torch.stack`, forward, softmax top 5; 2 loops = two such loops in "
                 "Python threads of the one process (PIL and torch release the GIL), each "
                 "with its own images, like a 2-worker server without HTTP; per-image and "
                 "per-batch times are per loop; frozen = `torch.jit.freeze` + "
                 "`optimize_for_inference` (what wick does at load). Warm-up before each run, "
                 "not counted; same rounds as the servers, median round.\n")
        L.append("| variant | batch | loops x torch threads | freeze | images/s | by round | "
                 "decode+preprocess (ms/img) | forward (ms/batch) | batch p50 (ms) | "
                 "batch p99 (ms) |")
        L.append("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
        rres = {n: vs.raw(n) for n in raws}
        for n in raws:
            v, r = vs.variants[n], rres[n]
            L.append(f"| {n} | {v['batch']} | {v['workers']} x {v['threads']} | "
                     f"{'on' if v['freeze'] else 'off'} "
                     f"| {fmt(r and r['rps'], 1)} | "
                     f"{' / '.join(fmt(x, 1) for x in r['rounds']) if r else 'n/a'} | "
                     f"{fmt(r and r['pre_ms'], 1)} | {fmt(r and r['fwd_ms'], 1)} | "
                     f"{fmt(r and r['p50_ms'], 0)} | {fmt(r and r['p99_ms'], 0)} |")
        L.append("")

        okw = [n for n in wick if res[n]]
        best = max(okw, key=lambda n: res[n]["rps"]) if okw else None
        okr = [n for n in raws if rres[n]]
        braw = max(okr, key=lambda n: rres[n]["rps"]) if okr else None
        bw = best and res[best]["rps"]
        br = braw and rres[braw]["rps"]
        q_raw = ratio(bw, br)
        q_peer = ratio(bw, pr)
        fz = vs.server("r18_fastapi_frozen") if "r18_fastapi_frozen" in vs.variants else None
        q_fz = ratio(bw, fz and fz["rps"])
        if best:
            L.append(f"Best wick: **{best}** ({fmt(bw, 1)} req/s, p50 {ms(res[best]['p50'], 0)} "
                     f"ms, p99 {ms(res[best]['p99'], 0)} ms). Best raw: {braw or 'n/a'} "
                     f"({fmt(br, 1)} images/s): wick / raw = **{fmt(q_raw and q_raw * 100, 0, '%')}**. "
                     f"wick / FastAPI peer ({fmt(pr, 1)} req/s) = **{fmt(q_peer, 2, 'x')}**; "
                     f"wick / frozen peer ({fmt(fz and fz['rps'], 1)} req/s) = "
                     f"{fmt(q_fz, 2, 'x')}. (The best of {len(okw)} wick variants against the "
                     f"best of {len(okr)} raw ones: under this machine's noise the larger "
                     "field has more lucky draws; compare the rounds too.)")
        # freeze on vs off, same config
        fl = []
        for n in wick:
            v = vs.variants[n]
            if v["freeze"] == 0:
                on = next((m for m in wick if vs.variants[m]["freeze"] == 1 and
                           all(vs.variants[m][k] == v[k] for k in ("batch", "workers", "threads"))),
                          None)
                q = ratio(on and res[on] and res[on]["rps"], res[n] and res[n]["rps"])
                if on:
                    fl.append(f"wick batchSize {v['batch']}, {v['workers']} x {v['threads']}: "
                              f"{fmt(q, 2, 'x')}")
        for n in raws:
            v = vs.variants[n]
            if v["freeze"] == 0:
                on = next((m for m in raws if vs.variants[m]["freeze"] == 1 and
                           all(vs.variants[m][k] == v[k] for k in ("batch", "workers", "threads"))),
                          None)
                q = ratio(on and rres[on] and rres[on]["rps"], rres[n] and rres[n]["rps"])
                if on:
                    fl.append(f"raw batch {v['batch']}, {v['workers']} x {v['threads']}: "
                              f"{fmt(q, 2, 'x')}")
        if fl:
            L.append(f"Freeze on / off (throughput, same configuration): {', '.join(fl)}.")
        if load_line("resnet"):
            L.append(load_line("resnet"))
        if "r18_fastapi" in vs.variants and okw:
            L.append(f"Same answers: the first JPEG through {okw[0]} vs the FastAPI peer: "
                     f"{agreement(vs.answer(okw[0]), vs.answer('r18_fastapi'))}.")
        L.append("")
        targets.append(("ResNet-18 JPEG at c=16: best wick >= 90% of the best raw in-process "
                        "pipeline", f"{fmt(q_raw and q_raw * 100, 0, '%')} ({best or 'n/a'} vs "
                        f"{braw or 'n/a'})", None if q_raw is None else q_raw >= 0.9))
        targets.append(("ResNet-18 JPEG at c=16: best wick >= 1.25x the FastAPI peer",
                        f"{fmt(q_peer, 2, 'x')}", None if q_peer is None else q_peer >= 1.25))

    # --- fashion
    wick = vs.names("fashion_", "wick")
    peers = vs.names("fashion_", "fastapi")
    if wick or peers:
        L.append("## Fashion 28x28 PNG at c=16: wick vs FastAPI + PIL\n")
        L.append("`bench/run_vision.sh` (part 2): the demo model (`build/demo/fashion.pt`) "
                 f"packed with `--handler image_classifier`, `index_to_name.json` and "
                 "examples/fashion's `wick: image:` section (channels 1, no resize or crop, "
                 "mean 0.2860, std 0.3530), maxBatchDelay 5 ms; "
                 f"{ps[0] if ps else '?'} real FashionMNIST test images as 28x28 gray PNGs "
                 f"({fmt(int(ps[1]) if len(ps) > 1 else None)} bytes on average), raw bodies "
                 "in rotation, wrk -t2 -c16. Peer: the same `fastapi_vision_peer.py` in its "
                 "fashion mode (PIL `convert(\"L\")` -> ToTensor -> Normalize(0.2860, 0.3530) "
                 "-> plain TorchScript -> softmax top 5), 1 or 2 uvicorn workers x 1 torch "
                 f"thread. Every item {per_round}, interleaved; statistics as above.\n")
        res = {n: vs.server(n) for n in wick + peers}
        okp = [n for n in peers if res[n]]
        bpeer = max(okp, key=lambda n: res[n]["rps"]) if okp else None
        bp = bpeer and res[bpeer]["rps"]
        L.append("| variant | server | batchSize | workers x torch threads | freeze | req/s | "
                 "req/s by round | p50 (ms) | p99 (ms) | mean batch | vs best peer |")
        L.append("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
        notes = []
        for n in wick + peers:
            L.append(srow(n, res[n], bp, "peer"))
            warn(n, res[n], notes)
        L.append("")
        for t in notes:
            L.append(f"- warning: {t}")
        okw = [n for n in wick if res[n]]
        best = max(okw, key=lambda n: res[n]["rps"]) if okw else None
        bw = best and res[best]["rps"]
        q = ratio(bw, bp)
        if best:
            L.append(f"Best wick: **{best}** ({fmt(bw)} req/s, p99 {ms(res[best]['p99'])} ms) / "
                     f"best peer {bpeer or 'n/a'} ({fmt(bp)} req/s, p99 "
                     f"{ms(bpeer and res[bpeer]['p99'])} ms) = **{fmt(q, 2, 'x')}**.")
        if load_line("fashion"):
            L.append(load_line("fashion"))
        if okw and okp:
            L.append(f"Same answers: the first PNG through {okw[0]} vs {okp[0]}: "
                     f"{agreement(vs.answer(okw[0]), vs.answer(okp[0]))}.")
        L.append("")
        targets.append(("Fashion PNG at c=16: best wick >= 3x the best FastAPI peer",
                        f"{fmt(q, 2, 'x')}", None if q is None else q >= 3))
    if vs.elapsed_s is not None:
        L.append(f"The vision part of this run took {vs.elapsed_s} s "
                 "(`BENCH_VISION=0` skips it).\n")


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
             "`bench/run_serving.sh` and `bench/run_vision.sh`, which it calls); rerun with "
             "`make bench`. These machines are noisy (10-40% between runs): servers are "
             "compared within one run, concurrencies interleaved.\n")
    L.append(f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}")
    L.append(f"- machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, "
             f"{platform.system()} {platform.release()}")
    L.append(f"- command: `{args.command}`")
    L.append(f"- load: {tool_version(['wrk', '--version'])}; `wrk --latency -d {args.duration}`,"
             " -t1 at c=1, -t2 otherwise, keep-alive, 127.0.0.1; wrk shares the cores with the"
             " servers")
    wick_bin = os.environ.get("BENCH_WICK") or os.path.join(
        os.path.dirname(os.path.abspath(args.out_dir)), "wick")
    try:
        from importlib.metadata import version as pkg_version
        peer_libs = f"torch {pkg_version('torch')}, Pillow {pkg_version('pillow')}"
    except Exception:  # noqa: BLE001 -- a report line, not worth failing the report
        peer_libs = "unknown"
    L.append(f"- torch: wick `{tool_version([wick_bin, '--version'])}`; the Python peers: "
             f"{peer_libs} (the venv's)")
    L.append("- environment: OPENBLAS_NUM_THREADS=1 (oneDNN at its default ISA)")
    L.append("- peers: nginx (worker_processes 2, static `return 200`), FastAPI + uvicorn "
             "(2 workers, torch 1 thread each, `bench/fastapi_peer.py`; for images "
             "`bench/fastapi_vision_peer.py`, PIL + torchvision)")
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
    vs = Vision(od)
    if vs.present():
        vision_sections(vs, L, targets)
    weights_section(od, L, targets)

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
    if not vs.present():
        L.append("| vision targets (ResNet-18 JPEG, fashion PNG) | not run | "
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

    # the soak section is written by bench/soak.py (make soak): carried over as it is
    soak = ""
    if os.path.exists(args.results):
        old = open(args.results).read()
        at = old.find("\n## Soak and chaos (make soak)\n")
        if at >= 0:
            end = old.find("\n## ", at + 1)
            soak = old[at:] if end < 0 else old[at:end + 1]
    tmp = args.results + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(L) + "\n" + soak)
    os.replace(tmp, args.results)


if __name__ == "__main__":
    main()
