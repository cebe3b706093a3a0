"""The fashion demo, end to end: the model `make demo` trained and packed, served by wick:
1000 FashionMNIST test images sent one per request as JSON tensors (tensor handler)."""
import json

import pytest

from conftest import DEMO_DIR

SAMPLES = DEMO_DIR / "test_samples.json"
ARCHIVE = DEMO_DIR / "model_store" / "fashion_tensor.mar"


@pytest.fixture(scope="module")
def samples():
    if not SAMPLES.exists() or not ARCHIVE.exists():
        pytest.fail(f"the demo model is missing ({SAMPLES}, {ARCHIVE}): run make demo")
    return json.loads(SAMPLES.read_text())


def test_fashion_accuracy_over_http(serve, samples):
    s = serve("--model-store", ARCHIVE.parent, "--models", "fashion=fashion_tensor.mar", "--quiet")
    images, labels = samples["images"], samples["labels"]
    assert len(images) == 1000
    correct = 0
    for image, label in zip(images, labels):
        r = s.infer("POST", "/predictions/fashion", {"data": [image]})
        assert r.status == 200, r
        (logits,) = r.json()
        assert len(logits) == 10
        correct += max(range(10), key=logits.__getitem__) == label
    accuracy = correct / len(images)
    print(f"fashion accuracy over HTTP: {accuracy:.3f}")
    assert accuracy >= 0.85


def test_fashion_rejects_a_wrong_image_shape(serve, samples):
    s = serve("--model-store", ARCHIVE.parent, "--models", "fashion=fashion_tensor.mar")
    r = s.infer("POST", "/predictions/fashion", {"data": [[[0.0] * 27] * 28]})
    assert r.status == 400
    assert r.json()["message"].startswith("model rejected the input: ")
