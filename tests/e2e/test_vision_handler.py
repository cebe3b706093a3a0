"""The native image_classifier handler and explanations, end to end: images in (raw,
multipart, base64 JSON), TorchServe-style top-k out, compared with PIL + torchvision +
torch on the same files; bad images answered one by one."""
import base64
import concurrent.futures as cf
import gzip
import io
import json
import os
import time

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import DEMO_DIR, ROOT, pack
from test_serve import metric_values

FASHION_PT = DEMO_DIR / "fashion.pt"
DATA = "/usr/share/datasets/fashion-mnist"
FASHION_CFG = """minWorkers: 2
batchSize: 8
maxBatchDelay: 20
wick:
  runtime: native
  image: {channels: 1, resize: 0, crop: 0, mean: [0.2860], std: [0.3530]}
"""


def fashion_test_images(n):
    raw = gzip.open(f"{DATA}/t10k-images-idx3-ubyte.gz").read()[16:]
    lab = gzip.open(f"{DATA}/t10k-labels-idx1-ubyte.gz").read()[8:]
    imgs = np.frombuffer(raw, np.uint8).reshape(-1, 28, 28)[:n]
    out = []
    for img in imgs:
        b = io.BytesIO()
        Image.fromarray(img).save(b, format="PNG")
        out.append(b.getvalue())
    return out, list(lab[:n])


@pytest.fixture(scope="module")
def fashion_store(tmp_path_factory):
    if not FASHION_PT.exists():
        pytest.fail(f"{FASHION_PT} is missing: run make demo")
    d = tmp_path_factory.mktemp("fstore")
    cfg = d / "cfg.yaml"
    cfg.write_text(FASHION_CFG)
    pack(d, "fashion", FASHION_PT, handler="image_classifier",
         extra=[ROOT / "examples/fashion/index_to_name.json"], config=cfg)
    return d


def names():
    return json.loads((ROOT / "examples/fashion/index_to_name.json").read_text())


def test_fashion_png_accuracy_over_http(serve, fashion_store):
    s = serve("--model-store", fashion_store, "--models", "fashion=fashion.mar", "--quiet")
    pngs, labels = fashion_test_images(1000)
    label_names = names()

    def one(i):
        r = s.infer("POST", "/predictions/fashion", pngs[i])
        assert r.status == 200, r
        return r.json()

    with cf.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(one, range(1000)))
    correct = 0
    for reply, label in zip(replies, labels):
        assert len(reply) == 5
        probs = list(reply.values())
        assert probs == sorted(probs, reverse=True)
        correct += next(iter(reply)) == label_names[str(label)]
    acc = correct / 1000
    print(f"fashion accuracy with PNGs over HTTP: {acc:.3f}")
    assert acc >= 0.85
    vals = metric_values(s.metrics().body.decode())
    labels_ = 'model_name="fashion",model_version="1.0"'
    assert vals[f"wick_batch_size_sum{{{labels_}}}"] == 1000
    assert vals[f"wick_batch_size_count{{{labels_}}}"] < 1000  # images were batched


def test_png_output_equals_torch_pipeline(serve, fashion_store):
    s = serve("--model-store", fashion_store, "--models", "fashion=fashion.mar")
    model = torch.jit.load(str(FASHION_PT)).eval()
    pngs, _ = fashion_test_images(20)
    label_names = names()
    for png in pngs:
        x = torch.tensor(np.asarray(Image.open(io.BytesIO(png)).convert("L")), dtype=torch.float32)
        x = ((x / 255.0 - 0.2860) / 0.3530).reshape(1, 1, 28, 28)
        with torch.no_grad():
            p = torch.softmax(model(x), dim=1)[0]
        top = torch.topk(p, 5)
        want = {label_names[str(int(i))]: float(v) for v, i in zip(top.values, top.indices)}
        r = s.infer("POST", "/predictions/fashion", png)
        got = r.json()
        assert list(got) == list(want) or set(got) == set(want), (got, want)
        for k in got:
            assert abs(got[k] - want[k]) < 1e-5, (got, want)


def test_image_input_forms(serve, fashion_store):
    s = serve("--model-store", fashion_store, "--models", "fashion=fashion.mar")
    pngs, _ = fashion_test_images(1)
    raw = s.infer("POST", "/predictions/fashion", pngs[0]).json()
    put = s.infer("PUT", "/predictions/fashion", pngs[0]).json()
    b64 = s.infer("POST", "/predictions/fashion", {"data": base64.b64encode(pngs[0]).decode()}).json()
    boundary = "wickboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"anything\"; filename=\"a.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + pngs[0] + f"\r\n--{boundary}--\r\n".encode()
    multi = s.infer("POST", "/predictions/fashion", body,
                    {"Content-Type": f"multipart/form-data; boundary={boundary}"}).json()
    assert raw == put == b64 == multi


def make_jpeg(w, h, seed, gray=False):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((w, h), Image.BILINEAR)
    if gray:
        img = img.convert("L")
    b = io.BytesIO()
    img.save(b, format="JPEG", quality=90)
    return b.getvalue()


def test_resnet18_jpegs_match_pil_torchvision_pipeline(serve, tmp_path):
    torchvision = pytest.importorskip("torchvision")
    from torchvision import transforms

    torch.manual_seed(0)
    net = torchvision.models.resnet18().eval()
    # random weights give nearly flat outputs: sharpen them so top-5 is well defined
    with torch.no_grad():
        net.fc.weight.mul_(50.0)
    scripted = torch.jit.script(net)
    scripted.save(str(tmp_path / "r18.pt"))
    store = tmp_path / "store"
    store.mkdir()
    pack(store, "r18", tmp_path / "r18.pt", handler="image_classifier")
    s = serve("--model-store", store, "--models", "r18=r18.mar")
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    for i, (w, h, gray) in enumerate([(640, 480, False), (300, 500, False), (257, 256, True), (1000, 300, False)]):
        jpg = make_jpeg(w, h, i, gray)
        x = tf(Image.open(io.BytesIO(jpg)).convert("RGB")).unsqueeze(0)
        with torch.no_grad():
            p = torch.softmax(net(x), dim=1)[0]
        r = s.infer("POST", "/predictions/r18", jpg)
        assert r.status == 200, r
        got = r.json()
        fifth = float(torch.topk(p, 5).values[-1])
        assert len(got) == 5
        for label, prob in got.items():
            assert abs(prob - float(p[int(label)])) < 1e-4, (label, prob, float(p[int(label)]))
            assert float(p[int(label)]) >= fifth - 1e-4


def bad_requests(pngs):
    png = pngs[0]
    boundary = "b0undary"
    no_file = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n\r\n--{boundary}--\r\n").encode()
    return [
        ("not an image", b"hello, this is text", {}, 400, "expected a JPEG or PNG image"),
        ("truncated png", png[: len(png) // 2], {}, 400, "PNG"),
        ("truncated jpeg", make_jpeg(64, 64, 1)[:300], {}, 400, "JPEG"),
        ("bad base64", json.dumps({"data": "!!!not base64!!!"}).encode(), {"Content-Type": "application/json"}, 400, "base64"),
        ("empty body", b"", {}, 400, "empty body"),
        ("multipart without file", no_file, {"Content-Type": f"multipart/form-data; boundary={boundary}"}, 400, "without a file"),
    ]


@pytest.mark.badinput
def test_bad_images_get_their_own_errors(serve, fashion_store, tmp_path):
    cfg = tmp_path / "small.yaml"
    cfg.write_text(FASHION_CFG.replace("mean:", "max_pixels: 500, mean:"))
    store = tmp_path / "s2"
    store.mkdir()
    pack(store, "small", FASHION_PT, handler="image_classifier", config=cfg)
    s = serve("--model-store", fashion_store, "--models", "fashion=fashion.mar",
              f"small={store / 'small.mar'}")
    pngs, _ = fashion_test_images(8)
    for what, body, headers, status, fragment in bad_requests(pngs):
        r = s.infer("POST", "/predictions/fashion", body, headers)
        assert r.status == status, (what, r)
        assert fragment in r.json()["message"], (what, r.json())
    r = s.infer("POST", "/predictions/small", pngs[0])
    assert r.status == 413 and "500" in r.json()["message"], r
    # one bad image inside a batch of good ones: the others get their results
    bodies = pngs[:7] + [b"not an image at all"]

    def one(b):
        return s.infer("POST", "/predictions/fashion", b)

    with cf.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(one, bodies))
    assert [r.status for r in replies] == [200] * 7 + [400], replies
    assert s.infer("POST", "/predictions/fashion", pngs[0]).status == 200


def gauss_legendre_ig(model, x, target, n_steps):
    """Integrated gradients as Captum computes them by default: Gauss-Legendre points on
    [0, 1], every scaled input in one batch, one backward pass. (One step at a time gives
    slightly different gradients on this CNN: ReLU zeros tie inside max-pool windows, and
    the batched and unbatched kernels break the ties differently.)"""
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)
    alphas = torch.tensor((nodes + 1) / 2, dtype=torch.float32).reshape(-1, 1, 1, 1)
    w = torch.tensor(weights / 2, dtype=torch.float64).reshape(-1, 1, 1, 1)
    xs = (alphas * x).requires_grad_(True)
    (g,) = torch.autograd.grad(model(xs)[:, target].sum(), xs)
    return (x.double() * (g.double() * w).sum(0, keepdim=True)).float()[0]


def test_explanations_integrated_gradients(serve, fashion_store):
    s = serve("--model-store", fashion_store, "--models", "fashion=fashion.mar")
    model = torch.jit.load(str(FASHION_PT)).eval()
    pngs, labels = fashion_test_images(3)
    for png in pngs:
        x = torch.tensor(np.asarray(Image.open(io.BytesIO(png)).convert("L")), dtype=torch.float32)
        x = ((x / 255.0 - 0.2860) / 0.3530).reshape(1, 1, 28, 28)
        with torch.no_grad():
            out = model(x)[0]
            base = model(torch.zeros_like(x))[0]
        pred = int(out.argmax())
        r = s.infer("POST", "/explanations/fashion", png)
        assert r.status == 200, r
        attr = torch.tensor(r.json())
        assert attr.shape == (1, 28, 28)
        assert int(r.headers["X-Wick-Target"]) == pred
        delta = float(out[pred] - base[pred])
        assert abs(float(attr.sum()) - delta) <= 0.02 * abs(delta), (float(attr.sum()), delta)
        ref = gauss_legendre_ig(model, x, pred, 50)
        assert float((attr - ref).norm()) <= 1e-3 * float(ref.norm()), float((attr - ref).norm())
    # an explicit target and fewer steps, as a query, as a multipart field and as JSON
    other = (pred + 1) % 10
    r1 = s.infer("POST", f"/explanations/fashion?target={other}&n_steps=20", pngs[-1])
    boundary = "b0"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"target\"\r\n\r\n{other}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"n_steps\"\r\n\r\n20\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"data\"; filename=\"x.png\"\r\n\r\n").encode() \
        + pngs[-1] + f"\r\n--{boundary}--\r\n".encode()
    r2 = s.infer("POST", "/explanations/fashion", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    r3 = s.infer("POST", "/explanations/fashion",
                 {"data": base64.b64encode(pngs[-1]).decode(), "target": other, "n_steps": 20})
    for r in (r1, r2, r3):
        assert r.status == 200, r
        assert int(r.headers["X-Wick-Target"]) == other
    assert r1.json() == r2.json() == r3.json()
    ref = gauss_legendre_ig(model, x, other, 20)
    got = torch.tensor(r1.json())
    assert float((got - ref).norm()) <= 1e-3 * float(ref.norm())


@pytest.mark.badinput
def test_explanation_bad_parameters(serve, fashion_store):
    s = serve("--model-store", fashion_store, "--models", "fashion=fashion.mar")
    pngs, _ = fashion_test_images(1)
    r = s.infer("POST", "/explanations/fashion?target=10", pngs[0])
    assert r.status == 400 and "out of range" in r.json()["message"], r
    r = s.infer("POST", "/explanations/fashion?n_steps=0", pngs[0])
    assert r.status == 400 and "n_steps" in r.json()["message"], r
    r = s.infer("POST", "/explanations/fashion?target=abc", pngs[0])
    assert r.status == 400 and "target" in r.json()["message"], r
    r = s.infer("POST", "/explanations/fashion", b"not an image")
    assert r.status == 400
    assert s.infer("POST", "/predictions/fashion", pngs[0]).status == 200
