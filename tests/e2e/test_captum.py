"""wick's native integrated gradients against Captum's IntegratedGradients on the same
model and input: zero baseline, Gauss-Legendre quadrature, 50 steps (Captum's method
"gausslegendre"), for the predicted class and for another one."""
import json

import torch
from captum.attr import IntegratedGradients

from conftest import DEMO_DIR

SAMPLES = DEMO_DIR / "test_samples.json"
STORE = DEMO_DIR / "model_store"


def test_native_integrated_gradients_match_captum(serve):
    samples = json.loads(SAMPLES.read_text())
    model = torch.jit.load(str(DEMO_DIR / "fashion.pt")).eval()
    ig = IntegratedGradients(model)
    s = serve("--model-store", STORE, "--models", "fashion=fashion_tensor.mar")
    for i in (0, 1, 7):
        x = torch.tensor(samples["images"][i], dtype=torch.float32).unsqueeze(0)  # [1,1,28,28]
        predicted = model(x).argmax(1).item()
        for target in (predicted, (predicted + 3) % 10):
            r = s.infer("POST", f"/explanations/fashion?target={target}&n_steps=50",
                        {"data": x.tolist()})
            assert r.status == 200, r
            got = torch.tensor(r.json())
            want = ig.attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=50,
                                method="gausslegendre")[0]
            assert got.shape == want.shape, (got.shape, want.shape)
            scale = want.abs().max().item()
            assert scale > 0
            diff = (got - want).abs().max().item()
            assert diff <= 1e-4 * scale, (i, target, diff, scale)
