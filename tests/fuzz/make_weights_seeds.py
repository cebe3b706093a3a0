"""Writes the curated seed corpus of fuzz_weights into tests/fuzz/corpus/weights/ (run with
.venv/bin/python, which has torch). Pickles reference storages "0" (256 bytes) and "1"
(empty), the two the fuzz target provides; *.pt seeds are whole checkpoint files."""
import collections
import io
import os
import pickle
import sys
import zipfile

import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus",
                                                           "weights")
os.makedirs(OUT, exist_ok=True)


def data_pkl(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


class HParams:
    def __init__(self):
        self.lr, self.layers = 0.001, [3, 2]


class Evil:
    def __reduce__(self):
        return (os.system, ("true",))


torch.manual_seed(0)
base = torch.arange(16, dtype=torch.float32).reshape(4, 4)  # 16 floats fit storage "0"
write("views.pkl", data_pkl(collections.OrderedDict(
    t=base.t(), s=base[1:3, ::2], p=torch.nn.Parameter(base[0]), e=torch.zeros(0))))
lin = torch.nn.Linear(3, 2)
opt = torch.optim.Adam(lin.parameters())
lin(torch.ones(1, 3)).sum().backward()
opt.step()
write("checkpoint.pkl", data_pkl({"model": lin.state_dict(), "optimizer": opt.state_dict(),
                                  "epoch": 3, "loss": 0.25, "big": 2 ** 40}))
write("lightning.pkl", data_pkl({"state_dict": lin.state_dict(), "hyper_parameters": HParams()}))
write("evil.pkl", data_pkl({"x": Evil()}))
for dt in (torch.float16, torch.bfloat16, torch.int8, torch.int64, torch.bool):
    write(f"dtype_{str(dt)[6:]}.pkl", data_pkl({"t": torch.ones(4, dtype=dt)}))
buf = io.BytesIO()
torch.save(lin.state_dict(), buf)
write("linear.pt", buf.getvalue())
buf = io.BytesIO()
torch.jit.save(torch.jit.script(torch.nn.Sequential(torch.nn.Linear(2, 2))), buf)
write("torchscript.pt", buf.getvalue())
with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
    write("torchscript.pkl", z.read(next(n for n in z.namelist() if n.endswith("/data.pkl"))))
buf = io.BytesIO()
frozen = torch.jit.freeze(torch.jit.script(torch.nn.Sequential(torch.nn.Linear(2, 2)).eval()))
torch.jit.save(frozen, buf)
write("torchscript_frozen.pt", buf.getvalue())
