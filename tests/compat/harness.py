#!/usr/bin/env python3
"""The differential harness: the request sequences of tests/compat/sequences.py run
against TorchServe and against wick, started with the same config.properties and the same
archives, and their answers compared.

    harness.py record --ts-venv build/ts-venv OUT.json    a live TorchServe's answers
    harness.py compare --wick build/wick REC.json         wick's against a recording
                       [--results tests/compat/RESULTS.md]

What is compared per request: the status; for JSON errors the `code` and `type`; the
JSON shape (keys and value types, recursively; not values; keys only wick has are
allowed); for metrics the metric names and each one's label names (not values: hostnames
differ), and for a `name[]`-filtered scrape that wick sends no other family; the headers
clients read (Content-Type's media type).
Differences listed in tests/compat/allowlist.txt (one `GLOB FIELD[~TEXT]: why` per line: a
glob over `sequence/step`, the field that differs or `*`) are reported as deliberate, or,
when the why starts with GAP, as known gaps not fixed yet; any other difference makes
`compare` exit 1.

Archives: built here, by TorchServe's own torch-model-archiver for both servers (the same
files), from a TorchScript MLP, the handler in bench/handlers/ and tests/compat/handlers/. Nothing
is downloaded. With --ts-snapshot (a snapshot of TorchServe's repository: a checkout or a
bare git folder, fetched beforehand), TorchServe's own test archives
(frontend/archive/src/test/resources/models/*.mar) are copied into the store at run time
and the sequences that need them run too; without it those sequences are skipped, and
their recorded answers with them.
"""
import argparse
import fnmatch
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from sequences import SEQUENCES  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from serving_tools import stop_group  # noqa: E402

CONFIG = """disable_token_authorization=true
enable_model_api=true
metrics_mode=prometheus
default_workers_per_model=1
install_py_dep_per_model=false
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shape(v):
    """The JSON value's shape: types and keys, not values."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in sorted(v.items())}
    if isinstance(v, list):
        # a list's shape is its first element's (lists of models, workers, rows)
        return [shape(v[0])] if v else []
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if v is None:
        return "null"
    return "string"


def observe(status, headers, body, kind):
    """What the harness compares of one answer."""
    ctype = (headers.get("content-type") or "").split(";")[0].strip().lower()
    out = {"status": status, "content_type": ctype}
    if kind == "metrics":
        labels = {}
        for line in body.decode(errors="replace").splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, rest = line.partition("{")
            name = name.split(" ")[0]
            keys = {kv.split("=")[0].strip() for kv in rest.split("}")[0].split(",") if "=" in kv}
            labels.setdefault(name, set()).update(keys)
        out["metric_names"] = sorted(labels)
        out["metric_labels"] = {k: sorted(v) for k, v in sorted(labels.items())}
        return out
    try:
        j = json.loads(body)
    except ValueError:
        out["body"] = "not json"
        return out
    if status >= 400 and isinstance(j, dict):
        out["error"] = {"code": j.get("code"), "type": j.get("type")}
    else:
        out["shape"] = shape(j)
    return out


def request(base, method, path, body=None, headers=None):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()
    except (urllib.error.URLError, ConnectionError) as e:
        # the server closed the connection without an answer: status 0
        if isinstance(e, urllib.error.URLError) and not isinstance(e.reason, ConnectionError):
            raise
        return 0, {}, b""


class Target:
    """A server under test: TorchServe (from ts_venv) or wick, on free loopback ports."""

    def __init__(self, kind, exe, store, work):
        self.kind = kind
        self.ports = {k: free_port() for k in ("inference", "management", "metrics")}
        cfg = work / f"{kind}.properties"
        cfg.write_text(CONFIG + "".join(f"{k}_address=http://127.0.0.1:{p}\n"
                                        for k, p in self.ports.items()))
        env = dict(os.environ, OMP_NUM_THREADS="1")
        if kind == "torchserve":
            tmp = work / "ts-tmp"
            tmp.mkdir(exist_ok=True)
            env.update(PATH=f"{exe}/bin:" + env["PATH"], TMPDIR=str(tmp))
            cmd = [f"{exe}/bin/torchserve", "--start", "--foreground", "--ncs", "--model-store",
                   str(store), "--ts-config", str(cfg)]
        else:
            cmd = [exe, "serve", "--model-store", str(store), "--ts-config", str(cfg), "--quiet"]
        self.log = open(work / f"{kind}.log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=work,
                                     env=env, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if request(self.base("inference"), "GET", "/ping")[0] in (200, 500):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{kind} did not start; see {self.log.name}")

    def base(self, port):
        return f"http://127.0.0.1:{self.ports[port]}"

    def stop(self):
        stop_group(self.proc, grace=30)
        self.log.close()


def build_store(work, archiver):
    """The archives both servers load, built by archiver: a command (list) that takes
    torch-model-archiver's flags (torch-model-archiver itself, or wick pack)."""
    import torch
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    from models import MLP
    store = work / "store"
    store.mkdir()
    torch.manual_seed(0)
    torch.jit.script(MLP().eval()).save(str(work / "mlp.pt"))
    mlp_handler = ROOT / "bench" / "handlers" / "mlp_handler.py"
    failing_handler = HERE / "handlers" / "failing_handler.py"
    # (file name in the store, model name, version, handler)
    for file, name, version, handler in (("mlp", "mlp", "1.0", mlp_handler),
                                         ("mlp2", "mlp2", "1.0", mlp_handler),
                                         ("mlp-v2", "mlp", "2.0", mlp_handler),
                                         ("failing", "failing", "1.0", failing_handler)):
        out = work / "pack" / file
        out.mkdir(parents=True)
        subprocess.run(archiver + ["--model-name", name, "--version", version,
                        "--serialized-file", str(work / "mlp.pt"), "--handler", str(handler),
                        "--export-path", str(out), "-f"], check=True, capture_output=True)
        (out / f"{name}.mar").rename(store / f"{file}.mar")
    return store


TS_ARCHIVES = "frontend/archive/src/test/resources/models"


def copy_ts_archives(snapshot, store):
    """Copies TorchServe's own test archives from a snapshot of its repository into store;
    returns their file names. Files the snapshot lists but lacks (large ones may be left
    out of a snapshot, which then holds them empty) are skipped."""
    snap = Path(snapshot)
    names = []
    if (snap / TS_ARCHIVES).is_dir():  # a checkout
        for f in sorted((snap / TS_ARCHIVES).glob("*.mar")):
            if f.stat().st_size:
                (store / f.name).write_bytes(f.read_bytes())
                names.append(f.name)
        return names
    git = ["git", "--git-dir", str(snap)]
    listing = subprocess.run(git + ["ls-tree", "--name-only", "HEAD", TS_ARCHIVES + "/"],
                             check=True, capture_output=True, text=True).stdout.split()
    for path in listing:
        if path.endswith(".mar"):
            data = subprocess.run(git + ["show", "HEAD:" + path], capture_output=True).stdout
            if data:
                (store / Path(path).name).write_bytes(data)
                names.append(Path(path).name)
    return names


def runnable(seq, store):
    return all((store / f).exists() for f in seq.get("needs", []))


def run_sequences(target, store):
    """{"sequence/step": observation} for every step of every sequence whose archives are
    in the store."""
    seen = {}
    for seq in SEQUENCES:
        if not runnable(seq, store):
            continue
        for i, step in enumerate(seq["steps"]):
            port = step.get("port", "inference")
            status, headers, body = request(target.base(port), step["method"], step["path"],
                                            step.get("body"), step.get("headers"))
            seen[f"{seq['name']}/{i}"] = {
                "request": f"{step['method']} {port}:{step['path']}",
                **observe(status, headers, body, "metrics" if port == "metrics" else "json")}
            if step.get("sleep"):
                time.sleep(step["sleep"])
    return seen


def shape_gaps(want, got, path="$"):
    """Where got's shape lacks what want's has: missing keys, other types. Keys only wick
    has are not gaps (a client of TorchServe ignores them)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: TorchServe object, wick {json.dumps(got)[:40]}"]
        out = []
        for k, w in want.items():
            if k not in got:
                out.append(f"{path}.{k} missing")
            else:
                out += shape_gaps(w, got[k], f"{path}.{k}")
        return out
    if isinstance(want, list):
        if not isinstance(got, list):
            return [f"{path}: TorchServe list, wick {json.dumps(got)[:40]}"]
        return shape_gaps(want[0], got[0], f"{path}[]") if want and got else []
    return [] if want == got else [f"{path}: TorchServe {want}, wick {got}"]


def differences(want, got):
    """{key: {field: reason}} for the keys of want whose observation got differs from.
    Fields: status, content_type, error, body, shape, metrics."""
    out = {}
    for key, w in want.items():
        g = got.get(key)
        if g is None:
            out[key] = {"status": "not run against wick"}
            continue
        why = {}
        gaps = shape_gaps(w["shape"], g.get("shape")) if "shape" in w else []
        if gaps:
            why["shape"] = ", ".join(gaps)
        for field in ("status", "content_type", "error", "body"):
            if w.get(field) != g.get(field):
                why[field] = (f"TorchServe {json.dumps(w.get(field))[:160]}, "
                              f"wick {json.dumps(g.get(field))[:160]}")
        if "metric_names" in w:
            have = set(g.get("metric_names", []))
            missing = sorted(set(w["metric_names"]) - have)
            found = []
            if missing:
                found.append("TorchServe has and wick lacks: " + ", ".join(missing))
            if "name[]" in w["request"]:  # a filtered scrape: exactly the families asked for
                extra = sorted(have - set(w["metric_names"]))
                if extra:
                    found.append("wick has and TorchServe's filter left out: " + ", ".join(extra))
            for name, keys in w.get("metric_labels", {}).items():
                lack = sorted(set(keys) - set(g.get("metric_labels", {}).get(name, keys)))
                if lack:
                    found.append(f"{name} lacks the labels " + ", ".join(lack))
            if found:
                why["metrics"] = "; ".join(found)
        if why:
            out[key] = why
    return out


def allowlist():
    """[(key glob, field or "*", text, why)] from allowlist.txt: `GLOB FIELD[~TEXT]: why` per
    line (with ~TEXT, only a difference whose description holds TEXT is excused)."""
    path = HERE / "allowlist.txt"
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                head, _, why = line.partition(":")
                glob, _, field = head.strip().partition(" ")
                field, _, text = field.strip().partition("~")
                out.append((glob, field or "*", text, why.strip()))
    return out


def explain(key, fields, allowed):
    """{field: why deliberate or None} for one difference ({field: description}). A why
    that starts with "GAP" is a known difference not fixed yet, not a deliberate one. A
    shape difference is a list of gaps ("$.a missing, $.b: ..."): each needs a line of its
    own, and the field's why is theirs together (a known gap if one of them is)."""
    def one(field, desc):
        return next((why for glob, f, text, why in allowed
                     if fnmatch.fnmatchcase(key, glob) and f in ("*", field) and text in desc),
                    None)
    out = {}
    for field, desc in fields.items():
        if field != "shape":
            out[field] = one(field, desc)
            continue
        whys = [one(field, gap) for gap in shape_items(desc)]
        out[field] = (None if None in whys
                      else next((w for w in whys if w.startswith("GAP")), None)
                      or "; ".join(dict.fromkeys(whys)))
    return out


def shape_items(desc):
    """The gaps of a shape difference's description, one per "$..." item."""
    return re.split(r", (?=\$)", desc)


def brief(field, desc):
    """A difference's description as RESULTS.md prints it: at most 12 gaps of a shape."""
    if field != "shape":
        return desc
    items = shape_items(desc)
    return ", ".join(items[:12]) + (" ..." if len(items) > 12 else "")


def tag(why):
    if why is None:
        return "TO FIX"
    return f"known gap, not fixed yet: {why[3:].strip()}" if why.startswith("GAP") else f"deliberate: {why}"


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--ts-venv", default=str(ROOT / "build" / "ts-venv"))
    r.add_argument("--ts-snapshot", default=os.environ.get("TS_SNAPSHOT") or None,
                   help="a snapshot of TorchServe's repository, for its own test archives")
    r.add_argument("out")
    c = sub.add_parser("compare")
    c.add_argument("--wick", default=str(ROOT / "build" / "wick"))
    c.add_argument("--archiver", default=None,
                   help="torch-model-archiver for the archives (default: build/ts-venv's when "
                        "it is there, else wick pack, which writes the same format)")
    c.add_argument("--results", default=None)
    c.add_argument("--ts-snapshot", default=os.environ.get("TS_SNAPSHOT") or None,
                   help="a snapshot of TorchServe's repository, for its own test archives")
    c.add_argument("recording")
    a = ap.parse_args()
    if a.cmd == "compare":  # the servers run in a temporary folder: absolute paths
        a.wick = str(Path(a.wick).resolve())
    else:
        a.ts_venv = str(Path(a.ts_venv).resolve())
    with tempfile.TemporaryDirectory(prefix="wick-compat-") as tmp:
        work = Path(tmp)
        if a.cmd == "record":
            store = build_store(work, [f"{a.ts_venv}/bin/torch-model-archiver"])
            theirs = copy_ts_archives(a.ts_snapshot, store) if a.ts_snapshot else []
            t = Target("torchserve", a.ts_venv, store, work)
            try:
                seen = run_sequences(t, store)
            finally:
                t.stop()
            Path(a.out).write_text(json.dumps({
                "recorded_with": "TorchServe 0.12.0 (tests/compat/harness.py record)",
                "ts_archives": theirs,
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "answers": seen}, indent=1, sort_keys=True) + "\n")
            print(f"recorded {len(seen)} answers of {len(SEQUENCES)} sequences to {a.out}")
            return 0
        rec = json.loads(Path(a.recording).read_text())
        archiver = a.archiver or str(ROOT / "build" / "ts-venv" / "bin" / "torch-model-archiver")
        store = build_store(work, [archiver] if Path(archiver).exists() else [a.wick, "pack"])
        theirs = copy_ts_archives(a.ts_snapshot, store) if a.ts_snapshot else []
        skipped = [q for q in SEQUENCES if not runnable(q, store)]
        t = Target("wick", a.wick, store, work)
        try:
            seen = run_sequences(t, store)
        finally:
            t.stop()
    # the recorded answers of the sequences skipped here are not compared
    skip = {q["name"] for q in skipped}
    rec["answers"] = {k: v for k, v in rec["answers"].items() if k.split("/")[0] not in skip}
    diffs = differences(rec["answers"], seen)
    allowed = allowlist()
    why = {k: explain(k, v, allowed) for k, v in diffs.items()}
    unexplained = [k for k in diffs if None in why[k].values()]
    gaps = [k for k in diffs if k not in unexplained
            and any(w.startswith("GAP") for w in why[k].values())]
    lines = [f"# wick against TorchServe: compatibility results", "",
             "Written by `tests/compat/harness.py compare` against the recording "
             f"({rec['recorded_with']}, {rec['date']}).", "",
             f"- sequences: {len(SEQUENCES) - len(skipped)} run, {len(skipped)} skipped "
             f"(they need TorchServe's own test archives: --ts-snapshot); requests: "
             f"{len(rec['answers'])}",
             f"- TorchServe's own test archives in the store: {len(theirs)}"
             + (f" ({', '.join(theirs)})" if theirs else ""),
             f"- requests answered differently: {len(diffs)}: deliberate (allowlist.txt): "
             f"{len(diffs) - len(unexplained) - len(gaps)}; known gaps (allowlist.txt, GAP): "
             f"{len(gaps)}; unexplained: {len(unexplained)}",
             ""]
    for k in sorted(diffs, key=lambda k: (k.split("/")[0], int(k.split("/")[1]))):
        parts = [f"{f}: {brief(f, d)} ({tag(why[k][f])})" for f, d in diffs[k].items()]
        lines.append(f"- `{k}` `{rec['answers'][k]['request']}`: " + "; ".join(parts))
    text = "\n".join(lines) + "\n"
    if a.results:
        Path(a.results).write_text(text)
        print(text)
    else:  # make test: the counts, and what is unexplained
        print("\n".join(lines[:7] + [l for l in lines[7:] if "TO FIX" in l]))
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
