#!/usr/bin/env python3
"""Helpers of bench/run_vision.sh: the ResNet-18 model, the images, and the raw
in-process limit. Nothing is downloaded: the JPEGs are synthetic, the PNGs come from
Debian's dataset-fashion-mnist.

    vision_tools.py resnet --out r18.pt
        torchvision resnet18(), random weights (seed 0), torch.jit.script, eval, saved
    vision_tools.py jpegs --out DIR [--count 6]
        DIR/img{0..count-1}.jpg: ~640x480 natural-looking synthetic photos (smooth colour
        fields, blurred shapes, texture and grain; quality 90), a few sizes/orientations
    vision_tools.py pngs --idx t10k-images-idx3-ubyte.gz --out DIR [--count 16]
        DIR/img{0..count-1}.png: the first FashionMNIST test images, 28x28 gray PNG
    vision_tools.py raw-server --model r18.pt --images DIR --ext jpg
        the raw in-process limit, driven over stdin/stdout so bench/run_vision.sh can
        interleave it with the servers' runs: each input line
            NAME BATCH THREADS FREEZE SECONDS [LOOPS]
        runs decode + preprocess (PIL + torchvision, as the FastAPI peer) + forward +
        softmax/top5 in a loop, BATCH images per forward, torch THREADS intra-op threads,
        FREEZE 1 = torch.jit.freeze + optimize_for_inference (cached per process), LOOPS
        such loops at once in Python threads (default 1; PIL's decode/resize and torch
        release the GIL: 2 loops x 1 torch thread is a 2-worker server without HTTP), for
        SECONDS after a short warm-up, and answers one JSON line. "quit" or EOF ends it.
    vision_tools.py first --port P --path /predictions/M --file F
        POST F once, print the answer (for the agreement check)
"""
import argparse
import gzip
import io
import json
import os
import signal
import sys
import time


def cmd_resnet(a):
    import torch
    import torchvision
    torch.manual_seed(0)
    m = torchvision.models.resnet18().eval()
    s = torch.jit.script(m)
    s.save(a.out)
    print(f"wrote {a.out}")


def synth_photo(rng, w, h):
    """A natural-looking synthetic photo: smooth low-frequency colour fields (the
    'scene'), a few soft-edged shapes (the 'objects'), mid-frequency texture and grain."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    def field(gw, gh, ch):
        small = (rng.random((gh, gw, ch)) * 255).astype(np.uint8)
        im = Image.fromarray(small if ch == 3 else small[:, :, 0])
        out = np.asarray(im.resize((w, h), Image.BICUBIC), np.float32)
        return out if ch == 3 else out[:, :, None]

    img = 0.65 * field(4, 3, 3) + 0.35 * field(12, 9, 3)
    # a horizon-like vertical gradient
    grad = np.linspace(-40, 40, h, dtype=np.float32)[:, None, None] * rng.uniform(-1, 1, 3)
    img = img + grad
    base = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    layer = Image.new("RGB", (w, h))
    mask = Image.new("L", (w, h), 0)
    d, dm = ImageDraw.Draw(layer), ImageDraw.Draw(mask)
    for _ in range(int(rng.integers(4, 9))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        rw, rh = int(rng.integers(w // 12, w // 3)), int(rng.integers(h // 12, h // 3))
        col = tuple(int(c) for c in rng.integers(0, 256, 3))
        box = [x0 - rw, y0 - rh, x0 + rw, y0 + rh]
        if rng.random() < 0.5:
            d.ellipse(box, fill=col)
            dm.ellipse(box, fill=255)
        else:
            d.rectangle(box, fill=col)
            dm.rectangle(box, fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(3))
    layer = layer.filter(ImageFilter.GaussianBlur(1.5))
    base = Image.composite(layer, base, mask)
    arr = np.asarray(base, np.float32)
    tex = field(w // 8, h // 8, 1)  # mid-frequency texture, shared by the channels
    arr = arr + 0.15 * (tex - 128) + rng.normal(0, 6, arr.shape)  # texture + sensor grain
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).filter(
        ImageFilter.UnsharpMask(radius=2, percent=60, threshold=2))


def cmd_jpegs(a):
    import numpy as np
    rng = np.random.default_rng(1234)
    sizes = [(640, 480), (480, 640), (640, 427), (600, 450), (512, 512), (720, 480)]
    os.makedirs(a.out, exist_ok=True)
    total = 0
    for i in range(a.count):
        w, h = sizes[i % len(sizes)]
        p = os.path.join(a.out, f"img{i}.jpg")
        synth_photo(rng, w, h).save(p, "JPEG", quality=90)
        total += os.path.getsize(p)
    print(f"wrote {a.count} JPEGs to {a.out}, {total / a.count / 1024:.0f} KiB each on average")


def cmd_pngs(a):
    import numpy as np
    from PIL import Image
    with gzip.open(a.idx, "rb") as f:
        raw = f.read()
    n, rows, cols = (int.from_bytes(raw[k:k + 4], "big") for k in (4, 8, 12))
    if int.from_bytes(raw[0:4], "big") != 2051 or rows != 28 or cols != 28:
        sys.exit(f"{a.idx}: not a 28x28 idx3 image file")
    imgs = np.frombuffer(raw, np.uint8, offset=16).reshape(n, rows, cols)
    os.makedirs(a.out, exist_ok=True)
    for i in range(a.count):
        Image.fromarray(imgs[i], "L").save(os.path.join(a.out, f"img{i}.png"))
    print(f"wrote {a.count} PNGs to {a.out}")


def cmd_raw_server(a):
    import torch
    from PIL import Image
    from torchvision import transforms

    tf = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    files = sorted((f for f in os.listdir(a.images) if f.endswith("." + a.ext)),
                   key=lambda f: int("".join(c for c in f if c.isdigit()) or 0))
    bodies = [open(os.path.join(a.images, f), "rb").read() for f in files]
    if not bodies:
        sys.exit(f"no .{a.ext} files in {a.images}")
    models = {}

    def model(freeze):
        if freeze not in models:
            m = torch.jit.load(a.model, map_location="cpu").eval()
            if freeze:
                m = torch.jit.optimize_for_inference(torch.jit.freeze(m))
            models[freeze] = m
        return models[freeze]

    def loop(m, batch, deadline, start_at, st):
        """decode + preprocess + forward + top 5, BATCH images at a time, until DEADLINE;
        counts into ST (one dict per loop thread)."""
        k = start_at
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            xs = []
            for _ in range(batch):
                img = Image.open(io.BytesIO(bodies[k % len(bodies)])).convert("RGB")
                xs.append(tf(img))
                k += 1
            x = torch.stack(xs)
            t1 = time.perf_counter()
            with torch.inference_mode():
                p = torch.softmax(m(x), dim=1)
                top = torch.topk(p, 5)
                json.dumps([dict(zip(map(str, i), v)) for i, v in
                            zip(top.indices.tolist(), top.values.tolist())])
            t2 = time.perf_counter()
            st["images"] += batch
            st["pre"] += t1 - t0
            st["fwd"] += t2 - t1
            st["lat"].append(t2 - t0)

    def run(m, batch, par, secs):
        """PAR loops at once (Python threads: PIL and torch release the GIL), SECS each."""
        import threading
        sts = [{"images": 0, "pre": 0.0, "fwd": 0.0, "lat": []} for _ in range(par)]
        t0 = time.perf_counter()
        ts = [threading.Thread(target=loop, args=(m, batch, t0 + secs, j * 3, sts[j]))
              for j in range(par)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return time.perf_counter() - t0, sts

    print(json.dumps({"ready": True, "images": len(bodies)}), flush=True)
    for line in sys.stdin:
        f = line.split()
        if not f or f[0] == "quit":
            break
        name, batch, threads, freeze, secs = f[0], int(f[1]), int(f[2]), f[3] == "1", float(f[4])
        par = int(f[5]) if len(f) > 5 else 1
        torch.set_num_threads(threads)
        m = model(freeze)
        run(m, batch, par, min(2.0, secs / 3))  # warm-up (oneDNN primitives, caches)
        el, sts = run(m, batch, par, secs)
        k = sum(s["images"] for s in sts)
        lat = sorted(x for s in sts for x in s["lat"])
        if not lat:
            print(json.dumps({"name": name, "images": 0, "error": "no batch finished"}),
                  flush=True)
            continue
        print(json.dumps({
            "name": name, "batch": batch, "threads": threads, "freeze": int(freeze),
            "loops": par, "seconds": round(el, 3), "images": k, "img_per_s": k / el,
            "preprocess_ms_per_img": 1e3 * sum(s["pre"] for s in sts) / k,
            "forward_ms_per_batch": 1e3 * sum(s["fwd"] for s in sts) / len(lat),
            "batch_p50_ms": 1e3 * lat[len(lat) // 2],
            "batch_p99_ms": 1e3 * lat[min(len(lat) - 1, int(len(lat) * 0.99))]}), flush=True)


def cmd_first(a):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
    try:
        c.request("POST", a.path, body=open(a.file, "rb").read(),
                  headers={"Content-Type": a.content_type})
        r = c.getresponse()
        body = r.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as e:
        print(json.dumps({"status": 0, "error": str(e)}))
        return 1
    finally:
        c.close()
    print(json.dumps({"status": r.status, "body": body}))
    return 0 if r.status == 200 else 1


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("resnet")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_resnet)
    p = sub.add_parser("jpegs")
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, default=6)
    p.set_defaults(fn=cmd_jpegs)
    p = sub.add_parser("pngs")
    p.add_argument("--idx", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, default=16)
    p.set_defaults(fn=cmd_pngs)
    p = sub.add_parser("raw-server")
    p.add_argument("--model", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--ext", default="jpg")
    p.set_defaults(fn=cmd_raw_server)
    p = sub.add_parser("first")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--file", required=True)
    p.add_argument("--content-type", default="application/octet-stream")
    p.set_defaults(fn=cmd_first)
    a = ap.parse_args()
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
