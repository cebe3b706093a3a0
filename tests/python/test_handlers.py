"""The built-in handlers: image_classifier in a real worker process against a reference
computed here with PIL + torchvision; image_segmenter, object_detector, text_classifier
loaded in this process through the same loader the worker uses."""

import base64
import io
import json
import os
import textwrap

import pytest
import torch
from PIL import Image
from torchvision import transforms

from conftest import make_model_dir, req
from wick_worker import loader, protocol, service
from wick_worker.util import PredictionException

CNN_PY = textwrap.dedent("""
    import torch

    class TinyCNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 6, 5, stride=4)
            self.pool = torch.nn.AdaptiveAvgPool2d(1)
            self.fc = torch.nn.Linear(6, 7)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))
""")

LABELS = {str(i): "class_%d" % i for i in range(6)}  # class 6 has no label: its index is used


def png_bytes(mode, size, seed):
    g = torch.Generator().manual_seed(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = torch.randint(0, 256, (size[1], size[0], channels), generator=g, dtype=torch.uint8).numpy()
    img = Image.fromarray(arr[:, :, 0] if channels == 1 else arr, mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def reference_top5(net, png):
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    x = tf(Image.open(io.BytesIO(png)).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        p = torch.softmax(net(x), dim=1)
    probs, classes = torch.topk(p, 5, dim=1)
    return [(LABELS.get(str(c), str(c)), v) for c, v in zip(classes[0].tolist(), probs[0].tolist())]


def test_image_classifier_matches_pytorch(tmp_path, worker):
    torch.manual_seed(3)
    ns = {}
    exec(CNN_PY, ns)
    net = ns["TinyCNN"]().eval()
    torch.save(net.state_dict(), str(tmp_path / "cnn.pt"))
    d = make_model_dir(tmp_path / "model", {
        "cnn.py": CNN_PY, "cnn.pt": (tmp_path / "cnn.pt").read_bytes(),
        "index_to_name.json": json.dumps({k: ["n0000", v] for k, v in LABELS.items()}),
    }, {"modelFile": "cnn.py", "serializedFile": "cnn.pt"}, "image_classifier")
    w = worker().connect()
    assert w.load(d, "image_classifier", batch_size=4).code == 200
    rgb, rgba, gray = png_bytes("RGB", (300, 260), 1), png_bytes("RGBA", (231, 257), 2), png_bytes("L", (256, 256), 3)
    resp = w.infer([
        req("rgb", rgb, "image/png"),
        req("rgba", rgba, "application/octet-stream"),
        req("gray", gray, "image/png", name="data"),  # a form field named "data"
        req("b64", {"data": base64.b64encode(rgb).decode()}),
    ])
    assert resp.code == 200, resp.message
    for p, png in zip(resp.predictions, (rgb, rgba, gray, rgb)):
        got = list(json.loads(p.body).items())  # order: most likely first
        want = reference_top5(net, png)
        assert [k for k, _ in got] == [k for k, _ in want], p.request_id
        assert [v for _, v in got] == pytest.approx([v for _, v in want], abs=1e-6)
        assert p.content_type == "application/json"
    bad = w.infer([req("x", b"not an image", "image/png")])
    assert bad.code == 400 and "not an image PIL can read" in bad.message


@pytest.fixture
def in_process(tmp_path):
    """Loads a model dir in this process; restores the working directory afterwards."""
    cwd = os.getcwd()
    loaded = []

    def load(model_dir, handler, batch_size=1):
        svc = loader.load_model(protocol.LoadRequest("m", model_dir, batch_size, handler), "test")
        loaded.append(model_dir)
        return svc

    yield load
    os.chdir(cwd)
    import sys
    for d in loaded:
        while d in sys.path:
            sys.path.remove(d)


def run(svc, batch):
    return protocol.decode_response(svc.predict(batch))


def test_object_detector(tmp_path, in_process):
    src = textwrap.dedent("""
        import torch

        class FakeDetector(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.scale = torch.nn.Parameter(torch.ones(1))

            def forward(self, images):
                out = []
                for img in images:
                    h, w = img.shape[-2:]
                    boxes = torch.tensor([[0.0, 0.0, w / 2, h / 2], [1.0, 1.0, 2.0, 2.0], [0.0, 0.0, w, h]])
                    out.append({"boxes": boxes * self.scale, "labels": torch.tensor([1, 2, 3]),
                                "scores": torch.tensor([0.9, 0.3, 0.5])})
                return out
    """)
    ns = {}
    exec(src, ns)
    torch.save(ns["FakeDetector"]().state_dict(), str(tmp_path / "det.pt"))
    d = make_model_dir(tmp_path / "det", {"det_model.py": src, "det.pt": (tmp_path / "det.pt").read_bytes(),
                                          "index_to_name.json": json.dumps({"object_type_names": ["bg", "cat", "dog"]})},
                       {"modelFile": "det_model.py", "serializedFile": "det.pt"})
    svc = in_process(d, "object_detector", 2)
    resp = run(svc, [req("a", png_bytes("RGB", (40, 20), 1), "image/png"), req("b", png_bytes("L", (10, 30), 2), "image/png")])
    assert resp.code == 200, resp.message
    assert json.loads(resp.predictions[0].body) == [{"cat": [0.0, 0.0, 20.0, 10.0], "score": pytest.approx(0.9)},
                                                    {"3": [0.0, 0.0, 40.0, 20.0], "score": 0.5}]
    assert json.loads(resp.predictions[1].body)[0] == {"cat": [0.0, 0.0, 5.0, 15.0], "score": pytest.approx(0.9)}


def test_image_segmenter(tmp_path, in_process):
    src = textwrap.dedent("""
        import torch

        class Seg(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(3, 4, 1)

            def forward(self, x):
                return {"out": self.conv(x)}
    """)
    ns = {}
    exec(src, ns)
    torch.manual_seed(4)
    net = ns["Seg"]().eval()
    torch.save(net.state_dict(), str(tmp_path / "seg.pt"))
    d = make_model_dir(tmp_path / "seg", {"seg_model.py": src, "seg.pt": (tmp_path / "seg.pt").read_bytes()},
                       {"modelFile": "seg_model.py", "serializedFile": "seg.pt"})
    svc = in_process(d, "image_segmenter")
    png = png_bytes("RGB", (250, 240), 5)
    resp = run(svc, [req("a", png, "image/png")])
    assert resp.code == 200, resp.message
    got = torch.tensor(json.loads(resp.predictions[0].body))
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    with torch.no_grad():
        p = torch.softmax(net(tf(Image.open(io.BytesIO(png))).unsqueeze(0))["out"], dim=1)[0]
    assert got.shape == (224, 224, 2)
    assert torch.equal(got[..., 0], p.argmax(0).float())
    torch.testing.assert_close(got[..., 1], p.max(0).values)


def test_text_classifier_with_json_vocab(tmp_path, in_process):
    src = textwrap.dedent("""
        import torch

        class Bag(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = torch.nn.EmbeddingBag(10, 4, mode="mean")
                self.fc = torch.nn.Linear(4, 3)

            def forward(self, text, offsets):
                return self.fc(self.emb(text, offsets))
    """)
    ns = {}
    exec(src, ns)
    torch.manual_seed(5)
    net = ns["Bag"]().eval()
    torch.save(net.state_dict(), str(tmp_path / "bag.pt"))
    vocab = {"<unk>": 0, "hello": 1, "world": 2, "hello world": 3, "it": 4, "is": 5, "not": 6, "is not": 7, "it is": 8}
    d = make_model_dir(tmp_path / "txt", {"bag_model.py": src, "bag.pt": (tmp_path / "bag.pt").read_bytes(),
                                          "source_vocab.json": json.dumps(vocab),
                                          "index_to_name.json": json.dumps({"0": "neg", "1": "neu", "2": "pos"})},
                       {"modelFile": "bag_model.py", "serializedFile": "bag.pt"})
    svc = in_process(d, "text_classifier", 2)
    resp = run(svc, [req("a", "<b>Hello</b>, World!", "text/plain"), req("b", "It isn't café", "text/plain")])
    assert resp.code == 200, resp.message
    ids_a = [1, 2, 3]
    ids_b = [4, 5, 6, 0, 8, 7, 0]  # it is not cafe | it is, is not, not cafe
    with torch.no_grad():
        want = torch.softmax(net(torch.tensor(ids_a + ids_b), torch.tensor([0, 3])), dim=1)
    for p, row in zip(resp.predictions, want.tolist()):
        got = json.loads(p.body)
        assert list(got) == ["neg", "neu", "pos"]
        assert list(got.values()) == pytest.approx(row, abs=1e-6)


def test_text_classifier_without_vocab_fails_clearly(tmp_path, in_process):
    d = make_model_dir(tmp_path / "txt2", {"ts2.pt": b""}, {"serializedFile": "ts2.pt"})
    torch.jit.script(torch.nn.Linear(1, 1)).save(os.path.join(d, "ts2.pt"))
    with pytest.raises(RuntimeError, match="needs a vocabulary"):
        in_process(d, "text_classifier")


def test_shim_resolves_ts_names_to_wick():
    from wick_worker import shim
    assert shim.install() is True
    import ts.context
    import ts.torch_handler.image_classifier as ic
    import ts.utils.util
    from wick_worker.context import Context
    from wick_worker.handlers.image_classifier import ImageClassifier
    assert ts.utils.util.PredictionException is PredictionException
    assert ts.context.Context is Context and ic.ImageClassifier is ImageClassifier
    with pytest.raises(ImportError):
        import ts.not_a_module  # noqa: F401


def test_encode_result_types():
    # str and bytes: labelled by what they are (TorchServe sends no Content-Type for them)
    assert service.encode_result(b"\xff\x00") == (b"\xff\x00", "application/octet-stream")
    assert service.encode_result(b"plain") == (b"plain", "text/plain; charset=utf-8")
    assert service.encode_result("é") == ("é".encode(), "text/plain; charset=utf-8")
    assert service.encode_result("OK") == (b"OK", "text/plain; charset=utf-8")
    assert service.encode_result("falsehood") == (b"falsehood", "text/plain; charset=utf-8")
    assert service.encode_result(' {"a": [1]}') == (b' {"a": [1]}', "application/json")
    assert service.encode_result(b"[1, 2]") == (b"[1, 2]", "application/json")
    assert service.encode_result("42") == (b"42", "application/json")
    assert service.encode_result(torch.tensor([[1, 2]])) == (b"[[1, 2]]", "application/json")
    body, ct = service.encode_result({"t": torch.tensor(1.5), "s": (1, 2)})
    assert json.loads(body) == {"t": 1.5, "s": [1, 2]} and ct == "application/json"
    with pytest.raises(TypeError):
        service.encode_result({"x": object()})


def test_raw_bodies_reach_handlers_as_bytearray_as_on_torchserve():
    from wick_worker.service import decode_value
    assert type(decode_value("image/png", b"\x89PNG")) is bytearray
    assert type(decode_value("application/json", b"{not json")) is bytearray
    assert decode_value("application/json", b"[1, 2]") == [1, 2]
    assert decode_value("text/plain", b"hi") == "hi"
