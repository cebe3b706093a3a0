"""End-to-end: `wick serve --start` / `--stop` as torchserve's (pid file, log file, a start
that returns once the server answers or has failed), torchserve's other flags, TS_CONFIG_FILE
and TS_<KEY> variables. Every run has its own TMPDIR (pid file), LOG_LOCATION and cwd."""
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import SANITIZED, WICK, free_port, pack, request
from models import MLP, save_script

ROW = [[0.5] * 16]
TIMEOUT = 240 if SANITIZED else 120


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("store")
    src = tmp_path_factory.mktemp("src")
    save_script(MLP, src / "mlp.pt")
    pack(d, "mlp", src / "mlp.pt")
    return d


class Env:
    def __init__(self, tmp_path):
        self.dir = tmp_path
        (tmp_path / "tmp").mkdir()
        self.env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"),
                        LOG_LOCATION=str(tmp_path / "logs"))
        for k in list(self.env):
            if k.startswith("TS_"):
                del self.env[k]
        self.pid_file = tmp_path / "tmp" / ".wick.pid"
        self.log_file = tmp_path / "logs" / "wick.log"
        self.ports = {k: free_port() for k in ("inference", "management", "metrics")}

    def addresses(self):
        return ["--inference_address", f"http://127.0.0.1:{self.ports['inference']}",
                "--management_address", f"http://127.0.0.1:{self.ports['management']}",
                "--metrics_address", f"http://127.0.0.1:{self.ports['metrics']}"]

    def wick(self, *args, env=None, timeout=TIMEOUT):
        e = dict(self.env)
        e.update(env or {})
        return subprocess.run([WICK, "serve"] + [str(a) for a in args], cwd=self.dir, env=e,
                              capture_output=True, text=True, timeout=timeout)

    def pid(self):
        return int(self.pid_file.read_text().split()[0])


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    yield e
    # never leave a background server behind
    if e.pid_file.exists():
        e.wick("--stop", timeout=90)
        try:
            os.kill(e.pid(), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_start_predict_stop(env, store):
    r = env.wick("--start", "--model-store", store, "--models", "mlp=mlp.mar", *env.addresses())
    assert r.returncode == 0, r.stderr + r.stdout
    # --start returned: the server answers at once, no retry needed
    ping = request(env.ports["inference"], "GET", "/ping", timeout=10)
    assert ping.status == 200 and ping.json() == {"status": "Healthy"}
    pid = env.pid()
    assert alive(pid)
    assert env.log_file.exists() and "ready" in env.log_file.read_text()
    assert request(env.ports["inference"], "POST", "/predictions/mlp", ROW).status == 200

    again = env.wick("--start", *env.addresses())
    assert again.returncode == 1 and "already running" in again.stderr

    stop = env.wick("--stop")
    assert stop.returncode == 0, stop.stderr
    assert "wick has stopped." in stop.stdout
    assert not alive(pid)
    assert not env.pid_file.exists()
    for port in env.ports.values():
        assert port_free(port)
    assert "received SIGTERM" in env.log_file.read_text()

    none = env.wick("--stop")
    assert none.returncode == 1 and "not currently running" in none.stderr


def test_start_failure_reports_the_reason(env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", env.ports["inference"]))
        busy.listen()
        r = env.wick("--start", *env.addresses())
    assert r.returncode == 1
    assert "cannot listen" in r.stderr and str(env.ports["inference"]) in r.stderr, r.stderr
    assert not env.pid_file.exists()


def test_start_with_a_bad_config_fails(env):
    cfg = env.dir / "config.properties"
    cfg.write_text("job_queue_size=lots\n")
    r = env.wick("--start", "--ts-config", cfg, *env.addresses())
    assert r.returncode == 1
    assert "job_queue_size" in r.stderr and "lots" in r.stderr
    assert not env.pid_file.exists()


def test_stale_pid_file_is_ignored(env):
    env.pid_file.write_text("999999\n")
    r = env.wick("--stop")
    assert r.returncode == 1 and "not currently running" in r.stderr
    assert not env.pid_file.exists()
    env.pid_file.write_text("999999\n")
    r = env.wick("--start", *env.addresses())
    assert r.returncode == 0, r.stderr
    assert env.pid() != 999999
    assert env.wick("--stop").returncode == 0


def test_envvars_override_command_line_when_enabled(env):
    env_port = free_port()
    tsenv = {"TS_INFERENCE_ADDRESS": f"http://127.0.0.1:{env_port}",
             "TS_DISABLE_TOKEN_AUTHORIZATION": "false"}
    # without enable_envvars_config the variables are ignored
    r = env.wick("--start", *env.addresses(), env=tsenv)
    assert r.returncode == 0, r.stderr
    assert request(env.ports["inference"], "GET", "/ping").status == 200
    assert not (env.dir / "key_file.json").exists()
    assert env.wick("--stop").returncode == 0

    cfg = env.dir / "config.properties"
    cfg.write_text("enable_envvars_config=true\n")
    r = env.wick("--start", "--ts-config", cfg, *env.addresses(), env=tsenv)
    assert r.returncode == 0, r.stderr
    assert request(env_port, "GET", "/ping").status == 200, "TS_ wins over the command line"
    assert port_free(env.ports["inference"])
    assert (env.dir / "key_file.json").exists()
    assert request(env.ports["management"], "GET", "/models").status == 401
    assert env.wick("--stop").returncode == 0
    assert not (env.dir / "key_file.json").exists()


def test_bad_envvar_value_fails(env):
    r = env.wick("--start", "--enable_envvars_config", "true", *env.addresses(),
                 env={"TS_JOB_QUEUE_SIZE": "-3"})
    assert r.returncode == 1
    assert "TS_JOB_QUEUE_SIZE" in r.stderr and "job_queue_size" in r.stderr


def test_ts_config_file_variable(env):
    cfg = env.dir / "ts.properties"
    port = free_port()
    cfg.write_text(f"inference_address=http://127.0.0.1:{port}\n")
    addrs = env.addresses()[2:]  # management and metrics only
    r = env.wick("--start", *addrs, env={"TS_CONFIG_FILE": str(cfg)})
    assert r.returncode == 0, r.stderr
    assert request(port, "GET", "/ping").status == 200
    assert env.wick("--stop").returncode == 0


def test_torchserve_flags(env, store):
    log_cfg = env.dir / "log4j2.xml"
    log_cfg.write_text("<Configuration/>\n")
    r = env.wick("--start", "--ncs", "--model-store", store, "--models", "mlp=mlp.mar",
                 "--log-config", log_cfg, "--enable-model-api", "--disable-token-auth",
                 *env.addresses())
    assert r.returncode == 0, r.stderr
    assert "--log-config" in r.stderr and "ignored" in r.stderr
    assert request(env.ports["inference"], "POST", "/predictions/mlp", ROW).status == 200
    assert env.wick("--stop").returncode == 0

    r = env.wick("--log-config", env.dir / "missing.xml", *env.addresses())
    assert r.returncode == 2 and "--log-config file not found" in r.stderr


def test_start_foreground_writes_pid_file(env):
    p = subprocess.Popen([WICK, "serve", "--start", "--foreground"] + env.addresses(),
                         cwd=env.dir, env=env.env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if request(env.ports["inference"], "GET", "/ping", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        assert env.pid() == p.pid
        stop = env.wick("--stop")
        assert stop.returncode == 0 and "wick has stopped." in stop.stdout
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
