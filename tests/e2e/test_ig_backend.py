"""wick's integrated gradients (wk_torch_integrated_gradients in src/backend/torch.cc)
against a reference computed here with plain torch autograd and the same Gauss-Legendre
quadrature as Captum's default: attributions within 1e-3 of the reference (relative to its
norm), completeness within 2%, the argmax as the default target, clear errors for bad
arguments. Runs the tests/tools/wkig helper: WICK_IG_TOOL, else build/wkig. The models
(a 2-conv CNN and an MLP with random weights) are made here."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
TOOL = os.environ.get("WICK_IG_TOOL", str(ROOT / "build" / "wkig"))


@pytest.fixture(scope="module", autouse=True)
def tool():
    if not os.access(TOOL, os.X_OK):
        pytest.fail(f"the wkig tool is missing at {TOOL}: build the 'wkig' target "
                    "or set WICK_IG_TOOL", pytrace=False)


class CNN(torch.nn.Module):
    """The shape of the fashion demo: two convs, max-pool, two linear layers."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3)
        self.conv2 = torch.nn.Conv2d(8, 16, 3)
        self.fc1 = torch.nn.Linear(16 * 5 * 5, 64)
        self.fc2 = torch.nn.Linear(64, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


class MLP(torch.nn.Module):
    """Returns a tuple: explanations use its first element."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(),
                                       torch.nn.Linear(32, 5))

    def forward(self, x):
        y = self.net(x)
        return y, y.softmax(1)


def save(model, path):
    torch.manual_seed(0)
    model.eval()
    torch.jit.script(model).save(str(path))
    return model


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("ig") / "cnn.pt"
    return save(CNN(), path), path, (1, 1, 28, 28)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    torch.manual_seed(2)
    path = tmp_path_factory.mktemp("ig") / "mlp.pt"
    return save(MLP(), path), path, (1, 16)


def first(out):
    return out[0] if isinstance(out, tuple) else out


def reference_ig(model, x, target, n_steps):
    """Captum's IntegratedGradients(method="gausslegendre") with a zero baseline, in
    float64 from the float32 model's gradients."""
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)
    alphas, step_sizes = (nodes + 1) / 2, weights / 2
    baseline = torch.zeros_like(x)
    scaled = torch.cat([baseline + float(a) * (x - baseline) for a in alphas])
    scaled.requires_grad_(True)
    out = first(model(scaled))[:, target].sum()
    (grads,) = torch.autograd.grad(out, scaled)
    total = (grads.double() * torch.tensor(step_sizes).view(-1, *[1] * (x.dim() - 1))).sum(0)
    return ((x - baseline).double() * total).numpy()


def run_ig(tmp_path, model_path, x, *args):
    f = tmp_path / "x.f32"
    x.numpy().astype(np.float32).tofile(f)
    shape = ",".join(str(d) for d in x.shape)
    p = subprocess.run([TOOL, *map(str, args), str(model_path), str(f), shape],
                       capture_output=True)
    return p


def ig_ok(tmp_path, model_path, x, *args):
    p = run_ig(tmp_path, model_path, x, *args)
    assert p.returncode == 0, p.stderr.decode()
    info = json.loads(p.stderr.decode().strip().splitlines()[-1])
    attr = np.frombuffer(p.stdout, np.float32).reshape(x.shape)
    return attr, info


def input_for(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g)


@pytest.mark.parametrize("n_steps,batch", [(50, 0), (50, 16), (7, 3), (1, 0)])
def test_cnn_matches_reference(tmp_path, cnn, n_steps, batch):
    model, path, shape = cnn
    x = input_for(shape, 10 + n_steps)
    with torch.no_grad():
        logits = model(x)[0]
    target = int(logits.argmin())  # not the argmax: an explicit target is honoured
    attr, info = ig_ok(tmp_path, path, x, "-t", target, "-n", n_steps, "-b", batch)
    ref = reference_ig(model, x, target, n_steps)
    assert info["target"] == target
    assert np.linalg.norm(attr - ref) <= 1e-3 * np.linalg.norm(ref)
    assert info["f_x"] == pytest.approx(float(logits[target]), rel=1e-4, abs=1e-5)
    with torch.no_grad():
        f_base = float(model(torch.zeros(shape))[0, target])
    assert info["f_base"] == pytest.approx(f_base, rel=1e-4, abs=1e-5)
    assert info["sum"] == pytest.approx(float(attr.astype(np.float64).sum()), rel=1e-5, abs=1e-6)


def test_cnn_completeness(tmp_path, cnn):
    model, path, shape = cnn
    for seed in range(3):
        x = input_for(shape, 100 + seed)
        attr, info = ig_ok(tmp_path, path, x, "-n", 50)
        delta = info["f_x"] - info["f_base"]
        assert abs(delta) > 1e-3, "degenerate input: f(x) == f(baseline)"
        assert abs(float(attr.astype(np.float64).sum()) - delta) <= 0.02 * abs(delta), info


def test_default_target_is_argmax(tmp_path, cnn, mlp):
    for model, path, shape in (cnn, mlp):
        x = input_for(shape, 7)
        with torch.no_grad():
            expected = int(first(model(x))[0].argmax())
        attr, info = ig_ok(tmp_path, path, x, "-n", 20)
        assert info["target"] == expected
        ref = reference_ig(model, x, expected, 20)
        assert np.linalg.norm(attr - ref) <= 1e-3 * np.linalg.norm(ref)


def test_mlp_tuple_output_matches_reference(tmp_path, mlp):
    model, path, shape = mlp
    x = input_for(shape, 3) * 4 - 2
    for target in range(5):
        attr, info = ig_ok(tmp_path, path, x, "-t", target, "-n", 32, "-b", 5)
        ref = reference_ig(model, x, target, 32)
        assert np.linalg.norm(attr - ref) <= 1e-3 * np.linalg.norm(ref)
        delta = info["f_x"] - info["f_base"]
        assert abs(float(attr.astype(np.float64).sum()) - delta) <= 0.02 * abs(delta)


def test_unfrozen_load_and_parallel_forward_agree(tmp_path, cnn):
    """The frozen serving module and the autograd copy are independent: explaining while
    another thread runs forward on the same model gives the same numbers."""
    model, path, shape = cnn
    x = input_for(shape, 5)
    a1, i1 = ig_ok(tmp_path, path, x, "-n", 30, "-b", 10)
    a2, i2 = ig_ok(tmp_path, path, x, "-n", 30, "-b", 10, "-F")
    a3, i3 = ig_ok(tmp_path, path, x, "-n", 30, "-b", 10, "-p", "-r", 3)
    assert i3["parallel_forwards"] > 0
    np.testing.assert_allclose(a2, a1, rtol=0, atol=1e-6 * np.abs(a1).max())
    np.testing.assert_allclose(a3, a1, rtol=0, atol=1e-6 * np.abs(a1).max())


@pytest.mark.parametrize("args,message", [
    (["-t", 10], "target 10 is out of range: the model has 10 classes"),
    (["-t", 12], "target 12 is out of range: the model has 10 classes"),
    (["-n", 0], "n_steps must be between 1 and 1024, got 0"),
    (["-n", 1025], "n_steps must be between 1 and 1024, got 1025"),
    (["-b", -1], "internal_batch must be 0"),
])
def test_bad_arguments(tmp_path, cnn, args, message):
    _, path, shape = cnn
    p = run_ig(tmp_path, path, input_for(shape, 1), *args)
    assert p.returncode == 1
    assert p.stdout == b""
    assert message in p.stderr.decode()


def test_wrong_input_shape_is_the_models_error(tmp_path, cnn):
    _, path, _ = cnn
    p = run_ig(tmp_path, path, input_for((1, 3, 28, 28), 1))
    assert p.returncode == 1
    assert "model rejected the input" in p.stderr.decode()


def test_input_without_batch_dimension(tmp_path, cnn):
    _, path, _ = cnn
    p = run_ig(tmp_path, path, input_for((2, 1, 28, 28), 1))
    assert p.returncode == 1
    assert "explanations take one input of shape [1, ...], got [2,1,28,28]" in p.stderr.decode()


class OneHot(torch.nn.Module):
    """Scores that do not depend differentiably on the input."""

    def forward(self, x):
        return torch.nn.functional.one_hot(x.flatten(1).argmax(1), 16).float()


class Spatial(torch.nn.Module):
    """Scores of shape [N, 2, 8]: not logits."""

    def forward(self, x):
        return x.view(-1, 2, 8) * 2


@pytest.mark.parametrize("model,message", [
    (OneHot(), "the model's scores do not depend differentiably on its input"),
    (Spatial(), "explanations need a model that returns scores of shape [N, K]; "
                "for 1 input(s) it returned [1, 2, 8]"),
])
def test_models_that_cannot_be_explained(tmp_path, model, message):
    path = tmp_path / "m.pt"
    save(model, path)
    p = run_ig(tmp_path, path, input_for((1, 16), 1), "-n", 4)
    assert p.returncode == 1
    assert message in p.stderr.decode()
