#!/usr/bin/env python3
"""The peer: what a user writes instead of a model server. FastAPI + uvicorn serving
one TorchScript model, for `bench/run.sh` to compare wick against.

    MLP_MODEL=build/bench/mlp.pt .venv/bin/python bench/fastapi_peer.py PORT [WORKERS]

which is `uvicorn fastapi_peer:app --workers 2 --port PORT` plus one fix: the listening
socket gets TCP_NODELAY (accepted sockets inherit it on Linux). Without it, uvicorn here
(h11, no uvloop) answers every request on a keep-alive connection after ~44 ms: it
writes the response head and body separately, Nagle holds the body until the client's
delayed ACK. Measured with wrk -c1 on /ping: 22 req/s without, ~2000 req/s with. The
bench compares against the peer at its best, so the fix stays.

POST /predictions/mlp  body {"data": [[...]]} -> the model's output as a JSON list
GET  /ping             -> {"status": "Healthy"}

The model path comes from $MLP_MODEL (or argv[3]). Torch uses 1 thread per worker
and OpenBLAS is kept single-threaded (its busy-waiting threads fight torch's).
"""
import os
import socket
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402

torch.set_num_threads(1)

app = FastAPI()
_model = None


def _load():
    global _model
    path = os.environ.get("MLP_MODEL")
    if not path:
        raise RuntimeError("set MLP_MODEL to the TorchScript file to serve")
    _model = torch.jit.load(path, map_location="cpu").eval()


@app.on_event("startup")
def startup():
    _load()


@app.get("/ping")
def ping():
    return {"status": "Healthy"}


@app.post("/predictions/mlp")
async def predict(request: Request):
    body = await request.json()
    x = torch.tensor(body["data"], dtype=torch.float32)
    with torch.inference_mode():
        y = _model(x)
    return y.tolist()


def main():
    import uvicorn

    if len(sys.argv) < 2:
        sys.exit("usage: fastapi_peer.py PORT [WORKERS] [MODEL.pt]")
    port = int(sys.argv[1])
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    if len(sys.argv) > 3:
        os.environ["MLP_MODEL"] = os.path.abspath(sys.argv[3])
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
    uvicorn.run("fastapi_peer:app", fd=sock.fileno(), workers=workers,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
