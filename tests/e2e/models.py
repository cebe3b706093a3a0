"""Models the end-to-end tests serve, built with Debian's torch (this pytest runs under
/usr/bin/python3, which has it)."""
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
