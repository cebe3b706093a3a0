"""End-to-end: token authorization (TorchServe 0.11+'s key_file.json, Bearer keys, GET
/token) and HTTPS. Each server runs in its own directory, where it writes key_file.json."""
import http.client
import json
import os
import signal
import ssl
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SANITIZED, WICK, free_port, pack, request
from models import MLP, save_script

ROW = [[0.5] * 16]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("store")
    src = tmp_path_factory.mktemp("src")
    save_script(MLP, src / "mlp.pt")
    pack(d, "mlp", src / "mlp.pt")
    return d


def https_request(port, cafile, method, path, body=None, headers=None, timeout=30):
    ctx = ssl.create_default_context(cafile=str(cafile))
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ctx)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


class Wick:
    """`wick serve` started in directory cwd; inference may be https (then cafile trusts it)."""

    def __init__(self, cwd, *args, inference_host="127.0.0.1", scheme="http", cafile=None,
                 env=None, expect_failure=False):
        self.cwd = Path(cwd)
        self.ports = {k: free_port() for k in ("inference", "management", "metrics")}
        self.scheme, self.cafile = scheme, cafile
        cmd = [WICK, "serve",
               "--inference_address", f"{scheme}://{inference_host}:{self.ports['inference']}",
               "--management_address", f"http://127.0.0.1:{self.ports['management']}",
               "--metrics_address", f"http://127.0.0.1:{self.ports['metrics']}"]
        cmd += [str(a) for a in args]
        self.log_path = self.cwd / "wick.log"
        self.log = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=full_env)
        self.expect_failure = expect_failure
        if expect_failure:
            self.proc.wait(timeout=60)
            self.log.close()
            return
        deadline = time.time() + (120 if SANITIZED else 60)
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"wick exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if self.infer("GET", "/ping", timeout=2)[0] == 200:
                    return
            except (OSError, ssl.SSLError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("wick did not answer /ping in time:\n" + self.logs())

    def logs(self):
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def infer(self, method, path, body=None, headers=None, timeout=30):
        if self.scheme == "https":
            return https_request(self.ports["inference"], self.cafile, method, path, body, headers,
                                 timeout)
        r = request(self.ports["inference"], method, path, body, headers, timeout=timeout)
        return r.status, r.headers, r.body

    def mgmt(self, method, path, headers=None):
        r = request(self.ports["management"], method, path, None, headers)
        return r.status, r.headers, r.body

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode


@pytest.fixture
def wick(tmp_path):
    started = []

    def start(*args, **kw):
        d = tmp_path / f"run{len(started)}"
        d.mkdir()
        w = Wick(d, *args, **kw)
        started.append(w)
        return w

    yield start
    for w in started:
        rc = w.stop()
        if not w.expect_failure:
            assert rc == 0, f"wick exited with {rc}:\n{w.logs()[-4000:]}"


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def keys(w):
    return json.loads((w.cwd / "key_file.json").read_text())


def assert_denied(status, headers, body, compat=False):
    err = json.loads(body)
    assert err["type"] == "InvalidKeyException", err
    if compat:
        assert status == 400 and err["code"] == 400, (status, err)
        assert "WWW-Authenticate" not in headers
    else:
        assert status == 401 and err["code"] == 401, (status, err)
        assert headers["WWW-Authenticate"].startswith("Bearer"), headers
    return err["message"]


def test_token_off_by_default_on_loopback(wick, store):
    w = wick("--model-store", store, "--models", "mlp=mlp.mar")
    assert w.infer("POST", "/predictions/mlp", ROW)[0] == 200
    assert w.mgmt("GET", "/models")[0] == 200
    assert not (w.cwd / "key_file.json").exists()
    assert "token authorization is on" not in w.logs()


def test_forced_on_loopback(wick, store):
    w = wick("--model-store", store, "--models", "mlp=mlp.mar",
             "--disable_token_authorization", "false")
    kf = w.cwd / "key_file.json"
    assert stat.S_IMODE(kf.stat().st_mode) == 0o600
    k = keys(w)
    assert set(k) == {"management", "inference", "API"}
    assert set(k["management"]) == {"key", "expiration time"}
    assert set(k["inference"]) == {"key", "expiration time"}
    assert set(k["API"]) == {"key"}
    assert k["inference"]["expiration time"].endswith("Z")
    inf, mgmt = k["inference"]["key"], k["management"]["key"]
    assert len({inf, mgmt, k["API"]["key"]}) == 3

    # inference: the inference key only (TorchServe's management key does not work there)
    msg = assert_denied(*w.infer("POST", "/predictions/mlp", ROW))
    assert "Authorization" in msg
    assert_denied(*w.infer("POST", "/predictions/mlp", ROW, bearer("nope")))
    assert_denied(*w.infer("POST", "/predictions/mlp", ROW, bearer(mgmt)))
    assert_denied(*w.infer("POST", "/predictions/mlp", ROW, {"Authorization": inf}))
    status, _, body = w.infer("POST", "/predictions/mlp", ROW, bearer(inf))
    assert status == 200 and len(json.loads(body)[0]) == 4

    # management: the management key only
    assert_denied(*w.mgmt("GET", "/models"))
    assert_denied(*w.mgmt("GET", "/models", bearer(inf)))
    status, _, body = w.mgmt("GET", "/models", bearer(mgmt))
    assert status == 200 and json.loads(body)["models"][0]["modelName"] == "mlp"

    # Triton's repository API changes what is loaded: the management key, on the inference port
    assert_denied(*w.infer("POST", "/v2/repository/index", b"", bearer(inf)))
    status, _, body = w.infer("POST", "/v2/repository/index", b"", bearer(mgmt))
    assert status == 200 and json.loads(body)[0]["name"] == "mlp", body

    # health and metrics need no token
    assert w.infer("GET", "/ping")[0] == 200
    assert request(w.ports["metrics"], "GET", "/metrics").status == 200

    # keys never reach the log
    text = w.logs()
    assert "token authorization is on" in text
    for key in (inf, mgmt, k["API"]["key"]):
        assert key not in text

    assert w.stop() == 0
    assert not kf.exists(), "the key file is removed at shutdown"


def test_token_api_replaces_a_key(wick, store):
    w = wick("--model-store", store, "--models", "mlp=mlp.mar",
             "--disable_token_authorization", "false")
    k = keys(w)
    old_inf, api = k["inference"]["key"], k["API"]["key"]
    # /token needs the API key
    assert_denied(*w.mgmt("GET", "/token?type=inference"))
    assert_denied(*w.mgmt("GET", "/token?type=inference", bearer(k["management"]["key"])))
    status, _, body = w.mgmt("GET", "/token?type=bogus", bearer(api))
    assert status == 400, body
    status, _, body = w.mgmt("GET", "/token?type=inference", bearer(api))
    assert status == 200, body
    new_inf = json.loads(body)["inference"]["key"]
    assert new_inf != old_inf
    assert keys(w)["inference"]["key"] == new_inf
    assert keys(w)["management"] == k["management"], "only the asked-for key changes"
    assert stat.S_IMODE((w.cwd / "key_file.json").stat().st_mode) == 0o600
    assert_denied(*w.infer("POST", "/predictions/mlp", ROW, bearer(old_inf)))
    assert w.infer("POST", "/predictions/mlp", ROW, bearer(new_inf))[0] == 200

    status, _, body = w.mgmt("GET", "/token?type=management", bearer(api))
    assert status == 200
    new_mgmt = json.loads(body)["management"]["key"]
    assert_denied(*w.mgmt("GET", "/models", bearer(k["management"]["key"])))
    assert w.mgmt("GET", "/models", bearer(new_mgmt))[0] == 200
    assert new_mgmt not in w.logs() and new_inf not in w.logs()


def test_keys_expire(wick):
    # 0.05 minutes = 3 s; the API key never expires
    w = wick("--disable_token_authorization", "false", "--token_expiration_min", "0.05")
    api = keys(w)["API"]["key"]
    status, _, body = w.mgmt("GET", "/token?type=management", bearer(api))
    assert status == 200
    mgmt = json.loads(body)["management"]["key"]
    assert w.mgmt("GET", "/models", bearer(mgmt))[0] == 200
    time.sleep(3.5)
    msg = assert_denied(*w.mgmt("GET", "/models", bearer(mgmt)))
    assert "expired" in msg and "/token" in msg
    status, _, body = w.mgmt("GET", "/token?type=management", bearer(api))
    assert status == 200
    assert w.mgmt("GET", "/models", bearer(json.loads(body)["management"]["key"]))[0] == 200


def test_ts_compat_status_codes_gives_400(wick):
    w = wick("--disable_token_authorization", "false", "--ts_compat_status_codes", "true")
    assert_denied(*w.mgmt("GET", "/models"), compat=True)
    assert_denied(*w.infer("POST", "/predictions/mlp", ROW, bearer("x")), compat=True)
    assert w.mgmt("GET", "/models", bearer(keys(w)["management"]["key"]))[0] == 200


def test_binding_beyond_loopback_turns_token_on(wick):
    w = wick(inference_host="0.0.0.0")
    assert (w.cwd / "key_file.json").exists()
    assert_denied(*w.mgmt("GET", "/models"))
    assert w.infer("GET", "/ping")[0] == 200
    assert w.mgmt("GET", "/models", bearer(keys(w)["management"]["key"]))[0] == 200


@pytest.mark.parametrize("flag", [("--disable-token-auth",), ("--disable_token_authorization", "true")])
def test_token_can_be_turned_off_beyond_loopback(wick, flag):
    w = wick(*flag, inference_host="0.0.0.0")
    assert not (w.cwd / "key_file.json").exists()
    assert w.mgmt("GET", "/models")[0] == 200
    assert "token authorization is off" in w.logs()


def test_token_route_without_auth_is_not_found(wick):
    w = wick()
    assert w.mgmt("GET", "/token?type=inference")[0] == 404


# ---- HTTPS ----

@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"),
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return d / "cert.pem", d / "key.pem"


def test_https(wick, store, cert):
    cert_pem, key_pem = cert
    w = wick("--model-store", store, "--models", "mlp=mlp.mar",
             "--certificate_file", cert_pem, "--private_key_file", key_pem,
             scheme="https", cafile=cert_pem)
    status, _, body = w.infer("POST", "/predictions/mlp", ROW)
    assert status == 200 and len(json.loads(body)[0]) == 4
    # plain HTTP to the HTTPS port gets no HTTP answer
    with pytest.raises((http.client.HTTPException, OSError)):
        r = request(w.ports["inference"], "GET", "/ping", timeout=5)
        assert r.status != 200
    # the other APIs stay plain HTTP
    assert w.mgmt("GET", "/models")[0] == 200


def test_https_with_token(wick, cert):
    cert_pem, key_pem = cert
    w = wick("--certificate_file", cert_pem, "--private_key_file", key_pem,
             "--disable_token_authorization", "false", scheme="https", cafile=cert_pem)
    assert_denied(*w.infer("POST", "/predictions/x", ROW))
    status, _, _ = w.infer("POST", "/predictions/x", ROW, bearer(keys(w)["inference"]["key"]))
    assert status == 404  # past the token check: no such model


def test_https_needs_certificate(wick, tmp_path, cert):
    w = wick(scheme="https", expect_failure=True)
    assert w.proc.returncode == 1
    assert "certificate_file" in w.logs()

    w = wick("--certificate_file", tmp_path / "missing.pem", "--private_key_file", cert[1],
             scheme="https", expect_failure=True)
    assert w.proc.returncode == 1
    assert "certificate_file" in w.logs() and "missing.pem" in w.logs()

    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    w = wick("--certificate_file", bad, "--private_key_file", cert[1], scheme="https",
             expect_failure=True)
    assert w.proc.returncode == 1
    assert "with TLS" in w.logs(), w.logs()
