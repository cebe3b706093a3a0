"""End-to-end: `wick top` ([13] part 4), the server's GET /status.json as a table in the
terminal. --once prints one frame (what scripts read); the live view runs in a real
terminal, tmux's, where the test reads the screen, types q and Ctrl-C, and checks that the
terminal's settings come back as they were."""
import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import uuid

import pytest

from conftest import WICK, free_port, pack
from models import MLP, save_script

ROW = json.dumps([[0.5] * 16])
EVIL_NAME = "x\x1b[1;1HOWNED"  # unstripped, it would write OWNED over the header's start
EVIL_FILE = "\x1b[2Jjunk.mar"  # unstripped, it would clear the screen


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("store")
    src = tmp_path_factory.mktemp("src")
    save_script(MLP, src / "mlp.pt")
    pack(d, "mlp", src / "mlp.pt")
    (d / EVIL_FILE).write_bytes(b"this is not a model archive")
    return d


def top_once(address, *args, env=None):
    full = {k: v for k, v in os.environ.items() if k not in ("WICK_MANAGEMENT_KEY", "TS_CONFIG_FILE")}
    full["COLUMNS"] = "160"
    full.update(env or {})
    cmd = [WICK, "top", "--once"] + (["--management-address", address] if address else [])
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True,
                          timeout=60, env=full)


def mgmt_url(s):
    return f"http://127.0.0.1:{s.ports['management']}"


def fields_of(screen, name, version=None):
    """The whitespace-separated fields of the table row of that model (version), or None."""
    for line in screen.splitlines():
        f = line.split()
        if f and f[0] == name and (version is None or (len(f) > 1 and f[1] == version)):
            return f
    return None


def shown(v):
    """A latency as wick top prints it."""
    return "-" if v is None else "%.2f" % v if v < 10 else "%.1f" % v if v < 1000 else "%.0f" % v


def model_of(st, name):
    [m] = [m for m in st["models"] if m["name"] == name]
    return m


class Tmux:
    """tmux on a socket of its own (the test's sessions only); kill() ends them all."""

    def __init__(self):
        self.socket = f"wick-top-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def tmux(self, *args, check=True):
        return subprocess.run(["tmux", "-L", self.socket] + [str(a) for a in args],
                              capture_output=True, text=True, timeout=30, check=check)

    def start(self, name, top_args, width=140, height=40, env=None):
        """Runs wick top in a shell that then says whether the terminal's settings are
        what they were (TTY-RESTORED) and how top exited (TOP-EXIT=n), and stays."""
        exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in (env or {}).items())
        cmd = " ".join(shlex.quote(str(a)) for a in [WICK, "top"] + list(top_args))
        script = (f"unset WICK_MANAGEMENT_KEY TS_CONFIG_FILE; {exports}"
                  "trap 'echo INT-SEEN' INT; before=$(stty -g); "
                  f"{cmd}; rc=$?; after=$(stty -g); "
                  'if [ "$before" = "$after" ]; then echo TTY-RESTORED; fi; '
                  "echo TOP-EXIT=$rc; sleep 600")
        self.tmux("new-session", "-d", "-s", name, "-x", width, "-y", height,
                  "bash --norc -c " + shlex.quote(script))

    def screen(self, name):
        return self.tmux("capture-pane", "-p", "-t", name).stdout

    def keys(self, name, *keys):
        self.tmux("send-keys", "-t", name, *keys)

    def shell_pid(self, name):
        return int(self.tmux("display-message", "-p", "-t", name, "#{pane_pid}").stdout.strip())

    def wait(self, name, pred, timeout=30, what="the screen"):
        deadline = time.time() + timeout
        text = ""
        while time.time() < deadline:
            text = self.screen(name)
            if pred(text):
                return text
            time.sleep(0.1)
        raise AssertionError(f"{what} did not appear in time; the screen:\n{text}")

    def kill(self):
        self.tmux("kill-server", check=False)
        folder = os.path.join(os.environ.get("TMUX_TMPDIR", "/tmp"), f"tmux-{os.getuid()}")
        try:
            os.unlink(os.path.join(folder, self.socket))
        except OSError:
            pass  # tmux removed it


@pytest.fixture
def tmux():
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (scripts/install-deps.sh installs it)")
    t = Tmux()
    yield t
    t.kill()


def child_pids(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


def top_pid(tmux, name):
    """The wick top process under the session's shell."""
    deadline = time.time() + 10
    while time.time() < deadline:
        kids = [p for p in child_pids(tmux.shell_pid(name))
                if os.path.basename(os.readlink(f"/proc/{p}/exe")) == os.path.basename(WICK)]
        if kids:
            return kids[0]
        time.sleep(0.05)
    raise AssertionError("no wick top process under the tmux shell")


# ---- --once ----

@pytest.mark.badinput
def test_once_prints_each_version_with_its_figures(serve, store):
    s = serve("--model-store", store, "--models", "mlp=mlp.mar", "--default_workers_per_model", "2",
              "--status_interval_ms", "600000")
    for _ in range(20):
        assert s.infer("POST", "/predictions/mlp", ROW).status == 200
    assert s.infer("POST", "/predictions/mlp", json.dumps([[1.0, 2.0]])).status == 400
    time.sleep(1.1)  # the sample in progress has run a second: it is the one shown
    cur = model_of(s.mgmt("GET", "/status.json").json(), "mlp")["current"]
    assert cur["requests"] == 21, cur
    r = top_once(mgmt_url(s))
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout  # --once writes no escape sequence
    lines = r.stdout.splitlines()
    assert all(len(line) <= 160 for line in lines)
    assert f"pid {s.proc.pid}" in r.stdout and "wick 0.1.0" in r.stdout
    assert "  healthy  ready  registering 0" in r.stdout, r.stdout
    assert fields_of(r.stdout, "NAME") == ["NAME", "VERSION", "RUNTIME", "DEVICE", "STATE", "WORKERS",
                                           "QUEUE", "RPS", "P50", "ms", "P99", "ms", "BATCH", "4XX",
                                           "5XX"]
    f = fields_of(r.stdout, "mlp")
    assert f[:7] == ["mlp", "1.0*", "native", "cpu", "ready", "2/2", "0/100"], f
    # no answer since cur was read: the latencies are the same; the rate only falls
    assert (f[8], f[9], f[10], f[11], f[12]) == (shown(cur["p50_ms"]), shown(cur["p99_ms"]), "1.0",
                                                 "1", "0"), (f, cur)
    assert 0 < float(f[7]) <= cur["rps"], (f, cur)
    i = lines.index("RECENT ERRORS, newest first (1)")
    assert " 400   mlp 1.0  " in lines[i + 1] and "[1,2]" in lines[i + 1], lines[i + 1]


def test_once_reports_a_server_it_cannot_read(serve, store, tmp_path):
    r = top_once(f"http://127.0.0.1:{free_port()}")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("wick top: cannot read http://127.0.0.1:"), r.stderr
    # the inference port has no /status.json
    s = serve("--model-store", store, "--models", "mlp=mlp.mar")
    r = top_once(f"http://127.0.0.1:{s.ports['inference']}")
    assert r.returncode == 1 and "404" in r.stderr and "management address" in r.stderr, r.stderr
    # usage
    for bad in (["--interval", "0"], ["--bogus"], ["--key"], ["--key", "a", "--key-file", "b"],
                ["--management-address", "ftp://x:1"],
                ["--interval", "1"]):  # the live view on a pipe: not a terminal
        r = subprocess.run([WICK, "top"] + bad, capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and r.stderr.startswith("wick top: "), (bad, r.stderr)
    r = subprocess.run([WICK, "top", "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "--management-address" in r.stdout
    assert "top " in subprocess.run([WICK, "--help"], capture_output=True, text=True).stdout


def test_once_reads_the_address_from_the_config_file(serve, store, tmp_path):
    s = serve("--model-store", store, "--models", "mlp=mlp.mar")
    cfg = tmp_path / "config.properties"
    cfg.write_text(f"management_address=http://127.0.0.1:{s.ports['management']}\n")
    r = top_once(None, "--ts-config", cfg)
    assert r.returncode == 0 and fields_of(r.stdout, "mlp") is not None, r.stderr
    r = top_once(None, env={"TS_CONFIG_FILE": str(cfg)})
    assert r.returncode == 0 and fields_of(r.stdout, "mlp") is not None, r.stderr
    # the flag wins over the file
    r = top_once(f"http://127.0.0.1:{free_port()}", "--ts-config", cfg)
    assert r.returncode == 1 and "cannot read" in r.stderr


def test_once_over_https(serve, store, tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem"),
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    serve("--model-store", store, "--models", "mlp=mlp.mar",
          "--management_address", f"https://127.0.0.1:{port}",
          "--certificate_file", tmp_path / "cert.pem", "--private_key_file", tmp_path / "key.pem")
    r = top_once(f"https://127.0.0.1:{port}", "--cacert", tmp_path / "cert.pem")
    assert r.returncode == 0 and fields_of(r.stdout, "mlp") is not None, r.stderr
    # a certificate nobody vouches for is refused
    r = top_once(f"https://127.0.0.1:{port}")
    assert r.returncode == 1 and "certificate" in r.stderr, r.stderr


@pytest.mark.badinput
def test_escape_sequences_in_names_and_errors_are_not_written(serve, store, tmux):
    s = serve("--model-store", store, "--models", "mlp=mlp.mar", "--enable_model_api", "true")
    q = urllib.parse.quote(EVIL_NAME, safe="")
    r = s.mgmt("POST", f"/models?url=mlp.mar&model_name={q}&initial_workers=1")
    assert r.status == 200, r  # wick takes any name without '/'
    r = s.mgmt("POST", "/models?url=" + urllib.parse.quote(EVIL_FILE, safe=""))
    assert r.status == 400, r
    st = s.mgmt("GET", "/status.json").json()
    assert EVIL_NAME in [m["name"] for m in st["models"]]
    assert st["recent_errors"][0]["model"] == EVIL_FILE, st["recent_errors"][0]
    r = top_once(mgmt_url(s))
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout
    assert fields_of(r.stdout, "x?[1;1HOWNED", "1.0*") is not None, r.stdout
    assert "?[2Jjunk.mar" in r.stdout, r.stdout
    # a name in another alphabet: shown in a UTF-8 locale, '?' for each letter elsewhere
    q = urllib.parse.quote("mod\u00e8le-\u03b1\u4e2d", safe="")
    assert s.mgmt("POST", f"/models?url=mlp.mar&model_name={q}").status == 200
    r = top_once(mgmt_url(s), env={"LC_ALL": "C.UTF-8"})
    assert fields_of(r.stdout, "mod\u00e8le-\u03b1?") is not None, r.stdout  # 中 is two columns
    r = top_once(mgmt_url(s), env={"LC_ALL": "C"})
    assert fields_of(r.stdout, "mod?le-??") is not None, r.stdout
    # on a terminal: the header stays where it is, the row shows the name's text
    tmux.start("evil", ["--management-address", mgmt_url(s)])
    screen = tmux.wait("evil", lambda t: "x?[1;1HOWNED" in t and "?[2Jjunk.mar" in t)
    first = screen.splitlines()[0]
    assert "wick 0.1.0" in first and not first.startswith("OWNED"), screen
    assert fields_of(screen, "mlp") is not None, screen  # not cleared by ESC[2J
    tmux.keys("evil", "q")
    tmux.wait("evil", lambda t: "TOP-EXIT=0" in t)


# ---- the live view, in tmux ----

def test_live_view_refreshes_and_q_restores_the_terminal(serve, store, tmux):
    s = serve("--model-store", store, "--models", "mlp=mlp.mar", "--status_interval_ms", "1000",
              "--default_workers_per_model", "1")
    tmux.start("live", ["--management-address", mgmt_url(s), "--interval", "0.3"])
    screen = tmux.wait("live", lambda t: fields_of(t, "mlp") is not None)
    lines = screen.splitlines()
    assert len(lines) <= 40 and all(len(line) <= 140 for line in lines)
    assert fields_of(screen, "NAME")[:5] == ["NAME", "VERSION", "RUNTIME", "DEVICE", "STATE"]
    f = fields_of(screen, "mlp")
    assert f[:7] == ["mlp", "1.0*", "native", "cpu", "ready", "1/1", "0/100"], f
    assert (f[7], f[8]) == ("0.00", "-"), f  # no traffic yet
    assert "q quit" in lines[-1], lines[-1]  # the footer on the bottom line

    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            s.infer("POST", "/predictions/mlp", ROW)
            time.sleep(0.01)

    t = threading.Thread(target=traffic)
    t.start()
    try:
        screen = tmux.wait("live", lambda t: (lambda f: f is not None and f[7] != "0.00" and f[8] != "-")(
            fields_of(t, "mlp")), what="a rate and a median for mlp")
    finally:
        stop.set()
        t.join()
    f = fields_of(screen, "mlp")
    assert float(f[7]) > 0 and float(f[8]) > 0 and float(f[9]) >= float(f[8]) and f[10] == "1.0", f

    tmux.keys("live", "q")
    screen = tmux.wait("live", lambda t: "TOP-EXIT=0" in t, what="wick top's exit")
    assert "TTY-RESTORED" in screen, screen
    assert fields_of(screen, "mlp") is None and "NAME" not in screen, screen  # the screen is back


def test_ctrl_c_and_sigterm_restore_the_terminal(serve, store, tmux):
    s = serve("--model-store", store, "--models", "mlp=mlp.mar")
    tmux.start("intr", ["--management-address", mgmt_url(s)])
    tmux.wait("intr", lambda t: fields_of(t, "mlp") is not None)
    tmux.keys("intr", "C-c")
    screen = tmux.wait("intr", lambda t: "TOP-EXIT=" in t, what="wick top's exit")
    assert "TOP-EXIT=0" in screen and "TTY-RESTORED" in screen, screen

    tmux.start("term", ["--management-address", mgmt_url(s)])
    tmux.wait("term", lambda t: fields_of(t, "mlp") is not None)
    os.kill(top_pid(tmux, "term"), signal.SIGTERM)
    screen = tmux.wait("term", lambda t: "TOP-EXIT=" in t, what="wick top's exit")
    assert f"TOP-EXIT={128 + signal.SIGTERM}" in screen and "TTY-RESTORED" in screen, screen


def test_live_view_retries_until_the_server_answers(serve, store, tmux):
    port = free_port()
    tmux.start("retry", ["--management-address", f"http://127.0.0.1:{port}", "--interval", "0.3"],
               width=100, height=20)
    screen = tmux.wait("retry", lambda t: "cannot read" in t)
    assert f"http://127.0.0.1:{port}" in screen and "trying again every 0.3s" in screen, screen
    serve("--model-store", store, "--models", "mlp=mlp.mar",
          "--management_address", f"http://127.0.0.1:{port}")
    screen = tmux.wait("retry", lambda t: fields_of(t, "mlp") is not None)
    assert "cannot read" not in screen
    assert all(len(line) <= 100 for line in screen.splitlines())
    tmux.keys("retry", "q")
    assert "TTY-RESTORED" in tmux.wait("retry", lambda t: "TOP-EXIT=0" in t)


def test_management_key(serve, store, tmp_path, tmux):
    s = serve("--model-store", store, "--models", "mlp=mlp.mar",
              "--disable_token_authorization", "false", cwd=tmp_path)
    key_file = tmp_path / "key_file.json"
    key = json.loads(key_file.read_text())["management"]["key"]
    r = top_once(mgmt_url(s))
    assert r.returncode == 1 and "401" in r.stderr and "management key is needed" in r.stderr, r.stderr
    assert "--key-file" in r.stderr
    r = top_once(mgmt_url(s), "--key-file", key_file)
    assert r.returncode == 0 and fields_of(r.stdout, "mlp") is not None, r.stderr
    assert "tokens on" in r.stdout
    r = top_once(mgmt_url(s), env={"WICK_MANAGEMENT_KEY": key})
    assert r.returncode == 0 and fields_of(r.stdout, "mlp") is not None, r.stderr
    r = top_once(mgmt_url(s), "--key", key)
    assert r.returncode == 0, r.stderr
    inference_key = json.loads(key_file.read_text())["inference"]["key"]
    r = top_once(mgmt_url(s), "--key", inference_key)
    assert r.returncode == 1 and "401" in r.stderr and "refused" in r.stderr, r.stderr
    r = top_once(mgmt_url(s), "--key-file", tmp_path / "missing.json")
    assert r.returncode == 1 and "missing.json" in r.stderr, r.stderr

    tmux.start("key", ["--management-address", mgmt_url(s), "--key-file", key_file])
    tmux.wait("key", lambda t: fields_of(t, "mlp") is not None)
    tmux.start("nokey", ["--management-address", mgmt_url(s)], width=100, height=20)
    screen = tmux.wait("nokey", lambda t: "401" in t)
    assert "management key is needed" in " ".join(screen.split()), screen
    for name in ("key", "nokey"):
        tmux.keys(name, "q")
        assert "TTY-RESTORED" in tmux.wait(name, lambda t: "TOP-EXIT=0" in t)
