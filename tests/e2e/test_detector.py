"""TorchScript that calls torchvision's operators, served natively: wick's own nms and
roi_align kernels against torchvision's in Python, and the native object_detector handler
on torchvision's fasterrcnn_mobilenet_v3_large_320_fpn (random weights, scripted) against
the same scripted model run in Python."""
import base64
import concurrent.futures as cf
import io
import json

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from conftest import pack


class Ops(torch.nn.Module):
    """Calls the two operators with parameters taken from the request."""

    def forward(self, boxes, scores, feat, rois, params):
        keep = torchvision.ops.nms(boxes, scores, float(params[0]))
        pooled = torch.ops.torchvision.roi_align(feat, rois, float(params[1]), 5, 4,
                                                 int(params[2]), bool(params[3] > 0.5))
        return keep, pooled


def random_boxes(g, n, size):
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 3 + 1
    return torch.cat([xy, xy + wh], dim=1)


def test_nms_and_roi_align_match_torchvision(serve, tmp_path):
    torch.jit.script(Ops()).save(str(tmp_path / "ops.pt"))
    store = tmp_path / "store"
    store.mkdir()
    pack(store, "ops", tmp_path / "ops.pt")
    s = serve("--model-store", store, "--models", "ops=ops.mar")
    g = torch.Generator().manual_seed(7)
    cases = 0
    for iou in (0.3, 0.5, 0.7):
        for scale, sampling, aligned in ((1.0, 2, 0), (0.25, 0, 1), (0.5, 0, 0), (0.125, 3, 1)):
            boxes = random_boxes(g, 60, 50.0)
            scores = torch.rand(60, generator=g)
            scores[10:14] = scores[3]  # ties
            feat = torch.randn(2, 3, 13, 17, generator=g)
            rois = torch.cat([torch.randint(0, 2, (9, 1), generator=g).float(),
                              random_boxes(g, 9, 70.0) - 5], dim=1)  # some reach outside
            params = torch.tensor([iou, scale, float(sampling), float(aligned)])
            body = {"inputs": {"boxes": boxes.tolist(), "scores": scores.tolist(),
                               "feat": feat.tolist(), "rois": rois.tolist(),
                               "params": params.tolist()}}
            r = s.infer("POST", "/predictions/ops", body)
            assert r.status == 200, r
            keep, pooled = r.json()
            want_keep = torchvision.ops.nms(boxes, scores, iou)
            want_pool = torchvision.ops.roi_align(feat, rois, (5, 4), scale, sampling, bool(aligned))
            assert keep == want_keep.tolist(), (iou, keep, want_keep.tolist())
            got = torch.tensor(pooled)
            assert got.shape == want_pool.shape
            assert (got - want_pool).abs().max().item() <= 1e-5, (scale, sampling, aligned)
            cases += 1
    assert cases == 12
    # bad input reaches the kernels' checks: a clear 400, and the model keeps serving
    r = s.infer("POST", "/predictions/ops", {"inputs": {
        "boxes": [[0, 0, 1, 1, 5]], "scores": [0.5], "feat": [[[[1.0]]]], "rois": [[0, 0, 0, 1, 1]],
        "params": [0.5, 1, 2, 0]}})
    assert r.status == 400 and "boxes should be [N, 4]" in r.json()["message"], r


def make_detector(tmp_path):
    """The detector with random weights, made to detect: its batch norms take the statistics
    of random images (else activations vanish through the untrained backbone) and its output
    layers are scaled so that scores and boxes spread out instead of all tying."""
    torch.manual_seed(0)
    m = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None).eval()
    for bn in (mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)):
        bn.momentum = 1.0
        bn.train()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        m.backbone(torch.rand(2, 3, 240, 320, generator=g))
        m.eval()
        m.roi_heads.box_predictor.cls_score.weight.mul_(0.05)
        m.roi_heads.box_predictor.bbox_pred.weight.mul_(0.002)
        m.rpn.head.bbox_pred.weight.mul_(0.0005)
    scripted = torch.jit.script(m)
    scripted.save(str(tmp_path / "det.pt"))
    # what wick runs: the module frozen and optimized for inference at load
    return torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.load(str(tmp_path / "det.pt"))))


def png_bytes(seed, w, h):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, size=(h // 8, w // 8, 3), dtype=np.uint8)
    img = Image.fromarray(a).resize((w, h), Image.NEAREST)  # blocks: something to detect
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def expected(model, data, threshold, labels):
    img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    with torch.no_grad():
        _, dets = model([x])
    d = dets[0]
    out = []
    for box, label, score in zip(d["boxes"].tolist(), d["labels"].tolist(), d["scores"].tolist()):
        if score >= threshold:
            out.append((labels.get(str(label), str(label)), box, score))
    return out


def check_reply(reply, want, threshold=0.6):
    """Each detection wick reports pairs with one of Python's: same label, score within 1e-3,
    box within 0.05 px (wick runs the module frozen and optimized, which moves the last bits;
    activations of this random model are large). Order among near-equal scores and
    detections within 1e-3 of the threshold may differ."""
    got = []
    for o in reply:
        label = next(k for k in o if k != "score")
        got.append((label, o[label], o["score"]))
    unmatched = list(want)
    for gl, gb, gs in got:
        assert gs >= threshold
        match = next((w for w in unmatched if w[0] == gl and abs(w[2] - gs) <= 1e-3 and
                      max(abs(a - b) for a, b in zip(w[1], gb)) <= 0.05), None)
        if match is None:
            assert abs(gs - threshold) <= 1e-3, ("no such detection in Python", gl, gb, gs, want)
            continue
        unmatched.remove(match)
    assert all(abs(w[2] - threshold) <= 1e-3 for w in unmatched), ("missing", unmatched)
    assert len(got) >= len(want) - len(unmatched)


def test_object_detector_matches_the_model_in_python(serve, tmp_path):
    model = make_detector(tmp_path)
    labels = {"1": "person", "2": "bicycle", "3": "car"}
    (tmp_path / "index_to_name.json").write_text(json.dumps(labels))
    (tmp_path / "det.yaml").write_text("minWorkers: 1\nbatchSize: 4\nmaxBatchDelay: 200\n"
                                       "wick:\n  threshold: 0.6\n")
    store = tmp_path / "store"
    store.mkdir()
    pack(store, "det", tmp_path / "det.pt", handler="object_detector",
         extra=[tmp_path / "index_to_name.json"], config=tmp_path / "det.yaml")
    s = serve("--model-store", store, "--models", "det=det.mar")
    images = [png_bytes(i, 320, 240) for i in range(4)]
    wants = [expected(model, data, 0.6, labels) for data in images]
    assert sum(len(w) for w in wants) > 0, "the test model detects nothing: the test would be empty"
    # one at a time
    r = s.infer("POST", "/predictions/det", images[0], {"Content-Type": "image/png"})
    assert r.status == 200, r
    check_reply(r.json(), wants[0])
    # four at once, of one size: one batch of a list of images
    with cf.ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda d: s.infer("POST", "/predictions/det", d), images))
    for r, want in zip(replies, wants):
        assert r.status == 200, r
        check_reply(r.json(), want)
    # an image of another size, alone
    other = png_bytes(9, 200, 280)
    r = s.infer("POST", "/predictions/det", other)
    assert r.status == 200, r
    check_reply(r.json(), expected(model, other, 0.6, labels))
    # KServe v1: images as b64 instances, one prediction (a list of detections) each
    body = {"instances": [{"b64": base64.b64encode(d).decode()} for d in images[:2]]}
    r = s.infer("POST", "/v1/models/det:predict", body)
    assert r.status == 200, r
    preds = r.json()["predictions"]
    assert len(preds) == 2
    for got, want in zip(preds, wants[:2]):
        check_reply(got, want)


@pytest.mark.badinput
def test_object_detector_bad_input(serve, tmp_path):
    make_detector(tmp_path)
    store = tmp_path / "store"
    store.mkdir()
    pack(store, "det", tmp_path / "det.pt", handler="object_detector")
    s = serve("--model-store", store, "--models", "det=det.mar")
    r = s.infer("POST", "/predictions/det", b"not an image at all")
    assert r.status == 400, r
    r = s.infer("POST", "/explanations/det", png_bytes(1, 64, 64))
    assert r.status == 501 and "no explanations" in r.json()["message"], r
    r = s.infer("POST", "/predictions/det", png_bytes(1, 64, 64))
    assert r.status == 200 and isinstance(r.json(), list), r
