"""Shared helpers for the worker tests: model directories written by the tests, and a
worker subprocess driven over a real unix socket with the Python frontend codec."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYDIR = os.path.join(REPO, "python")
if PYDIR not in sys.path:
    sys.path.insert(0, PYDIR)

from wick_worker import protocol  # noqa: E402

PYTHON = sys.executable  # the venv's, as wick's default for workers


def make_model_dir(path, files=None, manifest_model=None, handler=None):
    """Writes files ({name: str|bytes}) and MAR-INF/MANIFEST.json into path."""
    os.makedirs(os.path.join(path, "MAR-INF"), exist_ok=True)
    for name, content in (files or {}).items():
        full = os.path.join(path, name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb" if isinstance(content, bytes) else "w") as f:
            f.write(content)
    model = {"modelName": "m", "modelVersion": "1.0"}
    if handler:
        model["handler"] = handler
    model.update(manifest_model or {})
    with open(os.path.join(path, "MAR-INF", "MANIFEST.json"), "w") as f:
        json.dump({"runtime": "python", "model": model, "archiverVersion": "0.9.0"}, f)
    return str(path)


class Worker:
    """A `python3 -m wick_worker` process and the frontend end of its socket."""

    def __init__(self, tmp_path, extra_args=(), sock_fd=None):
        self.sock_path = str(tmp_path / "w.sock")
        self.stderr_path = str(tmp_path / "worker.stderr")
        env = dict(os.environ, PYTHONPATH=PYDIR)
        self._err = open(self.stderr_path, "wb")
        if sock_fd is None:
            args = ["--sock-type", "unix", "--sock-name", self.sock_path]
            pass_fds = ()
        else:
            args = ["--sock-fd", str(sock_fd)]
            pass_fds = (sock_fd,)
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "wick_worker", *args, *extra_args],
            cwd=str(tmp_path), env=env, stdout=self._err, stderr=self._err, pass_fds=pass_fds,
        )
        self.sock = None
        self.reader = None

    def connect(self, timeout=60):
        deadline = time.time() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.sock_path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if self.proc.poll() is not None:
                    raise AssertionError("worker exited with %s before accepting:\n%s" % (self.proc.returncode, self.stderr()))
                if time.time() > deadline:
                    raise AssertionError("worker did not listen within %s s:\n%s" % (timeout, self.stderr()))
                time.sleep(0.05)
        self.use_socket(s)
        return self

    def use_socket(self, s):
        s.settimeout(120)
        self.sock = s
        self.reader = protocol.SocketReader(s)

    def load(self, model_dir, handler="", batch_size=1, gpu_id=-1, envelope="", name="m"):
        self.sock.sendall(protocol.encode_load(protocol.LoadRequest(
            name, str(model_dir), batch_size, handler, gpu_id, envelope, True)))
        return protocol.read_response(self.reader)

    def infer(self, batch):
        self.sock.sendall(protocol.encode_inference(batch))
        return protocol.read_response(self.reader)

    def read_response(self):
        return protocol.read_response(self.reader)

    def stderr(self):
        self._err.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def metrics(self):
        prefix = "[METRICS] "
        return [json.loads(line[len(prefix):]) for line in self.stderr().splitlines() if line.startswith(prefix)]

    def wait(self, timeout=30):
        return self.proc.wait(timeout)

    def close(self):
        if self.sock is not None:
            self.sock.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._err.close()


def req(rid, body, content_type="application/json", headers=(), name="body"):
    """One InferenceRequest with a single parameter; dict/list bodies become JSON."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    return protocol.InferenceRequest(rid, list(headers), [protocol.Parameter(name, content_type, body)])


@pytest.fixture
def worker(tmp_path):
    workers = []

    def start(**kw):
        w = Worker(tmp_path, **kw)
        workers.append(w)
        return w

    yield start
    for w in workers:
        w.close()
