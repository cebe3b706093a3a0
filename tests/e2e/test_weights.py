"""wick's safe .pt reader against the venv's torch: torch saves, wick reads (tests/tools/wkpt
dumps every tensor's bytes), the values must be bit-exact. Malicious and malformed files
made here must be refused with a clear message, without running anything.
WICK_PT_TOOL picks the dump tool, else the wkpt beside WICK_BIN."""
import collections
import io
import json
import os
import pickle
import pickletools
import random
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from conftest import WICK, pack, run_wick

TOOL = os.environ.get("WICK_PT_TOOL", str(Path(WICK).parent / "wkpt"))

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.int16,
          torch.int32, torch.int64, torch.uint8, torch.bool]
WK_NAME = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
           torch.bfloat16: "bfloat16", torch.int8: "int8", torch.int16: "int16",
           torch.int32: "int32", torch.int64: "int64", torch.uint8: "uint8", torch.bool: "bool"}


def run_tool(path, *flags):
    if not os.path.exists(TOOL):
        pytest.fail(f"the wkpt tool is missing at {TOOL}: build the 'wkpt' target", pytrace=False)
    return subprocess.run([TOOL, *flags, str(path)], capture_output=True, text=True, timeout=120)


def dump(path, *flags):
    r = run_tool(path, *flags)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def refused(path, *flags):
    r = run_tool(path, *flags)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("wkpt: "), r.stderr
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r.stderr


def raw(t):
    """The tensor's elements as bytes, row-major, as wick's dump gives them."""
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def check_same(entry, t):
    assert entry["dtype"] == WK_NAME[t.dtype], entry["name"]
    assert entry["shape"] == list(t.shape), entry["name"]
    assert entry["strides"] == list(t.stride()), entry["name"]
    assert entry["offset"] == t.storage_offset(), entry["name"]
    assert bytes.fromhex(entry["hex"]) == raw(t), entry["name"]


def sample(dtype, n=24):
    g = torch.Generator().manual_seed(7)
    if dtype == torch.bool:
        return torch.rand(n, generator=g) > 0.5
    if dtype.is_floating_point:
        x = torch.randn(n, generator=g, dtype=torch.float64) * 1000
        x[:4] = torch.tensor([float("inf"), -float("inf"), -0.0, 1e-30])
        return x.to(dtype)
    info = torch.iinfo(dtype)
    x = torch.randint(info.min, info.max, (n,), generator=g, dtype=torch.int64).to(dtype)
    x[0], x[1] = info.min, info.max
    return x


@pytest.mark.parametrize("dtype", DTYPES, ids=[WK_NAME[d] for d in DTYPES])
def test_every_dtype_round_trips_bit_exact(tmp_path, dtype):
    base = sample(dtype).reshape(4, 6)
    sd = collections.OrderedDict(
        plain=base, scalar=base[1, 2].clone(), empty=torch.empty(0, 3, dtype=dtype))
    torch.save(sd, tmp_path / "w.pt")
    got = dump(tmp_path / "w.pt")
    assert got["kind"] == "checkpoint" and got["state_dict"] == ""
    assert [e["name"] for e in got["tensors"]] == list(sd)
    for e in got["tensors"]:
        check_same(e, sd[e["name"]])


def test_views_keep_strides_and_offsets(tmp_path):
    base = torch.arange(60, dtype=torch.float32).reshape(5, 12)
    sd = {
        "transposed": base.t(),
        "sliced": base[1:4, 2:11:3],
        "narrow_offset": base.narrow(0, 3, 2),
        "expanded": torch.arange(3, dtype=torch.int64).expand(4, 3),
        "column": base[:, 5],
        "base": base,
        "permuted": torch.arange(24, dtype=torch.int16).reshape(2, 3, 4).permute(2, 0, 1),
    }
    torch.save(sd, tmp_path / "v.pt")
    got = {e["name"]: e for e in dump(tmp_path / "v.pt")["tensors"]}
    assert set(got) == set(sd)
    for k, t in sd.items():
        check_same(got[k], t)
    assert got["transposed"]["contiguous"] is False and got["base"]["contiguous"] is True
    assert got["expanded"]["strides"] == [0, 1]
    assert got["narrow_offset"]["offset"] == 36


def test_parameters_and_nested_checkpoints(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    sd = model.state_dict()
    torch.save({"model": sd, "optimizer": opt.state_dict(), "epoch": 3}, tmp_path / "c.pt")
    got = dump(tmp_path / "c.pt")
    assert got["state_dict"] == "model"
    assert [e["name"] for e in got["tensors"]] == list(sd)
    for e in got["tensors"]:
        check_same(e, sd[e["name"]])
    everything = dump(tmp_path / "c.pt", "--all")["tensors"]
    names = [e["name"] for e in everything]
    assert "model.0.weight" in names and "optimizer.state.0.exp_avg" in names
    exp_avg = opt.state_dict()["state"][0]["exp_avg"]
    check_same(next(e for e in everything if e["name"] == "optimizer.state.0.exp_avg"), exp_avg)

    torch.save({"model_state_dict": sd, "step": 1}, tmp_path / "m.pt")
    assert dump(tmp_path / "m.pt")["state_dict"] == "model_state_dict"

    params = {"w": torch.nn.Parameter(torch.ones(2, 2)), "b": torch.zeros(2)}
    torch.save(params, tmp_path / "p.pt")
    got = {e["name"]: e for e in dump(tmp_path / "p.pt")["tensors"]}
    assert got["w"]["is_parameter"] and got["w"]["requires_grad"]
    assert not got["b"]["is_parameter"]
    check_same(got["w"], params["w"])


LIGHTNING_SCRIPT = r"""
import argparse, pathlib, sys, torch
class HParams:
    def __init__(self, **kw):
        self.__dict__.update(kw)
class EarlyStopping(dict):
    pass
model = torch.nn.Linear(3, 2)
cb = EarlyStopping(monitor="val_loss")
cb.patience = 3
ckpt = {"epoch": 4, "global_step": 100, "pytorch-lightning_version": "1.9.0",
        "state_dict": model.state_dict(),
        "hyper_parameters": HParams(lr=0.001, layers=[3, 2], name="net"),
        "callbacks": {"EarlyStopping{'monitor': 'val_loss'}": cb},
        "datamodule_hyper_parameters": argparse.Namespace(batch=32, root=pathlib.Path("/data")),
        "optimizer_states": [], "lr_schedulers": []}
torch.save(ckpt, sys.argv[1])
torch.save(model.state_dict(), sys.argv[2])
"""


def test_lightning_checkpoint_yields_its_state_dict(tmp_path):
    script = tmp_path / "make_ckpt.py"
    script.write_text(LIGHTNING_SCRIPT)
    ckpt, ref = tmp_path / "model.ckpt", tmp_path / "ref.pt"
    subprocess.run([sys.executable, str(script), str(ckpt), str(ref)], check=True,
                   env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    with pytest.raises(Exception):  # torch itself refuses the whole file
        torch.load(ckpt, weights_only=True)
    got = dump(ckpt)
    assert got["state_dict"] == "state_dict"
    sd = torch.load(ref, weights_only=True)
    assert [e["name"] for e in got["tensors"]] == list(sd)
    for e in got["tensors"]:
        check_same(e, sd[e["name"]])
    opaque = {o["path"]: o["global"] for o in got["opaque"]}
    assert opaque == {"hyper_parameters": "__main__.HParams",
                      "callbacks.EarlyStopping{'monitor': 'val_loss'}": "__main__.EarlyStopping",
                      "datamodule_hyper_parameters": "argparse.Namespace"}
    err = refused(ckpt, "--strict")
    assert "'__main__.HParams'" in err


def test_torchscript_archive_lists_its_tensors(tmp_path):
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    torch.jit.script(model).save(str(tmp_path / "ts.pt"))
    got = dump(tmp_path / "ts.pt")
    assert got["kind"] == "torchscript" and got["state_dict"] is None
    sd = model.state_dict()
    assert sorted(e["name"] for e in got["tensors"]) == sorted(sd)
    for e in got["tensors"]:
        check_same(e, sd[e["name"]])


def test_frozen_torchscript_lists_its_constants(tmp_path):
    torch.manual_seed(6)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3),
                                torch.nn.Flatten(), torch.nn.Linear(12, 2)).eval()
    frozen = torch.jit.freeze(torch.jit.script(model))  # weights become constants
    frozen.save(str(tmp_path / "frozen.pt"))
    with zipfile.ZipFile(tmp_path / "frozen.pt") as z:  # torch's own view of constants.pkl
        rec = z.namelist()[0].split("/")[0]

        class Constants(pickle.Unpickler):
            def persistent_load(self, pid):
                _, cls, key, _, _ = pid
                data = bytearray(z.read(f"{rec}/constants/{key}"))
                return torch.frombuffer(data, dtype=cls().dtype).storage()
        constants = Constants(io.BytesIO(z.read(f"{rec}/constants.pkl"))).load()
    tensors = [c for c in constants if isinstance(c, torch.Tensor)]
    assert tensors
    got = {e["name"]: e for e in dump(tmp_path / "frozen.pt")["tensors"]}
    for i, c in enumerate(constants):
        if isinstance(c, torch.Tensor):
            check_same(got[f"constants.{i}"], c)
    assert len(got) == len(tensors)


def test_whole_pickled_module_is_named_like_its_state_dict(tmp_path):
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2),
                                torch.nn.Sequential(torch.nn.Linear(3, 2)))
    torch.save(model, tmp_path / "full.pt")  # holds __builtin__.set: harmless, not refused
    got = dump(tmp_path / "full.pt")
    assert got["state_dict"] is None
    assert got["opaque"] == [{"path": "", "global": "torch.nn.modules.container.Sequential"}]
    sd = model.state_dict()
    assert sorted(e["name"] for e in got["tensors"]) == sorted(sd)
    for e in got["tensors"]:
        check_same(e, sd[e["name"]])
    assert "'torch.nn.modules.container.Sequential'" in refused(tmp_path / "full.pt", "--strict")


# ---- bad input ----

class Evil:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


@pytest.mark.badinput
@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "subprocess.Popen"])
def test_malicious_pickles_are_refused_and_run_nothing(tmp_path, kind):
    import builtins
    import subprocess as sp
    sentinel = tmp_path / "pwned"
    cmd = f"touch {sentinel}"
    payload = {"os.system": Evil(os.system, cmd),
               "builtins.eval": Evil(builtins.eval, f"__import__('os').system({cmd!r})"),
               "subprocess.Popen": Evil(sp.Popen, ["touch", str(sentinel)])}[kind]
    obj = {"weight": torch.ones(2), "extra": payload}
    path = tmp_path / "evil.pt"
    torch.save(obj, path)
    if kind == "os.system":  # the payload is live: a plain unpickler runs it
        torch.save({"extra": payload}, tmp_path / "live.pt")
        with zipfile.ZipFile(tmp_path / "live.pt") as z:
            data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
        pickle.loads(data)
        assert sentinel.exists()
        sentinel.unlink()
    # the name as the pickle spells it: posix.system, __builtin__.eval (protocol 2 keeps
    # Python 2 names), ...
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    spelled = [arg.replace(" ", ".") for op, arg, _ in pickletools.genops(data)
               if op.name == "GLOBAL" and not arg.startswith(("torch", "collections"))]
    assert len(spelled) == 1 and spelled[0].endswith(kind.split(".")[1]), spelled
    for flags in ([], ["--strict"]):
        err = refused(path, *flags)
        assert f"refused global '{spelled[0]}'" in err, err
    assert not sentinel.exists()


def write_pt(path, data_pkl, storages=None, record="archive", extra=None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{record}/data.pkl", data_pkl)
        for k, v in (storages or {}).items():
            z.writestr(f"{record}/data/{k}", v)
        for k, v in (extra or {}).items():
            z.writestr(f"{record}/{k}", v)
        z.writestr(f"{record}/version", "3\n")


class FakeStorage:
    def __init__(self, key, numel, cls=torch.FloatStorage):
        self.key, self.numel, self.cls = key, numel, cls


class FakeTensor:
    def __init__(self, storage, offset, size, stride):
        self.a = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.a)


def crafted(obj):
    class P(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, FakeStorage):
                return ("storage", o.cls, o.key, "cpu", o.numel)
            return None
    buf = io.BytesIO()
    P(buf, protocol=2).dump(obj)
    return buf.getvalue()


@pytest.mark.badinput
def test_crafted_tensor_file_reads_back(tmp_path):
    # the crafting helpers make files wick reads: the refusals below are about the bad part
    s = FakeStorage("0", 6)
    data = torch.arange(6, dtype=torch.float32)
    write_pt(tmp_path / "ok.pt", crafted({"t": FakeTensor(s, 1, (2, 2), (2, 1))}),
             {"0": raw(data)})
    check_same(dump(tmp_path / "ok.pt")["tensors"][0], data[1:5].reshape(2, 2))


@pytest.mark.badinput
@pytest.mark.parametrize("case,expect", [
    ("short_storage", "shorter than the tensor"),
    ("declared_bigger", "declares 100 float32 elements but holds 24 bytes"),
    ("overflow", "overflow"),
    ("missing_storage", "has no archive/data/9"),
    ("too_many_dims", "dimensions; the limit is"),
    ("negative_size", "expected an int >= 0"),
    ("bad_key", "not a plain name"),
])
def test_bad_tensors_are_refused(tmp_path, case, expect):
    s = FakeStorage("0", 6)
    t = {"short_storage": FakeTensor(s, 2, (3, 2), (2, 1)),
         "declared_bigger": FakeTensor(FakeStorage("0", 100), 0, (2,), (1,)),
         "overflow": FakeTensor(s, 0, (2 ** 62, 4), (4, 1)),
         "missing_storage": FakeTensor(FakeStorage("9", 1), 0, (1,), (1,)),
         "too_many_dims": FakeTensor(s, 0, (1,) * 40, (1,) * 40),
         "negative_size": FakeTensor(s, 0, (-1,), (1,)),
         "bad_key": FakeTensor(FakeStorage("../0", 1), 0, (1,), (1,))}[case]
    write_pt(tmp_path / "bad.pt", crafted({"t": t}), {"0": bytes(24)})
    assert expect in refused(tmp_path / "bad.pt")


@pytest.mark.badinput
@pytest.mark.parametrize("case,data,expect", [
    ("frame_opcode", pickle.dumps({"a": 1}, protocol=4), "0x95 (FRAME)"),
    ("inst_opcode", b"\x80\x02(i__main__\nX\n.", "(INST)"),
    ("stack_global", b"\x80\x02X\x02\x00\x00\x00osX\x06\x00\x00\x00system\x93.", "(STACK_GLOBAL)"),
    ("no_stop", b"\x80\x02}q\x00", "without STOP"),
    ("mark_bomb", b"\x80\x02" + b"(" * 100000 + b".", "nested MARKs"),
    ("deep_lists", b"\x80\x02]q\x00" + b"]q\x01ah\x01" * 100000 + b"h\x00.", "deeper than"),
    ("bad_memo", b"\x80\x02h\x05.", "memo 5 was never set"),
    ("huge_memo", b"\x80\x02Nr\xff\xff\xff\x7f.", "memo index"),
    ("long_string", b"\x80\x02X\xff\xff\xff\x7fab.", "truncated"),
    ("non_storage_pid", b"\x80\x02X\x03\x00\x00\x00abc\x85Q.", "persistent ids of storages"),
    ("empty", b"", "without STOP"),
], ids=lambda x: x if isinstance(x, str) and len(x) < 40 else "")
def test_bad_pickles_are_refused(tmp_path, case, data, expect):
    write_pt(tmp_path / "bad.pt", data)
    assert expect in refused(tmp_path / "bad.pt"), case


@pytest.mark.badinput
def test_shared_and_cyclic_containers_end(tmp_path):
    cyclic = b"\x80\x02]q\x00h\x00a."  # a list that holds itself
    laughs = b"\x80\x02]q\x00" + b"(h\x00h\x00tq\x00" * 64 + b"h\x00."  # 2**64 paths, 64 tuples
    for i, data in enumerate((cyclic, laughs)):
        write_pt(tmp_path / f"{i}.pt", data)
        got = dump(tmp_path / f"{i}.pt")
        assert got["tensors"] == [] and got["state_dict"] is None


@pytest.mark.badinput
def test_wrong_formats_get_clear_messages(tmp_path):
    torch.save({"w": torch.ones(3)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert "legacy torch.save format" in refused(tmp_path / "legacy.pt")

    (tmp_path / "pickle.pt").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    assert "bare pickle" in refused(tmp_path / "pickle.pt")

    # Fixed junk: random bytes open with a pickle's PROTO byte one time in 256.
    (tmp_path / "junk.pt").write_bytes(b"junk" + random.Random(7).randbytes(996))
    assert "not a PyTorch checkpoint" in refused(tmp_path / "junk.pt")

    torch.save({"w": torch.ones(100)}, tmp_path / "good.pt")
    full = (tmp_path / "good.pt").read_bytes()
    for cut in (10, len(full) // 2, len(full) - 5):
        (tmp_path / "cut.pt").write_bytes(full[:cut])
        assert "not a PyTorch checkpoint" in refused(tmp_path / "cut.pt")

    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as z:
        z.writestr("readme.txt", "hi")
    assert "record folder" in refused(tmp_path / "plain.zip")

    write_pt(tmp_path / "big.pt", pickle.dumps({}, protocol=2), extra={"byteorder": "big"})
    assert "little-endian" in refused(tmp_path / "big.pt")

    write_pt(tmp_path / "cplx.pt", crafted(
        {"c": FakeTensor(FakeStorage("0", 1, torch.ComplexFloatStorage), 0, (1,), (1,))}),
        {"0": bytes(8)})
    assert "dtype complex64, which wick does not read" in refused(tmp_path / "cplx.pt")


# ---- wick inspect ----

def test_inspect_weights_table_and_json(tmp_path):
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8),
                                torch.nn.Flatten(), torch.nn.Linear(8, 10).to(torch.float16))
    sd = model.state_dict()
    torch.save({"model": sd, "epoch": 1}, tmp_path / "m.pth")
    got = json.loads(run_wick("inspect", "--json", tmp_path / "m.pth").stdout)["weights"]
    assert got["format"] == "checkpoint" and got["state_dict"] == "model"
    assert [(t["name"], t["dtype"], t["shape"]) for t in got["tensors"]] == \
        [(k, WK_NAME[v.dtype], list(v.shape)) for k, v in sd.items()]
    assert got["parameters"] == sum(v.numel() for v in sd.values())
    assert got["bytes"] == sum(v.numel() * v.element_size() for v in sd.values())
    text = run_wick("inspect", tmp_path / "m.pth").stdout
    assert "state_dict: model" in text
    assert f"parameters: {got['parameters']}" in text
    assert re.search(r"\n  3\.weight +float16 +\[10,8\] +160 B\n", text), text


def test_inspect_lightning_reports_opaque_entries(tmp_path):
    script = tmp_path / "make_ckpt.py"
    script.write_text(LIGHTNING_SCRIPT)
    subprocess.run([sys.executable, str(script), str(tmp_path / "l.ckpt"),
                    str(tmp_path / "ref.pt")], check=True)
    text = run_wick("inspect", tmp_path / "l.ckpt").stdout
    assert "state_dict: state_dict" in text
    assert "hyper_parameters: __main__.HParams" in text and "not built, not run" in text
    # and among the checkpoint's other entries, described
    assert "hyper_parameters: opaque __main__.HParams (not built)" in text, text
    got = json.loads(run_wick("inspect", "--json", tmp_path / "l.ckpt").stdout)["weights"]
    assert {"path": "hyper_parameters", "global": "__main__.HParams"} in got["opaque"]


def test_inspect_archives_show_handler_kind_and_tensors(tmp_path):
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    torch.jit.script(model).save(str(tmp_path / "ts.pt"))
    store = tmp_path / "store"
    store.mkdir()
    pack(store, "native", tmp_path / "ts.pt", handler="tensor")
    got = json.loads(run_wick("inspect", "--json", store / "native.mar").stdout)
    assert got["handler"]["kind"] == "native" and "warning" not in got["handler"]
    assert got["weights"]["format"] == "torchscript"
    assert {t["name"] for t in got["weights"]["tensors"]} == set(model.state_dict())

    torch.save(model.state_dict(), tmp_path / "sd.pt")
    (tmp_path / "handler.py").write_text("def handle(data, context):\n    return data\n")
    pack(store, "py", tmp_path / "sd.pt", handler=tmp_path / "handler.py")
    got = json.loads(run_wick("inspect", "--json", store / "py.mar").stdout)
    assert got["handler"]["kind"] == "python"
    assert "Python code from this archive" in got["handler"]["warning"]
    assert got["weights"]["state_dict"] == ""
    text = run_wick("inspect", store / "py.mar").stdout
    assert "handler kind: Python" in text and "warning:" in text and "0.weight" in text


@pytest.mark.badinput
def test_inspect_refuses_malicious_weights(tmp_path):
    sentinel = tmp_path / "pwned"
    torch.save({"w": torch.ones(1), "x": Evil(os.system, f"touch {sentinel}")}, tmp_path / "e.pt")
    r = run_wick("inspect", tmp_path / "e.pt", check=False)
    assert r.returncode == 1 and "refused global" in r.stderr and "system" in r.stderr, r.stderr
    assert not sentinel.exists()
    store = tmp_path / "store"
    store.mkdir()
    pack(store, "evil", tmp_path / "e.pt", handler="tensor")
    got = json.loads(run_wick("inspect", "--json", store / "evil.mar").stdout)
    assert "refused global" in got["weights"]["error"]
    assert not sentinel.exists()


# ---- writer: wick writes, torch.load(weights_only=True) reads ----

def bits(t):
    return (t.dtype, tuple(t.shape), raw(t))


def test_writer_round_trips_through_torch(tmp_path):
    base = torch.arange(60, dtype=torch.float64).reshape(5, 12)
    sd = collections.OrderedDict()
    for dt in DTYPES:
        x = sample(dt, 30).reshape(5, 6)
        sd[f"{WK_NAME[dt]}.plain"] = x
        sd[f"{WK_NAME[dt]}.view"] = x.t()[1:5:2]  # strided and offset: written contiguous
        sd[f"{WK_NAME[dt]}.scalar"] = x[2, 3].clone()
        sd[f"{WK_NAME[dt]}.empty"] = x[:0]
    sd["expanded"] = base[0, :3].expand(4, 3)
    sd["big_numel"] = torch.zeros(70000, dtype=torch.uint8)  # BININT sizes
    torch.save(sd, tmp_path / "in.pt")
    r = run_tool(tmp_path / "in.pt", "--write", str(tmp_path / "out.pt"))
    assert r.returncode == 0, r.stderr
    back = torch.load(tmp_path / "out.pt", weights_only=True)
    assert isinstance(back, collections.OrderedDict) and list(back) == list(sd)
    for k in sd:
        assert bits(back[k]) == bits(sd[k]), k
        assert back[k].is_contiguous(), k
    # and wick reads its own file back
    got = {e["name"]: e for e in dump(tmp_path / "out.pt")["tensors"]}
    for k in sd:
        assert bytes.fromhex(got[k]["hex"]) == raw(sd[k]), k


def test_writer_keeps_requires_grad_and_loads_into_a_model(tmp_path):
    torch.manual_seed(4)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    torch.save({"model_state_dict": model.state_dict(), "epoch": 2}, tmp_path / "ck.pt")
    r = run_tool(tmp_path / "ck.pt", "--write", str(tmp_path / "sd.pt"))
    assert r.returncode == 0, r.stderr
    fresh = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    fresh.load_state_dict(torch.load(tmp_path / "sd.pt", weights_only=True), strict=True)
    x = torch.randn(2, 1, 6, 6)
    model.eval(), fresh.eval()
    assert torch.equal(model(x), fresh(x))
