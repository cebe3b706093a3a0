"""The V1 adapter's request mapping, call binding and answer shaping, in this process:
the cases the Waylay adapter's V1 marshaller defines, compared with what it answers."""

import inspect

import pytest
import torch

import conftest  # noqa: F401  (puts python/ on sys.path)
from wick_worker.handlers import v1_adapter as v1


def test_instances_rows_and_named_columns():
    req, x = v1.parse_request({"instances": [[1, 2], [3, 4]]})
    assert torch.equal(x, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    _, named = v1.parse_request({"instances": [{"a": 1, "b": [1, 2]}, {"a": 2, "b": [3, 4]}]})
    assert set(named) == {"a", "b"}
    assert torch.equal(named["a"], torch.tensor([1.0, 2.0]))
    assert named["b"].shape == (2, 2)
    _, main = v1.parse_request({"instances": [{"main": [1, 2]}, {"main": [3, 4]}]})
    assert isinstance(main, torch.Tensor) and main.shape == (2, 2)


def test_inputs_tensor_named_and_lone_main():
    _, x = v1.parse_request(b'{"inputs": [1, 2, 3]}')
    assert torch.equal(x, torch.tensor([1.0, 2.0, 3.0]))
    _, named = v1.parse_request({"inputs": {"a": [1], "b": [2]}})
    assert set(named) == {"a", "b"}
    _, main = v1.parse_request({"inputs": {"main": [[1, 2]]}})
    assert isinstance(main, torch.Tensor)
    _, ints = v1.parse_request({"inputs": [1, 2], "parameters": {"datatype": "INT64"}})
    assert ints.dtype == torch.int64
    _, d = v1.parse_request({"inputs": [1, 2], "parameters": {"dtype": "float64"}})
    assert d.dtype == torch.float64


@pytest.mark.parametrize("body,needle", [
    ({}, "expected \"instances\""),
    ({"data": 1}, "got keys ['data']"),
    ([1, 2], "got a JSON array"),
    (b"{", "not JSON"),
    ({"instances": [{"a": 1}, [2]]}, "instances[1] is not an object"),
    ({"instances": [{"a": 1}, {"b": 2}]}, "missing from some instances"),
    ({"inputs": {"b64": "AAAA"}}, "base64"),
    ({"inputs": [[1], [1, 2]]}, "not a numeric tensor"),
    ({"inputs": [1], "parameters": []}, "\"parameters\" must be an object"),
])
def test_bad_requests(body, needle):
    with pytest.raises(v1.BadRequest) as e:
        v1.parse_request(body)
    assert needle in str(e.value)


def test_answers_as_the_adapter_shapes_them():
    t = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert v1.encode_response({"instances": []}, t) == {"predictions": [[1.0, 2.0], [3.0, 4.0]]}
    assert v1.encode_response({"inputs": []}, t) == {"outputs": [[1.0, 2.0], [3.0, 4.0]]}
    # named outputs of the same length: rows of dicts for instances, columns for inputs
    out = {"y": torch.tensor([1, 2]), "p": torch.tensor([[0.5], [0.25]])}
    assert v1.encode_response({"instances": []}, out) == {
        "predictions": [{"y": 1, "p": [0.5]}, {"y": 2, "p": [0.25]}]}
    assert v1.encode_response({"inputs": []}, out) == {"outputs": {"y": [1, 2], "p": [[0.5], [0.25]]}}
    # different first dimensions stay columnar even for instances
    mixed = {"y": torch.tensor([1, 2]), "n": torch.tensor(7)}
    assert v1.encode_response({"instances": []}, mixed) == {"outputs": {"y": [1, 2], "n": 7}}
    # a lone main output is the value itself; parameters are echoed
    assert v1.encode_response({"inputs": [], "parameters": {"dtype": "int64"}}, {"main": torch.tensor([3])}) == {
        "parameters": {"dtype": "int64"}, "outputs": [3]}
    assert v1.encode_response({"instances": []}, (torch.tensor([1]), torch.tensor([2]))) == {
        "predictions": [[1], [2]]}


def test_binding_named_inputs():
    def f(x, y=None, *, scale=1.0):
        pass

    sig = inspect.signature(f)
    args, kwargs = v1.bind_named(sig, {"x": 1, "y": 2})
    assert args == [1, 2] and kwargs == {}
    args, kwargs = v1.bind_named(sig, {"main": 1, "scale": 3})
    assert args == [1] and kwargs == {"scale": 3}
    args, kwargs = v1.bind_named(sig, {"x": 1, "scale": 3})
    assert args == [1] and kwargs == {"scale": 3}
    with pytest.raises(v1.BadRequest, match="'x' is missing"):
        v1.bind_named(sig, {"y": 2})
    with pytest.raises(v1.BadRequest, match="unknown input 'z'"):
        v1.bind_named(sig, {"x": 1, "z": 2})

    def g(a, **rest):
        pass

    args, kwargs = v1.bind_named(inspect.signature(g), {"a": 1, "z": 2})
    assert args == [1] and kwargs == {"z": 2}


def test_module_signature_is_forward_unless_call_is_overridden():
    class M(torch.nn.Module):
        def forward(self, a, b):
            return a + b

    class W(torch.nn.Module):
        def __call__(self, x, y, z):
            return x

    assert list(v1.call_signature(M()).parameters) == ["a", "b"]
    assert list(v1.call_signature(W()).parameters) == ["x", "y", "z"]


def test_no_load_construction_follows_the_signature():
    class ByName:
        def __init__(self, model_path=None):
            self.got = model_path

    class Positional:
        def __init__(self, model_file):
            self.got = model_file

    class Nothing:
        def __init__(self):
            self.got = "none"

    assert v1.construct_with_path(ByName, "m.pt").got == "m.pt"
    assert v1.construct_with_path(Positional, "m.pt").got == "m.pt"
    assert v1.construct_with_path(Nothing, "m.pt").got == "none"
    assert v1.construct_with_path(ByName, None).got is None


def test_weights_rule():
    assert v1.is_weights_path("autoencoder.weights.pt")
    assert v1.is_weights_path("model-Weights.PTH")
    assert not v1.is_weights_path("model.pt")
