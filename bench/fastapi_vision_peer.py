#!/usr/bin/env python3
"""The vision peer: what a user writes instead of wick's image_classifier handler.
FastAPI + uvicorn, PIL + torchvision transforms + a TorchScript forward, for
`bench/run_vision.sh` to compare wick against.

    PEER_MODEL=r18.pt .venv/bin/python bench/fastapi_vision_peer.py PORT [WORKERS] [MODE]

MODE (or $PEER_MODE):
  imagenet (default): PIL open -> convert("RGB") -> Resize(256) -> CenterCrop(224) ->
      ToTensor -> Normalize(ImageNet mean/std), as TorchServe's image_classifier
  fashion: PIL open -> convert("L") -> ToTensor -> Normalize(0.2860, 0.3530) (the demo
      model's 28x28 gray inputs: no resize, no crop)

POST /predictions/{model}  raw image bytes (JPEG/PNG) -> {"label": probability}, softmax
                           top 5, labels from $PEER_LABELS (index_to_name.json) or the
                           class index
GET  /ping                 -> {"status": "Healthy"}

As bench/fastapi_peer.py: the listening socket gets TCP_NODELAY (uvicorn's h11 writes head
and body apart; without it Nagle + delayed ACK add ~40 ms to every keep-alive request),
torch uses 1 thread per worker, OpenBLAS is single-threaded. $PEER_FREEZE=1 freezes and
optimizes the module at startup (torch.jit.freeze + optimize_for_inference), the tuning a
careful user would add; off by default (plain torch.jit.load + eval).
"""
import io
import json
import os
import socket
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402
from fastapi import FastAPI, Request, Response  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision import transforms  # noqa: E402

torch.set_num_threads(1)

app = FastAPI()
_state = {}


def _load():
    path = os.environ.get("PEER_MODEL")
    if not path:
        raise RuntimeError("set PEER_MODEL to the TorchScript file to serve")
    mode = os.environ.get("PEER_MODE", "imagenet")
    model = torch.jit.load(path, map_location="cpu").eval()
    if os.environ.get("PEER_FREEZE", "0") == "1":
        model = torch.jit.optimize_for_inference(torch.jit.freeze(model))
    if mode == "fashion":
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.2860], [0.3530])])
        conv = "L"
    elif mode == "imagenet":
        tf = transforms.Compose([
            transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
        conv = "RGB"
    else:
        raise RuntimeError(f"PEER_MODE must be imagenet or fashion, not {mode!r}")
    labels = None
    lp = os.environ.get("PEER_LABELS")
    if lp:
        raw = json.load(open(lp))
        labels = {int(k): (v[-1] if isinstance(v, list) else v) for k, v in raw.items()}
    _state.update(model=model, tf=tf, conv=conv, labels=labels)


@app.on_event("startup")
def startup():
    _load()


@app.get("/ping")
def ping():
    return {"status": "Healthy"}


@app.post("/predictions/{name}")
async def predict(name: str, request: Request):
    body = await request.body()
    try:
        img = Image.open(io.BytesIO(body))
        img = img.convert(_state["conv"])
    except Exception:  # noqa: BLE001 - any decode failure is the client's
        return Response('{"error": "expected an image"}', status_code=400,
                        media_type="application/json")
    x = _state["tf"](img).unsqueeze(0)
    with torch.inference_mode():
        y = _state["model"](x)
        p = torch.softmax(y[0].float(), dim=0)
        top = torch.topk(p, min(5, p.numel()))
    labels = _state["labels"]
    out = {}
    for v, i in zip(top.values.tolist(), top.indices.tolist()):
        out[labels.get(i, str(i)) if labels else str(i)] = v
    return out


def main():
    import uvicorn

    if len(sys.argv) < 2:
        sys.exit("usage: fastapi_vision_peer.py PORT [WORKERS] [imagenet|fashion]")
    port = int(sys.argv[1])
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    if len(sys.argv) > 3:
        os.environ["PEER_MODE"] = sys.argv[3]
    if os.environ.get("PEER_MODEL"):
        os.environ["PEER_MODEL"] = os.path.abspath(os.environ["PEER_MODEL"])
    # The workers import this module by name: make its folder importable.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    os.environ["PYTHONPATH"] = here + os.pathsep + os.environ.get("PYTHONPATH", "")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    sock.set_inheritable(True)
    uvicorn.run("fastapi_vision_peer:app", fd=sock.fileno(), workers=workers,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
