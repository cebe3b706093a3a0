#!/usr/bin/env python3
"""[11] part 16: soak and chaos. `make soak` (not in `make test`).

    .venv/bin/python bench/soak.py --wick build/wick [--seconds 1800] [--clients 3]

One `wick serve` with four models: the MLP (TorchScript, JSON tensors and KServe v2 binary),
the fashion CNN (28x28 PNG bodies), a Python handler that echoes its input (2 workers,
batched, responseTimeout 4 s) and, every few seconds, a copy of the MLP registered,
asked once and unregistered again. Client threads send the mixed load over keep-alive
connections for --seconds and check every answer: the MLP's against torch run here, the
fashion CNN's against its first answer for that image (taken before any chaos), the echo's
against what was sent. Meanwhile a Python worker is killed with SIGKILL every minute and,
half a minute later, one is stopped with SIGSTOP past the response timeout (then let go).

Every 5 s it samples the server's RSS (and its children's), its open files and the
CLOSE-WAIT sockets on its ports. Passes when: no wrong answer; errors only on the echo
model, within a few seconds after a kill or a stop; the server exits 0 on SIGTERM. It
reports the RSS and fd slopes after warm-up (the first fifth of the run) and writes
bench/RESULTS-soak.md and the soak section of bench/RESULTS.md."""
import argparse
import http.client
import json
import os
import platform
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESPONSE_TIMEOUT = 4

ECHO_PY = '''
def handle(data, context):
    if data is None:
        return None
    out = []
    for row in data:
        body = row.get("body")
        if isinstance(body, (bytes, bytearray)):
            body = body.decode()
        out.append({"echo": body})
    return out
'''


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(16, 64)
        self.b = torch.nn.Linear(64, 4)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def near(a, b, tol):
    """a equals b, numbers within tol, at every level of lists and dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(near(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(near(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= tol
    return a == b


def free_ports(n):
    ss = [socket.socket() for _ in range(n)]
    try:
        for s in ss:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in ss]
    finally:
        for s in ss:
            s.close()


def wick(args, *rest):
    subprocess.run([args.wick, *map(str, rest)], check=True, capture_output=True)


def build_store(args, tmp):
    store = tmp / "store"
    store.mkdir()
    torch.manual_seed(0)
    mlp = torch.jit.script(MLP().eval())
    mlp.save(str(tmp / "mlp.pt"))
    wick(args, "pack", "--model-name", "mlp", "--version", "1.0", "--serialized-file", tmp / "mlp.pt",
         "--handler", "tensor", "--export-path", store, "-f")
    wick(args, "pack", "--model-name", "churn", "--version", "1.0", "--serialized-file",
         tmp / "mlp.pt", "--handler", "tensor", "--export-path", store, "-f")
    (tmp / "echo.py").write_text(ECHO_PY)
    (tmp / "echo.yaml").write_text(f"minWorkers: 2\nmaxWorkers: 2\nbatchSize: 4\nmaxBatchDelay: 5\n"
                                   f"responseTimeout: {RESPONSE_TIMEOUT}\n")
    (tmp / "dummy.txt").write_text("x")
    wick(args, "pack", "--model-name", "echo", "--version", "1.0", "--serialized-file",
         tmp / "dummy.txt", "--handler", f"{tmp / 'echo.py'}:handle", "--config-file",
         tmp / "echo.yaml", "--export-path", store, "-f")
    fashion = Path(args.demo) / "model_store" / "fashion.mar"
    (store / "fashion.mar").write_bytes(fashion.read_bytes())
    return store, torch.jit.load(str(tmp / "mlp.pt"))


class Conn:
    """One keep-alive connection that reconnects after a failure."""

    def __init__(self, port):
        self.port = port
        self.c = None

    def call(self, method, path, body=None, headers=None):
        for attempt in range(2):
            if self.c is None:
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.c.request(method, path, body, headers or {})
                r = self.c.getresponse()
                return r.status, dict(r.getheaders()), r.read()
            except (OSError, http.client.HTTPException):
                self.c.close()
                self.c = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


class Soak:
    def __init__(self, args, ports, mlp):
        self.args = args
        self.ports = ports
        self.mlp = mlp
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.counts = {}       # (kind, status) -> n
        self.wrong = []        # (time, kind, what)
        self.unexpected = []   # (time, kind, status, body)
        self.echo_errors = []  # (time, status)
        self.events = []       # (time, what)
        self.samples = []      # (time, rss_kb, rss_kb per Python worker, fds, close_wait, workers)
        self.churns = 0
        rng = random.Random(0)
        self.rows = [[rng.uniform(-2, 2) for _ in range(16)] for _ in range(8)]
        with torch.inference_mode():
            self.want = [mlp(torch.tensor([r])).tolist()[0] for r in self.rows]
        samples = sorted((ROOT / "examples" / "fashion" / "samples").glob("*.png"))
        self.pngs = [p.read_bytes() for p in samples]
        self.png_want = {}

    # ---- bookkeeping ----
    def count(self, kind, status):
        with self.lock:
            self.counts[(kind, status)] = self.counts.get((kind, status), 0) + 1

    def bad(self, kind, what):
        with self.lock:
            self.wrong.append((time.time(), kind, what[:300]))

    def close(self, got, want, tol=1e-5):
        return len(got) == len(want) and all(abs(a - b) <= tol for a, b in zip(got, want))

    # ---- requests ----
    def mlp_json(self, conn, n):
        i = n % len(self.rows)
        st, _, body = conn.call("POST", "/predictions/mlp", json.dumps({"data": [self.rows[i]]}),
                                {"Content-Type": "application/json"})
        self.count("mlp_json", st)
        if st != 200:
            return self.unexpected_reply("mlp_json", st, body)
        got = json.loads(body)
        got = got[0] if got and isinstance(got[0], list) else got
        if not self.close(got, self.want[i]):
            self.bad("mlp_json", f"row {i}: {got} != {self.want[i]}")

    def v2_binary(self, conn, n):
        i = n % len(self.rows)
        raw = struct.pack("<16f", *self.rows[i])
        head = json.dumps({"inputs": [{"name": self.v2_in, "shape": [1, 16], "datatype": "FP32",
                                       "parameters": {"binary_data_size": len(raw)}}],
                           "outputs": [{"name": self.v2_out, "parameters": {"binary_data": True}}]})
        st, hdrs, body = conn.call("POST", "/v2/models/mlp/infer", head.encode() + raw,
                                   {"Content-Type": "application/octet-stream",
                                    "Inference-Header-Content-Length": str(len(head))})
        self.count("v2_binary", st)
        if st != 200:
            return self.unexpected_reply("v2_binary", st, body)
        hl = int({k.lower(): v for k, v in hdrs.items()}["inference-header-content-length"])
        got = list(struct.unpack("<4f", body[hl:hl + 16]))
        if not self.close(got, self.want[i], 1e-4):
            self.bad("v2_binary", f"row {i}: {got} != {self.want[i]}")

    def fashion_png(self, conn, n):
        i = n % len(self.pngs)
        st, _, body = conn.call("POST", "/predictions/fashion", self.pngs[i], {"Content-Type": "image/png"})
        self.count("fashion_png", st)
        if st != 200:
            return self.unexpected_reply("fashion_png", st, body)
        got = json.loads(body)
        want = self.png_want.setdefault(i, got)
        if not near(got, want, 1e-4):
            self.bad("fashion_png", f"image {i}: {got} != {want}")

    def echo(self, conn, n, tag):
        text = f"soak {tag} {n}"
        t0 = time.time()
        st, _, body = conn.call("POST", "/predictions/echo", text, {"Content-Type": "text/plain"})
        self.count("python_echo", st)
        if st != 200:
            with self.lock:
                self.echo_errors.append((t0, time.time(), st, body[:200]))
            return
        if json.loads(body) != {"echo": text}:
            self.bad("python_echo", f"{body[:200]!r} for {text!r}")

    def unexpected_reply(self, kind, st, body):
        with self.lock:
            self.unexpected.append((time.time(), kind, st, body[:300]))

    # ---- threads ----
    def client(self, k):
        conn = Conn(self.ports[0])
        n = 0
        kinds = [self.mlp_json, self.v2_binary, self.fashion_png]
        while not self.stop.is_set():
            try:
                kinds[n % 3](conn, n)
                self.echo(conn, n, k)
            except Exception as e:  # noqa: BLE001 - a broken connection is a finding, not a crash
                self.unexpected_reply("client", 0, repr(e).encode())
                time.sleep(0.2)
            n += 1

    def churn(self):
        mgmt, inf = Conn(self.ports[1]), Conn(self.ports[0])
        while not self.stop.wait(3):
            try:
                st, _, body = mgmt.call("POST", "/models?url=churn.mar&initial_workers=1&synchronous=true")
                self.count("churn_register", st)
                if st != 200:
                    self.unexpected_reply("churn_register", st, body)
                    continue
                st, _, body = inf.call("POST", "/predictions/churn", json.dumps({"data": [self.rows[0]]}),
                                       {"Content-Type": "application/json"})
                self.count("churn_predict", st)
                if st != 200:
                    self.unexpected_reply("churn_predict", st, body)
                elif not self.close(json.loads(body)[0], self.want[0]):
                    self.bad("churn_predict", body.decode()[:200])
                st, _, body = mgmt.call("DELETE", "/models/churn")
                self.count("churn_unregister", st)
                if st != 200:
                    self.unexpected_reply("churn_unregister", st, body)
                self.churns += 1
            except Exception as e:  # noqa: BLE001
                self.unexpected_reply("churn", 0, repr(e).encode())

    def python_workers(self):
        out = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            template = stat[stat.index("(") + 1:stat.rindex(")")] == "wick-template"
            if ppid == self.proc.pid and b"wick_worker" in cmd and not template:
                out.append(int(d.name))
        return out

    def chaos(self):
        period = self.args.chaos_period
        rng = random.Random(1)
        t = 0
        while not self.stop.wait(period / 2):
            t += 1
            pids = self.python_workers()
            if not pids:
                self.events.append((time.time(), "no Python worker found"))
                continue
            pid = rng.choice(pids)
            if t % 2 == 1:
                os.kill(pid, signal.SIGKILL)
                self.events.append((time.time(), f"SIGKILL worker {pid}"))
            else:
                os.kill(pid, signal.SIGSTOP)
                self.events.append((time.time(), f"SIGSTOP worker {pid}"))
                self.stop.wait(RESPONSE_TIMEOUT + 3)
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                self.events.append((time.time(), f"SIGCONT worker {pid}"))

    def sample(self):
        pid = self.proc.pid
        ports = set(self.ports)

        def rss(p):
            try:
                for line in open(f"/proc/{p}/status"):
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
            except OSError:
                pass
            return 0

        def close_wait():
            n = 0
            for f in ("/proc/net/tcp", "/proc/net/tcp6"):
                try:
                    lines = open(f).read().splitlines()[1:]
                except OSError:
                    continue
                for line in lines:
                    parts = line.split()
                    if parts[3] == "08" and int(parts[1].rsplit(":", 1)[1], 16) in ports:
                        n += 1
            return n

        while True:
            workers = self.python_workers()
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            with self.lock:
                per_worker = sum(rss(w) for w in workers) // max(1, len(workers))
                self.samples.append((time.time(), rss(pid), per_worker, fds, close_wait(),
                                     len(workers)))
            if self.stop.wait(5):
                return

    # ---- the run ----
    def run(self, store, log):
        a = self.args
        cmd = [a.wick, "serve", "--model-store", str(store), "--models", "mlp=mlp.mar", "fashion=fashion.mar",
               "echo=echo.mar", "--enable_model_api", "true", "--quiet",
               "--inference_address", f"http://127.0.0.1:{self.ports[0]}",
               "--management_address", f"http://127.0.0.1:{self.ports[1]}",
               "--metrics_address", f"http://127.0.0.1:{self.ports[2]}"]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        c = Conn(self.ports[0])
        for _ in range(600):
            try:
                if c.call("GET", "/ping")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        meta = json.loads(c.call("GET", "/v2/models/mlp")[2])
        self.v2_in, self.v2_out = meta["inputs"][0]["name"], meta["outputs"][0]["name"]
        for n in range(len(self.pngs)):  # the fashion CNN's reference answers, before chaos
            self.fashion_png(c, n)
        threads = [threading.Thread(target=self.client, args=(k,)) for k in range(a.clients)]
        threads += [threading.Thread(target=self.churn), threading.Thread(target=self.sample)]
        chaos = threading.Thread(target=self.chaos)
        self.t0 = time.time()
        for t in threads + [chaos]:
            t.start()
        self.stop.wait(a.seconds)
        self.stop.set()
        for t in threads + [chaos]:
            t.join()
        self.t1 = time.time()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.rc = self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.rc = "killed after 90 s"

    def last_event_before(self, t):
        """' (N s after <event>)' for the last chaos event before t, so that an error the
        window does not explain can be placed in the timeline."""
        if not isinstance(t, (int, float)):
            return ""
        before = [(et, what) for et, what in self.events if et <= t]
        if not before:
            return " (before any chaos event)"
        et, what = before[-1]
        return f" ({t - et:.1f} s after {what})"

    def explained(self, t0, t1):
        """1 when an echo error [t0, t1] falls near a kill or a stop."""
        for t, what in self.events:
            if what.startswith(("SIGKILL", "SIGSTOP")) and t - 1 <= t1 and t0 <= t + RESPONSE_TIMEOUT + 8:
                return True
        return False


def slope_per_min(points):
    """Least-squares slope of (t, y) in y per minute; 0 for fewer than 2 points."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    num = sum((t - mt) * (y - my) for t, y in points)
    den = sum((t - mt) ** 2 for t, _ in points)
    return 60.0 * num / den if den else 0.0


def report(s, args):
    dur = s.t1 - s.t0
    warm = s.t0 + dur / 5
    after = [x for x in s.samples if x[0] >= warm] or s.samples
    rss_slope = slope_per_min([(x[0], x[1]) for x in after])
    kid_slope = slope_per_min([(x[0], x[2]) for x in after])
    fd_slope = slope_per_min([(x[0], x[3]) for x in after])
    unexplained = [e for e in s.echo_errors if not s.explained(e[0], e[1])]
    total = sum(s.counts.values())
    kinds = sorted({k for k, _ in s.counts})
    ok = not s.wrong and not s.unexpected and not unexplained and s.rc == 0
    lines = [
        "# wick soak and chaos",
        "",
        f"Written by `bench/soak.py` ({'pass' if ok else '**FAIL**'}). Rerun with `make soak`.",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Linux {platform.release()}",
        f"- command: `{' '.join(sys.argv)}`",
        f"- ran {dur / 60:.1f} min: {args.clients} client threads (each alternating MLP JSON, v2 binary, "
        "fashion PNG with the Python echo), a register/predict/unregister cycle every 3 s, "
        f"a Python worker SIGKILLed every {args.chaos_period} s and one SIGSTOPped "
        f"{RESPONSE_TIMEOUT + 3} s (past its {RESPONSE_TIMEOUT} s responseTimeout) half a period later",
        "",
        "| requests | status | count |",
        "|---|---:|---:|",
    ]
    for k in kinds:
        for (kk, st), n in sorted(s.counts.items()):
            if kk == k:
                lines.append(f"| {k} | {st} | {n:,} |")
    lines += [
        "",
        f"- requests: {total:,} ({total / dur:.0f}/s); churn cycles: {s.churns}",
        f"- wrong answers: {len(s.wrong)}",
        f"- unexpected errors (any model but the echo, or a broken connection): {len(s.unexpected)}",
        f"- echo errors: {len(s.echo_errors)}, of which not within seconds of a kill or stop: "
        f"{len(unexplained)}",
        f"- chaos events: {sum(1 for _, w in s.events if w.startswith(('SIGKILL', 'SIGSTOP')))}",
        f"- server exit on SIGTERM: {s.rc}",
        "",
        "After warm-up (the first fifth of the run), sampled every 5 s:",
        "",
        "| | first | last | min | max | slope per minute |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, idx, slope in (("server RSS (kB)", 1, rss_slope), ("RSS per Python worker (kB)", 2, kid_slope),
                             ("server open files", 3, fd_slope), ("CLOSE-WAIT on its ports", 4, None)):
        ys = [x[idx] for x in after]
        sl = f"{slope:+.1f}" if slope is not None else "-"
        lines.append(f"| {name} | {ys[0]:,} | {ys[-1]:,} | {min(ys):,} | {max(ys):,} | {sl} |")
    if s.wrong or s.unexpected or unexplained:
        lines += ["", "First problems:", ""]
        for w in (s.wrong[:5] + s.unexpected[:5] + unexplained[:5]):
            lines.append(f"- {w!r}"[:400] + s.last_event_before(w[0]))
    text = "\n".join(lines) + "\n"
    (ROOT / "bench" / "RESULTS-soak.md").write_text(text)
    res = ROOT / "bench" / "RESULTS.md"
    if res.exists():
        body = res.read_text()
        section = "## Soak and chaos (make soak)\n\n" + text.split("\n", 2)[2]
        m = re.search(r"^## Soak and chaos \(make soak\)\n.*?(?=^## |\Z)", body, re.S | re.M)
        body = body[:m.start()] + section + body[m.end():] if m else body.rstrip() + "\n\n" + section
        res.write_text(body)
    print(text)
    return ok


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--wick", default=str(ROOT / "build" / "wick"))
    p.add_argument("--demo", default=str(ROOT / "build" / "demo"))
    p.add_argument("--seconds", type=int, default=1800)
    p.add_argument("--clients", type=int, default=3)
    p.add_argument("--chaos-period", type=int, default=60)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="wick-soak-") as d:
        tmp = Path(d)
        store, mlp = build_store(a, tmp)
        s = Soak(a, free_ports(3), mlp)
        with open(tmp / "wick.log", "wb") as log:
            s.run(store, log)
        ok = report(s, a)
        if not ok:
            sys.stdout.write((tmp / "wick.log").read_text(errors="replace")[-4000:])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
