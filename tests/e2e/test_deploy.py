"""Deployment files that cannot run here (no docker, no Kubernetes, no systemd as PID 1):
checks what can be checked. The KServe manifests parse and have the fields KServe needs;
the ServingRuntime's arguments, the Dockerfile's CMD and the systemd unit's ExecStart are
flags `wick serve` accepts, and a real server started with them (addresses moved to free
loopback ports) answers the probes they name; the Dockerfile installs with the install
script, not an apt list of its own."""
import configparser
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, WICK, pack, run_wick
from models import MLP, save_script

DEPLOY = ROOT / "deploy"
ADDRESS_KEYS = ("--inference_address", "--management_address", "--metrics_address")


@pytest.fixture(scope="module")
def help_text():
    return run_wick("serve", "--help").stdout


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("model-store")
    src = tmp_path_factory.mktemp("src")
    save_script(MLP, src / "mlp.pt")
    pack(d, "mlp", src / "mlp.pt")
    return d


def flags(args):
    return [a.split("=", 1)[0] for a in args if a.startswith("--")]


def check_flags(args, help_text):
    """Every flag is one `wick serve --help` names (a config key given as --KEY counts when
    the help names it, as it does the three addresses)."""
    for flag in flags(args):
        assert re.search(r"(^|[\s\[,])" + re.escape(flag) + r"\b", help_text), \
            f"{flag} is not in wick serve --help"


def run_with(serve, args):
    """Starts wick with args (conftest's Server adds its own address flags first; the later
    ones here win, so they are removed)."""
    stripped, i = [], 0
    while i < len(args):
        if args[i] in ADDRESS_KEYS:
            i += 2
            continue
        stripped.append(args[i])
        i += 1
    return serve(*stripped)


# ---- KServe ----

def load_all(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def test_serving_runtime_has_what_kserve_needs(help_text):
    (rt,) = load_all(DEPLOY / "kserve" / "servingruntime.yaml")
    assert rt["apiVersion"] == "serving.kserve.io/v1alpha1" and rt["kind"] == "ServingRuntime"
    assert rt["metadata"]["name"]
    spec = rt["spec"]
    formats = spec["supportedModelFormats"]
    assert formats and all(f["name"] for f in formats)
    assert set(spec["protocolVersions"]) == {"v1", "v2"}
    c = spec["containers"][0]
    assert c["name"] == "kserve-container" and c["image"]
    assert c["args"] and all(isinstance(a, str) for a in c["args"])
    check_flags(c["args"], help_text)
    ports = [p["containerPort"] for p in c["ports"]]
    assert ports == [8080], ports  # KServe routes to the first port; 8080 is its http port
    assert c["args"][c["args"].index("--inference_address") + 1].endswith(":8080")
    for probe, path in (("readinessProbe", "/v2/health/ready"), ("livenessProbe", "/v2/health/live"),
                        ("startupProbe", "/v2/health/live")):
        assert c[probe]["httpGet"] == {"path": path, "port": 8080}, c[probe]
    # the startup probe waits for the models' loads (wick listens after them): minutes
    start = c["startupProbe"]
    assert start["periodSeconds"] * start["failureThreshold"] >= 300, start
    # The model store is the storage initializer's mount.
    assert c["args"][c["args"].index("--model-store") + 1].startswith("/mnt/models")


def test_inference_service_names_the_runtime_and_a_pvc():
    docs = load_all(DEPLOY / "kserve" / "inferenceservice.yaml")
    isvc = next(d for d in docs if d["kind"] == "InferenceService")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    model = isvc["spec"]["predictor"]["model"]
    (rt,) = load_all(DEPLOY / "kserve" / "servingruntime.yaml")
    assert model["runtime"] == rt["metadata"]["name"]
    assert model["modelFormat"]["name"] in {f["name"] for f in rt["spec"]["supportedModelFormats"]}
    assert model["protocolVersion"] in rt["spec"]["protocolVersions"]
    uri = model["storageUri"]
    assert uri.startswith("pvc://"), uri
    claim = uri[len("pvc://"):].split("/")[0]
    pvc = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    assert pvc["apiVersion"] == "v1" and pvc["metadata"]["name"] == claim


def test_serving_runtime_args_serve_and_answer_the_probes(serve, store, tmp_path):
    """The runtime's arguments, with KServe's /mnt/models replaced by a local folder that
    has the same layout, start a server whose probe routes answer 200."""
    (rt,) = load_all(DEPLOY / "kserve" / "servingruntime.yaml")
    c = rt["spec"]["containers"][0]
    mnt = tmp_path / "mnt-models"
    (mnt / "model-store").mkdir(parents=True)
    (mnt / "model-store" / "mlp.mar").write_bytes((store / "mlp.mar").read_bytes())
    args = [a.replace("/mnt/models", str(mnt)) for a in c["args"]]
    s = run_with(serve, args)
    for probe in ("readinessProbe", "livenessProbe"):
        r = s.infer("GET", c[probe]["httpGet"]["path"])
        assert r.status == 200, (probe, r)
    assert s.infer("GET", "/v1/models").json() == {"models": ["mlp"]}
    r = s.infer("POST", "/v1/models/mlp:predict", {"instances": [[0.0] * 16]})
    assert r.status == 200, r
    # a model of the store that fails to load: the pod is live but not ready ([13] part 3)
    (mnt / "model-store" / "broken.mar").write_bytes(b"not an archive")
    s2 = run_with(serve, args)
    assert s2.infer("GET", c["livenessProbe"]["httpGet"]["path"]).status == 200
    r = s2.infer("GET", c["readinessProbe"]["httpGet"]["path"])
    assert r.status == 400 and r.json() == {"ready": False}, r
    assert s2.infer("POST", "/v1/models/mlp:predict", {"instances": [[0.0] * 16]}).status == 200


# ---- Dockerfile ----

def dockerfile_instructions():
    """(INSTRUCTION, argument text) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines, cur = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not cur and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        lines.append(cur)
        cur = ""
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_uses_the_install_script(help_text):
    ins = dockerfile_instructions()
    assert ins[0] == ("FROM", "debian:bookworm")
    runs = [arg for word, arg in ins if word == "RUN"]
    assert any(re.search(r"\binstall-deps\.sh --serve\b", r) for r in runs), runs
    for r in runs:
        assert not re.search(r"apt(-get)?\s+install", r), f"an apt list of its own: {r}"
    copies = [arg for word, arg in ins if word == "COPY"]
    assert any(c.startswith("scripts/install-deps.sh ") for c in copies), copies
    # The script knows --serve and its package list is part of the full one.
    script = (ROOT / "scripts" / "install-deps.sh").read_text()
    assert "--serve)" in script
    users = [arg for word, arg in ins if word == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    assert json.loads(dict(ins)["ENTRYPOINT"]) == ["wick", "serve"]
    assert "/ping" in dict(ins)["HEALTHCHECK"]
    assert "8080" in dict(ins)["EXPOSE"].split()
    volumes = json.loads(dict(ins)["VOLUME"])
    cmd = json.loads(dict(ins)["CMD"])
    check_flags(cmd, help_text)
    assert cmd[cmd.index("--model-store") + 1] in volumes


def test_dockerfile_cmd_serves_a_model_store(serve, store):
    cmd = json.loads(dict(dockerfile_instructions())["CMD"])
    args = [str(store) if a == "/models" else a for a in cmd]
    s = run_with(serve, args)
    assert s.infer("GET", "/ping").json() == {"status": "Healthy"}
    assert s.infer("GET", "/v1/models").json() == {"models": ["mlp"]}


# ---- systemd ----

def unit():
    p = configparser.ConfigParser(strict=True, interpolation=None, delimiters=("=",))
    p.optionxform = str  # systemd keys are case-sensitive
    p.read_string((DEPLOY / "systemd" / "wick.service").read_text())
    return p


def test_systemd_unit_is_hardened_and_its_flags_exist(help_text):
    u = unit()
    assert set(u.sections()) == {"Unit", "Service", "Install"}
    svc = u["Service"]
    argv = shlex.split(svc["ExecStart"])
    assert argv[0].startswith("/") and argv[0].endswith("/wick") and argv[1] == "serve"
    check_flags(argv[2:], help_text)
    assert "--ts-config" in argv
    assert svc.get("DynamicUser") == "yes" or svc.get("User") not in (None, "root")
    assert svc["ProtectSystem"] == "strict"
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "ProtectKernelTunables",
                "ProtectControlGroups"):
        assert svc[key] == "yes", key
    assert svc["WorkingDirectory"].startswith("/var/lib/wick")  # key_file.json is written there
    assert "AF_UNIX" in svc["RestrictAddressFamilies"]  # the Python workers' socketpair
    assert u["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_exec_start_serves(serve, store):
    argv = shlex.split(unit()["Service"]["ExecStart"])
    cfg = DEPLOY / "systemd" / "config.properties"
    args = [str(cfg) if a == "/etc/wick/config.properties" else
            str(store) if a == "/var/lib/wick/model_store" else a for a in argv[2:]]
    s = run_with(serve, args)
    assert s.infer("GET", "/v1/models").json() == {"models": ["mlp"]}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_has_no_complaint(tmp_path):
    """systemd's own parser: unknown keys and bad values are warnings, so any output fails.
    The binary's path is moved to the build's (verify checks that it is executable)."""
    text = (DEPLOY / "systemd" / "wick.service").read_text()
    argv0 = shlex.split(unit()["Service"]["ExecStart"])[0]
    (tmp_path / "wick.service").write_text(text.replace(argv0, str(Path(WICK).resolve())))
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "wick.service")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", r
