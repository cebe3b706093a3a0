"""[11] parts 3, 4 and 7, the ways in the audit found: every path an archive names stays
inside the unpacked archive (no "..", no absolute path, no link out of a model folder) and
no error quotes a file from outside; an archive that names one file twice is refused by
both the server and `wick inspect`; Python workers import nothing from the server's
working directory."""
import io
import json
import os
import tarfile
import zipfile

import pytest
import torch

from conftest import DEMO_DIR, run_wick
from models import MLP, save_script

pytestmark = pytest.mark.badinput

MANIFEST = "MAR-INF/MANIFEST.json"


def manifest(**model):
    m = {"modelName": "m", "modelVersion": "1.0", "handler": "tensor", **model}
    return json.dumps({"runtime": "python", "model": m, "archiverVersion": "0.12.0"})


def write_zip(path, entries):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries:
            z.writestr(name, data)


@pytest.fixture
def store(tmp_path):
    d = tmp_path / "store"
    d.mkdir()
    save_script(MLP, tmp_path / "mlp.pt")
    return d


def register(s, url):
    return s.mgmt("POST", f"/models?url={url}&initial_workers=1&synchronous=true")


def test_manifest_paths_stay_inside_the_archive(serve, store, tmp_path):
    pt = (tmp_path / "mlp.pt").read_bytes()
    # how many ".." lead from the unpacked archive (/tmp/wick-PID-model-XXXX) to the root
    up = "../" * 12
    outside = str(DEMO_DIR / "fashion.pt").lstrip("/")
    cases = {
        "config": [(MANIFEST, manifest(serializedFile="m.pt", configFile=up + "etc/passwd")), ("m.pt", pt)],
        "serialized": [(MANIFEST, manifest(serializedFile=up + outside))],
        "absolute": [(MANIFEST, manifest(serializedFile="/" + outside))],
        "handler": [(MANIFEST, manifest(serializedFile="m.pt", handler="../../evilhandler.py")), ("m.pt", pt)],
        "model_file": [(MANIFEST, manifest(serializedFile="m.pt", modelFile="../model.py")), ("m.pt", pt)],
        "extra": [(MANIFEST, manifest(serializedFile="m.pt", extraFiles="ok.txt,../../x.txt")),
                  ("m.pt", pt), ("ok.txt", "x")],
        "requirements": [(MANIFEST, manifest(serializedFile="m.pt", requirementsFile="a/../../r.txt")),
                         ("m.pt", pt)],
    }
    for name, entries in cases.items():
        write_zip(store / f"{name}.mar", entries)
    s = serve("--model-store", store, "--enable-model-api")
    for name in cases:
        r = register(s, f"{name}.mar")
        assert r.status == 400, (name, r)
        msg = r.json()["message"]
        assert "leaves the model directory" in msg, (name, msg)
        assert "root:" not in msg, (name, msg)  # nothing of /etc/passwd comes back
        assert s.mgmt("GET", "/models/m").status == 404, name
    # wick: keys too
    cfg = "wick:\n  weights:\n    file: ../../../../w.pt\n"
    write_zip(store / "wk.mar", [(MANIFEST, manifest(serializedFile="m.pt", configFile="c.yaml")),
                                  ("m.pt", pt), ("c.yaml", cfg)])
    r = register(s, "wk.mar")
    assert r.status == 400 and "wick.weights.file" in r.json()["message"], r
    # and the honest archive still registers
    write_zip(store / "fine.mar", [(MANIFEST, manifest(serializedFile="m.pt")), ("m.pt", pt)])
    assert register(s, "fine.mar").status == 200


def test_a_link_out_of_a_model_folder_is_refused(serve, store, tmp_path):
    d = store / "linked"
    d.mkdir()
    (d / "MAR-INF").mkdir()
    (d / "MAR-INF" / "MANIFEST.json").write_text(manifest(serializedFile="m.pt"))
    os.symlink(DEMO_DIR / "fashion.pt", d / "m.pt")
    s = serve("--model-store", store, "--enable-model-api")
    r = register(s, "linked")
    assert r.status == 400 and "leads out of the model directory" in r.json()["message"], r


def test_an_archive_that_names_a_file_twice_is_refused(serve, store, tmp_path):
    pt = (tmp_path / "mlp.pt").read_bytes()
    evil = "def handle(data, context):\n    return ['hidden']\n"
    entries = [(MANIFEST, manifest(serializedFile="m.pt")), ("m.pt", pt), ("evil.py", evil),
               (MANIFEST, manifest(serializedFile="m.pt", handler="evil.py"))]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        write_zip(store / "two.mar", entries)
        # the same name spelled differently ("./") is the same file
        write_zip(store / "dot.mar", [(MANIFEST, manifest(serializedFile="m.pt")), ("m.pt", pt),
                                      ("./m.pt", b"other")])
    with tarfile.open(store / "two.tar.gz", "w:gz") as t:
        for name, data in entries:
            data = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    for name in ("two.mar", "dot.mar", "two.tar.gz"):
        r = run_wick("inspect", store / name, check=False)
        assert r.returncode != 0 and "twice" in r.stderr, (name, r.stdout, r.stderr)
    s = serve("--model-store", store, "--enable-model-api")
    for name in ("two.mar", "dot.mar", "two.tar.gz"):
        r = register(s, name)
        assert r.status == 400 and "twice" in r.json()["message"], (name, r)
    assert s.infer("POST", "/predictions/m", "[[0.5]]").status == 404


def test_python_workers_import_nothing_from_the_servers_directory(serve, store, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    marker = tmp_path / "pwned"
    for mod in ("evilhandler2", "json_helpers"):
        (cwd / f"{mod}.py").write_text(f"open({str(marker)!r}, 'w').write('{mod}')\n"
                                       "def handle(data, context):\n    return ['pwned']\n")
    # a handler module that imports a name the server's folder also has
    (tmp_path / "h.py").write_text("import os, sys\n"
                                   "def handle(data, context):\n"
                                   "    if data is None:\n        return None\n"
                                   "    try:\n        import json_helpers\n        found = True\n"
                                   "    except ImportError:\n        found = False\n"
                                   "    return [{'found': found, 'cwd': os.getcwd()}]\n")
    (tmp_path / "dummy.txt").write_text("x")
    run_wick("pack", "--model-name", "h", "--version", "1.0", "--serialized-file", tmp_path / "dummy.txt",
             "--handler", tmp_path / "h.py", "--export-path", store, "-f")
    s = serve("--model-store", store, "--enable-model-api", cwd=cwd)
    r = s.mgmt("POST", "/models?url=h.mar&model_name=evil&handler=evilhandler2&initial_workers=1"
                       "&synchronous=true")
    assert r.status >= 400, r
    assert not marker.exists(), marker.read_text()
    r = s.mgmt("POST", "/models?url=h.mar&handler=../../evilhandler.py&model_name=evil2")
    assert r.status == 400 and "leaves the model directory" in r.json()["message"], r
    assert register(s, "h.mar").status == 200
    r = s.infer("POST", "/predictions/h", "{}")
    assert r.status == 200 and r.json()["found"] is False, r
    assert r.json()["cwd"] != str(cwd), r
    assert not marker.exists()
