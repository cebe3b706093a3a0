#!/usr/bin/env python3
"""The PyTorch tour's model, trained and exported as the tour does it: the Lightning
CNNModel, trained briefly on FashionMNIST with a ModelCheckpoint, reloaded with
load_from_checkpoint, scripted (Lightning's to_torchscript, which runs torch.jit.script)
and saved as jit_model.pt beside the checkpoint. Also writes a few test images as PNG files to send to the server.

    .venv/bin/python examples/tour/train.py --out DIR [--steps 300]

DIR/checkpoints/<best>.ckpt, DIR/checkpoints/jit_model.pt and DIR/images/{0,1,2}.png.
The data are the idx files of Debian's dataset-fashion-mnist, read without torchvision's
downloader (nothing is fetched); the transform is the tour's ToTensor + Normalize((0.1307,),
(0.3081,)).
"""
import argparse
import gzip
import os
import struct
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.1307, 0.3081


class CNNModel(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(1, 32, 3, 1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, 1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
            nn.Flatten(),
            nn.Dropout(0.5),
            nn.Linear(9216, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
            nn.LogSoftmax(dim=1),
        )

    def forward(self, x):
        return self.cnn(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("val_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def read_idx(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def split(data, prefix):
    def find(stem):
        for name in (stem, stem + ".gz"):
            if os.path.exists(os.path.join(data, name)):
                return os.path.join(data, name)
        sys.exit(f"train.py: {stem} not found in {data} (Debian's dataset-fashion-mnist)")
    images = read_idx(find(f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(find(f"{prefix}-labels-idx1-ubyte"))
    return images, labels


def to_dataset(images, labels):
    x = (torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1) - MEAN) / STD
    return TensorDataset(x, torch.from_numpy(labels.astype(np.int64)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--data", default=DATA)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    out = Path(args.out)
    train_images, train_labels = split(args.data, "train")
    test_images, test_labels = split(args.data, "t10k")
    train_loader = DataLoader(to_dataset(train_images, train_labels), batch_size=64, shuffle=True)
    test_loader = DataLoader(to_dataset(test_images[:1000], test_labels[:1000]), batch_size=500)

    model = CNNModel()
    checkpoint_callback = ModelCheckpoint(dirpath=str(out / "checkpoints"))
    trainer = pl.Trainer(callbacks=[checkpoint_callback], max_steps=args.steps, accelerator="cpu",
                         devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=2)
    trainer.fit(model, train_loader, test_loader)

    # Productionising, as the tour does it
    best_ckpt = checkpoint_callback.best_model_path
    best_cnn = CNNModel.load_from_checkpoint(best_ckpt)
    best_cnn.eval()
    # The tour calls torch.jit.script(best_cnn). With pytorch-lightning 2.x that raises
    # "CNNModel is not attached to a `Trainer`" (scripting reads every attribute, and
    # LightningModule.trainer refuses); to_torchscript() is Lightning's way to the same
    # torch.jit.script call.
    jit_model = best_cnn.to_torchscript()
    jit_model_path = Path(os.path.dirname(best_ckpt), "jit_model.pt")
    jit_model.save(jit_model_path)
    loaded_jit_model = torch.jit.load(jit_model_path)

    x, y = next(iter(test_loader))
    with torch.no_grad():
        acc = (loaded_jit_model(x).argmax(1) == y).float().mean().item()
    print(f"checkpoint {best_ckpt}; jit model {jit_model_path}; accuracy on 500 test images {acc:.3f}")

    from PIL import Image
    (out / "images").mkdir(parents=True, exist_ok=True)
    for i in range(3):
        Image.fromarray(test_images[i]).save(out / "images" / f"{i}.png")
    print("labels of images/0.png, 1.png, 2.png:", test_labels[:3].tolist())


if __name__ == "__main__":
    main()
