#!/usr/bin/env python3
"""Builds the bench model: MLP Linear(16,64)-ReLU-Linear(64,4), fixed seed.

    .venv/bin/python bench/make_mlp.py --out DIR

Writes DIR/mlp.pt (torch.jit.script, eval mode) and DIR/mlp_request.json, a request
body with one row: {"data": [[16 floats]]}. Both are written atomically.
"""
import argparse
import json
import os
import tempfile

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402


def atomic_write(path, write):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=d)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    torch.manual_seed(args.seed)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4)).eval()
    scripted = torch.jit.script(model)
    row = [round(float(v), 4) for v in torch.rand(16, generator=torch.Generator().manual_seed(args.seed + 1))]
    with torch.inference_mode():
        out = scripted(torch.tensor([row], dtype=torch.float32))

    atomic_write(os.path.join(args.out, "mlp.pt"), lambda tmp: scripted.save(tmp))

    def write_req(tmp):
        with open(tmp, "w") as f:
            json.dump({"data": [row]}, f)

    atomic_write(os.path.join(args.out, "mlp_request.json"), write_req)
    print(f"wrote {args.out}/mlp.pt and mlp_request.json; output {out.tolist()}")


if __name__ == "__main__":
    main()
