"""End-to-end: Python workers forked from one template process that imported torch once
(backend/forkserver.c, python/wick_worker/forkserver.py). The workers are children of
wick (a child subreaper while the template forks), share the template's pages, draw their own random numbers,
are replaced when killed, and start from scratch again when the template is gone or
`python_fork_server=false`; the template ends with the server."""
import os
import signal

import pytest

from conftest import pack_python, proc_stat, wait_for

WHO_PY = '''
import os
import sys
import numpy
import torch

def handle(data, context):
    if data is None:
        return None
    return [{"pid": os.getpid(), "cwd": os.getcwd(), "rand": float(numpy.random.rand()),
             "torch": torch.__version__,
             "torchvision": "torchvision" in sys.modules} for _ in data]
'''


def make_store(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    pack_python(tmp_path, store, "who", WHO_PY)
    return store


def children(server_pid):
    """{pid: comm} of the server's children."""
    out = {}
    for d in os.listdir("/proc"):
        st = proc_stat(d) if d.isdigit() else None
        if st is not None and st[2] == server_pid:
            out[int(d)] = st[0]
    return out


def by_name(server_pid, name):
    return sorted(p for p, c in children(server_pid).items() if c == name)


def private_and_rss_kb(pid):
    got = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Rss", "Private_Clean", "Private_Dirty"):
                got[k] = int(v.split()[0])
    return got["Private_Clean"] + got["Private_Dirty"], got["Rss"]


def state(pid):
    st = proc_stat(pid)
    return st[1] if st else None

def answers(s, n):
    out = []
    for _ in range(n):
        r = s.infer("POST", "/predictions/who", "x")
        assert r.status == 200, r
        out.append(r.json())
    return out


def test_workers_are_forked_from_one_template_and_share_its_pages(serve, tmp_path):
    store = make_store(tmp_path)
    s = serve("--model-store", store, "--models", "who=who.mar", "--default_workers_per_model", "3")
    templates = by_name(s.proc.pid, "wick-template")
    assert len(templates) == 1, children(s.proc.pid)
    workers = wait_for(lambda: len(by_name(s.proc.pid, "wick_worker")) == 3
                       and by_name(s.proc.pid, "wick_worker"))
    assert templates[0] not in workers
    got = answers(s, 12)
    assert {g["pid"] for g in got} <= set(workers), (got, workers)
    # each starts in its model's folder, as a spawned worker does
    assert all(os.path.isfile(os.path.join(g["cwd"], "MAR-INF", "MANIFEST.json")) for g in got), got
    # the workers' random streams are their own, not copies of the template's
    first = {}
    for g in got:
        first.setdefault(g["pid"], g["rand"])
    assert len(set(first.values())) == len(first), got
    # what the template imported is shared: a worker holds little of its own
    for pid in workers:
        private, rss = private_and_rss_kb(pid)
        assert private < rss / 2, (pid, private, rss)
    assert "python worker template started" in s.logs()
    # the operator's view lists it
    listed = s.mgmt("GET", "/status.json").json()["server"]["python_templates"]
    assert [t["pid"] for t in listed] == templates and listed[0]["rss_bytes"] > 0, listed


@pytest.mark.badinput
def test_a_killed_worker_or_template_is_replaced(serve, tmp_path):
    store = make_store(tmp_path)
    s = serve("--model-store", store, "--models", "who=who.mar", "--default_workers_per_model", "1",
              "--enable_model_api", "true")
    template = by_name(s.proc.pid, "wick-template")[0]
    worker = answers(s, 1)[0]["pid"]
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: state(worker) == "Z")  # dead, not yet reaped: by wick, its parent
    got = answers(s, 1)[0]  # found dead before this batch, as a spawned worker is
    again = got["pid"]
    assert again != worker
    assert not got["torchvision"], got  # a model that does not use it does not pay for it
    assert worker not in children(s.proc.pid)  # reaped by wick
    assert children(s.proc.pid).get(again) == "wick_worker"
    # the template killed: the next worker starts from scratch, the one after from a new one
    os.kill(template, signal.SIGKILL)
    r = s.mgmt("PUT", "/models/who?min_worker=2&synchronous=true")
    assert r.status == 200, r
    r = s.mgmt("PUT", "/models/who?min_worker=3&synchronous=true")
    assert r.status == 200, r
    new = by_name(s.proc.pid, "wick-template")
    assert len(new) == 1 and new[0] != template, children(s.proc.pid)
    # worker 1 from scratch (the interpreter's own name), worker 2 from the new template
    assert len(by_name(s.proc.pid, "wick_worker")) == 2, children(s.proc.pid)
    answers(s, 3)
    assert template not in children(s.proc.pid)  # the dead one was reaped


def test_python_fork_server_false_spawns_each_worker(serve, tmp_path):
    store = make_store(tmp_path)
    s = serve("--model-store", store, "--models", "who=who.mar", "--default_workers_per_model", "2",
              "--python_fork_server", "false")
    got = answers(s, 4)
    kids = children(s.proc.pid)
    assert "wick-template" not in kids.values(), kids
    assert s.mgmt("GET", "/status.json").json()["server"]["python_templates"] == []
    assert all(kids.get(g["pid"]) not in (None, "wick_worker") for g in got), (got, kids)


def test_the_template_ends_with_the_server(serve, tmp_path):
    store = make_store(tmp_path)
    s = serve("--model-store", store, "--models", "who=who.mar")
    template = by_name(s.proc.pid, "wick-template")[0]
    worker = answers(s, 1)[0]["pid"]
    assert s.stop() == 0
    for pid in (template, worker):
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        assert not alive, pid


VISION_PY = '''
import os
from torchvision import transforms  # what marks a model that uses torchvision

def handle(data, context):
    if data is None:
        return None
    return [str(os.getpid()) for _ in data]
'''


def maps_torchvision(pid):
    with open(f"/proc/{pid}/maps") as f:
        return "torchvision" in f.read()


def test_the_template_imports_torchvision_once_a_model_uses_it(serve, tmp_path):
    store = make_store(tmp_path)
    pack_python(tmp_path, store, "vision", VISION_PY)
    s = serve("--model-store", store, "--models", "who=who.mar", "--enable_model_api", "true")
    template = by_name(s.proc.pid, "wick-template")[0]
    answers(s, 1)
    assert not maps_torchvision(template)
    r = s.mgmt("POST", "/models?url=vision.mar&initial_workers=2&synchronous=true")
    assert r.status == 200, r
    assert maps_torchvision(template)  # imported before the first fork, kept for the next
    assert s.infer("POST", "/predictions/vision", "x").status == 200
    assert by_name(s.proc.pid, "wick-template") == [template]


LEAVER_PY = '''
import os
import subprocess

def handle(data, context):
    if data is None:
        return None
    p = subprocess.Popen(["sleep", "30"])
    return [{"worker": os.getpid(), "child": p.pid} for _ in data]
'''


def test_what_a_dead_worker_leaves_behind_is_not_wicks(serve, tmp_path):
    """wick is a child subreaper only while the template forks: a process a handler started
    goes to init (or whoever reaps orphans above wick) when its worker dies, not to wick,
    which would never reap it."""
    store = tmp_path / "store"
    store.mkdir()
    pack_python(tmp_path, store, "leaver", LEAVER_PY)
    # one worker: no other fork may be under way (wick is a subreaper during each) when
    # this one dies
    s = serve("--model-store", store, "--models", "leaver=leaver.mar", "--default_workers_per_model", "1")
    assert by_name(s.proc.pid, "wick-template")
    r = s.infer("POST", "/predictions/leaver", "x")
    assert r.status == 200, r
    got = r.json()
    try:
        os.kill(got["worker"], signal.SIGKILL)
        wait_for(lambda: state(got["child"]) == "S" and ppid(got["child"]) != got["worker"])
        assert ppid(got["child"]) != s.proc.pid
    finally:
        os.kill(got["child"], signal.SIGKILL)


def ppid(pid):
    return proc_stat(pid)[2]
