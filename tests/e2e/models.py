"""Models the end-to-end tests serve, built with the venv's torch (this pytest runs under
.venv/bin/python, the torch wick is built against)."""
import torch


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(16, 64)
        self.fc2 = torch.nn.Linear(64, 4)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class TwoInputs(torch.nn.Module):
    """forward(a, b) returning a tuple and a dict: outputs of every shape wick must print."""

    def forward(self, a: torch.Tensor, b: torch.Tensor):
        return (a + b, {"prod": a * b, "sum": (a + b).sum(dim=-1)})


class Embed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 3)

    def forward(self, idx):
        return self.emb(idx)


def save_script(module, path, seed=0):
    torch.manual_seed(seed)
    m = module() if isinstance(module, type) else module
    m.eval()
    torch.jit.script(m).save(str(path))
    return torch.jit.load(str(path))


class RowSum(torch.nn.Module):
    """Accepts rows of any width: batches only form among requests of equal width."""

    def forward(self, x):
        return x.sum(dim=-1, keepdim=True) * 2.0


class Total(torch.nn.Module):
    """Returns a 0-d tensor: an output with no batch dimension to split."""

    def forward(self, x):
        return x.sum()


class Busy(torch.nn.Module):
    """Spins for x[0, 0] iterations of a small matmul chain, then returns x + 1: a model
    whose forward takes as long as the request says (TorchScript has no sleep)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.eye(32) * 0.5)

    def forward(self, x):
        n = int(x[0, 0].item())
        acc = torch.ones(32, 32)
        for _ in range(n):
            acc = torch.tanh(acc @ self.w)
        return x + 1.0 + acc.sum() * 0.0


class Identity(torch.nn.Module):
    """Returns its input: carries every dtype through the server unchanged."""

    def forward(self, x):
        return x.clone()


class PairOut(torch.nn.Module):
    """Two inputs, two outputs (a tuple): names and order on the KServe v2 path."""

    def forward(self, a: torch.Tensor, b: torch.Tensor):
        return a + b, a * b


class SumImages(torch.nn.Module):
    """[N,1,28,28] -> [N]: a model that costs nearly nothing (the v2 transport bench)."""

    def forward(self, x):
        return x.sum(dim=(1, 2, 3))


class TwoHeads(torch.nn.Module):
    """forward(a, b) -> (a @ w + b, (a * b).sum(-1)): two inputs sharing the batch
    dimension, two outputs."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(6, 6))

    def forward(self, a, b):
        return a @ self.w + b, (a * b).sum(dim=-1)


def compile_pt2(module, example_args, path, batch=(1, 8), size_oblivious=False):
    """AOTInductor-compiles module (eval mode) into the package at path: dimension 0 of
    every input dynamic within batch=(min, max), or every shape static when batch is None.
    torch.export and AOTInductor raise a dynamic dimension's minimum to 2 (they specialise
    sizes 0 and 1); size_oblivious (torch's backed_size_oblivious, for both steps) keeps
    the minimum as given for some models (an MLP), not all (a CNN's stays 2).
    Takes tens of seconds on two cores."""
    import contextlib
    import os
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    module.eval()
    dynamic = None
    if batch is not None:
        dim = torch.export.Dim("batch", min=batch[0], max=batch[1])
        dynamic = tuple({0: dim} for _ in example_args)
    ctx = contextlib.nullcontext()
    if size_oblivious:
        import torch.fx.experimental._config as fx_config
        ctx = fx_config.patch(backed_size_oblivious=True)
    with torch.no_grad(), ctx:
        ep = torch.export.export(module, tuple(example_args), dynamic_shapes=dynamic)
        torch._inductor.aoti_compile_and_package(ep, package_path=str(path))
    return path
