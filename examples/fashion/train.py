#!/usr/bin/env python3
"""Trains wick's demo model: the small CNN of the PyTorch tour, on FashionMNIST.

    .venv/bin/python examples/fashion/train.py --out build/demo [--epochs 1] [--seed 0]

Writes, each atomically (temporary file + rename, so an interrupted run leaves nothing
that make would mistake for a finished result):

  DIR/fashion.pt          TorchScript (torch.jit.script, eval mode, NOT frozen: wick
                          freezes and optimizes at load time; a module saved after
                          optimize_for_inference does not load again, in torch 1.13 or 2.14)
  DIR/test_samples.json   the first 1000 test images, already normalized, as the
                          model takes them: {"images": [[1,28,28] nested lists],
                          "labels": [...], "classes": [...], "normalized": true,
                          "mean": 0.286, "std": 0.353, "input_shape": [1,1,28,28]}
                          A client sends one image as {"data": [image]} (shape [1,1,28,28]).

Model input: float32 [N,1,28,28], pixels scaled to [0,1] then (x - 0.2860) / 0.3530
(the FashionMNIST training-set mean and std).
Model output: plain logits [N,10] -- no log_softmax. The server applies softmax itself
for image classification, and integrated-gradients explanations need the raw outputs.

The data come from the idx files of Debian's dataset-fashion-mnist package (gzipped or
not) in /usr/share/datasets/fashion-mnist/ (override with --data).
"""
import argparse
import gzip
import json
import os
import struct
import sys
import tempfile
import time

# Must be set before torch is imported (see MACHINE-NOTES): OpenBLAS's busy-waiting
# threads fight torch's (a libtorch on OpenBLAS; the pinned wheel uses MKL).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

MEAN = 0.2860
STD = 0.3530
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"


class FashionCNN(nn.Module):
    """The CNN of the PyTorch tour; forward returns logits."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return self.fc2(x)


def find_idx(data_dir, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    sys.exit(f"train.py: {stem}[.gz] not found in {data_dir} "
             "(install Debian's dataset-fashion-mnist or pass --data)")


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        sys.exit(f"train.py: {path} is not an unsigned-byte idx file")
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        sys.exit(f"train.py: {path}: {data.size} bytes of data, header says {dims}")
    return data.reshape(dims)


def load_split(data_dir, prefix):
    images = read_idx(find_idx(data_dir, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(find_idx(data_dir, f"{prefix}-labels-idx1-ubyte"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    x = (x - MEAN) / STD
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def atomic_write(path, write):
    """Calls write(tmp_path), then renames tmp_path onto path."""
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


def evaluate(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=DEFAULT_DATA, help="folder of the idx files")
    ap.add_argument("--samples", type=int, default=1000, help="test images in the JSON")
    ap.add_argument("--min-accuracy", type=float, default=0.85)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)

    x_train, y_train = load_split(args.data, "train")
    x_test, y_test = load_split(args.data, "t10k")
    print(f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}, "
          f"{torch.get_num_threads()} threads", flush=True)

    model = FashionCNN()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.monotonic()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_train), generator=gen)
        total, seen = 0.0, 0
        for step, i in enumerate(range(0, len(x_train), args.batch_size)):
            idx = perm[i:i + args.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            seen += len(idx)
            if step % 200 == 0:
                print(f"epoch {epoch + 1} [{seen:5d}/{len(x_train)}] loss {loss.item():.4f} "
                      f"({time.monotonic() - t0:.0f} s)", flush=True)
        print(f"epoch {epoch + 1}: mean loss {total / seen:.4f}", flush=True)
    train_s = time.monotonic() - t0

    acc = evaluate(model, x_test, y_test)
    print(f"training took {train_s:.1f} s ({args.epochs} epoch(s), batch {args.batch_size}, "
          f"{args.threads} threads); test accuracy {acc:.4f}", flush=True)
    if acc < args.min_accuracy:
        sys.exit(f"train.py: accuracy {acc:.4f} < {args.min_accuracy}: not saving the model")

    model.eval()
    scripted = torch.jit.script(model)
    # The saved module must give the same logits as the eager one.
    with torch.inference_mode():
        assert torch.allclose(scripted(x_test[:8]), model(x_test[:8]), atol=1e-5)

    n = min(args.samples, len(x_test))
    samples = {
        "normalized": True,
        "mean": MEAN,
        "std": STD,
        "note": "pixels/255 then (x - mean) / std; send one image as {\"data\": [image]}",
        "input_shape": [1, 1, 28, 28],
        "output": "logits",
        "classes": CLASSES,
        "labels": y_test[:n].tolist(),
        # images[k] is [1,28,28] (one channel of 28 rows); 4 significant digits.
        "images": [[[[float(f"{v:.4g}") for v in row] for row in img[0]]]
                   for img in x_test[:n].tolist()],
    }

    def write_json(tmp):
        with open(tmp, "w") as f:
            json.dump(samples, f, separators=(",", ":"))

    atomic_write(os.path.join(args.out, "test_samples.json"), write_json)
    # fashion.pt last: make treats it as the sign that the whole run finished.
    atomic_write(os.path.join(args.out, "fashion.pt"), lambda tmp: scripted.save(tmp))
    print(f"wrote {os.path.join(args.out, 'fashion.pt')} and test_samples.json "
          f"({n} samples)", flush=True)


if __name__ == "__main__":
    main()
