"""Fixtures for wick's end-to-end tests: the real binary, on free loopback ports, with
models that the tests build with the venv's torch. WICK_BIN picks the binary (an ASan build
for the bad-input run); WICK_DEMO_DIR points at the trained demo model."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WICK = os.environ.get("WICK_BIN", str(ROOT / "build" / "wick"))
DEMO_DIR = Path(os.environ.get("WICK_DEMO_DIR", str(ROOT / "build" / "demo")))
SANITIZED = os.environ.get("WICK_SANITIZED") == "1"

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


_given_ports = set()


def free_port():
    """A free loopback port not handed out before in this run: the kernel may give a port
    it just released to the next bind, so two calls in a row can return the same one."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port
    raise RuntimeError("no free port not given out before")


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Reply {self.status} {self.body[:200]!r}>"


def request(port, method, path, body=None, headers=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Reply(r.status, dict(r.getheaders()), r.read())
    finally:
        conn.close()


class Server:
    """A running `wick serve`; stop() sends SIGTERM and returns the exit code."""

    def __init__(self, args, log_path, env=None, cwd=None):
        self.ports = {"inference": free_port(), "management": free_port(), "metrics": free_port(),
                      "grpc_inference": free_port(), "grpc_management": free_port()}
        self.log_path = log_path
        cmd = [WICK, "serve",
               "--inference_address", f"http://127.0.0.1:{self.ports['inference']}",
               "--management_address", f"http://127.0.0.1:{self.ports['management']}",
               "--metrics_address", f"http://127.0.0.1:{self.ports['metrics']}",
               "--grpc_inference_port", str(self.ports["grpc_inference"]),
               "--grpc_management_port", str(self.ports["grpc_management"])] + list(args)
        self.log = open(log_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=full_env,
                                     cwd=cwd)
        deadline = time.time() + (120 if SANITIZED else 60)
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"wick exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                request(self.ports["inference"], "GET", "/ping", timeout=2)
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("wick did not answer /ping in time:\n" + self.logs())

    def logs(self):
        if not self.log.closed:
            self.log.flush()
        return Path(self.log_path).read_text(errors="replace")

    def infer(self, method, path, body=None, headers=None, **kw):
        return request(self.ports["inference"], method, path, body, headers, **kw)

    def mgmt(self, method, path, body=None, **kw):
        return request(self.ports["management"], method, path, body, **kw)

    def metrics(self):
        return request(self.ports["metrics"], "GET", "/metrics")

    def metrics_query(self, query):
        return request(self.ports["metrics"], "GET", "/metrics" + query)

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode


@pytest.fixture
def serve(tmp_path):
    """serve(args...) starts a server; every server is stopped at teardown, must exit 0,
    and must not have printed a sanitizer report."""
    started = []

    def start(*args, env=None, cwd=None):
        s = Server(args, tmp_path / f"wick-{len(started)}.log", env=env, cwd=cwd)
        started.append(s)
        return s

    yield start
    for s in started:
        rc = s.stop()
        text = s.logs()
        assert "AddressSanitizer" not in text and "runtime error:" not in text, text[-4000:]
        assert "LeakSanitizer" not in text, text[-4000:]
        assert rc == 0, f"wick exited with {rc}:\n{text[-4000:]}"


def wait_for(pred, timeout=20):
    """pred()'s first true value, asked every 50 ms for up to timeout seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def run_wick(*args, check=True):
    r = subprocess.run([WICK] + [str(a) for a in args], capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"wick {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}")
    return r


def pack(store, name, serialized, handler="tensor", extra=(), config=None, version="1.0", fmt=None):
    args = ["pack", "--model-name", name, "--version", version, "--serialized-file", serialized,
            "--handler", handler, "--export-path", store, "-f"]
    if extra:
        args += ["--extra-files", ",".join(str(e) for e in extra)]
    if config:
        args += ["--config-file", config]
    if fmt:
        args += ["--archive-format", fmt]
    run_wick(*args)


def pack_python(tmp_path, store, name, source):
    """Writes source as tmp_path/<name>.py and packs it into store as <name>.mar, its
    handler that file's `handle` function (a placeholder serialized file)."""
    (tmp_path / f"{name}.py").write_text(source)
    (tmp_path / "dummy.txt").write_text("x")
    pack(store, name, tmp_path / "dummy.txt", handler=f"{tmp_path / (name + '.py')}:handle")


def proc_stat(pid):
    """(name, state, parent pid) from /proc/PID/stat; None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    rest = stat.rsplit(")", 1)[1].split()
    return stat[stat.index("(") + 1:stat.rindex(")")], rest[0], int(rest[1])
