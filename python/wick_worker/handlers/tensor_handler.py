"""The built-in generic tensor handler (`tensor`, also `base_handler`): JSON tensors in,
nested lists out, the Python twin of wick's native one. A request body may be
  [[...], ...]                 one tensor (first dimension = rows)
  {"data": X} / {"body": X}    the same
  {"instances": [row, ...]}    rows stacked along a new first dimension
  {"inputs": X}                one tensor
  {"inputs": {"a": X, ...}}    tensors passed to forward() by name
with an optional "dtype" ("float32" default, "float64", "int64", "int32", "bool", ...).
Requests with one positional tensor of the same dtype and trailing shape are
concatenated along dim 0 and run in one forward(); the output (a tensor, or lists,
tuples and dicts of tensors) is split back by rows. When that is not possible each
request runs on its own. Input that is not such a tensor fails the batch with 400.
"""

import json

import torch

from ..util import PredictionException
from .base_handler import BaseHandler
from .timer import timed

DTYPES = {
    "float32": torch.float32, "float": torch.float32, "float64": torch.float64,
    "double": torch.float64, "float16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "int64": torch.int64, "long": torch.int64,
    "int32": torch.int32, "int": torch.int32, "int16": torch.int16, "int8": torch.int8,
    "uint8": torch.uint8, "bool": torch.bool,
}


def _bad(idx, msg):
    return PredictionException("request %d: %s" % (idx, msg), 400)


def _tensor(x, dtype, idx, what):
    try:
        return torch.tensor(x, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as e:
        raise _bad(idx, "%s is not a numeric tensor (nested lists of equal length): %s" % (what, e)) from None


def parse_request(row, idx):
    """(positional tensors, named tensors) of one request."""
    body = row.get("data", row.get("body")) if isinstance(row, dict) else row
    if isinstance(body, (bytes, bytearray, str)):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise _bad(idx, "the body is not JSON: %s" % e) from None
    if body is None:
        raise _bad(idx, "no input: expected a JSON body")
    dtype = torch.float32
    if isinstance(body, dict):
        name = body.get("dtype", "float32")
        if name not in DTYPES:
            raise _bad(idx, "unknown dtype %r; expected one of %s" % (name, ", ".join(sorted(DTYPES))))
        dtype = DTYPES[name]
        if "data" in body or "body" in body:
            x = body["data"] if "data" in body else body["body"]
            return [_tensor(x, dtype, idx, "data")], {}
        if "instances" in body:
            inst = body["instances"]
            if not isinstance(inst, list):
                raise _bad(idx, "\"instances\" must be a list of rows")
            return [_tensor(inst, dtype, idx, "instances")], {}
        if "inputs" in body:
            x = body["inputs"]
            if isinstance(x, dict):
                if not x:
                    raise _bad(idx, "\"inputs\" is an empty object")
                return [], {k: _tensor(v, dtype, idx, "inputs.%s" % k) for k, v in x.items()}
            return [_tensor(x, dtype, idx, "inputs")], {}
        raise _bad(idx, "expected a nested list, or an object with \"data\", \"instances\" or \"inputs\"; "
                        "got keys %s" % sorted(body))
    return [_tensor(body, dtype, idx, "the body")], {}


def split_rows(out, sizes):
    """out split along dim 0 into len(sizes) parts, or None when some part of it has no
    such dimension of the right total size."""
    total = sum(sizes)
    if isinstance(out, torch.Tensor):
        if out.dim() == 0 or out.shape[0] != total:
            return None
        return list(torch.split(out, sizes, dim=0))
    if isinstance(out, (list, tuple)):
        parts = [split_rows(o, sizes) for o in out]
        if any(p is None for p in parts):
            return None
        return [[p[i] for p in parts] for i in range(len(sizes))]
    if isinstance(out, dict):
        parts = {k: split_rows(v, sizes) for k, v in out.items()}
        if any(p is None for p in parts.values()):
            return None
        return [{k: p[i] for k, p in parts.items()} for i in range(len(sizes))]
    return None


class TensorHandler(BaseHandler):
    @timed
    def preprocess(self, data):
        return [parse_request(row, i) for i, row in enumerate(data)]

    def _forward(self, args, kwargs):
        with torch.inference_mode():
            return self.model(*[a.to(self.device) for a in args],
                              **{k: v.to(self.device) for k, v in kwargs.items()})

    @timed
    def inference(self, data, *extra, **kw):
        first = data[0][0]
        batchable = len(data) > 1 and len(first) == 1 and all(
            len(a) == 1 and not k and a[0].dim() >= 1 and a[0].dtype == first[0].dtype
            and a[0].shape[1:] == first[0].shape[1:]
            for a, k in data
        )
        if batchable:
            sizes = [a[0].shape[0] for a, _ in data]
            out = self._forward([torch.cat([a[0] for a, _ in data])], {})
            parts = split_rows(out, sizes)
            if parts is not None:
                return parts
        return [self._forward(a, k) for a, k in data]

    @timed
    def postprocess(self, data):
        return [_to_lists(x) for x in data]


def _to_lists(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().tolist()
    if isinstance(x, (list, tuple)):
        return [_to_lists(v) for v in x]
    if isinstance(x, dict):
        return {k: _to_lists(v) for k, v in x.items()}
    return x
